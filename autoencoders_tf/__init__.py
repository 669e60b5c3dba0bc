"""Keras 3 autoencoders: dense, convolutional, denoising and variational."""

from autoencoders_tf.base import Autoencoder
from autoencoders_tf.conv import ConvAutoencoder
from autoencoders_tf.dense import DenseAutoencoder
from autoencoders_tf.denoising import DenoisingAutoencoder
from autoencoders_tf.vae import VAE

__all__ = ["Autoencoder", "ConvAutoencoder", "DenseAutoencoder", "DenoisingAutoencoder", "VAE"]
