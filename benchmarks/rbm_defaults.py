"""How the recommender's defaults are chosen: on validation ratings, over several data sets.

    python benchmarks/rbm_defaults.py --raw-dir ../shared/data/ml-100k [--out FILE]

Data sets: ML-100K's five folds u1..u5 and three per-user holdouts (10 ratings per user: at
random with seeds 0 and 1, and each user's latest), each with its validation ratings carved
from the training ratings (5 per user). Settings: the current defaults and one change at a
time around them (a coordinate search). Every setting trains on every data set with early
stopping on validation ROC-AUC; it is scored by its mean validation ROC-AUC and NDCG@10 over
the data sets, beside the user + item biases baseline fitted on the same training ratings.
A change replaces a default only when it raises the mean validation ROC-AUC by more than
`MARGIN` (differences below that are within the run-to-run spread of one data set). The test
ratings are never read: the choice cannot have seen them.
"""

import argparse
import concurrent.futures
import dataclasses
import json
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from rbm_tf.config import RecommenderConfig  # noqa: E402

DATA_SETS = {
    **{fold: {"split": fold} for fold in ("u1", "u2", "u3", "u4", "u5")},
    "holdout-seed0": {"split": "holdout", "split_seed": 0},
    "holdout-seed1": {"split": "holdout", "split_seed": 1},
    "holdout-time": {"split": "holdout", "order": "time"},
}
MARGIN = 0.002
SETTINGS = {
    "defaults": {},
    "learning rate 0.2": {"learning_rate": 0.2},
    "learning rate 0.05": {"learning_rate": 0.05},
    "100 hidden": {"hidden": 100},
    "20 hidden": {"hidden": 20},
    "weight decay 0.003": {"weight_decay": 0.003},
    "weight decay 0.03": {"weight_decay": 0.03},
    "batch 16": {"batch_size": 16},
    "CD-3": {"k": 3},
    "initial weights 0.03": {"weight_stddev": 0.03},
    "initial weights 0.01": {"weight_stddev": 0.01},
}


def train_one(job):
    """Train one setting on one data set; the best epoch's validation numbers."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from pipelines import load_movielens
    from rbm_tf import train_recommender

    data = load_movielens(job["data_dir"], "ml-100k", **DATA_SETS[job["data_set"]])
    config = RecommenderConfig(**{**job["base"], **SETTINGS[job["setting"]]})
    result = train_recommender(data, job["run_dir"], config, export=False)
    best = result["epochs"][result["final"]["best_epoch"] - 1]
    biases = best["baselines"]["user_item_biases"]
    return {"setting": job["setting"], "data_set": job["data_set"],
            "best_epoch": result["final"]["best_epoch"],
            "validation_auc": best["validation_auc"],
            "validation_ndcg_at_10": best["validation_ndcg_at_10"],
            "biases_validation_auc": biases["validation_auc"],
            "biases_validation_ndcg_at_10": biases["validation_ndcg_at_10"],
            "most_popular_validation_ndcg_at_10":
                best["baselines"]["most_popular"]["validation_ndcg_at_10"]}


def mean(values):
    return sum(values) / len(values)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", required=True, type=pathlib.Path, help="the ml-100k directory")
    parser.add_argument("--only", nargs="*", help="run only these settings (labels)")
    parser.add_argument("--data-sets", nargs="*", default=list(DATA_SETS), choices=list(DATA_SETS))
    parser.add_argument("--epochs", type=int, default=100, help="the most epochs of every run")
    parser.add_argument("--workers", type=int, default=2, help="runs at once (default: %(default)s)")
    parser.add_argument("--out", type=pathlib.Path, help="also write every run's numbers as JSON")
    parser.add_argument("--from-json", type=pathlib.Path,
                        help="only print the table of the runs an earlier --out wrote")
    args = parser.parse_args(argv)

    base = {**dataclasses.asdict(RecommenderConfig()), "epochs": args.epochs}
    settings = [name for name in SETTINGS if not args.only or name in args.only]
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
        settings = [name for name in settings if any(row["setting"] == name for row in rows)]
        args.data_sets = sorted({row["data_set"] for row in rows}, key=list(DATA_SETS).index)
        return report(rows, settings, args)
    rows = []
    from pipelines import prepare_movielens

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = pathlib.Path(scratch) / "data"
        for data_set in args.data_sets:
            prepare_movielens("ml-100k", args.raw_dir, data_dir, **DATA_SETS[data_set])
        jobs = [{"data_dir": str(data_dir), "data_set": data_set, "setting": setting, "base": base,
                 "run_dir": str(pathlib.Path(scratch) / f"run-{number}-{data_set}")}
                for number, setting in enumerate(settings) for data_set in args.data_sets]
        with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
            for row in pool.map(train_one, jobs):
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return report(rows, settings, args)


def report(rows, settings, args):
    """The Markdown table of every setting's mean validation numbers, and the choice."""
    print(f"\nML-100K, {len(args.data_sets)} data sets, validation ratings only, at most "
          f"{args.epochs} epochs with early stopping\n")
    print("| setting | validation ROC-AUC | biases ROC-AUC | validation NDCG@10 | biases NDCG@10 "
          "| most popular NDCG@10 | data sets beating biases on both |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for setting in settings:
        mine = [row for row in rows if row["setting"] == setting]
        wins = sum(row["validation_auc"] > row["biases_validation_auc"]
                   and row["validation_ndcg_at_10"] > row["biases_validation_ndcg_at_10"] for row in mine)
        print(f"| {setting} | {mean([r['validation_auc'] for r in mine]):.4f} | "
              f"{mean([r['biases_validation_auc'] for r in mine]):.4f} | "
              f"{mean([r['validation_ndcg_at_10'] for r in mine]):.4f} | "
              f"{mean([r['biases_validation_ndcg_at_10'] for r in mine]):.4f} | "
              f"{mean([r['most_popular_validation_ndcg_at_10'] for r in mine]):.4f} | "
              f"{wins}/{len(mine)} |")
    auc = {setting: mean([r["validation_auc"] for r in rows if r["setting"] == setting])
           for setting in settings}
    best = max(auc, key=auc.get)
    chosen = best if auc[best] > auc.get("defaults", -1.0) + MARGIN else "defaults"
    print(f"\nhighest mean validation ROC-AUC: {best} ({auc[best]:.4f}); the defaults "
          f"({auc.get('defaults', float('nan')):.4f}) "
          + ("stay: no change gains more than " if chosen == "defaults" else "change: ")
          + f"{MARGIN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
