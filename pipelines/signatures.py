"""What every exported model's signatures share: input checks inside the graph, and reading
an export's signatures back.

The checks run inside the served graph because TensorFlow Serving feeds a tensor as sent,
whatever the signature declares: without them a wrong shape fails deep inside a MatMul, or
not at all.
"""

import pathlib

import tensorflow as tf

from pipelines.errors import RunError
from pipelines.images import IMAGE_SHAPE


def check_images(images):
    """Fail with a clear message unless `images` is [batch, 28, 28, 1] with values in [0, 1]."""
    shape_check = tf.debugging.assert_equal(
        tf.shape(images)[1:], tf.constant(IMAGE_SHAPE),
        message="images must have shape [batch, 28, 28, 1]")
    with tf.control_dependencies([shape_check]):
        range_check = tf.debugging.assert_equal(
            tf.reduce_all((images >= 0.0) & (images <= 1.0)), True,
            message="images must be float32 pixel intensities in [0, 1]")
    with tf.control_dependencies([range_check]):
        return tf.ensure_shape(tf.identity(images), (None,) + IMAGE_SHAPE)


def check_code(code, code_size):
    """Fail with a clear message unless `code` is [batch, code_size] of finite numbers."""
    code = tf.ensure_shape(code, [None, code_size])
    tf.debugging.assert_all_finite(code, message="code must hold finite numbers")
    return code


def check_ratings(ratings, num_movies):
    """Fail with a clear message unless ratings are [batch, num_movies] of -1, 0 or 1."""
    ratings = tf.ensure_shape(ratings, [None, num_movies])
    valid = (tf.equal(ratings, -1.0) | tf.equal(ratings, 0.0) | tf.equal(ratings, 1.0))
    tf.debugging.assert_equal(
        tf.reduce_all(valid), True,
        message="ratings must be -1 (missing), 0 (dislike) or 1 (like)")
    return ratings


def read_signatures(export_dir):
    """The signatures of the export at `export_dir`, as `describe_signatures` gives them.

    Read from saved_model.pb without loading the model, so it is quick and runs no graph.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    pb_path = pathlib.Path(export_dir) / "saved_model.pb"
    try:
        saved_model.ParseFromString(pb_path.read_bytes())
    except (OSError, ValueError) as error:
        raise RunError(f"cannot read {pb_path}: {error}") from None
    serving = [graph for graph in saved_model.meta_graphs if "serve" in graph.meta_info_def.tags]
    if not serving:
        raise RunError(f"{pb_path} has no MetaGraph tagged 'serve'")
    return describe_signatures(serving[0].signature_def)


def describe_signatures(signature_defs):
    """{signature name: {"inputs"|"outputs": {name: (dtype name, shape list or None)}}}.

    `signature_defs` maps names to SignatureDef protos (a MetaGraphDef's or a model server's).
    Shapes use None for a dimension of any size; None for the whole shape means any rank.
    """
    def describe(tensors):
        described = {}
        for name, info in sorted(tensors.items()):
            shape = tf.TensorShape(info.tensor_shape)
            described[name] = (tf.dtypes.as_dtype(info.dtype).name,
                               shape.as_list() if shape.rank is not None else None)
        return described

    return {name: {"inputs": describe(signature.inputs), "outputs": describe(signature.outputs)}
            for name, signature in sorted(signature_defs.items())
            if not name.startswith("__")}


def check_star_ratings(ratings, num_movies, lowest, highest):
    """Fail with a clear message unless ratings are [batch, num_movies] of 0 (not rated) or
    star values in [lowest, highest]."""
    ratings = tf.ensure_shape(ratings, [None, num_movies])
    valid = tf.equal(ratings, 0.0) | ((ratings >= lowest) & (ratings <= highest))
    tf.debugging.assert_equal(
        tf.reduce_all(valid), True,
        message=f"ratings must be 0 (not rated) or stars in [{lowest:g}, {highest:g}]")
    return ratings
