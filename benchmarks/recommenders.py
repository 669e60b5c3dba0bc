"""The autoencoder recommenders beside their baselines on ML-100K, both protocols: a Markdown table.

    python benchmarks/recommenders.py --raw-dir ../shared/data/ml-100k [--folds u1 u2 u3 u4 u5]
        [--json OUT.json] [--markdown OUT.md]
    python benchmarks/recommenders.py --from-json u1.json u2.json ... [--markdown OUT.md]

For every fold: I-AutoRec and the rating RBM against the global mean and the user + movie
biases model (test RMSE and MAE, and the ROC-AUC of the predicted stars for like against
dislike), and Mult-VAE, EASE and the like/dislike RBM against the most popular movies
(NDCG@10/100, recall@10/20/50 over every movie the user did not rate, the held-out likes
relevant), each with the defaults `rec-train` uses, chosen on validation ratings only, under
two protocols:

* weak generalisation: the fold's own test ratings of users seen in training;
* strong generalisation: 10% of the fold's training users held out for validation and 10% for
  test (`pipelines.rating_parts.hold_out_users`, seed 0), each scored from 80% of their
  training ratings and measured on the other 20%; the fold's test ratings are not used. The
  rating RBM (item-based: a unit per training user) has no unit for a user it never saw and
  is not measured here.

Every number is the mean over the folds with a 95% t-interval (none for one fold). Each fold
takes a few minutes on 2 CPU cores; run folds in separate invocations with --json and combine
them with --from-json.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from autoencoders_tf import AutoRecConfig  # noqa: E402
from autoencoders_tf import MultVAEConfig  # noqa: E402
from autoencoders_tf import choose_ease  # noqa: E402
from autoencoders_tf import fit_rec_model  # noqa: E402
from benchmarks.rbm_quality import t_interval  # noqa: E402
from pipelines import loop  # noqa: E402
from pipelines import prepare_movielens  # noqa: E402
from pipelines.ranking_eval import RANKING_METRICS  # noqa: E402
from pipelines.ranking_eval import MostPopular  # noqa: E402
from pipelines.ranking_eval import evaluate_ranking  # noqa: E402
from rbm_tf import RatingRBMConfig  # noqa: E402
from rbm_tf import RatingRecommender  # noqa: E402
from rbm_tf.rating_recommender import release_levels  # noqa: E402
from rbm_tf.rating_recommender import variant_parts  # noqa: E402
from pipelines.rating_eval import LIKE_METRICS  # noqa: E402
from pipelines.rating_eval import RATING_METRICS  # noqa: E402
from pipelines.rating_eval import RatingBaselines  # noqa: E402
from pipelines.rating_eval import evaluate_ratings  # noqa: E402
from pipelines.rating_parts import hold_out_users  # noqa: E402
from pipelines.movielens_data import UserPart  # noqa: E402
from pipelines.rating_parts import RatingPart  # noqa: E402
from pipelines.rating_parts import like_labels  # noqa: E402
from rbm_tf import Recommender  # noqa: E402
from rbm_tf import RecommenderConfig  # noqa: E402

PROTOCOLS = ("weak", "strong")
RATING_MODELS = ("I-AutoRec", "rating RBM", "user + item biases", "global mean")
RANKING_MODELS = ("EASE", "Mult-VAE", "RBM (binary)", "most popular")


def protocol_parts(data, protocol):
    if protocol == "weak":
        return data.train, data.validation, data.test
    holdout = hold_out_users(data, fraction=0.1, seed=0)
    return holdout.train, holdout.validation, holdout.test


def run_fold(data, protocol, log):
    """{model: {metric: test value}} of every model and baseline on one fold and protocol."""
    train, validation, test = protocol_parts(data, protocol)
    scores = {}
    started = time.perf_counter()
    autorec, notes = fit_rec_model(AutoRecConfig(), train, validation)
    scores["I-AutoRec"] = {**evaluate_ratings(autorec.score, test), "best_epoch": notes["best_epoch"]}
    if protocol == "weak":
        scores["rating RBM"] = rating_rbm_scores(data)
    baselines = RatingBaselines(train, validation)
    scores["user + item biases"] = evaluate_ratings(baselines.predictors["user_item_biases"], test)
    scores["global mean"] = evaluate_ratings(baselines.predictors["global_mean"], test)
    log(f"  {protocol}: I-AutoRec RMSE {scores['I-AutoRec']['rmse']:.4f} (biases "
        f"{scores['user + item biases']['rmse']:.4f}), {time.perf_counter() - started:.0f}s")
    started = time.perf_counter()
    ease, _ = choose_ease(train, validation)
    scores["EASE"] = {**evaluate_ranking(ease.score, test), "l2": ease.l2,
                      "interactions": ease.interactions}
    vae, notes = fit_rec_model(MultVAEConfig(), train, validation)
    scores["Mult-VAE"] = {**evaluate_ranking(vae.score, test), "best_epoch": notes["best_epoch"]}
    scores["RBM (binary)"] = binary_rbm_scores(train, validation, test, data.like_threshold)
    scores["most popular"] = evaluate_ranking(MostPopular(train), test)
    log(f"  {protocol}: NDCG@10 EASE {scores['EASE']['ndcg_at_10']:.4f}, Mult-VAE "
        f"{scores['Mult-VAE']['ndcg_at_10']:.4f}, most popular "
        f"{scores['most popular']['ndcg_at_10']:.4f}, {time.perf_counter() - started:.0f}s")
    return scores


def binary_rbm_scores(train, validation, test, like_threshold):
    """The like/dislike RBM's defaults (`rbm-train`'s, early stopping as there) on the
    protocol's parts, ranked by its `ranking_score` under this benchmark's ranking metrics."""
    if isinstance(train, RatingPart):  # held-out users: the same parts as ragged cases
        like_rate = float(np.mean(train.inputs.ratings >= like_threshold))
        train, validation = UserPart(train, like_rate), UserPart(validation, like_rate)
    config = RecommenderConfig()
    model = Recommender(train.num_movies, config)
    stopping = loop.update_stopping(config, train.num_users, "val_auc", "max")
    model.fit(train, validation_data=validation, callbacks=[stopping])

    def score(user_ids, stars):
        labels = tf.constant(like_labels(stars, like_threshold))
        return model.ranking_score(model.like_probability(labels)).numpy()

    return {**evaluate_ranking(score, test), "best_epoch": loop.kept_epoch(stopping, model.epoch.numpy())}


def rating_rbm_scores(data):
    """The rating RBM's defaults on the fold's own parts: test RMSE, MAE and like AUC."""
    config = RatingRBMConfig()
    train, validation, test, num_visible = variant_parts(data, config.variant)
    model = RatingRecommender(num_visible, release_levels(data), config, like_threshold=data.like_threshold)
    stopping = loop.update_stopping(config, train.num_users, "val_rmse", "min")
    model.fit(train, validation_data=validation, callbacks=[stopping])
    return {**model.evaluate(test), "best_epoch": loop.kept_epoch(stopping, model.epoch.numpy())}


def cell(values, bold=False):
    mean, half = t_interval(values)
    if mean is None:
        return "-"
    text = f"{mean:.4f}" + (f" ± {half:.4f}" if half is not None else "")
    return f"**{text}**" if bold else text


def markdown(results):
    """The tables of `results` ({fold: {protocol: {model: {metric: value}}}})."""
    folds = sorted(results)
    lines = [f"Folds: {', '.join(folds)} (mean" + (" ± 95% t-interval" if len(folds) > 1 else "")
             + "); the best of each column in bold.", ""]
    for protocol in PROTOCOLS:
        for models, metrics in ((RATING_MODELS, RATING_METRICS + LIKE_METRICS),
                                (RANKING_MODELS, RANKING_METRICS)):
            values = {model: {metric: [results[f][protocol].get(model, {}).get(metric) for f in folds]
                              for metric in metrics} for model in models}
            winners = {}
            for metric in metrics:
                measured = [m for m in models if None not in values[m][metric]]
                sign = 1 if metric in RATING_METRICS else -1  # RMSE and MAE: lower is better
                winners[metric] = min(measured, key=lambda m: sign * sum(values[m][metric]))
            lines.append(f"{protocol} generalisation | " + " | ".join(metrics))
            lines[-1] = "| " + lines[-1] + " |"
            lines.append("|---|" + "---:|" * len(metrics))
            for model in models:
                lines.append(f"| {model} | " + " | ".join(
                    cell(values[model][metric], winners[metric] == model) for metric in metrics) + " |")
            lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", type=pathlib.Path, help="the ml-100k directory")
    parser.add_argument("--folds", nargs="+", default=["u1", "u2", "u3", "u4", "u5"])
    parser.add_argument("--json", type=pathlib.Path, help="also write the numbers as JSON here")
    parser.add_argument("--from-json", type=pathlib.Path, nargs="+",
                        help="combine the JSON of earlier runs instead of training")
    parser.add_argument("--markdown", type=pathlib.Path, help="also write the table here")
    args = parser.parse_args(argv)
    results = {}
    if args.from_json:
        for path in args.from_json:
            results.update(json.loads(path.read_text()))
    else:
        if args.raw_dir is None:
            parser.error("--raw-dir is needed unless --from-json is given")
        with tempfile.TemporaryDirectory() as scratch:
            for fold in args.folds:
                print(f"{fold}:", flush=True)
                data = prepare_movielens("ml-100k", args.raw_dir, pathlib.Path(scratch) / "data", split=fold)
                results[fold] = {protocol: run_fold(data, protocol, lambda line: print(line, flush=True))
                                 for protocol in PROTOCOLS}
                if args.json:
                    args.json.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
