"""Seconds per epoch and test metrics of every autoencoder on MNIST and Fashion-MNIST.

    python benchmarks/autoencoders.py --mnist-dir ../shared/data/mnist \
        --fashion-dir ../shared/data/fashion-mnist [--epochs 10] [--only dense,vae] [--output results.json]

Trains each configuration with the library's `train_autoencoder`, as ae-train does (run directories in
--out-dir, a temporary directory by default) and prints a markdown table for the README:
the test MSE on [0, 1] beside the mean-image baseline (the denoiser: beside the noisy input's
MSE), and the VAE's test negative ELBO beside its importance-weighted bound (k = 100), in
nats per image on dynamically binarised pixels. Both the chapter's configurations and stronger
ones (a 32-d code) are run. The CPU may be shared: seconds per epoch are this machine's, at
that moment, not a property of the model.
"""

import argparse
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from autoencoders_tf import AutoencoderConfig  # noqa: E402
from autoencoders_tf import train_autoencoder  # noqa: E402
from pipelines import prepare_images  # noqa: E402
from pipelines.runs import write_json_atomic  # noqa: E402

STRONGER_DENSE = {"hidden_units": (512, 256), "code_size": 32}

CONFIGURATIONS = {
    "dense": ("chapter: 784-128-64-12-3, tanh on [-1, 1]", {"model": "dense"}),
    "dense-32": ("784-512-256-32, tanh on [-1, 1]", {"model": "dense", **STRONGER_DENSE}),
    "conv": ("chapter: conv stack, 32-d code", {"model": "conv"}),
    "denoising": ("chapter conv stack, Gaussian noise 0.5", {"model": "denoising", "architecture": "conv"}),
    "denoising-32": ("784-512-256-32, Gaussian noise 0.5",
                     {"model": "denoising", "architecture": "dense", **STRONGER_DENSE}),
    "vae": ("chapter: 784-400-20, binarised", {"model": "vae"}),
}


def summarise(name, dataset, result, config):
    """One row of the results table from a run's metrics."""
    final = result["final"]
    row = {"configuration": name, "description": CONFIGURATIONS[name][0], "dataset": dataset,
           "epochs": final["epoch"], "seconds_per_epoch": final["mean_seconds_per_epoch"]}
    if config.model == "vae":
        k = config.iw_samples
        row.update(metric="test -ELBO (nats)", value=final["test_neg_elbo"],
                   baseline_name=f"IW bound k={k}", baseline=final[f"test_iw_nll_bound_k{k}"],
                   kl=final["test_kl_loss"], test_mse=final["test_mse"])
    else:
        baselines = final["baselines"]
        row.update(metric="test MSE [0,1]", value=final["test_mse"])
        if "noisy_input" in baselines:  # the denoiser: its own baseline first
            row.update(baseline_name="noisy input", baseline=baselines["noisy_input"]["test_mse"],
                       mean_image=baselines["mean_image"]["test_mse"])
        else:
            row.update(baseline_name="mean image", baseline=baselines["mean_image"]["test_mse"])
    return row


def markdown(rows):
    lines = ["| model | configuration | data | epochs | s/epoch | test metric | value | beside it |",
             "|---|---|---|---:|---:|---|---:|---|"]
    for row in rows:
        precision = 2 if row["metric"].startswith("test -ELBO") else 4
        beside = f"{row['baseline_name']} {row['baseline']:.{precision}f}"
        if "mean_image" in row:
            beside += f"; mean image {row['mean_image']:.4f}"
        lines.append(
            f"| {row['configuration']} | {row['description']} | {row['dataset']} | {row['epochs']} | "
            f"{row['seconds_per_epoch']:.1f} | {row['metric']} | {row['value']:.{precision}f} | {beside} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=pathlib.Path, help="MNIST's IDX directory")
    parser.add_argument("--fashion-dir", type=pathlib.Path, help="Fashion-MNIST's IDX directory")
    parser.add_argument("--data-dir", type=pathlib.Path, help="prepared records (default: temporary)")
    parser.add_argument("--out-dir", type=pathlib.Path, help="run directories (default: temporary)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--only", default=",".join(CONFIGURATIONS),
                        help="comma-separated configurations (default: all: %(default)s)")
    parser.add_argument("--output", type=pathlib.Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    names = args.only.split(",")
    unknown = sorted(set(names) - set(CONFIGURATIONS))
    if unknown:
        parser.error(f"unknown configurations {unknown}; choose from {', '.join(CONFIGURATIONS)}")
    data_sets = [(dataset, raw_dir) for dataset, raw_dir in
                 (("mnist", args.mnist_dir), ("fashion_mnist", args.fashion_dir)) if raw_dir]
    if not data_sets:
        parser.error("give --mnist-dir, --fashion-dir or both")

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or pathlib.Path(scratch) / "data"
        out_dir = args.out_dir or pathlib.Path(scratch) / "runs"
        for dataset, raw_dir in data_sets:
            data = prepare_images(dataset, data_dir, raw_dir)
            for name in names:
                config = AutoencoderConfig(epochs=args.epochs, **CONFIGURATIONS[name][1])
                run_dir = out_dir / f"{name}-{dataset}"
                print(f"== {name} on {dataset}: {CONFIGURATIONS[name][0]} -> {run_dir}", flush=True)
                result = train_autoencoder(config, data, run_dir, export=False,
                                           log=lambda line: print(line, flush=True))
                rows.append(summarise(name, dataset, result, config))
                if args.output:
                    write_json_atomic(args.output, rows)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
