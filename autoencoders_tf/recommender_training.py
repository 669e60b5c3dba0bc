"""A training run of an autoencoder recommender (I-AutoRec, Mult-VAE, EASE) in a run directory.

    data = load_movielens("data", "ml-100k", split="u1")
    final = train_rec_model(data, "runs/ease-u1", EASEConfig())["final"]
    final["test_ndcg_at_10"], final["baselines"]["most_popular"]["test_ndcg_at_10"]
    final = train_rec_model(data, "runs/autorec-u1", AutoRecConfig())["final"]
    final["test_rmse"], final["baselines"]["user_item_biases"]["test_rmse"]

The config's class says which model. A rating model (I-AutoRec) reports ``test_rmse`` and
``test_mae`` beside the ``global_mean`` and ``user_item_biases`` baselines; a ranking model
(Mult-VAE, EASE) reports ``test_ndcg_at_10``, ``test_ndcg_at_100``, ``test_recall_at_10``,
``test_recall_at_20`` and ``test_recall_at_50`` (`pipelines.ranking_eval`) beside
``most_popular`` (and, for Mult-VAE, ``ease``). Training stops early on the validation
ratings (RMSE, or NDCG@10) and keeps the best epoch's weights; the test ratings are read once,
at the end. The run directory, checkpoints, metrics.json, TensorBoard, the plot, the NaN guard
and the export are `pipelines.loop`'s, shared with every other family.

`fit_rec_model` and `RecBaselines` are the same steps without a run directory, on any parts
(the benchmark's held-out users among them).
"""

import dataclasses
import time

import keras

from autoencoders_tf.autorec import AutoRecRecommender
from autoencoders_tf.ease import EASE
from autoencoders_tf.ease import choose_ease
from autoencoders_tf.mult_vae import MultVAERecommender
from autoencoders_tf.rec_config import CONFIGS
from autoencoders_tf.rec_config import AutoRecConfig
from autoencoders_tf.rec_config import EASEConfig
from autoencoders_tf.rec_config import MultVAEConfig
from pipelines import loop
from pipelines import movie_table
from pipelines import runs
from pipelines.errors import RunError
from pipelines.ranking_eval import MostPopular
from pipelines.ranking_eval import evaluate_ranking
from pipelines.ranking_eval import prefixed
from pipelines.rating_eval import RatingBaselines
from pipelines.rating_parts import rating_part


def is_rating_model(config):
    return isinstance(config, AutoRecConfig)


def headline(config):
    """(metric, "min" or "max"): what early stopping and the verdict judge a model by."""
    return ("rmse", "min") if is_rating_model(config) else ("ndcg_at_10", "max")


def build_rec_model(config, num_movies, num_users, movie_ids=None, movie_titles=None,
                    like_threshold=3.0):
    """The untrained recommender `config` describes (EASE with its config's or default L2)."""
    if isinstance(config, AutoRecConfig):
        return AutoRecRecommender(num_movies, num_users, config, movie_ids, movie_titles, like_threshold)
    if isinstance(config, MultVAEConfig):
        return MultVAERecommender(num_movies, config, movie_ids, movie_titles, like_threshold)
    if isinstance(config, EASEConfig):
        return EASE(num_movies, config.l2 or 300.0, config.interactions or "rated", movie_ids,
                    movie_titles, like_threshold)
    raise ValueError(f"config must be one of {', '.join(c.__name__ for c in CONFIGS.values())}, "
                     f"got {type(config).__name__}")


def fit_rec_model(config, train, validation, callbacks=(), movie_ids=None, movie_titles=None,
                  model=None):
    """Fit the model `config` describes on `train`, stopping early on `validation` (parts of a
    split, or of `pipelines.rating_parts.hold_out_users`). Returns (model, notes): notes hold
    ``best_epoch`` and, for EASE, what it chose and the table it chose from."""
    train = rating_part(train)
    if isinstance(config, EASEConfig):
        model, table = choose_ease(
            train, validation,
            l2_choices=(config.l2,) if config.l2 else EASEConfig.L2_CHOICES,
            interactions_choices=(config.interactions,) if config.interactions else ("rated", "liked"),
            movie_ids=movie_ids, movie_titles=movie_titles)
        return model, {"l2": model.l2, "interactions": model.interactions, "selection": table}
    if model is None:
        model = build_rec_model(config, train.num_movies, train.num_users, movie_ids, movie_titles,
                                train.like_threshold)
    metric, mode = headline(config)
    stopping = keras.callbacks.EarlyStopping(f"val_{metric}", mode=mode, patience=config.patience,
                                             restore_best_weights=True)
    model.fit(train, validation_data=validation, callbacks=[stopping, *callbacks])
    best_epoch = loop.kept_epoch(stopping, model.epoch.numpy())
    if stopping.best_weights is not None:
        model.refresh()
    return model, {"best_epoch": best_epoch}


class RecBaselines:
    """What a model of `config`'s kind is measured against, fitted on `train` (chosen on
    `validation` where a baseline has a setting): for a rating model `global_mean` and
    `user_item_biases`; for a ranking model `most_popular` and, beside Mult-VAE, `ease`."""

    def __init__(self, config, train, validation):
        self.rating = is_rating_model(config)
        if self.rating:
            self.ratings = RatingBaselines(train, validation)
            self.bias_l2 = self.ratings.bias_l2
            return
        self.rankers = {"most_popular": MostPopular(train)}
        if isinstance(config, MultVAEConfig):
            self.rankers["ease"] = choose_ease(train, validation)[0].score

    def evaluate(self, part, prefix=""):
        """{baseline: {prefix + metric: value}} on `part`."""
        if self.rating:
            return self.ratings.evaluate(part, prefix)
        return {name: prefixed(evaluate_ranking(score, part), prefix)
                for name, score in self.rankers.items()}


def verdict(final, config):
    """Whether the model beats each baseline on its headline metric, in flags and words."""
    metric, mode = headline(config)
    value = final[f"test_{metric}"]
    beats = {}
    for name, baseline in final["baselines"].items():
        other = baseline.get(f"test_{metric}")
        if other is not None:
            beats[name] = value < other if mode == "min" else value > other
    losing = [name for name, won in beats.items() if not won]
    words = (f"does NOT beat {', '.join(losing)} on {metric}" if losing
             else f"beats every baseline on {metric}")
    return {f"beats_{name}": won for name, won in beats.items()} | {"verdict": words}


def final_metrics(model, test, baselines, notes, config):
    """metrics.json's final: the test metrics of the kept weights, beside the baselines'."""
    final = dict(notes)
    final.update(prefixed(model.evaluate(test), "test_"))
    final["baselines"] = baselines.evaluate(test, prefix="test_")
    final.update(verdict(final, config))
    return final


def describe_epoch(record, config, on_validation):
    metric, _ = headline(config)
    reference = "user_item_biases" if is_rating_model(config) else "most_popular"
    return (f"epoch {record['epoch']}/{config.epochs}  {record['seconds']:.1f}s  train loss "
            f"{record['train_loss']:.4f}  |  validation {metric} "
            f"{record.get(f'validation_{metric}', float('nan')):.4f}  ({reference} "
            f"{on_validation[reference][f'validation_{metric}']:.4f})")


def plot(run, epochs_logged, config, on_validation, name):
    metric, _ = headline(config)
    reference = "user_item_biases" if is_rating_model(config) else "most_popular"
    runs.plot_metrics(epochs_logged, {f"validation {metric}": f"validation_{metric}"},
                      run.path / "metrics.png",
                      baselines={f"{reference} (validation)": on_validation[reference][f"validation_{metric}"]},
                      title=f"{config.model} on {name}")


def train_rec_model(data, run_dir, config, resume=False, epochs=None, export=True, log=None):
    """Train the recommender `config` describes (an `AutoRecConfig`, `MultVAEConfig` or
    `EASEConfig`) on `data` (a `MovieLensData`) in `run_dir`; returns metrics.json's content.

    `epochs` replaces the config's most epochs. The model is exported to
    RUN/export/<model>/<version>/ unless `export` is False. `log` gets a line per epoch.
    """
    if resume:
        raise RunError(f"{config.model} runs cannot be resumed; start a new run directory")
    if epochs is not None and not isinstance(config, EASEConfig):
        config = dataclasses.replace(config, epochs=epochs)
    train = rating_part(data.train)
    settings = {"model": config.model, "data_dir": str(data.data_dir), "split_name": data.name,
                **data.split_settings(), "num_movies": data.num_movies,
                "num_users": train.num_users, "like_threshold_stars": train.like_threshold,
                **dataclasses.asdict(config)}
    run = loop.Run(run_dir, settings)
    movie_table.write_movie_table(run.path / movie_table.MOVIE_TABLE, data.movie_ids, data.movie_titles)
    baselines = RecBaselines(config, data.train, data.validation)
    on_validation = baselines.evaluate(data.validation, prefix="validation_")
    if isinstance(config, EASEConfig):
        started = time.perf_counter()
        model, notes = fit_rec_model(config, data.train, data.validation, movie_ids=data.movie_ids,
                                     movie_titles=data.movie_titles)
        run.track(**model.trackables())
        chosen = next(row for row in notes["selection"]
                      if (row["l2"], row["interactions"]) == (model.l2, model.interactions))
        run.metrics_log.log_epoch({"epoch": 1, "seconds": round(time.perf_counter() - started, 3),
                                   **{k: v for k, v in chosen.items() if k.startswith("validation_")},
                                   "baselines": on_validation})
        run.save_checkpoint(1)
        if log:
            log(f"EASE: chose l2 {model.l2:g} on {model.interactions} movies by validation NDCG@10 "
                f"{chosen['validation_ndcg_at_10']:.4f} (most popular "
                f"{on_validation['most_popular']['validation_ndcg_at_10']:.4f})")
    else:
        model = build_rec_model(config, data.num_movies, train.num_users, data.movie_ids,
                                data.movie_titles, train.like_threshold)
        run.track(**model.trackables())
        monitor = loop.RunMonitor(
            run, validation_name="validation", log=log,
            extra=lambda record: {"baselines": on_validation},
            plot=lambda logged: plot(run, logged, config, on_validation, data.name),
            describe=lambda record: describe_epoch(record, config, on_validation))
        model, notes = fit_rec_model(config, data.train, data.validation, callbacks=[monitor],
                                     model=model)
        # the kept weights, so that a re-export or restore of the run gets them too
        run.save_checkpoint(int(model.epoch.numpy()))
        if log:
            log(f"kept the weights of epoch {notes['best_epoch']}, the best validation "
                f"{headline(config)[0]}")
    final = final_metrics(model, data.test, baselines, notes, config)
    if not is_rating_model(config):
        final["relevant"] = "held-out likes among the movies the user did not rate in training"
    return run.finish(final, export=model.export if export else None, model_name=config.model)


def load_rec_run(run_dir):
    """The recommender of a run, rebuilt from run_config.json, with its latest checkpoint."""
    import tensorflow as tf

    directory = runs.RunDirectory(run_dir)
    stored = directory.read_config()
    if stored.get("model") == "autorec" and "members" not in stored:
        # its checkpoint holds one network at other paths and no biases: it would not restore
        raise RunError(f"{directory.path} holds an I-AutoRec run from before the ensemble of "
                       "residual networks, which this version cannot read; train it again")
    config = CONFIGS[stored["model"]].from_dict(stored)
    movie_ids, titles = movie_table.read_movie_table(directory.path / movie_table.MOVIE_TABLE)
    model = build_rec_model(config, stored["num_movies"], stored["num_users"], movie_ids, titles,
                            stored["like_threshold_stars"])
    if isinstance(model, EASE):
        # the L2 and interactions EASE chose are in metrics.json, the weights in the checkpoint
        final = directory.read_metrics().get("final", {})
        model = build_rec_model(EASEConfig(l2=final.get("l2"), interactions=final.get("interactions")),
                                stored["num_movies"], stored["num_users"], movie_ids, titles,
                                stored["like_threshold_stars"])
    tf.train.Checkpoint(**model.trackables()).restore(directory.checkpoint_to_export()).expect_partial()
    return model


def export_rec_run(run_dir, export_base=None):
    """Export the latest checkpoint of a run as the next version, without training; the new
    export is noted in the run's metrics.json. Returns its path."""
    directory = runs.RunDirectory(run_dir)
    directory.checkpoint_to_export()
    model = load_rec_run(run_dir)
    path = runs.export_versioned(export_base or directory.export_base(), model.model_name, model.export)
    directory.record_export(path)
    return path
