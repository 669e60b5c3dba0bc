"""Synthetic MovieLens releases of any size, in the real file formats (never committed).

    python benchmarks/synthetic_movielens.py OUT_DIR --format ml-1m --users 3000 --movies 2000 --ratings 300000

Users rate a heavy-tailed number of movies (at least 20, as GroupLens requires), chosen by a
Zipf-like popularity mixed with taste; a rating is the rounded sum of a global mean, a user
and a movie bias, a taste match (user and movie factors) and noise, clipped to the scale.
`--format ml-1m` writes ratings.dat / movies.dat / users.dat ("::"-separated, whole stars),
`--format csv` ratings.csv / movies.csv (the newer releases: header, half stars). No real
data is read or copied: this is a release that no setting of the package was chosen on.
"""

import argparse
import pathlib
import sys

import numpy as np


def generate(out_dir, fmt="ml-1m", num_users=3000, num_movies=2000, num_ratings=300_000,
             num_factors=8, seed=0):
    """Write the release's files into `out_dir`; returns the number of ratings written."""
    rng = np.random.default_rng(seed)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # heavy-tailed activity, at least 20 ratings a user, about num_ratings in all
    activity = rng.pareto(1.5, num_users) + 1.0
    counts = np.maximum(20, activity / activity.sum() * num_ratings).astype(int)
    counts = np.minimum(counts, num_movies // 2)
    popularity = 1.0 / np.arange(1, num_movies + 1) ** 0.9
    popularity = rng.permutation(popularity)
    user_factors = rng.normal(0, 1, [num_users, num_factors])
    movie_factors = rng.normal(0, 1, [num_movies, num_factors])
    user_bias = rng.normal(0, 0.4, num_users)
    movie_bias = rng.normal(0, 0.5, num_movies) + 0.3 * np.log(popularity / popularity.mean())
    users, movies = [], []
    for user, count in enumerate(counts):
        # people choose what is popular and what suits them
        affinity = popularity * np.exp(0.5 * movie_factors @ user_factors[user] / np.sqrt(num_factors))
        chosen = rng.choice(num_movies, size=count, replace=False, p=affinity / affinity.sum())
        users.append(np.full(count, user))
        movies.append(chosen)
    users, movies = np.concatenate(users), np.concatenate(movies)
    taste = np.einsum("ij,ij->i", user_factors[users], movie_factors[movies]) / np.sqrt(num_factors)
    raw = 3.45 + user_bias[users] + movie_bias[movies] + 0.6 * taste + rng.normal(0, 0.7, len(users))
    half_stars = fmt == "csv"
    ratings = np.clip(np.round(raw * 2) / 2 if half_stars else np.round(raw), 0.5 if half_stars else 1, 5)
    timestamps = 956703932 + rng.integers(0, 10**8, len(users))
    movie_ids = np.arange(1, num_movies + 1)
    if fmt == "ml-1m":
        lines = (f"{u + 1}::{movie_ids[m]}::{int(r)}::{t}\n" for u, m, r, t in zip(users, movies, ratings, timestamps))
        (out_dir / "ratings.dat").write_text("".join(lines))
        (out_dir / "movies.dat").write_text("".join(
            f"{m}::Synthetic movie {m} ({1950 + m % 50})::Drama\n" for m in movie_ids), encoding="latin-1")
        (out_dir / "users.dat").write_text("".join(f"{u}::M::25::0::00000\n" for u in range(1, num_users + 1)))
    else:
        lines = (f"{u + 1},{movie_ids[m]},{r:g},{t}\n" for u, m, r, t in zip(users, movies, ratings, timestamps))
        (out_dir / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "".join(lines))
        (out_dir / "movies.csv").write_text("movieId,title,genres\n" + "".join(
            f"{m},Synthetic movie {m} ({1950 + m % 50}),Drama\n" for m in movie_ids))
    return len(users)


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
