"""EASE, I-AutoRec and Mult-VAE through their library API: the numbers that matter against
numpy on tiny cases, and exports that a fresh process serves with the same outputs."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from autoencoders_tf.autorec import FOLD_IN_BIAS
from autoencoders_tf.autorec import AutoRec
from autoencoders_tf.autorec import AutoRecRecommender
from autoencoders_tf.ease import EASE
from autoencoders_tf.ease import ease_weights
from autoencoders_tf.ease import gram_matrix
from autoencoders_tf.mult_vae import MultVAE
from autoencoders_tf.mult_vae import MultVAERecommender
from pipelines.movielens_data import prepare_movielens
from pipelines.rating_parts import RatingPart
from pipelines.rating_parts import SparseRows
from pipelines.rating_parts import rating_part
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommenders")
    raw = write_ml100k(root / "raw" / "ml-100k", planted_ml100k_ratings())
    return prepare_movielens("ml-100k", raw, root / "data", split="u1")


def part_of(stars):
    """A RatingPart whose inputs (and targets) are the dense star matrix `stars`."""
    rows = SparseRows.from_lists([np.flatnonzero(row) for row in stars],
                                 [row[row > 0] for row in stars])
    return RatingPart("train", stars.shape[1], 3.0, np.arange(len(stars)), rows, rows)


def test_ease_is_one_ridge_regression_per_movie_on_the_others():
    rng = np.random.default_rng(0)
    stars = (rng.random([12, 5]) < 0.5) * rng.integers(1, 6, [12, 5])
    x = (stars > 0).astype(np.float64)
    gram = gram_matrix(part_of(stars.astype(np.float32)), "rated")
    np.testing.assert_allclose(gram, x.T @ x)
    weights = ease_weights(gram, l2=2.0)
    assert np.all(np.diag(weights) == 0)
    for movie in range(5):
        others = [m for m in range(5) if m != movie]
        ridge = np.linalg.solve(x[:, others].T @ x[:, others] + 2.0 * np.eye(4), x[:, others].T @ x[:, movie])
        np.testing.assert_allclose(weights[others, movie], ridge, atol=1e-10)
    # "liked" counts only ratings >= 3; a user is scored as x B
    liked = (stars >= 3).astype(np.float64)
    np.testing.assert_allclose(gram_matrix(part_of(stars.astype(np.float32)), "liked"), liked.T @ liked)
    model = EASE(5, l2=2.0).fit(part_of(stars.astype(np.float32)))
    np.testing.assert_allclose(model.score(None, stars[:3]), x[:3] @ weights, rtol=1e-5, atol=1e-6)


def test_autorec_loss_ignores_unobserved_entries_and_matches_numpy():
    network = AutoRec(num_users=5, hidden=3, l2=0.1, seed=1)
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.integers(0, 6, [4, 5]), tf.float32)
    observed = tf.constant(rng.random([4, 5]) < 0.5)
    targets = np.where(observed, rng.integers(1, 6, [4, 5]), 0).astype(np.float32)
    changed = np.where(observed, targets, 7.0).astype(np.float32)  # missing entries' stored values

    def loss_and_gradients(stored):
        with tf.GradientTape() as tape:
            loss = network.compute_losses(inputs, tf.constant(stored), observed)["loss"]
        return loss.numpy(), [g.numpy() for g in tape.gradient(loss, network.trainable_weights)]

    loss, gradients = loss_and_gradients(targets)
    loss_changed, gradients_changed = loss_and_gradients(changed)
    assert loss == loss_changed
    for a, b in zip(gradients, gradients_changed):
        np.testing.assert_array_equal(a, b)
    member = network.members[0]
    w1, b1 = member.encoder.kernel.numpy(), member.encoder.bias.numpy()
    w2, b2 = member.decoder.kernel.numpy(), member.decoder.bias.numpy()
    output = 1 / (1 + np.exp(-(inputs.numpy() @ w1 + b1))) @ w2 + b2
    mask = observed.numpy()
    expected = np.mean((output - targets)[mask] ** 2) + 0.05 * (np.sum(w1 ** 2) + np.sum(w2 ** 2))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_autorec_predicts_training_users_from_their_column_and_folds_in_anyone_else():
    # one network without the biases: the paper's own
    model = AutoRecRecommender(6, 2, hidden=3, members=1, fold_in_l2=0.5, biases=False)
    rng = np.random.default_rng(0)
    codes = rng.random([6, 3]).astype(np.float32)
    model.codes.assign(codes[np.newaxis])
    model.user_ids.assign([10, 20])
    model.mean.assign(3.0)
    model.scale.assign([0.5, 5.0])
    stars = np.array([[4, 0, 2, 0, 5, 0], [1, 3, 0, 0, 0, 0]], np.float32)
    predicted = model.predict_stars(np.array([20, 99]), stars).numpy()
    decoder = model.network.members[0].decoder
    kernel, bias = decoder.kernel.numpy(), decoder.bias.numpy()
    np.testing.assert_allclose(predicted[0], np.clip(codes @ kernel[:, 1] + bias[1], 0.5, 5), rtol=1e-5)
    # user 99 is new: ridge regression of their centred ratings on [code, bias] of the rated movies
    features = np.concatenate([codes, np.full([6, 1], FOLD_IN_BIAS)], axis=1).astype(np.float64)
    rated = stars[1] > 0
    weights = np.linalg.solve(features[rated].T @ features[rated] + 0.5 * np.eye(4),
                              features[rated].T @ (stars[1, rated] - 3.0))
    np.testing.assert_allclose(predicted[1], np.clip(3.0 + features @ weights, 0.5, 5), rtol=1e-4)


def test_an_autorec_ensemble_learns_each_member_on_its_own_loss_and_predicts_their_mean():
    network = AutoRec(num_users=5, hidden=3, l2=0.1, seed=1, members=3)
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 6, [4, 5]).astype(np.float32)
    targets = np.where(rng.random([4, 5]) < 0.5, rng.integers(1, 6, [4, 5]), 0).astype(np.float32)
    weights = [[layer.kernel.numpy(), layer.bias.numpy()] for member in network.members
               for layer in (member.encoder, member.decoder)]
    assert not np.allclose(weights[0][0], weights[2][0])  # the members start apart
    outputs = [1 / (1 + np.exp(-(inputs @ w1 + b1))) @ w2 + b2
               for (w1, b1), (w2, b2) in zip(weights[::2], weights[1::2])]
    np.testing.assert_allclose(network(tf.constant(inputs)), np.mean(outputs, axis=0), rtol=1e-5, atol=1e-6)
    mask = targets > 0
    expected = sum(np.mean((output - targets)[mask] ** 2) + 0.05 * (np.sum(w1 ** 2) + np.sum(w2 ** 2))
                   for output, (w1, _), (w2, _) in zip(outputs, weights[::2], weights[1::2]))
    with tf.GradientTape() as tape:
        loss = network.compute_losses(tf.constant(inputs), tf.constant(targets))["loss"]
    assert loss.numpy() == pytest.approx(expected, rel=1e-5)
    # each member's gradient is its own: member 0 alone (the same seed) gets the same one
    gradients = tape.gradient(loss, network.members[0].trainable_weights)
    alone = AutoRec(num_users=5, hidden=3, l2=0.1, seed=1)
    with tf.GradientTape() as tape:
        alone_loss = alone.compute_losses(tf.constant(inputs), tf.constant(targets))["loss"]
    for a, b in zip(gradients, tape.gradient(alone_loss, alone.trainable_weights)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(alone.members[0].encoder.kernel, weights[0][0])

    # the recommender: a training user and a folded-in one, each the mean of the members' own
    model = AutoRecRecommender(6, 2, hidden=3, members=2, fold_in_l2=0.5)
    codes = rng.random([2, 6, 3]).astype(np.float32)
    model.codes.assign(codes)
    model.user_ids.assign([10, 20])
    model.mean.assign(3.0)
    model.scale.assign([0.5, 5.0])
    model.user_bias.assign([0.3, -0.2])
    model.movie_bias.assign(rng.normal(size=6).astype(np.float32))
    movie_bias = model.movie_bias.numpy()
    stars = np.array([[4, 0, 2, 0, 5, 0], [1, 3, 0, 0, 5, 0]], np.float32)
    predicted = model.predict_stars(np.array([20, 99]), stars).numpy()
    known, folded = [], []
    rated = stars[1] > 0
    for member, member_codes in zip(model.network.members, codes):
        kernel, bias = member.decoder.kernel.numpy(), member.decoder.bias.numpy()
        known.append(member_codes @ kernel[:, 1] + bias[1])
        features = np.concatenate([member_codes, np.full([6, 1], FOLD_IN_BIAS)], axis=1).astype(np.float64)
        ridge = np.linalg.solve(features[rated].T @ features[rated] + 0.5 * np.eye(4),
                                features[rated].T @ (stars[1, rated] - 3.0 - movie_bias[rated]))
        folded.append(features @ ridge)
    np.testing.assert_allclose(predicted[0], np.clip(np.mean(known, axis=0) + 3.0 - 0.2 + movie_bias, 0.5, 5),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predicted[1], np.clip(np.mean(folded, axis=0) + 3.0 + movie_bias, 0.5, 5),
                               rtol=1e-4, atol=1e-4)


def movie_order(batches, stars):
    """Per member, the movies (columns of `stars`) in the order its batches hold them."""
    inputs = np.concatenate([values.numpy() for values, _, _ in batches], axis=1)
    return [[int(np.flatnonzero((stars.T == row).all(axis=1))[0]) for row in member] for member in inputs]


def test_each_autorec_member_trains_on_its_own_shuffle_of_the_movies_as_if_alone():
    rng = np.random.default_rng(4)
    stars = ((rng.random([6, 11]) < 0.7) * rng.integers(1, 6, [6, 11])).astype(np.float32)
    stars[0] = np.arange(1, 12) % 5 + 1  # every movie's vector is its own
    stars[1] = np.arange(1, 12) // 5 + 1
    keras.utils.set_random_seed(7)
    model = AutoRecRecommender(11, 6, hidden=3, members=2, batch_size=4, dropout=0.2)
    dataset = model.training_dataset(part_of(stars), shuffle_seed=7)
    epochs = [list(dataset) for _ in range(2)]
    assert [values.shape for values, _, _ in epochs[0]] == [(2, 4, 6), (2, 4, 6), (2, 3, 6)]
    orders = [movie_order(batches, stars) for batches in epochs]
    for epoch in orders:
        assert all(sorted(member) == list(range(11)) for member in epoch)
        assert epoch[0] != epoch[1]  # the members' orders differ...
    assert orders[0][0] != orders[1][0]  # ...and change every epoch
    # the same seed draws the same orders
    keras.utils.set_random_seed(7)
    assert movie_order(list(model.member_dataset(shuffle_seed=7)), stars) == orders[0]

    # member m learns from slice m alone: as a lone network of its seed on member m's batches
    network = AutoRec(num_users=6, hidden=3, l2=0.1, dropout=0.2, seed=1, members=2)
    network.compile(optimizer=keras.optimizers.Adam(0.01))
    for batch in epochs[0] + epochs[1]:
        network.train_step(batch)
    for m, member in enumerate(network.members):
        alone = AutoRec(num_users=6, hidden=3, l2=0.1, dropout=0.2, seed=1 + 2 * m)
        alone.compile(optimizer=keras.optimizers.Adam(0.01))
        for batch in epochs[0] + epochs[1]:
            alone.train_step(tuple(part[m] for part in batch))
        for a, b in zip(member.trainable_weights, alone.trainable_weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_autorec_learns_and_predicts_the_residual_over_the_user_and_movie_biases():
    rng = np.random.default_rng(3)
    stars = ((rng.random([7, 5]) < 0.6) * rng.integers(1, 6, [7, 5])).astype(np.float32)
    stars[:, 0] = 0.0  # a movie nobody rated: its bias is 0
    stars[:, 1] = np.maximum(stars[:, 1], 1.0)  # every user has a rating
    model = AutoRecRecommender(5, 7, hidden=3, members=1, bias_l2=4.0, batch_size=2)
    batches = list(model.training_dataset(part_of(stars), shuffle_seed=None))
    # the training batches are [members, batch, num_users]: the one member's
    inputs, targets, observed = (np.concatenate([b[i].numpy()[0] for b in batches]) for i in range(3))
    # the biases by hand: ridge least squares of the centred ratings on user and movie indicators
    users, movies = np.nonzero(stars)
    mean = stars[users, movies].mean()
    design = np.zeros([len(users), 12])
    design[np.arange(len(users)), users] = 1.0
    design[np.arange(len(users)), 7 + movies] = 1.0
    biases = np.linalg.solve(design.T @ design + 4.0 * np.eye(12),
                             design.T @ (stars[users, movies] - mean))
    user_bias, movie_bias = biases[:7], biases[7:]
    np.testing.assert_allclose(model.user_bias.numpy(), user_bias, atol=1e-4)
    np.testing.assert_allclose(model.movie_bias.numpy(), movie_bias, atol=1e-4)
    # movies are the cases: the inputs stay the stars, the targets are the residuals
    np.testing.assert_array_equal(inputs, stars.T)
    np.testing.assert_array_equal(observed, stars.T > 0)
    residual = stars.T - mean - user_bias[np.newaxis] - movie_bias[:, np.newaxis]
    np.testing.assert_allclose(targets, np.where(stars.T > 0, residual, 0.0), atol=1e-4)
    # a training user: their decoder column plus the baseline; anyone else: the fold-in of
    # their ratings less the mean and the movies' biases, plus those
    model.refresh()
    codes = model.codes.numpy()[0]
    decoder = model.network.members[0].decoder
    kernel, bias = decoder.kernel.numpy(), decoder.bias.numpy()
    new_user = np.array([4, 2, 0, 0, 5], np.float32)
    predicted = model.predict_stars(np.array([2, 99]), np.stack([stars[2], new_user])).numpy()
    expected = codes @ kernel[:, 2] + bias[2] + mean + user_bias[2] + movie_bias
    np.testing.assert_allclose(predicted[0], np.clip(expected, 1, 5), atol=1e-4)
    features = np.concatenate([codes, np.full([5, 1], FOLD_IN_BIAS)], axis=1).astype(np.float64)
    rated = new_user > 0
    weights = np.linalg.solve(features[rated].T @ features[rated] + 30.0 * np.eye(4),
                              features[rated].T @ (new_user[rated] - mean - movie_bias[rated]))
    np.testing.assert_allclose(predicted[1], np.clip(mean + movie_bias + features @ weights, 1, 5),
                               atol=1e-4)


def test_an_autorec_run_from_before_the_ensemble_is_refused_in_one_line(tmp_path):
    from autoencoders_tf.recommender_training import load_rec_run
    from pipelines.errors import RunError

    stored = {"model": "autorec", "num_movies": 6, "num_users": 2, "like_threshold_stars": 3.0,
              "hidden": 3, "l2": 0.001, "dropout": 0.5, "learning_rate": 0.003}
    (tmp_path / "run_config.json").write_text(json.dumps(stored))
    with pytest.raises(RunError, match="from before the ensemble.*train it again"):
        load_rec_run(tmp_path)


def test_mult_vae_loss_is_multinomial_likelihood_plus_beta_kl_in_numpy():
    network = MultVAE(num_movies=6, hidden=4, latent_dim=3, dropout=0.5, seed=2)
    x = np.array([[1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]], np.float32)
    epsilon = np.random.default_rng(0).normal(size=[3, 3]).astype(np.float32)
    losses = network.compute_losses(tf.constant(x), 0.13, epsilon=tf.constant(epsilon))
    weights = [layer.get_weights() for layer in (network.encoder_hidden, network.posterior,
                                                 network.decoder_hidden, network.logits)]
    normalised = x / np.linalg.norm(x, axis=1, keepdims=True)
    hidden = np.tanh(normalised @ weights[0][0] + weights[0][1])
    posterior = hidden @ weights[1][0] + weights[1][1]
    z_mean, z_log_var = posterior[:, :3], posterior[:, 3:]
    z = z_mean + np.exp(0.5 * z_log_var) * epsilon
    logits = np.tanh(z @ weights[2][0] + weights[2][1]) @ weights[3][0] + weights[3][1]
    log_softmax = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    neg_log_likelihood = -np.mean(np.sum(x * log_softmax, axis=1))
    kl = np.mean(0.5 * np.sum(-z_log_var + np.exp(z_log_var) + z_mean ** 2 - 1, axis=1))
    assert losses["neg_log_likelihood"].numpy() == pytest.approx(neg_log_likelihood, rel=1e-5)
    assert losses["kl"].numpy() == pytest.approx(kl, rel=1e-5)
    assert losses["loss"].numpy() == pytest.approx(neg_log_likelihood + 0.13 * kl, rel=1e-5)


def test_mult_vae_kl_weight_rises_linearly_to_its_cap_over_updates():
    import keras

    network = MultVAE(num_movies=6, hidden=4, latent_dim=2, anneal_cap=0.2, anneal_steps=4)
    network.compile(optimizer=keras.optimizers.SGD(0.01))
    network.optimizer.build(network.trainable_variables)
    x = tf.constant([[1, 0, 1, 0, 0, 1]], tf.float32)
    used = []
    for _ in range(6):
        used.append(float(network.beta()))  # the weight this update's loss gets
        network.train_step(x)
    np.testing.assert_allclose(used, [0.0, 0.05, 0.1, 0.15, 0.2, 0.2], atol=1e-7)
    assert float(network.update_count) == 6


SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    inputs = np.load(sys.argv[2])
    outputs = {}
    for name, path in json.loads(sys.argv[1]).items():
        signatures = tf.saved_model.load(path).signatures
        if name == "autorec":
            served = signatures["serving_default"](user_ids=tf.constant(inputs["user_ids"]),
                                                  ratings=tf.constant(inputs["stars"]))
            top = signatures["recommend"](user_ids=tf.constant(inputs["user_ids"]),
                                          ratings=tf.constant(inputs["stars"]), k=tf.constant(40))
            outputs[name] = served["predicted_rating"].numpy().tolist()
        else:
            served = signatures["serving_default"](ratings=tf.constant(inputs["labels"]))
            top = signatures["recommend"](ratings=tf.constant(inputs["labels"]), k=tf.constant(40))
            outputs[name] = served["scores"].numpy().tolist()
        outputs[name + "_top"] = top["movie_indices"].numpy().tolist()
        outputs[name + "_count"] = top["num_recommended"].numpy().tolist()
    print(json.dumps(outputs))
""")


def test_exports_give_the_same_outputs_in_a_fresh_process(data, tmp_path):
    train = rating_part(data.train)
    models = {
        "ease": EASE(data.num_movies, l2=10.0, movie_ids=data.movie_ids).fit(data.train),
        "mult-vae": MultVAERecommender(data.num_movies, hidden=8, latent_dim=4, epochs=2,
                                       batch_size=20, movie_ids=data.movie_ids),
        "autorec": AutoRecRecommender(data.num_movies, train.num_users, hidden=6, members=2,
                                      epochs=2, batch_size=10, movie_ids=data.movie_ids),
    }
    models["mult-vae"].fit(data.train)
    models["autorec"].fit(data.train)
    test = rating_part(data.test)
    stars = test.inputs.dense(range(4), data.num_movies)
    stars[3] = 0.0
    stars[3, :3] = [5, 1, 4]  # a user never seen in training
    user_ids = np.append(test.user_ids[:3], 10_000)
    labels = models["ease"].labels(stars)
    paths = {name: str(model.export(tmp_path / name / "1")) for name, model in models.items()}
    np.savez(tmp_path / "inputs.npz", stars=stars, labels=labels, user_ids=user_ids)
    served = subprocess.run(
        [sys.executable, "-c", SERVE, json.dumps(paths), str(tmp_path / "inputs.npz")],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    outputs = json.loads(served.stdout.splitlines()[-1])
    for name, model in models.items():
        np.testing.assert_allclose(outputs[name], model.score(user_ids, stars), rtol=1e-5, atol=1e-5)
        # every unrated movie is recommended, no rated one; then padding
        unrated = (stars == 0).sum(axis=1)
        assert outputs[name + "_count"] == unrated.tolist()
        for row, top in enumerate(outputs[name + "_top"]):
            assert all(stars[row, index] == 0 for index in top[:unrated[row]])
            assert set(top[unrated[row]:]) <= {-1}
        expected = [model.movie_ids.index(movie_id) for movie_id, _, _ in
                    model.recommend(stars[0], k=3, user_id=int(user_ids[0]))]
        assert outputs[name + "_top"][0][:3] == expected


def test_a_served_model_refuses_ratings_it_cannot_read(data, tmp_path):
    model = EASE(data.num_movies, l2=10.0).fit(data.train)
    served = tf.saved_model.load(str(model.export(tmp_path / "ease"))).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="ratings must be -1"):
        served(ratings=tf.fill([1, data.num_movies], 4.0))


def test_the_readme_workflow_on_both_protocols(data):
    from autoencoders_tf import EASEConfig
    from autoencoders_tf import fit_rec_model
    from pipelines import RatingBaselines
    from pipelines import hold_out_users

    autorec = AutoRecRecommender(data.num_movies, data.train.num_users, hidden=8, epochs=2)
    autorec.fit(data.train, validation_data=data.validation)
    assert set(autorec.history.history) >= {"loss", "rmse", "val_rmse", "val_mae"}
    assert autorec.evaluate(data.test)["num_ratings"] == rating_part(data.test).targets.num_entries
    assert set(RatingBaselines(data.train, data.validation).evaluate(data.test)) == {
        "global_mean", "user_item_biases"}
    ease, notes = fit_rec_model(EASEConfig(), data.train, data.validation)
    assert notes["l2"] == ease.l2 and len(notes["selection"]) == 2 * len(EASEConfig.L2_CHOICES)
    stars = np.zeros(data.num_movies, np.float32)
    stars[:3] = [5, 4, 1]
    assert not {movie_id for movie_id, _, _ in ease.recommend(stars, k=5)} & set(ease.movie_ids[:3])
    users = hold_out_users(data)
    vae = MultVAERecommender(data.num_movies, hidden=8, latent_dim=4, epochs=2, batch_size=20)
    vae.fit(users.train, validation_data=users.validation)
    assert vae.evaluate(users.test)["num_ranked_users"] > 0


def test_the_networks_rebuild_from_their_config():
    for network in (AutoRec(num_users=7, hidden=3, l2=0.1, dropout=0.2, seed=4, members=2),
                    MultVAE(num_movies=9, hidden=5, latent_dim=2, anneal_steps=10)):
        clone = type(network).from_config(network.get_config())
        assert clone.get_config() == network.get_config()
        assert [w.shape for w in clone.weights] == [w.shape for w in network.weights]
