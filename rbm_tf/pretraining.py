"""Greedy layer-wise pre-training of a `DBN`: each RBM by contrastive divergence, bottom up.

`GreedyPretrainer.fit_layer` trains one RBM through `pipelines.loop.fit_loop`, the outer loop
every family shares, so Keras callbacks (the run directory's `RunMonitor`, EarlyStopping, ...)
see each pre-training epoch as they see an epoch of `keras.Model.fit`.
"""

import keras
import tensorflow as tf

from pipelines import loop
from rbm_tf.config import CDConfig
from rbm_tf.dbn import DBN
from rbm_tf.monitoring import binarize
from rbm_tf.monitoring import pseudo_log_likelihood
from rbm_tf.replicated_training import ReplicatedDenseCDStep
from rbm_tf.training import CDTrainer
from rbm_tf.training import reconstruction_error


class GreedyPretrainer(tf.Module):
    """Trains a DBN's RBMs one at a time, bottom up, each with its own CD trainer.

    Trackable: ``tf.train.Checkpoint(pretrainer=...)`` keeps every layer's weights, optimizer
    state, random generator and ``epochs_done[layer]``, so training resumes mid-stack.

    With a `strategy` (the DBN's variables made in its scope, this pretrainer made there too)
    every batch is shared among its replicas (`rbm_tf.replicated_training.ReplicatedDenseCDStep`),
    RBM ``i`` sampling from stateless seeds derived from ``seed + i``.
    """

    def __init__(self, dbn: DBN, config: CDConfig = CDConfig(), batch_size=100, strategy=None,
                 seed=0, name=None):
        super().__init__(name=name)
        self.dbn = dbn
        self.trainers = [CDTrainer(rbm, config, batch_size=batch_size) for rbm in dbn.rbms]
        self.epochs_done = tf.Variable(tf.zeros([dbn.num_layers], tf.int64), trainable=False,
                                       name="epochs_done")
        self.strategy, self.seed = strategy, int(seed)
        # what keras.callbacks expect of the model they watch (see pipelines.loop.fit_loop)
        self.stop_training = False
        self.history = None

    def start_layer(self, layer, images):
        """Set the layer's visible biases to the log-odds of its inputs' means (one pass)."""
        total, count = 0.0, 0
        for visible in self.dbn.layer_inputs(images, layer):
            total += tf.reduce_sum(visible, axis=0)
            count += int(visible.shape[0])
        self.dbn.rbms[layer].set_visible_bias_from_rates(total / count)

    def train_epoch(self, layer, images):
        """One pass of CD updates of RBM ``layer`` over ``images``; its mean reconstruction error.

        Counts the epoch in ``epochs_done[layer]`` (checkpointed with the weights)."""
        train_step = self.trainers[layer].train_step
        if self.strategy is not None:
            train_step = ReplicatedDenseCDStep(self.trainers[layer], self.strategy, self.seed + layer)
        error = keras.metrics.Mean()
        for visible in self.dbn.layer_inputs(images, layer):
            error.update_state(train_step(visible)["reconstruction_error"])
        self.epochs_done[layer].assign(self.epochs_done[layer] + 1)
        return float(error.result())

    def evaluate_layer(self, layer, images, seed=0):
        """Reconstruction error and mean exact pseudo-log-likelihood (nats) of RBM ``layer`` on
        ``images`` [n, ...] (mapped up through the layers below, binarized with a fixed seed)."""
        images = tf.convert_to_tensor(images, tf.float32)
        visible = self.dbn.hidden_probability(tf.reshape(images, [-1, self.dbn.layer_sizes[0]]), layer)
        rbm = self.dbn.rbms[layer]
        return {"reconstruction_error": float(reconstruction_error(rbm, visible)),
                "pseudo_log_likelihood": float(tf.reduce_mean(pseudo_log_likelihood(
                    rbm, binarize(visible, seed=(seed, layer)))))}

    def fit_layer(self, layer, images, epochs, validation_images=None, validation_seed=0,
                  callbacks=(), verbose=0):
        """Train RBM ``layer`` (0-based) on ``images`` until it has ``epochs`` epochs.

        Starts at ``epochs_done[layer]`` (restored from a checkpoint, or left by an earlier
        call); a layer that has not trained yet first sets its visible biases from its inputs.
        Each epoch logs ``reconstruction_error`` and, given ``validation_images`` (a tensor of
        examples), their ``val_reconstruction_error`` and ``val_pseudo_log_likelihood``.
        ``images`` is a dataset of batches of examples or of (examples, labels). Returns the
        `keras.callbacks.History`.
        """
        done = int(self.epochs_done[layer].numpy())
        if done == 0 and epochs > 0:
            self.start_layer(layer, images)

        def train_epoch(epoch, callback_list):
            logs = {"reconstruction_error": self.train_epoch(layer, images)}
            if validation_images is not None:
                callback_list.on_test_begin()
                logs.update({f"val_{key}": value for key, value in self.evaluate_layer(
                    layer, validation_images, validation_seed).items()})
                callback_list.on_test_end()
            return logs

        return loop.fit_loop(self, train_epoch, epochs, initial_epoch=done, callbacks=callbacks,
                             verbose=verbose)
