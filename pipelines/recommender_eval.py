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

Two evaluators compute them. `Evaluator` takes a dense `predict(user_ids, inputs)` over the
whole catalogue: simple, for small catalogues. `RaggedEvaluator` takes a `Scorer` and ragged
batches (`MovieLensPart.ragged_dataset`): it predicts the target ratings only, and finds each
user's top 10 by scanning the catalogue in the order of a per-movie upper bound of the score,
stopping once no movie left can enter anyone's top 10. Its cost follows the ratings, not
users x movies, and its numbers are the dense evaluator's.

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

from pipelines.movielens_data import flat_ratings

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
        # counted exactly: a float32 count is off by a few beyond 2^24 (16.7 M) ratings
        self.num_ratings = tf.Variable(0, dtype=tf.int64, trainable=False)
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
        self.update_classification(tf.boolean_mask(probability, known), tf.boolean_mask(targets, known))
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
        self.update_hits(hits, tf.reduce_sum(relevant, axis=-1))

    def update_hits(self, hits, num_relevant):
        """The ranking metrics from each user's `hits` [batch, k'] (1 where the movie ranked at
        that place is a held-out like, k' <= k) and `num_relevant` [batch] held-out likes."""
        k = tf.shape(hits)[-1]
        ranked = num_relevant > 0
        num_hits = tf.reduce_sum(hits, axis=-1)
        dcg = tf.linalg.matvec(hits, self.discount[:k])
        ideal = tf.gather(self.ideal_dcg, tf.cast(tf.minimum(num_relevant, tf.cast(k, tf.float32)), tf.int32))
        self.precision.update_state(tf.boolean_mask(num_hits / float(self.k), ranked))
        self.recall.update_state(tf.boolean_mask(num_hits / tf.maximum(num_relevant, 1.0), ranked))
        self.ndcg.update_state(tf.boolean_mask(dcg / tf.maximum(ideal, 1e-12), ranked))

    def update_classification(self, probability, labels):
        """The rating metrics of like-probabilities [n] of known labels [n] (0/1)."""
        labels = tf.cast(labels, tf.float32)
        self.accuracy.update_state(labels, probability)
        self.auc.update_state(labels, probability)
        self.log_loss.update_state(labels[:, tf.newaxis], probability[:, tf.newaxis])
        self.majority.update_state(tf.cast(tf.equal(labels, self.majority_label), tf.float32))
        self.squared_error.update_state(tf.square(probability - labels))
        self.num_ratings.assign_add(tf.size(labels, out_type=tf.int64))

    def reset(self):
        for metric in self._all():
            metric.reset_state()
        self.num_ratings.assign(0)

    def result(self, ranking=True):
        """Python numbers; the ranking metrics only when some user was ranked."""
        accuracy = float(self.accuracy.result())
        result = {"accuracy": accuracy, "error": 1.0 - accuracy, "auc": float(self.auc.result()),
                  "log_loss": float(self.log_loss.result()),
                  "squared_error": float(self.squared_error.result()),
                  "majority_accuracy": float(self.majority.result()),
                  "num_ratings": int(self.num_ratings.numpy())}
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


class Scorer:
    """What `RaggedEvaluator` asks of a model, on ragged batches of users.

    `user_state(batch)`: whatever the model computes once per batch of users from their
    inputs (e.g. hidden activations). `target_probability(state, batch)`: the like-probability
    of every target rating [n] (in the order of ``batch["target_movies"].values``).
    `rank_scores(state, movies)`: scores [batch or 1, len(movies)] that rank the given movies
    for each user. `rank_bound`: [num_movies] numbers no user's score of a movie exceeds, or
    None (then the whole catalogue is scored). This base class is a constant per movie: the
    same probability and ranking for everyone.
    """

    def __init__(self, probability=None, rank=None):
        self.probability = None if probability is None else tf.constant(probability, tf.float32)
        rank = probability if rank is None else rank
        self.rank = None if rank is None else tf.constant(rank, tf.float32)

    @property
    def rank_bound(self):
        return self.rank

    def user_state(self, batch):
        return ()

    def target_probability(self, state, batch):
        return tf.gather(self.probability, batch["target_movies"].values)

    def rank_scores(self, state, movies):
        return tf.gather(self.rank, movies)[tf.newaxis]


class RaggedEvaluator:
    """The metrics of a `Scorer` on ragged batches of a part (see the module docstring).

    Each user's top k come from scanning the movies in decreasing `rank_bound`, `chunk` at a
    time: once the next bound is below every ranked user's k-th best score, no movie left can
    enter a top k. Ties keep the earlier movie in that order, as `tf.math.top_k` would.
    """

    def __init__(self, scorer, num_movies, train_like_rate, k=TOP_K, chunk=1024):
        self.scorer = scorer
        self.num_movies = int(num_movies)
        self.k = k
        self.metrics = RatingMetrics(majority_label=majority_label(train_like_rate), k=k)
        self.chunk = int(chunk)
        # the scan order, set from the scorer's bound at every call (a model's bound may change)
        self.order = tf.Variable(tf.range(num_movies), trainable=False)
        self.position = tf.Variable(tf.range(num_movies), trainable=False)
        self.ordered_bound = tf.Variable(tf.zeros([num_movies + 1]), trainable=False)
        self.step = tf.function(self._step, reduce_retracing=True)

    def _set_order(self):
        bound = self.scorer.rank_bound
        if bound is None:  # scan everything
            self.ordered_bound.assign(tf.concat([tf.fill([self.num_movies], np.inf), [-np.inf]], 0))
            return
        bound = tf.cast(bound, tf.float32)
        order = tf.argsort(-bound, stable=True)
        self.order.assign(order)
        self.position.assign(tf.math.invert_permutation(order))
        self.ordered_bound.assign(tf.concat([tf.gather(bound, order), [-np.inf]], 0))

    def top_k(self, state, input_rows, input_movies, needed, batch_size):
        """Each user's k best unrated movies [batch, k] and their scores (-inf where a user has
        fewer than k); the scan stops when the users in `needed` [batch] have theirs."""
        k, chunk = self.k, self.chunk
        rated_position = tf.gather(self.position, input_movies)
        best_scores = tf.fill([batch_size, k], -np.inf)
        best_movies = tf.fill([batch_size, k], -1)

        def more(start, best_scores, best_movies):
            kth = tf.where(needed, best_scores[:, -1], np.inf)
            return (start < self.num_movies) & (self.ordered_bound[start] > tf.reduce_min(kth))

        def scan(start, best_scores, best_movies):
            end = tf.minimum(start + chunk, self.num_movies)
            movies = self.order[start:end]
            scores = tf.broadcast_to(self.scorer.rank_scores(state, movies), [batch_size, end - start])
            in_chunk = (rated_position >= start) & (rated_position < end)
            rated = tf.scatter_nd(
                tf.stack([tf.boolean_mask(input_rows, in_chunk),
                          tf.boolean_mask(rated_position, in_chunk) - start], axis=1),
                tf.ones([tf.reduce_sum(tf.cast(in_chunk, tf.int32))], tf.bool), [batch_size, end - start])
            scores = tf.where(rated, -np.inf, scores)
            top = tf.math.top_k(tf.concat([best_scores, scores], 1), k=k)
            candidates = tf.concat([best_movies, tf.broadcast_to(movies, [batch_size, end - start])], 1)
            return end, top.values, tf.gather(candidates, top.indices, batch_dims=1)

        _, best_scores, best_movies = tf.while_loop(more, scan, (0, best_scores, best_movies))
        return best_movies, best_scores

    def _step(self, batch, ranking):
        targets, inputs = batch["target_movies"], batch["input_movies"]
        state = self.scorer.user_state(batch)
        self.metrics.update_classification(self.scorer.target_probability(state, batch),
                                           batch["target_labels"].values)
        if not ranking:
            return
        batch_size = tf.shape(batch["user_id"])[0]
        likes = tf.ragged.boolean_mask(targets, batch["target_labels"] > 0)
        num_relevant = tf.cast(likes.row_lengths(), tf.float32)
        movies, scores = self.top_k(state, tf.cast(inputs.value_rowids(), tf.int32), inputs.values,
                                    num_relevant > 0, batch_size)
        liked = likes.to_tensor(default_value=-1)
        hits = tf.reduce_any(tf.equal(movies[:, :, tf.newaxis], liked[:, tf.newaxis, :]), axis=-1)
        hits = tf.cast(hits & tf.math.is_finite(scores), tf.float32)
        self.metrics.update_hits(hits, num_relevant)

    def __call__(self, part, batch_size=EVAL_BATCH_SIZE, ranking=True, max_users=None):
        """The metrics on `part`; on its first `max_users` users only when that is given (the
        records' order is a hash of the user: a sample that is the same every time)."""
        self.metrics.reset()
        if ranking:
            self._set_order()
        for batch in part.ragged_dataset(batch_size, max_users=max_users):
            self.step(batch, ranking)
        return self.metrics.result(ranking=ranking)


# -- baselines ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def training_triplets(part):
    """(user ids, movie indices, like labels) of every training rating, as numpy arrays.

    Read once per part: the model's bias initialisation and the baselines share them (do not
    modify the arrays)."""
    users, movies, _, labels = flat_ratings(part.ragged_tensors, "input")
    return users, movies, labels.astype(np.float32)


def like_rates(movies, labels, num_movies, prior_strength=2.0):
    """Each movie's like rate over the training ratings, shrunk towards the overall rate."""
    likes = np.bincount(movies, weights=labels, minlength=num_movies)
    counts = np.bincount(movies, minlength=num_movies)
    overall = likes.sum() / max(counts.sum(), 1)
    return ((likes + prior_strength * overall) / (counts + prior_strength)).astype(np.float32)


class UserItemBiases(Scorer):
    """p(like) = sigmoid(global + user bias + movie bias), fitted by full-batch Adam with an L2
    penalty on the biases; a user never seen in training gets a user bias of 0.

    A dense predictor (`__call__`) and a `Scorer`: for any one user it ranks movies by their
    bias alone, the same order for everyone."""

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

    def _user_bias(self, user_ids):
        index = self.table.lookup(user_ids)
        return tf.where(index >= 0, tf.gather(self.user_bias, tf.maximum(index, 0)), 0.0)

    def __call__(self, user_ids, inputs):
        logits = self.global_bias + self._user_bias(user_ids)[:, tf.newaxis] + self.movie_bias[tf.newaxis, :]
        return tf.sigmoid(logits)

    @property
    def rank_bound(self):
        return self.movie_bias

    def user_state(self, batch):
        return self._user_bias(batch["user_id"])

    def target_probability(self, user_bias, batch):
        targets = batch["target_movies"]
        return tf.sigmoid(self.global_bias + tf.gather(user_bias, targets.value_rowids())
                          + tf.gather(self.movie_bias, targets.values))

    def rank_scores(self, user_bias, movies):
        return tf.gather(self.movie_bias, movies)[tf.newaxis]


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
            "majority": Scorer(np.full(num_movies, rate)),
            "item_like_rate": Scorer(like_rates(movies, labels, num_movies)),
            "most_popular": Scorer(popularity / max(popularity.max(), 1.0)),
        }
        best = None
        for l2 in BIAS_L2_CHOICES:
            model = UserItemBiases(users, movies, labels, num_movies, l2=l2)
            auc = RaggedEvaluator(model, num_movies, data.train.like_rate)(
                data.validation, ranking=False)["auc"]
            if best is None or auc > best[0]:
                best = (auc, l2, model)
        self.bias_l2 = best[1]
        self.predictors["user_item_biases"] = best[2]
        self.evaluators = {name: RaggedEvaluator(predict, num_movies, data.train.like_rate)
                           for name, predict in self.predictors.items()}

    def evaluate(self, part, prefix=""):
        """{baseline: {prefix + metric: value}} on `part`: every metric name a model reports,
        None where the baseline has no such number (a constant ranks nothing)."""
        results = {}
        for name, evaluate in self.evaluators.items():
            metrics = evaluate(part, ranking="precision_at_10" in BASELINE_METRICS[name])
            results[name] = {f"{prefix}{key}": metrics.get(key) if key in BASELINE_METRICS[name] else None
                             for key in CLASSIFICATION_METRICS + RANKING_METRICS}
        return results
