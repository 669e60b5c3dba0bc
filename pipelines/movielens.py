"""MovieLens raw files: the releases, their readers, train/test splits and download.

Every GroupLens release is read into one ratings table with the columns ``user``, ``movie``,
``rating`` and ``timestamp``:

* ML-100K ``u.data`` (tab separated, no header) and its canonical ``u1``..``u5``, ``ua``,
  ``ub`` ``.base``/``.test`` splits;
* ML-1M and ML-10M ``ratings.dat`` (``::`` separated);
* ``ratings.csv`` of ML-20M and the newer releases (header, half stars).

A malformed line or a rating outside the release's scale is a `MovieLensError` naming the file
and the line, never a parser traceback. Clean files are parsed straight into numeric columns
(ML-25M in seconds, about 1 GB at the peak); only a file that fails that is read again field
by field to find its first bad line.
"""

import dataclasses
import io
import os
import pathlib
import re
import shutil
import tempfile
import urllib.error
import warnings
import zipfile

import numpy as np
import pandas as pd

from pipelines import downloads
from pipelines.errors import MovieLensError

RATING_COLUMNS = ("user", "movie", "rating", "timestamp")
CANONICAL_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
DOWNLOAD_ROOT = "https://files.grouplens.org/datasets/movielens/"


@dataclasses.dataclass(frozen=True)
class Release:
    """One GroupLens release: where its files are and how they are written.

    ``directory`` is the folder the official zip unpacks to. ``sha256``/``size`` are the
    published checksum and size of the zip where they are fixed; releases that change over
    time (``ml-latest``) are checked against the ``.md5`` file GroupLens publishes beside them.
    """

    name: str
    directory: str
    ratings_file: str
    ratings_format: str  # "tab", "colons" or "csv"
    titles_file: str
    half_stars: bool
    sha256: str | None = None
    size: int | None = None

    @property
    def url(self):
        return f"{DOWNLOAD_ROOT}{self.name}.zip"

    @property
    def allowed_ratings(self):
        steps = np.arange(1, 11) / 2.0 if self.half_stars else np.arange(1, 6, dtype=float)
        return steps


RELEASES = {release.name: release for release in (
    Release("ml-100k", "ml-100k", "u.data", "tab", "u.item", half_stars=False,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", size=4924029),
    Release("ml-1m", "ml-1m", "ratings.dat", "colons", "movies.dat", half_stars=False,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", size=5917549),
    Release("ml-10m", "ml-10M100K", "ratings.dat", "colons", "movies.dat", half_stars=True),
    Release("ml-20m", "ml-20m", "ratings.csv", "csv", "movies.csv", half_stars=True,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3", size=198702078),
    Release("ml-25m", "ml-25m", "ratings.csv", "csv", "movies.csv", half_stars=True,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", size=261978986),
    Release("ml-32m", "ml-32m", "ratings.csv", "csv", "movies.csv", half_stars=True),
    Release("ml-latest", "ml-latest", "ratings.csv", "csv", "movies.csv", half_stars=True),
    Release("ml-latest-small", "ml-latest-small", "ratings.csv", "csv", "movies.csv", half_stars=True,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", size=978202),
)}


def get_release(name):
    """The `Release` called `name`, or a MovieLensError listing the known ones."""
    try:
        return RELEASES[name]
    except KeyError:
        raise MovieLensError(
            f"unknown MovieLens release {name!r}; choose one of {', '.join(RELEASES)}") from None


# -- finding the files ---------------------------------------------------------------------------

def find_release_dir(raw_dir, release):
    """The directory holding `release`'s ratings file: `raw_dir` itself or its release folder."""
    raw_dir = pathlib.Path(raw_dir)
    if not raw_dir.is_dir():
        raise MovieLensError(f"{raw_dir} is not a directory; pass the unpacked {release.name} "
                             f"directory as raw_dir (or download it)")
    candidates = [raw_dir, raw_dir / release.directory]
    for candidate in candidates:
        if (candidate / release.ratings_file).is_file():
            return candidate
    if not any(raw_dir.iterdir()):
        raise MovieLensError(f"{raw_dir} is empty; it should hold the {release.name} files "
                             f"(or download them)")
    raise MovieLensError(f"no {release.ratings_file} in {raw_dir} or {raw_dir / release.directory}: "
                         f"is this the {release.name} directory?")


# -- reading ---------------------------------------------------------------------------------------

# columns of the ratings table; ids fit int32 in every release, timestamps need int64
RATING_DTYPES = {"user": np.int32, "movie": np.int32, "rating": np.float32, "timestamp": np.int64}
CSV_HEADER = ["userId", "movieId", "rating", "timestamp"]
# rows per chunk of the slow, line-checking reader: bounds its memory on the largest releases
CHECK_CHUNK_ROWS = 1_000_000


def _read_fast(path, release_format):
    """The ratings table parsed straight into numeric columns, or None if any line is unusual.

    None sends the file to `_read_checked`, which finds and reports the first bad line; a file
    this accepts is one that reader accepts too, with the same values.
    """
    options = dict(header=None, names=list(RATING_COLUMNS), dtype=RATING_DTYPES, engine="c",
                   skip_blank_lines=True, index_col=False)
    if release_format == "csv":
        source = path
        options.update(sep=",", skiprows=1)
        with open(path, "rb") as handle:
            if handle.readline().decode("utf-8", "replace").strip().split(",") != CSV_HEADER:
                return None
    elif release_format == "colons":
        # the C parser takes one-character separators only, and splitting on ":" would parse
        # three empty columns: a tab for "::" keeps it at four numeric columns
        data = path.read_bytes()
        if b"\t" in data:
            return None
        source, options["sep"] = io.BytesIO(data.replace(b"::", b"\t")), "\t"
        del data
    else:
        source, options["sep"] = path, "\t"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(source, **options)
    except (ValueError, OverflowError, UnicodeDecodeError, pd.errors.ParserWarning):
        # ParserError is a ValueError: too many fields, a non-number, an empty field
        return None
    return table


def _valid_values(table, release):
    """Whether every rating is a star (or half star) of the release's scale; NaN is not."""
    steps = table["rating"].to_numpy() * 2
    lowest = 1 if release.half_stars else 2
    valid = (steps >= lowest) & (steps <= 10) & (steps == np.round(steps))
    if not release.half_stars:
        valid &= steps % 2 == 0
    return bool(valid.all())


def _read_checked(path, release_format):
    """Raw string columns of a ratings file, CHECK_CHUNK_ROWS rows at a time.

    Yields (values, surplus): values' columns named RATING_COLUMNS, surplus True for the rows
    with something in a field beyond them. A line with too many fields is a MovieLensError.
    """
    path = pathlib.Path(path)
    if release_format == "csv":
        options, first_line, value_columns = dict(sep=",", header=0), 2, [0, 1, 2, 3]
    elif release_format == "colons":
        # "u::m::r::t" split on ":" puts empty fields between the values; the C parser stays fast
        options, first_line, value_columns = dict(sep=":", header=None), 1, [0, 2, 4, 6]
    else:
        options, first_line, value_columns = dict(sep="\t", header=None), 1, [0, 1, 2, 3]
    try:
        chunks = pd.read_csv(path, dtype=str, keep_default_na=False, engine="c",
                             skip_blank_lines=True, chunksize=CHECK_CHUNK_ROWS, **options)
        for table in chunks:
            if release_format == "csv" and list(table.columns[:4]) != CSV_HEADER:
                raise MovieLensError(f"{path}:1: expected the header userId,movieId,rating,timestamp")
            if len(table.columns) <= max(value_columns):
                raise _malformed(path, first_line)
            # what lies outside the value columns (the "::" gaps, surplus fields) must be empty
            extra = [index for index in range(len(table.columns)) if index not in value_columns]
            surplus = (table.iloc[:, extra] != "").any(axis=1).to_numpy(copy=True)
            values = table.iloc[:, value_columns]
            values.columns = list(RATING_COLUMNS)
            yield values, surplus
    except pd.errors.ParserError as error:
        found = re.search(r"Expected \d+ fields in line (\d+)", str(error))
        if found is None:
            raise MovieLensError(f"{path}: not a MovieLens ratings file") from None
        raise _malformed(path, int(found.group(1))) from None
    except pd.errors.EmptyDataError:
        return
    except UnicodeDecodeError as error:
        raise MovieLensError(f"{path}: not a text file ({error.reason})") from None


def _line_text(path, line_number):
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if number == line_number:
                return line.decode("latin-1").rstrip("\r\n")
    return ""


def _line_of_row(path, first_line, row):
    """File line number of data row `row` (from 0), counting the blank lines pandas skipped."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if number >= first_line and line.strip():
                if row == 0:
                    return number
                row -= 1
    return first_line


def _malformed(path, line):
    return MovieLensError(f"{path}:{line}: malformed line {_line_text(path, line)!r}; "
                          "expected user, movie, rating, timestamp")


def _checked_table(path, release):
    """The ratings table read line by line in meaning: every field stripped and checked.

    Slow (every field is a string first), so only files the fast reader refuses come here; it
    raises the MovieLensError naming the first bad line, or returns the table if there is none.
    """
    first_line = 2 if release.ratings_format == "csv" else 1
    parts, offset = [], 0
    for raw, bad in _read_checked(path, release.ratings_format):
        numeric = {name: pd.to_numeric(raw[name].str.strip(), errors="coerce").to_numpy(float)
                   for name in RATING_COLUMNS}
        for name in ("user", "movie", "timestamp"):
            values = numeric[name]
            bad |= ~np.isfinite(values) | (values != np.round(values))
        bad |= ~np.isfinite(numeric["rating"])
        if bad.any():
            raise _malformed(path, _line_of_row(path, first_line, offset + int(np.flatnonzero(bad)[0])))
        for name in ("user", "movie"):
            too_large = np.abs(numeric[name]) > np.iinfo(np.int32).max
            if too_large.any():
                row = int(np.flatnonzero(too_large)[0])
                line = _line_of_row(path, first_line, offset + row)
                raise MovieLensError(f"{path}:{line}: {name} id {numeric[name][row]:.0f} is beyond "
                                     f"the ids of any MovieLens release (2**31)")
        ratings = numeric["rating"]
        off_scale = ~np.isin(ratings, release.allowed_ratings)
        if off_scale.any():
            row = int(np.flatnonzero(off_scale)[0])
            line = _line_of_row(path, first_line, offset + row)
            scale = "0.5 to 5 in half stars" if release.half_stars else "1 to 5 in whole stars"
            raise MovieLensError(f"{path}:{line}: rating {ratings[row]:g} is outside {release.name}'s "
                                 f"scale ({scale})")
        parts.append(pd.DataFrame({name: numeric[name].astype(dtype)
                                   for name, dtype in RATING_DTYPES.items()}))
        offset += len(raw)
    if not parts:
        return pd.DataFrame({name: np.zeros(0, dtype) for name, dtype in RATING_DTYPES.items()})
    return pd.concat(parts, ignore_index=True)


def read_ratings_file(path, release):
    """One ratings file of `release` as a table (user, movie: int32; rating: float32; timestamp: int64).

    Raises MovieLensError with the file and line of the first malformed line or the first
    rating outside the release's scale.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise MovieLensError(f"{path} does not exist")
    table = _read_fast(path, release.ratings_format)
    if table is None or not _valid_values(table, release):
        del table
        table = _checked_table(path, release)
    if len(table) == 0:
        raise MovieLensError(f"{path} holds no ratings")
    return table


def load_ratings(raw_dir, release):
    """All ratings of `release` from its directory (or the directory's parent)."""
    release_dir = find_release_dir(raw_dir, release)
    return read_ratings_file(release_dir / release.ratings_file, release)


def raw_fingerprint(raw_dir, release, split):
    """{file name: {"size", "sha256"}} of the raw files a split is made from.

    Stored with the prepared records, so that records written from other raw files are never
    silently reused for these.
    """
    release_dir = find_release_dir(raw_dir, release)
    names = [release.ratings_file, release.titles_file]
    if split in CANONICAL_SPLITS:
        names += [f"{split}.base", f"{split}.test"]
    return {name: {"size": (release_dir / name).stat().st_size,
                   "sha256": downloads.file_digest(release_dir / name, "sha256")}
            for name in names if (release_dir / name).is_file()}


def load_titles(raw_dir, release):
    """{movie id: title} from u.item, movies.dat or movies.csv; {} when the file is absent."""
    release_dir = find_release_dir(raw_dir, release)
    path = release_dir / release.titles_file
    if not path.is_file():
        return {}
    if release.titles_file == "movies.csv":
        table = pd.read_csv(path, usecols=["movieId", "title"], dtype={"movieId": str, "title": str},
                            keep_default_na=False, encoding="utf-8")
        ids, titles = table["movieId"], table["title"]
    else:
        separator = "|" if release.titles_file == "u.item" else "::"
        text = _decode(path.read_bytes())
        rows = [line.split(separator) for line in text.splitlines() if line.strip()]
        ids = [row[0] for row in rows]
        titles = [row[1] if len(row) > 1 else "" for row in rows]
    result = {}
    for movie_id, title in zip(ids, titles):
        movie_id = movie_id.strip()
        if movie_id.isdigit():
            result[int(movie_id)] = title.strip()
    return result


def _decode(data):
    """Text of a titles file: UTF-8 where it is, Latin-1 (ML-100K, ML-1M) otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# -- splits ----------------------------------------------------------------------------------------

def canonical_split(raw_dir, release, split):
    """ML-100K's own ``split.base`` / ``split.test`` files as (train, test) tables."""
    if release.name != "ml-100k":
        raise MovieLensError(f"split {split!r} exists only for ml-100k")
    if split not in CANONICAL_SPLITS:
        raise MovieLensError(f"unknown split {split!r}; ml-100k has {', '.join(CANONICAL_SPLITS)}")
    release_dir = find_release_dir(raw_dir, release)
    return (read_ratings_file(release_dir / f"{split}.base", release),
            read_ratings_file(release_dir / f"{split}.test", release))


def holdout_split(ratings, test_per_user, order="random", seed=0):
    """Hold out `test_per_user` ratings of every user who has more than twice that many.

    ``order="random"`` chooses them with `seed`; ``order="time"`` takes each user's latest.
    Other users keep all their ratings in train. Returns (train, test) tables.
    """
    if test_per_user < 1:
        raise MovieLensError(f"test_per_user must be at least 1, got {test_per_user}")
    if order == "random":
        by_key = _order_of_draws(np.random.default_rng(seed).random(len(ratings)))
    elif order == "time":
        # latest first; ties broken by movie id so the split never depends on file order
        by_key = _stable_order(_pack([-ratings["movie"].to_numpy(np.int64),
                                      -ratings["timestamp"].to_numpy(np.int64)]))
    else:
        raise MovieLensError(f"order must be random or time, got {order!r}")
    in_test = _first_per_user(ratings["user"].to_numpy(), by_key, test_per_user)
    # rows keep the file's order; a boolean take copies each column once
    return (ratings[~in_test].reset_index(drop=True), ratings[in_test].reset_index(drop=True))


def _stable_order(values):
    """`np.argsort(values, kind="stable")` of non-negative int64 values.

    Where the values leave room for the row numbers in 63 bits, a plain sort of value-and-row
    packed into int64: several times faster than an argsort on ML-25M's 25 M rows.
    """
    row_bits = max(len(values) - 1, 0).bit_length()
    if len(values) == 0 or int(values.max()).bit_length() + row_bits > 63:
        return np.argsort(values, kind="stable")
    packed = values << row_bits
    packed |= np.arange(len(values))
    packed.sort()
    packed &= (1 << row_bits) - 1
    return packed


def _order_of_draws(draws):
    """`np.argsort(draws, kind="stable")` of draws in [0, 1), by `_stable_order` of their leading bits.

    Draws that share their leading bits (a few thousand among 25 M) are put in order by their
    full value afterwards.
    """
    row_bits = max(len(draws) - 1, 0).bit_length()
    leading = (draws * float(1 << (63 - row_bits))).astype(np.int64)
    order = _stable_order(leading)
    leading = leading[order]
    tied = np.flatnonzero(leading[1:] == leading[:-1])
    if len(tied):
        positions = np.unique(np.r_[tied, tied + 1])
        rows = order[positions]
        order[positions] = rows[np.lexsort((rows, draws[rows], leading[positions]))]
    return order


def _pack(keys):
    """Integer keys packed into one int64 that sorts as `np.lexsort(keys)` (the last key first)."""
    packed, bits = np.zeros(len(keys[0]), np.int64), 0
    for key in keys:
        low, high = (int(key.min()), int(key.max())) if len(key) else (0, 0)
        width = (high - low).bit_length()
        if bits + width > 63:
            raise OverflowError("the keys do not fit in 63 bits")
        packed |= (np.asarray(key, np.int64) - low) << bits
        bits += width
    return packed


def _first_per_user(users, by_key, count):
    """Rows that are among their user's first `count` rows in `by_key` order, for users with more than 2 * count rows.

    by_key: the rows in key order (a permutation of the rows).
    """
    num_rows = len(users)
    rank = np.empty(num_rows, np.int64)
    rank[by_key] = np.arange(num_rows)
    # the rank gives each (user, rank) value's row back through by_key
    try:
        packed = _pack([rank, users])
    except OverflowError:
        order = np.lexsort((rank, users))
    else:
        packed.sort()
        packed &= (1 << max(num_rows - 1, 0).bit_length()) - 1
        order = by_key[packed]
    del rank
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    del sorted_users
    sizes = np.diff(np.r_[starts, num_rows])
    # rank of each row within its user, and its user's number of rows, in sorted order
    chosen = np.arange(num_rows) - np.repeat(starts, sizes) < count
    chosen &= np.repeat(sizes > 2 * count, sizes)
    in_test = np.zeros(num_rows, bool)
    in_test[order[chosen]] = True
    return in_test


def like_labels(ratings, threshold=3.0):
    """1 (like) where rating >= threshold, 0 (dislike) otherwise."""
    return (np.asarray(ratings) >= threshold).astype(np.int32)


# -- download ------------------------------------------------------------------------------------

def unpack_release(zip_path, raw_dir, release, sha256=None, md5=None):
    """Check the zip against its checksum and unpack it into `raw_dir` atomically.

    The members are extracted into a temporary folder beside the target and renamed into
    place, so an interrupted unpack leaves no half-written release directory.
    Returns the release directory.
    """
    zip_path, raw_dir = pathlib.Path(zip_path), pathlib.Path(raw_dir)
    if sha256 is not None and downloads.file_digest(zip_path, "sha256") != sha256:
        raise MovieLensError(f"{zip_path} does not match the published sha256 of {release.name}; "
                             "the download is damaged, delete it and try again")
    if md5 is not None and downloads.file_digest(zip_path, "md5") != md5:
        raise MovieLensError(f"{zip_path} does not match the published md5 of {release.name}; "
                             "the download is damaged, delete it and try again")
    target = raw_dir / release.directory
    if target.exists():
        raise MovieLensError(f"{target} already exists; remove it or do not download again")
    raw_dir.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=".unpack-", dir=raw_dir))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                for member in archive.namelist():
                    resolved = (scratch / member).resolve()
                    if scratch.resolve() not in resolved.parents and resolved != scratch.resolve():
                        raise MovieLensError(f"{zip_path} has an unsafe member path {member!r}")
                archive.extractall(scratch)
        except zipfile.BadZipFile:
            raise MovieLensError(f"{zip_path} is not a zip file") from None
        unpacked = scratch / release.directory
        if not (unpacked / release.ratings_file).is_file():
            raise MovieLensError(f"{zip_path} has no {release.directory}/{release.ratings_file}")
        os.rename(unpacked, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _fetch(url, path):
    try:
        downloads.fetch(url, path)
    except (urllib.error.URLError, OSError) as error:
        raise MovieLensError(f"could not download {url}: {getattr(error, 'reason', error)}") from None


def download_release(release, raw_dir):
    """Download the official zip of `release` into `raw_dir`, verify it and unpack it.

    Checked against the sha256 recorded here, or the ``.md5`` GroupLens publishes beside the
    zip for releases without a fixed checksum. Returns the release directory.
    """
    raw_dir = pathlib.Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=raw_dir, prefix=".download-") as scratch:
        zip_path = pathlib.Path(scratch) / f"{release.name}.zip"
        md5 = None
        if release.sha256 is None:
            md5_path = pathlib.Path(scratch) / "published.md5"
            _fetch(release.url + ".md5", md5_path)
            # published as "MD5 (name.zip) = <hex>" or "<hex>  name.zip"
            found = re.search(r"\b[0-9a-fA-F]{32}\b", md5_path.read_text(errors="replace"))
            if found is None:
                raise MovieLensError(f"{release.url}.md5 holds no md5 checksum")
            md5 = found.group(0).lower()
        _fetch(release.url, zip_path)
        return unpack_release(zip_path, raw_dir, release, sha256=release.sha256, md5=md5)
