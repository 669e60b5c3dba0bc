"""The recommender's test numbers beside its baselines, with intervals: the README's table.

    python benchmarks/rbm_quality.py --raw-dir ../shared/data/ml-100k [--out FILE]

Trains the default model (chosen on validation ratings by benchmarks/rbm_defaults.py) on
each of ML-100K's five folds u1..u5 and reports every test metric as the mean over the folds
with a 95% t-interval, for the model and each baseline fitted on the same training ratings.
A single split (--single u1, or a holdout; of ML-100K or of another release named by
--release, such as a synthetic one from benchmarks/synthetic_movielens.py) gets a 95%
bootstrap interval over its users instead. Training stops early on validation ratings; the test ratings are read once, at the
end of each run.
"""

import argparse
import json
import math
import pathlib
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from pipelines import prepare_movielens  # noqa: E402
from pipelines.recommender_eval import Baselines  # noqa: E402
from pipelines.recommender_eval import CLASSIFICATION_METRICS  # noqa: E402
from pipelines.recommender_eval import RANKING_METRICS  # noqa: E402
from pipelines.recommender_eval import RatingMetrics  # noqa: E402
from rbm_tf import RecommenderConfig  # noqa: E402
from rbm_tf import train_recommender  # noqa: E402
from rbm_tf.recommender import Recommender  # noqa: E402

METRICS = CLASSIFICATION_METRICS + RANKING_METRICS
MODELS = ("rbm", "user_item_biases", "item_like_rate", "most_popular", "majority")
# two-sided 97.5% quantiles of Student's t for 1..9 degrees of freedom
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262)


def t_interval(values):
    """(mean, half width of the 95% t-interval) of a few values; width None for one value."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, T_975[len(values) - 2] * spread / math.sqrt(len(values))


def run_split(raw_dir, scratch, name, split_settings, config, release="ml-100k"):
    """Train on one split; the test metrics of the model and the baselines, and the run."""
    data = prepare_movielens(release, raw_dir, pathlib.Path(scratch) / "data", **split_settings)
    run_dir = pathlib.Path(scratch) / f"run-{name}"
    final = train_recommender(data, run_dir, config, export=False)["final"]
    scores = {"rbm": {metric: final.get(f"test_{metric}") for metric in METRICS}}
    for baseline, values in final["baselines"].items():
        scores[baseline] = {metric: values.get(f"test_{metric}") for metric in METRICS}
    return data, run_dir, final, scores


def bootstrap(data, run_dir, resamples=200, seed=0):
    """95% intervals over users (resampled with replacement) of every test metric, and of the
    RBM's lead over each baseline: (intervals, differences). Every model is scored on the same
    resamples, so a difference is paired: its interval says whether the lead is more than the
    luck of which users were drawn."""
    import tensorflow as tf

    model = Recommender.restore(run_dir)
    baselines = Baselines(data)
    def dense(scorer):
        # the bootstrap scores dense batches: a constant scorer's row for everyone
        if callable(scorer):
            return scorer
        return lambda users, inputs: tf.broadcast_to(scorer.probability, tf.shape(inputs))

    predictors = {"rbm": (lambda users, inputs: model.like_probability(inputs), model.ranking_score),
                  **{name: (dense(scorer), None) for name, scorer in baselines.predictors.items()}}
    batches = list(data.test.dataset(256))
    rng = np.random.default_rng(seed)
    users = np.concatenate([batch["user_id"].numpy() for batch in batches])
    draws = [rng.integers(0, len(users), len(users)) for _ in range(resamples)]
    samples = {}
    for name, (predict, rank) in predictors.items():
        rows = []
        for batch in batches:
            probability = predict(batch["user_id"], batch["inputs"])
            scores = probability if rank is None else rank(probability)
            rows.extend(zip(probability.numpy(), scores.numpy(), batch["inputs"].numpy(),
                            batch["targets"].numpy()))
        values = {metric: [] for metric in METRICS}
        for draw in draws:
            metrics = RatingMetrics()
            chosen = [rows[i] for i in draw]
            stack = [tf.constant(np.stack(column)) for column in zip(*chosen)]
            metrics.update(stack[0], stack[2], stack[3], stack[1])
            result = metrics.result()
            for metric in METRICS:
                if result.get(metric) is not None:
                    values[metric].append(result[metric])
        samples[name] = {metric: np.array(v) for metric, v in values.items() if len(v) == resamples}
    intervals = {name: {metric: percentiles(v) for metric, v in values.items()}
                 for name, values in samples.items()}
    differences = {name: {metric: percentiles(samples["rbm"][metric] - v)
                          for metric, v in values.items() if metric in samples["rbm"]}
                   for name, values in samples.items() if name != "rbm"}
    return intervals, differences


def percentiles(values):
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", required=True, type=pathlib.Path, help="the ml-100k directory")
    parser.add_argument("--single", help="one split only (u1..u5, holdout, holdout-time), with a "
                                         "bootstrap interval over its users")
    parser.add_argument("--release", default="ml-100k",
                        help="the release in --raw-dir (default: %(default)s; others take --single "
                             "holdout or holdout-time)")
    parser.add_argument("--out", type=pathlib.Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    config = RecommenderConfig()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        if args.single:
            settings = ({"split": "holdout", "order": "time"} if args.single == "holdout-time"
                        else {"split": args.single})
            data, run_dir, final, scores = run_split(args.raw_dir, scratch, args.single, settings,
                                                     config, args.release)
            intervals, differences = bootstrap(data, run_dir)
            print(f"\n{args.release} {args.single}: test metrics with 95% bootstrap intervals over "
                  f"users (best epoch {final['best_epoch']}: {final['verdict']})\n")
            print("| model | " + " | ".join(METRICS) + " |")
            print("|---|" + "---:|" * len(METRICS))
            for name in MODELS:
                cells = []
                for metric in METRICS:
                    value = scores[name].get(metric)
                    low, high = intervals.get(name, {}).get(metric, (None, None))
                    cells.append("-" if value is None else f"{value:.4f} [{low:.4f}, {high:.4f}]")
                print(f"| {name} | " + " | ".join(cells) + " |")
            print("\nThe RBM's lead over each baseline, with its 95% interval over the same resampled "
                  "users (an interval that holds 0 is a tie)\n")
            print("| rbm minus | " + " | ".join(METRICS) + " |")
            print("|---|" + "---:|" * len(METRICS))
            for name in MODELS[1:]:
                cells = []
                for metric in METRICS:
                    if metric not in differences.get(name, {}) or scores[name].get(metric) is None:
                        cells.append("-")
                        continue
                    low, high = differences[name][metric]
                    lead = scores["rbm"][metric] - scores[name][metric]
                    cells.append(f"{lead:+.4f} [{low:+.4f}, {high:+.4f}]")
                print(f"| {name} | " + " | ".join(cells) + " |")
            results = {"scores": scores, "intervals": intervals, "differences": differences,
                       "final": final}
        else:
            per_fold = {}
            for fold in ("u1", "u2", "u3", "u4", "u5"):
                _, _, final, scores = run_split(args.raw_dir, scratch, fold, {"split": fold}, config)
                per_fold[fold] = scores
                print(json.dumps({"fold": fold, "best_epoch": final["best_epoch"], **scores["rbm"],
                                  "verdict": final["verdict"]}), flush=True)
            print("\nML-100K u1..u5: test metrics, mean over the five folds with 95% t-intervals\n")
            print("| model | " + " | ".join(METRICS) + " |")
            print("|---|" + "---:|" * len(METRICS))
            for name in MODELS:
                cells = []
                for metric in METRICS:
                    mean, width = t_interval([per_fold[f][name].get(metric) for f in per_fold])
                    cells.append("-" if mean is None else f"{mean:.4f} ± {width:.4f}")
                print(f"| {name} | " + " | ".join(cells) + " |")
            results = per_fold
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
