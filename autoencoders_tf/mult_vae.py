"""Mult-VAE (Liang, Krishnan, Hoffman & Jebara 2018, "Variational Autoencoders for
Collaborative Filtering"): a VAE with a multinomial likelihood over a user's movies.

A user is the binary vector x of their liked movies (ratings >= the like threshold;
`interactions="rated"` takes every rated movie). The encoder reads x normalised to unit length,
with dropout in training, through `hidden` tanh units to the mean and log-variance of a
`latent_dim` Gaussian; the decoder maps a code through `hidden` tanh units to logits over
every movie. Per user:

    loss = -sum_i x_i log softmax(logits)_i + beta * KL(q(z | x) || N(0, I))

beta rises linearly from 0 to `anneal_cap` over `anneal_steps` updates (KL annealing).
Scores are the logits of the posterior mean's decoding, so a user never seen in training is
scored from their ratings alone (the fold-in).

    model = MultVAERecommender(data.num_movies)
    model.fit(data.train, validation_data=data.validation)   # val_ndcg_at_10, ... every epoch
    model.evaluate(data.test)                                 # ndcg_at_10, recall_at_20, ...
"""

import keras
import numpy as np
import tensorflow as tf

from autoencoders_tf.ease import interaction_matrix
from autoencoders_tf.rec_base import KerasRecommender
from autoencoders_tf.rec_config import MultVAEConfig
from pipelines.rec_serving import RankingServing
from autoencoders_tf.vae import gaussian_kl
from pipelines.rating_parts import rating_part


def multinomial_log_likelihood(x, logits):
    """sum_i x_i log softmax(logits)_i per user: [batch]."""
    return tf.reduce_sum(x * tf.nn.log_softmax(logits, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="autoencoders_tf")
class MultVAE(keras.Model):
    """The Mult-VAE network over binary vectors of `num_movies`.

    ``loss`` is the mean over users of the negative multinomial log-likelihood plus beta times
    the KL term; ``neg_log_likelihood``, ``kl`` and ``beta`` are tracked beside it. Training
    draws z from the posterior; evaluation decodes its mean.
    """

    def __init__(self, num_movies, hidden=600, latent_dim=200, dropout=0.5, anneal_cap=0.2,
                 anneal_steps=2000, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_movies = int(num_movies)
        self.hidden = int(hidden)
        self.latent_dim = int(latent_dim)
        self.dropout = float(dropout)
        self.anneal_cap = float(anneal_cap)
        self.anneal_steps = int(anneal_steps)
        self.seed = int(seed)
        glorot = lambda offset: keras.initializers.GlorotUniform(seed + offset)
        self.input_dropout = keras.layers.Dropout(self.dropout, seed=seed)
        self.encoder_hidden = keras.layers.Dense(self.hidden, activation="tanh", kernel_initializer=glorot(0))
        self.posterior = keras.layers.Dense(2 * self.latent_dim, kernel_initializer=glorot(1))
        self.decoder_hidden = keras.layers.Dense(self.hidden, activation="tanh", kernel_initializer=glorot(2))
        self.logits = keras.layers.Dense(self.num_movies, kernel_initializer=glorot(3))
        for layer, width in ((self.encoder_hidden, self.num_movies), (self.posterior, self.hidden),
                             (self.decoder_hidden, self.latent_dim), (self.logits, self.hidden)):
            layer.build((None, width))
        self.seed_generator = keras.random.SeedGenerator(seed)
        # updates so far: what beta is annealed by (kept in checkpoints)
        self.update_count = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                            name="update_count")
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "neg_log_likelihood", "kl", "beta")}
        self.built = True

    def encode(self, x, training=False):
        """(z_mean, z_log_var) of q(z | x): each [batch, latent_dim]."""
        normalised = tf.math.l2_normalize(x, axis=-1)
        hidden = self.encoder_hidden(self.input_dropout(normalised, training=training))
        z_mean, z_log_var = tf.split(self.posterior(hidden), 2, axis=-1)
        return z_mean, z_log_var

    def decode(self, z):
        """Logits over every movie: [batch, num_movies]."""
        return self.logits(self.decoder_hidden(z))

    def call(self, x, training=False):
        """The logits of the posterior mean's decoding (what ranks a user's movies)."""
        return self.decode(self.encode(x, training=training)[0])

    def beta(self):
        return self.anneal_cap * tf.minimum(1.0, self.update_count / float(self.anneal_steps))

    def compute_losses(self, x, beta, training=False, epsilon=None):
        """{"loss", "neg_log_likelihood", "kl", "beta"} of a batch of binary vectors.

        `epsilon` (default: drawn in training, zero otherwise) is the reparameterisation noise.
        """
        z_mean, z_log_var = self.encode(x, training=training)
        if epsilon is None:
            epsilon = (keras.random.normal(tf.shape(z_mean), seed=self.seed_generator) if training
                       else tf.zeros_like(z_mean))
        z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
        neg_log_likelihood = -tf.reduce_mean(multinomial_log_likelihood(x, self.decode(z)))
        kl = tf.reduce_mean(gaussian_kl(z_mean, z_log_var))
        return {"loss": neg_log_likelihood + beta * kl, "neg_log_likelihood": neg_log_likelihood,
                "kl": kl, "beta": beta}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self.compute_losses(data, self.beta(), training=True)
        gradients = tape.gradient(losses["loss"], self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        self.update_count.assign_add(1.0)
        return self._track(losses)

    def test_step(self, data):
        return self._track(self.compute_losses(data, self.beta()))

    def _track(self, losses):
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def get_config(self):
        return {"num_movies": self.num_movies, "hidden": self.hidden, "latent_dim": self.latent_dim,
                "dropout": self.dropout, "anneal_cap": self.anneal_cap,
                "anneal_steps": self.anneal_steps, "seed": self.seed, "name": self.name}


class MultVAERecommender(KerasRecommender):
    """Mult-VAE as a recommender: fit on a training part, score anyone, export.

    Args:
      num_movies: the catalogue's width. config: a `MultVAEConfig`, or its fields as keywords.
    """

    model_name = "mult-vae"
    config_class = MultVAEConfig

    def build_network(self):
        config = self.config
        return MultVAE(self.num_movies, config.hidden, config.latent_dim, config.dropout,
                       config.anneal_cap, config.anneal_steps, config.seed)

    def interactions(self, stars):
        """Dense stars -> the binary vectors the network reads (numpy)."""
        return interaction_matrix(stars, self.config.interactions, self.like_threshold)

    def training_dataset(self, train, shuffle_seed=None):
        """Batches of training users' binary vectors [batch, num_movies], shuffled."""
        train = rating_part(train)
        stars = train.inputs.ratings
        chosen = stars != 0.0 if self.config.interactions == "rated" else stars >= self.like_threshold
        rows, movies = train.inputs.row_of_entries()[chosen], train.inputs.movies[chosen].astype(np.int64)
        # kept sparse, densified per batch: memory follows the number of ratings
        sparse = tf.RaggedTensor.from_value_rowids(tf.constant(movies, tf.int64), rows,
                                                   nrows=train.num_users)
        dataset = tf.data.Dataset.range(train.num_users)
        if shuffle_seed is not None:
            dataset = dataset.shuffle(train.num_users, seed=shuffle_seed, reshuffle_each_iteration=True)

        def batch_of(users):
            taken = tf.gather(sparse, users)
            indices = tf.stack([taken.value_rowids(), taken.flat_values], axis=1)
            return tf.scatter_nd(indices, tf.ones_like(taken.flat_values, tf.float32),
                                 tf.stack([tf.shape(users, tf.int64)[0], tf.cast(self.num_movies, tf.int64)]))

        return dataset.batch(self.config.batch_size).map(batch_of)

    def score(self, user_ids, stars):
        return self.network(tf.constant(self.interactions(stars))).numpy()

    def label_scores(self, ratings):
        """Logits from {-1, 0, 1} ratings, in TensorFlow (what the export traces)."""
        chosen = ratings >= 0.0 if self.config.interactions == "rated" else ratings > 0.5
        return self.network(tf.cast(chosen, tf.float32))

    def serving_module(self, movie_table_path=None):
        return RankingServing(self.num_movies, self.movie_ids, self.label_scores,
                              trackables=[self.network], movie_table_path=movie_table_path)
