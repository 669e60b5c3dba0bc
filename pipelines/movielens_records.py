"""The TensorFlow Datasets builder of MovieLens: sharded TFRecords of per-user examples.

`MovieLensRatings` writes one sparse example per user: the indices of the movies the user
rated, their like (1) / dislike (0) labels and the raw ratings, in three splits:

* ``train``: the ratings a model learns from (inputs and targets alike);
* ``validation``: ``validation_per_user`` ratings of every user with more than twice that many
  training ratings, carved from the training ratings (chosen like the test ratings: at random
  with the seed, or each user's latest), with the remaining training ratings as input. Early
  stopping and the choice of settings look at these, never at the test ratings;
* ``test``: the held-out ratings as targets and all the user's training ratings (validation
  included) as input, so a prediction for a test rating can only use what the model was
  allowed to see.

Nothing dense is written: ML-25M as dense vectors would be 162k x 59k.

The raw files are read from a manual directory (the user's MovieLens directory):

    builder = MovieLensRatings(config=movielens_config("ml-100k", "u1"), data_dir=OUT)
    builder.download_and_prepare(download_config=downloads.manual_download_config(RAW_DIR))
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from pipelines import movielens
from pipelines.errors import MovieLensError

SPLIT_ORDERS = ("random", "time")


@dataclasses.dataclass(eq=False)
class MovieLensConfig(tfds.core.BuilderConfig):
    """One (release, split) of MovieLens: a canonical ML-100K split or a per-user holdout."""

    release: str = "ml-100k"
    split: str = "u1"
    test_per_user: int = 10
    order: str = "random"
    seed: int = 0
    like_threshold: float = 3.0
    validation_per_user: int = 5


def movielens_config(release, split=None, test_per_user=10, order="random", seed=0,
                     like_threshold=3.0, validation_per_user=5):
    """The builder config for a release and split; its name says everything that shapes the data.

    split: "u1".."u5", "ua", "ub" (ML-100K's own files) or "holdout" (``test_per_user`` ratings
    of every user with more than twice that many, chosen by ``order`` with ``seed``). Without a
    split: u1 for ml-100k, holdout for the other releases.
    """
    split = split or ("u1" if release == "ml-100k" else "holdout")
    config = _make_movielens_config(release, split, test_per_user, order, seed, like_threshold,
                                    validation_per_user)
    # TFDS accepts a predefined config only as the very object the builder class holds
    for predefined in MovieLensRatings.BUILDER_CONFIGS:
        if predefined.name == config.name:
            return predefined
    return config


def _make_movielens_config(release, split, test_per_user, order, seed, like_threshold,
                           validation_per_user=5):
    movielens.get_release(release)
    if validation_per_user < 1:
        raise MovieLensError(f"validation_per_user must be at least 1, got {validation_per_user}")
    if split == "holdout":
        if order not in SPLIT_ORDERS:
            raise MovieLensError(f"order must be one of {', '.join(SPLIT_ORDERS)}, got {order!r}")
        if test_per_user < 1:
            raise MovieLensError(f"test_per_user must be at least 1, got {test_per_user}")
        name = f"{release}-holdout{test_per_user}-{order}"
        if order == "random":
            name += f"-seed{seed}"
    elif split in movielens.CANONICAL_SPLITS:
        if release != "ml-100k":
            raise MovieLensError(
                f"split {split!r} exists only for ml-100k; use the holdout split for {release}")
        name = f"{release}-{split}"
    else:
        raise MovieLensError(
            f"unknown split {split!r}; choose one of {', '.join(movielens.CANONICAL_SPLITS)} or holdout")
    if like_threshold != 3.0:
        name += f"-like{like_threshold:g}"
    if validation_per_user != 5:
        name += f"-val{validation_per_user}"
    return MovieLensConfig(
        name=name, release=release, split=split, test_per_user=test_per_user, order=order,
        seed=seed, like_threshold=like_threshold, validation_per_user=validation_per_user,
        description=f"MovieLens {release}, split {split}, like = rating >= {like_threshold:g}")


_RATING_FEATURES = {
    "movies": tfds.features.Tensor(shape=(None,), dtype=np.int32),
    "labels": tfds.features.Tensor(shape=(None,), dtype=np.int32),
    "ratings": tfds.features.Tensor(shape=(None,), dtype=np.float32),
}


class MovieLensRatings(tfds.core.GeneratorBasedBuilder):
    """MovieLens ratings per user as sparse like/dislike examples."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "One sparse example per user; test split carries training ratings as input.",
                     "2.0.0": "A validation split carved from the training ratings."}
    BUILDER_CONFIGS = [_make_movielens_config("ml-100k", split, 10, "random", 0, 3.0)
                       for split in movielens.CANONICAL_SPLITS]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass the MovieLens directory (the unpacked GroupLens zip, e.g. ml-100k/ with u.data, "
        "or its parent) as the manual directory; rbm-prepare --download fetches it.")

    def _info(self):
        features = {"user_id": np.int64}
        for side in ("input", "target"):
            features.update({f"{side}_{name}": feature for name, feature in _RATING_FEATURES.items()})
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(),
            homepage="https://grouplens.org/datasets/movielens/",
            citation="F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: "
                     "History and Context. ACM TiiS 5, 4, Article 19.")

    def _split_generators(self, dl_manager):
        config = self.builder_config
        release = movielens.get_release(config.release)
        raw_dir = dl_manager.manual_dir
        # every rated movie gets an index, whichever split its ratings fall in
        ratings = movielens.load_ratings(raw_dir, release)
        if config.split == "holdout":
            train, test = movielens.holdout_split(
                ratings, config.test_per_user, order=config.order, seed=config.seed)
        else:
            train, test = movielens.canonical_split(raw_dir, release, config.split)
        if len(test) == 0:
            raise MovieLensError(f"split {config.name} has no test ratings")
        # canonical splits have no order of their own: their validation ratings are random
        fit, validation = movielens.holdout_split(
            train, config.validation_per_user, seed=config.seed,
            order=config.order if config.split == "holdout" else "random")
        if len(validation) == 0:
            raise MovieLensError(f"split {config.name} has no validation ratings: no user has more "
                                 f"than {2 * config.validation_per_user} training ratings")

        movie_ids = np.unique(ratings["movie"].to_numpy())
        titles = movielens.load_titles(raw_dir, release)
        parts = {"train": fit, "validation": validation, "test": test}
        labels = {name: movielens.like_labels(part["rating"].to_numpy(), config.like_threshold)
                  for name, part in parts.items()}
        self.info.metadata.update({
            "release": config.release,
            "split": config.split,
            "like_threshold": config.like_threshold,
            "num_movies": int(len(movie_ids)),
            "movie_ids": [int(m) for m in movie_ids],
            "movie_titles": [titles.get(int(m), f"movie {int(m)}") for m in movie_ids],
            "raw_fingerprint": movielens.raw_fingerprint(raw_dir, release, config.split),
        })
        for name, part in parts.items():
            self.info.metadata.update({
                f"num_{name}_users": int(part["user"].nunique()),
                f"num_{name}_ratings": int(len(part)),
                f"{name}_like_rate": float(labels[name].mean()),
            })
        by_user = {name: _per_user(part, labels[name], movie_ids) for name, part in parts.items()}
        all_train = dict(by_user["train"])
        for user, held in by_user["validation"].items():
            # a test prediction may use every training rating, the validation ones included
            all_train[user] = _concatenate(all_train.get(user), held)
        return {
            "train": self._generate_examples(by_user["train"], by_user["train"]),
            "validation": self._generate_examples(by_user["train"], by_user["validation"]),
            "test": self._generate_examples(all_train, by_user["test"]),
        }

    def _generate_examples(self, inputs_by_user, targets_by_user):
        empty = {name: np.zeros([0], feature.np_dtype) for name, feature in _RATING_FEATURES.items()}
        for user_id, targets in targets_by_user.items():
            inputs = inputs_by_user.get(user_id, empty)
            example = {"user_id": user_id}
            example.update({f"input_{name}": value for name, value in inputs.items()})
            example.update({f"target_{name}": value for name, value in targets.items()})
            yield int(user_id), example


def _concatenate(first, second):
    """Two users' {"movies", "labels", "ratings"} as one (either may be None)."""
    if first is None:
        return second
    return {key: np.concatenate([first[key], second[key]]) for key in first}


def _per_user(table, labels, movie_ids):
    """{user_id: {"movies": indices, "labels", "ratings"}} with movie ids mapped to 0..n-1."""
    order = np.argsort(table["user"].to_numpy(), kind="stable")
    users = table["user"].to_numpy()[order]
    movies = np.searchsorted(movie_ids, table["movie"].to_numpy()[order]).astype(np.int32)
    ratings = table["rating"].to_numpy()[order].astype(np.float32)
    labels = np.asarray(labels)[order].astype(np.int32)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    return {
        int(users[start]): {"movies": movies[start:end], "labels": labels[start:end],
                            "ratings": ratings[start:end]}
        for start, end in zip(starts, ends)
    }
