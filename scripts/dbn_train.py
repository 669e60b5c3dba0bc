"""dbn-train: a Deep Belief Network on MNIST or Fashion-MNIST, pre-trained greedily, then fine-tuned
and compared with the same network from random initialisation and a ReLU + dropout + Adam one.

Every epoch of every phase is checkpointed (Ctrl-C keeps the last one; --resume continues). The
run directory gets metrics.json, finetune.png, filters.png, samples.png, TensorBoard summaries
and the fine-tuned classifier as a SavedModel at RUN/export/dbn/<version>/ (signature: images ->
probabilities, class). The library call is rbm_tf.train_dbn.
"""

import argparse
import pathlib
import sys

from pipelines.images import IMAGE_DATASETS
from rbm_tf.dbn_config import DBNConfig
from scripts import _arguments
from scripts import _cli


def build_parser():
    defaults = DBNConfig()
    parser = argparse.ArgumentParser(
        prog="dbn-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=IMAGE_DATASETS, default=defaults.dataset,
                        help="default: %(default)s")
    parser.add_argument("--raw-dir", type=pathlib.Path,
                        help="directory of the data set's IDX files (train-images-idx3-ubyte.gz "
                             "...); needed the first time, to write the records into --data-dir")
    parser.add_argument("--data-dir", required=True, type=pathlib.Path,
                        help="where the prepared TFRecords are (or will be) kept")
    parser.add_argument("--layers", dest="hidden", metavar="SIZES", default=defaults.hidden,
                        type=_arguments.comma_separated_sizes("hidden layer sizes", "500,500,2000"),
                        help="hidden layer sizes, bottom up; the 784 pixels come first by "
                             "themselves (default: 500,500,2000 as in Hinton et al. 2006)")
    parser.add_argument("--pretrain-epochs", type=int,
                        help=f"CD epochs per RBM; 0 skips pre-training (default: "
                             f"{defaults.pretrain_epochs}, or the run's own with --resume)")
    parser.add_argument("--finetune-epochs", type=int,
                        help=f"backpropagation epochs of the DBN and of each baseline (default: "
                             f"{defaults.finetune_epochs}, or the run's own with --resume)")
    parser.add_argument("--finetune-learning-rate", type=float, default=defaults.finetune_learning_rate,
                        help="SGD learning rate of fine-tuning and of the same-init baseline "
                             "(momentum %s) (default: %%(default)s)" % defaults.finetune_momentum)
    parser.add_argument("--finetune-dropout", type=float, default=defaults.finetune_dropout,
                        help="dropout after each hidden layer while fine-tuning, and in the "
                             "same-init baseline (default: %(default)s)")
    parser.add_argument("--modern-learning-rate", type=float, default=defaults.modern_learning_rate,
                        help="Adam learning rate of the modern baseline (default: %(default)s)")
    parser.add_argument("--modern-dropout", type=float, default=defaults.modern_dropout,
                        help="dropout of the modern baseline (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="examples per update, in every phase (default: %(default)s)")
    parser.add_argument("--gibbs-steps", type=int, default=defaults.gibbs_steps,
                        help="Gibbs steps in the top RBM for samples.png (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of weights, sampling, dropout and shuffling (default: %(default)s)")
    _arguments.add_contrastive_divergence_arguments(parser, defaults)
    _arguments.add_run_arguments(parser)
    _arguments.add_strategy_argument(parser)
    return parser


def body(args):
    from pipelines.distribute import make_strategy
    from pipelines.image_data import prepare_images
    from rbm_tf.dbn_training import load_dbn_config
    from rbm_tf.dbn_training import train_dbn

    epochs = {name: getattr(args, name) for name in ("pretrain_epochs", "finetune_epochs")
              if getattr(args, name) is not None}
    if args.resume:
        # a resumed run keeps the settings it was started with: its checkpoint matches them
        settings = load_dbn_config(args.run_dir).to_dict()
    else:
        settings = {name: getattr(args, name) for name in (
            "dataset", "hidden", "finetune_learning_rate", "finetune_dropout", "modern_learning_rate",
            "modern_dropout", "batch_size", "gibbs_steps", "seed")}
        settings.update(_arguments.cd_settings(args))
    config = _cli.config_of(DBNConfig, **{**settings, **epochs})
    data = prepare_images(config.dataset, args.data_dir, args.raw_dir, log=print)
    final = train_dbn(config, data, args.run_dir, resume=args.resume, export=not args.no_export,
                      log=print, strategy=make_strategy(args.strategy))["final"]
    errors = {"dbn": final["test_error"],
              **{name: numbers["test_error"] for name, numbers in final["baselines"].items()}}
    print("final test error: " + ", ".join(f"{name} {error:.2%}" for name, error in errors.items())
          + f"; metrics in {pathlib.Path(args.run_dir) / 'metrics.json'}")
    return 0


def main(argv=None):
    return _cli.run(build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
