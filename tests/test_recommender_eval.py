"""How recommenders are measured: metrics against a hand count, baselines fitted on training
ratings only."""

import math

import numpy as np
import pytest
import tensorflow as tf

from pipelines.movielens_data import prepare_movielens
from pipelines.recommender_eval import BASELINE_METRICS
from pipelines.recommender_eval import CLASSIFICATION_METRICS
from pipelines.recommender_eval import RANKING_METRICS
from pipelines.recommender_eval import Baselines
from pipelines.recommender_eval import RatingMetrics
from pipelines.recommender_eval import UserItemBiases
from pipelines.recommender_eval import like_rates
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k


def test_rating_metrics_match_a_hand_count_and_an_exact_auc():
    probability = np.array([[0.9, 0.2, 0.6], [0.4, 0.8, 0.1]], np.float32)
    labels = np.array([[1, 0, 0], [1, -1, 0]], np.float32)
    metrics = RatingMetrics(majority_label=1.0)
    metrics.update(probability, np.full_like(labels, -1.0), labels)
    result = metrics.result()
    # known: (0.9,1) (0.2,0) (0.6,0) (0.4,1) (0.1,0): correct at 0.5 -> 0.9, 0.2, 0.1 = 3/5
    assert result["accuracy"] == pytest.approx(3 / 5) and result["error"] == pytest.approx(2 / 5)
    assert result["majority_accuracy"] == pytest.approx(2 / 5)
    # exact AUC: positives {0.9, 0.4} vs negatives {0.2, 0.6, 0.1}: 5 of 6 pairs ordered
    assert result["auc"] == pytest.approx(5 / 6, abs=1e-3)
    assert result["num_ratings"] == 5
    squared = [(0.9 - 1) ** 2, 0.2 ** 2, 0.6 ** 2, (0.4 - 1) ** 2, 0.1 ** 2]
    assert result["squared_error"] == pytest.approx(np.mean(squared), rel=1e-5)
    log_loss = -np.mean([math.log(0.9), math.log(0.8), math.log(0.4), math.log(0.4), math.log(0.9)])
    assert result["log_loss"] == pytest.approx(log_loss, rel=1e-5)


def test_ranking_metrics_match_a_hand_count_and_skip_rated_movies():
    # 12 movies; user 0 rated movies 0 and 1 (their highest scores), holds out likes of 2 and 11
    # and a dislike of 3; user 1 holds out no like and is not ranked
    scores = np.linspace(1.0, 0.45, 12, dtype=np.float32)[np.newaxis].repeat(2, axis=0)
    inputs = np.full([2, 12], -1.0, np.float32)
    inputs[0, :2] = 1.0
    targets = np.full([2, 12], -1.0, np.float32)
    targets[0, [2, 11, 3]] = [1.0, 1.0, 0.0]
    targets[1, 4] = 0.0
    metrics = RatingMetrics(k=10)
    metrics.update(scores, inputs, targets)
    result = metrics.result()
    # candidates in score order: 2, 3, ..., 11; the top 10 are 2..11 (rated 0 and 1 are skipped):
    # hits at ranks 1 (movie 2) and 10 (movie 11)
    assert result["num_ranked_users"] == 1
    assert result["precision_at_10"] == pytest.approx(2 / 10)
    assert result["recall_at_10"] == pytest.approx(2 / 2)
    dcg = 1 / math.log2(2) + 1 / math.log2(11)
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert result["ndcg_at_10"] == pytest.approx(dcg / ideal, rel=1e-6)
    # a training part (targets are the inputs) has nothing to rank
    metrics.reset()
    metrics.update(scores, targets, targets)
    assert "ndcg_at_10" not in metrics.result()


def test_like_rates_shrink_towards_the_overall_rate():
    movies = np.array([0, 0, 1, 2, 2, 2])
    labels = np.array([1, 1, 0, 1, 0, 1], np.float32)
    rates = like_rates(movies, labels, num_movies=4, prior_strength=2.0)
    overall = 4 / 6
    np.testing.assert_allclose(rates, [(2 + 2 * overall) / 4, (0 + 2 * overall) / 3,
                                       (2 + 2 * overall) / 5, overall], rtol=1e-6)


def test_user_item_biases_learn_who_likes_and_what_is_liked():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, 2000)
    movies = rng.integers(0, 10, 2000)
    # users 0-9 like more; movies 0-4 are liked more
    logits = 1.5 * (users < 10) - 0.75 + 1.5 * (movies < 5) - 0.75
    labels = (rng.random(2000) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    model = UserItemBiases(users + 100, movies, labels, num_movies=10, l2=1e-5)
    user_bias, movie_bias = model.user_bias.numpy(), model.movie_bias.numpy()
    assert user_bias[:10].mean() - user_bias[10:].mean() == pytest.approx(1.5, abs=0.4)
    assert movie_bias[:5].mean() - movie_bias[5:].mean() == pytest.approx(1.5, abs=0.4)
    probability = model(tf.constant([100, 119, 999], tf.int64), tf.zeros([3, 10])).numpy()
    assert probability[0, 0] > probability[1, 0] and probability[0, 0] > probability[0, 9]
    # a user never seen in training gets no user bias
    expected = 1 / (1 + np.exp(-(model.global_bias.numpy() + movie_bias)))
    np.testing.assert_allclose(probability[2], expected, rtol=1e-6)


def test_baselines_are_fitted_on_training_ratings_and_report_their_own_metrics(tmp_path):
    raw = write_ml100k(tmp_path / "ml-100k", planted_ml100k_ratings())
    data = prepare_movielens("ml-100k", raw, tmp_path / "data", split="u1")
    baselines = Baselines(data)
    results = baselines.evaluate(data.test, prefix="test_")
    for name, metrics in results.items():
        assert set(metrics) == {f"test_{key}" for key in CLASSIFICATION_METRICS + RANKING_METRICS}
        assert {key for key, value in metrics.items() if value is not None} == {
            f"test_{key}" for key in BASELINE_METRICS[name]}
    assert results["majority"]["test_auc"] == pytest.approx(0.5)
    # "always like": its accuracy is the test like rate, since the training ratings mostly like
    assert results["majority"]["test_accuracy"] == pytest.approx(data.test.like_rate, abs=1e-6)
    # the taste groups are invisible to biases: they beat a constant, not the planted structure
    assert 0.5 < results["user_item_biases"]["test_auc"] < 0.9
    assert baselines.bias_l2 in (1e-5, 1e-4, 1e-3)


def test_the_ragged_evaluator_gives_the_dense_evaluators_numbers(tmp_path):
    """Scanning the catalogue in bound order, a few movies at a time, and stopping early finds
    the same top 10 as scoring every movie: for the baselines and for an RBM."""
    from pipelines.recommender_eval import Evaluator
    from pipelines.recommender_eval import RaggedEvaluator
    from rbm_tf.recommender import Recommender
    from rbm_tf.recommender import RecommenderScorer

    raw = write_ml100k(tmp_path / "ml-100k", planted_ml100k_ratings())
    data = prepare_movielens("ml-100k", raw, tmp_path / "data", split="u1")
    baselines = Baselines(data)
    model = Recommender(data.num_movies, hidden=8, epochs=2, batch_size=16, min_updates=0)
    model.fit(data.train)
    scorers = dict(baselines.predictors, rbm=RecommenderScorer(model))
    dense = {name: (lambda values: lambda user_ids, inputs: tf.broadcast_to(values, tf.shape(inputs)))(
        baselines.predictors[name].probability) for name in ("item_like_rate", "most_popular")}
    dense["user_item_biases"] = baselines.predictors["user_item_biases"]
    dense["rbm"] = lambda user_ids, inputs: model.like_probability(inputs)
    ranks = {"rbm": model.ranking_score}
    for name, predict in dense.items():
        expected = Evaluator(predict, data.num_movies, data.train.like_rate, rank=ranks.get(name))(data.test)
        evaluator = RaggedEvaluator(scorers[name], data.num_movies, data.train.like_rate, chunk=4)
        got = evaluator(data.test, batch_size=7)
        assert got.keys() == expected.keys() and expected["num_ranked_users"] > 0
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-5), (name, key)


def test_the_number_of_ratings_is_exact_beyond_what_a_float32_count_holds():
    metrics = RatingMetrics()
    many = tf.ones([2**24 + 1])
    metrics.update_classification(many, many)  # a float32 count holds 2^24 here
    metrics.update_classification(tf.ones([1]), tf.ones([1]))  # and 2^24 again
    assert metrics.result(ranking=False)["num_ratings"] == 2**24 + 2
