"""A client for the models served by TensorFlow Serving: REST (default) or gRPC.

    from pipelines import serving_client
    client = serving_client.connect("http://localhost:8501")
    ranked = serving_client.recommend(client, "deploy/models/rbm", [(50, 5), (172, 5), (313, 1)])
    result = serving_client.predict(client, "vae", images="t10k-images-idx3-ubyte.gz", first=4)

Before predicting, a client checks that the model is AVAILABLE (GET /v1/models/NAME) and reads
its signatures from the server (GET /v1/models/NAME/metadata), so requests always match what is
served. REST predictions use POST /v1/models/NAME[/versions/N]:predict with "signature_name"
and "instances" (row format); a signature with an unbatched input, such as the recommender's
k, is sent in the columnar "inputs" format, as TF Serving's REST API requires
(tensorflow_serving/g3doc/api_rest.md).

The REST path imports no TensorFlow (nor its protobufs, nor pandas): the metadata answer, the
JSON mapping of SignatureDef protos, is read here by hand. The gRPC path needs
tensorflow-serving-api, and so TensorFlow.

Errors a user can fix (server down, model not available, a request the model rejects) are
`UserError`s with one-line messages.
"""

import dataclasses
import json
import pathlib
import re
import socket
import urllib.error
import urllib.request

import numpy as np

from pipelines.errors import UserError
from pipelines.movie_table import MOVIE_TABLE
from pipelines.movie_table import read_movie_table as _read_table

DEFAULT_SERVER = "http://localhost:8501"
RECOMMENDER_MODEL = "rbm"
DEFAULT_LIKE_THRESHOLD = 3.0

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


# -- signatures from REST metadata -----------------------------------------------------------------

# tensorflow/core/framework/types.proto: DataType enum name and number -> tf.DType.name
_DTYPES = {
    "DT_FLOAT": (1, "float32"), "DT_DOUBLE": (2, "float64"), "DT_INT32": (3, "int32"),
    "DT_UINT8": (4, "uint8"), "DT_INT16": (5, "int16"), "DT_INT8": (6, "int8"),
    "DT_STRING": (7, "string"), "DT_COMPLEX64": (8, "complex64"), "DT_INT64": (9, "int64"),
    "DT_BOOL": (10, "bool"), "DT_QINT8": (11, "qint8"), "DT_QUINT8": (12, "quint8"),
    "DT_QINT32": (13, "qint32"), "DT_BFLOAT16": (14, "bfloat16"), "DT_QINT16": (15, "qint16"),
    "DT_QUINT16": (16, "quint16"), "DT_UINT16": (17, "uint16"), "DT_COMPLEX128": (18, "complex128"),
    "DT_HALF": (19, "float16"), "DT_RESOURCE": (20, "resource"), "DT_VARIANT": (21, "variant"),
    "DT_UINT32": (22, "uint32"), "DT_UINT64": (23, "uint64"),
}
_DTYPE_NUMBERS = {number: name for number, name in _DTYPES.values()}


def _field(message, name):
    """A field of a proto's JSON mapping, under its proto name or its lowerCamelCase name."""
    camel = re.sub(r"_(\w)", lambda match: match.group(1).upper(), name)
    return message.get(name, message.get(camel))


def _dtype_name(dtype):
    if isinstance(dtype, int) and dtype in _DTYPE_NUMBERS:
        return _DTYPE_NUMBERS[dtype]
    if dtype in _DTYPES:
        return _DTYPES[dtype][1]
    raise UserError(f"the server's metadata names an unknown dtype {dtype!r}")


def _shape(tensor_shape):
    """A TensorShapeProto's JSON mapping as a list (None for any size), None for any rank.

    Fields at their default are left out of the mapping: no "dim" is a scalar, and a size is an
    int64, which the mapping writes as a string.
    """
    tensor_shape = tensor_shape or {}
    if _field(tensor_shape, "unknown_rank"):
        return None
    sizes = [int(dim.get("size", 0)) for dim in tensor_shape.get("dim", [])]
    return [None if size < 0 else size for size in sizes]


def _describe_tensors(tensors):
    return {name: (_dtype_name(info.get("dtype", "DT_INVALID")), _shape(_field(info, "tensor_shape")))
            for name, info in sorted((tensors or {}).items())}


def signatures_from_metadata(metadata):
    """The signatures of a REST metadata answer, as `pipelines.signatures.describe_signatures`
    gives them for SignatureDef protos: {name: {"inputs"|"outputs": {name: (dtype, shape)}}}."""
    try:
        signature_defs = metadata["metadata"]["signature_def"]["signature_def"]
        return {name: {"inputs": _describe_tensors(signature.get("inputs")),
                       "outputs": _describe_tensors(signature.get("outputs"))}
                for name, signature in sorted(signature_defs.items()) if not name.startswith("__")}
    except (KeyError, TypeError, AttributeError, ValueError):
        raise UserError(f"the server's metadata answer is not a signature_def map: "
                        f"{one_line(json.dumps(metadata), 200)}") from None


def signature_of(signatures, name, model):
    if name not in signatures:
        raise UserError(f"model {model!r} has no signature {name!r} (it has "
                        f"{', '.join(signatures) or 'none'})")
    return signatures[name]


def check_status(model, server, versions):
    """The served version among [(version, state)], or UserError naming the states seen."""
    available = [int(version) for version, state in versions if state == "AVAILABLE"]
    if not available:
        seen = ", ".join(f"version {version}: {state}" for version, state in versions) or "no versions"
        raise UserError(f"model {model!r} is not available on {server} ({seen})")
    return max(available)


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
        raise UserError(f"the server's answer has neither 'predictions' nor 'outputs': "
                        f"{one_line(json.dumps(response), 200)}")
    return {name: np.asarray(value) for name, value in result.items()}


class RestClient:
    """TF Serving's REST API at `server` (http://host:port) through urllib."""

    def __init__(self, server=DEFAULT_SERVER, timeout=30.0):
        if timeout <= 0:
            raise UserError("timeout must be positive")
        self.server = server.rstrip("/")
        if not self.server.startswith(("http://", "https://")):
            raise UserError(f"server must be a URL such as {DEFAULT_SERVER}, got {server!r}")
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
            raise UserError(f"{url} answered {error.code}: {self._error_message(error)}") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionRefusedError):
                raise UserError(f"cannot connect to {self.server}: connection refused "
                                f"(is the model server running? see deploy/README.md)") from None
            raise UserError(f"cannot reach {self.server}: {one_line(error.reason)}") from None
        except (TimeoutError, socket.timeout):
            raise UserError(f"{url} did not answer within {self.timeout:g} s") from None
        except ConnectionError as error:
            raise UserError(f"connection to {self.server} failed: {one_line(error)}") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise UserError(f"{url} answered with something that is not JSON: "
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


# -- gRPC ------------------------------------------------------------------------------------------

class GrpcClient:
    """TF Serving's gRPC API at `target` (host:port), via tensorflow-serving-api."""

    def __init__(self, target, timeout=30.0):
        if timeout <= 0:
            raise UserError("timeout must be positive")
        try:
            import grpc
            from tensorflow_serving.apis import model_service_pb2_grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc
        except ImportError:
            raise UserError("grpc needs the tensorflow-serving-api package "
                            "(pip install tensorflow-serving-api)") from None
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
                raise UserError(f"cannot connect to {self.target}: {one_line(error.details())} "
                                f"(is the model server running? see deploy/README.md)") from None
            raise UserError(f"{self.target} answered {code.name}: "
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

        from pipelines.signatures import describe_signatures
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        set_model_spec(request.model_spec, model, version=version)
        answer = self.call(self.predictions.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        answer.metadata["signature_def"].Unpack(signature_map)
        return describe_signatures(signature_map.signature_def)

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


def connect(server=DEFAULT_SERVER, grpc=None, timeout=30.0):
    """A gRPC client at `grpc` (host:port) when given, else a REST client at `server`."""
    if grpc:
        return GrpcClient(grpc, timeout=timeout)
    return RestClient(server, timeout=timeout)


# -- the recommender -------------------------------------------------------------------------------

def movie_table_path(path):
    """movies.tsv of the recommender's export: `path` is the table, a version or model directory.

    Found without TensorFlow: a model directory means its highest version.
    """
    path = pathlib.Path(path)
    if path.is_dir() and not (path / "assets").is_dir():
        versions = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())
        if versions:
            path = path / str(versions[-1])
    if path.is_dir():
        path = path / "assets" / MOVIE_TABLE
    if not path.is_file():
        raise UserError(f"{path} does not exist; movies takes the recommender's export "
                        f"(RUN/export/rbm or a version in it) or its assets/{MOVIE_TABLE}")
    return path


def read_movie_table(path):
    """(movie ids, titles) in model index order, from movies.tsv or the export holding it."""
    return _read_table(movie_table_path(path))


def parse_ratings(pairs):
    """[(movie_id, rating)] from texts like "50:5"; a movie may be rated once."""
    ratings = {}
    for pair in pairs:
        movie, _, rating = pair.partition(":")
        try:
            movie_id, value = int(movie), float(rating)
        except ValueError:
            raise UserError(f"ratings takes MOVIE_ID:RATING pairs such as 50:5, got {pair!r}") from None
        if movie_id in ratings:
            raise UserError(f"movie {movie_id} is rated twice")
        ratings[movie_id] = value
    return list(ratings.items())


def ratings_vector(ratings, movie_ids, like_threshold=DEFAULT_LIKE_THRESHOLD):
    """[num_movies] float32: 1 (rating >= threshold), 0 (below) or -1 (not rated).

    The like rule is training's (`pipelines.movielens.like_labels`), written out here so that
    the REST path does not load pandas.
    """
    index_of = {movie_id: index for index, movie_id in enumerate(movie_ids)}
    unknown = [movie_id for movie_id, _ in ratings if movie_id not in index_of]
    if unknown:
        raise UserError(f"movie id(s) {', '.join(map(str, unknown))} are not among the "
                        f"{len(movie_ids)} movies the recommender was trained on")
    vector = np.full(len(movie_ids), -1.0, dtype=np.float32)
    for movie_id, rating in ratings:
        vector[index_of[movie_id]] = 1.0 if rating >= like_threshold else 0.0
    return vector


def recommend(client, movies, ratings, like_threshold=DEFAULT_LIKE_THRESHOLD, top=10,
              model=RECOMMENDER_MODEL, version=None):
    """[(movie_id, title, like probability)] of the `top` unrated movies, from the served model.

    movies: the served export (or its movies.tsv), which maps release movie ids to the model's
    columns and titles; ratings: [(movie_id, rating)] in the release's ids and stars (a dict
    {movie_id: rating} too); like_threshold: the run's.
    """
    if top < 1:
        raise UserError("top must be at least 1")
    movie_ids, titles = read_movie_table(movies)
    ratings = list(ratings.items()) if isinstance(ratings, dict) else list(ratings)
    vector = ratings_vector(ratings, movie_ids, like_threshold)
    client.check_available(model, version)
    signature = signature_of(client.signatures(model, version), "recommend", model)
    width = signature["inputs"]["ratings"][1][-1]
    if width != len(movie_ids):
        raise UserError(f"the served {model!r} takes {width} movies but the movie table has "
                        f"{len(movie_ids)}: use the table of the export being served")
    outputs = client.predict(model, "recommend", {"ratings": vector[np.newaxis],
                                                  "k": np.int32(top)}, signature, version)
    indices, scores = outputs["movie_indices"][0], outputs["scores"][0]
    # entries after num_recommended pad a user with fewer than `top` unrated movies
    count = int(outputs["num_recommended"][0]) if "num_recommended" in outputs else len(indices)
    return [(int(movie_ids[index]), titles[index], float(score))
            for index, score in zip(indices[:count], scores[:count])]


# -- any model -------------------------------------------------------------------------------------

def image_inputs(path, first, signature):
    """{input name: float32 images in [0, 1]} shaped to the signature's only input.

    An input of rank 2 gets flat [n, 784] rows, rank 3 [n, 28, 28], and rank 4 or an input of
    any rank [n, 28, 28, 1], the package's image layout.
    """
    from pipelines import images
    if len(signature["inputs"]) != 1:
        raise UserError(f"images needs a signature with one input, this one takes "
                        f"{', '.join(signature['inputs'])}; give the inputs by name")
    (name, (_, shape)), = signature["inputs"].items()
    try:
        pixels = images.read_idx(path)[:first].astype(np.float32) / 255.0
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or one_line(error)}") from None
    if pixels.ndim != 3:
        raise UserError(f"{path} holds arrays of shape {list(pixels.shape[1:])}, not images")
    count, rows, columns = pixels.shape
    layouts = {2: [count, rows * columns], 3: [count, rows, columns], 4: [count, rows, columns, 1]}
    rank = 4 if shape is None else len(shape)
    target = layouts.get(rank)
    if target is None or (shape is not None and any(
            wanted is not None and wanted != given for wanted, given in zip(shape[1:], target[1:]))):
        raise UserError(f"input {name!r} takes shape {shape}; images from {path} are "
                        f"{rows}x{columns}")
    return {name: pixels.reshape(target)}


def json_inputs(path):
    """{input name: value} from a JSON file holding one object."""
    try:
        values = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {one_line(error)}") from None
    if not isinstance(values, dict):
        raise UserError(f"{path} must hold an object {{\"input name\": value}}")
    return values


@dataclasses.dataclass
class Prediction:
    """What a served signature answered: the version, the inputs sent and the outputs."""
    model: str
    version: int
    signature_name: str
    inputs: dict
    outputs: dict

    def describe(self):
        """Lines with each output's shape and values; the mean squared error for reconstructions."""
        return describe_outputs(self.inputs, self.outputs)

    def save(self, path):
        """The outputs as JSON {name: nested list}, written atomically."""
        from pipelines.runs import write_json_atomic  # loads TensorFlow: only when asked
        write_json_atomic(path, {name: value.tolist() for name, value in self.outputs.items()})


def predict(client, model, signature_name="serving_default", inputs=None, images=None, first=4,
            version=None):
    """Call a served signature with `inputs` ({name: value}, or a JSON file of them) or the
    `first` images of an IDX file (`images`) shaped to the signature's input."""
    if (inputs is None) == (images is None):
        raise UserError("give either inputs or images")
    if images is not None and first < 1:
        raise UserError("first must be at least 1")
    served = client.check_available(model, version)
    signature = signature_of(client.signatures(model, version), signature_name, model)
    if images is not None:
        inputs = image_inputs(images, first, signature)
    elif not isinstance(inputs, dict):
        inputs = json_inputs(inputs)
    missing = set(signature["inputs"]) - set(inputs)
    if missing:
        raise UserError(f"signature {signature_name!r} also needs input(s) {', '.join(sorted(missing))}")
    outputs = client.predict(model, signature_name, inputs, signature, version)
    return Prediction(model, served, signature_name, inputs, outputs)


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
