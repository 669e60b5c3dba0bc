"""Synthetic MovieLens releases of any size, in the real file formats (never committed).

    python benchmarks/synthetic_movielens.py OUT_DIR --format ml-1m --users 3000 --movies 2000 --ratings 300000
    python benchmarks/synthetic_movielens.py /tmp/ml25m-synth --format csv --users 162541 --movies 59047 --ratings 25000000

Users rate a heavy-tailed number of movies (at least 20, as GroupLens requires), chosen by a
Zipf-like popularity mixed with taste; a rating is the rounded sum of a global mean, a user
and a movie bias, a taste match (user and movie factors) and noise, clipped to the scale.
`--format ml-1m` writes ratings.dat / movies.dat / users.dat ("::"-separated, whole stars),
`--format csv` ratings.csv / movies.csv (the newer releases: header, half stars). No real
data is read or copied: this is a release that no setting of the package was chosen on.

Everything is vectorised, so the size of ML-25M (162k users, 59k movies, 25 M ratings) is
written in about a minute and a few GB of memory.
"""

import argparse
import os
import pathlib
import sys

import numpy as np
import pandas as pd

# a user rates at most this share of the movies, as the most active MovieLens users do
MAX_SHARE = 0.5
# taste multiplies a movie's popularity by exp(TASTE_WEIGHT * match), match ~ N(0, 1)
TASTE_WEIGHT = 0.5
# matches above this are treated as this, so that taste can be drawn by rejection
TASTE_CAP = 3.0
# popularity of the movie of rank r is the mass of x ** -ZIPF_EXPONENT on [r, r + 1]
ZIPF_EXPONENT = 0.9
# users rating more than this share of the movies draw them exactly over all movies
EXACT_SHARE = 0.05
# ratings drawn per block of users: bounds the memory of the draw
BLOCK_RATINGS = 2_000_000


def rating_counts(rng, num_users, num_movies, num_ratings):
    """Heavy-tailed ratings per user: at least 20, at most MAX_SHARE of the movies, about num_ratings in all."""
    if num_movies < 20:
        raise ValueError(f"num_movies must be at least 20 (every user rates 20), got {num_movies}")
    most = max(20, int(num_movies * MAX_SHARE))
    # Lomax activity above the floor of 20: most users rate a few dozen movies, a few thousands
    activity = rng.pareto(1.5, num_users)
    # the cap moves the total: rescale the activity until it lands
    scale = max(num_ratings - 20 * num_users, 0) / max(activity.sum(), 1e-12)
    for _ in range(50):
        counts = np.clip(np.rint(20 + activity * scale), 20, most).astype(np.int64)
        total = counts.sum()
        if abs(total - num_ratings) <= max(1, num_ratings // 10_000):
            break
        above = np.maximum(counts - 20, 0).sum()
        if above == 0 or counts.min() == most:
            break
        scale *= max(num_ratings - 20 * num_users, 0) / above
    return counts


def choose_movies(rng, counts, movie_of_rank, user_factors, movie_factors):
    """Distinct movies for every user, drawn without replacement by popularity x exp(taste).

    `movie_of_rank` orders the movies by popularity (`zipf_popularity`). Returns (users, movies),
    grouped by user. Light users draw by rejection: proposals from the popularity, accepted by
    their taste, duplicates dropped, again until each has its count. Heavy users (more than
    EXACT_SHARE of the movies) draw exactly with Gumbel top-k keys.
    """
    num_movies, num_factors = movie_factors.shape
    popularity = np.empty(num_movies)
    popularity[movie_of_rank] = zipf_popularity(num_movies)
    exact = counts > max(20, EXACT_SHARE * num_movies)
    light_users = np.flatnonzero(~exact)
    blocks = np.split(light_users, np.searchsorted(
        np.cumsum(counts[light_users]), np.arange(BLOCK_RATINGS, counts[light_users].sum(), BLOCK_RATINGS)))
    chosen = [_draw_by_rejection(rng, block, counts, movie_of_rank, user_factors, movie_factors)
              for block in blocks if len(block)]
    log_popularity = np.log(popularity)
    for user in np.flatnonzero(exact):
        match = movie_factors @ user_factors[user] / np.sqrt(num_factors)
        keys = log_popularity + TASTE_WEIGHT * match + rng.gumbel(size=num_movies)
        movies = np.argpartition(-keys, counts[user] - 1)[:counts[user]]
        chosen.append(user * np.int64(num_movies) + np.sort(movies))
    keys = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    return (keys // num_movies).astype(np.int64), (keys % num_movies).astype(np.int64)


def zipf_popularity(num_movies):
    """Popularity by rank (from 0): the mass of x ** -ZIPF_EXPONENT on [rank + 1, rank + 2]."""
    power = 1.0 - ZIPF_EXPONENT
    edges = np.arange(1, num_movies + 2, dtype=float) ** power
    return np.diff(edges) / (edges[-1] - edges[0])


def zipf_ranks(rng, size, num_movies):
    """Ranks drawn by `zipf_popularity`, by inverting its distribution function (no search)."""
    power = 1.0 - ZIPF_EXPONENT
    top = (num_movies + 1.0) ** power
    x = (1.0 + rng.random(size) * (top - 1.0)) ** (1.0 / power)
    return np.minimum(x.astype(np.int64) - 1, num_movies - 1)


def _draw_by_rejection(rng, block, counts, movie_of_rank, user_factors, movie_factors):
    """Keys user * num_movies + movie of `block`'s users' distinct draws."""
    num_movies, num_factors = movie_factors.shape
    acceptance_rate = np.exp(0.5 * TASTE_WEIGHT ** 2 - TASTE_WEIGHT * TASTE_CAP)
    need = counts[block].copy()
    have = np.zeros(0, np.int64)
    while need.sum() > 0:
        # enough proposals that most users are done in one round
        proposals = np.ceil(need * 1.3 / acceptance_rate).astype(np.int64) + 2
        users = np.repeat(block, proposals)
        movies = movie_of_rank[zipf_ranks(rng, len(users), num_movies)]
        match = np.einsum("ij,ij->i", user_factors[users], movie_factors[movies]) / np.sqrt(num_factors)
        accept = rng.random(len(users)) < np.exp(TASTE_WEIGHT * (np.minimum(match, TASTE_CAP) - TASTE_CAP))
        # proposals come in a random order, so keeping each user's first ones is a fair draw
        arrived = np.concatenate([have, users[accept] * np.int64(num_movies) + movies[accept]])
        _, first = np.unique(arrived, return_index=True)
        arrived = arrived[np.sort(first)]
        owner = arrived // num_movies
        by_owner = np.argsort(owner, kind="stable")
        sorted_owner = owner[by_owner]
        starts = np.searchsorted(sorted_owner, sorted_owner, side="left")
        rank = np.empty(len(arrived), np.int64)
        rank[by_owner] = np.arange(len(arrived)) - starts
        have = arrived[rank < counts[owner]]
        taken = np.bincount(np.searchsorted(block, have // num_movies), minlength=len(block))
        need = counts[block] - taken
    return have


def generate(out_dir, fmt="ml-1m", num_users=3000, num_movies=2000, num_ratings=300_000,
             num_factors=8, seed=0):
    """Write the release's files into `out_dir`; returns the number of ratings written."""
    if fmt not in ("ml-1m", "csv"):
        raise ValueError(f"fmt must be ml-1m or csv, got {fmt!r}")
    rng = np.random.default_rng(seed)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = rating_counts(rng, num_users, num_movies, num_ratings)
    movie_of_rank = rng.permutation(num_movies)
    popularity = np.empty(num_movies)
    popularity[movie_of_rank] = zipf_popularity(num_movies)
    user_factors = rng.normal(0, 1, [num_users, num_factors]).astype(np.float32)
    movie_factors = rng.normal(0, 1, [num_movies, num_factors]).astype(np.float32)
    user_bias = rng.normal(0, 0.4, num_users).astype(np.float32)
    movie_bias = (rng.normal(0, 0.5, num_movies)
                  + 0.3 * np.log(popularity / popularity.mean())).astype(np.float32)
    users, movies = choose_movies(rng, counts, movie_of_rank, user_factors, movie_factors)
    # shuffle each user's movies (the draw returns them sorted), as a real file has them in time order
    within = np.lexsort((rng.random(len(users)), users))
    users, movies = users[within], movies[within]
    taste = np.einsum("ij,ij->i", user_factors[users], movie_factors[movies]) / np.sqrt(num_factors)
    raw = (3.45 + user_bias[users] + movie_bias[movies] + 0.6 * taste
           + rng.normal(0, 0.7, len(users)).astype(np.float32))
    del taste
    half_stars = fmt == "csv"
    steps = np.clip(np.rint(raw * 2) if half_stars else 2 * np.rint(raw), 1 if half_stars else 2, 10)
    del raw
    timestamps = 956703932 + rng.integers(0, 10**8, len(users))
    rating_text = np.array([f"{step / 2:.1f}" if half_stars else f"{step / 2:g}" for step in range(11)],
                           dtype=object)
    table = pd.DataFrame({"user": users + 1, "movie": movies + 1,
                          "rating": pd.Categorical.from_codes(steps.astype(np.int8), rating_text),
                          "timestamp": timestamps})
    movie_ids = np.arange(1, num_movies + 1)
    if fmt == "ml-1m":
        _write_table(out_dir / "ratings.dat", table, "::", header=False)
        _write_lines(out_dir / "movies.dat", (f"{m}::Synthetic movie {m} ({1950 + m % 50})::Drama"
                                              for m in movie_ids), encoding="latin-1")
        _write_lines(out_dir / "users.dat", (f"{u}::M::25::0::00000" for u in range(1, num_users + 1)))
    else:
        table.columns = ["userId", "movieId", "rating", "timestamp"]
        _write_table(out_dir / "ratings.csv", table, ",", header=True)
        _write_lines(out_dir / "movies.csv", ["movieId,title,genres"] + [
            f"{m},Synthetic movie {m} ({1950 + m % 50}),Drama" for m in movie_ids])
    return len(users)


def _write_table(path, table, separator, header):
    """The table as text lines, atomically; `separator` may be longer than one character."""
    scratch = path.with_name(f".{path.name}.partial")
    # pandas writes one-character separators only: write with a placeholder, then widen it
    single = separator if len(separator) == 1 else "\x1f"
    with open(scratch, "wb") as handle:
        for start in range(0, len(table), 2_000_000):
            chunk = table.iloc[start:start + 2_000_000].to_csv(
                sep=single, header=header and start == 0, index=False, lineterminator="\n")
            if single != separator:
                chunk = chunk.replace(single, separator)
            handle.write(chunk.encode())
    os.replace(scratch, path)


def _write_lines(path, lines, encoding="utf-8"):
    scratch = path.with_name(f".{path.name}.partial")
    scratch.write_text("".join(f"{line}\n" for line in lines), encoding=encoding)
    os.replace(scratch, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--format", choices=("ml-1m", "csv"), default="ml-1m")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--movies", type=int, default=2000)
    parser.add_argument("--ratings", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written = generate(args.out_dir, args.format, args.users, args.movies, args.ratings, seed=args.seed)
    print(f"{written} ratings of {args.users} users on {args.movies} movies in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
