"""The chapter's variational autoencoder: 784-400-(20, 20) encoder, 20-400-784 Bernoulli decoder."""

import math

import keras
import numpy as np
import tensorflow as tf

from autoencoders_tf.base import Autoencoder
from autoencoders_tf.base import pixel_mse
from pipelines.images import IMAGE_SHAPE

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) per example, in nats: [batch]."""
    return -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=-1)


def bernoulli_log_likelihood(targets, logits):
    """log p(targets | logits) summed over the pixels of each image: [...] (targets in [0, 1])."""
    per_pixel = -tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    return tf.reduce_sum(tf.reshape(per_pixel, tf.concat([tf.shape(per_pixel)[:-3], [-1]], 0)), axis=-1)


@keras.saving.register_keras_serializable(package="autoencoders_tf")
class VAE(Autoencoder):
    """Variational autoencoder with a Gaussian posterior and a Bernoulli likelihood per pixel.

    ``loss`` is the negative ELBO per image in nats, ``reconstruction_loss`` its expected
    negative log-likelihood term and ``kl_loss`` its KL term. With ``binarize`` (the default)
    every training and test batch is binarised afresh (pixel ~ Bernoulli(intensity)), so the
    Bernoulli likelihood is a real likelihood; without it the decoder is fitted to continuous
    intensities and the "ELBO" is a cross-entropy, not a bound on a likelihood.
    ``call`` and ``decode`` give Bernoulli means (pixel intensities in [0, 1]).
    """

    loss_names = ("loss", "reconstruction_loss", "kl_loss", "mse")

    def __init__(self, hidden_units=400, latent_dim=20, binarize=True, seed=0, **kwargs):
        self.hidden_units = int(hidden_units)
        self.latent_dim = int(latent_dim)
        self.binarize = bool(binarize)
        images = keras.Input(IMAGE_SHAPE)
        hidden = keras.layers.Dense(self.hidden_units, activation="relu")(keras.layers.Flatten()(images))
        encoder = keras.Model(images, [keras.layers.Dense(self.latent_dim, name="z_mean")(hidden),
                                       keras.layers.Dense(self.latent_dim, name="z_log_var")(hidden)],
                              name="encoder")
        decoder = keras.Sequential([
            keras.Input((self.latent_dim,)),
            keras.layers.Dense(self.hidden_units, activation="relu"),
            keras.layers.Dense(math.prod(IMAGE_SHAPE), name="logits"),
            keras.layers.Reshape(IMAGE_SHAPE),
        ], name="decoder")
        super().__init__(encoder, decoder, input_range="unit", seed=seed, **kwargs)

    @property
    def code_size(self):
        return self.latent_dim

    def encode(self, images, training=False):
        """(z_mean, z_log_var) of the posterior q(z | images): each float32 [batch, latent_dim]."""
        return self.encoder(images, training=training)

    def decode(self, code, training=False):
        """Bernoulli means (pixel intensities in [0, 1]) from latent codes."""
        return tf.sigmoid(self.decoder(code, training=training))

    def call(self, images, training=False):
        """The reconstruction from the posterior mean, in [0, 1]."""
        z_mean, _ = self.encode(images, training=training)
        return self.decode(z_mean, training=training)

    def sample(self, num_samples, seed):
        """Images from the prior: decode z ~ N(0, I). `seed` is a shape-[2] int tensor."""
        z = tf.random.stateless_normal([num_samples, self.latent_dim], seed=seed)
        return self.decode(z)

    def targets(self, images, seed=None):
        """What the likelihood scores: freshly binarised pixels, or the intensities themselves."""
        if not self.binarize:
            return images
        if seed is None:
            uniform = keras.random.uniform(tf.shape(images), seed=self.seed_generator)
        else:
            uniform = tf.random.stateless_uniform(tf.shape(images), seed=seed)
        return tf.cast(uniform < images, images.dtype)

    def compute_losses(self, images, training=False):
        targets = self.targets(images)
        z_mean, z_log_var = self.encode(targets, training=training)
        epsilon = keras.random.normal(tf.shape(z_mean), seed=self.seed_generator)
        z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
        reconstruction_loss = -tf.reduce_mean(
            bernoulli_log_likelihood(targets, self.decoder(z, training=training)))
        kl_loss = tf.reduce_mean(gaussian_kl(z_mean, z_log_var))
        return {"loss": reconstruction_loss + kl_loss,
                "reconstruction_loss": reconstruction_loss,
                "kl_loss": kl_loss,
                "mse": pixel_mse(self.decode(z_mean, training=training), images)}

    def log_importance_weights(self, targets, num_samples, seed):
        """log p(x, z_k) - log q(z_k | x) for k = 1..num_samples: [num_samples, batch]."""
        z_mean, z_log_var = self.encode(targets)
        epsilon = tf.random.stateless_normal(
            tf.concat([[num_samples], tf.shape(z_mean)], 0), seed=seed)
        z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
        logits = self.decoder(tf.reshape(z, [-1, self.latent_dim]))
        logits = tf.reshape(logits, tf.concat([[num_samples, -1], IMAGE_SHAPE], 0))
        log_likelihood = bernoulli_log_likelihood(
            tf.broadcast_to(targets[tf.newaxis], tf.shape(logits)), logits)
        log_prior = -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)
        log_posterior = -0.5 * tf.reduce_sum(tf.square(epsilon) + LOG_2PI + z_log_var, axis=-1)
        return log_likelihood + log_prior - log_posterior

    def evaluate_bounds(self, images, num_samples, seed):
        """Per image: (negative ELBO, importance-weighted bound on -log p(x)), both in nats.

        The targets are binarised with `seed` (shape-[2] int tensor) and both bounds use the
        same `num_samples` posterior samples: the ELBO is their mean log weight, the bound of
        Burda et al. (2016) their log mean weight, which is never looser.
        """
        seeds = tf.random.experimental.stateless_split(seed, 2)
        targets = self.targets(images, seed=seeds[0])
        log_weights = self.log_importance_weights(targets, num_samples, seeds[1])
        neg_elbo = -tf.reduce_mean(log_weights, axis=0)
        neg_iw_bound = -(tf.reduce_logsumexp(log_weights, axis=0) - np.log(num_samples).astype(np.float32))
        return neg_elbo, neg_iw_bound

    def get_config(self):
        return {"hidden_units": self.hidden_units, "latent_dim": self.latent_dim,
                "binarize": self.binarize, "seed": self.seed, "name": self.name}
