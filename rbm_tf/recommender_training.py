"""A training run of the recommender: train, evaluate every epoch, export, all in a run directory.

    data = load_movielens("data", "ml-100k", split="u1")
    result = train_recommender(data, "runs/rbm-u1")        # metrics.json's content
    result["final"]["test_accuracy"], result["final"]["baselines"]["majority"]

The run directory, checkpoints and resume, metrics.json, TensorBoard, the plot, the NaN guard
and the export are `pipelines.loop`'s, shared with every other family.
"""

import dataclasses

from pipelines import distribute
from pipelines import loop
from pipelines import movie_table
from pipelines import runs
from pipelines.recommender_eval import Baselines
from pipelines.errors import RunError
from rbm_tf.config import RecommenderConfig
from rbm_tf.recommender import Recommender

MODEL_NAME = "rbm"


def describe_epoch(record, total_epochs, baselines):
    biases = baselines["user_item_biases"]
    return (f"epoch {record['epoch']}/{total_epochs}  {record['seconds']:.1f}s  "
            f"train acc {record['train_accuracy']:.4f} auc {record['train_auc']:.4f}  |  "
            f"validation acc {record['validation_accuracy']:.4f} auc {record['validation_auc']:.4f} "
            f"ndcg@10 {record.get('validation_ndcg_at_10', float('nan')):.4f}  "
            f"(user+item biases auc {biases['validation_auc']:.4f} "
            f"ndcg@10 {biases['validation_ndcg_at_10'] or float('nan'):.4f})")


def verdict(final):
    """Whether the model beats its baselines, in words and flags."""
    baselines = final["baselines"]
    beats_majority = final["test_accuracy"] > baselines["majority"]["test_accuracy"]
    biases = baselines["user_item_biases"]
    beats_biases = {metric: final[f"test_{metric}"] > biases[f"test_{metric}"]
                    for metric in ("auc", "ndcg_at_10") if final.get(f"test_{metric}") is not None}
    words = []
    if not beats_majority:
        words.append("does NOT beat the majority baseline on accuracy")
    losing = [metric for metric, beats in beats_biases.items() if not beats]
    if losing:
        words.append(f"does NOT beat the user+item biases model on {' and '.join(losing)}")
    return {"beats_majority": beats_majority,
            "beats_user_item_biases": bool(beats_biases) and all(beats_biases.values()),
            "verdict": "; ".join(words) or "beats every baseline"}


def final_metrics(model, data, baselines, best_epoch):
    """metrics.json's final: the test metrics of the kept weights, beside the baselines'."""
    final = {"best_epoch": best_epoch}
    final.update({f"test_{key}": value for key, value in model.evaluate(data.test).items()})
    final["baselines"] = baselines.evaluate(data.test, prefix="test_")
    final["user_item_biases_l2"] = baselines.bias_l2
    final.update(verdict(final))
    return final


def plot(run, data, epochs_logged, baselines):
    biases = baselines["user_item_biases"]
    runs.plot_metrics(
        epochs_logged, {"train accuracy": "train_accuracy",
                        "validation accuracy": "validation_accuracy",
                        "validation ROC-AUC": "validation_auc",
                        "validation NDCG@10": "validation_ndcg_at_10"},
        run.path / "metrics.png",
        baselines={"majority accuracy (validation)": baselines["majority"]["validation_accuracy"],
                   "user+item biases ROC-AUC": biases["validation_auc"],
                   "user+item biases NDCG@10": biases["validation_ndcg_at_10"]},
        title=f"RBM recommender, {data.name}")


def train_recommender(data, run_dir, config=None, resume=False, epochs=None, export=True,
                      log=None, strategy=None):
    """Train a `Recommender` on `data` (a `MovieLensData`) in `run_dir`; returns metrics.json.

    A new run stores `config` (default `RecommenderConfig()`) with the data it trains on; a
    resumed run (`resume=True`) continues from its last checkpoint with its stored settings,
    to its stored number of epochs unless `epochs` is given. Every epoch evaluates the
    training and the validation ratings; training stops early on the validation ROC-AUC
    (`RecommenderConfig`) and keeps the best epoch's weights, which are then evaluated on the
    test ratings beside the baselines and exported (unless `export` is False).

    `strategy` (`pipelines.distribute.make_strategy`) shares every batch among its replicas;
    with several workers, every worker runs this call and only the chief writes `run_dir`.
    """
    with distribute.writable_run_dir(strategy, run_dir, resume) as own_dir:
        return _train(data, own_dir, config, resume, epochs,
                      export and distribute.is_chief(strategy), log, strategy)


def _train(data, run_dir, config, resume, epochs, export, log, strategy):
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
    model = Recommender(data.num_movies, config, data.movie_ids, data.movie_titles, strategy=strategy)
    run.track(**model.trackables())
    run.check_resumable(int(model.epoch.numpy()), config.epochs, log)

    baselines = Baselines(data)
    on_validation = baselines.evaluate(data.validation, prefix="validation_")
    stopping = loop.update_stopping(config, data.train.num_users, "val_auc", "max")
    monitor = loop.RunMonitor(
        run, validation_name="validation", log=log,
        extra=lambda record: {"baselines": on_validation},
        plot=lambda logged: plot(run, data, logged, on_validation),
        describe=lambda record: describe_epoch(record, config.epochs, on_validation))
    model.fit(data.train, validation_data=data.validation, epochs=config.epochs,
              callbacks=[stopping, monitor])
    best_epoch = loop.kept_epoch(stopping, model.epoch.numpy())
    if stopping.best_weights is not None:
        # the kept weights, so that a re-export or restore of the run gets them too
        run.save_checkpoint(int(model.epoch.numpy()))
        if log:
            log(f"kept the weights of epoch {best_epoch}, the best validation ROC-AUC")
    return run.finish(final_metrics(model, data, baselines, best_epoch),
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
                          split_seed=stored["split_seed"], like_threshold=stored["like_threshold"],
                          validation_per_user=stored.get("validation_per_user", 5))


def recommend_for_user(run_dir, user_id, k=10):
    """[(movie_id, title, like_probability)]: a known user's k best unrated movies, from the
    run's latest checkpoint and the user's training ratings."""
    data = load_run_data(run_dir)
    ratings = data.user_ratings(user_id)
    if ratings is None:
        raise RunError(f"user {user_id} has no training ratings in {data.name}")
    return Recommender.restore(run_dir).recommend(ratings, k)
