"""Deep Belief Networks (Hinton, Osindero & Teh 2006): stacked RBMs, learned greedily bottom up.

Each RBM of a `DBN` trains on the hidden probabilities of the one below, streamed through
tf.data (`DBN.layer_inputs` maps the trained lower layers over each batch as it is read, so the
transformed data set never exists in memory). The stack then becomes a Keras classifier whose
Dense layers start from the RBM weights (`DBN.classifier`), fine-tuned by backpropagation with a
softmax on top; `build_classifier` makes the same network from random initialisation for the
baselines. `DBN.generate` draws images: Gibbs sampling in the top RBM, then a pass down.
"""

import math

import keras
import tensorflow as tf

from autoencoders_tf.base import IMAGE_SHAPE
from autoencoders_tf.serving import check_images
from rbm_tf.rbm import RBM
from rbm_tf.training import CDConfig
from rbm_tf.training import CDTrainer

DEFAULT_LAYER_SIZES = (784, 500, 500, 2000)


def check_layer_sizes(layer_sizes, input_width=None):
    """The sizes as a tuple of ints; ValueError unless there are two or more, all positive, and
    the first is `input_width` (the number of values in one example) when that is given."""
    layer_sizes = tuple(int(size) for size in layer_sizes)
    if len(layer_sizes) < 2:
        raise ValueError(f"a DBN needs the input width and at least one hidden layer size, "
                         f"got {list(layer_sizes)}")
    if min(layer_sizes) < 1:
        raise ValueError(f"layer sizes must be positive, got {list(layer_sizes)}")
    if input_width is not None and layer_sizes[0] != input_width:
        raise ValueError(f"the layer sizes start at {layer_sizes[0]} but each example has "
                         f"{input_width} values: the first size must be the data's width")
    return layer_sizes


class DBN(tf.Module):
    """A stack of RBMs with Bernoulli units: ``layer_sizes[i]`` visible -> ``layer_sizes[i+1]`` hidden.

    Args:
      layer_sizes: the data's width, then each hidden layer's size (default 784-500-500-2000).
      weight_stddev: standard deviation of the RBMs' initial weights.
      seed: RBM ``i`` draws its weights and samples from seed ``seed + i``.
    """

    def __init__(self, layer_sizes=DEFAULT_LAYER_SIZES, weight_stddev=0.01, seed=0, name=None):
        super().__init__(name=name)
        self.layer_sizes = check_layer_sizes(layer_sizes)
        self.rbms = [RBM(num_visible, num_hidden, "single", weight_stddev=weight_stddev,
                         seed=seed + index, name=f"rbm_{index + 1}")
                     for index, (num_visible, num_hidden)
                     in enumerate(zip(self.layer_sizes[:-1], self.layer_sizes[1:]))]

    @property
    def num_layers(self):
        return len(self.rbms)

    def get_config(self):
        return {"layer_sizes": list(self.layer_sizes)}

    def hidden_probability(self, visible, num_layers=None):
        """Mean-field up pass: the hidden probabilities after the first ``num_layers`` RBMs."""
        visible = tf.convert_to_tensor(visible, tf.float32)
        for rbm in self.rbms[:num_layers]:
            visible = rbm.hidden_probability(visible)
        return visible

    def layer_inputs(self, images, layer):
        """The data RBM ``layer`` (0-based) learns from, as a tf.data pipeline over ``images``.

        ``images``: a dataset of batches of examples (any shape [batch, ...] whose values number
        ``layer_sizes[0]``), or of (examples, labels) pairs. Each batch is flattened and mapped
        up through the RBMs below ``layer`` when it is read, with the weights they have then.
        """
        if isinstance(images.element_spec, tuple):
            images = images.map(lambda examples, *_: examples)
        example_shape = images.element_spec.shape[1:]
        check_layer_sizes(self.layer_sizes, math.prod(example_shape))
        width = self.layer_sizes[0]

        def up(examples):
            return self.hidden_probability(tf.reshape(tf.cast(examples, tf.float32), [-1, width]),
                                           num_layers=layer)

        return images.map(up, num_parallel_calls=tf.data.AUTOTUNE)

    def classifier(self, num_classes, dropout=0.0, input_shape=IMAGE_SHAPE, seed=0):
        """The fine-tuning network: `build_classifier` with sigmoid units, each hidden Dense
        layer set to its RBM's weights and hidden biases (the softmax layer starts random)."""
        model = build_classifier(self.layer_sizes, num_classes, activation="sigmoid",
                                 dropout=dropout, input_shape=input_shape, seed=seed)
        self.initialise_classifier(model)
        return model

    def initialise_classifier(self, model):
        """Set each hidden Dense layer of a `build_classifier` model to its RBM's weights and biases."""
        for index, rbm in enumerate(self.rbms):
            dense = model.get_layer(hidden_layer_name(index))
            dense.kernel.assign(rbm.weights)
            dense.bias.assign(rbm.hidden_bias)

    def generate(self, num_samples=None, gibbs_steps=1000, start=None):
        """Images from the model: a Gibbs chain in the top RBM, then a mean-field pass down.

        The chains start at ``start`` (top-RBM visible states [n, layer_sizes[-2]], e.g. the
        hidden probabilities of data) or, without it, at ``num_samples`` random binary states.
        Returns the visible probabilities [n, layer_sizes[0]] (the image, not a noisy sample).
        """
        top = self.rbms[-1]
        if start is None:
            start = tf.cast(top.generator.uniform([num_samples, top.num_visible]) < 0.5, tf.float32)
        visible = gibbs_chain(top, tf.convert_to_tensor(start, tf.float32), gibbs_steps)
        for rbm in reversed(self.rbms[:-1]):
            visible = rbm.visible_probability(visible)
        return visible


@tf.function
def gibbs_chain(rbm, visible, steps):
    """``steps`` rounds of h ~ p(h | v), v ~ p(v | h); returns p(v | h) of the last round."""
    probability = visible
    for _ in tf.range(steps):
        _, hidden = rbm.sample_hidden(visible)
        probability, visible = rbm.sample_visible(hidden)
    return probability


class GreedyPretrainer(tf.Module):
    """Trains a DBN's RBMs one at a time, bottom up, each with its own CD trainer.

    Trackable: ``tf.train.Checkpoint(pretrainer=...)`` keeps every layer's weights, optimizer
    state, random generator and ``epochs_done[layer]``, so training resumes mid-stack.
    """

    def __init__(self, dbn: DBN, config: CDConfig = CDConfig(), batch_size=100, name=None):
        super().__init__(name=name)
        self.dbn = dbn
        self.trainers = [CDTrainer(rbm, config, batch_size=batch_size) for rbm in dbn.rbms]
        self.epochs_done = tf.Variable(tf.zeros([dbn.num_layers], tf.int64), trainable=False,
                                       name="epochs_done")

    def start_layer(self, layer, images):
        """Set the layer's visible biases to the log-odds of its inputs' means (one pass)."""
        total, count = 0.0, 0
        for visible in self.dbn.layer_inputs(images, layer):
            total += tf.reduce_sum(visible, axis=0)
            count += int(visible.shape[0])
        self.dbn.rbms[layer].set_visible_bias_from_rates(total / count)

    def train_epoch(self, layer, images):
        """One pass of CD updates of RBM ``layer`` over ``images``; its mean reconstruction error."""
        trainer = self.trainers[layer]
        error = keras.metrics.Mean()
        for visible in self.dbn.layer_inputs(images, layer):
            error.update_state(trainer.train_step(visible)["reconstruction_error"])
        self.epochs_done[layer].assign(self.epochs_done[layer] + 1)
        return float(error.result())


def hidden_layer_name(index):
    return f"hidden_{index + 1}"


def build_classifier(layer_sizes, num_classes, activation="sigmoid", dropout=0.0,
                     input_shape=IMAGE_SHAPE, seed=0):
    """A Keras classifier of the DBN's widths: flatten, Dense hidden layers, softmax.

    ``dropout`` (a rate, 0 for none) follows every hidden layer. Random initialisation is Glorot
    uniform seeded from ``seed``; the input is named ``images`` and the output ``probabilities``.
    """
    layer_sizes = check_layer_sizes(layer_sizes, math.prod(input_shape))
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least two classes, got {num_classes}")
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
    Images are checked exactly as the autoencoders' signatures check them.
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
