"""The rating RBM: its units against numpy, its sampling, and a run through rec-train."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rbm_tf.rating_rbm import RatingRBM
from rbm_tf.rbm import SparseRatings
from scripts import rbm_prepare
from scripts import rec_train
from tests.conftest import randomised
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def tiny_rbm(num_movies=5, levels=3, hidden=4, seed=2):
    return randomised(RatingRBM(num_movies, levels, hidden, seed=seed), seed, weight_stddev=0.7)


def test_hidden_and_level_probabilities_match_a_one_hot_numpy_computation():
    rbm = tiny_rbm()
    rows, movies, levels = np.array([0, 0, 1, 1, 1]), np.array([4, 1, 0, 1, 3]), np.array([2, 0, 1, 1, 0])
    ratings, rated = SparseRatings.of_movies(rows, movies, levels, 2)
    hidden = rbm.sparse_hidden_probability(ratings, rbm.rows_of(rated)[0]).numpy()
    weights = rbm.weights.numpy().reshape(5, 3, 4)
    one_hot = np.zeros([2, 5, 3])
    one_hot[rows, movies, levels] = 1.0  # a movie not rated has no unit: all zeros
    expected = 1 / (1 + np.exp(-(np.einsum("bmk,mkh->bh", one_hot, weights) + rbm.hidden_bias.numpy())))
    np.testing.assert_allclose(hidden, expected, rtol=1e-5)
    bias = rbm.visible_bias.numpy().reshape(5, 3)
    dense = softmax(np.einsum("bh,mkh->bmk", hidden, weights) + bias)
    np.testing.assert_allclose(rbm.level_probability(tf.constant(hidden)), dense, rtol=1e-5)
    logits = rbm.level_logits(tf.constant(hidden), ratings, *rbm.rows_of(rated))
    np.testing.assert_allclose(tf.nn.softmax(logits), dense[rows, movies], rtol=1e-5)


def test_sampled_levels_follow_the_softmax():
    rbm = tiny_rbm()
    logits = tf.constant([[0.0, 1.0, -1.0]] * 20000)
    counts = np.bincount(rbm._sample_levels(logits).numpy(), minlength=3) / 20000
    np.testing.assert_allclose(counts, softmax(np.array([0.0, 1.0, -1.0])), atol=0.015)


def test_cd_gradient_of_a_level_moves_its_row_toward_the_data():
    """With a negative phase that can only disagree, the data's level row gets +h and the
    biases of the batch's levels sum to zero per movie (a softmax gradient)."""
    rbm = tiny_rbm()
    ratings, rated = SparseRatings.of_movies(np.array([0, 1]), np.array([2, 2]), np.array([1, 1]), 2)
    weights, bias, _, _ = rbm.sparse_contrastive_divergence(ratings, *rbm.rows_of(rated), k=1)
    np.testing.assert_allclose(bias.numpy().sum(axis=-1), 0.0, atol=1e-6)
    assert bias.numpy()[0, 1] <= 0.0  # the data's level: its minimised gradient is never positive


@pytest.mark.parametrize("variant", ["user", "item"])
def test_rec_train_fits_the_rating_rbm_beside_its_baselines(variant, tmp_path, capsys):
    raw = write_ml100k(tmp_path / "raw" / "ml-100k", planted_ml100k_ratings())
    assert rbm_prepare.main(["--raw-dir", str(raw.parent), "--data-dir", str(tmp_path / "data")]) == 0
    run_dir = tmp_path / "run"
    assert rec_train.main(["--model", "rating-rbm", "--variant", variant, "--hidden", "8",
                           "--epochs", "4", "--learning-rate", "0.3", "--data-dir", str(tmp_path / "data"),
                           "--run-dir", str(run_dir)]) == 0
    assert "rating-rbm: " in capsys.readouterr().out
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    assert set(final["baselines"]) == {"global_mean", "user_item_biases"}
    assert 0 < final["test_mae"] <= final["test_rmse"] < 2.0 and 0.0 <= final["test_auc"] <= 1.0
    # the export serves in a fresh process what the model predicts here
    from pipelines.movielens_data import ItemPart
    from rbm_tf.rating_recommender import ItemServing
    from rbm_tf.rating_recommender import load_rating_run
    from rbm_tf.recommender_training import load_run_data

    model, data = load_rating_run(run_dir), load_run_data(run_dir)
    stars = np.zeros([2, data.num_movies], np.float32)
    stars[0, :3] = [5, 1, 4]
    stars[1, 5] = 2
    user_ids = tf.constant([1, 99999], tf.int64)  # a training user, and one the model never saw
    if variant == "user":
        expected = model.predict(stars)
    else:
        serving = ItemServing(model, ItemPart([data.train]), data)
        expected = serving.predict(user_ids, tf.constant(stars)).numpy()
        np.testing.assert_allclose(expected[1], serving.movie_mean.numpy(), rtol=1e-6)
    code = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        f"f = tf.saved_model.load({str(final['export'])!r}).signatures['serving_default']\n"
        "stars = tf.constant(json.loads(sys.stdin.read()), tf.float32)\n"
        "out = f(user_ids=tf.constant([1, 99999], tf.int64), ratings=stars)['predicted_rating']\n"
        "print(json.dumps(out.numpy().tolist()))\n")
    served = subprocess.run([sys.executable, "-c", code], input=json.dumps(stars.tolist()),
                            capture_output=True, text=True, check=True).stdout
    np.testing.assert_allclose(np.array(json.loads(served.strip().splitlines()[-1])), expected, rtol=1e-5)
