"""Rating and ranking metrics, their baselines and the held-out-users protocol, against hand
computations in numpy on tiny cases."""

import math

import numpy as np
import pytest

from pipelines.movielens_data import prepare_movielens
from pipelines.ranking_eval import MostPopular
from pipelines.ranking_eval import RankingMetrics
from pipelines.ranking_eval import evaluate_ranking
from pipelines.rating_eval import GlobalMean
from pipelines.rating_eval import RatingBaselines
from pipelines.rating_eval import RatingBiases
from pipelines.rating_eval import RatingErrors
from pipelines.rating_eval import evaluate_ratings
from pipelines.rating_parts import RatingPart
from pipelines.rating_parts import SparseRows
from pipelines.rating_parts import hold_out_users
from pipelines.rating_parts import rating_part
from pipelines.recommender_eval import RatingMetrics
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ratings")
    raw = write_ml100k(root / "raw" / "ml-100k", planted_ml100k_ratings())
    return prepare_movielens("ml-100k", raw, root / "data", split="u1")


def tiny_part():
    """3 users, 4 movies: inputs and held-out targets in stars."""
    inputs = SparseRows.from_lists([[0, 1], [1, 2, 3], [0]], [[5, 3], [4, 2, 1], [2]])
    targets = SparseRows.from_lists([[2], [0], [1, 3]], [[4], [5], [3, 1]])
    return RatingPart("test", 4, 3.0, np.array([7, 8, 9]), inputs, targets)


def test_rmse_and_mae_match_numpy_on_the_held_out_ratings_only():
    predicted = np.array([[1, 1, 3.5, 1], [4, 9, 9, 9], [9, 2, 9, 1.5]], np.float32)
    result = evaluate_ratings(lambda users, inputs: predicted, tiny_part())
    # targets: (0,2)=4 -> 3.5, (1,0)=5 -> 4, (2,1)=3 -> 2, (2,3)=1 -> 1.5; the 9s are never scored
    errors = np.array([3.5 - 4, 4 - 5, 2 - 3, 1.5 - 1])
    assert result["rmse"] == pytest.approx(math.sqrt(np.mean(errors ** 2)))
    assert result["mae"] == pytest.approx(np.mean(np.abs(errors)))
    assert result["num_ratings"] == 4
    assert RatingErrors().result() == {"rmse": None, "mae": None, "auc": None, "num_ratings": 0}


def test_the_like_auc_ranks_held_out_likes_by_their_predicted_stars():
    # held out: three likes (4, 5 and 3 stars) and one dislike (1 star, at (2, 3))
    predicted = np.array([[1, 1, 3.5, 1], [4, 9, 9, 9], [9, 2, 9, 1.5]], np.float32)
    assert evaluate_ratings(lambda users, inputs: predicted, tiny_part())["auc"] == pytest.approx(1.0)
    # the dislike predicted above the like predicted 2 stars, below the other two: 2 of 3 pairs
    predicted[2, 3] = 3.0
    assert evaluate_ratings(lambda users, inputs: predicted, tiny_part())["auc"] == pytest.approx(2 / 3, abs=1e-3)
    # a constant prediction (the global mean) cannot tell them apart
    constant = np.full([3, 4], 3.7, np.float32)
    assert evaluate_ratings(lambda users, inputs: constant, tiny_part())["auc"] == pytest.approx(0.5)


def test_global_mean_predicts_the_mean_training_rating():
    part = tiny_part()
    assert GlobalMean(part)(None, np.zeros([2, 4]))[0, 0] == pytest.approx(17 / 6)


def test_rating_biases_solve_the_regularised_least_squares_problem():
    part = tiny_part()
    model = RatingBiases(part, l2=2.0, iterations=500)
    # the same problem as one ridge regression over [user one-hots, movie one-hots]
    users = part.inputs.row_of_entries()
    design = np.zeros([part.inputs.num_entries, 3 + 4])
    design[np.arange(len(users)), users] = 1
    design[np.arange(len(users)), 3 + part.inputs.movies] = 1
    residual = part.inputs.ratings - part.inputs.ratings.mean()
    biases = np.linalg.solve(design.T @ design + 2.0 * np.eye(7), design.T @ residual)
    np.testing.assert_allclose(model.movie_bias, biases[3:], atol=1e-4)
    # a user's bias is refitted from the ratings given: a training user gets the fitted one
    np.testing.assert_allclose(model.user_bias(part.inputs.dense(range(3), 4)), biases[:3], atol=1e-4)
    predicted = model(None, part.inputs.dense([1], 4))
    expected = np.clip(part.inputs.ratings.mean() + biases[1] + biases[3:], 1, 5)
    np.testing.assert_allclose(predicted[0], expected, atol=1e-4)


def test_ranking_metrics_match_a_hand_count_with_truncated_recall():
    # 12 movies, scores falling with the index; the user rated movies 0 and 1 and holds out
    # likes of 2, 5 and 11: ranks 1 (movie 2), 4 (movie 5) and 10 (movie 11) among the unrated
    scores = np.linspace(1.0, 0.45, 12)[np.newaxis]
    seen = np.zeros([1, 12], bool)
    seen[0, :2] = True
    relevant = np.zeros([1, 12], bool)
    relevant[0, [2, 5, 11]] = True
    metrics = RankingMetrics()
    metrics.update(scores, seen, relevant)
    result = metrics.result()
    dcg = 1 / math.log2(2) + 1 / math.log2(5) + 1 / math.log2(11)
    ideal = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert result["ndcg_at_10"] == pytest.approx(dcg / ideal)
    assert result["ndcg_at_100"] == pytest.approx(dcg / ideal)
    assert result["recall_at_10"] == pytest.approx(3 / 3)
    assert result["num_ranked_users"] == 1
    # with more likes than k, recall divides by k: 2 of the top 2 are likes -> 1.0, not 2/3
    metrics.reset()
    relevant[0, [3]] = True
    metrics.update(scores, seen, relevant)
    values = metrics.result()
    assert values["recall_at_10"] == pytest.approx(4 / 4)
    # nothing to rank: no user counted, no number
    metrics.reset()
    metrics.update(scores, seen, np.zeros_like(relevant))
    assert metrics.result()["ndcg_at_10"] is None and metrics.result()["num_ranked_users"] == 0


def test_ndcg_at_10_agrees_with_the_packages_rating_metrics(data):
    # popularity with ties broken by movie index, so both rank the same order
    popularity = MostPopular(data.train).popularity
    scores = popularity + np.linspace(0.1, 0.0, len(popularity), dtype=np.float32)
    ours = evaluate_ranking(lambda users, inputs: scores, data.test)
    theirs = RatingMetrics()
    for batch in data.test.dataset(64):
        theirs.update_ranking(np.broadcast_to(scores, batch["inputs"].shape), batch["inputs"],
                              batch["targets"])
    assert ours["ndcg_at_10"] == pytest.approx(float(theirs.ndcg.result()), rel=1e-5)
    assert ours["num_ranked_users"] == int(theirs.ndcg.count.numpy())


def test_rating_baselines_choose_the_biases_l2_on_validation(data):
    baselines = RatingBaselines(data.train, data.validation, l2_choices=(1.0, 1000.0))
    results = baselines.evaluate(data.test, prefix="test_")
    assert set(results) == {"global_mean", "user_item_biases"}
    assert set(results["global_mean"]) == {"test_rmse", "test_mae", "test_auc"}
    assert results["global_mean"]["test_auc"] == pytest.approx(0.5)
    assert results["user_item_biases"]["test_rmse"] < results["global_mean"]["test_rmse"]
    on_validation = {l2: evaluate_ratings(RatingBiases(data.train, l2), data.validation)["rmse"]
                     for l2 in (1.0, 1000.0)}
    assert baselines.bias_l2 == min(on_validation, key=on_validation.get)
    assert on_validation[1.0] != on_validation[1000.0]


def test_held_out_users_are_disjoint_seeded_and_split_80_20(data):
    holdout = hold_out_users(data, fraction=0.1, seed=3)
    again = hold_out_users(data, fraction=0.1, seed=3)
    train, validation, test = holdout.train, holdout.validation, holdout.test
    assert len(validation.user_ids) == len(test.user_ids) == 8
    assert not set(validation.user_ids) & set(test.user_ids)
    assert not set(train.user_ids) & (set(validation.user_ids) | set(test.user_ids))
    np.testing.assert_array_equal(again.test.user_ids, test.user_ids)
    np.testing.assert_array_equal(again.test.targets.movies, test.targets.movies)
    assert not np.array_equal(hold_out_users(data, fraction=0.1, seed=4).test.user_ids, test.user_ids)
    # every held-out user's training ratings (validation ones included), 80% in, 20% out,
    # and nothing of the split's test ratings
    train_part, validation_part = rating_part(data.train), rating_part(data.validation)
    for row, user in enumerate(test.user_ids):
        inputs, targets = test.inputs.row(row), test.targets.row(row)
        known = dict(zip(*train_part.inputs.row(int(np.flatnonzero(train_part.user_ids == user)[0]))))
        if user in validation_part.user_ids:
            known.update(zip(*validation_part.targets.row(int(np.flatnonzero(validation_part.user_ids == user)[0]))))
        together = dict(zip(*inputs)) | dict(zip(*targets))
        assert together == known and not set(inputs[0]) & set(targets[0])
        assert len(inputs[0]) == round(0.8 * len(known))
    # the training part is the other users' ratings, as inputs and targets
    assert train.inputs is train.targets
    assert train.num_users + 16 == train_part.num_users


def test_held_out_users_refuse_a_fraction_that_leaves_nobody(data):
    with pytest.raises(ValueError, match="fraction must be in"):
        hold_out_users(data, fraction=0.6)
