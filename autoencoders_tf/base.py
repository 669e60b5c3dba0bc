"""The base every autoencoder here shares: pixel scaling, the training and test steps, trackers.

Like TensorFlow Recommenders' ``Model``, the base owns ``train_step`` and ``test_step`` once;
each variant overrides only ``compute_losses`` (and, for the VAE, how it encodes).
"""

import keras
import tensorflow as tf

from autoencoders_tf.config import INPUT_RANGES
from pipelines.settings import one_of


def images_of(data):
    """The images of a batch that is either images or (images, labels)."""
    return data[0] if isinstance(data, (tuple, list)) else data


class Autoencoder(keras.Model):
    """An encoder and a decoder over 28x28x1 images given in [0, 1].

    ``input_range`` is the range the network works in: "symmetric" feeds it 2x-1 in [-1, 1]
    and gives the decoder a tanh output, "unit" keeps [0, 1] with a sigmoid output. Whatever
    the range, ``call``, ``decode`` and the ``mse`` metric speak [0, 1] pixels; ``loss`` is the
    mean squared error in the network's own range (four times the pixel MSE on [-1, 1]).
    """

    loss_names = ("loss", "mse")

    def __init__(self, encoder, decoder, input_range="symmetric", seed=0, **kwargs):
        super().__init__(**kwargs)
        output_activation(input_range)  # validates it
        self.encoder = encoder
        self.decoder = decoder
        self.input_range = input_range
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_names}
        # encoder and decoder start from keras.Input, so every weight exists already
        self.built = True

    @property
    def code_size(self):
        return int(self.encoder.output_shape[-1])

    def to_network(self, pixels):
        """[0, 1] pixels -> the network's input range."""
        return pixels * 2.0 - 1.0 if self.input_range == "symmetric" else pixels

    def to_pixels(self, outputs):
        """The network's output range -> [0, 1] pixels."""
        return (outputs + 1.0) / 2.0 if self.input_range == "symmetric" else outputs

    def encode(self, images, training=False):
        """The code of each image: float32 [batch, code_size]."""
        return self.encoder(self.to_network(images), training=training)

    def decode(self, code, training=False):
        """Images in [0, 1] from codes: float32 [batch, 28, 28, 1]."""
        return self.to_pixels(self.decoder(code, training=training))

    def call(self, images, training=False):
        """The reconstruction of `images` (float32 [batch, 28, 28, 1] in [0, 1]), in [0, 1]."""
        return self.decode(self.encode(images, training=training), training=training)

    def compute_losses(self, images, training=False):
        """{"loss": what the optimiser minimises, other terms...} for a batch of images."""
        return self.reconstruction_losses(images, images, training=training)

    def reconstruction_losses(self, inputs, targets, training=False):
        """Squared error of the reconstruction of `inputs` against `targets` (both [0, 1])."""
        outputs = self.decoder(self.encode(inputs, training=training), training=training)
        return {"loss": tf.reduce_mean(tf.square(outputs - self.to_network(targets))),
                "mse": pixel_mse(self.to_pixels(outputs), targets)}

    def train_step(self, data):
        images = images_of(data)
        with tf.GradientTape() as tape:
            losses = self.compute_losses(images, training=True)
            # under a tf.distribute strategy the optimizer sums the replicas' gradients: each
            # replica's mean over its share, divided by their number, sums to the global mean
            replicas = tf.distribute.get_replica_context().num_replicas_in_sync
            objective = losses["loss"] / replicas if replicas > 1 else losses["loss"]
        gradients = tape.gradient(objective, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self.update_trackers(losses)

    def test_step(self, data):
        return self.update_trackers(self.compute_losses(images_of(data), training=False))

    def update_trackers(self, losses):
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        logs = {name: tracker.result() for name, tracker in self.trackers.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 averages a multi-worker step's logs over axis 0, which a scalar lacks
            # (keras-team/keras#20585): give it one, the mean over replicas is then a scalar
            logs = {name: value[tf.newaxis] for name, value in logs.items()}
        return logs

    @property
    def metrics(self):
        return list(self.trackers.values())

    def get_config(self):
        return {"input_range": self.input_range, "seed": self.seed, "name": self.name}

    def export(self, filepath):
        """Write this model as a SavedModel at `filepath` for TensorFlow Serving.

        Replaces Keras's generic ``Model.export``: the SavedModel gets the named, input-checked
        signatures of `autoencoders_tf.serving.AutoencoderServing` (reconstruct, encode,
        decode, and the VAE's sample).
        """
        from autoencoders_tf.serving import export_autoencoder

        export_autoencoder(self, filepath)


def output_activation(input_range):
    """The decoder's last activation for a network working in `input_range`."""
    one_of("input_range", input_range, INPUT_RANGES)
    return "tanh" if input_range == "symmetric" else "sigmoid"


def pixel_mse(reconstruction, images):
    """Mean squared error on the [0, 1] pixel scale, averaged over pixels and images."""
    return tf.reduce_mean(tf.square(reconstruction - images))
