"""How star-rating predictors are measured, and the baselines they are measured against.

``rmse`` and ``mae`` are over every held-out (target) rating of a part, predicted from the
user's input ratings only; ``num_ratings`` counts them. ``auc`` is the ROC-AUC of the predicted
stars as a score of like (a held-out rating >= the part's like threshold) against dislike: it
puts a rating model beside the like/dislike recommenders. A predictor is
``predict(user_ids, input_stars) -> predicted stars``, both dense float32 [users, num_movies]
with 0 where not rated (`pipelines.rating_parts`).

`RatingBaselines` fits, on training ratings alone, what a rating model has to beat:
``global_mean`` (every rating is the mean training rating) and ``user_item_biases``
(mean + user bias + movie bias, least squares with an L2 penalty on the biases, its strength
chosen on the validation ratings by RMSE). The biases model scores any user from their input
ratings alone: the user bias is refitted from them, given the movie biases (for a training
user this is the bias the fit found).
"""

import keras
import numpy as np

from pipelines.rating_parts import MISSING
from pipelines.rating_parts import rating_part
from pipelines.rating_parts import user_batches

RATING_METRICS = ("rmse", "mae")
LIKE_METRICS = ("auc",)
BIAS_L2_CHOICES = (1.0, 3.0, 10.0, 25.0, 50.0)
RATING_BASELINES = ("global_mean", "user_item_biases")


class RatingErrors:
    """Accumulates squared and absolute errors of predicted stars at the target ratings, and
    the ROC-AUC of the predicted stars as a like score."""

    def __init__(self, like_threshold=3.0):
        self.like_threshold = float(like_threshold)
        self.auc = keras.metrics.AUC(num_thresholds=2001)
        self.reset()

    def reset(self):
        self.squared = 0.0
        self.absolute = 0.0
        self.count = 0
        self.auc.reset_state()

    def update(self, predicted, targets):
        """`predicted`, `targets`: [users, num_movies]; targets MISSING where not held out."""
        known = targets != MISSING
        predicted = np.asarray(predicted, np.float64)[known]
        error = predicted - targets[known]
        self.squared += float(np.sum(error ** 2))
        self.absolute += float(np.sum(np.abs(error)))
        self.count += int(known.sum())
        # any increasing map of the stars into (0, 1) ranks them alike: the AUC's thresholds
        # are finest around the like threshold
        score = 1.0 / (1.0 + np.exp(self.like_threshold - predicted))
        self.auc.update_state((targets[known] >= self.like_threshold).astype(np.float32),
                              score.astype(np.float32))

    def result(self):
        if not self.count:
            return {"rmse": None, "mae": None, "auc": None, "num_ratings": 0}
        return {"rmse": float(np.sqrt(self.squared / self.count)),
                "mae": self.absolute / self.count, "auc": float(self.auc.result()),
                "num_ratings": self.count}


def evaluate_ratings(predict, part, batch_size=256):
    """{"rmse", "mae", "auc", "num_ratings"} of `predict` on `part`'s targets (a MovieLensPart
    or a RatingPart), each user predicted from their inputs."""
    part = rating_part(part)
    errors = RatingErrors(part.like_threshold)
    for batch in user_batches(part, batch_size):
        errors.update(predict(batch.user_ids, batch.inputs), batch.targets)
    return errors.result()


class GlobalMean:
    """Every rating is the mean training rating."""

    def __init__(self, train):
        self.mean = float(np.mean(rating_part(train).inputs.ratings))

    def __call__(self, user_ids, inputs):
        return np.full(np.shape(inputs), self.mean, np.float32)


class RatingBiases:
    """rating = mean + user bias + movie bias, fitted by alternating exact least-squares steps.

    Minimises sum (r - mean - b_user - b_movie)^2 + l2 (|b_user|^2 + |b_movie|^2) over the
    training inputs. A user's bias at prediction time is fitted from the ratings given
    (``user_bias``), so users never seen in training are scored too.
    """

    def __init__(self, train, l2=10.0, iterations=30):
        train = rating_part(train)
        self.l2 = float(l2)
        users = train.inputs.row_of_entries()
        movies, ratings = train.inputs.movies, train.inputs.ratings.astype(np.float64)
        self.mean = float(ratings.mean())
        self.scale = train.rating_scale()
        residual = ratings - self.mean
        user_count = np.bincount(users, minlength=train.num_users)
        movie_count = np.bincount(movies, minlength=train.num_movies)
        user_bias = np.zeros(train.num_users)
        movie_bias = np.zeros(train.num_movies)
        for _ in range(iterations):
            movie_bias = np.bincount(movies, residual - user_bias[users], train.num_movies) / (
                self.l2 + movie_count)
            user_bias = np.bincount(users, residual - movie_bias[movies], train.num_users) / (
                self.l2 + user_count)
        self.movie_bias = movie_bias.astype(np.float32)
        # the training users' biases, in the part's user order (what `user_bias` gives them)
        self.training_user_bias = user_bias.astype(np.float32)

    def user_bias(self, inputs):
        """Each user's bias from their ratings [users, num_movies] (MISSING where not rated)."""
        known = inputs != MISSING
        residual = np.where(known, inputs - self.mean - self.movie_bias, 0.0)
        return residual.sum(axis=-1) / (self.l2 + known.sum(axis=-1))

    def __call__(self, user_ids, inputs):
        predicted = self.mean + self.user_bias(inputs)[:, np.newaxis] + self.movie_bias[np.newaxis]
        return np.clip(predicted, *self.scale).astype(np.float32)


class RatingBaselines:
    """The rating baselines of one training part, the biases' L2 chosen on `validation`."""

    def __init__(self, train, validation, l2_choices=BIAS_L2_CHOICES):
        self.predictors = {"global_mean": GlobalMean(train)}
        scored = [(evaluate_ratings(model, validation)["rmse"], l2, model)
                  for l2, model in ((l2, RatingBiases(train, l2)) for l2 in l2_choices)]
        _, self.bias_l2, self.predictors["user_item_biases"] = min(scored, key=lambda s: s[0])

    def evaluate(self, part, prefix=""):
        """{baseline: {prefix + "rmse", prefix + "mae", prefix + "auc"}} on `part`."""
        results = {}
        for name, predict in self.predictors.items():
            metrics = evaluate_ratings(predict, part)
            results[name] = {f"{prefix}{key}": metrics[key] for key in RATING_METRICS + LIKE_METRICS}
        return results
