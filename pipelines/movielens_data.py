"""A prepared MovieLens split as one handle: its movies, and its train and test data.

    data = prepare_movielens("ml-100k", raw_dir, data_dir, split="u1")   # writes the records once
    data = load_movielens(data_dir, "ml-100k", split="u1")               # records already written
    data.num_movies, data.movie_ids, data.movie_titles
    for batch in data.train.dataset(batch_size=32, shuffle_seed=1): ...  # {"user_id", "inputs", "targets"}

    for batch in data.train.ragged_dataset(batch_size=32, shuffle_seed=1): ...  # ragged ratings

`dataset` gives dense float32 [batch, num_movies] vectors in {-1 (missing), 0 (dislike),
1 (like)}, densified on the fly from the sparse records: simple, and cheap for a small
catalogue. `ragged_dataset` keeps every user's ratings as they are stored (variable length),
so that a model's work follows the number of ratings, not users x movies. The same graph runs
on CPU and GPU; nothing here names a device.
"""

import dataclasses
import functools
import pathlib
import shutil

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import movielens
from pipelines import movielens_records
from pipelines.downloads import build_tfds_builder
from pipelines.downloads import manual_download_config
from pipelines.errors import MovieLensError

MISSING = -1.0
RAGGED_FEATURES = ("user_id", "input_movies", "input_labels", "input_ratings", "target_movies",
                   "target_labels", "target_ratings")


def densify(movies, values, num_movies):
    """A user's sparse (movie index, value) pairs as a float vector with -1 where missing."""
    return tf.tensor_scatter_nd_update(
        tf.fill([num_movies], MISSING), tf.expand_dims(movies, -1), tf.cast(values, tf.float32))


class RaggedCases:
    """Batches of a part's cases (users, or movies for `ItemPart`) gathered from its
    `ragged_tensors`, held in memory."""

    def ragged_dataset(self, batch_size, shuffle_seed=None, max_users=None):
        """Batches of users as stored: {"user_id": [batch], "input_movies", "input_labels",
        "target_movies", "target_labels": int32, "input_ratings", "target_ratings": float32
        stars; ragged [batch, (ratings)]}.

        ``input_*`` are the ratings the model may see, ``target_*`` the ratings to predict
        (the same ratings on train). Every user is shuffled with every other with
        ``shuffle_seed`` when it is given (in the records' order otherwise). ``max_users``
        keeps the first that many users of the records' order, a fixed sample (TFDS orders a
        split's examples by a hash of their key). Batches are gathered from `ragged_tensors`.
        """
        return ragged_batches(self.ragged_tensors, batch_size, shuffle_seed, max_users)

    def case_batches(self, batch_size, shuffle_seed=None, max_users=None):
        """The users of each batch of `ragged_dataset`, as indices [batch] into `ragged_tensors`
        (read their ratings with `gather_cases`)."""
        return case_batches(int(self.ragged_tensors["user_id"].shape[0]), batch_size, shuffle_seed,
                            max_users)


@dataclasses.dataclass(frozen=True)
class MovieLensPart(RaggedCases):
    """The train or the test part of a prepared split."""

    builder: tfds.core.DatasetBuilder
    name: str  # "train", "validation" or "test"

    @property
    def num_movies(self):
        return int(self.builder.info.metadata["num_movies"])

    @property
    def num_users(self):
        return int(self.builder.info.metadata[f"num_{self.name}_users"])

    @property
    def num_ratings(self):
        return int(self.builder.info.metadata[f"num_{self.name}_ratings"])

    @property
    def like_rate(self):
        return float(self.builder.info.metadata[f"{self.name}_like_rate"])

    @property
    def train_like_rate(self):
        """The like rate of the split's training ratings: what a baseline may know."""
        return float(self.builder.info.metadata["train_like_rate"])

    def sparse_dataset(self, batch_size=None):
        """The stored per-user examples as they are: user_id, input_/target_ movies, labels,
        ratings (variable length), in file order; padded batches when `batch_size` is given."""
        dataset = self.builder.as_dataset(split=self.name)
        return dataset if batch_size is None else dataset.padded_batch(batch_size)

    @functools.cached_property
    def ragged_tensors(self):
        """The whole part in memory, read once: {feature: [users, (ratings)] ragged} and
        ``user_id`` [users], in the records' order. The records are parsed thousands at a time
        (`tf.io.parse_example`) rather than decoded one example at a time: on ML-25M's shape
        that is the difference between seconds and minutes. A part's ratings are a few bytes
        each (ML-25M's training part is about 600 MB)."""
        split = self.builder.info.splits[self.name]
        files = [str(pathlib.Path(self.builder.data_dir) / name) for name in split.filenames]
        spec = {"user_id": tf.io.FixedLenFeature([], tf.int64)}
        spec.update({key: tf.io.RaggedFeature(tf.float32 if key.endswith("_ratings") else tf.int64,
                                              row_splits_dtype=tf.int64)
                     for key in RAGGED_FEATURES if key != "user_id"})
        batches = [tf.io.parse_example(serialized, spec)
                   for serialized in tf.data.TFRecordDataset(files).batch(8192)]
        tensors = {key: tf.concat([batch[key] for batch in batches], axis=0) for key in spec}
        return {key: value if key == "user_id" or key.endswith("_ratings") else tf.cast(value, tf.int32)
                for key, value in tensors.items()}

    def dataset(self, batch_size, shuffle_seed=None):
        """Batches of {"user_id", "inputs", "targets"}: float32 [batch, num_movies] in {-1, 0, 1}.

        ``inputs`` are the ratings the model may see (the user's training ratings), ``targets``
        the ratings to predict (the same ratings on train, the held-out ones on validation and
        test).
        Shuffled with ``shuffle_seed`` when it is given, in file order otherwise.
        """
        num_movies = self.num_movies
        read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed) if shuffle_seed is not None else None
        dataset = self.builder.as_dataset(split=self.name, shuffle_files=shuffle_seed is not None,
                                          read_config=read_config)

        def to_dense(example):
            return {
                "user_id": example["user_id"],
                "inputs": densify(example["input_movies"], example["input_labels"], num_movies),
                "targets": densify(example["target_movies"], example["target_labels"], num_movies),
            }

        if shuffle_seed is not None:
            # sparse examples are small: shuffle them before they are densified
            dataset = dataset.shuffle(4096, seed=shuffle_seed, reshuffle_each_iteration=True)
        dataset = dataset.map(to_dense, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class MovieLensData:
    """One prepared split: ``num_movies``, ``movie_ids``, ``movie_titles`` and its parts
    ``train``, ``validation`` and ``test``.

    ``movie_ids[i]`` is the release's own id of the movie at model index i.
    """

    def __init__(self, builder, data_dir):
        self.builder = builder
        self.data_dir = pathlib.Path(data_dir).resolve()
        self.config = builder.builder_config
        self.train = MovieLensPart(builder, "train")
        self.validation = MovieLensPart(builder, "validation")
        self.test = MovieLensPart(builder, "test")

    @property
    def name(self):
        return self.config.name

    @property
    def metadata(self):
        return self.builder.info.metadata

    @property
    def num_movies(self):
        return int(self.metadata["num_movies"])

    @property
    def movie_ids(self):
        return [int(movie_id) for movie_id in self.metadata["movie_ids"]]

    @property
    def movie_titles(self):
        return list(self.metadata["movie_titles"])

    @property
    def like_threshold(self):
        return float(self.config.like_threshold)

    def split_settings(self):
        """The arguments of `load_movielens` that name this split (stored with a run)."""
        return {"release": self.config.release, "split": self.config.split,
                "test_per_user": self.config.test_per_user, "order": self.config.order,
                "split_seed": self.config.seed, "like_threshold": self.config.like_threshold,
                "validation_per_user": self.config.validation_per_user}

    def user_ratings(self, user_id):
        """The user's training ratings as a dense {-1, 0, 1} vector, or None for an unknown user."""
        # no automatic cache: it would be read only up to the user and then thrown away
        found = self.builder.as_dataset(
            split="train", read_config=tfds.ReadConfig(try_autocache=False)).filter(
            lambda example: example["user_id"] == user_id).take(1)
        for example in found:
            return densify(example["input_movies"], example["input_labels"], self.num_movies)
        return None


def _builder(data_dir, release, split, test_per_user, order, split_seed, like_threshold,
             validation_per_user):
    config = movielens_records.movielens_config(
        release, split, test_per_user=test_per_user, order=order, seed=split_seed,
        like_threshold=like_threshold, validation_per_user=validation_per_user)
    return build_tfds_builder(movielens_records.MovieLensRatings, config=config, data_dir=str(data_dir))


def _is_prepared(builder):
    return pathlib.Path(builder.data_dir).is_dir() and bool(builder.info.splits)


def load_movielens(data_dir, release="ml-100k", split=None, test_per_user=10, order="random",
                   split_seed=0, like_threshold=3.0, validation_per_user=5):
    """The split whose records `prepare_movielens` wrote under `data_dir`.

    Raises MovieLensError (one line, telling how to prepare them) when they are not there.
    """
    builder = _builder(data_dir, release, split, test_per_user, order, split_seed, like_threshold,
                       validation_per_user)
    if not _is_prepared(builder):
        config = builder.builder_config
        raise MovieLensError(
            f"no prepared {config.name} records under {data_dir}; prepare them first "
            f"(rbm-prepare --release {config.release} --split {config.split} --data-dir {data_dir})")
    return MovieLensData(builder, data_dir)


def prepare_movielens(release, raw_dir, data_dir, split=None, test_per_user=10, order="random",
                      split_seed=0, like_threshold=3.0, validation_per_user=5, download=False,
                      log=None):
    """Write the records of a split from the raw files in `raw_dir`; returns its `MovieLensData`.

    Records already written from the same raw files are reused; records written from raw
    files that have changed since (size or content) are written again. `download` fetches the
    official release zip into `raw_dir` first and checks it against its checksum.
    """
    if download:
        pathlib.Path(raw_dir).mkdir(parents=True, exist_ok=True)
        if log:
            log(f"downloading {movielens.get_release(release).url} into {raw_dir}")
        movielens.download_release(movielens.get_release(release), raw_dir)
    split_args = (release, split, test_per_user, order, split_seed, like_threshold, validation_per_user)
    builder = _builder(data_dir, *split_args)
    # found before TFDS starts, so a wrong directory is a readable error, not a TFDS traceback
    release_dir = movielens.find_release_dir(raw_dir, movielens.get_release(release))
    if _is_prepared(builder):
        stored = builder.info.metadata.get("raw_fingerprint")
        current = movielens.raw_fingerprint(release_dir, movielens.get_release(release),
                                            builder.builder_config.split)
        if stored != current:
            if log:
                log(f"the raw files in {release_dir} differ from those {builder.data_dir} was "
                    "written from: writing the records again")
            shutil.rmtree(builder.data_dir)
            builder = _builder(data_dir, *split_args)
    builder.download_and_prepare(
        download_config=manual_download_config(release_dir))
    return MovieLensData(builder, data_dir)


class ItemPart(RaggedCases):
    """A part of a split seen from the movies' side: one example per movie, its ratings by
    users as the inputs and its held-out ratings as the targets, in `MovieLensPart`'s ragged
    batches (``user_id`` is then the movie index, ``*_movies`` hold user indices). Item-based
    models (one case per movie) train and are measured on these.

    ``inputs``: the parts whose targets are every movie's visible ratings (the training part
    for training and validation; training and validation for test); ``target``: the part
    whose targets are predicted (None: the inputs themselves, as for training). Users are
    indexed by their position in ``user_ids``, every user with a training rating.
    """

    def __init__(self, inputs, target=None):
        users, movies, stars, labels = (np.concatenate(column) for column in zip(
            *(flat_ratings(part.ragged_tensors, "target") for part in inputs)))
        self.user_ids = np.unique(users)
        self.num_movies = inputs[0].num_movies
        self.train_like_rate = inputs[0].train_like_rate
        self.name = "item-" + (target.name if target is not None else inputs[0].name)
        self.num_users = self.num_movies  # the cases: one per movie
        input_rows = self._by_movie(np.searchsorted(self.user_ids, users), movies, stars, labels)
        if target is None:
            target_rows = input_rows
        else:
            users, movies, stars, labels = flat_ratings(target.ragged_tensors, "target")
            known = np.isin(users, self.user_ids)
            target_rows = self._by_movie(np.searchsorted(self.user_ids, users[known]), movies[known],
                                         stars[known], labels[known])
        self.ragged_tensors = {"user_id": tf.range(self.num_movies, dtype=tf.int64)}
        for side, (indices, stars, labels) in (("input", input_rows), ("target", target_rows)):
            self.ragged_tensors[f"{side}_movies"] = indices
            self.ragged_tensors[f"{side}_ratings"] = stars
            self.ragged_tensors[f"{side}_labels"] = labels

    def _by_movie(self, user_index, movies, stars, labels):
        order = np.lexsort((user_index, movies))
        splits = np.concatenate([[0], np.cumsum(np.bincount(movies, minlength=self.num_movies))])
        return ragged_ratings(splits, user_index[order], stars[order], labels[order])


class UserPart(RaggedCases):
    """A part of held-out users (`pipelines.rating_parts.hold_out_users`, a RatingPart) as the
    ragged cases of a `MovieLensPart`, so that the like/dislike RBM trains on it and is
    measured on it as on a prepared split. ``train_like_rate``: the like rate of the training
    ratings (the majority baseline's label)."""

    def __init__(self, part, train_like_rate):
        self.name, self.num_movies, self.num_users = part.name, part.num_movies, part.num_users
        self.user_ids = part.user_ids
        self.train_like_rate = float(train_like_rate)
        self.ragged_tensors = {"user_id": tf.constant(part.user_ids, tf.int64)}
        for side, rows in (("input", part.inputs), ("target", part.targets)):
            (self.ragged_tensors[f"{side}_movies"], self.ragged_tensors[f"{side}_ratings"],
             self.ragged_tensors[f"{side}_labels"]) = ragged_ratings(
                rows.indptr, rows.movies, rows.ratings, rows.ratings >= part.like_threshold)


def ragged_ratings(splits, indices, stars, labels):
    """(indices int32, stars float32, like labels int32), each ragged by the row `splits`: the
    ratings of a part's cases as its `ragged_tensors` hold them."""
    ragged = lambda values: tf.RaggedTensor.from_row_splits(values, np.asarray(splits, np.int64))
    return (ragged(np.asarray(indices, np.int32)), ragged(np.asarray(stars, np.float32)),
            ragged(np.asarray(labels, np.int32)))


def case_batches(count, batch_size, shuffle_seed=None, max_users=None):
    """Batches [batch] of case indices 0..count-1: the first `max_users` cases when given,
    all shuffled with `shuffle_seed` when given, in order otherwise."""
    if max_users is not None:
        count = min(count, int(max_users))
    cases = tf.data.Dataset.range(count)
    if shuffle_seed is not None:
        cases = cases.shuffle(count, seed=shuffle_seed, reshuffle_each_iteration=False)
    return cases.batch(batch_size)


def ragged_batches(tensors, batch_size, shuffle_seed=None, max_users=None):
    """Batches of the cases of `tensors` ({feature: [cases, ...]}, ragged or not) gathered
    from memory, the cases of `case_batches`."""
    cases = case_batches(int(tensors["user_id"].shape[0]), batch_size, shuffle_seed, max_users)
    return cases.map(
        lambda chosen: {key: tf.gather(value, chosen) for key, value in tensors.items()},
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def gather_cases(row_splits, chosen):
    """(rows, places) of cases `chosen` [batch] of a ragged [cases, (n)] tensor with these
    ``row_splits``: the flat positions of their values in its ``values``, case after case, and
    the row of each in the batch (int32) -- what ``tf.gather(ragged, chosen)`` holds, read
    without building it: a ragged gather costs several times more, which shows when a model's
    step is quick."""
    starts = tf.gather(row_splits, chosen)
    places = tf.ragged.range(starts, tf.gather(row_splits, chosen + 1))
    return tf.cast(places.value_rowids(), tf.int32), places.values


def flat_ratings(tensors, side):
    """(users, movies, stars, like labels) of every ``side`` ("input" or "target") rating in
    `tensors` (`MovieLensPart.ragged_tensors`), as flat numpy arrays."""
    movies = tensors[f"{side}_movies"]
    return (np.repeat(tensors["user_id"].numpy(), movies.row_lengths().numpy()), movies.values.numpy(),
            tensors[f"{side}_ratings"].values.numpy(), tensors[f"{side}_labels"].values.numpy())
