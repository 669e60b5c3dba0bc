"""rbm-train: train the RBM recommender on prepared MovieLens records, evaluate, export.

Every epoch reports accuracy and ROC-AUC on the train and test ratings beside the majority
baseline (always predicting the training set's most common label), and writes checkpoints,
TensorBoard summaries, RUN/metrics.json and RUN/metrics.png. At the end the model is exported
to RUN/export/rbm/<version>/ for TensorFlow Serving.
"""

import argparse
import pathlib
import sys

from rbm_tf.config import VISIBLE_LAYOUTS
from rbm_tf.config import RecommenderConfig
from scripts import _arguments
from scripts import _cli


def build_parser():
    defaults = RecommenderConfig()
    parser = argparse.ArgumentParser(
        prog="rbm-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments.add_split_arguments(parser)
    parser.add_argument("--epochs", type=_arguments.positive_int,
                        help=f"the most epochs (default: {defaults.epochs}; with --resume, the "
                             "run's own count)")
    parser.add_argument("--patience-updates", type=int, default=defaults.patience_updates,
                        help="stop after this many CD updates without a better validation "
                             "ROC-AUC, keeping the best epoch (default: %(default)s)")
    parser.add_argument("--min-updates", type=int, default=defaults.min_updates,
                        help="never stop before this many updates (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=defaults.hidden,
                        help="number of hidden units (default: %(default)s)")
    parser.add_argument("--visible", choices=VISIBLE_LAYOUTS, default=defaults.visible,
                        help="pair: like and dislike units per movie, so dislikes reach the hidden "
                             "layer; single: one 0/1 unit per movie (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="users per update (default: %(default)s)")
    parser.add_argument("--weight-stddev", type=float, default=defaults.weight_stddev,
                        help="scale of the initial N(0, s^2) weights (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of initial weights, sampling and shuffling (default: %(default)s)")
    _arguments.add_contrastive_divergence_arguments(parser, defaults)
    _arguments.add_run_arguments(parser)
    _arguments.add_strategy_argument(parser)
    return parser


def body(args):
    from pipelines import load_movielens
    from pipelines.distribute import make_strategy
    from rbm_tf import train_recommender

    config = None
    if not args.resume:  # a resumed run keeps its stored settings; only --epochs may change
        config = _cli.config_of(RecommenderConfig, hidden=args.hidden, visible=args.visible,
                                batch_size=args.batch_size, seed=args.seed,
                                weight_stddev=args.weight_stddev,
                                patience_updates=args.patience_updates, min_updates=args.min_updates,
                                **_arguments.cd_settings(args))
    data = load_movielens(args.data_dir, **_arguments.split_settings(args))
    result = train_recommender(data, args.run_dir, config, resume=args.resume, epochs=args.epochs,
                               export=not args.no_export, log=print,
                               strategy=make_strategy(args.strategy))
    final = result["final"]
    if "export" in final and not args.no_export:
        print(f"exported to {final['export']}")
    baselines = final["baselines"]
    print(f"final (epoch {final['best_epoch']}): test accuracy {final['test_accuracy']:.4f} "
          f"(majority {baselines['majority']['test_accuracy']:.4f}), ROC-AUC {final['test_auc']:.4f} "
          f"(user+item biases {baselines['user_item_biases']['test_auc']:.4f}), NDCG@10 "
          f"{final['test_ndcg_at_10']:.4f} (biases {baselines['user_item_biases']['test_ndcg_at_10']:.4f}, "
          f"most popular {baselines['most_popular']['test_ndcg_at_10']:.4f}): {final['verdict']}")
    print(f"metrics in {pathlib.Path(args.run_dir) / 'metrics.json'}")
    return 0


def main(argv=None):
    return _cli.run(build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
