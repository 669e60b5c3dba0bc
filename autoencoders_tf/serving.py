"""The autoencoders as servable modules: named, input-checked SavedModel signatures."""

import tensorflow as tf

from autoencoders_tf.vae import VAE
from pipelines.signatures import check_code
from pipelines.signatures import check_images


class AutoencoderServing(tf.Module):
    """SavedModel signatures of a trained autoencoder.

    ``reconstruct(images)`` -> ``reconstruction``; ``encode(images)`` -> ``code`` (the VAE:
    ``z_mean`` and ``z_log_var``); ``decode(code)`` -> ``images``; for the VAE also
    ``sample(num_samples, seed)`` -> ``images`` drawn from the prior. Images are float32
    [batch, 28, 28, 1] in [0, 1], in and out, whatever range the network works in.
    """

    def __init__(self, model, name=None):
        super().__init__(name=name)
        self.model = model
        # TensorFlow Serving restores variables in a session, which finds only the tf.Variables
        # a module tracks itself, not those inside Keras 3 variables (keras-team/keras#20095)
        self.model_variables = [variable.value for variable in model.variables]
        images_spec = tf.TensorSpec([None, None, None, None], tf.float32, name="images")
        code_spec = tf.TensorSpec([None, model.code_size], tf.float32, name="code")
        self.reconstruct = tf.function(self._reconstruct, input_signature=[images_spec])
        self.encode = tf.function(self._encode, input_signature=[images_spec])
        self.decode = tf.function(self._decode, input_signature=[code_spec])
        self.is_vae = isinstance(model, VAE)
        if self.is_vae:
            self.sample = tf.function(self._sample, input_signature=[
                tf.TensorSpec([], tf.int32, name="num_samples"), tf.TensorSpec([], tf.int32, name="seed")])

    def signatures(self):
        signatures = {"serving_default": self.reconstruct, "reconstruct": self.reconstruct,
                      "encode": self.encode, "decode": self.decode}
        if self.is_vae:
            signatures["sample"] = self.sample
        return signatures

    def _reconstruct(self, images):
        return {"reconstruction": self.model(check_images(images), training=False)}

    def _encode(self, images):
        images = check_images(images)
        if self.is_vae:
            z_mean, z_log_var = self.model.encode(images)
            return {"z_mean": z_mean, "z_log_var": z_log_var}
        return {"code": self.model.encode(images)}

    def _decode(self, code):
        return {"images": self.model.decode(check_code(code, self.model.code_size))}

    def _sample(self, num_samples, seed):
        tf.debugging.assert_positive(num_samples, message="num_samples must be at least 1")
        return {"images": self.model.sample(num_samples, tf.stack([seed, 0]))}


def export_autoencoder(model, path):
    """Write `model`'s serving signatures as a SavedModel at `path` (also `model.export(path)`)."""
    module = AutoencoderServing(model)
    tf.saved_model.save(module, str(path), signatures=module.signatures())


# the name tests and the serving client's fixtures use
save_serving = export_autoencoder
