"""Training with every global batch shared among replicas (tf.distribute): the recommender's
sparse CD, the DBN's dense CD and the fine-tuning of its classifier.

Every step follows one pattern (`all_reduced`): each replica takes its contiguous share of the
global batch (every worker reads the same seeded batches), computes its gradients, weighted so
that their sum over the replicas is the global batch's; the replicas all-reduce (SUM) them
explicitly, and one update is applied to every copy of the variables, in cross-replica context
(so no optimizer aggregates anything behind our back). Random numbers are drawn for the whole
global batch from a stateless seed (`global_uniform`): the same global batch gives the same
weights whatever the number of replicas.

* `ReplicatedCDStep`: sparse CD of the recommender (below);
* `ReplicatedDenseCDStep`: dense CD of a `CDTrainer` (the DBN's greedy pre-training);
* `fit_classifier`: backpropagation of a Keras classifier (the DBN's fine-tuning), where
  Keras's own `fit` fails under several workers.

`ReplicatedCDStep` scatters each replica's per-movie sparse CD gradient rows into dense [units,
hidden] gradients before the all-reduce. The cost: every update moves every row of the weights
(and all-reduces them), the work of users x movies that the single-device path
(`SparseCDTrainer.train_step`, lazy and sparse) avoids. The weights equal those of the
single-device update after its `flush`.
"""

import itertools

import keras
import tensorflow as tf

from pipelines import loop
from pipelines.distribute import replica_share
from rbm_tf.rbm import SparseRatings
from rbm_tf.training import reconstruction_error


def all_reduced(strategy, replica_fn, args):
    """`replica_fn(*args)` (a list of tensors) on every replica, summed over the replicas by an
    explicit all-reduce; returns the sums, which every replica then holds alike."""

    def reduced(*args):
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, replica_fn(*args))

    return [strategy.experimental_local_results(value)[0] for value in strategy.run(reduced, args=args)]


def replica_rows(batch_size):
    """[start, end) of this replica's contiguous share of a global batch of `batch_size`."""
    context = tf.distribute.get_replica_context()
    return replica_share(batch_size, context.replica_id_in_sync_group, context.num_replicas_in_sync)


def weighted_by_share(gradients, local_batch, batch_size):
    """A replica's batch-mean `gradients` times its share of the batch: their sum over the
    replicas is the global batch's mean. A replica without examples (a small last batch) adds
    0, not the nan of an empty mean."""
    share = tf.cast(local_batch, tf.float32) / tf.cast(batch_size, tf.float32)
    return [tf.where(local_batch > 0, gradient * share, tf.zeros_like(gradient)) for gradient in gradients]


def global_uniform(seed, step):
    """`draw(whole_shape, start, end)`: uniform numbers drawn for a whole global batch from a
    stateless seed (the run's `seed`, the draw's number within the step, the update count
    `step`), rows [start, end) returned: replicas read disjoint rows of the same numbers."""
    draws = itertools.count()
    step = tf.cast(step, tf.int64)

    def draw(whole_shape, start, end):
        pair = tf.stack([tf.constant(seed * 1000003 + next(draws), tf.int64), step])
        return tf.random.stateless_uniform(whole_shape, pair)[start:end]

    return draw


def replace_leading_rows(variable, rows):
    """variable[:len(rows)] = rows, as an assign of the whole variable: a sliced assign would
    update only one copy of a mirrored variable."""
    variable.assign(tf.concat([rows, variable[tf.shape(rows)[0]:]], 0))


class ReplicatedCDStep:
    """`step(rows, movies, values, batch_size, offset)`: one update of `trainer` (a
    `SparseCDTrainer` whose variables were made in `strategy.scope()`) from a global batch
    given as `SparseCDTrainer.train_step` takes it (rows sorted)."""

    def __init__(self, trainer, strategy, seed=0):
        self.trainer = trainer
        self.strategy = strategy
        self.seed = int(seed)

    def __call__(self, rows, movies, values, batch_size, offset=None):
        self.apply(*all_reduced(self.strategy, self.replica_gradients,
                                (rows, movies, values, batch_size, offset)))

    def replica_gradients(self, rows, movies, values, batch_size, offset):
        """This replica's share of the global batch's gradients."""
        trainer, rbm = self.trainer, self.trainer.rbm
        start, end = replica_rows(batch_size)
        bounds = tf.searchsorted(rows, tf.stack([start, end]))
        first, last = bounds[0], bounds[1]
        local_batch = end - start
        ratings, rated = SparseRatings.of_movies(rows[first:last] - start, movies[first:last],
                                                 values[first:last], local_batch)
        units = tf.reshape(rbm.unit_indices(rated), [-1])
        weights, visible_bias = rbm.rows_of(rated)
        chain_start = None
        if trainer.persistent_hidden is not None:
            chain_start = trainer.persistent_hidden[start:end]
        weight_gradient, visible_bias_gradient, hidden_bias_gradient, chain_end = \
            rbm.sparse_contrastive_divergence(
                ratings, weights, visible_bias, k=trainer.config.k, chain_start=chain_start,
                mean_field_visible=trainer.config.mean_field_visible,
                offset=None if offset is None else offset[start:end],
                uniform=self.uniform(batch_size, tf.size(rows), start, end, first, last))
        num_units = rbm.num_visible * rbm.units_per_visible
        gradients = weighted_by_share(
            [tf.math.unsorted_segment_sum(tf.reshape(weight_gradient, [-1, rbm.num_hidden]), units, num_units),
             tf.math.unsorted_segment_sum(tf.reshape(visible_bias_gradient, [-1]), units, num_units),
             hidden_bias_gradient], local_batch, batch_size)
        if chain_start is not None:
            gradients.append(chain_rows(chain_end, start, end, batch_size))
        return gradients

    def uniform(self, batch_size, num_ratings, start, end, first, last):
        """Uniform numbers for a replica's samples: drawn for the global batch, its rows read."""
        num_hidden = self.trainer.rbm.num_hidden
        draw = global_uniform(self.seed, self.trainer.weights.updates.read_value())

        def uniform(shape):
            if shape.shape[0] == 2:  # the hidden units of the replica's users
                return draw(tf.stack([batch_size, num_hidden]), start, end)
            return draw(tf.reshape(num_ratings, [1]), first, last)

        return uniform

    def apply(self, weight_gradient, visible_bias_gradient, hidden_bias_gradient, chain_end=None):
        trainer = self.trainer
        trainer.weights.apply_dense(weight_gradient)
        trainer.visible_bias.apply_dense(visible_bias_gradient)
        trainer.apply_hidden_bias(hidden_bias_gradient)
        if chain_end is not None:
            replace_leading_rows(trainer.persistent_hidden, chain_end)


def chain_rows(chain_end, start, end, batch_size):
    """A replica's chain ends [end - start, hidden] at their rows of the global batch, zeros
    elsewhere: the sum over the replicas puts the whole batch's chains together."""
    return tf.pad(chain_end, [[start, batch_size - end], [0, 0]])


class ReplicatedDenseCDStep:
    """`step(visible)`: one CD update of a `CDTrainer`'s RBM (variables made in
    `strategy.scope()`) from a global batch [batch, num_visible] under `strategy`; returns
    {"reconstruction_error"} of the batch after the update, as `CDTrainer.train_step` does.

    Each replica runs dense CD on its rows of the batch, its random numbers read from those
    drawn for the whole batch (`global_uniform`, counted by the optimizer's updates); the
    share-weighted gradients are all-reduced and `CDTrainer.apply` makes the one update.
    """

    def __init__(self, trainer, strategy, seed=0):
        self.trainer = trainer
        self.strategy = strategy
        self.seed = int(seed)

    @tf.function(reduce_retracing=True)
    def __call__(self, visible):
        visible = tf.convert_to_tensor(visible, tf.float32)
        gradients = all_reduced(self.strategy, self.replica_gradients, (visible,))
        self.trainer.apply(gradients[:3])
        if self.trainer.persistent_hidden is not None:
            replace_leading_rows(self.trainer.persistent_hidden, gradients[3])
        return {"reconstruction_error": reconstruction_error(self.trainer.rbm, visible)}

    def replica_gradients(self, visible):
        trainer = self.trainer
        batch_size = tf.shape(visible)[0]
        start, end = replica_rows(batch_size)
        chain_start = None if trainer.persistent_hidden is None else trainer.persistent_hidden[start:end]
        draw = global_uniform(self.seed, trainer.optimizer.iterations)
        gradients, chain_end = trainer.rbm.contrastive_divergence(
            visible[start:end], k=trainer.config.k, chain_start=chain_start,
            mean_field_visible=trainer.config.mean_field_visible,
            uniform=lambda shape: draw(tf.concat([[batch_size], shape[1:]], 0), start, end))
        gradients = weighted_by_share(gradients, end - start, batch_size)
        if chain_start is not None:
            gradients.append(chain_rows(chain_end, start, end, batch_size))
        return gradients


def fit_classifier(model, strategy, train, validation_data=None, epochs=1, initial_epoch=0,
                   callbacks=()):
    """Keras `fit` of a classifier compiled with an optimizer (its variables made in
    `strategy.scope()`) on batches of (images, integer labels), under `strategy`, by a loop of
    our own: Keras 3's `fit` under MultiWorkerMirroredStrategy fails on its first step with
    (images, labels) batches (keras-team/keras#20585, tensorflow/tensorflow#72388).

    Each replica takes its share of a global batch; the gradients of the global batch's mean
    sparse categorical cross-entropy are all-reduced and the model's optimizer applies them
    once. Logs "loss", "accuracy" (means over the epoch's examples, while the weights moved)
    and "val_loss", "val_accuracy", as `fit` does, through `callbacks`. Returns the History.
    """
    if not model.optimizer.built:  # its slots must be made in the scope, not in the first step
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)

    def sums(images, labels, training):
        start, end = replica_rows(tf.shape(images)[0])
        probabilities = model(images[start:end], training=training)
        labels = tf.cast(labels[start:end], tf.int64)
        correct = tf.cast(tf.equal(tf.argmax(probabilities, axis=-1), labels), tf.float32)
        return tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, probabilities)), \
            tf.reduce_sum(correct)

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            loss, correct = sums(images, labels, True)
            # this replica's part of the global batch's mean: the parts sum to it
            objective = loss / tf.cast(tf.shape(images)[0], tf.float32)
        return [*tape.gradient(objective, model.trainable_variables), loss, correct]

    def train_sums(images, labels):
        *gradients, loss, correct = all_reduced(strategy, replica_step, (images, labels))
        model.optimizer.apply(gradients, model.trainable_variables)
        return tf.stack([loss, correct])

    def test_sums(images, labels):
        return tf.stack(all_reduced(strategy, lambda *batch: list(sums(*batch, False)), (images, labels)))

    def mean_over(dataset, step):
        totals, count = tf.zeros([2]), 0
        for images, labels in dataset:
            totals += step(images, labels)
            count += int(images.shape[0])
        loss, correct = totals.numpy() / max(count, 1)
        return {"loss": float(loss), "accuracy": float(correct)}

    # traced once for batches of any size
    train_step = tf.function(train_sums, input_signature=tuple(train.element_spec))
    if validation_data is not None:
        test_step = tf.function(test_sums, input_signature=tuple(validation_data.element_spec))

    def train_epoch(epoch, callback_list):
        logs = mean_over(train, train_step)
        if validation_data is not None:
            callback_list.on_test_begin()
            logs.update({f"val_{key}": value for key, value in mean_over(validation_data, test_step).items()})
            callback_list.on_test_end()
        return logs

    return loop.fit_loop(model, train_epoch, epochs, initial_epoch=initial_epoch, callbacks=callbacks)
