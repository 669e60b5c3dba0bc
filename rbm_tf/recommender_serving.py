"""The recommender as a servable module: named signatures over a trained RBM."""

import tensorflow as tf

from pipelines.signatures import check_ratings
from pipelines.top_unrated import top_unrated as shared_top_unrated
from rbm_tf.rbm import RBM


class RecommenderServing(tf.Module):
    """SavedModel signatures of the RBM recommender.

    ``like_probability(ratings)``: ratings float32 [batch, num_movies] in {-1, 0, 1} ->
    ``like_probability`` [batch, num_movies], the mean-field prediction for every movie.
    ``recommend(ratings, k)``: the k unrated movies with the highest like-probability per user
    -> ``movie_indices``, ``movie_ids`` (the release's own ids), ``scores`` [batch, k'] with
    k' = min(k, num_movies), and ``num_recommended`` [batch]: how many of the k' entries are
    movies. A rated movie is never recommended: a user with fewer than k unrated movies gets
    them all, and the entries after ``num_recommended`` are padding (index and id -1, score -1).
    """

    def __init__(self, rbm: RBM, movie_ids, movie_table_path=None, like_probability=None,
                 ranking_score=None, variables=(), name=None):
        super().__init__(name=name)
        self.rbm = rbm
        # how ratings become like-probabilities (default: the RBM's mean-field pass), and the
        # variables it reads beyond the RBM's, tracked so that the SavedModel holds them
        self.predict = like_probability or (lambda ratings: rbm.reconstruct(ratings, ratings >= 0.0))
        self.rank = ranking_score or (lambda probability: probability)
        self.prediction_variables = list(variables)
        if len(movie_ids) != rbm.num_visible:
            raise ValueError(f"{len(movie_ids)} movie ids for an RBM of {rbm.num_visible} movies")
        self.movie_ids = tf.constant(movie_ids, tf.int64)
        if movie_table_path is not None:
            # travels in the SavedModel's assets/ so that a served model can be given titles
            self.movie_table = tf.saved_model.Asset(str(movie_table_path))
        ratings_spec = tf.TensorSpec([None, rbm.num_visible], tf.float32, name="ratings")
        self.like_probability = tf.function(self._like_probability, input_signature=[ratings_spec])
        self.recommend = tf.function(
            self._recommend, input_signature=[ratings_spec, tf.TensorSpec([], tf.int32, name="k")])

    def signatures(self):
        return {"serving_default": self.like_probability, "recommend": self.recommend}

    def _like_probability(self, ratings):
        ratings = check_ratings(ratings, self.rbm.num_visible)
        return {"like_probability": self.predict(ratings)}

    def _recommend(self, ratings, k):
        ratings = check_ratings(ratings, self.rbm.num_visible)
        tf.debugging.assert_positive(k, message="k must be at least 1")
        probability = self.predict(ratings)
        return top_unrated(probability, ratings, k, self.rank(probability), self.movie_ids)


def top_unrated(like_probability, ratings, k, ranking_score, movie_ids):
    """The k unrated movies of highest `ranking_score` per user, with their like-probabilities
    as ``scores``, padded as `recommend` says (`pipelines.top_unrated`)."""
    return shared_top_unrated(ranking_score, ratings < 0.0, k, movie_ids, reported_score=like_probability)
