"""How the RBM recommender's cost grows with the ratings, and how it compares with its peer.

    python benchmarks/rbm_scale.py sizes --sizes 1e5 1e6 1e7 2.5e7 [--work-dir /tmp/rbm-scale]
    python benchmarks/rbm_scale.py models --sizes 1e5 1e6 [--movies 5000]
    python benchmarks/rbm_scale.py peer --raw-dir ../shared/data/ml-100k --torch-python /tmp/torchvenv/bin/python

`sizes`: for each number of ratings, a synthetic release in the newer MovieLens format
(`ratings.csv` / `movies.csv`: heavy-tailed users, Zipf-like movies; see
synthetic_movielens.py) on ML-25M's catalogue (59,047 movies; users grow with the ratings,
154 a user as in ML-25M: 162,541 users at 2.5 x 10^7). Each step runs in a process of its own
so that its peak memory is its own: `rbm-prepare` (seconds, peak memory, records on disk),
then the default recommender: seconds per training epoch, the per-epoch evaluation (training
and validation ratings) and a full test evaluation (accuracy, AUC and the top 10 over the
whole catalogue), and at the largest size the latency of `recommend` for one user from the
exported SavedModel. Growth exponents log(t2/t1) / log(n2/n1) between sizes close the table.

`models`: every recommender of `rec-train` (the binary RBM, the rating RBM, I-AutoRec,
Mult-VAE, EASE) at growing sizes on a fixed catalogue (--movies, default 5,000, so that the
dense models fit: EASE inverts a movies x movies matrix, I-AutoRec's input is one vector of
all users per movie, Mult-VAE's one of all movies per user): seconds of a training epoch (the
second; EASE's one closed-form fit), peak memory, and the growth exponents between sizes.

`peer`: the seed tutorial's PyTorch RBM (its own configuration: 200 hidden units, CD-10,
batch 100, one 0/1 unit per movie; run in its own environment with --torch-python) and this
package at the same configuration, side by side on ML-100K u1, with the package's dense CD
path on the same data as a third row: seconds per epoch and test accuracy.

The synthetic files are written under --work-dir and never committed; --keep leaves them.
"""

import argparse
import json
import math
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

NUM_MOVIES = 59_047
RATINGS_PER_USER = 25_000_095 / 162_541
MEASURE_EPOCHS = 2  # the first traces the graphs; the second is the one reported


def child_peak_mb(command, env=None):
    """Run `command` in a child and return (seconds, its own peak RSS in MB, stdout)."""
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=devnull, text=True,
                                   cwd=ROOT, env=env)
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(map(str, command))} failed (exit {os.waitstatus_to_exitcode(status)})")
    return seconds, usage.ru_maxrss / 1024.0, stdout


def directory_mb(path):
    return sum(f.stat().st_size for f in pathlib.Path(path).rglob("*") if f.is_file()) / 2**20


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


# -- the child steps ---------------------------------------------------------------------------

def train_step(args):
    """One child: train the default recommender MEASURE_EPOCHS epochs, time the last; evaluate."""
    import keras

    from pipelines import load_movielens
    from rbm_tf import Recommender

    data = load_movielens(args.data_dir, "ml-25m", split="holdout")
    model = Recommender(data.num_movies, movie_ids=data.movie_ids, movie_titles=data.movie_titles)
    times = {"train": [], "epoch_evaluation": []}

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.evaluating = time.perf_counter()
            times["train"].append(self.evaluating - self.started)

        def on_epoch_end(self, epoch, logs=None):
            times["epoch_evaluation"].append(time.perf_counter() - self.evaluating)

    model.fit(data.train, validation_data=data.validation, epochs=MEASURE_EPOCHS, callbacks=[Timer()])
    started = time.perf_counter()
    metrics = model.evaluate(data.test)
    result = {"train_seconds_per_epoch": times["train"][-1],
              "first_epoch_seconds": times["train"][0],
              "epoch_evaluation_seconds": times["epoch_evaluation"][-1],
              "test_evaluation_seconds": time.perf_counter() - started,
              "num_train_users": data.train.num_users, "num_movies": data.num_movies,
              "num_train_ratings": data.train.num_ratings, "test_auc": metrics["auc"],
              "test_ndcg_at_10": metrics.get("ndcg_at_10")}
    if args.export:
        import numpy as np
        import tensorflow as tf

        path = model.export(pathlib.Path(args.export))
        recommend = tf.saved_model.load(str(path)).signatures["recommend"]
        example = next(iter(data.test.ragged_dataset(1)))
        ratings = np.full([1, data.num_movies], -1.0, np.float32)
        ratings[0, example["input_movies"].values.numpy()] = example["input_labels"].values.numpy()
        inputs = {"ratings": tf.constant(ratings), "k": tf.constant(10)}
        signature_inputs = recommend.structured_input_signature[1]
        inputs = {key: value for key, value in inputs.items() if key in signature_inputs}
        recommend(**inputs)  # the first call loads the graph
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            recommend(**inputs)["movie_ids"].numpy()
            latencies.append(time.perf_counter() - started)
        result["recommend_latency_ms"] = 1000 * statistics.median(latencies)
    print(json.dumps(result))


# -- sizes -------------------------------------------------------------------------------------

def synthetic_release(work, num_ratings, num_movies):
    """(work, raw, data_dir, users): a synthetic ML-25M-format release of `num_ratings` ratings
    on `num_movies` movies in work/ml-25m (written once), its users as many as ML-25M's
    ratings a user give, and where its records go."""
    import synthetic_movielens

    num_users = max(200, round(num_ratings / RATINGS_PER_USER))
    raw, data_dir = work / "ml-25m", work / "data"
    if not (raw / "ratings.csv").exists():
        started = time.perf_counter()
        synthetic_movielens.generate(raw, "csv", num_users, num_movies, num_ratings, seed=0)
        print(f"[{num_ratings}] generated in {time.perf_counter() - started:.0f}s", flush=True)
    return work, raw, data_dir, num_users


def sizes(args):
    rows = []
    python = sys.executable
    for size in args.sizes:
        num_ratings = int(float(size))
        work, raw, data_dir, num_users = synthetic_release(
            args.work_dir / f"ratings-{num_ratings}", num_ratings, NUM_MOVIES)
        shutil.rmtree(data_dir, ignore_errors=True)
        prepare_seconds, prepare_mb, _ = child_peak_mb(
            [python, "-m", "scripts.rbm_prepare", "--release", "ml-25m", "--raw-dir", str(raw),
             "--data-dir", str(data_dir)])
        print(f"[{num_ratings}] prepared in {prepare_seconds:.1f}s, peak {prepare_mb:.0f} MB", flush=True)
        command = [python, __file__, "train-child", "--data-dir", str(data_dir)]
        if size == args.sizes[-1]:
            command += ["--export", str(work / "export")]
        train_seconds, train_mb, stdout = child_peak_mb(command)
        row = {"ratings": num_ratings, "users": num_users, "prepare_seconds": prepare_seconds,
               "prepare_peak_mb": prepare_mb, "records_mb": directory_mb(data_dir),
               "train_peak_mb": train_mb, **last_json(stdout)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        if not args.keep:
            shutil.rmtree(work)
    print(sizes_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def exponent(rows, key, first, last):
    a, b = rows[first], rows[last]
    return math.log(b[key] / a[key]) / math.log(b["num_train_ratings"] / a["num_train_ratings"])


def sizes_table(rows):
    lines = ["| ratings | users | prepare s | prepare peak MB | records MB | train s/epoch | "
             "epoch evaluation s | test evaluation s | train peak MB | test AUC | test NDCG@10 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['ratings']:,} | {row['users']:,} | {row['prepare_seconds']:.1f} | "
            f"{row['prepare_peak_mb']:.0f} | {row['records_mb']:.0f} | {row['train_seconds_per_epoch']:.2f} | "
            f"{row['epoch_evaluation_seconds']:.2f} | {row['test_evaluation_seconds']:.2f} | "
            f"{row['train_peak_mb']:.0f} | {row['test_auc']:.4f} | {row['test_ndcg_at_10'] or float('nan'):.4f} |")
    if len(rows) > 1:
        lines.append("")
        for key in ("train_seconds_per_epoch", "test_evaluation_seconds", "prepare_seconds"):
            pairs = [f"{rows[i]['ratings']:.2g}->{rows[i + 1]['ratings']:.2g}: "
                     f"{exponent(rows, key, i, i + 1):.2f}" for i in range(len(rows) - 1)]
            lines.append(f"growth exponent of {key}: " + ", ".join(pairs)
                         + f"; {rows[1 if len(rows) > 2 else 0]['ratings']:.2g}->{rows[-1]['ratings']:.2g}: "
                         f"{exponent(rows, key, 1 if len(rows) > 2 else 0, len(rows) - 1):.2f}")
    if "recommend_latency_ms" in rows[-1]:
        lines.append(f"recommend (one user, whole catalogue, SavedModel): "
                     f"{rows[-1]['recommend_latency_ms']:.1f} ms at {rows[-1]['ratings']:,} ratings")
    return "\n".join(lines)


# -- every recommender -------------------------------------------------------------------------

REC_MODELS = ("rbm", "rating-rbm", "autorec", "mult-vae", "ease")


def models(args):
    rows = []
    python = sys.executable
    for size in args.sizes:
        num_ratings = int(float(size))
        work, raw, data_dir, num_users = synthetic_release(
            args.work_dir / f"models-{num_ratings}-{args.movies}", num_ratings, args.movies)
        if not data_dir.exists():
            child_peak_mb([python, "-m", "scripts.rbm_prepare", "--release", "ml-25m", "--raw-dir",
                           str(raw), "--data-dir", str(data_dir)])
        for model in args.models:
            run_dir = work / f"run-{model}"
            shutil.rmtree(run_dir, ignore_errors=True)
            command = [python, "-m", "scripts.rec_train", "--model", model, "--release", "ml-25m",
                       "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--no-export"]
            if model != "ease":  # a closed form: one fit
                command += ["--epochs", str(MEASURE_EPOCHS)]
            _, peak_mb, _ = child_peak_mb(command)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            row = {"model": model, "ratings": num_ratings, "users": num_users, "movies": args.movies,
                   "num_train_ratings": num_ratings, "train_seconds_per_epoch": metrics["epochs"][-1]["seconds"],
                   "peak_mb": peak_mb}
            print(json.dumps(row), flush=True)
            rows.append(row)
        if not args.keep:
            shutil.rmtree(work)
    print(models_table(rows, args.models))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def models_table(rows, names):
    sizes = sorted({row["ratings"] for row in rows})
    lines = ["| model | " + " | ".join(f"s/epoch at {size:,}" for size in sizes)
             + " | peak MB at the largest | growth exponent |",
             "|---|" + "---:|" * (len(sizes) + 2)]
    for name in names:
        mine = sorted((row for row in rows if row["model"] == name), key=lambda row: row["ratings"])
        growth = f"{exponent(mine, 'train_seconds_per_epoch', 0, len(mine) - 1):.2f}" if len(mine) > 1 else "-"
        lines.append(f"| {name} | " + " | ".join(f"{row['train_seconds_per_epoch']:.2f}" for row in mine)
                     + f" | {mine[-1]['peak_mb']:.0f} | {growth} |")
    return "\n".join(lines)


# -- the peer ----------------------------------------------------------------------------------

PEER = dict(hidden=200, k=10, batch_size=100, visible="single")


def package_epochs(data, epochs, dense=False):
    """Seconds per epoch (median after the traced first) and test accuracy at the peer's
    configuration, on the sparse path (the recommender) or the dense one (CDTrainer)."""
    import tensorflow as tf

    from rbm_tf import CDTrainer
    from rbm_tf import Recommender

    model = Recommender(data.num_movies, epochs=epochs, **PEER)
    if not dense:
        import keras

        times = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_test_begin(self, logs=None):
                times.append(time.perf_counter() - self.started)

        model.fit(data.train, epochs=epochs + 1, callbacks=[Timer()])
        return statistics.median(times[1:]), model.evaluate(data.test, ranking=False)["accuracy"]
    trainer = CDTrainer(model.rbm, model.config.cd_config(), batch_size=model.config.batch_size)
    batches = data.train.dataset(model.config.batch_size, shuffle_seed=0).cache()
    times = []
    for _ in range(epochs + 1):
        started = time.perf_counter()
        for batch in batches:
            trainer.train_step(batch["inputs"], batch["inputs"] >= 0, monitor=False)
        tf.constant(0).numpy()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:]), None


def peer(args):
    from pipelines import prepare_movielens

    data = prepare_movielens("ml-100k", args.raw_dir, args.work_dir / "ml-100k-data", split="u1")
    rows = []
    if args.torch_python:
        stdout = subprocess.run([str(args.torch_python), str(args.reference), str(args.raw_dir),
                                 str(args.epochs)], capture_output=True, text=True, check=True).stdout
        found = re.search(r"RESULT epoch_s=([\d.]+) test_acc=([\d.]+) majority=([\d.]+)", stdout)
        rows.append(("seed tutorial, PyTorch (dense)", float(found.group(1)), float(found.group(2))))
        majority = float(found.group(3))
    seconds, accuracy = package_epochs(data, args.epochs)
    rows.append(("rbm-autoencoders-tf, ragged CD (the recommender)", seconds, accuracy))
    seconds, _ = package_epochs(data, args.epochs, dense=True)
    rows.append(("rbm-autoencoders-tf, dense CD on the same data", seconds, None))
    lines = ["| ML-100K u1, 200 hidden, CD-10, batch 100, single units | s/epoch | speed vs PyTorch | test accuracy |",
             "|---|---|---|---|"]
    reference = rows[0][1] if args.torch_python else None
    for name, seconds, accuracy in rows:
        speed = f"{reference / seconds:.1f}x" if reference else "-"
        lines.append(f"| {name} | {seconds:.3f} | {speed} | "
                     f"{'-' if accuracy is None else f'{accuracy:.4f}'} |")
    if args.torch_python:
        lines.append(f"\nmajority (always like) test accuracy: {majority:.4f}")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_sizes = commands.add_parser("sizes", help="prepare, train and evaluate at growing sizes")
    run_sizes.add_argument("--sizes", nargs="+", default=["1e5", "1e6", "1e7", "2.5e7"])
    run_sizes.add_argument("--work-dir", type=pathlib.Path, default=pathlib.Path("/tmp/rbm-scale"))
    run_sizes.add_argument("--keep", action="store_true", help="keep the synthetic files and records")
    run_sizes.add_argument("--json", type=pathlib.Path, help="also write the rows here")
    run_models = commands.add_parser("models", help="every recommender's epoch at growing sizes")
    run_models.add_argument("--sizes", nargs="+", default=["1e5", "1e6"])
    run_models.add_argument("--movies", type=int, default=5000, help="the fixed catalogue")
    run_models.add_argument("--models", nargs="+", default=list(REC_MODELS), choices=REC_MODELS)
    run_models.add_argument("--work-dir", type=pathlib.Path, default=pathlib.Path("/tmp/rbm-scale"))
    run_models.add_argument("--keep", action="store_true", help="keep the synthetic files and records")
    run_models.add_argument("--json", type=pathlib.Path, help="also write the rows here")
    run_peer = commands.add_parser("peer", help="side by side with the seed tutorial's PyTorch RBM")
    run_peer.add_argument("--raw-dir", type=pathlib.Path, required=True, help="the ml-100k directory")
    run_peer.add_argument("--torch-python", type=pathlib.Path,
                          help="a Python with torch, numpy and pandas (not the package's)")
    run_peer.add_argument("--reference", type=pathlib.Path,
                          default=ROOT.parent / "shared" / "reference" / "seed_rbm_torch.py")
    run_peer.add_argument("--epochs", type=int, default=10)
    run_peer.add_argument("--work-dir", type=pathlib.Path, default=pathlib.Path("/tmp/rbm-scale"))
    child = commands.add_parser("train-child")
    child.add_argument("--data-dir", required=True)
    child.add_argument("--export")
    args = parser.parse_args(argv)
    {"sizes": sizes, "models": models, "peer": peer, "train-child": train_step}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
