"""A training run of an autoencoder: train, evaluate every epoch, draw, export, in a run directory.

    data = prepare_images("mnist", "data", raw_dir="../shared/data/mnist")
    result = train_autoencoder(AutoencoderConfig(model="vae"), data, "runs/vae")   # metrics.json
    result["final"]["test_neg_elbo"], result["final"]["baselines"]["mean_image"]["test_mse"]

The run directory, checkpoints and resume, metrics.json, TensorBoard, the metrics plot, the
NaN guard and the export are `pipelines.loop`'s, shared with every other family; this module
adds what is the autoencoders' own: the mean-image baseline, the pictures drawn every epoch
(RUN/images/epoch_NNN.png, the VAE's samples_epoch_NNN.png, latent_epoch_NNN.png for a 2-D
or 3-D code) and the VAE's importance-weighted bound at the end.
"""

import dataclasses
import pathlib

import keras
import numpy as np
import tensorflow as tf

from autoencoders_tf import pictures
from autoencoders_tf.config import AutoencoderConfig
from autoencoders_tf.conv import ConvAutoencoder
from autoencoders_tf.dense import DenseAutoencoder
from autoencoders_tf.denoising import DenoisingAutoencoder
from autoencoders_tf.serving import export_autoencoder
from autoencoders_tf.vae import VAE
from pipelines import distribute
from pipelines import figures
from pipelines import loop
from pipelines import runs
from pipelines.errors import RunError
from pipelines.images import IMAGE_SHAPE

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
EVAL_BATCH_SIZE = 500


# -- the model -----------------------------------------------------------------------------------

def build_model(config):
    """The untrained Keras model `config` (an `AutoencoderConfig`) describes."""
    dense_config = {"hidden_units": config.hidden_units, "code_size": config.code_size}
    if config.model == "dense":
        return DenseAutoencoder(input_range=config.input_range, seed=config.seed, **dense_config)
    if config.model == "conv":
        return ConvAutoencoder(input_range=config.input_range, seed=config.seed)
    if config.model == "denoising":
        return DenoisingAutoencoder(
            architecture=config.architecture,
            architecture_config=dense_config if config.architecture == "dense" else None,
            noise=config.noise, noise_level=config.noise_level, input_range=config.input_range,
            seed=config.seed)
    return VAE(hidden_units=config.vae_hidden, latent_dim=config.latent_dim,
               binarize=config.binarize, seed=config.seed)


def compiled_model(config):
    """`build_model(config)` compiled with Adam, its optimizer's variables made (for a restore)."""
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    model.optimizer.build(model.trainable_variables)
    return model


# -- what is reported beside the model ------------------------------------------------------------

def mean_image_baseline(train_data, test_data):
    """MSE on [0, 1] of predicting every test image by the mean training image."""
    total = tf.zeros(IMAGE_SHAPE)
    count = 0
    for pixels, _ in train_data:
        total += tf.reduce_sum(pixels, axis=0)
        count += int(pixels.shape[0])
    mean_image = total / count
    squared, pixels_seen = 0.0, 0
    for pixels, _ in test_data:
        squared += float(tf.reduce_sum(tf.square(pixels - mean_image)))
        pixels_seen += int(tf.size(pixels))
    return squared / pixels_seen


def pixels_note(config):
    """How the VAE's likelihood treats pixels, written beside every VAE number."""
    if config.binarize:
        return "dynamically binarised pixels: Bernoulli log-likelihood in nats per image"
    return ("continuous intensities: Bernoulli cross-entropy, NOT a likelihood, "
            "not comparable with binarised results")


def describe_epoch(config, record):
    """One line about an epoch (or metrics.json's final)."""
    if config.model == "vae":
        return (f"epoch {record['epoch']}: test -ELBO {record['test_neg_elbo']:.2f} nats "
                f"(reconstruction {record['test_reconstruction_loss']:.2f} + KL "
                f"{record['test_kl_loss']:.2f}), test MSE {record['test_mse']:.4f}"
                + ("" if config.binarize else "  [continuous intensities: not a likelihood]"))
    line = (f"epoch {record['epoch']}: test MSE {record['test_mse']:.4f} on [0, 1] "
            f"(mean image {record['mean_image_mse']:.4f}")
    if config.model == "denoising":
        line += f", noisy input {record['test_noisy_mse']:.4f}"
    return line + ")"


def describe_final(final):
    """One line about a finished run, from its metrics.json final alone."""
    if "test_neg_elbo" in final:
        k = next(key for key in final if key.startswith("test_neg_elbo_k"))[len("test_neg_elbo_k"):]
        return (f"test -ELBO {final['test_neg_elbo']:.2f} nats per image (k={k} estimate "
                f"{final[f'test_neg_elbo_k{k}']:.2f}), importance-weighted bound "
                f"{final[f'test_iw_nll_bound_k{k}']:.2f}; {final['pixels']}")
    line = (f"epoch {final['epoch']}: test MSE {final['test_mse']:.4f} on [0, 1] (mean image "
            f"{final['baselines']['mean_image']['test_mse']:.4f}")
    if "noisy_input" in final["baselines"]:
        line += f", noisy input {final['baselines']['noisy_input']['test_mse']:.4f}"
    return line + ")"


def plot_run_metrics(config, dataset, epochs, path):
    if config.model == "vae":
        runs.plot_metrics(epochs, {"train -ELBO": "train_neg_elbo", "test -ELBO": "test_neg_elbo"},
                          path, title=f"VAE on {dataset}, nats per image" + (
                              "" if config.binarize else "\ncontinuous intensities: cross-entropy, not a likelihood"))
        return
    last = epochs[-1]
    baseline = ("noisy input", last["test_noisy_mse"]) if config.model == "denoising" else \
        ("mean image", last["mean_image_mse"])
    runs.plot_metrics(epochs, {"train MSE": "train_mse", "test MSE": "test_mse"}, path,
                      baselines=dict([baseline]),
                      title=f"{config.model} autoencoder on {dataset}, MSE on [0, 1]")


def vae_test_bounds(model, test_data, num_samples, seed):
    """Test-set means of the negative ELBO and the importance-weighted bound (k = num_samples)."""
    neg_elbo, neg_iw_bound = [], []
    evaluate = tf.function(model.evaluate_bounds)
    for index, (pixels, _) in enumerate(test_data):
        # smaller batches keep num_samples decoder passes per image within memory
        for start in range(0, int(pixels.shape[0]), 100):
            batch_seed = tf.constant([seed, index * 1000 + start], tf.int64)
            elbo, bound = evaluate(pixels[start:start + 100], num_samples, batch_seed)
            neg_elbo.append(elbo.numpy())
            neg_iw_bound.append(bound.numpy())
    return float(np.mean(np.concatenate(neg_elbo))), float(np.mean(np.concatenate(neg_iw_bound)))


def final_metrics(config, last, model=None, test_data=None):
    """metrics.json's final from the last epoch's record: the model beside its baselines.

    The VAE also gets its test bounds from `num_samples = config.iw_samples` posterior samples.
    """
    final = {key: value for key, value in last.items() if key not in ("seconds", "mean_image_mse")}
    final["baselines"] = {"mean_image": {"test_mse": last["mean_image_mse"]}}
    if config.model == "vae":
        neg_elbo, neg_iw_bound = vae_test_bounds(model, test_data, config.iw_samples, config.seed)
        final[f"test_neg_elbo_k{config.iw_samples}"] = neg_elbo
        final[f"test_iw_nll_bound_k{config.iw_samples}"] = neg_iw_bound
        return final
    final["beats_mean_image"] = last["test_mse"] < last["mean_image_mse"]
    if config.model == "denoising":
        final["baselines"]["noisy_input"] = {"test_mse": last["test_noisy_mse"]}
        final["beats_noisy_input"] = last["test_mse"] < last["test_noisy_mse"]
    return final


# -- pictures every epoch --------------------------------------------------------------------------

def picture_batch(test_data, count=10, num_scattered=2000):
    """Up to `count` test images, one per class first, and the first `num_scattered` with labels."""
    # the data set filled its cache when it was made, so reading part of it is safe
    images, labels = (tensor.numpy() for tensor in next(iter(test_data.unbatch().batch(num_scattered))))
    first_of_class = [int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)]
    chosen = (first_of_class + [i for i in range(len(labels)) if i not in first_of_class])[:count]
    return images[chosen], images, labels


class EpochPictures(keras.callbacks.Callback):
    """After every epoch: the pictures of what the model does to some test images.

    RUN/images/epoch_NNN.png shows originals above reconstructions (the denoiser: noisy /
    denoised / clean); the VAE adds samples_epoch_NNN.png from the prior; a 2-D or 3-D code
    adds latent_epoch_NNN.png, the codes of test images coloured by class. Nothing here draws
    from the model's seed generator, so the pictures never change the training numbers.
    """

    def __init__(self, config, dataset, test_data, directory):
        super().__init__()
        self.config = config
        self.dataset = dataset
        self.directory = pathlib.Path(directory)
        self.shown, self.scatter_images, self.scatter_labels = picture_batch(test_data)
        self.class_names = FASHION_CLASSES if dataset == "fashion_mnist" else None

    def pictures_of(self, epoch):
        """{file name: figure} of the pictures of `epoch` (counted from 1)."""
        config, model, shown = self.config, self.model, self.shown
        drawn = {}
        title = f"{config.model} on {self.dataset}, epoch {epoch}"
        if config.model == "denoising":
            noisy = model.corrupt(tf.constant(shown), seed=config.seed).numpy()
            drawn[f"epoch_{epoch:03d}.png"] = figures.image_rows(
                [("noisy", noisy), ("denoised", model(noisy).numpy()), ("clean", shown)], title=title)
        else:
            drawn[f"epoch_{epoch:03d}.png"] = figures.image_rows(
                [("original", shown), ("reconstructed", model(shown).numpy())], title=title)
        if config.model == "vae":
            samples = model.sample(64, tf.constant([config.seed, 0])).numpy()
            drawn[f"samples_epoch_{epoch:03d}.png"] = figures.image_grid(
                samples, title=f"VAE samples from the prior, {self.dataset}, epoch {epoch}")
        if model.code_size in (2, 3):
            codes = model.encode(tf.constant(self.scatter_images))
            codes = (codes[0] if config.model == "vae" else codes).numpy()  # the VAE: z_mean
            drawn[f"latent_epoch_{epoch:03d}.png"] = pictures.latent_scatter(
                codes, self.scatter_labels, self.class_names,
                title=f"{model.code_size}-D codes of test images, {self.dataset}, epoch {epoch}")
        return drawn

    def on_epoch_end(self, epoch, logs=None):
        for name, figure in self.pictures_of(epoch + 1).items():
            try:
                runs.save_figure_atomic(figure, self.directory / name)
            except OSError as error:
                raise runs.unwritable(self.directory.parent, error) from None
            finally:
                figures.close(figure)


# -- runs ------------------------------------------------------------------------------------------

def resumed_config(run_dir, config, data):
    """The config stored in `run_dir`, refused unless `config` (when given) names the same
    model and `data` is the same data set."""
    directory = runs.RunDirectory(run_dir)
    stored = directory.read_config()
    model = config.model if config is not None else stored.get("model")
    if (stored.get("model"), stored.get("dataset")) != (model, data.name):
        raise RunError(f"{directory.path} holds a {stored.get('model')} run on "
                       f"{stored.get('dataset')}; resume it with the same model and dataset")
    return AutoencoderConfig.from_dict(stored)


def train_autoencoder(config, data, run_dir, resume=False, epochs=None, export=True, log=None,
                      verbose=0, strategy=None):
    """Train the autoencoder `config` describes on `data` (an `ImageData`) in `run_dir`.

    Returns metrics.json's content: every epoch's train and test losses beside the mean-image
    baseline, and a final with the test metrics, their "baselines" (the mean training image;
    the denoiser's noisy input) and the VAE's importance-weighted bound. A resumed run
    (`resume=True`) continues from its last checkpoint with its stored settings (`config`, if
    given, must name the same model) to its stored epoch count unless `epochs` is given. The
    model is exported to RUN/export/<model>/<version>/ unless `export` is False. `log` gets a
    line per epoch; `verbose` is Keras's `fit` verbosity.

    `strategy` (`pipelines.distribute.make_strategy`) trains with Keras's `fit` under it, each
    global batch of `batch_size` images shared among the replicas; with several workers every
    worker runs this call and only the chief writes `run_dir`.
    """
    with distribute.writable_run_dir(strategy, run_dir, resume) as own_dir:
        return _train(config, data, own_dir, resume, epochs,
                      export and distribute.is_chief(strategy), log, verbose, strategy)


def _train(config, data, run_dir, resume, epochs, export, log, verbose, strategy):
    if resume:
        config = resumed_config(run_dir, config, data)
    config = config or AutoencoderConfig()
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    run = loop.Run(run_dir, {"model": config.model, "dataset": data.name,
                             "data_dir": str(pathlib.Path(data.builder.data_dir_root).resolve()),
                             **dataclasses.asdict(config)}, resume=resume)

    keras.utils.set_random_seed(config.seed)
    train_data = data.dataset("train", config.batch_size, shuffle_seed=config.seed)
    test_data = data.dataset("test", EVAL_BATCH_SIZE)
    fit_train, fit_test = train_data, test_data
    if strategy is not None:
        # images alone: Keras 3's first multi-worker step cannot average a batch holding
        # labels across workers (the labels are unused anyway)
        fit_train, fit_test = (distribute.shardable(part.map(lambda pixels, labels: pixels))
                               for part in (train_data, test_data))
    with distribute.scope(strategy):
        model = compiled_model(config)
    epochs_done = tf.Variable(0, dtype=tf.int64, name="epoch")
    # the seed state too, so a resumed run does not replay epoch 1's noise or binarisation
    run.track(model=model, optimizer=model.optimizer, epoch=epochs_done,
              seed_state=model.seed_generator.state)
    done = int(epochs_done.numpy())
    run.check_resumable(done, config.epochs, log)

    baseline = mean_image_baseline(data.dataset("train", EVAL_BATCH_SIZE), test_data)

    def extra(record):
        notes = {"mean_image_mse": baseline}
        if config.model == "vae":
            notes["pixels"] = pixels_note(config)
        return notes

    monitor = loop.RunMonitor(
        run, rename={"loss": "neg_elbo"} if config.model == "vae" else None, extra=extra,
        plot=lambda logged: plot_run_metrics(config, data.name, logged, run.path / "metrics.png"),
        describe=lambda record: describe_epoch(config, record), log=log, epoch_counter=epochs_done)
    callbacks = [monitor,
                 EpochPictures(config, data.name, test_data, run.path / "images")]
    model.fit(fit_train, validation_data=fit_test, epochs=config.epochs, initial_epoch=done,
              callbacks=callbacks, verbose=verbose,
              shuffle=False)  # the train dataset shuffles itself, seeded

    if config.model == "vae" and log:
        log(f"importance-weighted bound on the test set with k = {config.iw_samples} ...")
    final = final_metrics(config, run.metrics_log.epochs[-1], model, test_data)
    return run.finish(final, export=model.export if export else None,
                      model_name=config.export_name)


def load_autoencoder_run(run_dir):
    """The model of a run, rebuilt from its run_config.json, with its latest checkpoint's weights.

    Compiled (a fresh optimizer: continue training with `train_autoencoder(resume=True)`), so
    ``model.evaluate(data.dataset("test", 500))`` works at once.
    """
    directory = runs.RunDirectory(run_dir)
    config = AutoencoderConfig.from_dict(directory.read_config())
    checkpoint = directory.checkpoint_to_export()
    model = build_model(config)
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial().assert_existing_objects_matched()
    # compiled after the restore, so that a checkpoint holding no optimizer restores too
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    return model


def export_autoencoder_run(run_dir, export_base=None):
    """Export the latest checkpoint of a run as the next version, without training; the new
    export is noted in the run's metrics.json. Returns its path."""
    directory = runs.RunDirectory(run_dir)
    config = AutoencoderConfig.from_dict(directory.read_config())
    model = load_autoencoder_run(run_dir)
    path = runs.export_versioned(export_base or directory.export_base(), config.export_name,
                                 lambda target: export_autoencoder(model, target))
    directory.record_export(path)
    return path
