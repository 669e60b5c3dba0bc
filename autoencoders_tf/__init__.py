"""Keras 3 autoencoders: dense, convolutional, denoising and variational."""
