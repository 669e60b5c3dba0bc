"""The recommender as a servable module: named signatures over a trained RBM."""

import tensorflow as tf

from pipelines.signatures import check_ratings
from rbm_tf.rbm import RBM

# the padding of `recommend` where a user has fewer unrated movies than were asked for
NO_MOVIE = -1


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

    def __init__(self, rbm: RBM, movie_ids, movie_table_path=None, name=None):
        super().__init__(name=name)
        self.rbm = rbm
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
        return {"like_probability": self.rbm.reconstruct(ratings, ratings >= 0.0)}

    def _recommend(self, ratings, k):
        ratings = check_ratings(ratings, self.rbm.num_visible)
        tf.debugging.assert_positive(k, message="k must be at least 1")
        return top_unrated(self.rbm.reconstruct(ratings, ratings >= 0.0), ratings, k, self.movie_ids)


def top_unrated(like_probability, ratings, k, movie_ids):
    """The k unrated movies of highest like-probability per user, padded as `recommend` says."""
    unrated = ratings < 0.0
    scores = tf.where(unrated, like_probability, tf.fill(tf.shape(like_probability), -float("inf")))
    top = tf.math.top_k(scores, k=tf.minimum(k, tf.shape(scores)[-1]))
    is_movie = tf.math.is_finite(top.values)
    indices = tf.where(is_movie, top.indices, NO_MOVIE)
    return {"movie_indices": indices,
            "movie_ids": tf.where(is_movie, tf.gather(movie_ids, tf.maximum(indices, 0)),
                                  tf.constant(NO_MOVIE, tf.int64)),
            "scores": tf.where(is_movie, top.values, -1.0),
            "num_recommended": tf.reduce_sum(tf.cast(is_movie, tf.int32), axis=-1)}
