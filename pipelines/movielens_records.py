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
        movie_ids = np.unique(ratings["movie"].to_numpy())
        if config.split == "holdout":
            train, test = movielens.holdout_split(
                ratings, config.test_per_user, order=config.order, seed=config.seed)
        else:
            train, test = movielens.canonical_split(raw_dir, release, config.split)
        # each table is let go as soon as it is split: ML-25M's are 0.5 GB apiece
        del ratings
        if len(test) == 0:
            raise MovieLensError(f"split {config.name} has no test ratings")
        # canonical splits have no order of their own: their validation ratings are random
        fit, validation = movielens.holdout_split(
            train, config.validation_per_user, seed=config.seed,
            order=config.order if config.split == "holdout" else "random")
        del train
        if len(validation) == 0:
            raise MovieLensError(f"split {config.name} has no validation ratings: no user has more "
                                 f"than {2 * config.validation_per_user} training ratings")
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
        movie_index = _MovieIndex(movie_ids)
        del fit, validation, test
        by_user = {}
        for name in list(parts):
            by_user[name] = _UserRows.group(parts.pop(name), labels.pop(name), movie_index)
        return {
            "train": self._generate_examples([by_user["train"]], by_user["train"]),
            "validation": self._generate_examples([by_user["train"]], by_user["validation"]),
            # a test prediction may use every training rating, the validation ones included
            "test": self._generate_examples([by_user["train"], by_user["validation"]], by_user["test"]),
        }

    def _generate_examples(self, input_parts, targets):
        """One example per user of `targets`: inputs are the user's rows of each of `input_parts`, in turn."""
        empty = {name: np.zeros([0], feature.np_dtype) for name, feature in _RATING_FEATURES.items()}
        input_slices = [part.slices_of(targets.user_ids) for part in input_parts]
        for user_id, target, *sources in zip(targets.user_ids.tolist(), targets.slices(), *input_slices):
            found = [part.columns_of(rows) for part, rows in zip(input_parts, sources) if rows is not None]
            if len(found) > 1:
                inputs = {name: np.concatenate([columns[name] for columns in found]) for name in empty}
            else:
                inputs = found[0] if found else empty
            example = {"user_id": user_id}
            example.update({f"input_{name}": value for name, value in inputs.items()})
            example.update({f"target_{name}": value for name, value in targets.columns_of(target).items()})
            yield user_id, example


class _MovieIndex:
    """Movie ids to their index 0..n-1 in the sorted `movie_ids`: a lookup table where ids are small."""

    def __init__(self, movie_ids):
        self.movie_ids = movie_ids
        self.table = None
        # MovieLens ids stay below a few hundred thousand: a table is a few MB and no search
        if len(movie_ids) and movie_ids[0] >= 0 and movie_ids[-1] < 2**24:
            self.table = np.zeros(int(movie_ids[-1]) + 1, np.int32)
            self.table[movie_ids] = np.arange(len(movie_ids), dtype=np.int32)

    def __call__(self, movies):
        if self.table is None:
            return np.searchsorted(self.movie_ids, movies).astype(np.int32)
        return self.table[movies]


@dataclasses.dataclass
class _UserRows:
    """A table's ratings grouped by user: one array per feature, each user's rows a contiguous slice."""

    user_ids: np.ndarray  # sorted
    starts: np.ndarray
    ends: np.ndarray
    columns: dict  # {"movies": movie indices 0..n-1, "labels", "ratings"}

    @classmethod
    def group(cls, table, labels, movie_index):
        """Rows grouped by user, each user's in table order, movies as their `movie_index`."""
        users = table["user"].to_numpy()
        # MovieLens files come sorted by user, which this stable sort finds in one pass
        order = np.argsort(users, kind="stable")
        users = users[order]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, int)
        columns = {
            "movies": movie_index(table["movie"].to_numpy()[order]),
            "labels": np.asarray(labels)[order].astype(np.int32),
            "ratings": table["rating"].to_numpy()[order].astype(np.float32),
        }
        return cls(users[starts].astype(np.int64), starts, np.r_[starts[1:], len(users)], columns)

    def slices(self):
        return map(slice, self.starts.tolist(), self.ends.tolist())

    def slices_of(self, user_ids):
        """Each of `user_ids`' slice of rows, None for a user without any."""
        if len(self.user_ids) == 0:
            return [None] * len(user_ids)
        found = np.minimum(np.searchsorted(self.user_ids, user_ids), len(self.user_ids) - 1)
        present = self.user_ids[found] == user_ids
        return [slice(start, end) if here else None for start, end, here in
                zip(self.starts[found].tolist(), self.ends[found].tolist(), present.tolist())]

    def columns_of(self, rows):
        return {name: column[rows] for name, column in self.columns.items()}
