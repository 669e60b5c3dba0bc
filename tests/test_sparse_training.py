"""Contrastive divergence on sparse ratings: the dense computation's numbers, gathered."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rbm_tf import rbm as rbm_module
from rbm_tf.rbm import SparseRatings
from rbm_tf.sparse_training import LazyMomentum
from rbm_tf.sparse_training import SparseCDTrainer
from rbm_tf.sparse_training import momentum_power
from rbm_tf.training import CDConfig
from rbm_tf.training import CDTrainer
from tests.test_rbm import make_rbm


def tiny_ratings(num_users=4, num_movies=7, seed=3):
    """Dense {-1, 0, 1} ratings with some missing, and the same ratings as sparse triplets."""
    rng = np.random.default_rng(seed)
    dense = rng.choice([-1.0, 0.0, 1.0], size=[num_users, num_movies], p=[0.4, 0.25, 0.35])
    dense[:, 0] = 1.0  # every user rates something
    dense[:, -1] = -1.0  # a movie nobody rated
    rows, movies = np.nonzero(dense >= 0)
    return (dense.astype(np.float32), rows.astype(np.int32), movies.astype(np.int32),
            dense[rows, movies].astype(np.float32))


def dense_rows(rbm, movies, gradient_rows):
    """Per-movie gradient rows [r, units, ...] in the dense [units, ...] layout of the RBM."""
    dense = np.zeros([rbm.num_visible * rbm.units_per_visible] + list(gradient_rows.shape[2:]), np.float32)
    dense[rbm.unit_indices(movies).numpy().reshape(-1)] = gradient_rows.reshape(
        [-1] + list(gradient_rows.shape[2:]))
    return dense


def stateless_draws(seed):
    """A `uniform(shape)` whose i-th call draws from seed (seed, i): the same numbers for two
    computations that draw the same shapes in the same order."""
    calls = iter(range(10**6))
    return lambda shape: tf.random.stateless_uniform(shape, [seed, next(calls)])


def read_by(monkeypatch, reading):
    """Make the sparse CD read the observed places by "product", "value" (a dot product or
    scattered row per value) or "chunks" (of 3 places: cases span several), whatever a batch."""
    monkeypatch.setattr(rbm_module, "PRODUCT_RATIO", 0 if reading == "value" else 10**9)
    monkeypatch.setattr(rbm_module, "CHUNK_RATIO", 0 if reading == "chunks" else 10**9)
    monkeypatch.setattr(rbm_module, "CHUNK", 3)


@pytest.mark.parametrize("reading", ["product", "value", "chunks"])
@pytest.mark.parametrize("layout", ["single", "pair"])
def test_sparse_cd_gradients_equal_the_dense_masked_gradients(layout, reading, monkeypatch):
    """Every way of reading the observed places gives the dense numbers."""
    read_by(monkeypatch, reading)
    dense, rows, movies, values = tiny_ratings()
    rbm, twin = make_rbm(dense.shape[1], 3, layout), make_rbm(dense.shape[1], 3, layout)
    offset = tf.constant([0.3, -0.2, 0.0, 0.5])
    # a given chain start and mean-field visible units leave only the hidden draws, the same
    # numbers for both
    chain_start = tf.constant(np.random.default_rng(0).integers(0, 2, [4, 3]), tf.float32)
    expected, _ = twin.contrastive_divergence(dense, dense >= 0, k=2, chain_start=chain_start,
                                             mean_field_visible=True, offset=offset,
                                             uniform=stateless_draws(3))
    ratings, rated = SparseRatings.of_movies(rows, movies, values, 4)
    weights, visible_bias, hidden_bias, _ = rbm.sparse_contrastive_divergence(
        ratings, *rbm.rows_of(rated), k=2, chain_start=chain_start, mean_field_visible=True,
        offset=offset, uniform=stateless_draws(3))
    np.testing.assert_allclose(dense_rows(rbm, rated, weights.numpy()), expected[0], atol=1e-6)
    np.testing.assert_allclose(dense_rows(rbm, rated, visible_bias.numpy()), expected[1], atol=1e-6)
    np.testing.assert_allclose(hidden_bias, expected[2], atol=1e-6)


def test_chunks_lay_out_each_case_s_values_in_order_and_every_case_at_least_once(monkeypatch):
    monkeypatch.setattr(rbm_module, "CHUNK", 2)
    # 5 values of case 0, none of case 1, 2 of case 2, none of case 3 (past the last row)
    ratings = SparseRatings(tf.constant([0, 0, 0, 0, 0, 2, 2]), tf.range(7), tf.ones([7]), tf.constant(4),
                            tf.constant(7))
    place, case, value = ratings.chunks
    np.testing.assert_array_equal(case, [0, 0, 0, 1, 2, 3])
    np.testing.assert_array_equal(place, [0, 1, 2, 3, 4, 8, 9])
    np.testing.assert_array_equal(value, [[0, 1], [2, 3], [4, 7], [7, 7], [5, 6], [7, 7]])
    matrix = tf.reshape(tf.range(14, dtype=tf.float32), [7, 2])
    chunked = ratings.chunked(matrix).numpy()
    np.testing.assert_array_equal(chunked[2], [[8, 9], [0, 0]])  # value 4's row, then a zero row
    np.testing.assert_array_equal(ratings.from_chunks(ratings.to_chunks(tf.range(7.0))), np.arange(7.0))


@pytest.mark.parametrize("layout", ["single", "pair"])
def test_a_chunked_chain_samples_what_the_products_sample_given_the_same_numbers(layout, monkeypatch):
    """Sampled visible units (CD-3), a case with no value and a per-case offset: the chain read
    by chunks and the one read by products draw the same samples and give the same gradients."""
    dense, rows, movies, values = tiny_ratings(num_users=5, num_movies=40, seed=1)
    keep = rows < 4  # case 4 of the batch has no value
    rows, movies, values = rows[keep], movies[keep], values[keep]
    offset = tf.constant([0.3, -0.2, 0.0, 0.5, 0.1])
    results, chunked_reads = {}, []
    layout_of = SparseRatings.chunked
    monkeypatch.setattr(SparseRatings, "chunked", lambda self, matrix: chunked_reads.append(1) or
                        layout_of(self, matrix))
    for reading in ("chunks", "product"):
        read_by(monkeypatch, reading)
        rbm = make_rbm(40, 6, layout)
        ratings, rated = SparseRatings.of_movies(rows, movies, values, 5)
        results[reading] = rbm.sparse_contrastive_divergence(
            ratings, *rbm.rows_of(rated), k=3, offset=offset, uniform=stateless_draws(7))
    assert len(chunked_reads) == 1  # the chunks were read once, by the chunked chain only
    for chunked, product in zip(results["chunks"], results["product"]):
        np.testing.assert_allclose(chunked, product, atol=1e-6)
    assert np.abs(results["chunks"][0].numpy()).sum() > 0


def test_a_chunked_chain_draws_its_own_numbers_from_the_model_s_generator(monkeypatch):
    """Without given numbers the chain draws from seeds of the model's generator: the same seed
    gives the same gradients, another seed others."""
    read_by(monkeypatch, "chunks")
    dense, rows, movies, values = tiny_ratings(num_users=5, num_movies=40, seed=1)

    def gradients(seed):
        rbm = make_rbm(40, 6, "single")
        rbm.generator.reset_from_seed(seed)
        ratings, rated = SparseRatings.of_movies(rows, movies, values, 5)
        return rbm.sparse_contrastive_divergence(ratings, *rbm.rows_of(rated), k=3)[0].numpy()

    np.testing.assert_array_equal(gradients(1), gradients(1))
    assert not np.array_equal(gradients(1), gradients(2))


@pytest.mark.parametrize("layout", ["single", "pair"])
def test_sparse_hidden_and_visible_probabilities_equal_the_dense_ones(layout):
    dense, rows, movies, values = tiny_ratings()
    rbm = make_rbm(dense.shape[1], 3, layout)
    ratings, rated = SparseRatings.of_movies(rows, movies, values, 4)
    hidden = rbm.sparse_hidden_probability(ratings, rbm.rows_of(rated)[0])
    np.testing.assert_allclose(hidden, rbm.hidden_probability(dense, dense >= 0), atol=1e-6)
    offset = tf.constant([0.3, -0.2, 0.0, 0.5])
    visible = rbm.sparse_visible_probability(hidden, ratings, *rbm.rows_of(rated), offset)
    np.testing.assert_allclose(visible, rbm.visible_probability(hidden, offset).numpy()[rows, movies],
                               atol=1e-6)
    np.testing.assert_allclose(rbm.visible_probability_of(hidden, tf.constant([5, 1]), offset),
                               rbm.visible_probability(hidden, offset).numpy()[:, [5, 1]], atol=1e-6)


def test_momentum_power_is_the_repeated_zero_gradient_update():
    momentum, decay = 0.5, 0.02
    velocity, value = 0.3, -1.2
    for _ in range(13):
        velocity = momentum * velocity - decay * value
        value = value + velocity
    power = momentum_power(momentum, decay, tf.constant([0, 13])).numpy()
    np.testing.assert_allclose(power[0], np.eye(2))
    np.testing.assert_allclose(power[1] @ [0.3, -1.2], [velocity, value], rtol=1e-12)


def test_lazy_momentum_matches_keras_sgd_on_rows_left_untouched_for_many_steps():
    rng = np.random.default_rng(1)
    start = rng.normal(size=[6, 2]).astype(np.float32)
    lazy_variable, dense_variable = tf.Variable(start), tf.Variable(start)
    lazy = LazyMomentum(lazy_variable, learning_rate=0.1, momentum=0.5, weight_decay=0.01)
    sgd = keras.optimizers.SGD(learning_rate=0.1, momentum=0.5)
    for step in range(9):
        rows = np.sort(rng.choice(5, size=rng.integers(1, 3), replace=False))  # row 5: never
        gradient = rng.normal(size=[len(rows), 2]).astype(np.float32)
        dense_gradient = np.zeros_like(start)
        dense_gradient[rows] = gradient
        sgd.apply([dense_gradient + 0.01 * dense_variable.numpy()], [dense_variable])
        rows = tf.constant(rows, tf.int32)
        lazy.apply(rows, gradient, *lazy.current(rows))
    assert not np.allclose(lazy_variable.numpy(), dense_variable.numpy())  # rows lag until a flush
    lazy.flush()
    np.testing.assert_allclose(lazy_variable.numpy(), dense_variable.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["single", "pair"])
def test_a_sparse_training_step_equals_the_dense_step_given_the_same_gradient(layout):
    """With mean-field visible units and a persistent chain both trainers are deterministic:
    after two updates and a flush, the weights agree."""
    dense, rows, movies, values = tiny_ratings()
    config = CDConfig(k=1, learning_rate=0.1, momentum=0.5, weight_decay=0.01, persistent=True,
                      mean_field_visible=True)
    sparse_rbm, dense_rbm = make_rbm(7, 3, layout), make_rbm(7, 3, layout)
    sparse, reference = SparseCDTrainer(sparse_rbm, config, 4), CDTrainer(dense_rbm, config, 4)
    reference.persistent_hidden.assign(sparse.persistent_hidden)
    offset = tf.constant([0.3, -0.2, 0.0, 0.5])
    for _ in range(2):
        sparse.train_step(rows, movies, values, 4, offset)
        reference.train_step(dense, dense >= 0, offset)
    sparse.flush()
    for mine, theirs in zip(sparse_rbm.variables_for_training, dense_rbm.variables_for_training):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-5)


def test_sparse_training_never_reads_a_movie_nobody_rated_but_decays_it():
    dense, rows, movies, values = tiny_ratings()
    rbm = make_rbm(7, 3, "pair")
    before = rbm.weights.numpy()[-2:]  # the units of the movie nobody rated
    trainer = SparseCDTrainer(rbm, CDConfig(learning_rate=0.1, momentum=0.5, weight_decay=0.1), 4)
    trainer.train_step(rows, movies, values, 4)
    np.testing.assert_array_equal(rbm.weights.numpy()[-2:], before)  # owed, not yet paid
    trainer.flush()
    np.testing.assert_allclose(rbm.weights.numpy()[-2:], before * (1 - 0.1 * 0.1), rtol=1e-6)


@pytest.mark.parametrize("momentum, decay", [(0.5, 0.001), (0.9, 0.05), (0.5, 0.0), (0.0, 0.01),
                                             (0.25, 0.25)])
def test_momentum_power_holds_for_real_complex_and_repeated_eigenvalues(momentum, decay):
    """(0.9, 0.05) has complex eigenvalues, (0.25, 0.25) a repeated one, (0, 0.01) a zero one."""
    matrix = np.array([[momentum, -decay], [momentum, 1.0 - decay]])
    steps = np.array([0, 1, 2, 7, 40])
    expected = np.stack([np.linalg.matrix_power(matrix, n) for n in steps])
    np.testing.assert_allclose(momentum_power(momentum, decay, tf.constant(steps)), expected,
                               rtol=1e-9, atol=1e-12)


def test_a_chain_s_own_numbers_are_stateless_uniform_numbers_from_the_generator_s_seeds():
    rbm, twin = make_rbm(5, 3, "single"), make_rbm(5, 3, "single")
    uniform = rbm._seeded_uniform(2)
    first, second = uniform([4, 3]), uniform([7])
    seeds = twin.generator.make_seeds(2)
    np.testing.assert_array_equal(first, tf.random.stateless_uniform([4, 3], seeds[:, 0]))
    np.testing.assert_array_equal(second, tf.random.stateless_uniform([7], seeds[:, 1]))
