"""Metrics of a like/dislike predictor on known ratings, always beside the majority baseline."""

import keras
import tensorflow as tf


class RatingMetrics:
    """Accuracy, ROC-AUC, the majority baseline's accuracy and squared error over known ratings only.

    `update` takes like-probabilities and labels of shape [batch, num_movies] and a mask that
    is True where a rating is known; everything else is ignored. The majority baseline is the
    accuracy of always predicting `majority_label` (the training set's most common label).
    """

    def __init__(self, majority_label=1.0, num_thresholds=2001):
        self.majority_label = float(majority_label)
        self.accuracy = keras.metrics.BinaryAccuracy(threshold=0.5)
        self.auc = keras.metrics.AUC(num_thresholds=num_thresholds)
        self.majority_baseline = keras.metrics.Mean()
        self.squared_error = keras.metrics.Mean()

    def update(self, like_probability, labels, mask):
        probability = tf.boolean_mask(like_probability, mask)
        known_labels = tf.cast(tf.boolean_mask(labels, mask), tf.float32)
        self.accuracy.update_state(known_labels, probability)
        self.auc.update_state(known_labels, probability)
        self.majority_baseline.update_state(
            tf.cast(tf.equal(known_labels, self.majority_label), tf.float32))
        self.squared_error.update_state(tf.square(probability - known_labels))

    def reset(self):
        for metric in (self.accuracy, self.auc, self.majority_baseline, self.squared_error):
            metric.reset_state()

    def result(self):
        """accuracy, error, auc, majority_accuracy (the baseline's), reconstruction_error, num_ratings."""
        accuracy = float(self.accuracy.result())
        return {
            "accuracy": accuracy,
            "error": 1.0 - accuracy,
            "auc": float(self.auc.result()),
            "majority_accuracy": float(self.majority_baseline.result()),
            "reconstruction_error": float(self.squared_error.result()),
            "num_ratings": int(self.majority_baseline.count.numpy()),
        }
