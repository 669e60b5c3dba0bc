"""Deep Belief Networks (Hinton, Osindero & Teh 2006): stacked RBMs, learned greedily bottom up.

Each RBM of a `DBN` trains on the hidden probabilities of the one below, streamed through
tf.data (`DBN.layer_inputs` maps the trained lower layers over each batch as it is read, so the
transformed data set never exists in memory); `rbm_tf.pretraining.GreedyPretrainer` trains them.
The stack then becomes a Keras classifier whose Dense layers start from the RBM weights
(`DBN.classifier`, the network of `rbm_tf.classifier.build_classifier`), fine-tuned by
backpropagation with a softmax on top. `DBN.generate` draws images: Gibbs sampling in the top
RBM, then a pass down.
"""

import math

import tensorflow as tf

from pipelines.images import IMAGE_SHAPE
from rbm_tf.classifier import build_classifier
from rbm_tf.classifier import hidden_layer_name
from rbm_tf.dbn_config import check_layer_sizes
from rbm_tf.rbm import RBM

DEFAULT_LAYER_SIZES = (784, 500, 500, 2000)


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
