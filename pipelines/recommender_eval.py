"""How every like/dislike recommender is measured, and the baselines it is measured against.

Metrics of a model's like-probabilities on a part of a prepared split (`MovieLensPart`):

* on the known target ratings: ``accuracy``, ``error``, ``auc`` (ROC), ``log_loss``,
  ``squared_error`` (of the probabilities), ``num_ratings``, and ``majority_accuracy``: the
  accuracy of always predicting the label most common in the split's *training* ratings;
* ranking over the whole catalogue: for every user with a held-out like, the movies the user
  did not rate in the inputs are ranked by the model, and ``precision_at_10``,
  ``recall_at_10`` (hits over the user's held-out likes) and ``ndcg_at_10`` (binary relevance)
  are averaged over those users (``num_ranked_users``). A part without such users (the
  training part, whose targets are its inputs) has no ranking metrics.

A model is scored from the inputs only: the targets are never fed to it.

`Baselines` fits, on the training ratings alone, what a model has to beat: ``majority``
(always like), ``item_like_rate`` (each movie's like rate), ``user_item_biases`` (a logistic
model with a global, a user and a movie bias, L2, its strength chosen on validation) and, for
ranking, ``most_popular`` (the movies with most training ratings first).
"""

import functools
import math

import keras
import numpy as np
import tensorflow as tf

EVAL_BATCH_SIZE = 256
TOP_K = 10
CLASSIFICATION_METRICS = ("accuracy", "error", "auc", "log_loss")
RANKING_METRICS = ("precision_at_10", "recall_at_10", "ndcg_at_10")


def majority_label(train_like_rate):
    """The label "always predict it" gets most right on the training ratings."""
    return 1.0 if train_like_rate >= 0.5 else 0.0


class RatingMetrics:
    """Accumulates the metrics of this module's docstring over batches of dense ratings.

    `update(probability, inputs, targets)`: float32 [batch, num_movies] like-probabilities, the
    ratings the model saw and the ratings to predict, both in {-1 (missing), 0, 1}.
    """

    def __init__(self, majority_label=1.0, num_thresholds=2001, k=TOP_K):
        self.majority_label = float(majority_label)
        self.k = k
        self.accuracy = keras.metrics.BinaryAccuracy(threshold=0.5)
        self.auc = keras.metrics.AUC(num_thresholds=num_thresholds)
        self.log_loss = keras.metrics.BinaryCrossentropy()
        self.majority = keras.metrics.Mean()
        self.squared_error = keras.metrics.Mean()
        self.precision = keras.metrics.Mean()
        self.recall = keras.metrics.Mean()
        self.ndcg = keras.metrics.Mean()
        # 1 / log2(rank + 1) of ranks 1..k, and its running sums: the ideal DCG of n likes
        discount = 1.0 / np.log2(np.arange(2, k + 2))
        self.discount = tf.constant(discount, tf.float32)
        self.ideal_dcg = tf.constant(np.concatenate([[0.0], np.cumsum(discount)]), tf.float32)

    def _all(self):
        return (self.accuracy, self.auc, self.log_loss, self.majority, self.squared_error,
                self.precision, self.recall, self.ndcg)

    def update(self, probability, inputs, targets, scores=None):
        """`scores` rank the movies for the ranking metrics (default: the probabilities)."""
        known = targets >= 0
        known_probability = tf.boolean_mask(probability, known)
        labels = tf.cast(tf.boolean_mask(targets, known), tf.float32)
        self.accuracy.update_state(labels, known_probability)
        self.auc.update_state(labels, known_probability)
        self.log_loss.update_state(labels[:, tf.newaxis], known_probability[:, tf.newaxis])
        self.majority.update_state(tf.cast(tf.equal(labels, self.majority_label), tf.float32))
        self.squared_error.update_state(tf.square(known_probability - labels))
        self.update_ranking(probability if scores is None else scores, inputs, targets)

    def update_ranking(self, scores, inputs, targets):
        """Precision, recall and NDCG at k of each user with a held-out like."""
        candidates = inputs < 0  # not rated in what the model saw
        scores = tf.where(candidates, scores, tf.fill(tf.shape(scores), -np.inf))
        k = tf.minimum(self.k, tf.shape(scores)[-1])
        top = tf.math.top_k(scores, k=k)
        relevant = tf.cast((targets > 0.5) & candidates, tf.float32)
        hits = tf.gather(relevant, top.indices, batch_dims=1) * tf.cast(
            tf.math.is_finite(top.values), tf.float32)
        num_relevant = tf.reduce_sum(relevant, axis=-1)
        ranked = num_relevant > 0
        num_hits = tf.reduce_sum(hits, axis=-1)
        dcg = tf.linalg.matvec(hits, self.discount[:k])
        ideal = tf.gather(self.ideal_dcg, tf.cast(tf.minimum(num_relevant, tf.cast(k, tf.float32)), tf.int32))
        self.precision.update_state(tf.boolean_mask(num_hits / float(self.k), ranked))
        self.recall.update_state(tf.boolean_mask(num_hits / tf.maximum(num_relevant, 1.0), ranked))
        self.ndcg.update_state(tf.boolean_mask(dcg / tf.maximum(ideal, 1e-12), ranked))

    def reset(self):
        for metric in self._all():
            metric.reset_state()

    def result(self, ranking=True):
        """Python numbers; the ranking metrics only when some user was ranked."""
        accuracy = float(self.accuracy.result())
        result = {"accuracy": accuracy, "error": 1.0 - accuracy, "auc": float(self.auc.result()),
                  "log_loss": float(self.log_loss.result()),
                  "squared_error": float(self.squared_error.result()),
                  "majority_accuracy": float(self.majority.result()),
                  "num_ratings": int(self.majority.count.numpy())}
        num_ranked = int(self.ndcg.count.numpy())
        if ranking and num_ranked:
            result.update({"precision_at_10": float(self.precision.result()),
                           "recall_at_10": float(self.recall.result()),
                           "ndcg_at_10": float(self.ndcg.result()), "num_ranked_users": num_ranked})
        return result


class Evaluator:
    """Metrics of `predict(user_ids, inputs) -> like-probabilities` on parts of a split.

    `rank(probability)`, when given, turns the probabilities into the scores that rank the
    movies for the ranking metrics. The batch step is traced once (`predict` inside it), so
    evaluating every epoch is cheap.
    """

    def __init__(self, predict, num_movies, train_like_rate, rank=None):
        self.metrics = RatingMetrics(majority_label=majority_label(train_like_rate))
        ratings = tf.TensorSpec([None, num_movies], tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), ratings, ratings])
        def step(user_ids, inputs, targets):
            probability = predict(user_ids, inputs)
            self.metrics.update(probability, inputs, targets,
                                None if rank is None else rank(probability))

        self.step = step

    def __call__(self, part, batch_size=EVAL_BATCH_SIZE, ranking=True):
        self.metrics.reset()
        for batch in part.dataset(batch_size):
            self.step(batch["user_id"], batch["inputs"], batch["targets"])
        return self.metrics.result(ranking=ranking)


# -- baselines ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def training_triplets(part):
    """(user ids, movie indices, like labels) of every training rating, as numpy arrays.

    Read once per part: the model's bias initialisation and the baselines share them (do not
    modify the arrays)."""
    users, movies, labels = [], [], []
    for example in part.sparse_dataset().as_numpy_iterator():
        users.append(np.full(len(example["input_movies"]), example["user_id"], np.int64))
        movies.append(example["input_movies"])
        labels.append(example["input_labels"])
    return np.concatenate(users), np.concatenate(movies), np.concatenate(labels).astype(np.float32)


def like_rates(movies, labels, num_movies, prior_strength=2.0):
    """Each movie's like rate over the training ratings, shrunk towards the overall rate."""
    likes = np.bincount(movies, weights=labels, minlength=num_movies)
    counts = np.bincount(movies, minlength=num_movies)
    overall = likes.sum() / max(counts.sum(), 1)
    return ((likes + prior_strength * overall) / (counts + prior_strength)).astype(np.float32)


class UserItemBiases:
    """p(like) = sigmoid(global + user bias + movie bias), fitted by full-batch Adam with an L2
    penalty on the biases; a user never seen in training gets a user bias of 0."""

    def __init__(self, users, movies, labels, num_movies, l2=1e-4, steps=300, learning_rate=0.1):
        self.user_ids = np.unique(users)
        user_index = np.searchsorted(self.user_ids, users)
        rate = float(np.clip(labels.mean(), 1e-3, 1 - 1e-3))
        self.global_bias = tf.Variable(math.log(rate / (1 - rate)))
        self.user_bias = tf.Variable(tf.zeros([len(self.user_ids)]))
        self.movie_bias = tf.Variable(tf.zeros([num_movies]))
        variables = [self.global_bias, self.user_bias, self.movie_bias]
        optimizer = keras.optimizers.Adam(learning_rate)
        user_index, movies, labels = (tf.constant(user_index, tf.int32), tf.constant(movies, tf.int32),
                                      tf.constant(labels))

        @tf.function
        def fit():
            for _ in tf.range(steps):
                with tf.GradientTape() as tape:
                    logits = (self.global_bias + tf.gather(self.user_bias, user_index)
                              + tf.gather(self.movie_bias, movies))
                    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits)) + l2 * (
                        tf.reduce_sum(tf.square(self.user_bias)) + tf.reduce_sum(tf.square(self.movie_bias)))
                optimizer.apply(tape.gradient(loss, variables), variables)

        fit()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.user_ids, tf.int64),
                                                tf.range(len(self.user_ids), dtype=tf.int64)), -1)

    def __call__(self, user_ids, inputs):
        index = self.table.lookup(user_ids)
        user_bias = tf.where(index >= 0, tf.gather(self.user_bias, tf.maximum(index, 0)), 0.0)
        logits = self.global_bias + user_bias[:, tf.newaxis] + self.movie_bias[tf.newaxis, :]
        return tf.sigmoid(logits)


def _constant_rows(values):
    values = tf.constant(values, tf.float32)
    return lambda user_ids, inputs: tf.broadcast_to(values, tf.shape(inputs))


# which metrics each baseline has: a constant has no ranking, a count no probability
BASELINE_METRICS = {
    "majority": CLASSIFICATION_METRICS,
    "item_like_rate": CLASSIFICATION_METRICS + RANKING_METRICS,
    "user_item_biases": CLASSIFICATION_METRICS + RANKING_METRICS,
    "most_popular": ("auc",) + RANKING_METRICS,
}
BIAS_L2_CHOICES = (1e-5, 1e-4, 1e-3)


class Baselines:
    """The baselines of one split, fitted on its training ratings (the L2 of the biases model
    chosen on its validation ratings by AUC)."""

    def __init__(self, data):
        users, movies, labels = training_triplets(data.train)
        num_movies = data.num_movies
        rate = float(labels.mean())
        popularity = np.bincount(movies, minlength=num_movies).astype(np.float32)
        self.predictors = {
            "majority": _constant_rows(np.full(num_movies, rate)),
            "item_like_rate": _constant_rows(like_rates(movies, labels, num_movies)),
            "most_popular": _constant_rows(popularity / max(popularity.max(), 1.0)),
        }
        best = None
        for l2 in BIAS_L2_CHOICES:
            model = UserItemBiases(users, movies, labels, num_movies, l2=l2)
            auc = Evaluator(model, num_movies, data.train.like_rate)(data.validation, ranking=False)["auc"]
            if best is None or auc > best[0]:
                best = (auc, l2, model)
        self.bias_l2 = best[1]
        self.predictors["user_item_biases"] = best[2]
        self.evaluators = {name: Evaluator(predict, num_movies, data.train.like_rate)
                           for name, predict in self.predictors.items()}

    def evaluate(self, part, prefix=""):
        """{baseline: {prefix + metric: value}} on `part`: every metric name a model reports,
        None where the baseline has no such number (a constant ranks nothing)."""
        results = {}
        for name, evaluate in self.evaluators.items():
            metrics = evaluate(part)
            results[name] = {f"{prefix}{key}": metrics.get(key) if key in BASELINE_METRICS[name] else None
                             for key in CLASSIFICATION_METRICS + RANKING_METRICS}
        return results
