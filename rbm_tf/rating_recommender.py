"""The rating RBM as a recommender: fit, evaluate, export, and a training run.

    data = load_movielens("data", "ml-100k", split="u1")
    result = train_rating_rbm(data, "runs/rating-rbm-u1")     # metrics.json's content
    result["final"]["test_rmse"], result["final"]["baselines"]["user_item_biases"]["test_rmse"]

One case per movie by default (the item-based variant of Salakhutdinov, Mnih & Hinton 2007:
a K-way softmax unit for every user who rated the movie, K the release's star levels), or
one case per user (a unit for every movie the user rated, which scores a user it never saw
from their ratings alone). It predicts the expected rating of a user's movie, and the
probability of a like (a level at or above the like threshold), so that it is measured beside
the binary RBM too. Training, evaluation and the outer loop are the binary recommender's:
ragged batches, CD whose work follows the ratings, `pipelines.loop`, early stopping on the
validation RMSE with the best epoch kept.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from pipelines import loop
from pipelines import movie_table
from pipelines import movielens
from pipelines import runs
from pipelines.movielens_data import ItemPart
from pipelines.movielens_data import flat_ratings
from pipelines.rating_eval import RatingBaselines
from pipelines.rec_serving import RatingServing
from pipelines.rec_serving import save_servable
from pipelines.recommender_eval import RatingMetrics
from pipelines.recommender_eval import majority_label
from rbm_tf.config import RatingRBMConfig
from rbm_tf.rating_rbm import RatingRBM
from rbm_tf.rbm import SparseRatings
from rbm_tf.recommender import TRAIN_MONITOR_USERS
from rbm_tf.sparse_training import RBMWeights
from rbm_tf.sparse_training import SparseCDTrainer

MODEL_NAME = RatingRBMConfig.model


class RatingRecommender(RBMWeights):
    """A rating RBM over a catalogue of `num_movies` with the star `levels` of its release."""

    def __init__(self, num_movies, levels, config=None, movie_ids=None, movie_titles=None,
                 like_threshold=3.0, **settings):
        config = config or RatingRBMConfig(**settings)
        self.config = config
        self.num_movies = int(num_movies)
        self.levels = tf.constant(np.asarray(levels, np.float32))
        self.like_threshold = float(like_threshold)
        self.movie_ids, self.movie_titles = movie_table.catalogue(self.num_movies, movie_ids, movie_titles)
        self.rbm = RatingRBM(self.num_movies, len(levels), config.hidden, seed=config.seed)
        self.trainer = SparseCDTrainer(self.rbm, config.cd_config(), batch_size=config.batch_size)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.stop_training = False
        self.history = None
        self.metrics = RatingMetrics()
        self.errors = tf.Variable(tf.zeros([2], tf.float64), trainable=False)  # squared, absolute

    def trackables(self):
        return {"trainer": self.trainer, "epoch": self.epoch}

    def level_index(self, stars):
        """Star ratings as indices of the release's levels."""
        step = (self.levels[-1] - self.levels[0]) / tf.cast(tf.size(self.levels) - 1, tf.float32)
        return tf.cast(tf.round((tf.cast(stars, tf.float32) - self.levels[0]) / step), tf.int32)

    def _ratings(self, movies, stars, batch_size):
        rows = tf.cast(movies.value_rowids(), tf.int32)
        return SparseRatings.of_movies(rows, movies.values, self.level_index(stars.values), batch_size)

    # -- training ----------------------------------------------------------------------------

    def fit(self, train, validation_data=None, epochs=None, callbacks=(), verbose=0):
        """Train on `train` (a `MovieLensPart`); the binary `Recommender.fit`'s contract, with
        the validation RMSE, MAE and like metrics as "val_" logs."""
        epochs = self.config.epochs if epochs is None else int(epochs)
        tf.random.set_seed(self.config.seed)
        if int(self.epoch.numpy()) == 0:
            counts = np.zeros([self.num_movies, int(tf.size(self.levels))])
            _, movies, stars, _ = flat_ratings(train.ragged_tensors, "input")
            np.add.at(counts, (movies, self.level_index(stars).numpy()), 1.0)
            self.rbm.set_visible_bias_from_counts(counts)

        def train_epoch(epoch, callbacks):
            self._train_batches(train.ragged_dataset(
                self.config.batch_size, shuffle_seed=self.config.seed * 100003 + epoch + 1))
            self.trainer.flush()
            self.epoch.assign(epoch + 1)
            callbacks.on_test_begin()
            logs = self.evaluate(train, max_users=TRAIN_MONITOR_USERS)
            if validation_data is not None:
                logs.update({f"val_{key}": value for key, value in self.evaluate(validation_data).items()})
            callbacks.on_test_end()
            return logs

        self.history = loop.fit_loop(self, train_epoch, epochs, initial_epoch=int(self.epoch.numpy()),
                                     callbacks=callbacks, verbose=verbose)
        return self.history

    @tf.function
    def _train_batches(self, batches):
        for batch in batches:
            movies = batch["input_movies"]
            self.trainer.train_step(tf.cast(movies.value_rowids(), tf.int32), movies.values,
                                    self.level_index(batch["input_ratings"].values),
                                    tf.shape(batch["user_id"])[0])

    # -- prediction and evaluation -------------------------------------------------------------

    def _predict_targets(self, batch):
        """(expected rating, like-probability) of every target rating of a ragged batch."""
        batch_size = tf.shape(batch["user_id"])[0]
        inputs, movies = self._ratings(batch["input_movies"], batch["input_ratings"], batch_size)
        hidden = self.rbm.sparse_hidden_probability(inputs, self.rbm.rows_of(movies)[0])
        targets, target_movies = self._ratings(batch["target_movies"], batch["target_ratings"], batch_size)
        probability = tf.nn.softmax(self.rbm.level_logits(hidden, targets, *self.rbm.rows_of(target_movies)))
        return self._expectations(probability)

    def _expectations(self, probability):
        expected = tf.reduce_sum(probability * self.levels, axis=-1)
        likes = tf.reduce_sum(probability * tf.cast(self.levels >= self.like_threshold, tf.float32), -1)
        return expected, likes

    @tf.function(reduce_retracing=True)
    def _evaluate_batch(self, batch):
        expected, likes = self._predict_targets(batch)
        error = tf.cast(expected - batch["target_ratings"].values, tf.float64)
        self.errors.assign_add(tf.stack([tf.reduce_sum(error ** 2), tf.reduce_sum(tf.abs(error))]))
        self.metrics.update_classification(likes, batch["target_labels"].values)

    def evaluate(self, data, max_users=None):
        """RMSE and MAE of the expected rating at `data`'s targets (from its inputs only), and
        the like-probability's accuracy, AUC and log-loss beside the majority baseline."""
        self.metrics.majority_label = majority_label(data.train_like_rate)
        self.metrics.reset()
        self.errors.assign(tf.zeros([2], tf.float64))
        for batch in data.ragged_dataset(256, max_users=max_users):
            self._evaluate_batch(batch)
        result = self.metrics.result(ranking=False)
        count = max(result["num_ratings"], 1)
        squared, absolute = self.errors.numpy()
        return {"rmse": float(np.sqrt(squared / count)), "mae": float(absolute / count), **result}

    def predict(self, stars):
        """Expected ratings [batch, num_movies] from star ratings [batch, num_movies] (0 where
        not rated): any user, seen in training or not."""
        return self.predict_dense(tf.convert_to_tensor(stars, tf.float32)).numpy()

    def predict_dense(self, stars):
        rated = tf.where(stars > 0.0)
        rows, movies = tf.cast(rated[:, 0], tf.int32), tf.cast(rated[:, 1], tf.int32)
        ratings = SparseRatings(rows, movies, self.level_index(tf.gather_nd(stars, rated)),
                                tf.shape(stars)[0], self.num_movies)
        hidden = self.rbm.sparse_hidden_probability(ratings, self.rbm.rows_of(tf.range(self.num_movies))[0])
        return self._expectations(self.rbm.level_probability(hidden))[0]

    # -- export --------------------------------------------------------------------------------

    def export(self, path):
        """A SavedModel: ``serving_default`` (user_ids, star ratings -> predicted_rating) and
        ``recommend`` (-> the k unrated movies of highest expected rating), the autoencoder
        rating models' signatures; the user ids are accepted and not needed."""
        levels = self.levels.numpy()
        return save_servable(path, lambda table: RatingServing(
            self.num_movies, self.movie_ids, lambda user_ids, stars: self.predict_dense(stars),
            (float(levels[0]), float(levels[-1])), trackables=[self.rbm], movie_table_path=table),
            self.movie_ids, self.movie_titles)


# -- a training run ----------------------------------------------------------------------------

def describe_epoch(record, total_epochs, baselines):
    return (f"epoch {record['epoch']}/{total_epochs}  {record['seconds']:.1f}s  "
            f"train rmse {record['train_rmse']:.4f}  |  validation rmse {record['validation_rmse']:.4f} "
            f"mae {record['validation_mae']:.4f} like auc {record['validation_auc']:.4f}  "
            f"(user+item biases rmse {baselines['user_item_biases']['validation_rmse']:.4f})")


def release_levels(data):
    """The star levels of `data`'s release (a `MovieLensData`), as the model's softmax units."""
    return [float(level) for level in movielens.get_release(data.config.release).allowed_ratings]


def variant_parts(data, variant):
    """(train, validation, test, num_visible): the split's parts as a `variant` rating RBM
    reads them. "user": the parts themselves, a unit per movie. "item": one case per movie,
    a unit per training user; a part's targets are predicted from the movie's ratings in the
    parts before it (validation from train, test from train and validation)."""
    if variant == "user":
        return data.train, data.validation, data.test, data.num_movies
    train = ItemPart([data.train])
    return (train, ItemPart([data.train], data.validation),
            ItemPart([data.train, data.validation], data.test), len(train.user_ids))


def train_rating_rbm(data, run_dir, config=None, resume=False, epochs=None, export=True, log=None):
    """Train a `RatingRecommender` on `data` in `run_dir`; returns metrics.json's content:
    ``test_rmse``, ``test_mae`` and the like-probability's ``test_accuracy``, ``test_auc``,
    ``test_log_loss``, beside ``baselines`` global_mean and user_item_biases (RMSE, MAE)."""
    directory = runs.RunDirectory(run_dir)
    if resume:
        config = RatingRBMConfig.from_dict(directory.read_config())
    config = config or RatingRBMConfig()
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    levels = release_levels(data)
    settings = {"model": MODEL_NAME, "data_dir": str(data.data_dir), "split_name": data.name,
                **data.split_settings(), "num_movies": data.num_movies, "levels": levels,
                **dataclasses.asdict(config)}
    train, validation, test, num_visible = variant_parts(data, config.variant)
    movie_ids, titles = (data.movie_ids, data.movie_titles) if config.variant == "user" else (None, None)
    settings["num_visible"] = num_visible
    run = loop.Run(run_dir, settings, resume=resume)
    if not resume:
        movie_table.write_movie_table(run.path / movie_table.MOVIE_TABLE, data.movie_ids, data.movie_titles)
    model = RatingRecommender(num_visible, levels, config, movie_ids, titles,
                              like_threshold=data.like_threshold)
    run.track(**model.trackables())
    run.check_resumable(int(model.epoch.numpy()), config.epochs, log)
    baselines = RatingBaselines(data.train, data.validation)
    on_validation = baselines.evaluate(data.validation, prefix="validation_")
    stopping = loop.update_stopping(config, train.num_users, "val_rmse", "min")
    monitor = loop.RunMonitor(
        run, validation_name="validation", log=log, extra=lambda record: {"baselines": on_validation},
        describe=lambda record: describe_epoch(record, config.epochs, on_validation))
    model.fit(train, validation_data=validation, callbacks=[stopping, monitor])
    best_epoch = loop.kept_epoch(stopping, model.epoch.numpy())
    if stopping.best_weights is not None:
        run.save_checkpoint(int(model.epoch.numpy()))
        if log:
            log(f"kept the weights of epoch {best_epoch}, the best validation RMSE")
    final = {"best_epoch": best_epoch}
    final.update({f"test_{key}": value for key, value in model.evaluate(test).items()})
    final["baselines"] = baselines.evaluate(data.test, prefix="test_")
    biases = final["baselines"]["user_item_biases"]["test_rmse"]
    final["beats_user_item_biases"] = final["test_rmse"] < biases
    final["verdict"] = ("beats every baseline" if final["beats_user_item_biases"]
                        else "does NOT beat the user+item biases model on RMSE")
    return run.finish(final, export=rating_exporter(model, lambda: data) if export else None,
                      model_name=MODEL_NAME)


def rating_exporter(model, load_data):
    """What exports a rating RBM trained on the training part of the data `load_data()` gives:
    the model's own export (user-based; the data are not read) or its `ItemServing`'s
    (item-based)."""
    if model.config.variant == "user":
        return model.export
    data = load_data()
    return ItemServing(model, ItemPart([data.train]), data).export


class ItemServing:
    """The export of an item-based rating RBM: each movie's hidden units from its training
    ratings, fixed at export, and each known user's softmax unit. A user's predicted rating of
    a movie is the expectation of that user's unit given the movie's hidden units; a user the
    model has no unit for gets each movie's mean training rating."""

    def __init__(self, model, train, data):
        self.model, self.data = model, data
        rbm = model.rbm
        hidden = []
        for batch in train.ragged_dataset(256):
            ratings, units = model._ratings(batch["input_movies"], batch["input_ratings"],
                                            tf.shape(batch["user_id"])[0])
            hidden.append(rbm.sparse_hidden_probability(ratings, rbm.rows_of(units)[0]))
        self.movie_hidden = tf.Variable(tf.concat(hidden, 0), trainable=False)
        stars = train.ragged_tensors["input_ratings"]
        self.movie_mean = tf.Variable(tf.math.divide_no_nan(tf.reduce_sum(stars, axis=1), tf.cast(
            stars.row_lengths(), tf.float32)), trainable=False)
        self.users = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(train.user_ids, tf.int64), tf.range(len(train.user_ids), dtype=tf.int64)), -1)

    def predict(self, user_ids, stars):
        rbm = self.model.rbm
        index = self.users.lookup(user_ids)
        weights, bias = rbm.rows_of(tf.maximum(index, 0))  # [users, K, hidden], [users, K]
        logits = tf.einsum("mh,ukh->umk", self.movie_hidden, weights) + bias[:, tf.newaxis, :]
        expected = tf.reduce_sum(tf.nn.softmax(logits) * self.model.levels, axis=-1)
        return tf.where((index >= 0)[:, tf.newaxis], expected, self.movie_mean[tf.newaxis, :])

    def export(self, path):
        levels = self.model.levels.numpy()
        return save_servable(path, lambda table: RatingServing(
            self.data.num_movies, self.data.movie_ids, self.predict, (float(levels[0]), float(levels[-1])),
            trackables=[self.model.rbm, self.movie_hidden, self.movie_mean, self.users],
            movie_table_path=table), self.data.movie_ids, self.data.movie_titles)


def load_rating_run(run_dir):
    """The rating RBM of a run, with its latest checkpoint."""
    directory = runs.RunDirectory(run_dir)
    stored = directory.read_config()
    movie_ids, titles = movie_table.read_movie_table(directory.path / movie_table.MOVIE_TABLE)
    config = RatingRBMConfig.from_dict(stored)
    user_based = config.variant == "user"
    model = RatingRecommender(stored["num_visible"], stored["levels"], config,
                              movie_ids if user_based else None, titles if user_based else None,
                              like_threshold=stored["like_threshold"])
    tf.train.Checkpoint(**model.trackables()).restore(directory.checkpoint_to_export()).expect_partial()
    return model


def export_rating_run(run_dir, export_base=None):
    """Export a run's latest checkpoint as the next version; returns its path."""
    from rbm_tf.recommender_training import load_run_data

    directory = runs.RunDirectory(run_dir)
    directory.checkpoint_to_export()
    model = load_rating_run(run_dir)
    exporter = rating_exporter(model, lambda: load_run_data(run_dir))
    path = runs.export_versioned(export_base or directory.export_base(), MODEL_NAME, exporter)
    directory.record_export(path)
    return path
