"""The rating RBM: a K-way softmax visible unit per movie (Salakhutdinov, Mnih & Hinton 2007).

Each movie a user rated is one visible unit with K states, the release's star levels (five
whole stars, or ten half stars); a movie the user did not rate has no unit at all. Hidden
units are Bernoulli. Ratings come as `SparseRatings` whose ``values`` are level indices
(0 .. K-1) and whose ``columns`` index the rows of the movies rated in the batch, so every
phase of contrastive divergence costs in proportion to the ratings, as for the binary RBM;
`rbm_tf.sparse_training.SparseCDTrainer` trains either.

The prediction for a movie is the expected rating under p(level | h) with h the hidden
probabilities given the user's ratings (a mean-field pass); the like-probability is the
probability of a level at or above the like threshold, comparable with the binary RBM's.
"""

import tensorflow as tf

from rbm_tf.rbm import SparseRatings
from rbm_tf.rbm import VisibleUnits


class RatingRBM(VisibleUnits, tf.Module):
    """Softmax visible units of `num_levels` states per movie, Bernoulli hidden units.

    Weights are [num_movies * num_levels, num_hidden]: the rows of movie m are m*K .. m*K+K-1,
    one per level. The interface is the binary RBM's sparse one (`VisibleUnits`, and
    `sparse_contrastive_divergence`).
    """

    def __init__(self, num_movies, num_levels, num_hidden, weight_stddev=0.01, seed=0, name=None):
        super().__init__(name=name)
        if num_movies < 1 or num_hidden < 1 or num_levels < 2:
            raise ValueError(f"a rating RBM needs movies, hidden units and at least two levels, got "
                             f"{num_movies}, {num_hidden} and {num_levels}")
        self.num_visible = int(num_movies)
        self.num_hidden = int(num_hidden)
        self.units_per_visible = int(num_levels)
        self.generator = tf.random.Generator.from_seed(seed)
        self.weights = tf.Variable(self.generator.normal(
            [self.num_visible * self.units_per_visible, self.num_hidden], stddev=weight_stddev),
            name="weights")
        self.visible_bias = tf.Variable(tf.zeros([self.num_visible * self.units_per_visible]),
                                        name="visible_bias")
        self.hidden_bias = tf.Variable(tf.zeros([self.num_hidden]), name="hidden_bias")

    def set_visible_bias_from_counts(self, counts):
        """Each movie's level biases at the log of its smoothed level frequencies [movies, K]."""
        counts = tf.cast(counts, tf.float32) + 1.0
        self.visible_bias.assign(tf.reshape(tf.math.log(counts / tf.reduce_sum(counts, -1, keepdims=True)),
                                            [-1]))

    # -- the units, on sparse ratings ------------------------------------------------------------

    def _level_rows(self, ratings, levels):
        """Each rating's (column, level) as a row of [columns * K, ...] tables."""
        return ratings.columns * self.units_per_visible + tf.cast(levels, tf.int32)

    def sparse_hidden_probability(self, ratings, weight_rows):
        """p(h | the observed levels ``ratings.values``) [batch, hidden]."""
        table = tf.reshape(weight_rows, [-1, self.num_hidden])
        rows = tf.gather(table, self._level_rows(ratings, ratings.values))
        total = tf.math.segment_sum(rows, ratings.rows)
        total = tf.pad(total, [[0, ratings.batch_size - tf.shape(total)[0]], [0, 0]])
        return tf.sigmoid(total + self.hidden_bias)

    def level_logits(self, hidden, ratings, weight_rows, bias_rows):
        """Log-odds (unnormalised) of every level of each observed movie: [n, K]."""
        logits = tf.einsum("nh,nkh->nk", tf.gather(hidden, ratings.rows),
                           tf.gather(weight_rows, ratings.columns))
        return logits + tf.gather(bias_rows, ratings.columns)

    def _sample_levels(self, logits):
        # Gumbel-max: a categorical draw from the model's own generator
        gumbel = -tf.math.log(-tf.math.log(self.generator.uniform(tf.shape(logits), 1e-12, 1.0)))
        return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)

    def sparse_contrastive_divergence(self, ratings, weight_rows, bias_rows, k=1, chain_start=None,
                                      mean_field_visible=False, offset=None):
        """CD-k on the observed movies; the binary RBM's contract (see
        `RBM.sparse_contrastive_divergence`). ``mean_field_visible`` and ``offset`` are not
        used: a softmax unit is sampled, and the levels carry each user's generosity."""
        del mean_field_visible, offset
        scale = tf.cast(ratings.batch_size, tf.float32)
        num_rows = ratings.num_columns * self.units_per_visible
        levels = tf.cast(ratings.values, tf.int32)
        positive_hidden = self.sparse_hidden_probability(ratings, weight_rows)
        hidden = self._bernoulli(positive_hidden)
        if chain_start is not None:
            hidden = chain_start
        negative_levels, negative_hidden = levels, positive_hidden
        for _ in range(k):
            negative_levels = self._sample_levels(self.level_logits(hidden, ratings, weight_rows, bias_rows))
            negative_hidden = self.sparse_hidden_probability(
                SparseRatings(ratings.rows, ratings.columns, negative_levels, ratings.batch_size,
                              ratings.num_columns), weight_rows)
            hidden = self._bernoulli(negative_hidden)
        positive_rows = self._level_rows(ratings, levels)
        negative_rows = self._level_rows(ratings, negative_levels)
        weight_gradient = (
            tf.math.unsorted_segment_sum(tf.gather(positive_hidden, ratings.rows), positive_rows, num_rows)
            - tf.math.unsorted_segment_sum(tf.gather(negative_hidden, ratings.rows), negative_rows, num_rows))
        ones = tf.ones_like(positive_rows, tf.float32)
        bias_gradient = (tf.math.unsorted_segment_sum(ones, positive_rows, num_rows)
                         - tf.math.unsorted_segment_sum(ones, negative_rows, num_rows))
        shape = tf.stack([ratings.num_columns, self.units_per_visible])
        return (-tf.reshape(weight_gradient, tf.concat([shape, [self.num_hidden]], 0)) / scale,
                -tf.reshape(bias_gradient, shape) / scale,
                -tf.reduce_mean(positive_hidden - negative_hidden, axis=0), hidden)

    # -- dense, for serving ----------------------------------------------------------------------

    def level_probability(self, hidden):
        """p(level | h) of every movie: [batch, movies, K]."""
        logits = tf.reshape(tf.matmul(hidden, self.weights, transpose_b=True) + self.visible_bias,
                            [-1, self.num_visible, self.units_per_visible])
        return tf.nn.softmax(logits)
