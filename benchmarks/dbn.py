"""The DBN on MNIST and Fashion-MNIST: speed per layer against this machine's matmul rate, and test errors.

    python benchmarks/dbn.py --mnist-dir ../shared/data/mnist \\
        --fashion-dir ../shared/data/fashion-mnist --run-root /tmp/dbn-bench \\
        [--pretrain-epochs 10 --finetune-epochs 30 --datasets mnist,fashion_mnist]

For each data set this runs `rbm_tf.train_dbn` (what dbn-train runs) with the default settings and the
given epochs into RUN_ROOT/<dataset> (kept, with plots and exports). A run directory that already
holds a run (say from `dbn-train --run-dir RUN_ROOT/mnist`) is resumed with its own settings
instead, which for a finished run only reads its numbers. Then it reports, per RBM, seconds per
pre-training epoch and the achieved GFLOP/s of its matmuls (the up pass through the layers
below, CD-k, the reconstruction monitor), and the same for an epoch
of fine-tuning; both as a fraction of a 2048x2048 float32 matmul measured in the same run. Then
the test error of the fine-tuned DBN and of both random-init baselines, as a Markdown table.
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.rbm_speed import cd_step_flops  # noqa: E402
from benchmarks.rbm_speed import matmul_gflops  # noqa: E402
from pipelines.image_data import prepare_images  # noqa: E402
from pipelines.runs import RunDirectory  # noqa: E402
from rbm_tf.dbn_config import CLASSIFIERS  # noqa: E402
from rbm_tf.dbn_config import DBNConfig  # noqa: E402
from rbm_tf.dbn_training import load_dbn_config  # noqa: E402
from rbm_tf.dbn_training import train_dbn  # noqa: E402

RAW_DIR_FLAGS = {"mnist": "--mnist-dir", "fashion_mnist": "--fashion-dir"}


def pretraining_flops_per_example(layer_sizes, layer, k):
    """Matmul FLOPs of one example's share of a pre-training epoch of RBM `layer` (0-based)."""
    up_pass = sum(2.0 * layer_sizes[i] * layer_sizes[i + 1] for i in range(layer))
    return up_pass + cd_step_flops(1, layer_sizes[layer], layer_sizes[layer + 1], k)


def fine_tuning_flops_per_example(layer_sizes, num_classes=10):
    """Forward (2 per weight) and backward (4 per weight) matmul FLOPs of one example."""
    widths = list(layer_sizes) + [num_classes]
    return 6.0 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def summarise(dataset, result, config, num_train):
    epochs = result["epochs"]
    rows = {"dataset": dataset, "layers": []}
    for layer in range(len(config.hidden)):
        seconds = [r["seconds"] for r in epochs if r["phase"] == f"pretrain_layer_{layer + 1}"]
        if not seconds:
            continue
        mean_seconds = sum(seconds) / len(seconds)
        gflops = pretraining_flops_per_example(config.layer_sizes, layer, config.k) * num_train / mean_seconds / 1e9
        rows["layers"].append({
            "layer": f"{config.layer_sizes[layer]}-{config.layer_sizes[layer + 1]}",
            "seconds_per_epoch": round(mean_seconds, 2), "gflops": round(gflops, 2)})
    final = result["final"]
    for name in CLASSIFIERS:
        seconds = [r["seconds"] for r in epochs if r["phase"] == f"classifier_{name}"]
        mean_seconds = sum(seconds) / len(seconds)
        gflops = fine_tuning_flops_per_example(config.layer_sizes) * num_train / mean_seconds / 1e9
        test_error = final["test_error"] if name == "dbn" else final["baselines"][name]["test_error"]
        rows[name] = {"test_error": test_error,
                      "seconds_per_epoch": round(mean_seconds, 2), "gflops": round(gflops, 2)}
    rows["total_minutes"] = round(result["final"]["total_seconds"] / 60, 1)
    return rows


def markdown(summaries, config, machine_gflops):
    lines = [f"Pre-training {config.pretrain_epochs} epochs per RBM (CD-{config.k}), fine-tuning "
             f"{config.finetune_epochs} epochs; machine matmul rate {machine_gflops:.1f} GFLOP/s.", "",
             "| data set | DBN (pre-trained, sigmoid, SGD) | same net, random init | "
             "ReLU + dropout + Adam | pre-training s/epoch per layer (GFLOP/s) | fine-tuning s/epoch | "
             "minutes |",
             "|---|---|---|---|---|---|---|"]
    for row in summaries:
        layers = ", ".join(f"{entry['layer']}: {entry['seconds_per_epoch']} ({entry['gflops']})"
                           for entry in row["layers"])
        lines.append(
            f"| {row['dataset']} | {row['dbn']['test_error']:.2%} | {row['same_init']['test_error']:.2%} | "
            f"{row['modern']['test_error']:.2%} | {layers} | {row['dbn']['seconds_per_epoch']} "
            f"({row['dbn']['gflops']} GFLOP/s) | {row['total_minutes']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=pathlib.Path, help="MNIST's IDX files")
    parser.add_argument("--fashion-dir", type=pathlib.Path, help="Fashion-MNIST's IDX files")
    parser.add_argument("--run-root", required=True, type=pathlib.Path,
                        help="run directories go to RUN_ROOT/<dataset>, records to RUN_ROOT/data")
    parser.add_argument("--datasets", default="mnist,fashion_mnist")
    parser.add_argument("--pretrain-epochs", type=int, default=DBNConfig.pretrain_epochs)
    parser.add_argument("--finetune-epochs", type=int, default=DBNConfig.finetune_epochs)
    args = parser.parse_args(argv)
    raw_dirs = {"mnist": args.mnist_dir, "fashion_mnist": args.fashion_dir}
    names = args.datasets.split(",")
    for dataset in names:
        if dataset not in RAW_DIR_FLAGS:
            parser.error(f"unknown data set {dataset!r}; choose from {', '.join(RAW_DIR_FLAGS)}")
        if raw_dirs[dataset] is None:
            parser.error(f"{RAW_DIR_FLAGS[dataset]} is needed for {dataset}")

    summaries, config = [], None
    machine_gflops = matmul_gflops(2048, 2048, 2048)
    for dataset in names:
        run_dir = RunDirectory(args.run_root / dataset)
        resume = run_dir.has_checkpoint()
        if resume:
            config = load_dbn_config(run_dir.path)
        else:
            config = DBNConfig(dataset=dataset, pretrain_epochs=args.pretrain_epochs,
                               finetune_epochs=args.finetune_epochs)
        data = prepare_images(dataset, args.run_root / "data", raw_dirs[dataset])
        result = train_dbn(config, data, run_dir.path, resume=resume, export=not resume, log=print)
        summaries.append(summarise(dataset, result, config, data.num_examples("train")))
    # measured again at the end: the CPU is shared, so the better of the two is the ceiling
    machine_gflops = max(machine_gflops, matmul_gflops(2048, 2048, 2048))
    for row in summaries:
        for entry in row["layers"] + [row[name] for name in CLASSIFIERS]:
            entry["fraction_of_matmul"] = round(entry["gflops"] / machine_gflops, 3)
    print(json.dumps({"machine_matmul_gflops_2048": round(machine_gflops, 2), "runs": summaries}, indent=2))
    print(markdown(summaries, config, machine_gflops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
