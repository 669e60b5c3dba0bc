"""Contrastive-divergence training of an `RBM`, shared by the recommender and the DBN."""

import keras
import tensorflow as tf

from rbm_tf.config import CDConfig
from rbm_tf.rbm import RBM


class CDTrainer(tf.Module):
    """Applies CD-k (or PCD) updates to an RBM with SGD and momentum.

    The optimizer, the persistent chains and the RBM's random generator are all trackable,
    so a `tf.train.Checkpoint(trainer=...)` restores training exactly where it stopped.
    `batch_size` bounds the batches `train_step` accepts when persistent CD is on.
    """

    def __init__(self, rbm: RBM, config: CDConfig = CDConfig(), batch_size: int = 100, name=None):
        super().__init__(name=name)
        self.rbm = rbm
        self.config = config
        self.optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate,
                                              momentum=config.momentum)
        self.optimizer.build(rbm.variables_for_training)
        self.persistent_hidden = None
        if config.persistent:
            # Tieleman's fantasy particles start at random states and burn in while training.
            self.persistent_hidden = tf.Variable(
                tf.cast(rbm.generator.uniform([batch_size, rbm.num_hidden]) < 0.5, tf.float32),
                trainable=False, name="persistent_hidden")

    @tf.function
    def train_step(self, visible, mask=None, offset=None, monitor=True):
        """One CD update on a batch (``offset``: per-case visible biases, see `RBM`); returns
        the batch's mean squared reconstruction error, or nothing without `monitor` (which
        saves an up-down pass per step)."""
        chain_start = None
        if self.persistent_hidden is not None:
            chain_start = self.persistent_hidden[: tf.shape(visible)[0]]
        gradients, chain_end = self.rbm.contrastive_divergence(
            visible, mask, k=self.config.k, chain_start=chain_start,
            mean_field_visible=self.config.mean_field_visible, offset=offset)
        self.apply(gradients)
        if self.persistent_hidden is not None:
            self.persistent_hidden[: tf.shape(visible)[0]].assign(chain_end)
        if not monitor:
            return {}
        return {"reconstruction_error": reconstruction_error(self.rbm, visible, mask, offset)}

    def apply(self, gradients):
        """One SGD-with-momentum update from a batch's CD `gradients` (weights, visible bias,
        hidden bias, as `RBM.contrastive_divergence` returns them), weight decay added here."""
        if self.config.weight_decay:
            gradients = [gradients[0] + self.config.weight_decay * self.rbm.weights, *gradients[1:]]
        self.optimizer.apply(gradients, self.rbm.variables_for_training)


def reconstruction_error(rbm: RBM, visible, mask=None, offset=None):
    """Mean squared difference between observed values and their mean-field reconstruction."""
    visible = tf.convert_to_tensor(visible, tf.float32)
    squared_error = tf.square(visible - rbm.reconstruct(visible, mask, offset))
    if mask is None:
        return tf.reduce_mean(squared_error)
    return tf.reduce_mean(tf.boolean_mask(squared_error, mask))
