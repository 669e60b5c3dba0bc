"""Top-k ranking metrics over the whole catalogue, as Liang et al. (2018) report them.

For every user with a held-out like (a target rating >= the like threshold), the movies the
user did not rate in the inputs are ranked by the model's scores, and

* ``ndcg_at_k`` (k = 10, 100): DCG of the held-out likes in the top k (binary relevance,
  1 / log2(rank + 1)) over the DCG of the best possible top k;
* ``recall_at_k`` (k = 10, 20, 50): held-out likes in the top k over min(k, the user's
  held-out likes), so that a user with more than k likes can reach 1;

are averaged over those users (``num_ranked_users``). NDCG@10 is the package's
``RatingMetrics`` ndcg_at_10; recall@k here is *truncated* as Liang et al. define it, which
differs from ``RatingMetrics``'s recall_at_10 (hits over all held-out likes) for users with
more than 10 held-out likes.

A scorer is ``score(user_ids, input_stars) -> scores``, dense [users, num_movies], stars 0
where not rated (`pipelines.rating_parts`); rated movies are never ranked.
"""

import numpy as np

from pipelines.rating_parts import MISSING
from pipelines.rating_parts import rating_part
from pipelines.rating_parts import user_batches

NDCG_CUTOFFS = (10, 100)
RECALL_CUTOFFS = (10, 20, 50)
RANKING_METRICS = tuple(f"ndcg_at_{k}" for k in NDCG_CUTOFFS) + tuple(
    f"recall_at_{k}" for k in RECALL_CUTOFFS)


def top_k_hits(scores, seen, relevant, k):
    """[users, k'] 0/1: whether the movie at each of the k' = min(k, num_movies) best ranks is
    relevant; rated (`seen`) movies are never ranked, and ranks past the unrated movies count 0."""
    scores = np.where(seen, -np.inf, np.asarray(scores, np.float64))
    k = min(k, scores.shape[-1])
    # the k best in any order, then sorted: argpartition keeps this linear in num_movies
    best = np.argpartition(-scores, k - 1, axis=-1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, best, axis=-1), axis=-1, kind="stable")
    top = np.take_along_axis(best, order, axis=-1)
    ranked = np.isfinite(np.take_along_axis(scores, top, axis=-1))
    return (np.take_along_axis(relevant, top, axis=-1) & ranked).astype(np.float64)


def ranking_metrics(scores, seen, relevant):
    """Per ranked user (those with a relevant unseen movie): {metric: [users] values}."""
    scores = np.broadcast_to(scores, seen.shape)
    relevant = relevant & ~seen
    num_relevant = relevant.sum(axis=-1)
    ranked = num_relevant > 0
    if not ranked.any():
        return {name: np.zeros([0]) for name in RANKING_METRICS}
    scores, seen, relevant, num_relevant = (a[ranked] for a in (scores, seen, relevant, num_relevant))
    hits = top_k_hits(scores, seen, relevant, max(NDCG_CUTOFFS + RECALL_CUTOFFS))
    discount = 1.0 / np.log2(np.arange(2, hits.shape[-1] + 2))
    ideal_dcg = np.concatenate([[0.0], np.cumsum(discount)])
    values = {}
    for k in NDCG_CUTOFFS:
        values[f"ndcg_at_{k}"] = hits[:, :k] @ discount[:k] / ideal_dcg[np.minimum(num_relevant, k)]
    for k in RECALL_CUTOFFS:
        values[f"recall_at_{k}"] = hits[:, :k].sum(axis=-1) / np.minimum(num_relevant, k)
    return values


class RankingMetrics:
    """Accumulates this module's metrics over batches of users."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums = dict.fromkeys(RANKING_METRICS, 0.0)
        self.count = 0

    def update(self, scores, seen, relevant):
        """`scores` [users, num_movies]; `seen`, `relevant` boolean of the same shape."""
        values = ranking_metrics(np.asarray(scores), np.asarray(seen), np.asarray(relevant))
        for name, per_user in values.items():
            self.sums[name] += float(per_user.sum())
        self.count += len(next(iter(values.values())))

    def result(self):
        """{metric: mean over ranked users, or None when no user was ranked, "num_ranked_users"}."""
        result = {name: (total / self.count if self.count else None)
                  for name, total in self.sums.items()}
        result["num_ranked_users"] = self.count
        return result


def evaluate_ranking(score, part, batch_size=256):
    """The ranking metrics of `score` on `part` (a MovieLensPart or a RatingPart): each user's
    held-out likes ranked among the movies not rated in their inputs."""
    part = rating_part(part)
    metrics = RankingMetrics()
    for batch in user_batches(part, batch_size):
        metrics.update(score(batch.user_ids, batch.inputs), batch.inputs != MISSING,
                       batch.targets >= part.like_threshold)
    return metrics.result()


class MostPopular:
    """The movies with the most training ratings first, for every user."""

    def __init__(self, train):
        train = rating_part(train)
        self.popularity = np.bincount(train.inputs.movies, minlength=train.num_movies).astype(np.float32)

    def __call__(self, user_ids, inputs):
        return np.broadcast_to(self.popularity, np.shape(inputs))


def prefixed(metrics, prefix):
    """`metrics` with every name prefixed (``test_ndcg_at_10``)."""
    return {f"{prefix}{key}": value for key, value in metrics.items()}
