"""A denoising autoencoder: either architecture, fed corrupted images, scored against clean ones."""

import keras
import tensorflow as tf

from autoencoders_tf.base import Autoencoder
from autoencoders_tf.base import pixel_mse
from autoencoders_tf.config import ARCHITECTURES
from autoencoders_tf.config import NOISE_KINDS
from autoencoders_tf.config import check_noise_level
from pipelines.settings import one_of
from autoencoders_tf.conv import conv_coder
from autoencoders_tf.dense import dense_coder


def corrupt(images, noise, noise_level, seed):
    """Corrupted copies of [0, 1] images, still in [0, 1].

    gaussian: add N(0, noise_level^2) to every pixel and clip; masking: set a random fraction
    `noise_level` of the pixels to 0. `seed` is a keras SeedGenerator or an int.
    """
    if noise == "gaussian":
        noisy = images + noise_level * keras.random.normal(tf.shape(images), seed=seed)
        return tf.clip_by_value(noisy, 0.0, 1.0)
    keep = keras.random.uniform(tf.shape(images), seed=seed) >= noise_level
    return images * tf.cast(keep, images.dtype)


@keras.saving.register_keras_serializable(package="autoencoders_tf")
class DenoisingAutoencoder(Autoencoder):
    """Learns to map corrupted images to their clean originals.

    The training and test steps corrupt their inputs and score the reconstruction against the
    clean images; ``noisy_mse`` is the baseline of returning the noisy input unchanged. Calling
    the model, ``encode`` and the exported signatures never add noise: they denoise what they get.
    ``architecture_config`` holds the dense architecture's ``hidden_units`` and ``code_size``.
    """

    loss_names = ("loss", "mse", "noisy_mse")

    def __init__(self, architecture="conv", architecture_config=None, noise="gaussian",
                 noise_level=0.5, input_range="symmetric", seed=0, **kwargs):
        one_of("architecture", architecture, ARCHITECTURES)
        one_of("noise", noise, NOISE_KINDS)
        check_noise_level(noise, noise_level)
        self.architecture = architecture
        self.architecture_config = dict(architecture_config or {})
        self.noise = noise
        self.noise_level = float(noise_level)
        if architecture == "dense":
            config = {"hidden_units": (128, 64, 12), "code_size": 3, **self.architecture_config}
            encoder, decoder = dense_coder(config["hidden_units"], config["code_size"], input_range)
        else:
            if self.architecture_config:
                raise ValueError("the conv architecture takes no architecture_config")
            encoder, decoder = conv_coder(input_range)
        super().__init__(encoder, decoder, input_range=input_range, seed=seed, **kwargs)

    def corrupt(self, images, seed=None):
        """Corrupted images with this model's noise; fresh noise each call unless `seed` is given."""
        return corrupt(images, self.noise, self.noise_level,
                       self.seed_generator if seed is None else seed)

    def compute_losses(self, images, training=False):
        noisy = self.corrupt(images)
        losses = self.reconstruction_losses(noisy, images, training=training)
        losses["noisy_mse"] = pixel_mse(noisy, images)
        return losses

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture,
                "architecture_config": self.architecture_config, "noise": self.noise,
                "noise_level": self.noise_level}
