"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed form.

    X: the binary user x movie matrix of training interactions
    P = (X^T X + l2 I)^-1,   B = I - P diag(1 / diag(P))     (so diag(B) = 0)
    scores of a user = x B

Which interactions: "rated" (every rated movie is a 1) or "liked" (only ratings >= the like
threshold). On ML-100K u1 "rated" at L2 300 ranks the held-out likes best on validation
NDCG@10 (0.2105 against 0.2065 for "liked"), so it is `EASE`'s default; `choose_ease` compares
both on each split's validation ratings. A user is scored from their ratings alone, so users
never seen in training are scored too.
The cost is num_movies^2 memory and one num_movies^3 inverse, whatever the number of users.
"""

import numpy as np
import tensorflow as tf

from autoencoders_tf.rec_base import RatingsRecommender
from autoencoders_tf.rec_config import INTERACTIONS
from autoencoders_tf.rec_config import EASEConfig
from pipelines.rec_serving import RankingServing
from pipelines.ranking_eval import evaluate_ranking
from pipelines.rating_parts import MISSING
from pipelines.rating_parts import rating_part
from pipelines.settings import one_of
from pipelines.settings import positive


def interaction_matrix(stars, interactions, like_threshold):
    """Dense stars (0 = not rated) -> float32 0/1: rated movies, or liked ones."""
    one_of("interactions", interactions, INTERACTIONS)
    stars = np.asarray(stars)
    chosen = stars != MISSING if interactions == "rated" else stars >= like_threshold
    return chosen.astype(np.float32)


def gram_matrix(train, interactions, batch_size=512):
    """X^T X (float64 [num_movies, num_movies]) of the training part's input interactions."""
    train = rating_part(train)
    gram = np.zeros([train.num_movies, train.num_movies])
    for start in range(0, train.num_users, batch_size):
        rows = range(start, min(start + batch_size, train.num_users))
        x = interaction_matrix(train.inputs.dense(rows, train.num_movies), interactions,
                               train.like_threshold)
        gram += (x.T @ x).astype(np.float64)
    return gram


def ease_weights(gram, l2):
    """B = I - P diag(1/diag(P)) with P = (gram + l2 I)^-1; its diagonal is exactly 0."""
    positive("l2", l2)
    precision = np.linalg.inv(gram + l2 * np.eye(len(gram)))
    weights = -precision / np.diag(precision)[np.newaxis, :]
    np.fill_diagonal(weights, 0.0)
    return weights


class EASE(RatingsRecommender):
    """The EASE ranking model; ``fit(train)`` solves it, ``score`` ranks, ``export`` serves."""

    model_name = "ease"

    def __init__(self, num_movies, l2=300.0, interactions="rated", movie_ids=None,
                 movie_titles=None, like_threshold=3.0):
        super().__init__(num_movies, movie_ids, movie_titles, like_threshold)
        positive("l2", l2)
        one_of("interactions", interactions, INTERACTIONS)
        self.l2 = float(l2)
        self.interactions = interactions
        self.weights = tf.Variable(tf.zeros([self.num_movies, self.num_movies]), trainable=False,
                                   name="ease_weights")

    @property
    def config(self):
        return EASEConfig(l2=self.l2, interactions=self.interactions)

    def fit(self, train, gram=None):
        """Solve for the weights on `train`'s input ratings (`gram`: X^T X, if known)."""
        if gram is None:
            gram = gram_matrix(train, self.interactions)
        self.weights.assign(ease_weights(gram, self.l2).astype(np.float32))
        return self

    def trackables(self):
        return {"ease_weights": self.weights}

    def score(self, user_ids, stars):
        """x B of each user: float32 [users, num_movies] (higher first)."""
        x = interaction_matrix(stars, self.interactions, self.like_threshold)
        return x @ self.weights.numpy()

    def label_scores(self, ratings):
        """The same from {-1, 0, 1} ratings, in TensorFlow (what the export traces)."""
        chosen = ratings >= 0.0 if self.interactions == "rated" else ratings > 0.5
        return tf.matmul(tf.cast(chosen, tf.float32), self.weights)

    def serving_module(self, movie_table_path=None):
        return RankingServing(self.num_movies, self.movie_ids, self.label_scores,
                              trackables=[self.weights], movie_table_path=movie_table_path)


def choose_ease(train, validation, l2_choices=EASEConfig.L2_CHOICES, interactions_choices=INTERACTIONS,
                movie_ids=None, movie_titles=None):
    """The EASE of highest validation NDCG@10 among `l2_choices` x `interactions_choices`,
    fitted on `train`; and the table it was chosen from: [{"interactions", "l2",
    "validation_<metric>"...}]."""
    train = rating_part(train)
    best, table = None, []
    for interactions in interactions_choices:
        gram = gram_matrix(train, interactions)
        for l2 in l2_choices:
            model = EASE(train.num_movies, l2, interactions, movie_ids, movie_titles,
                         train.like_threshold).fit(train, gram)
            metrics = evaluate_ranking(model.score, validation)
            table.append({"interactions": interactions, "l2": l2,
                          **{f"validation_{key}": value for key, value in metrics.items()}})
            if best is None or metrics["ndcg_at_10"] > best[0]:
                best = (metrics["ndcg_at_10"], model)
    return best[1], table
