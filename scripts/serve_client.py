"""tfm-client: query a model served by TensorFlow Serving (REST by default, gRPC with --grpc).

The client checks that the model is AVAILABLE and reads its signatures from the server before
it predicts, so requests always match what is served (see pipelines/serving_client.py).

  tfm-client recommend --movies EXPORT --ratings 50:5 172:5 181:4 313:1
      The recommender ("rbm"): MOVIE_ID:RATING pairs in the release's own ids and stars are
      turned into likes (rating >= --like-threshold) and dislikes, and the top unrated movies
      are printed with their titles from the export's movies.tsv asset.

  tfm-client predict --model vae --images t10k-images-idx3-ubyte.gz --first 4
      Any model: images from an IDX file (scaled to [0, 1] and shaped to the signature's input),
      or --inputs-json with {"input name": value}. Prints each output's shape and values, and
      for outputs shaped like the input (reconstructions) the mean squared error per example.

Errors (server down, model not available, a request the model rejects) are one line on stderr
with exit code 2.
"""

import argparse
import pathlib
import sys

from scripts import _cli


def build_parser():
    parser = argparse.ArgumentParser(prog="tfm-client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--server", default="http://localhost:8501",
                            help="REST address of the model server (default: %(default)s)")
    connection.add_argument("--grpc", metavar="HOST:PORT", default=None,
                            help="use gRPC at this address (e.g. localhost:8500) instead of REST; "
                                 "needs tensorflow-serving-api")
    connection.add_argument("--version", type=int, default=None,
                            help="ask for this model version (default: the newest the server serves)")
    connection.add_argument("--timeout", type=float, default=30.0,
                            help="seconds to wait for each answer (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    recommend = commands.add_parser(
        "recommend", parents=[connection], help="titled movie recommendations from the RBM",
        description="Top unrated movies for a user's ratings, from the served recommender.")
    recommend.add_argument("--ratings", nargs="+", required=True, metavar="MOVIE_ID:RATING",
                           help="the user's ratings, e.g. 50:5 172:4 313:1 (release movie ids and stars)")
    recommend.add_argument("--movies", required=True, type=pathlib.Path,
                           help="the served export (RUN/export/rbm, a version in it, or its "
                                "assets/movies.tsv): maps movie ids to the model's columns")
    recommend.add_argument("--like-threshold", type=float, default=3.0,
                           help="a rating >= this is a like, as in training (the run's "
                                "run_config.json like_threshold; default: %(default)s)")
    recommend.add_argument("--top", type=int, default=10, help="how many (default: %(default)s)")
    recommend.add_argument("--model", default="rbm", help="model name on the server (default: %(default)s)")

    predict = commands.add_parser(
        "predict", parents=[connection], help="call any signature of any served model",
        description="Send inputs to a signature and print the outputs.")
    predict.add_argument("--model", required=True,
                         help="model name on the server: rbm, dense_autoencoder, conv_autoencoder, "
                              "denoising_autoencoder, vae, dbn")
    predict.add_argument("--signature", default="serving_default",
                         help="signature name (default: %(default)s; see tfm-export --list)")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=pathlib.Path,
                        help="an IDX image file (gz or raw), e.g. MNIST's t10k-images-idx3-ubyte.gz")
    source.add_argument("--inputs-json", type=pathlib.Path,
                        help="a JSON file {\"input name\": nested list, ...}")
    predict.add_argument("--first", type=int, default=4,
                         help="with --images: how many images from the start (default: %(default)s)")
    predict.add_argument("--output", type=pathlib.Path, help="also write the outputs as JSON to this file")
    return parser


def body(args):
    from pipelines import serving_client

    client = serving_client.connect(args.server, grpc=args.grpc, timeout=args.timeout)
    if args.command == "recommend":
        ranked = serving_client.recommend(
            client, args.movies, serving_client.parse_ratings(args.ratings), args.like_threshold,
            args.top, model=args.model, version=args.version)
        print(f"top {len(ranked)} of the movies not rated (like probability):")
        for rank, (movie_id, title, score) in enumerate(ranked, 1):
            print(f"{rank:3d}. {score:.3f}  {title}  [movie {movie_id}]")
        return 0
    prediction = serving_client.predict(client, args.model, args.signature, inputs=args.inputs_json,
                                        images=args.images, first=args.first, version=args.version)
    print(f"{args.model} version {prediction.version}, signature {args.signature!r}:")
    print("\n".join(prediction.describe()))
    if args.output:
        prediction.save(args.output)
    return 0


def main(argv=None):
    # only the gRPC client needs TensorFlow (and tensorflow-serving-api); REST starts at once
    return _cli.run(build_parser(), body, argv, tensorflow=lambda args: args.grpc is not None)


if __name__ == "__main__":
    sys.exit(main())
