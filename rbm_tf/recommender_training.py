"""A training run of the recommender: train, evaluate every epoch, export, all in a run directory.

    data = load_movielens("data", "ml-100k", split="u1")
    result = train_recommender(data, "runs/rbm-u1")        # metrics.json's content
    result["final"]["test_accuracy"], result["final"]["baselines"]["majority"]

The run directory, checkpoints and resume, metrics.json, TensorBoard, the plot, the NaN guard
and the export are `pipelines.loop`'s, shared with every other family.
"""

import dataclasses

from pipelines import loop
from pipelines import movie_table
from pipelines import runs
from pipelines.errors import RunError
from rbm_tf.config import RecommenderConfig
from rbm_tf.recommender import Recommender

MODEL_NAME = "rbm"


def describe_epoch(record, total_epochs):
    return (f"epoch {record['epoch']}/{total_epochs}  {record['seconds']:.1f}s  "
            f"train acc {record['train_accuracy']:.4f} auc {record['train_auc']:.4f}  |  "
            f"test acc {record['test_accuracy']:.4f} auc {record['test_auc']:.4f}  "
            f"(majority baseline {record['test_majority_accuracy']:.4f})")


def final_metrics(last):
    """metrics.json's final from the last epoch's record: the model beside its baselines."""
    final = {key: last[key] for key in (
        "epoch", "train_accuracy", "train_auc", "test_accuracy", "test_error", "test_auc",
        "test_reconstruction_error", "test_num_ratings")}
    final["baselines"] = {"majority": {"test_accuracy": last["test_majority_accuracy"],
                                       "test_error": 1.0 - last["test_majority_accuracy"]}}
    final["beats_majority"] = last["test_accuracy"] > last["test_majority_accuracy"]
    return final


def train_recommender(data, run_dir, config=None, resume=False, epochs=None, export=True,
                      log=None):
    """Train a `Recommender` on `data` (a `MovieLensData`) in `run_dir`; returns metrics.json.

    A new run stores `config` (default `RecommenderConfig()`) with the data it trains on; a
    resumed run (`resume=True`) continues from its last checkpoint with its stored settings,
    to its stored number of epochs unless `epochs` is given. Every epoch evaluates the
    training and the test ratings; the model is exported at the end unless `export` is False.
    """
    directory = runs.RunDirectory(run_dir)
    if resume:
        stored = directory.read_config()
        config = RecommenderConfig.from_dict(stored)
        if stored["num_movies"] != data.num_movies:
            raise RunError(
                f"the data have {data.num_movies} movies but the run in {directory.path} was "
                f"trained on {stored['num_movies']}; use the data it was trained on or a new run directory")
    config = config or RecommenderConfig()
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    settings = {"model": MODEL_NAME, "data_dir": str(data.data_dir), "split_name": data.name,
                **data.split_settings(), "num_movies": data.num_movies, **dataclasses.asdict(config)}
    run = loop.Run(run_dir, settings, resume=resume)
    if not resume:
        movie_table.write_movie_table(run.path / movie_table.MOVIE_TABLE, data.movie_ids,
                                      data.movie_titles)
    model = Recommender(data.num_movies, config, data.movie_ids, data.movie_titles)
    run.track(**model.trackables())
    run.check_resumable(int(model.epoch.numpy()), config.epochs, log)

    def plot(epochs_logged):
        runs.plot_metrics(
            epochs_logged, {"train accuracy": "train_accuracy", "test accuracy": "test_accuracy",
                            "test ROC-AUC": "test_auc"},
            run.path / "metrics.png",
            baselines={"majority baseline (test)": epochs_logged[-1]["test_majority_accuracy"]},
            title=f"RBM recommender, {data.name}")

    monitor = loop.RunMonitor(run, plot=plot, log=log,
                              describe=lambda record: describe_epoch(record, config.epochs))
    model.fit(data.train, validation_data=data.test, epochs=config.epochs, callbacks=[monitor])
    return run.finish(final_metrics(run.metrics_log.epochs[-1]),
                      export=model.export if export else None, model_name=MODEL_NAME)


def export_recommender_run(run_dir, export_base=None):
    """Export the latest checkpoint of a run as the next version, without training; the new
    export is noted in the run's metrics.json. Returns its path."""
    directory = runs.RunDirectory(run_dir)
    directory.checkpoint_to_export()
    model = Recommender.restore(run_dir)
    path = runs.export_versioned(export_base or directory.export_base(), MODEL_NAME, model.export)
    directory.record_export(path)
    return path


def load_run_data(run_dir):
    """The prepared split a run was trained on, found from its run_config.json."""
    from pipelines.movielens_data import load_movielens

    stored = runs.RunDirectory(run_dir).read_config()
    return load_movielens(stored["data_dir"], stored["release"], stored["split"],
                          test_per_user=stored["test_per_user"], order=stored["order"],
                          split_seed=stored["split_seed"], like_threshold=stored["like_threshold"])


def recommend_for_user(run_dir, user_id, k=10):
    """[(movie_id, title, like_probability)]: a known user's k best unrated movies, from the
    run's latest checkpoint and the user's training ratings."""
    data = load_run_data(run_dir)
    ratings = data.user_ratings(user_id)
    if ratings is None:
        raise RunError(f"user {user_id} has no training ratings in {data.name}")
    return Recommender.restore(run_dir).recommend(ratings, k)
