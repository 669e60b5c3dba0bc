"""The chapter's convolutional autoencoder, with PyTorch's padding arithmetic reproduced.

PyTorch's ``Conv2d(padding=p)`` pads p zeros on each side; ``ConvTranspose2d(padding=p)``
trims p from each side of the full transposed output. Keras's ``padding="same"`` matches
neither for these strides, so the stack uses ZeroPadding2D(p) + a 'valid' convolution, and a
'valid' transposed convolution + Cropping2D(p). The code is the 8x2x2 feature map, flattened.
"""

import keras

from autoencoders_tf.base import Autoencoder
from autoencoders_tf.base import output_activation
from pipelines.images import IMAGE_SHAPE

CODE_MAP_SHAPE = (2, 2, 8)


def conv_coder(input_range):
    """(encoder, decoder) of the chapter's layer stack: 28x28x1 -> 32-d code -> 28x28x1."""
    layers = keras.layers
    encoder = keras.Sequential([
        keras.Input(IMAGE_SHAPE),
        layers.ZeroPadding2D(1, name="conv1_pad"),
        layers.Conv2D(16, 3, strides=3, activation="relu", name="conv1"),   # 28 -> 10
        layers.MaxPooling2D(2, strides=2, name="pool1"),                    # 10 -> 5
        layers.ZeroPadding2D(1, name="conv2_pad"),
        layers.Conv2D(8, 3, strides=2, activation="relu", name="conv2"),    # 5 -> 3
        layers.MaxPooling2D(2, strides=1, name="pool2"),                    # 3 -> 2
        layers.Flatten(name="code"),
    ], name="encoder")
    decoder = keras.Sequential([
        keras.Input((CODE_MAP_SHAPE[0] * CODE_MAP_SHAPE[1] * CODE_MAP_SHAPE[2],)),
        layers.Reshape(CODE_MAP_SHAPE, name="code_map"),
        layers.Conv2DTranspose(16, 3, strides=2, activation="relu", name="deconv1"),  # 2 -> 5
        layers.Conv2DTranspose(8, 5, strides=3, name="deconv2"),                       # 5 -> 17
        layers.Cropping2D(1, name="deconv2_crop"),                                      # 17 -> 15
        layers.ReLU(name="deconv2_relu"),
        layers.Conv2DTranspose(1, 2, strides=2, name="deconv3"),                       # 15 -> 30
        layers.Cropping2D(1, name="deconv3_crop"),                                      # 30 -> 28
        layers.Activation(output_activation(input_range), name="output"),
    ], name="decoder")
    return encoder, decoder


@keras.saving.register_keras_serializable(package="autoencoders_tf")
class ConvAutoencoder(Autoencoder):
    """The chapter's convolutional autoencoder (32-d code), tanh output on [-1, 1] by default."""

    def __init__(self, input_range="symmetric", seed=0, **kwargs):
        encoder, decoder = conv_coder(input_range)
        super().__init__(encoder, decoder, input_range=input_range, seed=seed, **kwargs)
