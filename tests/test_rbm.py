"""The RBM: sampling, free energy, CD gradients against numpy, masking, learning."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from pipelines.recommender_eval import RatingMetrics

from rbm_tf.rbm import RBM
from rbm_tf.training import CDConfig
from rbm_tf.training import CDTrainer
from tests.conftest import randomised


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def make_rbm(num_visible, num_hidden, layout, seed=7):
    return randomised(RBM(num_visible, num_hidden, layout, seed=seed), seed)


def numpy_units(visible, mask, layout):
    observed = np.where(mask, visible, 0.0)
    if layout == "single":
        return observed
    pair = np.stack([observed, np.where(mask, 1.0 - observed, 0.0)], axis=-1)
    return pair.reshape(visible.shape[0], -1)


def numpy_visible_probability(hidden, weights, visible_bias, layout):
    logits = hidden @ weights.T + visible_bias
    if layout == "single":
        return sigmoid(logits)
    logits = logits.reshape(hidden.shape[0], -1, 2)
    return sigmoid(logits[..., 0] - logits[..., 1])


def generator_copy(rbm):
    return tf.random.Generator.from_state(rbm.generator.state.numpy(), rbm.generator.algorithm)


VISIBLE = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 0, 0, 0]], np.float32)
MASK = np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 0], [0, 1, 1, 1, 1]], bool)


@pytest.mark.parametrize("layout", ["single", "pair"])
def test_cd1_gradients_match_a_numpy_hand_computation(layout):
    rbm = make_rbm(5, 3, layout)
    weights, visible_bias, hidden_bias = (v.numpy() for v in rbm.variables_for_training)
    stored = np.where(MASK, VISIBLE, -1.0).astype(np.float32)
    noise = generator_copy(rbm)
    gradients, _ = rbm.contrastive_divergence(stored, MASK, k=1)

    # the same uniform draws, in the order the chain takes them: h0, v1, h1
    uniform_h0 = noise.uniform([3, 3]).numpy()
    uniform_v1 = noise.uniform([3, 5]).numpy()
    units0 = numpy_units(stored, MASK, layout)
    hidden0 = sigmoid(units0 @ weights + hidden_bias)
    hidden_sample = (uniform_h0 < hidden0).astype(np.float32)
    visible1 = numpy_visible_probability(hidden_sample, weights, visible_bias, layout)
    visible_sample = np.where(MASK, (uniform_v1 < visible1).astype(np.float32), stored)
    units1 = numpy_units(visible_sample, MASK, layout)
    hidden1 = sigmoid(units1 @ weights + hidden_bias)
    expected = [-(units0.T @ hidden0 - units1.T @ hidden1) / 3,
                -(units0 - units1).mean(axis=0),
                -(hidden0 - hidden1).mean(axis=0)]
    for got, want in zip(gradients, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_trainer_applies_the_cd_gradient_with_weight_decay_on_the_first_step():
    rbm = make_rbm(5, 3, "pair")
    twin = make_rbm(5, 3, "pair")
    twin.generator.reset_from_seed(7)
    rbm.generator.reset_from_seed(7)
    weights_before = rbm.weights.numpy()
    gradients, _ = twin.contrastive_divergence(VISIBLE, MASK, k=1)
    trainer = CDTrainer(rbm, CDConfig(k=1, learning_rate=0.1, momentum=0.9, weight_decay=0.01))
    trainer.train_step(tf.constant(VISIBLE), tf.constant(MASK))
    # SGD with momentum starts from zero velocity, so the first step is -lr * gradient
    expected = weights_before - 0.1 * (gradients[0].numpy() + 0.01 * weights_before)
    np.testing.assert_allclose(rbm.weights.numpy(), expected, rtol=1e-5, atol=1e-6)


def twin_of(rbm):
    """A second RBM holding `rbm`'s variables and generator state: it makes the same draws."""
    twin = RBM(rbm.num_visible, rbm.num_hidden, rbm.visible_layout)
    for mine, theirs in zip(twin.variables_for_training, rbm.variables_for_training):
        mine.assign(theirs)
    twin.generator.reset(rbm.generator.state)
    return twin


def test_two_sgd_steps_apply_momentum_and_decay_the_weights_but_not_the_biases():
    learning_rate, momentum, decay = 0.1, 0.9, 0.05
    rbm = make_rbm(5, 3, "pair")
    trainer = CDTrainer(rbm, CDConfig(k=1, learning_rate=learning_rate, momentum=momentum,
                                      weight_decay=decay))
    expected = [v.numpy() for v in rbm.variables_for_training]
    velocity = [np.zeros_like(value) for value in expected]
    for step in range(2):
        # this step's CD gradient, from a twin that draws the same uniforms as the trainer will
        gradients, _ = twin_of(rbm).contrastive_divergence(VISIBLE, MASK, k=1)
        gradients = [g.numpy() for g in gradients]
        gradients[0] = gradients[0] + decay * expected[0]
        # Keras SGD with momentum: v = m * v - lr * g; w = w + v
        velocity = [momentum * v - learning_rate * g for v, g in zip(velocity, gradients)]
        expected = [value + v for value, v in zip(expected, velocity)]
        trainer.train_step(tf.constant(VISIBLE), tf.constant(MASK))
        for variable, want in zip(rbm.variables_for_training, expected):
            np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{variable.name} after step {step + 1}")


def test_persistent_cd_continues_each_chain_from_the_state_the_last_update_stored():
    learning_rate = 0.1
    rbm = make_rbm(5, 3, "single")
    trainer = CDTrainer(rbm, CDConfig(k=1, learning_rate=learning_rate, momentum=0.0, persistent=True),
                        batch_size=3)
    for step in range(2):
        stored = trainer.persistent_hidden.numpy().copy()
        gradients, chain_end = twin_of(rbm).contrastive_divergence(VISIBLE, k=1, chain_start=stored)
        restarted, _ = twin_of(rbm).contrastive_divergence(VISIBLE, k=1)
        # the stored chains differ from a restart at the data, so continuing them is observable
        assert not np.allclose(gradients[0].numpy(), restarted[0].numpy()), step
        expected = [v.numpy() - learning_rate * g.numpy()
                    for v, g in zip(rbm.variables_for_training, gradients)]
        trainer.train_step(tf.constant(VISIBLE))
        for variable, want in zip(rbm.variables_for_training, expected):
            np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{variable.name} after step {step + 1}")
        np.testing.assert_array_equal(trainer.persistent_hidden.numpy(), chain_end.numpy())


def test_reconstruction_is_deterministic_and_draws_no_random_numbers():
    rbm = make_rbm(5, 3, "pair")
    weights, visible_bias, hidden_bias = (v.numpy() for v in rbm.variables_for_training)
    stored = np.where(MASK, VISIBLE, -1.0).astype(np.float32)
    state = rbm.generator.state.numpy().copy()
    first = rbm.reconstruct(stored, MASK).numpy()
    second = rbm.reconstruct(stored, MASK).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(rbm.generator.state.numpy(), state)
    hidden = sigmoid(numpy_units(stored, MASK, "pair") @ weights + hidden_bias)
    np.testing.assert_allclose(first, numpy_visible_probability(hidden, weights, visible_bias, "pair"),
                               rtol=1e-5, atol=1e-6)


def brute_force_free_energy(units, weights, visible_bias, hidden_bias):
    """-log sum_h exp(-E(v, h)) by enumerating every hidden state."""
    energies = []
    for hidden in itertools.product([0.0, 1.0], repeat=weights.shape[1]):
        hidden = np.array(hidden)
        energies.append(-(units @ visible_bias) - hidden @ hidden_bias - units @ weights @ hidden)
    return -np.log(np.sum(np.exp(-np.array(energies))))


@pytest.mark.parametrize("layout", ["single", "pair"])
def test_free_energy_matches_enumeration_of_hidden_states(layout):
    rbm = make_rbm(4, 3, layout)
    weights, visible_bias, hidden_bias = (v.numpy() for v in rbm.variables_for_training)
    visible = np.array(list(itertools.product([0.0, 1.0], repeat=4)), np.float32)
    mask = np.ones_like(visible, bool)
    mask[::3, 1] = False
    got = rbm.free_energy(np.where(mask, visible, -1.0), mask).numpy()
    units = numpy_units(visible, mask, layout)
    want = [brute_force_free_energy(u, weights, visible_bias, hidden_bias) for u in units]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_pair_layout_lets_a_dislike_reach_the_hidden_layer_and_single_does_not():
    dislike = np.array([[0.0, -1.0]], np.float32)
    missing = np.array([[-1.0, -1.0]], np.float32)
    for layout, differs in (("single", False), ("pair", True)):
        rbm = make_rbm(2, 3, layout)
        changed = not np.allclose(rbm.hidden_probability(dislike, dislike >= 0),
                                  rbm.hidden_probability(missing, missing >= 0))
        assert changed == differs, layout


@pytest.mark.parametrize("layout", ["single", "pair"])
def test_missing_values_change_no_gradient_sample_energy_or_metric(layout):
    other_values = np.where(MASK, VISIBLE, np.float32(0.37))
    results = []
    for stored in (np.where(MASK, VISIBLE, -1.0).astype(np.float32), other_values,
                   np.where(MASK, VISIBLE, 1.0).astype(np.float32)):
        rbm = make_rbm(5, 3, layout)
        gradients, chain_end = rbm.contrastive_divergence(stored, MASK, k=3)
        _, hidden_sample = rbm.sample_hidden(stored, MASK)
        _, visible_sample = rbm.sample_visible(hidden_sample, MASK, stored)
        metrics = RatingMetrics()
        labels = np.where(MASK, stored, -1.0).astype(np.float32)
        metrics.update(rbm.reconstruct(stored, MASK), labels, labels)
        results.append(([g.numpy() for g in gradients], chain_end.numpy(), hidden_sample.numpy(),
                         np.where(MASK, visible_sample.numpy(), 0), rbm.free_energy(stored, MASK).numpy(),
                         rbm.reconstruct(stored, MASK).numpy(), metrics.result()))
    first = results[0]
    for other in results[1:]:
        for got, want in zip(other[0], first[0]):
            np.testing.assert_array_equal(got, want)
        for index in range(1, 6):
            np.testing.assert_array_equal(other[index], first[index])
        assert other[6] == first[6]


def test_sampled_visible_keeps_missing_entries_at_their_stored_value():
    rbm = make_rbm(5, 3, "pair")
    stored = np.where(MASK, VISIBLE, -1.0).astype(np.float32)
    _, sample = rbm.sample_visible(tf.ones([3, 3]), MASK, stored)
    np.testing.assert_array_equal(sample.numpy()[~MASK], -1.0)
    assert set(np.unique(sample.numpy()[MASK])) <= {0.0, 1.0}


def test_visible_bias_starts_at_the_log_odds_of_the_like_rate():
    rates = np.array([0.2, 0.5, 0.9], np.float32)
    for layout in ("single", "pair"):
        rbm = RBM(3, 2, layout)
        rbm.visible_bias.assign(tf.zeros_like(rbm.visible_bias))
        rbm.set_visible_bias_from_rates(rates)
        # with zero weights the reconstruction is the bias alone
        rbm.weights.assign(tf.zeros_like(rbm.weights))
        np.testing.assert_allclose(rbm.visible_probability(tf.zeros([1, 2])).numpy()[0], rates, rtol=1e-5)


def test_same_seed_same_samples_and_different_seed_different():
    first, second, third = RBM(6, 4, seed=1), RBM(6, 4, seed=1), RBM(6, 4, seed=2)
    np.testing.assert_array_equal(first.weights.numpy(), second.weights.numpy())
    assert not np.array_equal(first.weights.numpy(), third.weights.numpy())
    visible = tf.ones([2, 6])
    np.testing.assert_array_equal(first.sample_hidden(visible)[1], second.sample_hidden(visible)[1])


def planted_taste_ratings(num_users=300, num_movies=40, rate_fraction=0.5, noise=0.1, seed=0):
    """Two taste groups with opposite likes; a user rates a random half of the movies."""
    rng = np.random.default_rng(seed)
    group = rng.random(num_users) < 0.6
    taste = np.zeros([num_users, num_movies], np.float32)
    first_half = np.arange(num_movies) < num_movies // 2
    taste[group] = first_half
    taste[~group] = ~first_half
    # the first movies are liked by everyone, so "always like" is a real baseline (> 0.5)
    taste[:, :8] = 1.0
    flips = rng.random(taste.shape) < noise
    labels = np.where(flips, 1.0 - taste, taste)
    rated = rng.random(taste.shape) < rate_fraction
    held_out = rated & (rng.random(taste.shape) < 0.25)
    inputs = np.where(rated & ~held_out, labels, -1.0).astype(np.float32)
    targets = np.where(held_out, labels, -1.0).astype(np.float32)
    return inputs, targets


@pytest.mark.parametrize("layout", ["single", "pair"])
def test_trained_rbm_beats_the_majority_baseline_on_planted_taste_groups(layout):
    inputs, targets = planted_taste_ratings()
    rbm = RBM(inputs.shape[1], 8, layout, seed=0)
    known = inputs >= 0
    rbm.set_visible_bias_from_rates((inputs == 1).sum(0) / np.maximum(known.sum(0), 1))
    trainer = CDTrainer(rbm, CDConfig(k=1, learning_rate=0.1, momentum=0.5), batch_size=20)
    data = tf.data.Dataset.from_tensor_slices(inputs).batch(20)
    for _ in range(30):
        for batch in data:
            trainer.train_step(batch, batch >= 0)
    metrics = RatingMetrics(majority_label=1.0)
    metrics.update(rbm.reconstruct(inputs, known), inputs, targets)
    result = metrics.result()
    assert result["majority_accuracy"] > 0.55
    assert result["accuracy"] > result["majority_accuracy"] + 0.15
    assert result["auc"] > 0.85


def test_rbm_rejects_bad_shapes_and_layouts():
    with pytest.raises(ValueError, match="visible_layout"):
        RBM(3, 2, "triple")
    with pytest.raises(ValueError, match="at least one"):
        RBM(0, 2)
    with pytest.raises(ValueError, match="k must be"):
        CDConfig(k=0)


def test_persistent_chains_carry_over_between_updates():
    rbm = make_rbm(5, 3, "single")
    trainer = CDTrainer(rbm, CDConfig(k=1, persistent=True), batch_size=3)
    before = trainer.persistent_hidden.numpy().copy()
    trainer.train_step(tf.constant(VISIBLE))
    after_one = trainer.persistent_hidden.numpy().copy()
    trainer.train_step(tf.constant(VISIBLE))
    assert trainer.persistent_hidden.shape == (3, 3)
    assert not (np.array_equal(before, after_one) and np.array_equal(after_one, trainer.persistent_hidden.numpy()))


@pytest.mark.parametrize("layout", ["single", "pair"])
def test_a_per_case_offset_shifts_every_visible_log_odds_and_the_free_energy(layout):
    rbm = make_rbm(4, 3, layout)
    weights, visible_bias, hidden_bias = (v.numpy() for v in rbm.variables_for_training)
    hidden = np.array([[1, 0, 1], [0, 1, 1]], np.float32)
    offset = np.array([0.7, -1.3], np.float32)
    logits = numpy_visible_probability(hidden, weights, visible_bias, layout)
    logits = np.log(logits / (1 - logits))
    np.testing.assert_allclose(rbm.visible_probability(hidden, offset).numpy(),
                               sigmoid(logits + offset[:, np.newaxis]), rtol=1e-5)
    # F(v) with the offset is the free energy of an RBM whose "1" units have bias a + offset
    visible = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], np.float32)
    mask = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
    units = numpy_units(visible, mask, layout)
    for row in range(2):
        shifted = visible_bias.copy()
        shifted[0::(1 if layout == "single" else 2)] += offset[row]
        want = brute_force_free_energy(units[row], weights, shifted, hidden_bias)
        got = rbm.free_energy(np.where(mask, visible, -1.0)[row:row + 1], mask[row:row + 1],
                              offset[row:row + 1]).numpy()[0]
        assert got == pytest.approx(want, rel=1e-5)
