"""What the autoencoder recommenders share: evaluation on either protocol, recommend, export.

A recommender implements ``score(user_ids, stars) -> numpy [users, num_movies]`` (for a
rating model the predicted stars, for a ranking model a score whose order matters) on dense
star ratings with 0 where not rated (`pipelines.rating_parts`), and ``serving_module()``.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from pipelines import movie_table
from pipelines.rec_serving import save_servable
from pipelines.ranking_eval import evaluate_ranking
from pipelines.rating_eval import evaluate_ratings
from pipelines.rating_parts import MISSING
from pipelines.rating_parts import like_labels
from pipelines.top_unrated import top_unrated


class RatingsRecommender:
    """Base of `AutoRecRecommender`, `MultVAERecommender` and `EASE`.

    ``predicts_ratings``: True for a model of star values (scored by RMSE and MAE), False for a
    ranking model (scored by NDCG and recall at k).
    """

    predicts_ratings = False
    model_name = None

    def __init__(self, num_movies, movie_ids=None, movie_titles=None, like_threshold=3.0):
        self.num_movies = int(num_movies)
        self.like_threshold = float(like_threshold)
        self.movie_ids, self.movie_titles = movie_table.catalogue(self.num_movies, movie_ids, movie_titles)

    def labels(self, stars):
        """Dense stars as {-1 missing, 0 dislike, 1 like}."""
        return like_labels(np.asarray(stars, np.float32), self.like_threshold)

    def score(self, user_ids, stars):
        raise NotImplementedError

    def refresh(self):
        """Bring what prediction reads up to date with the weights (after a training epoch)."""

    def evaluate(self, part):
        """RMSE and MAE (a rating model) or the ranking metrics of `pipelines.ranking_eval` on
        `part` (a MovieLensPart or RatingPart): its targets, predicted from its inputs."""
        if self.predicts_ratings:
            return evaluate_ratings(self.score, part)
        return evaluate_ranking(self.score, part)

    def recommend(self, stars, k=10, user_id=-1):
        """The k unrated movies a user should see first: [(movie_id, title, score)].

        `stars`: one user's [num_movies] star ratings, 0 where not rated (any user: one never
        seen in training is scored from these alone). A rating model ranks by predicted stars.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        stars = np.asarray(stars, np.float32)
        if stars.shape != (self.num_movies,):
            raise ValueError(f"ratings must have num_movies ({self.num_movies}) values, got {stars.shape}")
        scores = self.score(np.array([user_id], np.int64), stars[np.newaxis]).astype(np.float32)
        top = top_unrated(tf.constant(scores), tf.constant(stars[np.newaxis] == MISSING), k,
                          tf.constant(self.movie_ids, tf.int64))
        count = int(top["num_recommended"][0])
        return [(self.movie_ids[index], self.movie_titles[index], float(score))
                for index, score in zip(top["movie_indices"][0].numpy()[:count],
                                        top["scores"][0].numpy()[:count])]

    def serving_module(self, movie_table_path=None):
        raise NotImplementedError

    def export(self, path):
        """Write the servable model (signatures serving_default and recommend, the movie table
        as the asset movies.tsv) as a SavedModel at `path`."""
        return save_servable(path, self.serving_module, self.movie_ids, self.movie_titles)


class KerasRecommender(RatingsRecommender):
    """A recommender around a Keras network: settings, Adam, the epoch count, and `fit`.

    A subclass sets `config_class`, builds its network in `build_network()` and gives its
    training batches in `training_dataset(train, shuffle_seed)`.
    """

    config_class = None

    def __init__(self, num_movies, config=None, movie_ids=None, movie_titles=None,
                 like_threshold=3.0, **settings):
        super().__init__(num_movies, movie_ids, movie_titles, like_threshold)
        if config is None:
            config = self.config_class(**settings)
        elif settings:
            config = dataclasses.replace(config, **settings)
        self.config = config
        self.network = self.build_network()
        self.network.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
        self.network.optimizer.build(self.network.trainable_variables)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.history = None

    def build_network(self):
        raise NotImplementedError

    def training_dataset(self, train, shuffle_seed):
        raise NotImplementedError

    def trackables(self):
        """What a checkpoint of this model holds."""
        return {"network": self.network, "optimizer": self.network.optimizer, "epoch": self.epoch}

    def fit(self, train, validation_data=None, epochs=None, callbacks=(), verbose=0):
        """Train on `train` (a MovieLensPart or RatingPart) up to `epochs` (default: the
        config's), from the epoch the model is at.

        Given `validation_data` (a part of users, seen in training or not), every epoch adds its
        metrics as "val_" logs (``val_rmse``, or ``val_ndcg_at_10``, ...), ready for
        keras.callbacks.EarlyStopping. Returns the `keras.callbacks.History`.
        """
        # first: tf.data's shuffles draw from the global seed as well as their own
        keras.utils.set_random_seed(self.config.seed)
        dataset = self.training_dataset(train, shuffle_seed=self.config.seed)
        epochs = self.config.epochs if epochs is None else int(epochs)
        # the counter first, then the validation metrics: later callbacks read both
        before = [EpochCounter(self.epoch)]
        if validation_data is not None:
            before.append(EpochEvaluation(self, validation_data))
        self.history = self.network.fit(
            dataset, epochs=epochs, initial_epoch=int(self.epoch.numpy()),
            callbacks=before + list(callbacks), verbose=verbose,
            shuffle=False)  # the dataset shuffles itself, seeded
        self.refresh()  # for the weights kept (EarlyStopping may have restored earlier ones)
        return self.history


class EpochEvaluation(keras.callbacks.Callback):
    """After every epoch: the recommender's metrics on a validation part, as "val_" logs.

    Runs before any callback that reads them (EarlyStopping, the run's monitor)."""

    def __init__(self, recommender, validation):
        super().__init__()
        self.recommender = recommender
        self.validation = validation

    def on_epoch_end(self, epoch, logs=None):
        self.recommender.refresh()
        metrics = self.recommender.evaluate(self.validation)
        logs.update({f"val_{key}": value for key, value in metrics.items()
                     if isinstance(value, float)})


class EpochCounter(keras.callbacks.Callback):
    """Keeps the number of finished epochs in a variable (which checkpoints hold)."""

    def __init__(self, counter):
        super().__init__()
        self.counter = counter

    def on_epoch_end(self, epoch, logs=None):
        self.counter.assign(epoch + 1)
