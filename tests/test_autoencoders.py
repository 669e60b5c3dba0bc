"""The four autoencoders: shapes, ranges, losses against hand computations, saving and serving."""

import json
import math
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from autoencoders_tf import VAE
from autoencoders_tf import ConvAutoencoder
from autoencoders_tf import DenseAutoencoder
from autoencoders_tf import DenoisingAutoencoder
from autoencoders_tf.denoising import corrupt
from autoencoders_tf.serving import AutoencoderServing
from autoencoders_tf.serving import save_serving
from autoencoders_tf.vae import bernoulli_log_likelihood
from autoencoders_tf.vae import gaussian_kl


def random_images(count=8, seed=0):
    return np.random.default_rng(seed).random((count, 28, 28, 1)).astype(np.float32)


def synthetic_images(count=256, seed=0):
    """Bright horizontal or vertical bars at random places: easy to learn, far from noise."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28, 1), np.float32)
    for image in images:
        start = rng.integers(2, 22)
        if rng.random() < 0.5:
            image[start:start + 4, 4:24] = 1.0
        else:
            image[4:24, start:start + 4] = 1.0
    return images


MODELS = {
    "dense": lambda: DenseAutoencoder(),
    "dense_unit": lambda: DenseAutoencoder(hidden_units=(64,), code_size=2, input_range="unit"),
    "conv": lambda: ConvAutoencoder(),
    "denoising_conv": lambda: DenoisingAutoencoder(),
    "denoising_dense_masking": lambda: DenoisingAutoencoder(
        "dense", {"hidden_units": [32], "code_size": 4}, noise="masking", noise_level=0.3),
    "vae": lambda: VAE(),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_and_range(name):
    model = MODELS[name]()
    images = random_images()
    reconstruction = model(images).numpy()
    assert reconstruction.shape == (8, 28, 28, 1)
    assert reconstruction.min() >= 0.0 and reconstruction.max() <= 1.0
    code = model.encode(images)
    code = code[0] if isinstance(code, (tuple, list)) else code
    assert code.shape == (8, model.code_size)
    assert model.decode(code).shape == (8, 28, 28, 1)


def test_dense_default_is_the_chapters_784_128_64_12_3_with_tanh():
    model = DenseAutoencoder()
    widths = [layer.units for layer in model.encoder.layers if isinstance(layer, keras.layers.Dense)]
    assert widths == [128, 64, 12, 3]
    decoder_dense = [layer for layer in model.decoder.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in decoder_dense] == [12, 64, 128, 784]
    assert decoder_dense[-1].activation.__name__ == "tanh"
    assert model.input_range == "symmetric"
    np.testing.assert_allclose(model.to_network(np.array([0.0, 0.5, 1.0])), [-1.0, 0.0, 1.0])
    assert DenseAutoencoder(input_range="unit").decoder.layers[-2].activation.__name__ == "sigmoid"


def torch_conv(size, kernel, stride, padding):
    """Output size of PyTorch's Conv2d / MaxPool2d (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def torch_conv_transpose(size, kernel, stride, padding):
    """Output size of PyTorch's ConvTranspose2d (no output_padding, dilation 1)."""
    return (size - 1) * stride - 2 * padding + kernel


# the chapter's stack, written here independently of the model's code:
# (Keras layer whose output is the PyTorch layer's, output-size formula, kernel, stride, padding,
# channels)
TORCH_STACK = [
    ("conv1", torch_conv, 3, 3, 1, 16),
    ("pool1", torch_conv, 2, 2, 0, 16),
    ("conv2", torch_conv, 3, 2, 1, 8),
    ("pool2", torch_conv, 2, 1, 0, 8),
    ("deconv1", torch_conv_transpose, 3, 2, 0, 16),
    ("deconv2_crop", torch_conv_transpose, 5, 3, 1, 8),
    ("deconv3_crop", torch_conv_transpose, 2, 2, 1, 1),
]


def test_conv_layer_shapes_follow_pytorchs_formulas():
    expected, size = {}, 28
    for name, output_size, kernel, stride, padding, channels in TORCH_STACK:
        size = output_size(size, kernel, stride, padding)
        expected[name] = (size, size, channels)
    code_size = math.prod(expected["pool2"])
    assert (expected["pool1"][0], expected["pool2"][0], size) == (5, 2, 28)

    model = ConvAutoencoder()
    assert model.code_size == code_size == 32
    shapes = {}
    tensor = tf.zeros([2, 28, 28, 1])
    for layer in model.encoder.layers + model.decoder.layers:
        tensor = layer(tensor)
        shapes[layer.name] = tuple(tensor.shape[1:])
    for name, shape in expected.items():
        assert shapes[name] == shape, name
    kernels = {layer.name: (layer.kernel_size, layer.strides)
               for layer in model.encoder.layers + model.decoder.layers if hasattr(layer, "kernel_size")}
    assert kernels == {"conv1": ((3, 3), (3, 3)), "conv2": ((3, 3), (2, 2)),
                       "deconv1": ((3, 3), (2, 2)), "deconv2": ((5, 5), (3, 3)),
                       "deconv3": ((2, 2), (2, 2))}


def test_loss_is_network_range_mse_and_mse_is_on_the_pixel_scale():
    model = DenseAutoencoder(hidden_units=(16,), code_size=2)
    images = random_images()
    losses = model.compute_losses(images)
    by_hand = np.mean((model(images).numpy() - images) ** 2)
    np.testing.assert_allclose(losses["mse"], by_hand, rtol=1e-5)
    # on [-1, 1] every difference doubles: four times the squared error
    np.testing.assert_allclose(losses["loss"], 4 * by_hand, rtol=1e-5)


def test_gaussian_kl_matches_the_closed_form_and_numerical_integration():
    z_mean = np.array([[0.5, -1.0], [0.0, 0.0]], np.float32)
    z_log_var = np.array([[0.2, -0.3], [0.0, 0.0]], np.float32)
    kl = gaussian_kl(z_mean, z_log_var).numpy()
    variance = np.exp(z_log_var[0])
    closed_form = 0.5 * np.sum(variance + z_mean[0] ** 2 - 1.0 - np.log(variance))
    np.testing.assert_allclose(kl[0], closed_form, rtol=1e-6)
    assert kl[1] == 0.0  # q equals the prior
    # KL(q || p) = integral of q log(q / p), one dimension at a time, on a fine grid
    z = np.linspace(-12, 12, 200001)
    integral = 0.0
    for mean, var in zip(z_mean[0], variance):
        log_q = -0.5 * ((z - mean) ** 2 / var + np.log(2 * np.pi * var))
        log_p = -0.5 * (z ** 2 + np.log(2 * np.pi))
        integral += np.trapezoid(np.exp(log_q) * (log_q - log_p), z)
    np.testing.assert_allclose(kl[0], integral, rtol=1e-5)


def test_bernoulli_log_likelihood_by_hand():
    logits = np.zeros((1, 28, 28, 1), np.float32)
    logits[0, 0, 0, 0], logits[0, 0, 1, 0] = 2.0, -1.0
    targets = np.zeros((1, 28, 28, 1), np.float32)
    targets[0, 0, 0, 0] = 1.0
    sigmoid = 1 / (1 + np.exp(-logits))
    by_hand = np.sum(targets * np.log(sigmoid) + (1 - targets) * np.log(1 - sigmoid))
    np.testing.assert_allclose(bernoulli_log_likelihood(targets, logits).numpy(), [by_hand], rtol=1e-5)
    np.testing.assert_allclose(by_hand, np.log(sigmoid[0, 0, 0, 0]) + np.log(1 - sigmoid[0, 0, 1, 0])
                               + 782 * np.log(0.5), rtol=1e-6)


def numpy_gaussian_kl(z_mean, z_log_var):
    return 0.5 * np.sum(np.exp(z_log_var) + z_mean ** 2 - 1.0 - z_log_var, axis=-1)


def test_vae_loss_is_the_reconstruction_term_plus_the_kl_of_the_encoder_outputs():
    model = VAE(hidden_units=8, latent_dim=2, binarize=False)  # targets are the images themselves
    images = random_images(4)
    losses = model.compute_losses(images)
    z_mean, z_log_var = (t.numpy().astype(np.float64) for t in model.encode(images))
    kl = np.mean(numpy_gaussian_kl(z_mean, z_log_var))
    assert kl > 0.01  # large enough that leaving it out of the loss shows
    np.testing.assert_allclose(float(losses["kl_loss"]), kl, rtol=1e-5)
    np.testing.assert_allclose(float(losses["loss"]),
                               float(losses["reconstruction_loss"]) + float(losses["kl_loss"]), rtol=1e-6)


def test_vae_training_step_descends_the_kl_term_as_well_as_the_reconstruction():
    learning_rate = 0.5
    model = VAE(hidden_units=8, latent_dim=2, binarize=False)
    # a decoder that ignores z: the reconstruction term then sends no gradient to the encoder,
    # and the encoder's output biases move by exactly the KL gradient
    logits = model.decoder.get_layer("logits")
    logits.kernel.assign(np.zeros(logits.kernel.shape, np.float32))
    logits.bias.assign(np.linspace(-1, 1, 784).astype(np.float32))
    z_mean_layer, z_log_var_layer = model.encoder.get_layer("z_mean"), model.encoder.get_layer("z_log_var")
    images = random_images(4)
    z_mean, z_log_var = (t.numpy() for t in model.encode(images))
    before = {layer.name: layer.bias.numpy() for layer in (z_mean_layer, z_log_var_layer, logits)}
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), jit_compile=False)
    model.train_on_batch(images)
    # d mean(KL) / d z_mean = z_mean / batch, d mean(KL) / d z_log_var = (exp(z_log_var) - 1) / 2 / batch
    np.testing.assert_allclose(z_mean_layer.bias.numpy(),
                               before["z_mean"] - learning_rate * z_mean.mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(z_log_var_layer.bias.numpy(),
                               before["z_log_var"] - learning_rate * (0.5 * (np.exp(z_log_var) - 1)).mean(axis=0),
                               rtol=1e-4, atol=1e-6)
    # d -mean(log p(x | logits)) / d logit = sigmoid(logit) - x, averaged over the batch
    pixel_gradient = (1 / (1 + np.exp(-before["logits"])) - images.reshape(4, 784)).mean(axis=0)
    np.testing.assert_allclose(logits.bias.numpy(), before["logits"] - learning_rate * pixel_gradient,
                               rtol=1e-4, atol=1e-6)


def test_vae_loss_is_finite_on_extreme_inputs():
    model = VAE(hidden_units=32, latent_dim=4)
    logits_layer = model.decoder.get_layer("logits")
    logits_layer.bias.assign(np.full([784], 1e4, np.float32))  # decoder certain every pixel is on
    for images in (np.zeros((4, 28, 28, 1), np.float32), np.ones((4, 28, 28, 1), np.float32)):
        losses = model.compute_losses(images)
        assert all(np.isfinite(float(value)) for value in losses.values())
    # all-black images against an all-on decoder: 784 pixels each costing about 1e4 nats
    assert float(model.compute_losses(np.zeros((4, 28, 28, 1), np.float32))["reconstruction_loss"]) > 7e6


def test_vae_binarises_dynamically_unless_continuous():
    images = np.full((2, 28, 28, 1), 0.3, np.float32)
    targets = VAE(binarize=True).targets(images).numpy()
    assert set(np.unique(targets)) <= {0.0, 1.0}
    assert abs(targets.mean() - 0.3) < 0.05
    np.testing.assert_array_equal(VAE(binarize=False).targets(images), images)


def test_importance_weighted_bound_is_tighter_than_the_elbo():
    model = VAE(hidden_units=32, latent_dim=4)
    images = random_images(6)
    seed = tf.constant([1, 2], tf.int64)
    neg_elbo, neg_bound = (t.numpy() for t in model.evaluate_bounds(images, 50, seed))
    assert neg_elbo.shape == neg_bound.shape == (6,)
    assert np.all(neg_bound <= neg_elbo + 1e-3)
    # with one sample the two bounds are the same number
    one_elbo, one_bound = model.evaluate_bounds(images, 1, seed)
    np.testing.assert_allclose(one_elbo, one_bound, rtol=1e-6)
    # the Monte-Carlo ELBO agrees with the analytic-KL ELBO of the training loss (same targets)
    targets = model.targets(images, seed=tf.random.experimental.stateless_split(seed, 2)[0])
    z_mean, z_log_var = model.encode(targets)
    log_weights = model.log_importance_weights(targets, 2000, tf.constant([3, 4], tf.int64))
    reconstruction = -bernoulli_log_likelihood(
        tf.broadcast_to(targets[tf.newaxis], [2000, 6, 28, 28, 1]),
        tf.reshape(model.decoder(tf.reshape(
            z_mean + tf.exp(0.5 * z_log_var) * tf.random.stateless_normal([2000, 6, 4], seed=[3, 4]),
            [-1, 4])), [2000, 6, 28, 28, 1]))
    analytic = tf.reduce_mean(reconstruction, axis=0) + gaussian_kl(z_mean, z_log_var)
    np.testing.assert_allclose(-tf.reduce_mean(log_weights, axis=0), analytic, rtol=0.01)


def test_corruption_kinds():
    images = np.full((4, 28, 28, 1), 0.5, np.float32)
    masked = corrupt(images, "masking", 0.25, seed=1).numpy()
    assert set(np.unique(masked)) <= {0.0, 0.5}
    assert abs((masked == 0).mean() - 0.25) < 0.03
    noisy = corrupt(images, "gaussian", 0.1, seed=1).numpy()
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    assert abs(noisy.std() - 0.1) < 0.01


def test_denoiser_trains_on_noisy_inputs_against_clean_targets():
    model = DenoisingAutoencoder("dense", {"hidden_units": [16], "code_size": 2},
                                 noise="masking", noise_level=1.0)  # every input pixel masked
    images = random_images()
    losses = model.compute_losses(images)
    blank = np.zeros_like(images)
    # the model saw black images, and was scored against the clean ones
    np.testing.assert_allclose(losses["mse"], np.mean((model(blank).numpy() - images) ** 2), rtol=1e-5)
    np.testing.assert_allclose(losses["noisy_mse"], np.mean(images ** 2), rtol=1e-5)
    # calling the model adds no noise
    np.testing.assert_array_equal(model(images), model(images))
    np.testing.assert_allclose(model(images), model.decode(model.encode(images)), atol=1e-6)


@pytest.mark.parametrize("name", ["dense_unit", "denoising_dense_masking", "vae"])
def test_inference_reconstruction_is_deterministic(name):
    model = MODELS[name]()
    images = random_images(4)
    first = model(images, training=False).numpy()
    np.testing.assert_array_equal(model(images, training=False).numpy(), first)
    # it is the decoding of the code (the VAE's: the posterior mean), with no noise on the way
    code = model.encode(images)
    code = code[0] if isinstance(code, (tuple, list)) else code
    np.testing.assert_allclose(first, model.decode(code).numpy(), atol=1e-6)
    served = AutoencoderServing(model).reconstruct(tf.constant(images))["reconstruction"].numpy()
    np.testing.assert_allclose(served, first, atol=1e-6)


@pytest.mark.parametrize("name", ["dense", "conv", "denoising_conv", "vae"])
def test_two_epochs_lower_the_loss(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    images = synthetic_images()
    before = model.evaluate(images, batch_size=64, verbose=0, return_dict=True)
    history = model.fit(images, epochs=2, batch_size=32, verbose=0, shuffle=False)
    after = model.evaluate(images, batch_size=64, verbose=0, return_dict=True)
    assert after["loss"] < 0.9 * before["loss"]
    assert after["mse"] < before["mse"]
    assert history.history["loss"][1] < history.history["loss"][0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_round_trip(name):
    model = MODELS[name]()
    clone = type(model).from_config(json.loads(json.dumps(model.get_config())))
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()


def test_serving_signatures_have_named_inputs_and_outputs():
    for model, encode_outputs in ((ConvAutoencoder(), {"code"}), (VAE(), {"z_mean", "z_log_var"})):
        signatures = AutoencoderServing(model).signatures()
        concrete = {name: function.get_concrete_function() for name, function in signatures.items()}
        assert set(concrete["reconstruct"].structured_outputs) == {"reconstruction"}
        assert set(concrete["encode"].structured_outputs) == encode_outputs
        assert set(concrete["decode"].structured_outputs) == {"images"}
        assert [spec.name for spec in concrete["reconstruct"].structured_input_signature[0]] == ["images"]
    assert "sample" in AutoencoderServing(VAE()).signatures()
    assert "sample" not in AutoencoderServing(ConvAutoencoder()).signatures()


@pytest.mark.parametrize("bad, message", [
    (np.full((1, 28, 28, 1), 2.0, np.float32), "in \\[0, 1\\]"),
    (np.full((1, 28, 28, 1), np.nan, np.float32), "in \\[0, 1\\]"),
    (np.zeros((1, 28, 28, 3), np.float32), "shape \\[batch, 28, 28, 1\\]"),
    (np.zeros((1, 784, 1, 1), np.float32), "shape \\[batch, 28, 28, 1\\]"),
])
def test_serving_rejects_bad_images_with_a_clear_message(bad, message):
    serving = AutoencoderServing(DenseAutoencoder(hidden_units=(8,), code_size=2))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serving.reconstruct(tf.constant(bad))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serving.encode(tf.constant(bad))


FRESH_PROCESS = textwrap.dedent("""
    import sys
    import keras
    import numpy as np
    import tensorflow as tf
    from autoencoders_tf import DenoisingAutoencoder, VAE  # registers the four classes for Keras loading

    directory = sys.argv[1]
    images = np.load(f"{directory}/images.npy")
    for name in sys.argv[2:]:
        model = keras.saving.load_model(f"{directory}/{name}.keras")
        np.save(f"{directory}/{name}_keras.npy", model(images).numpy())
        served = tf.saved_model.load(f"{directory}/{name}_savedmodel")
        outputs = served.signatures["reconstruct"](images=tf.constant(images))
        np.save(f"{directory}/{name}_served.npy", outputs["reconstruction"].numpy())
        if "sample" in served.signatures:
            sample = served.signatures["sample"](num_samples=tf.constant(3), seed=tf.constant(7))
            np.save(f"{directory}/{name}_sample.npy", sample["images"].numpy())
""")


def test_every_model_saves_and_reloads_in_a_fresh_process(tmp_path):
    images = random_images(5, seed=3)
    np.save(tmp_path / "images.npy", images)
    expected, samples = {}, {}
    names = ["dense", "conv", "denoising_dense_masking", "vae"]
    for name in names:
        model = MODELS[name]()
        expected[name] = model(images).numpy()
        model.save(tmp_path / f"{name}.keras")
        save_serving(model, tmp_path / f"{name}_savedmodel")
        if name == "vae":
            samples[name] = model.sample(3, tf.constant([7, 0])).numpy()
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path), *names], check=True,
                   capture_output=True)
    for name in names:
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_keras.npy"), expected[name], atol=1e-6)
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_served.npy"), expected[name], atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "vae_sample.npy"), samples["vae"], atol=1e-6)
