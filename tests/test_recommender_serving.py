"""The recommender's serving signatures: outputs, unrated-only recommendations, input checks."""

import numpy as np
import pytest
import tensorflow as tf

from rbm_tf.rbm import RBM
from rbm_tf.recommender_serving import RecommenderServing


@pytest.fixture
def serving():
    rbm = RBM(6, 4, "pair", weight_stddev=1.0, seed=3)
    return RecommenderServing(rbm, movie_ids=[10, 20, 30, 40, 50, 60])


RATINGS = tf.constant([[1, 0, -1, -1, 1, -1], [-1, -1, -1, -1, -1, -1]], tf.float32)


def test_like_probability_is_the_mean_field_reconstruction(serving):
    got = serving.like_probability(RATINGS)["like_probability"].numpy()
    want = serving.rbm.reconstruct(RATINGS, RATINGS >= 0).numpy()
    np.testing.assert_array_equal(got, want)
    assert got.shape == (2, 6) and np.all((got > 0) & (got < 1))


def test_recommend_returns_the_best_unrated_movies_with_their_ids(serving):
    result = serving.recommend(RATINGS, tf.constant(3))
    probability = serving.rbm.reconstruct(RATINGS, RATINGS >= 0).numpy()
    first_user = result["movie_indices"][0].numpy()
    assert set(first_user) == {2, 3, 5}  # the only unrated movies of user 0
    np.testing.assert_array_equal(result["scores"][0].numpy(), np.sort(probability[0, [2, 3, 5]])[::-1])
    np.testing.assert_array_equal(result["movie_ids"].numpy(), (result["movie_indices"].numpy() + 1) * 10)
    # asking for more movies than are unrated returns those, then padding, never a rated one
    more = serving.recommend(RATINGS, tf.constant(50))
    assert more["movie_indices"].shape == (2, 6)
    np.testing.assert_array_equal(more["num_recommended"].numpy(), [3, 6])
    assert set(more["movie_indices"][0, :3].numpy()) == {2, 3, 5}
    np.testing.assert_array_equal(more["movie_indices"][0, 3:].numpy(), [-1, -1, -1])
    np.testing.assert_array_equal(more["movie_ids"][0, 3:].numpy(), [-1, -1, -1])
    np.testing.assert_array_equal(more["scores"][0, 3:].numpy(), [-1.0, -1.0, -1.0])


def test_ratings_outside_minus_one_zero_one_are_refused(serving):
    bad = tf.constant([[1, 0, 2, -1, 1, -1]], tf.float32)
    for signature in (lambda: serving.like_probability(bad), lambda: serving.recommend(bad, tf.constant(2))):
        with pytest.raises(tf.errors.InvalidArgumentError, match="ratings must be -1"):
            signature()
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be at least 1"):
        serving.recommend(RATINGS, tf.constant(0))


def test_wrong_width_and_dtype_are_refused(serving):
    with pytest.raises((ValueError, TypeError)):
        serving.like_probability(tf.zeros([1, 5]))
    with pytest.raises((ValueError, TypeError)):
        serving.like_probability(tf.zeros([1, 6], tf.int32))


def test_movie_ids_must_match_the_model():
    with pytest.raises(ValueError, match="3 movie ids for an RBM of 6 movies"):
        RecommenderServing(RBM(6, 2), movie_ids=[1, 2, 3])
