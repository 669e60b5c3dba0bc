"""pipelines/serving_client.py, scripts/serve_client.py (tfm-client) and the deploy/ files.

The REST bodies are checked field by field against TensorFlow Serving's documented format
(tensorflow_serving/g3doc/api_rest.md). The client then talks to a stand-in for the model
server on 127.0.0.1: a small http.server that answers the documented endpoints (model status,
metadata, predict in row and columnar format, {"error": ...} on failure) by running the real
exports, so a success, an error answer and a refused connection are all exercised without
TensorFlow Serving itself (which this machine cannot run).
"""

import contextlib
import http.server
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import json_format
from google.protobuf import message_factory
from google.protobuf import text_format

from autoencoders_tf import VAE
from pipelines import images
from pipelines import movielens
from pipelines import serving_client
from pipelines.errors import UserError
from pipelines.movie_table import write_movie_table
from pipelines.runs import export_versioned
from pipelines.signatures import read_signatures
from rbm_tf import Recommender
from scripts import serve_client
from tests.conftest import run_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MOVIES = [(10, "Alpha (1990)"), (20, "Beta (1991)"), (35, "Gamma, The (1992)"),
          (41, "Delta (1993)"), (57, "Epsilon (1994)"), (68, "Zeta (1995)")]
MODEL_NAMES = ["rbm", "dense_autoencoder", "conv_autoencoder", "denoising_autoencoder", "vae", "dbn"]
QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{model name: export directory} for a tiny recommender and a tiny VAE."""
    root = tmp_path_factory.mktemp("exports")
    recommender = Recommender(len(MOVIES), movie_ids=[m for m, _ in MOVIES],
                              movie_titles=[t for _, t in MOVIES], hidden=4, seed=2)
    rbm = recommender.rbm
    # distinct weights, so that the ranking is not decided by ties
    for number, variable in enumerate([rbm.weights, rbm.visible_bias, rbm.hidden_bias]):
        variable.assign(tf.random.stateless_normal(variable.shape, seed=[4, number]))
    vae = VAE(hidden_units=8, latent_dim=2)
    vae(np.zeros([1, 28, 28, 1], np.float32))
    return {"rbm": export_versioned(root / "export", "rbm", recommender.export),
            "vae": export_versioned(root / "export", "vae", vae.export)}


# -- a stand-in for TensorFlow Serving's REST API ---------------------------------------------------

def served_signature_defs(export_dir):
    """{name: SignatureDef} of an export, as the model server reports them in its metadata."""
    from tensorflow.core.protobuf import saved_model_pb2
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((pathlib.Path(export_dir) / "saved_model.pb").read_bytes())
    return saved_model.meta_graphs[0].signature_def


class ModelServerStandIn(http.server.ThreadingHTTPServer):
    """The REST endpoints tfm-client uses, answered as api_rest.md documents, over real exports."""

    def __init__(self, exports, state="AVAILABLE"):
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.exports = {name: pathlib.Path(path) for name, path in exports.items()}
        self.loaded = {name: tf.saved_model.load(str(path)) for name, path in self.exports.items()}
        self.state = state
        self.requests = []  # (method, path, body or None)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def metadata(self, name):
        # the JSON mapping keeps the proto field names, as the documented answers show
        signature_defs = {key: json_format.MessageToDict(value, preserving_proto_field_name=True)
                          for key, value in served_signature_defs(self.exports[name]).items()}
        return {"model_spec": {"name": name, "signature_name": "", "version": self.exports[name].name},
                "metadata": {"signature_def": {"signature_def": signature_defs}}}

    def predict(self, name, body):
        signature_name = body.get("signature_name", "serving_default")
        function = self.loaded[name].signatures[signature_name]
        specs = function.structured_input_signature[1]
        if "instances" in body:
            rows = body["instances"]
            if isinstance(rows[0], dict):
                inputs = {key: [row[key] for row in rows] for key in rows[0]}
            else:
                inputs = {next(iter(specs)): rows}
        else:
            inputs = body["inputs"] if isinstance(body["inputs"], dict) else {next(iter(specs)): body["inputs"]}
        # as the server does: each JSON value becomes a tensor of the signature's dtype
        tensors = {key: tf.constant(np.asarray(value, dtype=specs[key].dtype.as_numpy_dtype))
                   for key, value in inputs.items()}
        outputs = {key: value.numpy().tolist() for key, value in function(**tensors).items()}
        if "instances" in body:
            if len(outputs) == 1:
                return {"predictions": next(iter(outputs.values()))}
            count = len(next(iter(outputs.values())))
            return {"predictions": [{key: value[i] for key, value in outputs.items()} for i in range(count)]}
        return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}


class StandInHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, code, payload):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self):
        match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata|:predict)?", self.path)
        if not match or match.group(1) not in self.server.exports:
            name = match.group(1) if match else self.path
            return 404, {"error": f"Servable not found for request: Latest({name})"}
        name, version, verb = match.groups()
        if version is not None and version != self.server.exports[name].name:
            return 404, {"error": f"Servable not found for request: Specific({name}, {version})"}
        return name, verb

    def do_GET(self):
        self.server.requests.append(("GET", self.path, None))
        routed = self.route()
        if isinstance(routed[0], int):
            return self.answer(*routed)
        name, verb = routed
        if verb == "/metadata":
            return self.answer(200, self.server.metadata(name))
        self.answer(200, {"model_version_status": [{
            "version": self.server.exports[name].name, "state": self.server.state,
            "status": {"error_code": "OK", "error_message": ""}}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(("POST", self.path, body))
        routed = self.route()
        if isinstance(routed[0], int):
            return self.answer(*routed)
        try:
            self.answer(200, self.server.predict(routed[0], body))
        except tf.errors.InvalidArgumentError as error:
            self.answer(400, {"error": error.message})


@contextlib.contextmanager
def model_server(exports, **options):
    server = ModelServerStandIn(exports, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(exports):
    with model_server(exports) as running:
        yield running


def free_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- REST bodies, field by field ------------------------------------------------------------------

def test_row_format_body_for_a_single_input_is_the_list_of_examples(exports):
    signature = read_signatures(exports["vae"])["serving_default"]
    pixels = np.linspace(0, 1, 2 * 28 * 28, dtype=np.float32).reshape([2, 28, 28, 1])
    body = serving_client.predict_body("serving_default", {"images": pixels}, signature)
    assert list(body) == ["signature_name", "instances"]
    assert body["signature_name"] == "serving_default"
    # one named input: "instances" is the list of its values, one per example, naturally nested
    assert len(body["instances"]) == 2
    assert np.asarray(body["instances"]).shape == (2, 28, 28, 1)
    assert all(isinstance(v, float) for v in np.ravel(body["instances"]).tolist())
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    np.testing.assert_array_equal(np.asarray(body["instances"], np.float32), pixels)


def test_row_format_body_for_several_inputs_has_one_object_per_example():
    signature = {"inputs": {"a": ("float32", [None, 2]), "b": ("int32", [None])}, "outputs": {}}
    body = serving_client.predict_body("pair", {"a": [[1.0, 2.0], [3.0, 4.0]], "b": [5, 6]}, signature)
    assert body == {"signature_name": "pair",
                    "instances": [{"a": [1.0, 2.0], "b": 5}, {"a": [3.0, 4.0], "b": 6}]}


def test_recommend_body_is_columnar_because_k_has_no_batch_dimension(exports):
    signature = read_signatures(exports["rbm"])["recommend"]
    ratings = np.array([[1, -1, 0, -1, -1, 1]], np.float32)
    body = serving_client.predict_body("recommend", {"ratings": ratings, "k": np.int32(3)}, signature)
    assert list(body) == ["signature_name", "inputs"]
    assert body["signature_name"] == "recommend"
    assert sorted(body["inputs"]) == ["k", "ratings"]
    assert body["inputs"]["k"] == 3 and isinstance(body["inputs"]["k"], int)
    assert body["inputs"]["ratings"] == [[1.0, -1.0, 0.0, -1.0, -1.0, 1.0]]


def test_predict_urls_follow_the_documented_paths():
    assert serving_client.model_path("rbm") == "/v1/models/rbm"
    assert serving_client.model_path("rbm", 3) == "/v1/models/rbm/versions/3"


def test_responses_in_both_formats_become_named_arrays():
    one = {"inputs": {"x": ("float32", [None, 2])}, "outputs": {"y": ("float32", [None])}}
    two = {"inputs": {"x": ("float32", [None, 2])},
           "outputs": {"y": ("float32", [None]), "z": ("int64", [None])}}
    for response, signature, expected in (
            ({"predictions": [1.5, 2.5]}, one, {"y": [1.5, 2.5]}),
            ({"outputs": [1.5, 2.5]}, one, {"y": [1.5, 2.5]}),
            ({"predictions": [{"y": 1.5, "z": 3}, {"y": 2.5, "z": 4}]}, two, {"y": [1.5, 2.5], "z": [3, 4]}),
            ({"outputs": {"y": [1.5, 2.5], "z": [3, 4]}}, two, {"y": [1.5, 2.5], "z": [3, 4]})):
        result = serving_client.outputs_from_response(response, signature)
        assert {key: value.tolist() for key, value in result.items()} == expected


def test_metadata_answer_reads_as_the_exports_own_signatures(exports, server):
    for name, path in exports.items():
        assert serving_client.signatures_from_metadata(server.metadata(name)) == read_signatures(path)


def metadata_of(signature_defs):
    return {"model_spec": {"name": "m"}, "metadata": {"signature_def": {"signature_def": signature_defs}}}


def test_metadata_shapes_read_by_hand_as_tensorflow_reads_them():
    # proto field names, as TF Serving answers; default fields left out, int64 sizes as strings
    answer = metadata_of({
        "serving_default": {
            "inputs": {"x": {"dtype": "DT_FLOAT", "name": "x:0",
                             "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "6"}]}},
                       "k": {"dtype": "DT_INT32", "tensor_shape": {}},
                       "any": {"dtype": "DT_DOUBLE", "tensor_shape": {"unknown_rank": True}}},
            "outputs": {"ids": {"dtype": "DT_INT64", "tensor_shape": {"dim": [{"size": "-1"}, {}]}}},
            "method_name": "tensorflow/serving/predict"},
        # lowerCamelCase, as protobuf's json_format writes by default; enum as its number
        "camel": {"inputs": {"s": {"dtype": 7, "tensorShape": {"unknownRank": True}}},
                  "outputs": {"b": {"dtype": "DT_BOOL", "tensorShape": {"dim": [{"size": 3}]}}}},
        "__saved_model_init_op": {"outputs": {"op": {"dtype": "DT_INVALID"}}}})
    assert serving_client.signatures_from_metadata(answer) == {
        "camel": {"inputs": {"s": ("string", None)}, "outputs": {"b": ("bool", [3])}},
        "serving_default": {"inputs": {"any": ("float64", None), "k": ("int32", []),
                                       "x": ("float32", [None, 6])},
                            "outputs": {"ids": ("int64", [None, 0])}}}


def test_metadata_dtype_names_match_tensorflows():
    from tensorflow.core.framework import types_pb2
    for enum_name, (number, name) in serving_client._DTYPES.items():
        assert types_pb2.DataType.Value(enum_name) == number
        assert tf.dtypes.as_dtype(number).name == name, enum_name


@pytest.mark.parametrize("answer", [
    {}, {"metadata": {}}, {"metadata": {"signature_def": {"signature_def": []}}},
    metadata_of({"s": {"inputs": {"x": {"dtype": "DT_NOPE"}}}}),
    metadata_of({"s": {"inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "x"}]}}}}})])
def test_a_metadata_answer_that_is_no_signature_map_is_a_user_error(answer):
    with pytest.raises(UserError, match="metadata"):
        serving_client.signatures_from_metadata(answer)


# -- the recommender's input ----------------------------------------------------------------------

def test_ratings_become_likes_and_dislikes_at_the_models_columns():
    movie_ids = [m for m, _ in MOVIES]
    ratings = serving_client.parse_ratings(["57:5", "10:2", "35:3", "68:2.5"])
    vector = serving_client.ratings_vector(ratings, movie_ids, like_threshold=3.0)
    assert vector.dtype == np.float32
    np.testing.assert_array_equal(vector, [0, -1, 1, -1, 1, 0])
    np.testing.assert_array_equal(serving_client.ratings_vector(ratings, movie_ids, 4.5),
                                  [0, -1, 0, -1, 1, 0])


@pytest.mark.parametrize("threshold", [1.0, 2.5, 3.0, 4.5])
def test_the_like_rule_is_trainings(threshold):
    stars = [0.5, 1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    movie_ids = list(range(len(stars)))
    vector = serving_client.ratings_vector(list(zip(movie_ids, stars)), movie_ids, threshold)
    np.testing.assert_array_equal(vector, movielens.like_labels(stars, threshold))


@pytest.mark.parametrize("pairs,message", [
    (["10"], "MOVIE_ID:RATING"), (["x:5"], "MOVIE_ID:RATING"), (["10:five"], "MOVIE_ID:RATING"),
    (["10:5", "10:1"], "rated twice")])
def test_malformed_ratings_are_user_errors(pairs, message):
    with pytest.raises(UserError, match=message):
        serving_client.parse_ratings(pairs)


def test_unknown_movie_ids_are_named():
    with pytest.raises(UserError, match="999, 998 are not among the 6 movies"):
        serving_client.ratings_vector([(999, 5.0), (10, 1.0), (998, 4.0)], [m for m, _ in MOVIES], 3.0)


def test_movie_table_is_read_from_the_export(exports):
    for path in (exports["rbm"], exports["rbm"].parent, exports["rbm"] / "assets" / "movies.tsv"):
        assert serving_client.read_movie_table(path) == ([m for m, _ in MOVIES], [t for _, t in MOVIES])


# -- against the stand-in server ------------------------------------------------------------------

def test_recommend_prints_titled_recommendations_matching_the_model(exports, server, capsys):
    before = len(server.requests)
    code, out, err = run_script(serve_client.main, ["recommend", "--server", server.url, "--movies", exports["rbm"],
                                 "--ratings", "10:5", "35:1", "68:4", "--top", "2"], capsys)
    assert code == 0, err
    # the status check comes first, then the metadata, then one predict request
    requests = server.requests[before:]
    assert [(method, path) for method, path, _ in requests] == [
        ("GET", "/v1/models/rbm"), ("GET", "/v1/models/rbm/metadata"),
        ("POST", "/v1/models/rbm:predict")]
    assert requests[2][2] == {"signature_name": "recommend",
                              "inputs": {"ratings": [[1.0, -1.0, 0.0, -1.0, -1.0, 1.0]], "k": 2}}
    expected = tf.saved_model.load(str(exports["rbm"])).signatures["recommend"](
        ratings=tf.constant([[1, -1, 0, -1, -1, 1]], tf.float32), k=tf.constant(2))
    assert int(expected["num_recommended"][0]) == 2
    titles = dict(MOVIES)
    lines = out.splitlines()
    assert lines[0] == "top 2 of the movies not rated (like probability):"
    assert len(lines) == 3
    for rank, (movie_id, score) in enumerate(zip(expected["movie_ids"][0].numpy(),
                                                 expected["scores"][0].numpy()), 1):
        assert lines[rank] == f"{rank:3d}. {score:.3f}  {titles[movie_id]}  [movie {movie_id}]"
        assert movie_id not in (10, 35, 68)


def test_recommend_asked_for_more_than_the_unrated_movies_gives_those_only(exports, server):
    client = serving_client.RestClient(server.url)
    ranked = serving_client.recommend(client, exports["rbm"], {10: 5, 20: 1, 35: 4, 41: 2}, top=5)
    # the served answer is padded to min(k, num_movies) = 5 entries; two are movies
    assert sorted(movie_id for movie_id, _, _ in ranked) == [57, 68]
    scores = [score for _, _, score in ranked]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)


def test_the_rest_path_loads_no_tensorflow_protobuf_or_pandas(exports, server):
    program = textwrap.dedent(f"""
        import sys
        from pipelines import serving_client
        client = serving_client.connect({server.url!r})
        ranked = serving_client.recommend(client, {str(exports["rbm"].parent)!r}, [(10, 5), (35, 1)],
                                          top=2)
        assert len(ranked) == 2, ranked
        served = serving_client.predict(client, "vae", "sample", inputs={{"num_samples": 2, "seed": 1}})
        assert served.outputs["images"].shape == (2, 28, 28, 1)
        print(sorted(m for m in ("tensorflow", "keras", "google.protobuf", "pandas") if m in sys.modules))
    """)
    before = len(server.requests)
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                               cwd=ROOT, timeout=120, env=QUIET_ENV)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"
    # it did talk to the server: status, metadata and predict for each model
    assert len(server.requests) - before == 6


def test_help_answers_without_loading_tensorflow_or_numpy():
    program = ("import sys; from scripts import serve_client\n"
               "try:\n    serve_client.main(['recommend', '--help'])\nexcept SystemExit:\n    pass\n"
               "print(sorted(m for m in ('tensorflow', 'numpy') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                               cwd=ROOT, timeout=60, env=QUIET_ENV)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "--like-threshold" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_predict_sends_idx_images_and_reports_reconstruction_error(exports, server, tmp_path, capsys):
    pixels = (np.arange(3 * 28 * 28) % 256).astype(np.uint8).reshape([3, 28, 28])
    idx_path = tmp_path / "t10k-images-idx3-ubyte"
    images.write_idx(idx_path, pixels)
    code, out, err = run_script(serve_client.main, ["predict", "--server", server.url, "--model", "vae", "--version", "1",
                                 "--images", idx_path, "--first", "2", "--output", tmp_path / "out.json"],
                                capsys)
    assert code == 0, err
    _, path, body = server.requests[-1]
    assert path == "/v1/models/vae/versions/1:predict"
    assert list(body) == ["signature_name", "instances"]
    sent = np.asarray(body["instances"], np.float32)
    np.testing.assert_array_equal(sent, pixels[:2, :, :, None] / np.float32(255.0))
    expected = tf.saved_model.load(str(exports["vae"])).signatures["serving_default"](
        images=tf.constant(sent))["reconstruction"].numpy()
    saved = json.loads((tmp_path / "out.json").read_text())
    np.testing.assert_allclose(np.asarray(saved["reconstruction"], np.float32), expected, rtol=1e-6)
    errors = np.mean((expected - sent) ** 2, axis=(1, 2, 3))
    assert out.splitlines() == [
        "vae version 1, signature 'serving_default':", "reconstruction: shape [2, 28, 28, 1]",
        "  mean squared error against images per example: " + " ".join(f"{e:.4f}" for e in errors)]


def test_predict_with_scalar_inputs_from_json(server, tmp_path, capsys):
    (tmp_path / "sample.json").write_text(json.dumps({"num_samples": 3, "seed": 7}))
    code, out, err = run_script(serve_client.main, ["predict", "--server", server.url, "--model", "vae",
                                 "--signature", "sample", "--inputs-json", tmp_path / "sample.json"],
                                capsys)
    assert code == 0, err
    assert server.requests[-1][2] == {"signature_name": "sample", "inputs": {"num_samples": 3, "seed": 7}}
    assert out.splitlines()[1] == "images: shape [3, 28, 28, 1]"


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    for fragment in fragments:
        assert fragment in err, err


def test_an_error_answer_is_one_line_with_the_models_message(server, tmp_path, capsys):
    (tmp_path / "bad.json").write_text(json.dumps({"images": np.full([1, 28, 28, 1], 2.0).tolist()}))
    code, _, err = run_script(serve_client.main, ["predict", "--server", server.url, "--model", "vae",
                               "--inputs-json", tmp_path / "bad.json"], capsys)
    assert_one_line_error(code, err, "/v1/models/vae:predict answered 400")
    # the model's own words, not the graph's node names
    assert err.rstrip().endswith("answered 400: images must be float32 pixel intensities in [0, 1]")


def test_model_message_keeps_the_assertion_text_only():
    error = ("Graph execution error:\n\nDetected at node assert_equal_1/Assert defined at ...\n"
             "assertion failed: [ratings must be -1 (missing), 0 (dislike) or 1 (like)] "
             "[Condition x == y did not hold element-wise:] [x (All:0) = ] [0]\n\t [[{{node x}}]]")
    assert serving_client.model_message(error) == "ratings must be -1 (missing), 0 (dislike) or 1 (like)"
    assert serving_client.model_message("assertion failed: [k must be at least 1]") == "k must be at least 1"
    assert serving_client.model_message("Servable not found\nfor request") == "Servable not found for request"


def test_unknown_model_and_missing_signature_are_one_line_errors(exports, server, capsys):
    code, _, err = run_script(serve_client.main, ["predict", "--server", server.url, "--model", "nope",
                               "--inputs-json", "x.json"], capsys)
    assert_one_line_error(code, err, "answered 404", "Servable not found for request: Latest(nope)")
    code, _, err = run_script(serve_client.main, ["predict", "--server", server.url, "--model", "vae", "--signature",
                               "classify", "--inputs-json", "x.json"], capsys)
    assert_one_line_error(code, err, "has no signature 'classify'", "sample", "serving_default")
    code, _, err = run_script(serve_client.main, ["recommend", "--server", server.url, "--movies", exports["rbm"],
                               "--ratings", "10:5", "--version", "7"], capsys)
    assert_one_line_error(code, err, "answered 404", "Specific(rbm, 7)")


def test_a_model_that_is_not_available_is_reported_before_any_prediction(exports, capsys):
    with model_server(exports, state="LOADING") as loading:
        code, _, err = run_script(serve_client.main, ["recommend", "--server", loading.url, "--movies", exports["rbm"],
                                   "--ratings", "10:5"], capsys)
        assert [method for method, _, _ in loading.requests] == ["GET"]
    assert_one_line_error(code, err, "model 'rbm' is not available", "version 1: LOADING")


def test_a_refused_connection_is_one_line(exports, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run_script(serve_client.main, ["recommend", "--server", url, "--movies", exports["rbm"],
                               "--ratings", "10:5", "--timeout", "5"], capsys)
    assert_one_line_error(code, err, f"cannot connect to {url}: connection refused")


def test_movie_table_of_another_export_is_refused(exports, server, tmp_path, capsys):
    table = tmp_path / "movies.tsv"
    write_movie_table(table, [1, 2, 3], ["a", "b", "c"])
    code, _, err = run_script(serve_client.main, ["recommend", "--server", server.url, "--movies", table,
                               "--ratings", "1:5"], capsys)
    assert_one_line_error(code, err, "takes 6 movies but the movie table has 3")


# -- gRPC -----------------------------------------------------------------------------------------

def test_grpc_predict_request_carries_typed_tensors(exports):
    pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    signature = read_signatures(exports["rbm"])["recommend"]
    ratings = np.array([[1, -1, 0, -1, -1, 1]], np.float32)
    request = serving_client.predict_request("rbm", "recommend", {"ratings": ratings, "k": 4},
                                           signature, version=2)
    assert request.model_spec.name == "rbm"
    assert request.model_spec.signature_name == "recommend"
    assert request.model_spec.version.value == 2
    assert sorted(request.inputs) == ["k", "ratings"]
    assert request.inputs["k"].dtype == tf.int32.as_datatype_enum
    assert tf.make_ndarray(request.inputs["k"]).shape == ()
    assert request.inputs["ratings"].dtype == tf.float32.as_datatype_enum
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["ratings"]), ratings)


@contextlib.contextmanager
def grpc_model_server(exports):
    """PredictionService and ModelService on 127.0.0.1 over the real exports, via grpcio."""
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    from tensorflow_serving.apis import get_model_metadata_pb2
    from tensorflow_serving.apis import get_model_status_pb2
    from tensorflow_serving.apis import model_service_pb2_grpc
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    loaded = {name: tf.saved_model.load(str(path)) for name, path in exports.items()}
    requests = []

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            requests.append(("GetModelStatus", request))
            status = get_model_status_pb2.GetModelStatusResponse()
            status.model_version_status.add(
                version=int(exports[request.model_spec.name].name),
                state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
            return status

    class Predictions(prediction_service_pb2_grpc.PredictionServiceServicer):
        def GetModelMetadata(self, request, context):
            requests.append(("GetModelMetadata", request))
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in served_signature_defs(exports[request.model_spec.name]).items():
                signature_map.signature_def[key].CopyFrom(value)
            answer = get_model_metadata_pb2.GetModelMetadataResponse()
            answer.metadata["signature_def"].Pack(signature_map)
            return answer

        def Predict(self, request, context):
            requests.append(("Predict", request))
            function = loaded[request.model_spec.name].signatures[request.model_spec.signature_name]
            outputs = function(**{key: tf.constant(tf.make_ndarray(value))
                                  for key, value in request.inputs.items()})
            answer = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                answer.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return answer

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Predictions(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", requests
    finally:
        server.stop(grace=None)


def test_grpc_recommend_matches_rest(exports, server, capsys):
    pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
    arguments = ["recommend", "--movies", exports["rbm"], "--ratings", "10:5", "35:1", "--top", "3"]
    code, rest_out, err = run_script(serve_client.main, [*arguments, "--server", server.url], capsys)
    assert code == 0, err
    with grpc_model_server(exports) as (target, requests):
        code, grpc_out, err = run_script(serve_client.main, [*arguments, "--grpc", target, "--version", "1"], capsys)
    assert code == 0, err
    assert grpc_out == rest_out
    assert [name for name, _ in requests] == ["GetModelStatus", "GetModelMetadata", "Predict"]
    predict = requests[-1][1]
    assert (predict.model_spec.name, predict.model_spec.signature_name,
            predict.model_spec.version.value) == ("rbm", "recommend", 1)


def test_grpc_support_is_imported_only_when_asked_for(tmp_path):
    program = ("import sys; from scripts import serve_client; serve_client.build_parser(); "
               "from pipelines import serving_client; serving_client.connect(); "
               "print(sorted(m for m in ('grpc', 'tensorflow_serving') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                               cwd=pathlib.Path(__file__).resolve().parents[1], timeout=300,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_grpc_without_tensorflow_serving_api_is_a_one_line_error(exports, monkeypatch, capsys):
    # None in sys.modules makes the import fail as if the package were not installed
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    code, _, err = run_script(serve_client.main, ["recommend", "--grpc", "127.0.0.1:8500", "--movies", exports["rbm"],
                               "--ratings", "10:5"], capsys)
    assert_one_line_error(code, err, "grpc needs the tensorflow-serving-api package")


def test_grpc_refused_connection_is_one_line(exports, capsys):
    pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
    target = f"127.0.0.1:{free_port()}"
    code, _, err = run_script(serve_client.main, ["recommend", "--grpc", target, "--movies", exports["rbm"],
                               "--ratings", "10:5", "--timeout", "3"], capsys)
    assert_one_line_error(code, err, f"cannot connect to {target}")


# -- deploy/ --------------------------------------------------------------------------------------

def test_models_config_lists_every_model_as_tensorflow_serving_parses_it():
    model_server_config_pb2 = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2")
    config = text_format.Parse((DEPLOY / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    assert [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config] == [
        (name, f"/models/{name}", "tensorflow") for name in MODEL_NAMES]


def test_monitoring_config_parses_as_monitoring_config_proto():
    # monitoring_config.proto is not in the pip package: its two messages, as published
    proto = descriptor_pb2.FileDescriptorProto(name="monitoring_config.proto",
                                               package="tensorflow.serving", syntax="proto3")
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1,
                         type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                         type_name=".tensorflow.serving.PrometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    message = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))
    config = text_format.Parse((DEPLOY / "monitoring.config").read_text(), message())
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"


def mounts_of(service):
    """{container path: host path} of a service's "host:container:ro" volumes."""
    return {target: source for source, target, _ in (v.rsplit(":", 2) for v in service["volumes"])}


def test_compose_file_serves_the_config_files_on_the_documented_ports():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    serving = compose["services"]["serving"]
    assert serving["image"].startswith("tensorflow/serving:")
    assert sorted(serving["ports"]) == ["8500:8500", "8501:8501"]
    mounts = mounts_of(serving)
    assert mounts["/models"] == "${TFM_MODELS_DIR:-./models}"
    flags = dict(flag.split("=", 1) for flag in serving["command"])
    for flag, file_name in (("--model_config_file", "models.config"),
                            ("--monitoring_config_file", "monitoring.config")):
        assert mounts[flags[flag]] == f"./{file_name}" and (DEPLOY / file_name).is_file()
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]
    assert prometheus["metrics_path"] == "/monitoring/prometheus/metrics"
    assert prometheus["static_configs"][0]["targets"] == ["serving:8501"]
    assert mounts_of(compose["services"]["prometheus"])["/etc/prometheus/prometheus.yml"] == "./prometheus.yml"
