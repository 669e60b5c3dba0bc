"""tfm-client: query a model served by TensorFlow Serving (REST by default, gRPC with --grpc).

Before predicting, the client checks that the model is AVAILABLE (GET /v1/models/NAME) and reads
its signatures from the server (GET /v1/models/NAME/metadata), so requests always match what is
served. Predictions use POST /v1/models/NAME[/versions/N]:predict with "signature_name" and
"instances" (row format); a signature with an unbatched input, such as the recommender's k, is
sent in the columnar "inputs" format, as TF Serving's REST API requires.

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
import json
import pathlib
import re
import socket
import sys
import urllib.error
import urllib.request

import numpy as np

from scripts import _run
from scripts import rbm_train

DEFAULT_SERVER = "http://localhost:8501"
RECOMMENDER_MODEL = "rbm"
MOVIE_TABLE = rbm_train.MOVIE_TABLE


# a failed tf.debugging assert reads "assertion failed: [<message>] [Condition ...] ... [[node]]"
ASSERTION_MESSAGE = re.compile(r"assertion failed: \[(.*?)\](?: \[|\s*$)", re.DOTALL)


def one_line(text, limit=400):
    """A server's message on one line, short enough for a terminal."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def model_message(text):
    """The model's own words from a TensorFlow error, without the graph's node names."""
    found = ASSERTION_MESSAGE.search(str(text))
    return one_line(found.group(1) if found else text)


# -- REST ------------------------------------------------------------------------------------------

def model_path(model, version=None):
    """/v1/models/NAME or /v1/models/NAME/versions/N."""
    return f"/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "")


def is_row_format(signature):
    """True unless an input is a scalar (such as the recommender's k), which has no batch
    dimension to split into rows: then only the columnar ("inputs") format fits."""
    return all(shape is None or len(shape) >= 1 for _, shape in signature["inputs"].values())


def predict_body(signature_name, inputs, signature):
    """The JSON body of a TF Serving REST predict request.

    inputs: {input name: array-like, batch first}. Row format when every input is batched:
    "instances" is the list of examples (plain values for a single input, else one object per
    example); otherwise the columnar format, "inputs": {name: value}.
    """
    values = {name: np.asarray(value).tolist() for name, value in inputs.items()}
    if not is_row_format(signature):
        return {"signature_name": signature_name, "inputs": values}
    if len(values) == 1:
        return {"signature_name": signature_name, "instances": next(iter(values.values()))}
    batch = len(next(iter(values.values())))
    return {"signature_name": signature_name,
            "instances": [{name: value[i] for name, value in values.items()} for i in range(batch)]}


def outputs_from_response(response, signature):
    """{output name: np.ndarray} from a predict response in either format."""
    names = list(signature["outputs"])
    if "outputs" in response:
        result = response["outputs"]
        if not isinstance(result, dict):
            result = {names[0]: result}
    elif "predictions" in response:
        rows = response["predictions"]
        if rows and isinstance(rows[0], dict):
            result = {name: [row[name] for row in rows] for name in rows[0]}
        else:
            result = {names[0]: rows}
    else:
        raise _run.UserError(f"the server's answer has neither 'predictions' nor 'outputs': "
                             f"{one_line(json.dumps(response), 200)}")
    return {name: np.asarray(value) for name, value in result.items()}


def signatures_from_metadata(metadata):
    """The signatures of a REST metadata answer, as `_run.describe_signatures` gives them."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import meta_graph_pb2

    try:
        signature_defs = metadata["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError):
        raise _run.UserError("the server's metadata answer holds no signature_def") from None
    # the answer is the JSON mapping of SignatureDef protos: read it back into them
    graph = meta_graph_pb2.MetaGraphDef()
    try:
        json_format.ParseDict({"signature_def": signature_defs}, graph, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise _run.UserError(f"the server's metadata answer is not a signature_def map: "
                             f"{one_line(error, 200)}") from None
    return _run.describe_signatures(graph.signature_def)


class RestClient:
    """TF Serving's REST API at `server` (http://host:port) through urllib."""

    def __init__(self, server=DEFAULT_SERVER, timeout=30.0):
        self.server = server.rstrip("/")
        if not self.server.startswith(("http://", "https://")):
            raise _run.UserError(f"--server must be a URL such as {DEFAULT_SERVER}, got {server!r}")
        self.timeout = timeout

    def request(self, path, body=None):
        """GET (or POST `body` as JSON) `path`; returns the decoded JSON answer."""
        url = self.server + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as error:
            raise _run.UserError(f"{url} answered {error.code}: {self._error_message(error)}") from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, ConnectionRefusedError):
                raise _run.UserError(f"cannot connect to {self.server}: connection refused "
                                     f"(is the model server running? see deploy/README.md)") from None
            raise _run.UserError(f"cannot reach {self.server}: {one_line(reason)}") from None
        except (TimeoutError, socket.timeout):
            raise _run.UserError(f"{url} did not answer within {self.timeout:g} s") from None
        except ConnectionError as error:
            raise _run.UserError(f"connection to {self.server} failed: {one_line(error)}") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise _run.UserError(f"{url} answered with something that is not JSON: "
                                 f"{one_line(payload[:200])}") from None

    @staticmethod
    def _error_message(error):
        body = error.read()
        try:
            return model_message(json.loads(body)["error"])
        except (ValueError, KeyError, TypeError):
            return one_line(body.decode("utf-8", "replace") or error.reason)

    def check_available(self, model, version=None):
        """Raise UserError unless the model (version) is AVAILABLE; returns the version served."""
        status = self.request(model_path(model, version))
        return check_status(model, self.server,
                            [(entry.get("version"), entry.get("state"))
                             for entry in status.get("model_version_status", [])])

    def signatures(self, model, version=None):
        return signatures_from_metadata(self.request(model_path(model, version) + "/metadata"))

    def predict(self, model, signature_name, inputs, signature, version=None):
        body = predict_body(signature_name, inputs, signature)
        answer = self.request(model_path(model, version) + ":predict", body)
        return outputs_from_response(answer, signature)


def check_status(model, server, versions):
    """The served version among [(version, state)], or UserError naming the states seen."""
    available = [int(version) for version, state in versions if state == "AVAILABLE"]
    if not available:
        seen = ", ".join(f"version {version}: {state}" for version, state in versions) or "no versions"
        raise _run.UserError(f"model {model!r} is not available on {server} ({seen})")
    return max(available)


# -- gRPC ------------------------------------------------------------------------------------------

class GrpcClient:
    """TF Serving's gRPC API at `target` (host:port), via tensorflow-serving-api."""

    def __init__(self, target, timeout=30.0):
        try:
            import grpc
            from tensorflow_serving.apis import get_model_metadata_pb2  # noqa: F401
        except ImportError:
            raise _run.UserError("--grpc needs the tensorflow-serving-api package "
                                 "(pip install tensorflow-serving-api)") from None
        from tensorflow_serving.apis import model_service_pb2_grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc
        self.grpc = grpc
        self.target = target
        self.timeout = timeout
        channel = grpc.insecure_channel(target)
        self.models = model_service_pb2_grpc.ModelServiceStub(channel)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self.grpc.RpcError as error:
            code = error.code()
            if code == self.grpc.StatusCode.UNAVAILABLE:
                raise _run.UserError(f"cannot connect to {self.target}: {one_line(error.details())} "
                                     f"(is the model server running? see deploy/README.md)") from None
            raise _run.UserError(f"{self.target} answered {code.name}: "
                                 f"{model_message(error.details())}") from None

    def check_available(self, model, version=None):
        from tensorflow_serving.apis import get_model_status_pb2
        request = get_model_status_pb2.GetModelStatusRequest()
        set_model_spec(request.model_spec, model, version=version)
        status = self.call(self.models.GetModelStatus, request)
        state_names = get_model_status_pb2.ModelVersionStatus.State.Name
        return check_status(model, self.target, [(entry.version, state_names(entry.state))
                                                 for entry in status.model_version_status])

    def signatures(self, model, version=None):
        from tensorflow_serving.apis import get_model_metadata_pb2
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        set_model_spec(request.model_spec, model, version=version)
        answer = self.call(self.predictions.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        answer.metadata["signature_def"].Unpack(signature_map)
        return _run.describe_signatures(signature_map.signature_def)

    def predict(self, model, signature_name, inputs, signature, version=None):
        import tensorflow as tf
        request = predict_request(model, signature_name, inputs, signature, version)
        answer = self.call(self.predictions.Predict, request)
        return {name: tf.make_ndarray(tensor) for name, tensor in answer.outputs.items()}


def set_model_spec(model_spec, model, signature_name=None, version=None):
    model_spec.name = model
    if signature_name is not None:
        model_spec.signature_name = signature_name
    if version is not None:
        model_spec.version.value = int(version)


def predict_request(model, signature_name, inputs, signature, version=None):
    """A PredictRequest with each input as a TensorProto of the signature's dtype."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    request = predict_pb2.PredictRequest()
    set_model_spec(request.model_spec, model, signature_name, version)
    for name, value in inputs.items():
        dtype = signature["inputs"][name][0]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value, dtype=dtype)))
    return request


# -- the recommender -------------------------------------------------------------------------------

def read_movie_table(path):
    """(movie ids, titles) in model index order, from movies.tsv or the export holding it."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = _run.find_exports(path)[0] / "assets" / MOVIE_TABLE
    if not path.is_file():
        raise _run.UserError(f"{path} does not exist; --movies takes the recommender's export "
                             f"(RUN/export/rbm or a version in it) or its assets/{MOVIE_TABLE}")
    return rbm_train.read_movie_table(path)


def parse_ratings(pairs):
    """[(movie_id, rating)] from texts like "50:5"; a movie may be rated once."""
    ratings = {}
    for pair in pairs:
        movie, _, rating = pair.partition(":")
        try:
            ratings_key, value = int(movie), float(rating)
        except ValueError:
            raise _run.UserError(f"--ratings takes MOVIE_ID:RATING pairs such as 50:5, got {pair!r}") from None
        if ratings_key in ratings:
            raise _run.UserError(f"movie {ratings_key} is rated twice")
        ratings[ratings_key] = value
    return list(ratings.items())


def ratings_vector(ratings, movie_ids, like_threshold):
    """[num_movies] float32: 1 (rating >= threshold), 0 (below) or -1 (not rated)."""
    from pipelines import movielens
    index_of = {movie_id: index for index, movie_id in enumerate(movie_ids)}
    vector = np.full(len(movie_ids), -1.0, dtype=np.float32)
    unknown = [movie_id for movie_id, _ in ratings if movie_id not in index_of]
    if unknown:
        raise _run.UserError(f"movie id(s) {', '.join(map(str, unknown))} are not among the "
                             f"{len(movie_ids)} movies the recommender was trained on")
    indices = [index_of[movie_id] for movie_id, _ in ratings]
    vector[indices] = movielens.like_labels([rating for _, rating in ratings], like_threshold)
    return vector


def recommend(client, movie_ids, titles, ratings, like_threshold, top, model=RECOMMENDER_MODEL,
              version=None):
    """[(movie_id, title, like probability)] of the top unrated movies, from the served model."""
    client.check_available(model, version)
    signature = signature_of(client.signatures(model, version), "recommend", model)
    width = signature["inputs"]["ratings"][1][-1]
    if width != len(movie_ids):
        raise _run.UserError(f"the served {model!r} takes {width} movies but the movie table has "
                             f"{len(movie_ids)}: use the table of the export being served")
    vector = ratings_vector(ratings, movie_ids, like_threshold)
    outputs = client.predict(model, "recommend", {"ratings": vector[np.newaxis],
                                                  "k": np.int32(top)}, signature, version)
    return [(int(movie_ids[index]), titles[index], float(score))
            for index, score in zip(outputs["movie_indices"][0], outputs["scores"][0])]


def signature_of(signatures, name, model):
    if name not in signatures:
        raise _run.UserError(f"model {model!r} has no signature {name!r} (it has "
                             f"{', '.join(signatures) or 'none'})")
    return signatures[name]


# -- any model -------------------------------------------------------------------------------------

def image_inputs(path, first, signature):
    """{input name: float32 images in [0, 1]} shaped to the signature's only input.

    An input of rank 2 gets flat [n, 784] rows, rank 3 [n, 28, 28], and rank 4 or an input of
    any rank [n, 28, 28, 1], the package's image layout.
    """
    from pipelines import images
    if len(signature["inputs"]) != 1:
        raise _run.UserError(f"--images needs a signature with one input, this one takes "
                             f"{', '.join(signature['inputs'])}; use --inputs-json")
    (name, (_, shape)), = signature["inputs"].items()
    try:
        pixels = images.read_idx(path)[:first].astype(np.float32) / 255.0
    except (OSError, images.IdxError) as error:
        raise _run.UserError(f"cannot read --images {path}: {one_line(error)}") from None
    if pixels.ndim != 3:
        raise _run.UserError(f"{path} holds arrays of shape {list(pixels.shape[1:])}, not images")
    count, rows, columns = pixels.shape
    layouts = {2: [count, rows * columns], 3: [count, rows, columns], 4: [count, rows, columns, 1]}
    rank = 4 if shape is None else len(shape)
    target = layouts.get(rank)
    if target is None or (shape is not None and any(
            wanted is not None and wanted != given for wanted, given in zip(shape[1:], target[1:]))):
        raise _run.UserError(f"input {name!r} takes shape {shape}; images from {path} are "
                             f"{rows}x{columns}")
    return {name: pixels.reshape(target)}


def json_inputs(path):
    try:
        values = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _run.UserError(f"cannot read --inputs-json {path}: {one_line(error)}") from None
    if not isinstance(values, dict):
        raise _run.UserError(f"--inputs-json {path} must hold an object {{\"input name\": value}}")
    return values


def describe_outputs(inputs, outputs):
    """Lines with each output's shape and values; the mean squared error for reconstructions."""
    lines = []
    flat_inputs = {name: np.asarray(value, dtype=np.float64) for name, value in inputs.items()}
    for name, value in outputs.items():
        lines.append(f"{name}: shape {list(value.shape)}")
        for source, given in flat_inputs.items():
            if given.size == value.size and given.shape[:1] == value.shape[:1]:
                errors = np.mean((value.reshape(len(value), -1) - given.reshape(len(given), -1)) ** 2,
                                 axis=1)
                lines.append(f"  mean squared error against {source} per example: "
                             + " ".join(f"{e:.4f}" for e in errors))
                break
        else:
            with np.printoptions(precision=4, suppress=True, threshold=60, edgeitems=5):
                lines.append("  " + str(value).replace("\n", "\n  "))
    return lines


# -- command line ----------------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfm-client", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--server", default=DEFAULT_SERVER,
                            help="REST address of the model server (default: %(default)s)")
    connection.add_argument("--grpc", metavar="HOST:PORT", default=None,
                            help="use gRPC at this address (e.g. localhost:8500) instead of REST; "
                                 "needs tensorflow-serving-api")
    connection.add_argument("--version", type=int, default=None,
                            help="ask for this model version (default: the newest the server serves)")
    connection.add_argument("--timeout", type=float, default=30.0,
                            help="seconds to wait for each answer (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    recommend_parser = commands.add_parser(
        "recommend", parents=[connection], help="titled movie recommendations from the RBM",
        description="Top unrated movies for a user's ratings, from the served recommender.")
    recommend_parser.add_argument("--ratings", nargs="+", required=True, metavar="MOVIE_ID:RATING",
                                  help="the user's ratings, e.g. 50:5 172:4 313:1 (release movie "
                                       "ids and stars)")
    recommend_parser.add_argument("--movies", required=True, type=pathlib.Path,
                                  help="the served export (RUN/export/rbm, a version in it, or its "
                                       f"assets/{MOVIE_TABLE}): maps movie ids to the model's columns")
    recommend_parser.add_argument("--like-threshold", type=float, default=3.0,
                                  help="a rating >= this is a like, as in training (the run's "
                                       "run_config.json like_threshold; default: %(default)s)")
    recommend_parser.add_argument("--top", type=int, default=10, help="how many (default: %(default)s)")
    recommend_parser.add_argument("--model", default=RECOMMENDER_MODEL,
                                  help="model name on the server (default: %(default)s)")

    predict_parser = commands.add_parser(
        "predict", parents=[connection], help="call any signature of any served model",
        description="Send inputs to a signature and print the outputs.")
    predict_parser.add_argument("--model", required=True,
                                help="model name on the server: rbm, dense, conv, denoising, vae, dbn")
    predict_parser.add_argument("--signature", default="serving_default",
                                help="signature name (default: %(default)s; see tfm-export --list)")
    source = predict_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=pathlib.Path,
                        help="an IDX image file (gz or raw), e.g. MNIST's t10k-images-idx3-ubyte.gz")
    source.add_argument("--inputs-json", type=pathlib.Path,
                        help="a JSON file {\"input name\": nested list, ...}")
    predict_parser.add_argument("--first", type=int, default=4,
                                help="with --images: how many images from the start (default: %(default)s)")
    predict_parser.add_argument("--output", type=pathlib.Path,
                                help="also write the outputs as JSON to this file")
    return parser


def make_client(args):
    if args.timeout <= 0:
        raise _run.UserError("--timeout must be positive")
    if args.grpc:
        return GrpcClient(args.grpc, timeout=args.timeout)
    return RestClient(args.server, timeout=args.timeout)


def _main(argv):
    args = build_parser().parse_args(argv)
    client = make_client(args)
    if args.command == "recommend":
        if args.top < 1:
            raise _run.UserError("--top must be at least 1")
        movie_ids, titles = read_movie_table(args.movies)
        ratings = parse_ratings(args.ratings)
        ranked = recommend(client, movie_ids, titles, ratings, args.like_threshold, args.top,
                           model=args.model, version=args.version)
        print(f"top {len(ranked)} of the movies not rated (like probability):")
        for rank, (movie_id, title, score) in enumerate(ranked, 1):
            print(f"{rank:3d}. {score:.3f}  {title}  [movie {movie_id}]")
        return 0

    if args.first < 1:
        raise _run.UserError("--first must be at least 1")
    version = client.check_available(args.model, args.version)
    signature = signature_of(client.signatures(args.model, args.version), args.signature, args.model)
    inputs = (image_inputs(args.images, args.first, signature) if args.images
              else json_inputs(args.inputs_json))
    missing = set(signature["inputs"]) - set(inputs)
    if missing:
        raise _run.UserError(f"signature {args.signature!r} also needs input(s) {', '.join(sorted(missing))}")
    outputs = client.predict(args.model, args.signature, inputs, signature, args.version)
    print(f"{args.model} version {version}, signature {args.signature!r}:")
    print("\n".join(describe_outputs(inputs, outputs)))
    if args.output:
        _run.write_json_atomic(args.output, {name: value.tolist() for name, value in outputs.items()})
    return 0


def main(argv=None):
    return _run.run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
