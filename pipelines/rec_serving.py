"""Recommenders as servable modules: named, input-checked signatures (the autoencoder
recommenders and the rating RBM share them).

A ranking model (EASE, Mult-VAE) reads ratings as the RBM recommender's export does:
``ratings`` float32 [batch, num_movies] in {-1 (missing), 0 (dislike), 1 (like)}.
``serving_default`` -> ``scores`` [batch, num_movies] (higher first); ``recommend(ratings, k)``
-> ``movie_indices``, ``movie_ids``, ``scores``, ``num_recommended`` of the k best unrated
movies, padded as `pipelines.top_unrated` says.

A rating model (I-AutoRec) reads star ratings and the user's id: ``user_ids`` int64 [batch]
and ``ratings`` float32 [batch, num_movies], 0 where not rated. ``serving_default`` ->
``predicted_rating``; ``recommend(user_ids, ratings, k)`` ranks by predicted rating. A user
the model was trained on gets their own learned decoder column; any other user is fitted
from the ratings given.
"""

import pathlib
import tempfile

import tensorflow as tf

from pipelines import movie_table

from pipelines.signatures import check_ratings
from pipelines.signatures import check_star_ratings
from pipelines.top_unrated import top_unrated


class RankingServing(tf.Module):
    """Signatures of `scores(ratings in {-1, 0, 1}) -> scores`, a traceable function whose
    variables are in `trackables` (tracked so the SavedModel holds them)."""

    def __init__(self, num_movies, movie_ids, scores, trackables=(), movie_table_path=None,
                 name=None):
        super().__init__(name=name)
        self.num_movies = int(num_movies)
        self.scores = scores
        self.tracked = list(trackables)
        self.movie_ids = tf.constant(movie_ids, tf.int64)
        if movie_table_path is not None:
            self.movie_table = tf.saved_model.Asset(str(movie_table_path))
        ratings = tf.TensorSpec([None, self.num_movies], tf.float32, name="ratings")
        self.score = tf.function(self._score, input_signature=[ratings])
        self.recommend = tf.function(
            self._recommend, input_signature=[ratings, tf.TensorSpec([], tf.int32, name="k")])

    def signatures(self):
        return {"serving_default": self.score, "recommend": self.recommend}

    def _score(self, ratings):
        return {"scores": self.scores(check_ratings(ratings, self.num_movies))}

    def _recommend(self, ratings, k):
        ratings = check_ratings(ratings, self.num_movies)
        tf.debugging.assert_positive(k, message="k must be at least 1")
        return top_unrated(self.scores(ratings), ratings < 0.0, k, self.movie_ids)


class RatingServing(tf.Module):
    """Signatures of `predict(user_ids, star ratings) -> predicted stars`, a traceable
    function whose variables are in `trackables`."""

    def __init__(self, num_movies, movie_ids, predict, scale, trackables=(),
                 movie_table_path=None, name=None):
        super().__init__(name=name)
        self.num_movies = int(num_movies)
        self.predict_stars = predict
        self.scale = tuple(float(s) for s in scale)
        self.tracked = list(trackables)
        self.movie_ids = tf.constant(movie_ids, tf.int64)
        if movie_table_path is not None:
            self.movie_table = tf.saved_model.Asset(str(movie_table_path))
        users = tf.TensorSpec([None], tf.int64, name="user_ids")
        ratings = tf.TensorSpec([None, self.num_movies], tf.float32, name="ratings")
        self.predict = tf.function(self._predict, input_signature=[users, ratings])
        self.recommend = tf.function(
            self._recommend, input_signature=[users, ratings, tf.TensorSpec([], tf.int32, name="k")])

    def signatures(self):
        return {"serving_default": self.predict, "recommend": self.recommend}

    def _checked(self, user_ids, ratings):
        ratings = check_star_ratings(ratings, self.num_movies, *self.scale)
        tf.debugging.assert_equal(tf.shape(user_ids)[0], tf.shape(ratings)[0],
                                  message="user_ids and ratings must have one row per user")
        return ratings

    def _predict(self, user_ids, ratings):
        ratings = self._checked(user_ids, ratings)
        return {"predicted_rating": self.predict_stars(user_ids, ratings)}

    def _recommend(self, user_ids, ratings, k):
        ratings = self._checked(user_ids, ratings)
        tf.debugging.assert_positive(k, message="k must be at least 1")
        return top_unrated(self.predict_stars(user_ids, ratings), tf.equal(ratings, 0.0), k,
                           self.movie_ids)


def save_servable(path, make_module, movie_ids, movie_titles):
    """Save `make_module(movie_table_path)` (a module with `signatures()`) as a SavedModel at
    `path`, the movie table written beside it first so that it travels as the asset
    movies.tsv. Every recommender's `export`."""
    with tempfile.TemporaryDirectory() as directory:
        table = pathlib.Path(directory) / movie_table.MOVIE_TABLE
        movie_table.write_movie_table(table, movie_ids, movie_titles)
        module = make_module(table)
        tf.saved_model.save(module, str(path), signatures=module.signatures())
    return pathlib.Path(path)
