"""I-AutoRec (Sedhain, Menon, Sanner & Xie 2015, "AutoRec: Autoencoders Meet Collaborative
Filtering"): an autoencoder whose cases are movies.

Each movie is the vector of its star ratings by the training users (0 where a user did not rate
it). The network reconstructs it through `hidden` sigmoid units with an identity output, and
learns from the squared error on the *observed* ratings only, with an L2 penalty on the weights.
`members` such networks, seeded apart and trained side by side, each on its own shuffle of the
movies, make an ensemble whose prediction is the mean of theirs. With `biases` (the default)
their targets are the ratings less the user + movie biases model of `pipelines.rating_eval`
(mean + b_user + b_movie, fitted on the training ratings), while their inputs stay the star
ratings. User u's predicted rating of movie i is entry u of movie i's reconstruction plus that
baseline: ``codes[i] . V[:, u] + c[u] + mean + b_user[u] + b_movie[i]`` (the first two averaged
over the members), where codes are the hidden units of every movie.

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


class AutoRecMember(keras.layers.Layer):
    """One I-AutoRec network: dropout on the input ratings, `hidden` sigmoid units, an
    identity output of `num_users` ratings."""

    def __init__(self, num_users, hidden, dropout, seed, **kwargs):
        super().__init__(**kwargs)
        self.input_dropout = keras.layers.Dropout(dropout, seed=seed)
        self.encoder = keras.layers.Dense(hidden, activation="sigmoid", name="encoder",
                                          kernel_initializer=keras.initializers.GlorotUniform(seed))
        self.decoder = keras.layers.Dense(num_users, name="decoder",
                                          kernel_initializer=keras.initializers.GlorotUniform(seed + 1))
        self.encoder.build((None, num_users))
        self.decoder.build((None, hidden))
        self.built = True

    def encode(self, item_ratings, training=False):
        return self.encoder(self.input_dropout(item_ratings, training=training), training=training)

    def call(self, item_ratings, training=False):
        return self.decoder(self.encode(item_ratings, training=training), training=training)

    def penalty(self):
        """|W|^2 + |V|^2 of the encoder and decoder weights."""
        return tf.reduce_sum(tf.square(self.encoder.kernel)) + tf.reduce_sum(tf.square(self.decoder.kernel))


@keras.saving.register_keras_serializable(package="autoencoders_tf")
class AutoRec(keras.Model):
    """The I-AutoRec network over vectors of `num_users` ratings (0 = not observed): an
    ensemble of `members` networks (`AutoRecMember`, seeds seed, seed + 2, ...) whose
    reconstruction is the mean of theirs.

    ``loss`` is the sum over members of each one's mean squared error over its batch's
    observed ratings plus (l2 / 2) (|W|^2 + |V|^2) of its encoder and decoder weights: its
    gradient is each member's own, so the members learn independently. ``rmse`` is over the
    observed ratings of every batch of the epoch and every member. A batch is ``inputs`` (the
    same vectors are the targets), ``(inputs, targets)`` (a target of 0 is not observed) or
    ``(inputs, targets, observed)``, each either [batch, num_users], which every member sees,
    or [members, batch, num_users], of which member m sees slice m (so that the members can
    train on batches of their own).
    """

    def __init__(self, num_users, hidden=500, l2=1e-3, dropout=0.0, seed=0, members=1, **kwargs):
        super().__init__(**kwargs)
        self.num_users = int(num_users)
        self.hidden = int(hidden)
        self.l2 = float(l2)
        self.dropout = float(dropout)
        self.seed = int(seed)
        # each member's encoder and decoder draw from seeds s and s + 1
        self.members = [AutoRecMember(self.num_users, self.hidden, self.dropout, self.seed + 2 * m,
                                      name=f"member_{m}") for m in range(int(members))]
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.rmse_tracker = ObservedRMSE()
        self.built = True

    def encode(self, item_ratings, training=False):
        """The hidden units (codes) of movies by member: [members, movies, hidden]."""
        return tf.stack([member.encode(item_ratings, training=training) for member in self.members])

    def call(self, item_ratings, training=False):
        """The reconstruction [movies, num_users] of movies' rating vectors [movies, num_users]:
        the mean of the members'."""
        return tf.add_n([member(item_ratings, training=training)
                         for member in self.members]) / len(self.members)

    def compute_losses(self, inputs, targets, observed=None, training=False):
        """{"loss", "squared_error_sum", "num_observed"} summed over the members; `observed`
        (default: targets != 0) says which target entries count: every other entry is
        ignored, whatever its value. Each of the three is [batch, num_users] (every member's)
        or [members, batch, num_users] (member m's is slice m)."""
        observed = tf.cast(tf.not_equal(targets, 0.0) if observed is None else observed, tf.float32)
        per_member = len(inputs.shape) == 3
        loss, squared_error_sum, num_observed = 0.0, 0.0, 0.0
        for m, member in enumerate(self.members):
            member_inputs, member_targets, member_observed = (
                (inputs[m], targets[m], observed[m]) if per_member else (inputs, targets, observed))
            member_num_observed = tf.reduce_sum(member_observed)
            error = tf.where(member_observed > 0, member(member_inputs, training=training) - member_targets, 0.0)
            member_squared_error = tf.reduce_sum(tf.square(error))
            loss += (member_squared_error / tf.maximum(member_num_observed, 1.0)
                     + 0.5 * self.l2 * member.penalty())
            squared_error_sum += member_squared_error
            num_observed += member_num_observed
        return {"loss": loss, "squared_error_sum": squared_error_sum, "num_observed": num_observed}

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
                "dropout": self.dropout, "seed": self.seed, "members": len(self.members),
                "name": self.name}


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
        self.codes = tf.Variable(tf.zeros([self.config.members, self.num_movies, self.config.hidden]),
                                 trainable=False, name="codes")
        self.mean = tf.Variable(0.0, trainable=False, name="mean")
        self.scale = tf.Variable([1.0, 5.0], trainable=False, name="scale")
        # the biases model the network's targets are relative to (zeros without `biases`)
        self.user_bias = tf.Variable(tf.zeros([self.num_users]), trainable=False, name="user_bias")
        self.movie_bias = tf.Variable(tf.zeros([self.num_movies]), trainable=False, name="movie_bias")
        self._items = None

    def build_network(self):
        config = self.config
        return AutoRec(self.num_users, config.hidden, config.l2, config.dropout, config.seed,
                       config.members)

    def trackables(self):
        return {**super().trackables(), "user_ids": self.user_ids, "codes": self.codes,
                "mean": self.mean, "scale": self.scale, "user_bias": self.user_bias,
                "movie_bias": self.movie_bias}

    # -- training ----------------------------------------------------------------------------

    def training_dataset(self, train, shuffle_seed):
        """Keeps what prediction needs of `train`; its movies' rating vectors, shuffled for
        each member apart (`member_dataset`)."""
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
        return self.member_dataset(shuffle_seed)

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
        return self._movie_batches(shuffle_seed, stacked=False).map(self._batch_of)

    def member_dataset(self, shuffle_seed=None):
        """The training batches: `item_dataset`'s, stacked [members, batch, num_users], member
        m's drawn from its own shuffle of the movies every epoch (seed shuffle_seed + m).
        Members that shared one batch order measured worse as an ensemble (validation RMSE
        0.9265 against 0.9252 on ML-100K u1)."""
        return self._movie_batches(shuffle_seed, stacked=True).map(self._batch_of)

    def _movie_batches(self, shuffle_seed, stacked):
        """Batches of movie rows: [batch], or [members, batch] of the members' own orders."""
        def order(seed):
            movies = tf.data.Dataset.range(self.num_movies)
            if seed is not None:
                movies = movies.shuffle(self.num_movies, seed=seed, reshuffle_each_iteration=True)
            return movies.batch(self.config.batch_size)

        if not stacked:
            return order(shuffle_seed)
        orders = tuple(order(None if shuffle_seed is None else shuffle_seed + m)
                       for m in range(self.config.members))
        return tf.data.Dataset.zip(orders).map(lambda *rows: tf.stack(rows))

    def _batch_of(self, rows):
        """(values, targets, observed) [*rows.shape, num_users] of the movies `rows`."""
        positions, ratings = self._items
        flat_rows = tf.reshape(rows, [-1])
        stars = densify_rows(positions, ratings, flat_rows, self.num_users)
        stars = tf.reshape(stars, tf.concat([tf.shape(rows, tf.int64), [self.num_users]], axis=0))
        observed = tf.not_equal(stars, 0.0)
        values = tf.where(observed, stars - self.offset, 0.0)
        baseline = self.baseline_mean + self.user_bias + tf.gather(self.movie_bias, rows)[..., tf.newaxis]
        return values, tf.where(observed, stars - baseline, 0.0), observed

    def refresh(self):
        """Recompute every movie's codes (each member's) from the training ratings and the
        current weights."""
        if self._items is None:  # restored, not trained here: the checkpoint's codes stand
            return
        codes = [self.network.encode(values) for values, _, _ in self.item_dataset()]
        self.codes.assign(tf.concat(codes, axis=1))

    # -- prediction ------------------------------------------------------------------------------

    def predict_stars(self, user_ids, stars):
        """Predicted stars [users, num_movies] (TensorFlow, traced in the export), clipped to
        the training ratings' scale: a training user from their learned decoder column, any
        other from `stars` by the fold-in; each the mean over the members."""
        stars = tf.convert_to_tensor(stars, tf.float32)
        user_ids = tf.convert_to_tensor(user_ids, tf.int64)
        position = tf.minimum(tf.searchsorted(self.user_ids, user_ids), self.num_users - 1)
        known = tf.equal(tf.gather(self.user_ids, position), user_ids)
        members = self.network.members
        columns = tf.stack([tf.gather(m.decoder.kernel, position, axis=1) for m in members])
        user_biases = tf.stack([tf.gather(m.decoder.bias, position) for m in members])
        learned = ((tf.einsum("mhu,mih->ui", columns, self.codes)
                    + tf.reduce_sum(user_biases, axis=0)[:, tf.newaxis]) / len(members)
                   + self.baseline_mean
                   + tf.gather(self.user_bias, position)[:, tf.newaxis] + self.movie_bias)
        predicted = tf.cond(tf.reduce_all(known), lambda: learned,
                            lambda: tf.where(known[:, tf.newaxis], learned, self.fold_in(stars)))
        return tf.clip_by_value(predicted, self.scale[0], self.scale[1])

    def fold_in(self, stars):
        """Each user's ratings predicted from `stars` alone, the mean over the members of: ridge
        regression of the user's ratings less the mean training rating and the movies' biases
        (zero without `biases`) on [member's code, FOLD_IN_BIAS] of the rated movies, penalty
        `fold_in_l2` (the bias feature's large value leaves the user's own bias nearly
        unpenalised). Solved in dual form, a system as large as the user's ratings, whose
        solution maps back to one weight per feature: the work and memory follow the catalogue
        times the code, never the catalogue squared. A user with none gets the mean plus the
        movie's bias."""
        features = tf.concat([self.codes, tf.fill([self.config.members, self.num_movies, 1], FOLD_IN_BIAS)],
                             axis=2)  # [members, movies, hidden + 1]
        alpha = self.config.fold_in_l2

        def one_user(user_stars):
            rated = tf.where(user_stars != 0.0)[:, 0]
            residual = tf.gather(user_stars, rated) - self.mean - tf.gather(self.movie_bias, rated)
            rated_features = tf.gather(features, rated, axis=1)  # [members, n, hidden + 1]
            gram = tf.matmul(rated_features, rated_features, transpose_b=True)
            gram += alpha * tf.eye(tf.shape(rated)[0])
            dual = tf.linalg.solve(gram, tf.tile(residual[tf.newaxis, :, tf.newaxis],
                                                 [self.config.members, 1, 1]))
            primal = tf.matmul(rated_features, dual, transpose_a=True)  # [members, hidden + 1, 1]
            fitted = tf.matmul(features, primal)[:, :, 0]
            return self.mean + self.movie_bias + tf.reduce_mean(fitted, axis=0)

        return tf.map_fn(one_user, stars, fn_output_signature=tf.TensorSpec([self.num_movies]))

    def score(self, user_ids, stars):
        return self.predict_stars(user_ids, stars).numpy()

    def serving_module(self, movie_table_path=None):
        return RatingServing(self.num_movies, self.movie_ids, self.predict_stars,
                             tuple(self.scale.numpy()),
                             trackables=[self.network, self.user_ids, self.codes, self.mean, self.scale,
                                         self.user_bias, self.movie_bias],
                             movie_table_path=movie_table_path)
