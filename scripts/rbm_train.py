"""rbm-train: train the RBM recommender on prepared MovieLens records, evaluate, export.

Every epoch reports accuracy and ROC-AUC on the train and test ratings beside the majority
baseline (always predicting the training set's most common label), and writes checkpoints,
TensorBoard summaries, RUN/metrics.json and RUN/metrics.png. At the end the model is exported
to RUN/export/rbm/<version>/ for TensorFlow Serving.
"""

import argparse
import dataclasses
import pathlib
import sys
import time

import tensorflow as tf

from pipelines import datasets
from pipelines import records
from rbm_tf.metrics import RatingMetrics
from rbm_tf.rbm import RBM
from rbm_tf.rbm import VISIBLE_LAYOUTS
from rbm_tf.serving import RecommenderServing
from rbm_tf.training import CDConfig
from rbm_tf.training import CDTrainer
from scripts import _run


@dataclasses.dataclass(frozen=True)
class RecommenderConfig:
    """Model and training settings; the defaults were chosen by measurement on ML-100K u1."""

    hidden: int = 50
    visible: str = "pair"
    epochs: int = 40
    batch_size: int = 32
    k: int = 1
    learning_rate: float = 0.1
    momentum: float = 0.5
    weight_decay: float = 0.01
    persistent: bool = False
    seed: int = 0

    def __post_init__(self):
        if min(self.hidden, self.batch_size, self.epochs) < 1:
            raise ValueError("--hidden, --batch-size and --epochs must be at least 1")
        if self.visible not in VISIBLE_LAYOUTS:
            raise ValueError(f"--visible must be one of {', '.join(VISIBLE_LAYOUTS)}")
        self.cd_config()

    def cd_config(self):
        return CDConfig(k=self.k, learning_rate=self.learning_rate, momentum=self.momentum,
                        weight_decay=self.weight_decay, persistent=self.persistent)


def add_split_arguments(parser):
    """Arguments that name a prepared data set, shared with rbm-prepare."""
    parser.add_argument("--release", default="ml-100k",
                        help="GroupLens release name: ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, "
                             "ml-latest, ml-latest-small (default: %(default)s)")
    parser.add_argument("--split",
                        help="u1..u5, ua, ub (ML-100K's own splits) or holdout (default: u1 for "
                             "ml-100k, holdout for the other releases)")
    parser.add_argument("--test-per-user", type=int, default=10,
                        help="with --split holdout: ratings held out per user (users with more "
                             "than twice as many) (default: %(default)s)")
    parser.add_argument("--order", choices=records.SPLIT_ORDERS, default="random",
                        help="with --split holdout: hold out random ratings or each user's latest "
                             "(default: %(default)s)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="with --split holdout --order random: seed of the choice (default: %(default)s)")
    parser.add_argument("--like-threshold", type=float, default=3.0,
                        help="a rating >= this is a like, below it a dislike (default: %(default)s)")
    parser.add_argument("--data-dir", required=True, type=pathlib.Path,
                        help="directory of the prepared TFRecords (rbm-prepare's --data-dir)")


def split_config(args):
    """The prepared data set the split arguments name."""
    split = args.split or ("u1" if args.release == "ml-100k" else "holdout")
    return records.movielens_config(args.release, split, test_per_user=args.test_per_user,
                                    order=args.order, seed=args.split_seed,
                                    like_threshold=args.like_threshold)


def build_parser():
    defaults = RecommenderConfig()
    parser = argparse.ArgumentParser(
        prog="rbm-train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_arguments(parser)
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="default: %(default)s")
    parser.add_argument("--hidden", type=int, default=defaults.hidden,
                        help="number of hidden units (default: %(default)s)")
    parser.add_argument("--visible", choices=VISIBLE_LAYOUTS, default=defaults.visible,
                        help="pair: like and dislike units per movie, so dislikes reach the hidden "
                             "layer; single: one 0/1 unit per movie (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="users per update (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of initial weights, sampling and shuffling (default: %(default)s)")
    _run.add_contrastive_divergence_arguments(parser, defaults)
    _run.add_run_arguments(parser)
    return parser


def like_rates(dataset, num_movies):
    """Per-movie like rate over the training ratings, shrunk towards the overall rate."""
    likes = tf.zeros([num_movies])
    counts = tf.zeros([num_movies])
    for batch in dataset:
        known = batch["inputs"] >= 0
        likes += tf.reduce_sum(tf.cast(batch["inputs"] > 0.5, tf.float32), axis=0)
        counts += tf.reduce_sum(tf.cast(known, tf.float32), axis=0)
    overall = tf.reduce_sum(likes) / tf.maximum(tf.reduce_sum(counts), 1.0)
    prior_strength = 2.0
    return (likes + prior_strength * overall) / (counts + prior_strength)


def make_evaluator(rbm, metrics):
    """A function dataset -> metrics of predictions from each user's inputs on their targets."""
    ratings_spec = tf.TensorSpec([None, rbm.num_visible], tf.float32)

    @tf.function(input_signature=[ratings_spec, ratings_spec])
    def evaluate_batch(inputs, targets):
        metrics.update(rbm.reconstruct(inputs, inputs >= 0), targets, targets >= 0)

    def evaluate(dataset):
        metrics.reset()
        for batch in dataset:
            evaluate_batch(batch["inputs"], batch["targets"])
        return metrics.result()

    return evaluate


def check_checkpoint_width(stored, num_movies, run):
    """Refuse to resume a run trained on a different number of movies."""
    if stored["num_movies"] != num_movies:
        raise _run.UserError(
            f"the records have {num_movies} movies but the checkpoint in {run.checkpoint_dir} "
            f"was trained on {stored['num_movies']}; use the data it was trained on or a new --run-dir")


MOVIE_TABLE = "movies.tsv"


def write_movie_table(path, movie_ids, titles):
    """The movie index -> (release movie id, title) table, kept in the run and shipped in exports."""
    rows = [f"{index}\t{movie_id}\t{title}" for index, (movie_id, title) in
            enumerate(zip(movie_ids, titles))]
    _run.write_text_atomic(path, "index\tmovie_id\ttitle\n" + "\n".join(rows) + "\n")


def read_movie_table(path):
    """(movie ids, titles) in model index order, from a table written by `write_movie_table`."""
    movie_ids, titles = [], []
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0].isdigit() or int(fields[0]) != len(movie_ids):
            raise _run.UserError(f"{path}:{number}: expected 'index<TAB>movie_id<TAB>title' "
                                 f"with index {len(movie_ids)}")
        movie_ids.append(int(fields[1]))
        titles.append(fields[2])
    return movie_ids, titles


def export(rbm, movie_table_path, export_base):
    """Write the servable recommender, with its movie table as an asset, as the next version."""
    module = RecommenderServing(rbm, read_movie_table(movie_table_path)[0],
                                movie_table_path=str(movie_table_path))
    return _run.export_versioned(
        export_base, "rbm",
        lambda path: tf.saved_model.save(module, path, signatures=module.signatures()))


def restore_rbm(run):
    """The RBM of a run's latest checkpoint, rebuilt from its run_config.json."""
    stored = run.read_config()
    rbm = RBM(stored["num_movies"], stored["hidden"], stored["visible"])
    # the trainer's checkpoint holds the RBM under trainer/rbm; the optimizer state is not needed
    trainer = tf.Module()
    trainer.rbm = rbm
    tf.train.Checkpoint(trainer=trainer).restore(run.checkpoint_to_export()).expect_partial()
    return rbm


def export_run(run_dir, export_base=None):
    """Export the latest checkpoint of a training run as the next version, without retraining."""
    run = _run.RunDirectory(run_dir)
    return export(restore_rbm(run), run.path / MOVIE_TABLE, export_base or run.export_base())


def train_and_evaluate(split, data_dir, run_dir, config=RecommenderConfig(), resume=False,
                       export_model=True, log=print):
    """Train on the prepared records of `split`, evaluate every epoch, export; returns metrics."""
    builder = datasets.prepared_movielens(data_dir, split)
    metadata = builder.info.metadata
    num_movies = int(metadata["num_movies"])
    run = _run.RunDirectory(run_dir)
    run.check_fresh_or_resume(resume)
    if resume:
        check_checkpoint_width(run.read_config(), num_movies, run)
    else:
        write_movie_table(run.path / MOVIE_TABLE, metadata["movie_ids"], metadata["movie_titles"])
        run.write_config({"model": "rbm", "script": "rbm_train",
                          "data_dir": str(pathlib.Path(data_dir).resolve()), "split": split.name,
                          "release": split.release, "split_kind": split.split,
                          "test_per_user": split.test_per_user, "order": split.order,
                          "split_seed": split.seed, "like_threshold": split.like_threshold,
                          "num_movies": num_movies, **dataclasses.asdict(config)})

    tf.random.set_seed(config.seed)
    train_eval_data = datasets.movielens_dataset(builder, "train", 256)
    test_data = datasets.movielens_dataset(builder, "test", 256)

    rbm = RBM(num_movies, config.hidden, config.visible, seed=config.seed)
    if not resume:  # a resumed run restores its biases from the checkpoint
        rbm.set_visible_bias_from_rates(like_rates(train_eval_data, num_movies))
    trainer = CDTrainer(rbm, config.cd_config(), batch_size=config.batch_size)
    epoch_counter = tf.Variable(0, dtype=tf.int64, name="epoch")
    checkpoint = tf.train.Checkpoint(trainer=trainer, epoch=epoch_counter)
    manager = run.checkpoint_manager(checkpoint)
    if resume:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        done = int(epoch_counter.numpy())
        if done >= config.epochs:
            raise _run.UserError(f"{run.path} already has {done} epochs; pass --epochs above {done} "
                                 "to continue it (tfm-export re-exports it without training)")
        log(f"resumed from {manager.latest_checkpoint} after epoch {done}")

    majority_label = 1.0 if metadata["train_like_rate"] >= 0.5 else 0.0
    evaluate = make_evaluator(rbm, RatingMetrics(majority_label=majority_label))
    metrics_log = _run.MetricsLog(run.metrics_path, resume=resume)
    writers = {name: run.summary_writer(name) for name in ("train", "test")}

    for epoch in range(int(epoch_counter.numpy()) + 1, config.epochs + 1):
        started = time.perf_counter()
        reconstruction = tf.keras.metrics.Mean()
        # one shuffle seed per epoch, so a resumed run sees the same batches as an unbroken one
        train_data = datasets.movielens_dataset(
            builder, "train", config.batch_size, shuffle_seed=config.seed * 100003 + epoch)
        for batch in train_data:
            reconstruction.update_state(
                trainer.train_step(batch["inputs"], batch["inputs"] >= 0)["reconstruction_error"])
        seconds = time.perf_counter() - started
        train_metrics = evaluate(train_eval_data)
        test_metrics = evaluate(test_data)
        record = {"epoch": epoch, "seconds": round(seconds, 3),
                  "train_reconstruction_error": float(reconstruction.result())}
        record.update({f"train_{key}": value for key, value in train_metrics.items()})
        record.update({f"test_{key}": value for key, value in test_metrics.items()})
        record["majority_baseline"] = test_metrics["majority_baseline"]
        metrics_log.log_epoch(record)
        for side, values in (("train", train_metrics), ("test", test_metrics)):
            _run.write_scalars(writers[side], epoch, {
                key: values[key] for key in ("accuracy", "auc", "reconstruction_error", "majority_baseline")})
        epoch_counter.assign(epoch)
        manager.save(checkpoint_number=epoch)
        _run.plot_metrics(
            metrics_log.epochs,
            {"train accuracy": "train_accuracy", "test accuracy": "test_accuracy",
             "test ROC-AUC": "test_auc"},
            run.path / "metrics.png", baseline_key="majority_baseline",
            baseline_label="majority baseline (test)",
            title=f"RBM recommender, {split.name}")
        log(f"epoch {epoch}/{config.epochs}  {seconds:.1f}s  "
            f"train acc {train_metrics['accuracy']:.4f} auc {train_metrics['auc']:.4f}  |  "
            f"test acc {test_metrics['accuracy']:.4f} auc {test_metrics['auc']:.4f}  "
            f"(majority baseline {test_metrics['majority_baseline']:.4f})")

    last = metrics_log.epochs[-1]
    final = {key: last[key] for key in (
        "epoch", "train_accuracy", "train_auc", "test_accuracy", "test_auc", "majority_baseline",
        "train_majority_baseline", "test_reconstruction_error", "test_num_ratings")}
    final["beats_majority_baseline"] = last["test_accuracy"] > last["majority_baseline"]
    final["mean_seconds_per_epoch"] = round(
        sum(e["seconds"] for e in metrics_log.epochs) / len(metrics_log.epochs), 3)
    if export_model:
        final["export"] = str(export(rbm, run.path / MOVIE_TABLE, run.export_base()))
        log(f"exported to {final['export']}")
    metrics_log.set_final(final)
    return {"final": final, "epochs": metrics_log.epochs}


def _main(argv):
    args = build_parser().parse_args(argv)
    settings = dict(hidden=args.hidden, visible=args.visible, epochs=args.epochs,
                    batch_size=args.batch_size, k=args.k, learning_rate=args.learning_rate,
                    momentum=args.momentum, weight_decay=args.weight_decay,
                    persistent=args.persistent, seed=args.seed)
    if args.resume:
        # a resumed run keeps its stored settings; only --epochs may grow
        stored = _run.RunDirectory(args.run_dir).read_config()
        settings.update({key: stored[key] for key in settings if key in stored and key != "epochs"})
    try:
        config = RecommenderConfig(**settings)
    except ValueError as error:
        raise _run.UserError(str(error)) from None
    result = train_and_evaluate(split_config(args), args.data_dir, args.run_dir, config,
                                resume=args.resume, export_model=not args.no_export)
    final = result["final"]
    print(f"final: test accuracy {final['test_accuracy']:.4f} (majority baseline "
          f"{final['majority_baseline']:.4f}), test ROC-AUC {final['test_auc']:.4f}; "
          f"metrics in {pathlib.Path(args.run_dir) / 'metrics.json'}")
    return 0


def main(argv=None):
    return _run.run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
