"""The k best movies a user has not rated: what every recommender's `recommend` signature returns.

Shared by the exports of every recommender family (TensorFlow, traced inside the served graph).
"""

import tensorflow as tf

# the padding where a user has fewer unrated movies than were asked for
NO_MOVIE = -1


def top_unrated(ranking_score, unrated, k, movie_ids, reported_score=None):
    """The k unrated movies of highest `ranking_score` per user.

    `ranking_score`, `reported_score` (default: the ranking score) float32 [batch, num_movies];
    `unrated` bool of the same shape; `movie_ids` int64 [num_movies]. Returns
    ``movie_indices``, ``movie_ids``, ``scores`` (the reported score of each) [batch, k'] with
    k' = min(k, num_movies), and ``num_recommended`` [batch]: a user with fewer than k unrated
    movies gets them all, and the entries after it are padding (index and id -1, score -1).
    """
    reported_score = ranking_score if reported_score is None else reported_score
    ranked = tf.where(unrated, ranking_score, tf.fill(tf.shape(ranking_score), -float("inf")))
    top = tf.math.top_k(ranked, k=tf.minimum(k, tf.shape(ranked)[-1]))
    is_movie = tf.math.is_finite(top.values)
    indices = tf.where(is_movie, top.indices, NO_MOVIE)
    safe = tf.maximum(indices, 0)
    return {"movie_indices": indices,
            "movie_ids": tf.where(is_movie, tf.gather(movie_ids, safe), tf.constant(NO_MOVIE, tf.int64)),
            "scores": tf.where(is_movie, tf.gather(reported_score, safe, batch_dims=1), -1.0),
            "num_recommended": tf.reduce_sum(tf.cast(is_movie, tf.int32), axis=-1)}
