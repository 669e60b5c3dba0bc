"""rec-train: train a movie recommender on prepared MovieLens records, evaluate it, export it.

  --model autorec    I-AutoRec: predicts star ratings (test RMSE and MAE beside the global
                     mean and a user + movie biases model)
  --model mult-vae   Mult-VAE: ranks movies (NDCG@10/100, recall@10/20/50 beside the most
                     popular movies and EASE)
  --model ease       EASE: ranks movies, its L2 chosen on validation NDCG@10
  --model rbm        the RBM recommender, as rbm-train trains it
  --model rating-rbm the rating RBM: a softmax unit of the release's star levels per movie
                     (or, --variant item, per user); predicts star ratings (test RMSE and
                     MAE beside the global mean and the biases model) and a like-probability

Training stops early on the validation ratings and keeps the best epoch; the run directory
gets checkpoints, TensorBoard summaries, RUN/metrics.json, RUN/metrics.png and the export
RUN/export/<model>/<version>/. Settings a model does not have are refused.
"""

import argparse
import dataclasses
import importlib
import pathlib
import sys

from scripts import _arguments
from scripts import _cli

# --model -> (its settings class, the library function that trains it:
#             function(data, run_dir, config, resume=, epochs=, export=, log=) -> metrics.json)
MODELS = {
    "autorec": ("autoencoders_tf.rec_config:AutoRecConfig", "autoencoders_tf.recommender_training:train_rec_model"),
    "mult-vae": ("autoencoders_tf.rec_config:MultVAEConfig", "autoencoders_tf.recommender_training:train_rec_model"),
    "ease": ("autoencoders_tf.rec_config:EASEConfig", "autoencoders_tf.recommender_training:train_rec_model"),
    "rbm": ("rbm_tf.config:RecommenderConfig", "rbm_tf.recommender_training:train_recommender"),
    "rating-rbm": ("rbm_tf.config:RatingRBMConfig", "rbm_tf.rating_recommender:train_rating_rbm"),
}
# flag -> (type, help): each sets the settings field of its name where the model has one
SETTINGS = {
    "hidden": (int, "hidden units"),
    "members": (int, "I-AutoRec: networks trained side by side, their predictions averaged"),
    "latent_dim": (int, "Mult-VAE: latent dimensions"),
    "l2": (float, "L2 strength (EASE: chosen on validation when not given)"),
    "dropout": (float, "dropout on the input"),
    "interactions": (str, "what a user's binary vector holds: rated or liked"),
    "anneal_cap": (float, "Mult-VAE: the KL weight's final value"),
    "anneal_steps": (int, "Mult-VAE: updates over which the KL weight rises"),
    "fold_in_l2": (float, "I-AutoRec: ridge penalty of a user never seen in training"),
    "learning_rate": (float, "learning rate"),
    "batch_size": (int, "movies (I-AutoRec) or users per update"),
    "patience": (int, "epochs without a better validation metric before stopping"),
    "seed": (int, "seed of initial weights and shuffling"),
    "variant": (str, "rating RBM: one case per user or per item"),
}


def load(path):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rec-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(MODELS), help="which recommender")
    _arguments.add_split_arguments(parser)
    parser.add_argument("--epochs", type=_arguments.positive_int,
                        help="the most epochs (default: the model's own)")
    for name, (kind, text) in SETTINGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=f"{text} (default: the model's own)")
    _arguments.add_run_arguments(parser)
    return parser


def config_from(args):
    """The model's settings from the flags given; a flag the model lacks is a UserError."""
    from pipelines.errors import UserError

    config_class = load(MODELS[args.model][0])
    fields = {field.name for field in dataclasses.fields(config_class)}
    given = {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise UserError(f"{', '.join('--' + n.replace('_', '-') for n in unknown)}: not a setting of "
                        f"{args.model} (its settings: {', '.join(sorted(fields & set(SETTINGS)))})")
    return _cli.config_of(config_class, **given)


def body(args):
    from pipelines import load_movielens

    config = config_from(args)
    data = load_movielens(args.data_dir, **_arguments.split_settings(args))
    result = load(MODELS[args.model][1])(data, args.run_dir, config, resume=args.resume,
                                         epochs=args.epochs, export=not args.no_export, log=print)
    final = result["final"]
    if "export" in final and not args.no_export:
        print(f"exported to {final['export']}")
    for metric in ("rmse", "mae", "ndcg_at_10", "recall_at_10", "ndcg_at_100", "recall_at_20",
                   "recall_at_50", "auc", "accuracy"):
        if final.get(f"test_{metric}") is None:
            continue
        beside = ", ".join(f"{name} {values[f'test_{metric}']:.4f}"
                           for name, values in final["baselines"].items()
                           if values.get(f"test_{metric}") is not None)
        print(f"test {metric} {final[f'test_{metric}']:.4f}" + (f" ({beside})" if beside else ""))
    print(f"{args.model}: {final['verdict']}")
    print(f"metrics in {pathlib.Path(args.run_dir) / 'metrics.json'}")
    return 0


def main(argv=None):
    return _cli.run(build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
