"""The chapter's fully connected autoencoder: 784-128-64-12-3 and the mirrored decoder."""

import math

import keras

from autoencoders_tf.base import Autoencoder
from autoencoders_tf.base import output_activation
from pipelines.images import IMAGE_SHAPE


def dense_coder(hidden_units, code_size, input_range):
    """(encoder, decoder): ReLU layers of `hidden_units` down to a linear code, mirrored back up."""
    num_pixels = math.prod(IMAGE_SHAPE)
    encoder = keras.Sequential(
        [keras.Input(IMAGE_SHAPE), keras.layers.Flatten()]
        + [keras.layers.Dense(units, activation="relu") for units in hidden_units]
        + [keras.layers.Dense(code_size, name="code")], name="encoder")
    decoder = keras.Sequential(
        [keras.Input((code_size,))]
        + [keras.layers.Dense(units, activation="relu") for units in reversed(hidden_units)]
        + [keras.layers.Dense(num_pixels, activation=output_activation(input_range)),
           keras.layers.Reshape(IMAGE_SHAPE)], name="decoder")
    return encoder, decoder


@keras.saving.register_keras_serializable(package="autoencoders_tf")
class DenseAutoencoder(Autoencoder):
    """Fully connected autoencoder; the default is the chapter's 784-128-64-12-3 with tanh on [-1, 1]."""

    def __init__(self, hidden_units=(128, 64, 12), code_size=3, input_range="symmetric", seed=0,
                 **kwargs):
        self.hidden_units = [int(units) for units in hidden_units]
        encoder, decoder = dense_coder(self.hidden_units, code_size, input_range)
        super().__init__(encoder, decoder, input_range=input_range, seed=seed, **kwargs)

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units,
                "code_size": self.code_size}
