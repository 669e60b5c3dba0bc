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
import pathlib
import sys

from autoencoders_tf.config import ARCHITECTURES
from autoencoders_tf.config import INPUT_RANGES
from autoencoders_tf.config import MODELS
from autoencoders_tf.config import NOISE_KINDS
from autoencoders_tf.config import AutoencoderConfig
from pipelines.images import IMAGE_DATASETS
from scripts import _arguments
from scripts import _cli


def build_parser():
    defaults = AutoencoderConfig()
    parser = argparse.ArgumentParser(
        prog="ae-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", required=True, choices=MODELS, help="which autoencoder to train")
    add("--dataset", required=True, choices=IMAGE_DATASETS)
    add("--raw-dir", type=pathlib.Path,
        help="directory of the four IDX files (train-images-idx3-ubyte.gz, ...); needed the "
             "first time, to write the TFRecords")
    add("--download", action="store_true",
        help="fetch the official IDX files into --raw-dir first, checking their md5 (needs a network)")
    add("--data-dir", required=True, type=pathlib.Path, help="where the TFRecords are written and read")
    add("--epochs", type=_arguments.positive_int,
        help=f"default: {defaults.epochs}; with --resume, the run's own count")
    add("--batch-size", type=int, default=defaults.batch_size, help="default: %(default)s")
    add("--learning-rate", type=float, default=defaults.learning_rate,
        help="Adam's learning rate (default: %(default)s)")
    add("--seed", type=int, default=defaults.seed,
        help="seed of initial weights, shuffling and noise (default: %(default)s)")
    _arguments.add_run_arguments(parser)
    _arguments.add_strategy_argument(parser)
    group = parser.add_argument_group("dense, conv and denoising models")
    group.add_argument("--input-range", choices=INPUT_RANGES, default=defaults.input_range,
                       help="symmetric: the network sees [-1, 1] and ends in tanh (the chapter's); "
                            "unit: [0, 1] and a sigmoid (default: %(default)s)")
    group.add_argument("--hidden-units", type=_arguments.comma_separated_sizes("widths", "128,64,12"),
                       default=defaults.hidden_units,
                       help="dense encoder widths, mirrored by the decoder (default: 128,64,12)")
    group.add_argument("--code-size", type=int, default=defaults.code_size,
                       help="dense bottleneck width; 2 or 3 also draws the codes (default: %(default)s)")
    group.add_argument("--architecture", choices=ARCHITECTURES, default=defaults.architecture,
                       help="what the denoising model denoises with (default: %(default)s)")
    group.add_argument("--noise", choices=NOISE_KINDS, default=defaults.noise,
                       help="gaussian: add N(0, level^2) and clip to [0, 1]; masking: zero a "
                            "fraction level of the pixels (default: %(default)s)")
    group.add_argument("--noise-level", type=float, default=defaults.noise_level, help="default: %(default)s")
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


def body(args):
    from autoencoders_tf import train_autoencoder
    from autoencoders_tf.training import describe_final
    from pipelines import prepare_images
    from pipelines.distribute import make_strategy

    # with --resume the run keeps its stored settings; the model must be the same
    config = _cli.config_of(
        AutoencoderConfig, model=args.model, batch_size=args.batch_size, learning_rate=args.learning_rate,
        seed=args.seed, input_range=args.input_range, hidden_units=args.hidden_units,
        code_size=args.code_size, architecture=args.architecture, noise=args.noise,
        noise_level=args.noise_level, vae_hidden=args.vae_hidden, latent_dim=args.latent_dim,
        binarize=not args.continuous, iw_samples=args.iw_samples)
    data = prepare_images(args.dataset, args.data_dir, args.raw_dir, download=args.download, log=print)
    result = train_autoencoder(config, data, args.run_dir, resume=args.resume, epochs=args.epochs,
                               export=not args.no_export, log=print,
                               # a progress bar on a terminal, one line per epoch in a log file
                               verbose=1 if sys.stdout.isatty() else 2,
                               strategy=make_strategy(args.strategy))
    final = result["final"]
    if "export" in final and not args.no_export:
        print(f"exported to {final['export']}")
    print(f"final: {describe_final(final)}")
    print(f"metrics in {pathlib.Path(args.run_dir) / 'metrics.json'}")
    return 0


def main(argv=None):
    return _cli.run(build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
