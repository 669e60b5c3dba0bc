"""Star ratings per user, in memory: what rating and ranking recommenders train and are scored on.

A `RatingPart` is one part of a prepared split as sparse rows, one per user: the ratings a
model may see (``inputs``) and those it is scored on (``targets``), raw star values kept.

    part = rating_part(data.test)          # from a MovieLensPart, read once and cached
    for batch in user_batches(part, 256):  # dense [users, num_movies] stars, 0 = not rated
        batch.user_ids, batch.inputs, batch.targets

Two evaluation protocols (Liang et al. 2018 name them):

* weak generalisation: the prepared split's own parts (`rating_part(data.train)`, ...): every
  test user is also a training user, with held-out ratings;
* strong generalisation: `hold_out_users(data)` keeps two seeded sets of users out of training
  altogether; a model scores each of them from 80% of their ratings (the "fold-in"), and is
  measured on the other 20%. Only the split's training ratings are used, never its test ones.

Dense batches cost num_movies floats per user; everything else here is proportional to the
number of ratings.
"""

import dataclasses
import functools

import numpy as np

MISSING = 0.0  # a star value no release uses: "not rated" in dense batches


@dataclasses.dataclass(frozen=True, eq=False)
class SparseRows:
    """Per-row (movie index, star rating) lists in compressed form: row r holds
    ``movies[indptr[r]:indptr[r + 1]]`` and the same slice of ``ratings``."""

    indptr: np.ndarray   # int64 [rows + 1]
    movies: np.ndarray   # int32 [entries]
    ratings: np.ndarray  # float32 [entries]

    @classmethod
    def from_lists(cls, movies, ratings):
        lengths = np.array([len(m) for m in movies], np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        join = lambda arrays, dtype: (np.concatenate(arrays).astype(dtype) if len(arrays)
                                      else np.zeros([0], dtype))
        return cls(indptr, join(movies, np.int32), join(ratings, np.float32))

    @property
    def num_rows(self):
        return len(self.indptr) - 1

    @property
    def num_entries(self):
        return len(self.movies)

    def row_of_entries(self):
        """The row of every entry: int64 [entries]."""
        return np.repeat(np.arange(self.num_rows), np.diff(self.indptr))

    def row(self, index):
        start, end = self.indptr[index], self.indptr[index + 1]
        return self.movies[start:end], self.ratings[start:end]

    def take(self, rows):
        """The rows `rows` (in that order) as new SparseRows."""
        pairs = [self.row(r) for r in rows]
        return SparseRows.from_lists([m for m, _ in pairs], [r for _, r in pairs])

    def dense(self, rows, num_movies):
        """float32 [len(rows), num_movies] of star ratings, MISSING where not rated."""
        out = np.full([len(rows), num_movies], MISSING, np.float32)
        for position, row in enumerate(rows):
            movies, ratings = self.row(row)
            out[position, movies] = ratings
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class RatingPart:
    """One part: ``user_ids[r]`` sees ``inputs`` row r and is scored on ``targets`` row r.

    A rating >= ``like_threshold`` is a like. ``name`` says where it comes from.
    """

    name: str
    num_movies: int
    like_threshold: float
    user_ids: np.ndarray  # int64 [users]
    inputs: SparseRows
    targets: SparseRows

    @property
    def num_users(self):
        return len(self.user_ids)

    def rating_scale(self):
        """(lowest, highest) star value among the inputs: predictions are clipped to it."""
        return float(self.inputs.ratings.min()), float(self.inputs.ratings.max())


def _threshold_of(part):
    config = getattr(part.builder, "builder_config", None)
    return float(getattr(config, "like_threshold", 3.0))


@functools.lru_cache(maxsize=16)
def _read_part(part):
    import tensorflow as tf

    tensors = part.ragged_tensors  # read once, in the records' order
    user_ids = tensors["user_id"].numpy()
    order = np.argsort(user_ids, kind="stable")  # file order is not user order

    def rows(side):
        movies = tf.gather(tensors[f"{side}_movies"], order)
        return SparseRows(movies.row_splits.numpy().astype(np.int64), movies.values.numpy().astype(np.int32),
                          tf.gather(tensors[f"{side}_ratings"], order).values.numpy().astype(np.float32))

    return RatingPart(part.name, part.num_movies, _threshold_of(part), user_ids[order].astype(np.int64),
                      rows("input"), rows("target"))


def rating_part(part):
    """`part` as a `RatingPart`: a MovieLensPart is read once (cached), a RatingPart is itself.

    Users come in increasing id order.
    """
    return part if isinstance(part, RatingPart) else _read_part(part)


def like_labels(stars, like_threshold):
    """Dense stars (MISSING = not rated) as {-1 missing, 0 dislike, 1 like}: float32."""
    return np.where(stars == MISSING, -1.0, (stars >= like_threshold).astype(np.float32)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class UserBatch:
    user_ids: np.ndarray  # int64 [batch]
    inputs: np.ndarray    # float32 [batch, num_movies], stars, MISSING where not rated
    targets: np.ndarray   # float32 [batch, num_movies], stars, MISSING where not held out


def user_batches(part, batch_size=256):
    """Dense `UserBatch`es of a part's users, in user order."""
    part = rating_part(part)
    for start in range(0, part.num_users, batch_size):
        rows = range(start, min(start + batch_size, part.num_users))
        yield UserBatch(part.user_ids[start:start + batch_size],
                        part.inputs.dense(rows, part.num_movies),
                        part.targets.dense(rows, part.num_movies))


def all_training_ratings(data):
    """{user_id: (movies, ratings)}: every training rating of each user of `data` (a
    MovieLensData): the training part's inputs with the user's validation ratings added."""
    train, validation = rating_part(data.train), rating_part(data.validation)
    ratings = {int(user): train.inputs.row(row) for row, user in enumerate(train.user_ids)}
    for row, user in enumerate(validation.user_ids):
        movies, stars = validation.targets.row(row)
        kept = ratings.get(int(user), (np.zeros([0], np.int32), np.zeros([0], np.float32)))
        ratings[int(user)] = (np.concatenate([kept[0], movies]), np.concatenate([kept[1], stars]))
    return ratings


@dataclasses.dataclass(frozen=True)
class UserHoldout:
    """Strong generalisation: ``train`` (the users left in, inputs = targets = their ratings),
    ``validation`` and ``test`` (users kept out: inputs their fold-in ratings, targets the rest)."""

    train: RatingPart
    validation: RatingPart
    test: RatingPart

    @property
    def num_movies(self):
        return self.train.num_movies


def hold_out_users(data, fraction=0.1, seed=0, fold_in=0.8, min_ratings=5):
    """Keep two disjoint, seeded sets of users out of `data`'s training ratings.

    `fraction` of the users with at least `min_ratings` training ratings go to validation and
    as many others to test (chosen with `seed`). Each kept-out user's ratings are split at
    random (the same seed): `fold_in` of them are the inputs a model folds the user in from,
    the rest the targets. The other users' ratings, all of them, are the training part. The
    split's test ratings are not read. Returns a `UserHoldout`.
    """
    if not 0.0 < fraction < 0.5:
        raise ValueError(f"fraction must be in (0, 0.5), got {fraction}")
    if not 0.0 < fold_in < 1.0:
        raise ValueError(f"fold_in must be in (0, 1), got {fold_in}")
    ratings = all_training_ratings(data)
    users = np.array(sorted(ratings), np.int64)
    rng = np.random.default_rng(seed)
    eligible = np.array([u for u in users if len(ratings[int(u)][0]) >= min_ratings], np.int64)
    count = int(round(fraction * len(users)))
    if count < 1 or 2 * count >= len(eligible):
        raise ValueError(f"fraction {fraction} of {len(users)} users leaves no users to hold out "
                         f"or to train on")
    chosen = rng.permutation(eligible)[:2 * count]
    held = {"validation": np.sort(chosen[:count]), "test": np.sort(chosen[count:])}
    kept = np.setdiff1d(users, chosen)
    threshold = _threshold_of(data.train)

    def fold(name, part_users):
        inputs, targets = ([], []), ([], [])
        for user in part_users:
            movies, stars = ratings[int(user)]
            order = rng.permutation(len(movies))
            cut = max(1, min(len(movies) - 1, int(round(fold_in * len(movies)))))
            for side, chosen_entries in ((inputs, order[:cut]), (targets, order[cut:])):
                side[0].append(movies[np.sort(chosen_entries)])
                side[1].append(stars[np.sort(chosen_entries)])
        return RatingPart(name, data.num_movies, threshold, part_users,
                          SparseRows.from_lists(*inputs), SparseRows.from_lists(*targets))

    train_rows = SparseRows.from_lists([ratings[int(u)][0] for u in kept],
                                       [ratings[int(u)][1] for u in kept])
    return UserHoldout(
        train=RatingPart("train", data.num_movies, threshold, kept, train_rows, train_rows),
        validation=fold("validation", held["validation"]), test=fold("test", held["test"]))
