"""rbm-prepare: turn a MovieLens directory into sharded TFRecords of per-user like/dislike examples.

Reads the release's raw files (ML-100K u.data and its u1..u5/ua/ub files, ML-1M/10M
ratings.dat, ratings.csv of the newer releases) from --raw-dir, splits the ratings into train
and test, and writes them with tensorflow-datasets under --data-dir. With --download the
official GroupLens zip is fetched into --raw-dir first and checked against its checksum.
"""

import argparse
import pathlib
import sys

from pipelines import movielens
from pipelines import records
from scripts import _run
from scripts.rbm_train import add_split_arguments
from scripts.rbm_train import split_config


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rbm-prepare", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", required=True, type=pathlib.Path,
                        help="the MovieLens directory (e.g. ml-100k/ with u.data) or its parent")
    parser.add_argument("--download", action="store_true",
                        help="download the official release zip into --raw-dir first (needs a network)")
    add_split_arguments(parser)
    return parser


def prepare(split, raw_dir, data_dir):
    """Write the TFRecords of `split` (a MovieLensConfig) read from `raw_dir`; returns the builder."""
    # found before TFDS starts, so a wrong directory is a readable error, not a TFDS traceback
    release_dir = movielens.find_release_dir(raw_dir, movielens.get_release(split.release))
    builder = records.MovieLensRatings(config=split, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=records.manual_download_config(release_dir))
    return builder


def _main(argv):
    args = build_parser().parse_args(argv)
    split = split_config(args)
    if args.download:
        release = movielens.get_release(args.release)
        args.raw_dir.mkdir(parents=True, exist_ok=True)
        print(f"downloading {release.url} into {args.raw_dir}")
        movielens.download_release(release, args.raw_dir)
    builder = prepare(split, args.raw_dir, args.data_dir)
    metadata = builder.info.metadata
    print(f"{split.name}: {metadata['num_movies']} movies; train {metadata['num_train_ratings']} "
          f"ratings of {metadata['num_train_users']} users (like rate {metadata['train_like_rate']:.3f}); "
          f"test {metadata['num_test_ratings']} ratings of {metadata['num_test_users']} users "
          f"(like rate {metadata['test_like_rate']:.3f})")
    print(f"records in {builder.data_dir}")
    return 0


def main(argv=None):
    return _run.run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
