"""rbm-recommend: a user's top movies among those they have not rated, with titles.

Uses the latest checkpoint of a training run and the user's training ratings from the records
the run was trained on.
"""

import argparse
import sys

from scripts import _arguments
from scripts import _cli


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rbm-recommend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="an rbm-train run")
    parser.add_argument("--user", required=True, type=int, help="the user's id in the release")
    parser.add_argument("--top", type=_arguments.positive_int, default=10,
                        help="how many movies (default: %(default)s)")
    return parser


def body(args):
    from rbm_tf.recommender_training import recommend_for_user

    movies = recommend_for_user(args.run_dir, args.user, args.top)
    print(f"top {len(movies)} movies for user {args.user} (like probability):")
    for rank, (movie_id, title, score) in enumerate(movies, 1):
        print(f"{rank:3d}. {score:.3f}  {title}  [movie {movie_id}]")
    return 0


def main(argv=None):
    return _cli.run(build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
