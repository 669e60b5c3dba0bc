"""Restricted Boltzmann Machines (tf.Module), the RBM movie recommender and Deep Belief Networks.

    from rbm_tf import Recommender
    model = Recommender(data.num_movies, movie_ids=data.movie_ids, movie_titles=data.movie_titles)
    model.fit(data.train, validation_data=data.validation, epochs=40)

Names load on first use: importing a config module does not load TensorFlow.
"""

from pipelines.lazy import lazy_api

_EXPORTS = {
    # the machine
    "RBM": "rbm_tf.rbm",
    "VISIBLE_LAYOUTS": "rbm_tf.rbm",
    "CDConfig": "rbm_tf.config",
    "CDTrainer": "rbm_tf.training",
    "reconstruction_error": "rbm_tf.training",
    "pseudo_log_likelihood": "rbm_tf.monitoring",
    # the recommender
    "Recommender": "rbm_tf.recommender",
    "RecommenderConfig": "rbm_tf.config",
    "train_recommender": "rbm_tf.recommender_training",
    "export_recommender_run": "rbm_tf.recommender_training",
    # the rating RBM
    "RatingRBM": "rbm_tf.rating_rbm",
    "RatingRBMConfig": "rbm_tf.config",
    "RatingRecommender": "rbm_tf.rating_recommender",
    "train_rating_rbm": "rbm_tf.rating_recommender",
    "export_rating_run": "rbm_tf.rating_recommender",
    # deep belief networks
    "DBN": "rbm_tf.dbn",
    "DBNConfig": "rbm_tf.dbn_config",
    "GreedyPretrainer": "rbm_tf.pretraining",
    "build_classifier": "rbm_tf.classifier",
    "ClassifierServing": "rbm_tf.classifier",
    "train_dbn": "rbm_tf.dbn_training",
    "export_dbn_run": "rbm_tf.dbn_training",
}

__all__, __getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
