"""I-AutoRec (Sedhain, Menon, Sanner & Xie 2015, "AutoRec: Autoencoders Meet Collaborative
Filtering"): an autoencoder whose cases are movies.

Each movie is the vector of its star ratings by the training users (0 where a user did not
rate it). The network reconstructs it through `hidden` sigmoid units with an identity output,
and learns from the squared error on the *observed* ratings only, with an L2 penalty on the
weights. With `biases` (the default) its targets are the ratings less the user + movie biases
model of `pipelines.rating_eval` (mean + b_user + b_movie, fitted on the training ratings),
while its inputs stay the star ratings. User u's predicted rating of movie i is entry u of
movie i's reconstruction plus that baseline:
``codes[i] . V[:, u] + c[u] + mean + b_user[u] + b_movie[i]``, where codes are the hidden
units of every movie.

A user never seen in training has no decoder column: `AutoRecRecommender` fits one to their
ratings by ridge regression on the movies' codes (the "fold-in"), in its dual form: one
linear system per user, as large as the user's number of ratings.

    model = AutoRecRecommender(data.num_movies, data.train.num_users)
    model.fit(data.train, validation_data=data.validation)
    model.evaluate(data.test)                  # rmse, mae
    model.recommend(stars, k=10, user_id=42)   # any user: their star ratings, 0 = not rated
"""

import keras
import numpy as np
import tensorflow as tf

from autoencoders_tf.rec_base import KerasRecommender
from autoencoders_tf.rec_config import AutoRecConfig
from pipelines.rating_eval import RatingBiases
from pipelines.rec_serving import RatingServing
from pipelines.rating_parts import rating_part

# the fold-in's bias feature: its penalty is fold_in_l2 / FOLD_IN_BIAS^2. Both were chosen on
# ML-100K u1's held-out validation users (RMSE 0.899, against 0.997 with a bias feature of 1
# and fold_in_l2 1; benchmarks/recommenders.py's strong generalisation)
FOLD_IN_BIAS = 30.0


class ObservedRMSE(keras.metrics.Metric):
    """Root mean squared error over the observed entries of every batch seen."""

    def __init__(self, name="rmse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, squared_error_sum, num_observed):
        self.total.assign_add(tf.cast(squared_error_sum, self.dtype))
        self.count.assign_add(tf.cast(num_observed, self.dtype))

    def result(self):
        return tf.sqrt(tf.math.divide_no_nan(self.total, self.count))


@keras.saving.register_keras_serializable(package="autoencoders_tf")
class AutoRec(keras.Model):
    """The I-AutoRec network over vectors of `num_users` ratings (0 = not observed).

    ``loss`` is the mean squared error over a batch's observed ratings plus
    (l2 / 2) (|W|^2 + |V|^2) of the encoder and decoder weights; ``rmse`` is over the observed
    ratings of every batch of the epoch. A batch is ``inputs`` (the same vectors are the
    targets), ``(inputs, targets)`` (a target of 0 is not observed) or
    ``(inputs, targets, observed)``.
    """

    def __init__(self, num_users, hidden=500, l2=1e-3, dropout=0.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_users = int(num_users)
        self.hidden = int(hidden)
        self.l2 = float(l2)
        self.dropout = float(dropout)
        self.seed = int(seed)
        self.input_dropout = keras.layers.Dropout(self.dropout, seed=seed)
        self.encoder = keras.layers.Dense(self.hidden, activation="sigmoid", name="encoder",
                                          kernel_initializer=keras.initializers.GlorotUniform(seed))
        self.decoder = keras.layers.Dense(self.num_users, name="decoder",
                                          kernel_initializer=keras.initializers.GlorotUniform(seed + 1))
        self.encoder.build((None, self.num_users))
        self.decoder.build((None, self.hidden))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.rmse_tracker = ObservedRMSE()
        self.built = True

    def encode(self, item_ratings, training=False):
        """The hidden units (codes) of movies: [movies, hidden]."""
        return self.encoder(self.input_dropout(item_ratings, training=training), training=training)

    def call(self, item_ratings, training=False):
        """The reconstruction [movies, num_users] of movies' rating vectors [movies, num_users]."""
        return self.decoder(self.encode(item_ratings, training=training), training=training)

    def compute_losses(self, inputs, targets, observed=None, training=False):
        """{"loss", "squared_error_sum", "num_observed"}; `observed` (default: targets != 0)
        says which target entries count: every other entry is ignored, whatever its value."""
        observed = tf.cast(tf.not_equal(targets, 0.0) if observed is None else observed, tf.float32)
        error = tf.where(observed > 0, self(inputs, training=training) - targets, 0.0)
        squared_error_sum = tf.reduce_sum(tf.square(error))
        num_observed = tf.reduce_sum(observed)
        penalty = 0.5 * self.l2 * (tf.reduce_sum(tf.square(self.encoder.kernel))
                                   + tf.reduce_sum(tf.square(self.decoder.kernel)))
        return {"loss": squared_error_sum / tf.maximum(num_observed, 1.0) + penalty,
                "squared_error_sum": squared_error_sum, "num_observed": num_observed}

    @staticmethod
    def _split(data):
        """(inputs, targets, observed or None) of a batch: inputs, (inputs, targets) or
        (inputs, targets, observed)."""
        if not isinstance(data, (tuple, list)):
            return data, data, None
        return (tuple(data) + (None,))[:3]

    def train_step(self, data):
        inputs, targets, observed = self._split(data)
        with tf.GradientTape() as tape:
            losses = self.compute_losses(inputs, targets, observed, training=True)
        gradients = tape.gradient(losses["loss"], self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._track(losses)

    def test_step(self, data):
        inputs, targets, observed = self._split(data)
        return self._track(self.compute_losses(inputs, targets, observed))

    def _track(self, losses):
        self.loss_tracker.update_state(losses["loss"])
        self.rmse_tracker.update_state(losses["squared_error_sum"], losses["num_observed"])
        return {tracker.name: tracker.result() for tracker in self.metrics}

    @property
    def metrics(self):
        return [self.loss_tracker, self.rmse_tracker]

    def get_config(self):
        return {"num_users": self.num_users, "hidden": self.hidden, "l2": self.l2,
                "dropout": self.dropout, "seed": self.seed, "name": self.name}


def item_vectors(part, num_users):
    """(positions, ratings) ragged by movie: the part's input ratings as movie rows over the
    part's users (position r is the part's r-th user)."""
    part = rating_part(part)
    order = np.argsort(part.inputs.movies, kind="stable")
    rows = part.inputs.movies[order].astype(np.int64)
    users = part.inputs.row_of_entries()[order]
    assert part.num_users == num_users
    ragged = lambda values: tf.RaggedTensor.from_value_rowids(values, rows, nrows=part.num_movies)
    return ragged(tf.constant(users, tf.int64)), ragged(tf.constant(part.inputs.ratings[order]))


def densify_rows(positions, ratings, rows, width):
    """Dense [len(rows), width] of the ragged rows `rows`."""
    taken_positions, taken_ratings = tf.gather(positions, rows), tf.gather(ratings, rows)
    indices = tf.stack([taken_positions.value_rowids(), taken_positions.flat_values], axis=1)
    return tf.scatter_nd(indices, taken_ratings.flat_values,
                         tf.stack([tf.shape(rows, tf.int64)[0], tf.cast(width, tf.int64)]))


class AutoRecRecommender(KerasRecommender):
    """I-AutoRec as a recommender: fit on a training part, predict anyone's ratings, export.

    Args:
      num_movies: the catalogue's width; num_users: the training part's number of users.
      config: an `AutoRecConfig`, or its fields as keyword arguments.
    """

    predicts_ratings = True
    model_name = "autorec"
    config_class = AutoRecConfig

    def __init__(self, num_movies, num_users, config=None, movie_ids=None, movie_titles=None,
                 like_threshold=3.0, **settings):
        self.num_users = int(num_users)
        super().__init__(num_movies, config, movie_ids, movie_titles, like_threshold, **settings)
        # what prediction needs besides the weights: set by fit, kept in checkpoints and exports
        self.user_ids = tf.Variable(tf.zeros([self.num_users], tf.int64), trainable=False, name="user_ids")
        self.codes = tf.Variable(tf.zeros([self.num_movies, self.config.hidden]), trainable=False,
                                 name="codes")
        self.mean = tf.Variable(0.0, trainable=False, name="mean")
        self.scale = tf.Variable([1.0, 5.0], trainable=False, name="scale")
        # the biases model the network's targets are relative to (zeros without `biases`)
        self.user_bias = tf.Variable(tf.zeros([self.num_users]), trainable=False, name="user_bias")
        self.movie_bias = tf.Variable(tf.zeros([self.num_movies]), trainable=False, name="movie_bias")
        self._items = None

    def build_network(self):
        config = self.config
        return AutoRec(self.num_users, config.hidden, config.l2, config.dropout, config.seed)

    def trackables(self):
        return {**super().trackables(), "user_ids": self.user_ids, "codes": self.codes,
                "mean": self.mean, "scale": self.scale, "user_bias": self.user_bias,
                "movie_bias": self.movie_bias}

    # -- training ----------------------------------------------------------------------------

    def training_dataset(self, train, shuffle_seed):
        """Keeps what prediction needs of `train`; its movies' rating vectors, shuffled."""
        train = rating_part(train)
        if train.num_users != self.num_users or train.num_movies != self.num_movies:
            raise ValueError(f"the model was built for {self.num_users} users and {self.num_movies} "
                             f"movies; the training part has {train.num_users} and {train.num_movies}")
        self.user_ids.assign(train.user_ids)
        self.mean.assign(float(train.inputs.ratings.mean()))
        self.scale.assign(train.rating_scale())
        if self.config.biases:
            biases = RatingBiases(train, self.config.bias_l2)
            self.user_bias.assign(biases.training_user_bias)
            self.movie_bias.assign(biases.movie_bias)
        self._items = item_vectors(train, self.num_users)
        return self.item_dataset(shuffle_seed)

    @property
    def offset(self):
        """What the network's values are relative to: the mean training rating when
        `center`, so that a missing 0 means "as usual" rather than "far below 1 star"."""
        return self.mean if self.config.center else tf.constant(0.0)

    @property
    def baseline_mean(self):
        """The constant part of what the network's targets are relative to."""
        return self.mean if self.config.biases else self.offset

    def item_dataset(self, shuffle_seed=None):
        """Batches (values, targets, observed) of movies: [batch, num_users] ratings less the
        offset (0 where not rated), the ratings less the baseline (the biases model with
        `biases`, else the offset), and whether each is rated."""
        positions, ratings = self._items
        dataset = tf.data.Dataset.range(self.num_movies)
        if shuffle_seed is not None:
            dataset = dataset.shuffle(self.num_movies, seed=shuffle_seed, reshuffle_each_iteration=True)

        def batch_of(rows):
            stars = densify_rows(positions, ratings, rows, self.num_users)
            observed = tf.not_equal(stars, 0.0)
            values = tf.where(observed, stars - self.offset, 0.0)
            baseline = (self.baseline_mean + self.user_bias[tf.newaxis]
                        + tf.gather(self.movie_bias, rows)[:, tf.newaxis])
            return values, tf.where(observed, stars - baseline, 0.0), observed

        return dataset.batch(self.config.batch_size).map(batch_of)

    def refresh(self):
        """Recompute every movie's code from the training ratings and the current weights."""
        if self._items is None:  # restored, not trained here: the checkpoint's codes stand
            return
        codes = [self.network.encode(values) for values, _, _ in self.item_dataset()]
        self.codes.assign(tf.concat(codes, axis=0))

    # -- prediction ------------------------------------------------------------------------------

    def predict_stars(self, user_ids, stars):
        """Predicted stars [users, num_movies] (TensorFlow, traced in the export), clipped to
        the training ratings' scale: a training user from their learned decoder column, any
        other from `stars` by the fold-in."""
        stars = tf.convert_to_tensor(stars, tf.float32)
        user_ids = tf.convert_to_tensor(user_ids, tf.int64)
        position = tf.minimum(tf.searchsorted(self.user_ids, user_ids), self.num_users - 1)
        known = tf.equal(tf.gather(self.user_ids, position), user_ids)
        decoder = self.network.decoder
        learned = (tf.matmul(tf.gather(decoder.kernel, position, axis=1), self.codes,
                             transpose_a=True, transpose_b=True)
                   + tf.gather(decoder.bias, position)[:, tf.newaxis] + self.baseline_mean
                   + tf.gather(self.user_bias, position)[:, tf.newaxis] + self.movie_bias)
        predicted = tf.cond(tf.reduce_all(known), lambda: learned,
                            lambda: tf.where(known[:, tf.newaxis], learned, self.fold_in(stars)))
        return tf.clip_by_value(predicted, self.scale[0], self.scale[1])

    def fold_in(self, stars):
        """Each user's ratings predicted from `stars` alone: ridge regression of the user's
        ratings less the mean training rating and the movies' biases (zero without `biases`)
        on [code, FOLD_IN_BIAS] of the rated movies, penalty `fold_in_l2` (the bias feature's
        large value leaves the user's own bias nearly unpenalised). Solved in dual form, a
        system as large as the user's ratings; a user with none gets the mean plus the movie's
        bias."""
        features = tf.concat([self.codes, tf.fill([self.num_movies, 1], FOLD_IN_BIAS)], axis=1)
        kernel = tf.matmul(features, features, transpose_b=True)
        alpha = self.config.fold_in_l2

        def one_user(user_stars):
            rated = tf.where(user_stars != 0.0)[:, 0]
            gram = tf.gather(tf.gather(kernel, rated), rated, axis=1)
            gram += alpha * tf.eye(tf.shape(rated)[0])
            residual = tf.gather(user_stars, rated) - self.mean - tf.gather(self.movie_bias, rated)
            weights = tf.linalg.solve(gram, residual[:, tf.newaxis])
            return (self.mean + self.movie_bias
                    + tf.matmul(tf.gather(kernel, rated, axis=1), weights)[:, 0])

        return tf.map_fn(one_user, stars, fn_output_signature=tf.TensorSpec([self.num_movies]))

    def score(self, user_ids, stars):
        return self.predict_stars(user_ids, stars).numpy()

    def serving_module(self, movie_table_path=None):
        return RatingServing(self.num_movies, self.movie_ids, self.predict_stars,
                             tuple(self.scale.numpy()),
                             trackables=[self.network, self.user_ids, self.codes, self.mean, self.scale,
                                         self.user_bias, self.movie_bias],
                             movie_table_path=movie_table_path)
