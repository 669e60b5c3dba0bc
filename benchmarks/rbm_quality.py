"""Quality of the RBM recommender on ML-100K u1 across settings: how the defaults were chosen.

    python benchmarks/rbm_quality.py --raw-dir ../shared/data/ml-100k [--epochs 40] [--out FILE]

Prepares the u1 records once, trains each setting below from the same seed and prints a
Markdown table of the final test accuracy, ROC-AUC and the majority baseline ("always like"),
plus the best test AUC over the epochs. Every run uses `rbm_tf.train_recommender`, the code
path of `rbm-train`.
"""

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from pipelines import prepare_movielens  # noqa: E402
from rbm_tf import RecommenderConfig  # noqa: E402
from rbm_tf import train_recommender  # noqa: E402

DEFAULTS = RecommenderConfig()
SETTINGS = {
    "default (pair, 50 hidden, CD-1, lr 0.1)": {},
    "single visible unit per movie": {"visible": "single"},
    "pair, 100 hidden": {"hidden": 100},
    "pair, 20 hidden": {"hidden": 20},
    "pair, lr 0.05": {"learning_rate": 0.05},
    "pair, lr 0.2": {"learning_rate": 0.2},
    "pair, CD-3": {"k": 3},
    "pair, persistent CD": {"persistent": True},
    "pair, no weight decay": {"weight_decay": 0.0},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", required=True, type=pathlib.Path, help="the ml-100k directory")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    parser.add_argument("--only", nargs="*", help="run only the settings whose label contains one of these")
    parser.add_argument("--out", type=pathlib.Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        data = prepare_movielens("ml-100k", args.raw_dir, pathlib.Path(scratch) / "data", split="u1")
        for number, (label, change) in enumerate(SETTINGS.items()):
            if args.only and not any(word in label for word in args.only):
                continue
            config = dataclasses.replace(DEFAULTS, epochs=args.epochs, **change)
            outcome = train_recommender(data, pathlib.Path(scratch) / f"run{number}", config,
                                        export=False)
            final = outcome["final"]
            row = {"setting": label, "test_accuracy": final["test_accuracy"],
                   "test_auc": final["test_auc"],
                   "majority_baseline": final["baselines"]["majority"]["test_accuracy"],
                   "best_test_auc": max(e["test_auc"] for e in outcome["epochs"]),
                   "seconds_per_epoch": final["mean_seconds_per_epoch"]}
            results.append(row)
            print(json.dumps(row), flush=True)

    print(f"\nML-100K u1, {args.epochs} epochs, seed {DEFAULTS.seed}\n")
    print("| setting | test accuracy | majority baseline | test ROC-AUC | best ROC-AUC | s/epoch (train) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in results:
        print(f"| {row['setting']} | {row['test_accuracy']:.4f} | {row['majority_baseline']:.4f} | "
              f"{row['test_auc']:.4f} | {row['best_test_auc']:.4f} | {row['seconds_per_epoch']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
