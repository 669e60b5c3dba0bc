"""The DBN's widths as a Keras image classifier, and its serving signature.

`build_classifier` makes the network (flatten, Dense hidden layers, softmax) from random
initialisation; `DBN.classifier` makes the same network with its hidden layers set to the RBMs'
weights, for fine-tuning. `ClassifierServing` exports either for TensorFlow Serving.
"""

import math

import keras
import tensorflow as tf

from pipelines.images import IMAGE_SHAPE
from pipelines.signatures import check_images
from rbm_tf.dbn_config import check_layer_sizes


def hidden_layer_name(index):
    """Name of the Dense layer of hidden layer `index` (0-based), the one RBM `index` sets."""
    return f"hidden_{index + 1}"


def build_classifier(layer_sizes, num_classes, activation="sigmoid", dropout=0.0,
                     input_shape=IMAGE_SHAPE, seed=0):
    """A Keras classifier of the DBN's widths: flatten, Dense hidden layers, softmax.

    ``dropout`` (a rate, 0 for none) follows every hidden layer. Random initialisation is Glorot
    uniform seeded from ``seed``; the input is named ``images`` and the output ``probabilities``.
    """
    layer_sizes = check_layer_sizes(layer_sizes, math.prod(input_shape))
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    images = keras.Input(shape=input_shape, name="images")
    outputs = keras.layers.Flatten(name="flatten")(images)
    for index, units in enumerate(layer_sizes[1:]):
        outputs = keras.layers.Dense(
            units, activation=activation, name=hidden_layer_name(index),
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + index))(outputs)
        if dropout:
            outputs = keras.layers.Dropout(dropout, seed=seed + index, name=f"dropout_{index + 1}")(outputs)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="probabilities",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + len(layer_sizes)))(outputs)
    return keras.Model(images, outputs, name="classifier")


class ClassifierServing(tf.Module):
    """SavedModel signature of an image classifier.

    ``serving_default(images)``: images float32 [batch, 28, 28, 1] in [0, 1] ->
    ``probabilities`` [batch, num_classes] and ``class`` int64 [batch] (the most probable).
    Images are checked as every image signature checks them (`pipelines.signatures`).
    """

    def __init__(self, classifier: keras.Model, name=None):
        super().__init__(name=name)
        self.classifier = classifier
        # TensorFlow Serving restores variables in a session, which finds only the tf.Variables
        # a module tracks itself, not those inside Keras 3 variables (keras-team/keras#20095)
        self.classifier_variables = [variable.value for variable in classifier.variables]
        # any size, so that a wrong one reaches the check and its message
        self.classify = tf.function(
            self._classify, input_signature=[tf.TensorSpec([None, None, None, None], tf.float32, name="images")])

    def signatures(self):
        return {"serving_default": self.classify}

    def _classify(self, images):
        probabilities = self.classifier(check_images(images), training=False)
        return {"probabilities": probabilities, "class": tf.argmax(probabilities, axis=-1)}
