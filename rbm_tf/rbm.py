"""A Restricted Boltzmann Machine with Bernoulli hidden units, as a `tf.Module`.

Visible data come as a float tensor ``visible`` of shape [batch, num_visible] with values in
[0, 1] (0/1 ratings, or pixel intensities read as probabilities), and an optional boolean
``mask`` of the same shape that is False where a value is missing. A missing unit never
contributes: its stored value is replaced by `tf.where` before any arithmetic, so whatever
is stored there (the pipelines use -1) changes no hidden activation, sample, gradient or
free energy.

Two layouts of visible units:

* ``"single"``: one Bernoulli unit per visible value (the classic RBM; the only layout for
  images).
* ``"pair"``: two units per value, "1" and "0", forming a two-way softmax (Salakhutdinov,
  Mnih & Hinton 2007). With one unit a 0 adds nothing to ``v @ W`` and so looks exactly
  like a missing value; with a pair, a known 0 (a dislike) reaches the hidden layer.

Sparse ratings (a recommender's) can also come as what they are, a list of observed values
(`SparseRatings`). The ``sparse_*`` methods then read only the weight rows of the movies a
batch rated, and their products are sparse-dense matmuls over the observed values, so their
work follows the number of ratings, not cases x visible values; a missing value is simply
absent, which is exactly what the mask does on the dense path. A chain of several Gibbs steps
on a sparse batch lays those rows out once, case by case (`SparseRatings.chunks`), and each
step then reads only the places the cases rated.
"""

import dataclasses
import functools

import tensorflow as tf

from rbm_tf.config import VISIBLE_LAYOUTS

# see SparseRatings.product_is_cheaper
PRODUCT_RATIO = 64
# the places of a chunk (see SparseRatings.chunks); a chain reads by chunks where its [batch,
# columns] products do more than CHUNK_RATIO times the work, and has at least CHUNK_MIN_STEPS
# Gibbs steps (see SparseRatings.chunks_are_cheaper)
CHUNK = 32
CHUNK_RATIO = 4
CHUNK_MIN_STEPS = 2


@dataclasses.dataclass(frozen=True)
class SparseRatings:
    """Observed values of a batch: value ``values[i]`` of case ``rows[i]`` sits in column
    ``columns[i]`` of some rows of parameters (e.g. the movies a batch rated, `tf.unique`),
    ``num_columns`` of them; each [n] tensor except the two counts."""

    rows: tf.Tensor
    columns: tf.Tensor
    values: tf.Tensor
    batch_size: tf.Tensor
    num_columns: tf.Tensor

    def __post_init__(self):
        # read where the ratings are made: read first inside a tf.cond branch, the cached
        # tensor would belong to that branch's graph and fail anywhere else
        self.product_is_cheaper  # noqa: B018

    @classmethod
    def of_movies(cls, rows, movies, values, batch_size):
        """Ratings whose columns are the distinct movies rated; returns (ratings, movies)."""
        movies, columns = tf.unique(tf.cast(movies, tf.int32))
        return cls(tf.cast(rows, tf.int32), columns, tf.cast(values, tf.float32),
                   tf.cast(batch_size, tf.int32), tf.size(movies)), movies

    def times(self, values, matrix):
        """The [batch, columns] matrix holding `values` [n] at the observed places (0
        elsewhere) times `matrix` [columns, h]: [batch, h], never built densely. ``rows``
        must be sorted (a ragged batch's are)."""
        product = tf.math.segment_sum(values[:, tf.newaxis] * tf.gather(matrix, self.columns), self.rows)
        # segment_sum stops at the last case that has a value
        return tf.pad(product, [[0, self.batch_size - tf.shape(product)[0]], [0, 0]])

    @functools.cached_property
    def product_is_cheaper(self):
        """Whether a [batch, columns] matrix product costs less than work per value.

        One dot product (or one scattered row) per value is batch x columns / values times
        fewer operations than a product over every case and column of the batch, but gathers
        and scatters run far slower per operation than a matrix product: measured on CPU
        (ML-100K batches of 100 users, 200 hidden units), a per-value dot product took about
        5 ns per value and hidden unit, the product 0.02-0.04 ns per case, column and hidden
        unit. So the product is used while it does at most `PRODUCT_RATIO` times the work:
        always for batches of up to that many cases (a batch's columns never outnumber its
        values). Its cost follows batch size x values, never the catalogue."""
        return (tf.cast(self.batch_size, tf.int64) * tf.cast(self.num_columns, tf.int64)
                <= PRODUCT_RATIO * tf.cast(tf.size(self.rows), tf.int64))

    # -- chunks: a Gibbs chain's reads at the observed places only ---------------------------

    @functools.cached_property
    def chunks(self):
        """Each case's values in order, cut in chunks of `CHUNK` places, each chunk one case's
        and every case at least one: (place [n], case [chunks], value [chunks, CHUNK]), each
        value's place in the flat [chunks x CHUNK] layout, each chunk's case, and the value at
        each place (n where none is: a chunk's tail). ``rows`` must be sorted (a ragged batch's
        are)."""
        counts = tf.math.unsorted_segment_sum(tf.ones_like(self.rows), self.rows, self.batch_size)
        first_value = tf.cumsum(counts, exclusive=True)
        # at least one a case, so that a segment sum over the chunks' cases has every case
        per_case = tf.maximum((counts + CHUNK - 1) // CHUNK, 1)
        first_chunk = tf.cumsum(per_case, exclusive=True)
        position = tf.range(tf.size(self.rows)) - tf.gather(first_value, self.rows)
        place = (tf.gather(first_chunk, self.rows) + position // CHUNK) * CHUNK + position % CHUNK
        case = tf.repeat(tf.range(self.batch_size), per_case)
        position = ((tf.range(tf.size(case)) - tf.gather(first_chunk, case))[:, tf.newaxis] * CHUNK
                    + tf.range(CHUNK))
        value = tf.where(position < tf.gather(counts, case)[:, tf.newaxis],
                         tf.gather(first_value, case)[:, tf.newaxis] + position, tf.size(self.rows))
        return place, case, value

    @functools.cached_property
    def chunks_are_cheaper(self):
        """Whether a Gibbs chain reads the observed places by `chunks` (`chunked`: a batched
        matrix-vector product a read) rather than by [batch, columns] products and a
        gather-and-sum.

        A chunk's matrix-vector product reads only the places its case rated (and a chunk's
        unused tail) but runs slower per operation than a matrix product: measured on CPU
        (ML-100K batches of 100 users, 200 hidden units, 5.6% of a batch's [users, movies
        rated] observed), reading a batch's places took 0.13 ms by chunks against 0.41 ms by
        the product (0.25 ms by the gather-and-sum), about 0.07 ns per place and hidden unit
        against 0.02 per case, column and hidden unit. So chunks are read where the product
        does more than `CHUNK_RATIO` times the work. Laying them out costs about what a step
        saves: a chain of fewer than `CHUNK_MIN_STEPS` steps never does."""
        return (tf.cast(self.batch_size, tf.int64) * tf.cast(self.num_columns, tf.int64)
                > CHUNK_RATIO * tf.cast(tf.size(self.rows), tf.int64))

    def to_chunks(self, values, fill=0.0):
        """`values` [n, ...] in the `chunks` layout: [chunks, CHUNK, ...], ``fill`` where none is."""
        padding = [[0, 1]] + [[0, 0]] * (values.shape.rank - 1)
        return tf.gather(tf.pad(values, padding, constant_values=fill), self.chunks[2])

    def from_chunks(self, chunked_values):
        """The inverse of `to_chunks`: [n]."""
        return tf.gather(tf.reshape(chunked_values, [-1]), self.chunks[0])

    def chunked(self, matrix):
        """The row of `matrix` [columns, h] at each observed place, in the `chunks` layout:
        [chunks, CHUNK, h], zeros where no value is. Gathered once, it serves every read of a
        Gibbs chain (`RBM.sparse_contrastive_divergence`)."""
        columns = self.to_chunks(self.columns, self.num_columns)
        return tf.gather(tf.concat([matrix, tf.zeros_like(matrix[:1])], 0), columns)

    def dot(self, left, right):
        """left [batch, h] . right [columns, h] at each observed place: [n]."""
        def by_product():
            product = tf.matmul(left, right, transpose_b=True)
            return tf.gather(tf.reshape(product, [-1]), self.rows * self.num_columns + self.columns)

        def by_value():
            return tf.reduce_sum(tf.gather(left, self.rows) * tf.gather(right, self.columns), -1)

        return tf.cond(self.product_is_cheaper, by_product, by_value)

    def transpose_times(self, values, matrix):
        """The transpose of the [batch, columns] matrix holding `values` [n] at the observed
        places, times `matrix` [batch, h]: [columns, h], each column's sum of its values
        times their cases' rows of `matrix`."""
        def by_product():  # (a segment sum spreads the values several times faster than scatter_nd)
            spread = tf.math.unsorted_segment_sum(values, self.rows * self.num_columns + self.columns,
                                                  self.batch_size * self.num_columns)
            return tf.matmul(tf.reshape(spread, tf.stack([self.batch_size, self.num_columns])), matrix,
                             transpose_a=True)

        def by_value():
            return tf.math.unsorted_segment_sum(values[:, tf.newaxis] * tf.gather(matrix, self.rows),
                                                self.columns, self.num_columns)

        return tf.cond(self.product_is_cheaper, by_product, by_value)


class VisibleUnits:
    """What the binary and the rating RBM share: ``units_per_visible`` units of each visible
    value, rows ``value * units_per_visible ...`` of ``weights`` [units, hidden] and
    ``visible_bias`` [units], a ``hidden_bias`` and a ``generator``; the interface that
    `rbm_tf.sparse_training.SparseCDTrainer` trains either through."""

    @property
    def variables_for_training(self):
        """The variables CD updates, in the order `contrastive_divergence` returns gradients."""
        return [self.weights, self.visible_bias, self.hidden_bias]

    def unit_indices(self, movies):
        """The visible units of each value in `movies`: [n, units] (a pair: "1" first, then "0")."""
        movies = tf.cast(movies, tf.int32)[:, tf.newaxis]
        return movies * self.units_per_visible + tf.range(self.units_per_visible)

    def rows_of(self, movies):
        """The weight rows [n, units, hidden] and visible biases [n, units] of `movies` [n]."""
        units = self.unit_indices(movies)
        shape = tf.stack([tf.shape(movies)[0], self.units_per_visible])
        return (tf.reshape(tf.gather(self.weights, tf.reshape(units, [-1])),
                           tf.concat([shape, [self.num_hidden]], 0)),
                tf.reshape(tf.gather(self.visible_bias, tf.reshape(units, [-1])), shape))

    def _seeded_uniform(self, count):
        """A `uniform(shape)` for `count` draws, each from its own seed of one draw of the
        generator: a stateless op a draw, which costs several times less than a stateful one.
        The numbers are `tf.random.stateless_uniform`'s on [0, 1), read by its kernel alone
        (the wrapper's scaling to [minval, maxval) would add two operations a draw)."""
        seeds = self.generator.make_seeds(count)
        calls = iter(range(count))

        def uniform(shape):
            key, counter, algorithm = tf.raw_ops.StatelessRandomGetKeyCounterAlg(seed=seeds[:, next(calls)])
            return tf.raw_ops.StatelessRandomUniformV2(shape=shape, key=key, counter=counter, alg=algorithm)

        return uniform

    def _bernoulli(self, probability, uniform=None):
        uniform = uniform or self.generator.uniform
        return tf.cast(uniform(tf.shape(probability)) < probability, tf.float32)


class RBM(VisibleUnits, tf.Module):
    """Restricted Boltzmann Machine: weights, visible and hidden biases, Gibbs sampling.

    Args:
      num_visible: number of visible values (movies, or pixels).
      num_hidden: number of Bernoulli hidden units.
      visible_layout: "single" or "pair" (see the module docstring).
      weight_stddev: standard deviation of the initial N(0, s^2) weights.
      seed: seed of the random generator used for every sample the model draws.
    """

    def __init__(self, num_visible, num_hidden, visible_layout="pair", weight_stddev=0.01,
                 seed=0, name=None):
        super().__init__(name=name)
        if visible_layout not in VISIBLE_LAYOUTS:
            raise ValueError(f"visible_layout must be one of {VISIBLE_LAYOUTS}, got {visible_layout!r}")
        if num_visible < 1 or num_hidden < 1:
            raise ValueError(f"an RBM needs at least one visible and one hidden unit, "
                             f"got {num_visible} and {num_hidden}")
        self.num_visible = int(num_visible)
        self.num_hidden = int(num_hidden)
        self.visible_layout = visible_layout
        self.units_per_visible = 2 if visible_layout == "pair" else 1
        num_units = self.num_visible * self.units_per_visible
        self.generator = tf.random.Generator.from_seed(seed)
        self.weights = tf.Variable(
            self.generator.normal([num_units, self.num_hidden], stddev=weight_stddev),
            name="weights")
        self.visible_bias = tf.Variable(tf.zeros([num_units]), name="visible_bias")
        self.hidden_bias = tf.Variable(tf.zeros([self.num_hidden]), name="hidden_bias")

    def get_config(self):
        """The constructor arguments that fix the variables' shapes."""
        return {"num_visible": self.num_visible, "num_hidden": self.num_hidden,
                "visible_layout": self.visible_layout}

    def set_visible_bias_from_rates(self, rates):
        """Start each visible bias at the log-odds of its value's mean (Hinton's practical guide).

        ``rates``: [num_visible] mean of each visible value over the training data; clipped
        away from 0 and 1 so that a value never (or always) seen gets a finite bias.
        """
        rates = tf.clip_by_value(tf.cast(rates, tf.float32), 1e-3, 1.0 - 1e-3)
        if self.visible_layout == "single":
            bias = tf.math.log(rates) - tf.math.log1p(-rates)
        else:
            # softmax over (one, zero): p(one) = exp(a1) / (exp(a1) + exp(a0)) = rate
            bias = tf.reshape(tf.stack([tf.math.log(rates), tf.math.log1p(-rates)], axis=-1), [-1])
        self.visible_bias.assign(bias)

    # -- the units ---------------------------------------------------------------------------

    def visible_units(self, visible, mask=None):
        """Visible values as unit activations [batch, num_visible * units], 0 where missing."""
        visible = tf.convert_to_tensor(visible, tf.float32)
        if mask is not None:
            visible = tf.where(mask, visible, tf.zeros_like(visible))
        if self.visible_layout == "single":
            return visible
        units = tf.stack([visible, 1.0 - visible], axis=-1)
        if mask is not None:
            units = tf.where(mask[..., tf.newaxis], units, tf.zeros_like(units))
        return tf.reshape(units, [-1, self.num_visible * 2])

    def hidden_probability(self, visible, mask=None):
        """p(h_j = 1 | v): [batch, num_hidden]."""
        units = self.visible_units(visible, mask)
        return tf.sigmoid(tf.matmul(units, self.weights) + self.hidden_bias)

    def visible_probability(self, hidden, offset=None):
        """p(v_i = 1 | h) for every visible value: [batch, num_visible].

        ``offset`` [batch], when given, is added to every value's log-odds of 1 in that case:
        a per-case visible bias (the recommender's user offset), 0 meaning none.
        """
        logits = tf.matmul(hidden, self.weights, transpose_b=True) + self.visible_bias
        if self.visible_layout == "pair":
            logits = tf.reshape(logits, [-1, self.num_visible, 2])
            logits = logits[..., 0] - logits[..., 1]
        if offset is not None:
            logits += offset[:, tf.newaxis]
        return tf.sigmoid(logits)

    def sample_hidden(self, visible, mask=None, uniform=None):
        """Hidden probabilities and a Bernoulli sample of them (``uniform(shape)``: the
        uniform numbers to sample with; default the model's generator)."""
        probability = self.hidden_probability(visible, mask)
        return probability, self._bernoulli(probability, uniform)

    def sample_visible(self, hidden, mask=None, visible=None, offset=None, uniform=None):
        """Visible probabilities and a sample; where ``mask`` is False the sample keeps ``visible``.

        With the pair layout a sample of the two-way softmax is one Bernoulli draw of "1".
        ``uniform`` as in `sample_hidden`.
        """
        probability = self.visible_probability(hidden, offset)
        sample = self._bernoulli(probability, uniform)
        if mask is not None:
            sample = tf.where(mask, sample, visible)
        return probability, sample

    def free_energy(self, visible, mask=None, offset=None):
        """F(v) = -a.v - o.sum_i v_i - sum_j softplus(b_j + (vW)_j), over observed units: [batch].

        ``offset`` [batch] is the per-case bias of `visible_probability` (default 0).
        """
        units = self.visible_units(visible, mask)
        visible_term = tf.linalg.matvec(units, self.visible_bias)
        if offset is not None:
            ones = units if self.visible_layout == "single" else units[:, 0::2]
            visible_term += offset * tf.reduce_sum(ones, axis=-1)
        hidden_term = tf.reduce_sum(
            tf.math.softplus(tf.matmul(units, self.weights) + self.hidden_bias), axis=-1)
        return -visible_term - hidden_term

    def reconstruct(self, visible, mask=None, offset=None):
        """Deterministic mean-field up-down pass: p(v = 1 | E[h | v]) for every visible value.

        This is the model's prediction (the like-probability of every movie from a user's known
        ratings): Bernoulli samples as predictions only add noise.
        """
        return self.visible_probability(self.hidden_probability(visible, mask), offset)

    # -- sparse ratings ------------------------------------------------------------------------

    def _value_form(self, weight_rows, bias_rows):
        """Rows as (base, slope, bias slope): a value v adds base + v slope to the hidden
        input, and its log-odds of 1 is h . slope + bias slope. For a pair, base is the "0"
        unit's row and slope the "1" row minus it; one unit has no base."""
        if self.visible_layout == "single":
            return None, weight_rows[:, 0], bias_rows[:, 0]
        return weight_rows[:, 1], weight_rows[:, 0] - weight_rows[:, 1], bias_rows[:, 0] - bias_rows[:, 1]

    def sparse_hidden_probability(self, ratings, weight_rows):
        """p(h | the observed values) [batch, hidden] of `SparseRatings` ``ratings`` (0/1
        values), whose ``columns`` index ``weight_rows`` [r, units, hidden] (see `rows_of`)."""
        return tf.sigmoid(self._binary_input(ratings, ratings.values, weight_rows) + self.hidden_bias)

    def _binary_input(self, ratings, values, weight_rows):
        """The hidden input of 0/1 values: the sum of the rows of the units they switch on,
        read by one fused gather-and-sum (tf.sparse.segment_sum) with nothing in between."""
        on = tf.cast(values, tf.float32) > 0.5
        if self.visible_layout == "pair":  # the "1" unit is row 2c, the "0" unit row 2c + 1
            table = tf.reshape(weight_rows, [-1, self.num_hidden])
            units = ratings.columns * 2 + tf.where(on, 0, 1)
        else:  # a 0 switches nothing on: it reads an appended row of zeros
            table = tf.concat([weight_rows[:, 0], tf.zeros([1, self.num_hidden])], 0)
            units = tf.where(on, ratings.columns, ratings.num_columns)
        return tf.sparse.segment_sum(table, units, ratings.rows, num_segments=ratings.batch_size)

    def _base_input(self, ratings, base):
        return 0.0 if base is None else ratings.times(tf.ones_like(ratings.values), base)

    def sparse_visible_probability(self, hidden, ratings, weight_rows, bias_rows, offset=None):
        """p(v = 1 | h) of each observed value of ``ratings`` [n] (``offset`` [batch] as in
        `visible_probability`)."""
        _, slope, bias_slope = self._value_form(weight_rows, bias_rows)
        return self._observed_probability(hidden, ratings, slope, bias_slope, offset)

    def _observed_probability(self, hidden, ratings, slope, bias_slope, offset):
        logits = ratings.dot(hidden, slope) + tf.gather(bias_slope, ratings.columns)
        if offset is not None:
            logits += tf.gather(offset, ratings.rows)
        return tf.sigmoid(logits)

    def visible_probability_of(self, hidden, movies, offset=None):
        """p(v = 1 | h) of the given movies [batch, len(movies)]: a slice of
        `visible_probability` that reads only those movies' weights."""
        _, slope, bias_slope = self._value_form(*self.rows_of(movies))
        logits = tf.matmul(hidden, slope, transpose_b=True) + bias_slope
        if offset is not None:
            logits += offset[:, tf.newaxis]
        return tf.sigmoid(logits)

    def _gibbs_chain(self, values, hidden_of, visible_of, k, chain_start, uniform):
        """(negative values, positive and negative hidden probabilities, last hidden sample) of
        a CD-k chain from `values`, given its two conditionals."""
        positive_hidden = hidden_of(values)
        # drawn even from a given chain start, so both paths draw the same hidden numbers
        hidden = self._bernoulli(positive_hidden, uniform)
        if chain_start is not None:
            hidden = chain_start
        negative_values, negative_hidden = values, positive_hidden
        for _ in range(k):
            negative_values = visible_of(hidden)
            negative_hidden = hidden_of(negative_values)
            hidden = self._bernoulli(negative_hidden, uniform)
        return negative_values, positive_hidden, negative_hidden, hidden

    def sparse_contrastive_divergence(self, ratings, weight_rows, bias_rows, k=1, chain_start=None,
                                      mean_field_visible=False, offset=None, uniform=None):
        """`contrastive_divergence` on observed values only: the same estimate, gathered.

        ``ratings``: `SparseRatings` whose columns index ``weight_rows`` [r, units, hidden] and
        ``bias_rows`` [r, units] (the rows of the movies rated in the batch). Returns
        (weight_gradient [r, units, hidden], visible_bias_gradient [r, units],
        hidden_bias_gradient [hidden], chain_end): the rows of the batch-averaged gradients
        that belong to those movies; every other row of the dense gradients is 0.

        ``uniform(shape)`` draws the uniform numbers of every sample, [batch, hidden] for the
        hidden units and [n] for the observed values (default: the model's generator).
        """
        values = tf.cast(ratings.values, tf.float32)
        scale = tf.cast(ratings.batch_size, tf.float32)
        base, slope, bias_slope = self._value_form(weight_rows, bias_rows)

        def hidden_input():
            """What the values' slopes add to in the hidden input: the bias and a pair's "0" rows."""
            return self._base_input(ratings, base) + self.hidden_bias

        def by_products():
            base_input = hidden_input() if mean_field_visible else None

            def hidden_of(values):
                if not mean_field_visible:  # samples are 0/1: the fused sum of their units' rows
                    return tf.sigmoid(self._binary_input(ratings, values, weight_rows) + self.hidden_bias)
                return tf.sigmoid(ratings.times(values, slope) + base_input)

            def visible_of(hidden):
                probability = self._observed_probability(hidden, ratings, slope, bias_slope, offset)
                return probability if mean_field_visible else self._bernoulli(probability, uniform)

            return self._gibbs_chain(values, hidden_of, visible_of, k, chain_start, uniform)

        def by_chunks():
            # every vector a column ([batch, hidden, 1], [chunks, CHUNK, 1]): each read is one
            # batched matrix product of the chunks with no reshaping around it
            chunked = ratings.chunked(slope)
            case = ratings.chunks[1]
            base_input = hidden_input()[..., tf.newaxis]
            visible_input = tf.gather(bias_slope, ratings.columns)
            if offset is not None:
                visible_input += tf.gather(offset, ratings.rows)
            # the data and the visible inputs laid out by one gather
            data, visible_input = tf.unstack(ratings.to_chunks(tf.stack([values, visible_input], 1))[
                ..., tf.newaxis], axis=2)
            if uniform is None:  # numbers of the shapes the chain draws, from seeds drawn once
                hidden_draw = self._seeded_uniform(2 * k + 1)
                places = tf.shape(data)

                def visible_draw():  # one for every place: one where no value is reads a zero row
                    return hidden_draw(places)
            else:  # the numbers of the products' draws: [batch, hidden], and [n] for the values
                def hidden_draw(shape):
                    return uniform(shape[:-1])[..., tf.newaxis]

                def visible_draw():
                    return ratings.to_chunks(uniform(tf.shape(values)), 1.0)[..., tf.newaxis]

            def hidden_of(values):
                return tf.sigmoid(tf.math.segment_sum(tf.matmul(chunked, values, adjoint_a=True), case)
                                  + base_input)

            def visible_of(hidden):
                probability = tf.sigmoid(tf.matmul(chunked, tf.gather(hidden, case)) + visible_input)
                if mean_field_visible:
                    return probability
                return tf.cast(visible_draw() < probability, tf.float32)

            start = None if chain_start is None else chain_start[..., tf.newaxis]
            chain = self._gibbs_chain(data, hidden_of, visible_of, k, start, hidden_draw)
            return (ratings.from_chunks(chain[0]),) + tuple(hidden[..., 0] for hidden in chain[1:])

        if k >= CHUNK_MIN_STEPS:
            chain = tf.cond(ratings.chunks_are_cheaper, by_chunks, by_products)
        else:  # laying the chunks out costs about what a step saves
            chain = by_products()
        negative_values, positive_hidden, negative_hidden, hidden = chain
        # d/dW of a "1" unit sums v h over its ratings, of a "0" unit (1 - v) h
        ones = ratings.transpose_times(values, positive_hidden) - \
            ratings.transpose_times(negative_values, negative_hidden)
        ones_bias = tf.math.unsorted_segment_sum(values - negative_values, ratings.columns,
                                                 tf.shape(weight_rows)[0])
        if self.visible_layout == "single":
            weight_gradient, visible_bias_gradient = ones[:, tf.newaxis], ones_bias[:, tf.newaxis]
        else:
            every = ratings.transpose_times(tf.ones_like(values), positive_hidden - negative_hidden)
            weight_gradient = tf.stack([ones, every - ones], axis=1)
            visible_bias_gradient = tf.stack([ones_bias, -ones_bias], axis=1)
        hidden_bias_gradient = -tf.reduce_mean(positive_hidden - negative_hidden, axis=0)
        return -weight_gradient / scale, -visible_bias_gradient / scale, hidden_bias_gradient, hidden

    # -- learning ----------------------------------------------------------------------------

    def contrastive_divergence(self, visible, mask=None, k=1, chain_start=None,
                               mean_field_visible=False, offset=None, uniform=None):
        """Gradients of the negative log-likelihood estimated by CD-k (or PCD), batch-averaged.

        The chain starts from a hidden sample given the data, or from ``chain_start`` (a hidden
        state [batch, num_hidden], for persistent CD). Visible units are sampled at each Gibbs
        step, or with ``mean_field_visible`` replaced by their probabilities (Hinton's practical
        guide for pixel intensities: less sampling noise in the negative statistics); missing
        ones stay missing. The statistics use hidden probabilities. ``offset`` is the per-case
        visible bias of `visible_probability`, a fixed input of the model (no gradient).
        ``uniform(shape)`` draws the uniform numbers of every sample, [batch, hidden] for the
        hidden units and [batch, num_visible] for the visible ones (default: the model's
        generator).

        Returns (gradients, chain_end): ``gradients`` is a list matching ``self.variables_for_
        training`` (weights, visible bias, hidden bias), signed for minimisation so an optimizer
        can apply them; ``chain_end`` is the last hidden sample (the next persistent state).
        """
        visible = tf.convert_to_tensor(visible, tf.float32)
        batch_size = tf.cast(tf.shape(visible)[0], tf.float32)
        positive_units = self.visible_units(visible, mask)
        positive_hidden, hidden = self.sample_hidden(visible, mask, uniform)
        if chain_start is not None:
            hidden = chain_start
        negative_visible = visible
        negative_hidden = positive_hidden
        for _ in range(k):
            if mean_field_visible:
                negative_visible = self.visible_probability(hidden, offset)
                if mask is not None:
                    negative_visible = tf.where(mask, negative_visible, visible)
            else:
                _, negative_visible = self.sample_visible(hidden, mask, visible, offset, uniform)
            negative_hidden, hidden = self.sample_hidden(negative_visible, mask, uniform)
        negative_units = self.visible_units(negative_visible, mask)
        weights_gradient = -(tf.matmul(positive_units, positive_hidden, transpose_a=True)
                             - tf.matmul(negative_units, negative_hidden, transpose_a=True)) / batch_size
        visible_bias_gradient = -tf.reduce_mean(positive_units - negative_units, axis=0)
        hidden_bias_gradient = -tf.reduce_mean(positive_hidden - negative_hidden, axis=0)
        return [weights_gradient, visible_bias_gradient, hidden_bias_gradient], hidden
