"""Contrastive divergence on sparse ratings with the batch shared among replicas (tf.distribute).

`ReplicatedCDStep` makes one update of a `SparseCDTrainer`'s RBM from a global batch of users
under a `tf.distribute` strategy (mirrored devices, or several workers):

* every replica takes its contiguous share of the batch's users (every worker reads the same
  seeded batches; each replica computes only on its share);
* it runs sparse CD on its users' ratings and scatters its per-movie gradient rows into dense
  [units, hidden] gradients, weighted by its share of the users (the CD gradients are batch
  means, so the weighted sum is the global batch's gradient);
* the replicas all-reduce (SUM) those gradients explicitly, and the same dense SGD update with
  momentum and weight decay is applied to every copy of the variables.

The random numbers of a step are drawn for the whole global batch from a stateless seed (the
run's seed and the update count) and each replica reads its rows: replicas draw different
numbers, runs are reproducible, and the same global batch gives the same update whatever the
number of replicas.

The cost: every update moves every row of the weights (and all-reduces them), the work of
users x movies that the single-device path (`SparseCDTrainer.train_step`, lazy and sparse)
avoids. The weights equal those of the single-device update after its `flush`.
"""

import itertools

import tensorflow as tf

from pipelines.distribute import replica_share
from rbm_tf.rbm import SparseRatings


class ReplicatedCDStep:
    """`step(rows, movies, values, batch_size, offset)`: one update of `trainer` (a
    `SparseCDTrainer` whose variables were made in `strategy.scope()`) from a global batch
    given as `SparseCDTrainer.train_step` takes it (rows sorted)."""

    def __init__(self, trainer, strategy, seed=0):
        self.trainer = trainer
        self.strategy = strategy
        self.seed = int(seed)

    def __call__(self, rows, movies, values, batch_size, offset=None):
        reduced = self.strategy.run(self.replica_gradients, args=(rows, movies, values, batch_size, offset))
        # all-reduced: every replica holds the same numbers
        gradients = [self.strategy.experimental_local_results(value)[0] for value in reduced]
        self.apply(batch_size, *gradients)

    def replica_gradients(self, rows, movies, values, batch_size, offset):
        """This replica's share of the global batch's gradients, all-reduced (SUM)."""
        trainer, rbm = self.trainer, self.trainer.rbm
        context = tf.distribute.get_replica_context()
        start, end = replica_share(batch_size, context.replica_id_in_sync_group,
                                   context.num_replicas_in_sync)
        bounds = tf.searchsorted(rows, tf.stack([start, end]))
        first, last = bounds[0], bounds[1]
        local_batch = end - start
        ratings, rated = SparseRatings.of_movies(rows[first:last] - start, movies[first:last],
                                                 values[first:last], local_batch)
        units = tf.reshape(rbm.unit_indices(rated), [-1])
        shape = tf.stack([tf.size(rated), rbm.units_per_visible])
        weights = tf.reshape(tf.gather(rbm.weights, units), tf.concat([shape, [rbm.num_hidden]], 0))
        visible_bias = tf.reshape(tf.gather(rbm.visible_bias, units), shape)
        chain_start = None
        if trainer.persistent_hidden is not None:
            chain_start = trainer.persistent_hidden[start:end]
        weight_gradient, visible_bias_gradient, hidden_bias_gradient, chain_end = \
            rbm.sparse_contrastive_divergence(
                ratings, weights, visible_bias, k=trainer.config.k, chain_start=chain_start,
                mean_field_visible=trainer.config.mean_field_visible,
                offset=None if offset is None else offset[start:end],
                uniform=self.uniform(batch_size, tf.size(rows), start, end, first, last))
        share = tf.cast(local_batch, tf.float32) / tf.cast(batch_size, tf.float32)
        num_units = rbm.num_visible * rbm.units_per_visible
        dense_weights = tf.math.unsorted_segment_sum(
            tf.reshape(weight_gradient, [-1, rbm.num_hidden]), units, num_units) * share
        dense_visible_bias = tf.math.unsorted_segment_sum(
            tf.reshape(visible_bias_gradient, [-1]), units, num_units) * share
        # a replica without users (a small last batch) adds nothing, not the nan of an empty mean
        hidden_bias_gradient = tf.where(local_batch > 0, hidden_bias_gradient * share, 0.0)
        gradients = [dense_weights, dense_visible_bias, hidden_bias_gradient]
        if chain_start is not None:
            # each replica's chain ends in its own rows of the batch; the sum puts them together
            gradients.append(tf.pad(chain_end, [[start, batch_size - end], [0, 0]]))
        return context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)

    def uniform(self, batch_size, num_ratings, start, end, first, last):
        """Uniform numbers for a replica's samples: drawn for the global batch, its rows read."""
        num_hidden = self.trainer.rbm.num_hidden
        step = self.trainer.weights.updates.read_value()
        draws = itertools.count()

        def draw(shape):
            seed = tf.stack([tf.constant(self.seed * 1000003 + next(draws), tf.int64), step])
            if shape.shape[0] == 2:  # the hidden units of the replica's users
                return tf.random.stateless_uniform(tf.stack([batch_size, num_hidden]), seed)[start:end]
            return tf.random.stateless_uniform(tf.reshape(num_ratings, [1]), seed)[first:last]

        return draw

    def apply(self, batch_size, weight_gradient, visible_bias_gradient, hidden_bias_gradient,
              chain_end=None):
        trainer, config = self.trainer, self.trainer.config
        trainer.weights.apply_dense(weight_gradient)
        trainer.visible_bias.apply_dense(visible_bias_gradient)
        trainer.hidden_velocity.assign(config.momentum * trainer.hidden_velocity
                                       - config.learning_rate * hidden_bias_gradient)
        trainer.rbm.hidden_bias.assign_add(trainer.hidden_velocity)
        if chain_end is not None:
            # the whole variable: a sliced assign would update only one copy of a mirrored one
            chains = trainer.persistent_hidden
            chains.assign(tf.concat([chain_end, chains[batch_size:]], 0))
