"""Contrastive divergence on sparse ratings: work in proportion to the ratings of a batch.

A batch of users touches only the weight rows of the movies they rated: the positive and
negative phases gather those rows (`RBM.sparse_contrastive_divergence`), and their gradient
is scattered back to them. What is left is the optimizer: SGD with momentum and weight decay
moves *every* row every update (the momentum decays, the weights shrink), which is the
users x movies cost again. `LazyMomentum` applies exactly that update lazily instead: a row
is brought up to date, by the closed-form power of the zero-gradient update, only when a
batch touches it, and every row at the end of an epoch (`flush`). The weights after a flush
are those of Keras's dense `SGD(momentum)` on the same gradients, up to float rounding.
"""

import math

import tensorflow as tf

from rbm_tf.config import CDConfig
from rbm_tf.rbm import RBM
from rbm_tf.rbm import SparseRatings


def momentum_power(momentum, decay, steps):
    """A^steps for each of `steps` [n]: [n, 2, 2] float64.

    Keras's SGD does v <- momentum v - lr g, w <- w + v. Where the data give no gradient, g
    is still decay / lr x w (weight decay; 0 for biases), so an update maps (v, w) linearly
    by A = [[momentum, -decay], [momentum, 1 - decay]], decay = learning rate x weight decay.
    By Cayley-Hamilton (A^2 = tA - mI, t = 1 + momentum - decay its trace, m = momentum its
    determinant), A^n = s(n) A - m s(n-1) I, where s(n) = (x^n - y^n) / (x - y) of A's
    eigenvalues x and y: a closed form, so a row catches up in a few elementwise operations
    however many updates it missed.
    """
    trace, determinant = 1.0 + momentum - decay, momentum
    discriminant = trace * trace - 4.0 * determinant
    steps = tf.cast(steps, tf.float64)

    def s(n):
        if discriminant > 1e-12:  # two real eigenvalues
            x, y = (trace + math.sqrt(discriminant)) / 2, (trace - math.sqrt(discriminant)) / 2
            return (tf.pow(tf.constant(x, tf.float64), n) - tf.pow(tf.constant(y, tf.float64), n)) / (x - y)
        if discriminant < -1e-12:  # a complex pair r e^(+-i theta)
            radius = math.sqrt(determinant)
            angle = math.acos(trace / (2 * radius))
            return tf.pow(tf.constant(radius, tf.float64), n - 1) * tf.sin(n * angle) / math.sin(angle)
        return n * tf.pow(tf.constant(trace / 2, tf.float64), n - 1)  # one repeated eigenvalue

    scale = s(steps)[:, tf.newaxis, tf.newaxis]
    # s(n - 1) at n = 0 would divide by the determinant: A^0 is the identity anyway
    shift = tf.where(steps > 0, determinant * s(tf.maximum(steps - 1.0, 0.0)), -1.0)[:, tf.newaxis, tf.newaxis]
    matrix = tf.constant([[momentum, -decay], [momentum, 1.0 - decay]], tf.float64)
    return scale * matrix - shift * tf.eye(2, dtype=tf.float64)


class LazyMomentum(tf.Module):
    """SGD with momentum (and weight decay) on the rows of one variable, updated lazily.

    `variable` [rows, ...]: `apply(rows, gradient)` updates the given (unique) rows with their
    gradient, after bringing them up to date; the other rows are owed the zero-gradient
    updates they missed, which `flush` (or a later `apply` touching them) pays.
    """

    def __init__(self, variable, learning_rate, momentum, weight_decay=0.0, name=None):
        super().__init__(name=name)
        self.variable = variable
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.velocity = tf.Variable(tf.zeros_like(variable), trainable=False, name="velocity")
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")
        # the number of updates each row has had
        self.row_updates = tf.Variable(tf.zeros([variable.shape[0]], tf.int64), trainable=False,
                                       name="row_updates")

    def _catch_up(self, velocity, value, missed):
        # rows that missed as many updates share one power: there are at most as many distinct
        # counts as updates since the last flush, far fewer than rows
        counts, which = tf.unique(missed)
        power = tf.gather(tf.cast(momentum_power(
            self.momentum, self.learning_rate * self.weight_decay, counts), value.dtype), which)
        shape = tf.concat([tf.shape(missed), tf.ones([tf.rank(value) - 1], tf.int32)], 0)
        entry = [[tf.reshape(power[:, i, j], shape) for j in range(2)] for i in range(2)]
        return (entry[0][0] * velocity + entry[0][1] * value,
                entry[1][0] * velocity + entry[1][1] * value)

    def current(self, rows):
        """(velocity, value) of the rows [n, ...], brought up to date (for `apply`)."""
        missed = self.updates - tf.gather(self.row_updates, rows)
        return self._catch_up(tf.gather(self.velocity, rows), tf.gather(self.variable, rows), missed)

    def apply(self, rows, gradient, velocity, value):
        """One update of the (unique) `rows` with their `gradient`, from their `current`
        velocity and value; every other row is owed this update."""
        velocity = self.momentum * velocity - self.learning_rate * (gradient + self.weight_decay * value)
        self.velocity.scatter_update(tf.IndexedSlices(velocity, rows))
        self.variable.scatter_update(tf.IndexedSlices(value + velocity, rows))
        self.updates.assign_add(1)
        self.row_updates.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(rows), self.updates), rows))

    def apply_dense(self, gradient):
        """One update of every row with its `gradient` [rows, ...]: Keras's dense SGD step.
        Every row must be up to date (as after `flush`, or when only this ever updated)."""
        velocity = self.momentum * self.velocity - self.learning_rate * (
            gradient + self.weight_decay * self.variable)
        self.velocity.assign(velocity)
        self.variable.assign_add(velocity)
        self.updates.assign_add(1)
        self.row_updates.assign(tf.fill(tf.shape(self.row_updates), self.updates))

    def flush(self):
        """Bring every row up to date: the variable then holds what dense SGD would."""
        velocity, value = self._catch_up(self.velocity, self.variable, self.updates - self.row_updates)
        self.velocity.assign(velocity)
        self.variable.assign(value)
        self.row_updates.assign(tf.fill(tf.shape(self.row_updates), self.updates))


class SparseCDTrainer(tf.Module):
    """CD-k (or PCD) on batches of sparse ratings, with SGD, momentum and weight decay.

    The update is that of `CDTrainer` (Keras's SGD on the CD gradient plus weight decay on the
    weights), its work in proportion to the ratings of the batch. `train_step` takes a batch
    as ``rows`` (each rating's case, 0..batch_size-1), ``movies`` and ``values`` (0/1), and the
    per-case visible ``offset``. Call `flush` before reading the RBM's variables (the end of an
    epoch): until then the rows nobody rated lag behind. Everything is trackable, so a
    checkpoint taken after a flush resumes exactly.
    """

    def __init__(self, rbm: RBM, config: CDConfig = CDConfig(), batch_size: int = 100, name=None):
        super().__init__(name=name)
        self.rbm = rbm
        self.config = config
        settings = dict(learning_rate=config.learning_rate, momentum=config.momentum)
        self.weights = LazyMomentum(rbm.weights, weight_decay=config.weight_decay, **settings)
        self.visible_bias = LazyMomentum(rbm.visible_bias, **settings)
        self.hidden_velocity = tf.Variable(tf.zeros_like(rbm.hidden_bias), trainable=False,
                                           name="hidden_velocity")
        self.persistent_hidden = None
        if config.persistent:
            self.persistent_hidden = tf.Variable(
                tf.cast(rbm.generator.uniform([batch_size, rbm.num_hidden]) < 0.5, tf.float32),
                trainable=False, name="persistent_hidden")

    @tf.function(reduce_retracing=True)
    def train_step(self, rows, movies, values, batch_size, offset=None):
        rbm = self.rbm
        ratings, movies = SparseRatings.of_movies(rows, movies, values, batch_size)
        units = tf.reshape(rbm.unit_indices(movies), [-1])
        shape = tf.stack([tf.size(movies), rbm.units_per_visible])
        weight_velocity, weights = self.weights.current(units)
        bias_velocity, visible_bias = self.visible_bias.current(units)
        chain_start = None
        if self.persistent_hidden is not None:
            chain_start = self.persistent_hidden[:batch_size]
        weight_gradient, visible_bias_gradient, hidden_bias_gradient, chain_end = \
            rbm.sparse_contrastive_divergence(
                ratings, tf.reshape(weights, tf.concat([shape, [rbm.num_hidden]], 0)),
                tf.reshape(visible_bias, shape), k=self.config.k, chain_start=chain_start,
                mean_field_visible=self.config.mean_field_visible, offset=offset)
        self.weights.apply(units, tf.reshape(weight_gradient, [-1, rbm.num_hidden]), weight_velocity,
                           weights)
        self.visible_bias.apply(units, tf.reshape(visible_bias_gradient, [-1]), bias_velocity,
                                visible_bias)
        self.apply_hidden_bias(hidden_bias_gradient)
        if self.persistent_hidden is not None:
            self.persistent_hidden[:batch_size].assign(chain_end)

    def apply_hidden_bias(self, gradient):
        """One SGD-with-momentum update of the hidden biases (every one, every step)."""
        self.hidden_velocity.assign(self.config.momentum * self.hidden_velocity
                                    - self.config.learning_rate * gradient)
        self.rbm.hidden_bias.assign_add(self.hidden_velocity)

    @tf.function
    def flush(self):
        """Bring every weight and bias up to date (see `LazyMomentum`)."""
        self.weights.flush()
        self.visible_bias.flush()


class RBMWeights:
    """`get_weights` / `set_weights` of a model's `rbm`, as numpy arrays: what
    keras.callbacks.EarlyStopping keeps and restores."""

    def get_weights(self):
        return [variable.numpy() for variable in self.rbm.variables_for_training]

    def set_weights(self, weights):
        for variable, value in zip(self.rbm.variables_for_training, weights):
            variable.assign(value)
