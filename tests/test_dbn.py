"""The DBN: image-style CD, pseudo-log-likelihood, greedy stacking, fine-tuning, generation, serving."""

import itertools
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from rbm_tf.classifier import ClassifierServing
from rbm_tf.classifier import build_classifier
from rbm_tf.dbn import DBN
from rbm_tf.dbn import check_layer_sizes
from rbm_tf.monitoring import binarize
from rbm_tf.monitoring import pseudo_log_likelihood
from rbm_tf.pretraining import GreedyPretrainer
from rbm_tf.rbm import RBM
from rbm_tf.training import CDConfig
from tests.conftest import randomised


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def random_rbm(num_visible, num_hidden, seed=3):
    return randomised(RBM(num_visible, num_hidden, "single", seed=seed), seed)


def test_mean_field_cd1_on_pixel_intensities_matches_numpy():
    rbm = random_rbm(5, 3)
    weights, visible_bias, hidden_bias = (v.numpy() for v in rbm.variables_for_training)
    pixels = np.array([[0.0, 0.3, 1.0, 0.7, 0.1], [0.9, 0.5, 0.0, 0.2, 1.0]], np.float32)
    noise = tf.random.Generator.from_state(rbm.generator.state.numpy(), rbm.generator.algorithm)
    gradients, _ = rbm.contrastive_divergence(pixels, k=1, mean_field_visible=True)
    # the only draw is the first hidden sample: the visible step takes probabilities
    hidden0 = sigmoid(pixels @ weights + hidden_bias)
    hidden_sample = (noise.uniform([2, 3]).numpy() < hidden0).astype(np.float32)
    visible1 = sigmoid(hidden_sample @ weights.T + visible_bias)
    hidden1 = sigmoid(visible1 @ weights + hidden_bias)
    expected = [-(pixels.T @ hidden0 - visible1.T @ hidden1) / 2,
                -(pixels - visible1).mean(axis=0), -(hidden0 - hidden1).mean(axis=0)]
    for got, want in zip(gradients, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def brute_force_log_probability(rbm):
    """log p(v) of every binary v of a tiny RBM, by enumerating all visible and hidden states."""
    weights, visible_bias, hidden_bias = (v.numpy().astype(np.float64) for v in rbm.variables_for_training)
    states = np.array(list(itertools.product([0.0, 1.0], repeat=rbm.num_visible)))
    hiddens = np.array(list(itertools.product([0.0, 1.0], repeat=rbm.num_hidden)))
    # -E(v, h) for every pair, summed over h
    negative_energy = (states @ visible_bias)[:, None] + (hiddens @ hidden_bias)[None] + states @ weights @ hiddens.T
    unnormalised = np.log(np.exp(negative_energy).sum(axis=1))
    return states, unnormalised - np.log(np.exp(unnormalised).sum())


def test_free_energy_of_a_4x3_rbm_matches_enumeration():
    rbm = random_rbm(4, 3)
    states, log_probability = brute_force_log_probability(rbm)
    free_energy = rbm.free_energy(states.astype(np.float32)).numpy()
    # p(v) = exp(-F(v)) / Z: differences of free energies are differences of log-probabilities
    np.testing.assert_allclose(-(free_energy - free_energy[0]), log_probability - log_probability[0],
                               rtol=1e-5, atol=1e-5)


def test_pseudo_log_likelihood_matches_enumerated_conditionals():
    rbm = random_rbm(4, 3)
    states, log_probability = brute_force_log_probability(rbm)
    index = {tuple(state): i for i, state in enumerate(states)}
    expected = []
    for state in states:
        total = 0.0
        for unit in range(4):
            flipped = state.copy()
            flipped[unit] = 1 - flipped[unit]
            mine, other = log_probability[index[tuple(state)]], log_probability[index[tuple(flipped)]]
            total += mine - np.logaddexp(mine, other)
        expected.append(total)
    got = pseudo_log_likelihood(rbm, states.astype(np.float32)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_pseudo_log_likelihood_is_the_same_in_chunks_and_rejects_pairs(monkeypatch):
    rbm = random_rbm(6, 4)
    visible = binarize(np.random.default_rng(0).random([9, 6]).astype(np.float32))
    whole = pseudo_log_likelihood(rbm, visible).numpy()
    from rbm_tf import monitoring
    monkeypatch.setattr(monitoring, "_MAX_FLIPPED_VALUES", 2 * 6 * 4)
    np.testing.assert_allclose(pseudo_log_likelihood(rbm, visible).numpy(), whole, rtol=1e-6)
    with pytest.raises(ValueError, match="single"):
        pseudo_log_likelihood(RBM(3, 2, "pair"), tf.zeros([1, 3]))


def test_binarize_is_a_fixed_bernoulli_sample():
    probability = tf.fill([200, 50], 0.3)
    first, second = binarize(probability), binarize(probability)
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first.numpy())) == {0.0, 1.0}
    assert abs(float(tf.reduce_mean(first)) - 0.3) < 0.02


def stripes(num_examples=400, seed=0):
    """Synthetic 'images' of 4 classes: 4x4 pictures with one bright row, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, num_examples)
    images = rng.random([num_examples, 4, 4, 1]).astype(np.float32) * 0.3
    images[np.arange(num_examples), labels, :, 0] = 0.7 + 0.3 * rng.random([num_examples, 4])
    return images, labels.astype(np.int64)


def test_greedy_stacking_feeds_each_layer_the_hidden_probabilities_of_the_one_below():
    images, labels = stripes(64)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    dbn = DBN([16, 8, 6, 5], seed=1)
    expected = images.reshape(64, 16)
    for layer, width in enumerate([16, 8, 6]):
        batches = list(dbn.layer_inputs(data, layer))
        got = np.concatenate([batch.numpy() for batch in batches])
        assert got.shape == (64, width)
        assert got.min() >= 0.0 and got.max() <= 1.0
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        rbm = dbn.rbms[layer]
        expected = sigmoid(expected @ rbm.weights.numpy() + rbm.hidden_bias.numpy())


def test_pretraining_moves_only_the_layer_being_trained():
    images, labels = stripes(64)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    dbn = DBN([16, 8, 6], seed=1)
    pretrainer = GreedyPretrainer(dbn, CDConfig(learning_rate=0.1, mean_field_visible=True), batch_size=16)
    before = [rbm.weights.numpy().copy() for rbm in dbn.rbms]
    pretrainer.start_layer(1, data)
    error = pretrainer.train_epoch(1, data)
    assert 0.0 < error < 1.0
    np.testing.assert_array_equal(dbn.rbms[0].weights.numpy(), before[0])
    assert not np.allclose(dbn.rbms[1].weights.numpy(), before[1])
    np.testing.assert_array_equal(pretrainer.epochs_done.numpy(), [0, 1])
    # the visible biases of layer 1 start at the log-odds of layer 0's mean hidden probability
    rates = dbn.hidden_probability(images.reshape(64, 16), 1).numpy().mean(axis=0)
    assert np.corrcoef(dbn.rbms[1].visible_bias.numpy(), np.log(rates / (1 - rates)))[0, 1] > 0.99


def test_fine_tuning_starts_from_exactly_the_pretrained_weights():
    dbn = DBN([16, 8, 6], seed=2)
    for rbm in dbn.rbms:
        rbm.hidden_bias.assign(tf.random.normal(rbm.hidden_bias.shape, seed=1))
    model = dbn.classifier(4, input_shape=(4, 4, 1))
    for index, rbm in enumerate(dbn.rbms):
        dense = model.get_layer(f"hidden_{index + 1}")
        np.testing.assert_array_equal(dense.kernel.numpy(), rbm.weights.numpy())
        np.testing.assert_array_equal(dense.bias.numpy(), rbm.hidden_bias.numpy())
    # so the network's last hidden layer is the DBN's mean-field up pass
    images = stripes(5)[0]
    top = keras.Model(model.input, model.get_layer("hidden_2").output)
    np.testing.assert_allclose(top(images).numpy(), dbn.hidden_probability(images.reshape(5, 16)).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_small_pretrained_dbn_beats_chance_on_synthetic_images():
    images, labels = stripes(400)
    train = tf.data.Dataset.from_tensor_slices((images[:300], labels[:300])).shuffle(300, seed=0).batch(20)
    dbn = DBN([16, 12, 12], seed=0)
    pretrainer = GreedyPretrainer(dbn, CDConfig(learning_rate=0.1, momentum=0.5, mean_field_visible=True),
                                  batch_size=20)
    for layer in range(dbn.num_layers):
        pretrainer.start_layer(layer, train)
        for _ in range(5):
            pretrainer.train_epoch(layer, train)
    keras.utils.set_random_seed(0)
    model = dbn.classifier(4, input_shape=(4, 4, 1))
    model.compile(keras.optimizers.SGD(0.5, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train, epochs=10, verbose=0)
    accuracy = model.evaluate(images[300:], labels[300:], verbose=0)[1]
    assert accuracy > 0.8  # chance is 0.25


def test_generated_images_are_probabilities_of_the_data_width():
    dbn = DBN([16, 8, 6], seed=0)
    samples = dbn.generate(7, gibbs_steps=5)
    assert samples.shape == (7, 16)
    assert float(tf.reduce_min(samples)) >= 0.0 and float(tf.reduce_max(samples)) <= 1.0
    started = dbn.generate(gibbs_steps=3, start=tf.zeros([2, 8]))
    assert started.shape == (2, 16)


@pytest.mark.parametrize("layer_sizes", [[6, 4], [5, 6, 4]], ids=["one_rbm", "two_rbms"])
def test_generate_returns_the_visible_probabilities_of_the_chains_last_hidden_sample(layer_sizes):
    dbn = DBN(layer_sizes, seed=0)
    rng = np.random.default_rng(3)
    for rbm in dbn.rbms:  # weights and biases large enough that the chain moves
        for variable in rbm.variables_for_training:
            variable.assign(rng.normal(0, 0.8, variable.shape).astype(np.float32))
    top = dbn.rbms[-1]
    weights, visible_bias, hidden_bias = (v.numpy() for v in top.variables_for_training)
    start = np.array([[1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1], [1, 1, 1, 1, 0, 0]], np.float32)
    noise = tf.random.Generator.from_state(top.generator.state.numpy(), top.generator.algorithm)
    samples = dbn.generate(gibbs_steps=3, start=start).numpy()
    # the chain by hand, drawing the same uniforms: h ~ p(h | v), then v ~ p(v | h), three times
    visible = start
    for _ in range(3):
        hidden = (noise.uniform([3, 4]).numpy() < sigmoid(visible @ weights + hidden_bias)).astype(np.float32)
        probability = sigmoid(hidden @ weights.T + visible_bias)
        visible = (noise.uniform([3, 6]).numpy() < probability).astype(np.float32)
    for rbm in reversed(dbn.rbms[:-1]):
        probability = sigmoid(probability @ rbm.weights.numpy().T + rbm.visible_bias.numpy())
    np.testing.assert_allclose(samples, probability, rtol=1e-5, atol=1e-6)
    assert np.all((samples > 0.0) & (samples < 1.0))
    assert len(np.unique(samples)) > 2


def test_bad_layer_lists_and_image_widths_give_clear_errors():
    with pytest.raises(ValueError, match="at least one hidden"):
        check_layer_sizes([784])
    with pytest.raises(ValueError, match="positive"):
        DBN([784, 0])
    with pytest.raises(ValueError, match="start at 500 but each example has 784"):
        build_classifier([500, 100], 10)
    data = tf.data.Dataset.from_tensor_slices(np.zeros([4, 28, 28, 1], np.float32)).batch(2)
    with pytest.raises(ValueError, match="start at 100 but each example has 784"):
        DBN([100, 50]).layer_inputs(data, 0)


SERVE_CHECK = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    images = np.load(sys.argv[2])
    result = served(images=tf.constant(images))
    np.save(sys.argv[3], result["probabilities"].numpy())
    assert result["class"].dtype == tf.int64
    for bad, expected in ((np.zeros([2, 28, 27, 1], np.float32), "shape [batch, 28, 28, 1]"),
                          (np.full([1, 28, 28, 1], 1.5, np.float32), "in [0, 1]")):
        try:
            served(images=tf.constant(bad))
        except tf.errors.InvalidArgumentError as error:
            assert expected in error.message, error.message
        else:
            raise AssertionError(f"accepted {bad.shape}")
    print("ok")
""")


def test_exported_classifier_serves_the_same_probabilities_in_a_fresh_process(tmp_path):
    dbn = DBN([784, 8, 6], seed=0)
    model = dbn.classifier(4)
    module = ClassifierServing(model)
    tf.saved_model.save(module, str(tmp_path / "model"), signatures=module.signatures())
    images = np.random.default_rng(0).random([6, 28, 28, 1]).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    script = tmp_path / "serve_check.py"
    script.write_text(SERVE_CHECK)
    completed = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "model"), str(tmp_path / "images.npy"),
         str(tmp_path / "served.npy")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().endswith("ok")
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), model(images).numpy(), rtol=1e-5, atol=1e-6)


def test_persistent_cd_pretraining_keeps_one_chain_per_layer_across_batches():
    images, labels = stripes(40)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(10)
    dbn = DBN([16, 8, 6], seed=1)
    pretrainer = GreedyPretrainer(dbn, CDConfig(persistent=True, mean_field_visible=True), batch_size=10)
    chains_before = [trainer.persistent_hidden.numpy().copy() for trainer in pretrainer.trainers]
    pretrainer.train_epoch(1, data)
    assert [trainer.persistent_hidden.shape for trainer in pretrainer.trainers] == [(10, 8), (10, 6)]
    np.testing.assert_array_equal(pretrainer.trainers[0].persistent_hidden.numpy(), chains_before[0])
    assert not np.array_equal(pretrainer.trainers[1].persistent_hidden.numpy(), chains_before[1])
