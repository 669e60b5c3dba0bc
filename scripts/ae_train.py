"""ae-train: train an autoencoder on MNIST or Fashion-MNIST, with pictures, metrics and an export.

Models: dense (the chapter's 784-128-64-12-3 on [-1, 1], tanh output), conv (the chapter's
convolutional stack, 32-d code), denoising (either of them fed noisy images, scored against
the clean ones) and vae (784-400-20 encoder and decoder, on dynamically binarised pixels).

The IDX files are read from --raw-dir and written once as TFRecords under --data-dir (later
runs need only --data-dir). Every epoch writes a checkpoint, TensorBoard summaries,
RUN/metrics.json and RUN/images/epoch_NNN.png (originals above reconstructions; the denoiser
shows noisy / denoised / clean; the VAE adds RUN/images/samples_epoch_NNN.png); a 2-D or 3-D
code also gets RUN/images/latent_epoch_NNN.png. Reconstruction MSE is always on the [0, 1]
pixel scale, beside the MSE of the mean training image (the denoiser: of the noisy input).
At the end the model is exported to RUN/export/<model>/<version>/ for TensorFlow Serving.

    ae-train --model vae --dataset mnist --raw-dir ../shared/data/mnist --data-dir DATA --run-dir RUN
"""

import argparse
import dataclasses
import pathlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from autoencoders_tf import VAE
from autoencoders_tf import ConvAutoencoder
from autoencoders_tf import DenseAutoencoder
from autoencoders_tf import DenoisingAutoencoder
from autoencoders_tf import pictures
from autoencoders_tf.base import INPUT_RANGES
from autoencoders_tf.denoising import ARCHITECTURES
from autoencoders_tf.denoising import NOISE_KINDS
from autoencoders_tf.serving import save_serving
from pipelines import datasets
from pipelines import images as idx_images
from scripts import _run

MODELS = ("dense", "conv", "denoising", "vae")
EXPORT_NAMES = {"dense": "dense_autoencoder", "conv": "conv_autoencoder",
                "denoising": "denoising_autoencoder", "vae": "vae"}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
EVAL_BATCH_SIZE = 500


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    """Model and training settings; every field is stored in RUN/run_config.json."""

    model: str = "dense"
    epochs: int = 10
    batch_size: int = 100
    learning_rate: float = 1e-3
    seed: int = 0
    input_range: str = "symmetric"
    hidden_units: tuple = (128, 64, 12)
    code_size: int = 3
    architecture: str = "conv"
    noise: str = "gaussian"
    noise_level: float = 0.5
    vae_hidden: int = 400
    latent_dim: int = 20
    binarize: bool = True
    iw_samples: int = 100

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if min(self.epochs, self.batch_size, self.code_size, self.latent_dim, self.vae_hidden,
               self.iw_samples, *self.hidden_units) < 1:
            raise ValueError("--epochs, --batch-size, --code-size, --hidden-units, --latent-dim, "
                             "--vae-hidden and --iw-samples must be at least 1")
        if self.learning_rate <= 0:
            raise ValueError("--learning-rate must be positive")
        object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))
        build_model(self)  # constructor checks (noise level, ranges) as one-line errors

    @property
    def export_name(self):
        return EXPORT_NAMES[self.model]


def build_model(config):
    """The untrained Keras model `config` describes."""
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


def config_from_run(stored):
    """The AutoencoderConfig stored in a run's run_config.json."""
    fields = {field.name for field in dataclasses.fields(AutoencoderConfig)}
    return AutoencoderConfig(**{key: value for key, value in stored.items() if key in fields})


def pixels_note(config):
    """How the VAE's likelihood treats pixels, written beside every VAE number."""
    if config.binarize:
        return "dynamically binarised pixels: Bernoulli log-likelihood in nats per image"
    return ("continuous intensities: Bernoulli cross-entropy, NOT a likelihood, "
            "not comparable with binarised results")


def compiled_model(config):
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    # variables exist before a checkpoint is restored into them
    model.optimizer.build(model.trainable_variables)
    return model


def mean_image_baseline(train_data, test_data):
    """MSE on [0, 1] of predicting every test image by the mean training image."""
    total = tf.zeros([28, 28, 1])
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


def picture_batch(test_data, count=10, num_scattered=2000):
    """Up to `count` test images, one per class first, and the first `num_scattered` with labels."""
    # image_dataset filled its cache when it was made, so reading part of it is safe
    images, labels = (tensor.numpy() for tensor in next(iter(test_data.unbatch().batch(num_scattered))))
    first_of_class = [int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)]
    chosen = (first_of_class + [i for i in range(len(labels)) if i not in first_of_class])[:count]
    return images[chosen], images, labels


class EpochReport(keras.callbacks.Callback):
    """After every epoch: metrics.json, TensorBoard, checkpoint, pictures, metrics.png."""

    def __init__(self, config, dataset, run, manager, epoch_counter, metrics_log, baseline,
                 pictures_of, log):
        super().__init__()
        self.config = config
        self.dataset = dataset
        self.run = run
        self.manager = manager
        self.epoch_counter = epoch_counter
        self.metrics_log = metrics_log
        self.baseline = baseline
        self.pictures_of = pictures_of
        self.log = log
        self.writers = {side: run.summary_writer(side) for side in ("train", "test")}
        self.started = None
        self.train_seconds = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self.started is not None and self.train_seconds is None:
            self.train_seconds = time.perf_counter() - self.started

    def on_epoch_end(self, epoch, logs=None):
        epoch_number = epoch + 1
        seconds = self.train_seconds or (time.perf_counter() - self.started)
        self.train_seconds = None
        record = {"epoch": epoch_number, "seconds": round(seconds, 3)}
        rename = {"loss": "neg_elbo"} if self.config.model == "vae" else {}
        for key, value in logs.items():
            side, name = ("test", key[4:]) if key.startswith("val_") else ("train", key)
            record[f"{side}_{rename.get(name, name)}"] = float(value)
        record["mean_image_mse"] = self.baseline
        if self.config.model == "vae":
            record["pixels"] = pixels_note(self.config)
        self.metrics_log.log_epoch(record)
        for side, writer in self.writers.items():
            scalars = {key[len(side) + 1:]: value for key, value in record.items()
                       if key.startswith(f"{side}_")}
            _run.write_scalars(writer, epoch_number, {**scalars, "mean_image_mse": self.baseline})
        self.epoch_counter.assign(epoch_number)
        self.manager.save(checkpoint_number=epoch_number)
        for name, figure in self.pictures_of(self.model, epoch_number).items():
            _run.save_figure_atomic(figure, self.run.path / "images" / name)
            pictures.close(figure)
        plot_run_metrics(self.config, self.dataset, self.metrics_log.epochs, self.run.path / "metrics.png")
        self.log(epoch_summary(self.config, record))


def epoch_summary(config, record):
    """One line for the console about an epoch."""
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


def mse_baseline(config):
    """(metrics key, label) of a test MSE's baseline: the denoiser's noisy input, else the mean image."""
    if config.model == "denoising":
        return "test_noisy_mse", "noisy input"
    return "mean_image_mse", "mean image"


def plot_run_metrics(config, dataset, epochs, path):
    if config.model == "vae":
        _run.plot_metrics(epochs, {"train -ELBO": "train_neg_elbo", "test -ELBO": "test_neg_elbo"},
                          path, title=f"VAE on {dataset}, nats per image" + (
                              "" if config.binarize else "\ncontinuous intensities: cross-entropy, not a likelihood"))
    else:
        baseline_key, baseline_label = mse_baseline(config)
        _run.plot_metrics(epochs, {"train MSE": "train_mse", "test MSE": "test_mse"}, path,
                          baseline_key=baseline_key, baseline_label=baseline_label,
                          title=f"{config.model} autoencoder on {dataset}, MSE on [0, 1]")


def picture_maker(config, dataset, test_data):
    """A function (model, epoch) -> {file name: figure} of the pictures for one epoch."""
    shown, scatter_images, scatter_labels = picture_batch(test_data)
    class_names = FASHION_CLASSES if dataset == "fashion_mnist" else None

    def make(model, epoch):
        figures = {}
        title = f"{config.model} on {dataset}, epoch {epoch}"
        if config.model == "denoising":
            noisy = model.corrupt(tf.constant(shown), seed=config.seed).numpy()
            figures[f"epoch_{epoch:03d}.png"] = pictures.image_rows(
                [("noisy", noisy), ("denoised", model(noisy).numpy()), ("clean", shown)],
                title=title)
        else:
            figures[f"epoch_{epoch:03d}.png"] = pictures.image_rows(
                [("original", shown), ("reconstructed", model(shown).numpy())], title=title)
        if config.model == "vae":
            samples = model.sample(64, tf.constant([config.seed, 0])).numpy()
            figures[f"samples_epoch_{epoch:03d}.png"] = pictures.image_grid(
                samples, title=f"VAE samples from the prior, {dataset}, epoch {epoch}")
        if model.code_size in (2, 3):
            codes = model.encode(tf.constant(scatter_images))
            codes = (codes[0] if config.model == "vae" else codes).numpy()  # the VAE: z_mean
            figures[f"latent_epoch_{epoch:03d}.png"] = pictures.latent_scatter(
                codes, scatter_labels, class_names, title=f"{model.code_size}-D codes of test images, "
                                                          f"{dataset}, epoch {epoch}")
        return figures

    return make


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


def export(model, config, export_base):
    """Write the servable model as the next version under export_base/<model>/."""
    return _run.export_versioned(export_base, config.export_name, lambda path: save_serving(model, path))


def export_run(run_dir, export_base=None):
    """Rebuild the model of a run from run_config.json, restore its last checkpoint, export it."""
    run = _run.RunDirectory(run_dir)
    config = config_from_run(run.read_config())
    model = build_model(config)
    tf.train.Checkpoint(model=model).restore(run.checkpoint_to_export()).expect_partial().assert_existing_objects_matched()
    return export(model, config, export_base or run.export_base())


def train_and_evaluate(config, dataset, data_dir, run_dir, raw_dir=None, resume=False,
                       export_model=True, log=print, verbose=1):
    """Train `config` on `dataset`, write the run directory, export; returns metrics.json's content."""
    builder = datasets.prepared_images(data_dir, dataset, raw_dir)
    run = _run.RunDirectory(run_dir)
    run.check_fresh_or_resume(resume)
    if not resume:
        run.write_config({"model": config.model, "script": "ae_train", "dataset": dataset,
                          "data_dir": str(pathlib.Path(data_dir).resolve()),
                          **dataclasses.asdict(config)})

    keras.utils.set_random_seed(config.seed)
    train_examples = datasets.cached_images(builder, "train")
    train_data = datasets.image_dataset(builder, "train", config.batch_size, shuffle_seed=config.seed,
                                        examples=train_examples)
    test_data = datasets.image_dataset(builder, "test", EVAL_BATCH_SIZE)
    model = compiled_model(config)
    epoch_counter = tf.Variable(0, dtype=tf.int64, name="epoch")
    # the noise / binarisation seed state too, so a resumed run does not replay epoch 1's noise
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch_counter,
                                     seed_state=model.seed_generator.state)
    manager = run.checkpoint_manager(checkpoint)
    if resume:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(f"resumed from {manager.latest_checkpoint} after epoch {int(epoch_counter.numpy())}")

    baseline = mean_image_baseline(
        datasets.image_dataset(builder, "train", EVAL_BATCH_SIZE, examples=train_examples), test_data)
    metrics_log = _run.MetricsLog(run.metrics_path, resume=resume)
    report = EpochReport(config, dataset, run, manager, epoch_counter, metrics_log, baseline,
                         picture_maker(config, dataset, test_data), log)
    initial_epoch = int(epoch_counter.numpy())
    if initial_epoch >= config.epochs:
        raise _run.UserError(f"nothing to train: the run already has {initial_epoch} epochs; "
                             "raise --epochs to continue it")
    model.fit(train_data, validation_data=test_data, epochs=config.epochs,
              initial_epoch=initial_epoch, callbacks=[report], verbose=verbose,
              shuffle=False)  # the train dataset shuffles itself, seeded

    last = metrics_log.epochs[-1]
    final = {key: value for key, value in last.items() if key != "seconds"}
    final["mean_seconds_per_epoch"] = round(
        sum(e["seconds"] for e in metrics_log.epochs) / len(metrics_log.epochs), 3)
    if config.model == "vae":
        log(f"importance-weighted bound on the test set with k = {config.iw_samples} ...")
        neg_elbo, neg_iw_bound = vae_test_bounds(model, test_data, config.iw_samples, config.seed)
        final[f"test_neg_elbo_k{config.iw_samples}"] = neg_elbo
        final[f"test_iw_nll_bound_k{config.iw_samples}"] = neg_iw_bound
    else:
        final["beats_mean_image"] = last["test_mse"] < last["mean_image_mse"]
        if config.model == "denoising":
            final["beats_noisy_input"] = last["test_mse"] < last["test_noisy_mse"]
    if export_model:
        final["export"] = str(export(model, config, run.export_base()))
        log(f"exported to {final['export']}")
    metrics_log.set_final(final)
    return {"final": final, "epochs": metrics_log.epochs}


def build_parser():
    defaults = AutoencoderConfig()
    parser = argparse.ArgumentParser(
        prog="ae-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=MODELS, help="which autoencoder to train")
    parser.add_argument("--dataset", required=True, choices=idx_images.IMAGE_DATASETS)
    parser.add_argument("--raw-dir", type=pathlib.Path,
                        help="directory of the four IDX files (train-images-idx3-ubyte.gz, ...); "
                             "needed the first time, to write the TFRecords")
    parser.add_argument("--download", action="store_true",
                        help="fetch the official IDX files into --raw-dir first, checking their md5 "
                             "(needs a network)")
    parser.add_argument("--data-dir", required=True, type=pathlib.Path,
                        help="where the TFRecords are written and read")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="default: %(default)s")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                        help="Adam's learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of initial weights, shuffling and noise (default: %(default)s)")
    _run.add_run_arguments(parser)
    group = parser.add_argument_group("dense, conv and denoising models")
    group.add_argument("--input-range", choices=INPUT_RANGES, default=defaults.input_range,
                       help="symmetric: the network sees [-1, 1] and ends in tanh (the chapter's); "
                            "unit: [0, 1] and a sigmoid (default: %(default)s)")
    group.add_argument("--hidden-units", type=_run.comma_separated_sizes("widths", "128,64,12"), default=defaults.hidden_units,
                       help="dense encoder widths, mirrored by the decoder (default: 128,64,12)")
    group.add_argument("--code-size", type=int, default=defaults.code_size,
                       help="dense bottleneck width; 2 or 3 also draws the codes (default: %(default)s)")
    group.add_argument("--architecture", choices=ARCHITECTURES, default=defaults.architecture,
                       help="what the denoising model denoises with (default: %(default)s)")
    group.add_argument("--noise", choices=NOISE_KINDS, default=defaults.noise,
                       help="gaussian: add N(0, level^2) and clip to [0, 1]; masking: zero a "
                            "fraction level of the pixels (default: %(default)s)")
    group.add_argument("--noise-level", type=float, default=defaults.noise_level,
                       help="default: %(default)s")
    group = parser.add_argument_group("vae")
    group.add_argument("--vae-hidden", type=int, default=defaults.vae_hidden,
                       help="hidden units of encoder and decoder (default: %(default)s)")
    group.add_argument("--latent-dim", type=int, default=defaults.latent_dim, help="default: %(default)s")
    group.add_argument("--continuous", action="store_true",
                       help="fit the Bernoulli decoder to continuous intensities instead of "
                            "binarised pixels (then the ELBO is not a likelihood bound)")
    group.add_argument("--iw-samples", type=int, default=defaults.iw_samples,
                       help="samples per test image of the importance-weighted bound (default: %(default)s)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    settings = dict(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                    learning_rate=args.learning_rate, seed=args.seed, input_range=args.input_range,
                    hidden_units=args.hidden_units, code_size=args.code_size,
                    architecture=args.architecture, noise=args.noise, noise_level=args.noise_level,
                    vae_hidden=args.vae_hidden, latent_dim=args.latent_dim,
                    binarize=not args.continuous, iw_samples=args.iw_samples)
    if args.resume:
        stored = _run.RunDirectory(args.run_dir).read_config()
        if stored.get("model") != args.model or stored.get("dataset") != args.dataset:
            raise _run.UserError(f"{args.run_dir} holds a {stored.get('model')} run on "
                                 f"{stored.get('dataset')}; resume it with the same --model and --dataset")
        settings.update({key: stored[key] for key in settings if key in stored and key != "epochs"})
    try:
        config = AutoencoderConfig(**settings)
    except ValueError as error:
        raise _run.UserError(str(error)) from None
    if args.download:
        if args.raw_dir is None:
            raise _run.UserError("--download needs --raw-dir, the directory to put the files in")
        idx_images.download(args.dataset, args.raw_dir, log=print)
    result = train_and_evaluate(config, args.dataset, args.data_dir, args.run_dir,
                                raw_dir=args.raw_dir, resume=args.resume,
                                export_model=not args.no_export,
                                # a progress bar on a terminal, one line per epoch in a log file
                                verbose=1 if sys.stdout.isatty() else 2)
    final = result["final"]
    if config.model == "vae":
        k = config.iw_samples
        print(f"final: test -ELBO {final['test_neg_elbo']:.2f} nats per image (k={k} estimate "
              f"{final[f'test_neg_elbo_k{k}']:.2f}), importance-weighted bound "
              f"{final[f'test_iw_nll_bound_k{k}']:.2f}; {pixels_note(config)}")
    else:
        print(f"final: {epoch_summary(config, final)}")
    print(f"metrics in {pathlib.Path(args.run_dir) / 'metrics.json'}")
    return 0


def main(argv=None):
    return _run.run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
