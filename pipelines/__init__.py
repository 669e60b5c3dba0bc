"""Data pipelines (raw files -> TFDS builders -> tf.data) and the run machinery every model
family shares (run directories, the outer training loop, signature checks, errors).

Imports no model package: `rbm_tf` and `autoencoders_tf` import it, never the other way.
Names load on first use, so `import pipelines.errors` (what a command-line tool needs before
it has read its arguments) does not load TensorFlow.

    from pipelines import prepare_movielens, prepare_images
"""

from pipelines.lazy import lazy_api

_EXPORTS = {
    # MovieLens
    "prepare_movielens": "pipelines.movielens_data",
    "load_movielens": "pipelines.movielens_data",
    "MovieLensData": "pipelines.movielens_data",
    "MovieLensPart": "pipelines.movielens_data",
    "RELEASES": "pipelines.movielens",
    # how recommenders are measured
    "Baselines": "pipelines.recommender_eval",
    "Evaluator": "pipelines.recommender_eval",
    "RatingMetrics": "pipelines.recommender_eval",
    "RatingPart": "pipelines.rating_parts",
    "rating_part": "pipelines.rating_parts",
    "hold_out_users": "pipelines.rating_parts",
    "RatingBaselines": "pipelines.rating_eval",
    "evaluate_ratings": "pipelines.rating_eval",
    "RankingMetrics": "pipelines.ranking_eval",
    "evaluate_ranking": "pipelines.ranking_eval",
    # MNIST and Fashion-MNIST
    "prepare_images": "pipelines.image_data",
    "ImageData": "pipelines.image_data",
    "IMAGE_SHAPE": "pipelines.images",
    "IMAGE_DATASETS": "pipelines.images",
    # runs
    "Run": "pipelines.loop",
    "make_strategy": "pipelines.distribute",
    "RunMonitor": "pipelines.loop",
    "fit_loop": "pipelines.loop",
    "RunDirectory": "pipelines.runs",
    "find_exports": "pipelines.runs",
    "read_signatures": "pipelines.signatures",
    # errors
    "UserError": "pipelines.errors",
    "MovieLensError": "pipelines.errors",
    "IdxError": "pipelines.errors",
    "RunError": "pipelines.errors",
    "DivergedError": "pipelines.errors",
}

__all__, __getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
