"""rbm-recommend: a user's top movies among those they have not rated, with titles.

Uses the latest export of a training run (RUN/export/rbm/<version>/) and the user's training
ratings from the records the run was trained on.
"""

import argparse
import pathlib
import sys

import tensorflow as tf

from pipelines import datasets
from pipelines import records
from scripts import _run


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rbm-recommend", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, type=pathlib.Path, help="a finished rbm-train run")
    parser.add_argument("--user", required=True, type=int, help="the user's id in the release")
    parser.add_argument("--top", type=int, default=10, help="how many movies (default: %(default)s)")
    return parser


def user_ratings(builder, user_id):
    """The user's training ratings as a dense {-1, 0, 1} vector, or None for an unknown user."""
    num_movies = int(builder.info.metadata["num_movies"])
    found = builder.as_dataset(split="train").filter(lambda e: e["user_id"] == user_id).take(1)
    for example in found:
        return datasets.densify(example["input_movies"], example["input_labels"], num_movies)
    return None


def recommend(run_dir, user_id, top):
    """[(movie_id, title, like_probability)] for the user's `top` best unrated movies."""
    run = _run.RunDirectory(run_dir)
    stored = run.read_config()
    split = records.movielens_config(stored["release"], stored["split_kind"],
                                     test_per_user=stored["test_per_user"], order=stored["order"],
                                     seed=stored["split_seed"], like_threshold=stored["like_threshold"])
    builder = datasets.prepared_movielens(stored["data_dir"], split)
    ratings = user_ratings(builder, user_id)
    if ratings is None:
        raise _run.UserError(f"user {user_id} has no training ratings in {split.name}")
    served = tf.saved_model.load(str(_run.latest_export(run.export_base(), "rbm")))
    result = served.signatures["recommend"](ratings=ratings[tf.newaxis], k=tf.constant(top, tf.int32))
    titles = dict(zip(builder.info.metadata["movie_ids"], builder.info.metadata["movie_titles"]))
    return [(int(movie_id), titles.get(int(movie_id), "?"), float(score))
            for movie_id, score in zip(result["movie_ids"][0].numpy(), result["scores"][0].numpy())]


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.top < 1:
        raise _run.UserError("--top must be at least 1")
    print(f"top {args.top} movies for user {args.user} (like probability):")
    for rank, (movie_id, title, score) in enumerate(recommend(args.run_dir, args.user, args.top), 1):
        print(f"{rank:3d}. {score:.3f}  {title}  [movie {movie_id}]")
    return 0


def main(argv=None):
    return _run.run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
