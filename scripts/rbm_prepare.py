"""rbm-prepare: turn a MovieLens directory into sharded TFRecords of per-user like/dislike examples.

Reads the release's raw files (ML-100K u.data and its u1..u5/ua/ub files, ML-1M/10M
ratings.dat, ratings.csv of the newer releases) from --raw-dir, splits the ratings into train
and test, and writes them with tensorflow-datasets under --data-dir. Records already written
from the same raw files are reused; if the raw files changed, they are written again. With
--download the official GroupLens zip is fetched into --raw-dir first and checked against its
checksum.
"""

import argparse
import sys

from scripts import _arguments
from scripts import _cli


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rbm-prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", required=True,
                        help="the MovieLens directory (e.g. ml-100k/ with u.data) or its parent")
    parser.add_argument("--download", action="store_true",
                        help="download the official release zip into --raw-dir first (needs a network)")
    _arguments.add_split_arguments(parser)
    return parser


def body(args):
    from pipelines import prepare_movielens

    data = prepare_movielens(raw_dir=args.raw_dir, data_dir=args.data_dir, download=args.download,
                             log=print, **_arguments.split_settings(args))
    metadata = data.metadata
    print(f"{data.name}: {data.num_movies} movies; train {metadata['num_train_ratings']} "
          f"ratings of {metadata['num_train_users']} users (like rate {metadata['train_like_rate']:.3f}); "
          f"test {metadata['num_test_ratings']} ratings of {metadata['num_test_users']} users "
          f"(like rate {metadata['test_like_rate']:.3f})")
    print(f"records in {data.builder.data_dir}")
    return 0


def main(argv=None):
    return _cli.run(build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
