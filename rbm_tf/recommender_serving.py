"""The recommender as a servable module: named signatures over a trained RBM."""

import tensorflow as tf

from rbm_tf.rbm import RBM


def check_ratings(ratings, num_movies):
    """Fail with a clear message unless ratings are [batch, num_movies] of -1, 0 or 1.

    The shape is checked inside the graph because TensorFlow Serving feeds a tensor as sent:
    without the check a wrong width fails deep inside a MatMul, or not at all.
    """
    ratings = tf.ensure_shape(ratings, [None, num_movies])
    valid = (tf.equal(ratings, -1.0) | tf.equal(ratings, 0.0) | tf.equal(ratings, 1.0))
    tf.debugging.assert_equal(
        tf.reduce_all(valid), True,
        message="ratings must be -1 (missing), 0 (dislike) or 1 (like)")
    return ratings


class RecommenderServing(tf.Module):
    """SavedModel signatures of the RBM recommender.

    ``like_probability(ratings)``: ratings float32 [batch, num_movies] in {-1, 0, 1} ->
    ``like_probability`` [batch, num_movies], the mean-field prediction for every movie.
    ``recommend(ratings, k)``: the k unrated movies with the highest like-probability per user
    -> ``movie_indices``, ``movie_ids`` (the release's own ids) and ``scores``.
    """

    def __init__(self, rbm: RBM, movie_ids, movie_table_path=None, name=None):
        super().__init__(name=name)
        self.rbm = rbm
        self.movie_ids = tf.constant(movie_ids, tf.int64)
        if len(movie_ids) != rbm.num_visible:
            raise ValueError(f"{len(movie_ids)} movie ids for an RBM of {rbm.num_visible} movies")
        if movie_table_path is not None:
            # travels in the SavedModel's assets/ so that a served model can be given titles
            self.movie_table = tf.saved_model.Asset(movie_table_path)
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
        probability = self.rbm.reconstruct(ratings, ratings >= 0.0)
        scores = tf.where(ratings < 0.0, probability, tf.fill(tf.shape(probability), -1.0))
        top = tf.math.top_k(scores, k=tf.minimum(k, self.rbm.num_visible))
        return {"movie_indices": top.indices,
                "movie_ids": tf.gather(self.movie_ids, top.indices),
                "scores": top.values}
