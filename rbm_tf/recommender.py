"""The RBM movie recommender: construct, fit, evaluate, recommend, export, restore.

    from pipelines import load_movielens
    from rbm_tf import Recommender

    data = load_movielens("data", "ml-100k", split="u1")
    model = Recommender(data.num_movies, movie_ids=data.movie_ids, movie_titles=data.movie_titles)
    model.fit(data.train, validation_data=data.validation, epochs=40)
    model.evaluate(data.test)        # accuracy, AUC, ... beside the majority baseline
    model.recommend(ratings, k=10)   # any {-1, 0, 1} vector: a user the model never saw too
    model.export("export/rbm/1")     # SavedModel for TensorFlow Serving, movies.tsv inside

Training is Keras-shaped: `fit` drives `keras.callbacks` (EarlyStopping, TensorBoard, the run
directory's `pipelines.loop.RunMonitor`, ...) through `pipelines.loop.fit_loop`, the same outer
loop the other families use.

Training and evaluation read the ratings as they are stored, ragged per user, and touch only
the weights of rated movies (`rbm_tf.sparse_training`): an epoch costs in proportion to the
number of ratings, whatever the catalogue's width. Predicting for whole rating vectors
(`predict`, `recommend`, the export) is dense: one user's scores over every movie.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from pipelines import distribute
from pipelines import loop
from pipelines import movie_table
from pipelines.movielens_data import gather_cases
from pipelines.rec_serving import save_servable
from pipelines.recommender_eval import RaggedEvaluator
from pipelines.recommender_eval import Scorer
from pipelines.recommender_eval import like_rates
from pipelines.recommender_eval import training_triplets
from pipelines.runs import RunDirectory
from rbm_tf.config import RecommenderConfig
from rbm_tf.rbm import RBM
from rbm_tf.rbm import SparseRatings
from rbm_tf.recommender_serving import RecommenderServing
from rbm_tf.recommender_serving import top_unrated
from rbm_tf.replicated_training import ReplicatedCDStep
from rbm_tf.sparse_training import RBMWeights
from rbm_tf.sparse_training import SparseCDTrainer

# how many ratings at everyone's like rate the prior on a user's offset (and on a movie's like
# rate) is worth
USER_PRIOR_STRENGTH = 5.0
# the training metrics of each epoch come from at most this many users (all of ML-100K's)
TRAIN_MONITOR_USERS = 20_000


def sparse_ratings(movies, labels):
    """A ragged batch's ratings as (rows, movies, values): flat [n] tensors, with each rating's
    user as its row in the batch."""
    return (tf.cast(movies.value_rowids(), tf.int32), movies.values,
            tf.cast(labels.values, tf.float32))


class Recommender(RBMWeights):
    """An RBM over every movie's like/dislike, trained by contrastive divergence.

    Args:
      num_movies: the catalogue's width (`MovieLensData.num_movies`).
      config: a `RecommenderConfig`; or give its fields as keyword arguments.
      movie_ids, movie_titles: the release's id and title of each movie index (default: the
        indices and "movie <index>"), used by `recommend` and shipped with `export`.
      strategy: a `tf.distribute.Strategy` to train under (`pipelines.distribute.make_strategy`),
        each batch shared among its replicas (`rbm_tf.replicated_training`); None (the
        default) trains on one device, lazily and sparsely.
    """

    def __init__(self, num_movies, config=None, movie_ids=None, movie_titles=None, strategy=None,
                 **settings):
        if config is None:
            config = RecommenderConfig(**settings)
        elif settings:
            config = dataclasses.replace(config, **settings)
        self.config = config
        self.num_movies = int(num_movies)
        self.movie_ids, self.movie_titles = movie_table.catalogue(self.num_movies, movie_ids, movie_titles)
        self.strategy = strategy
        with distribute.scope(strategy):
            self.rbm = RBM(self.num_movies, config.hidden, config.visible,
                           weight_stddev=config.weight_stddev, seed=config.seed)
            self.trainer = SparseCDTrainer(self.rbm, config.cd_config(), batch_size=config.batch_size)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            # the log-odds of a like over all training ratings, and each movie's share of them:
            # set when training starts, kept in checkpoints and exports
            self.like_logit = tf.Variable(0.0, trainable=False, name="like_logit")
            self.rating_share = tf.Variable(tf.fill([self.num_movies], 1.0 / self.num_movies),
                                            trainable=False, name="rating_share")
            # each movie's log-odds of a like (its training like rate, shrunk): what a user's
            # offset is measured against
            self.item_logit = tf.Variable(tf.zeros([self.num_movies]), trainable=False, name="item_logit")
        self._replicated_step = None if strategy is None else \
            ReplicatedCDStep(self.trainer, strategy, seed=config.seed)
        self.stop_training = False
        self.history = None
        self._evaluators = {}

    # -- the parts a checkpoint holds ------------------------------------------------------------

    def trackables(self):
        """What a checkpoint of this model holds: the trainer (RBM, optimizer, chains) and epoch."""
        return {"trainer": self.trainer, "epoch": self.epoch, "like_logit": self.like_logit,
                "rating_share": self.rating_share, "item_logit": self.item_logit}

    def user_offset(self, ratings):
        """Each user's log-odds of a like beyond what the movies they rated predict [batch],
        from their own ratings in {-1, 0, 1} [batch, num_movies].

        It is the user bias of a logistic model of user and movie biases, fitted to the user's
        ratings with the movies' log-odds (`item_logit`) held fixed: one Newton step from 0,
        sum(like - p) / (sum p (1 - p) + prior), where p is each rated movie's like rate and
        the prior is worth `USER_PRIOR_STRENGTH` ratings at everyone's rate. A user who rates
        only well-liked movies is not taken for a generous one, and a user with few ratings
        gets a small offset. It enters the RBM as a per-user visible bias: the hidden units
        then explain each user's tastes beyond how generous they are.
        """
        known = ratings >= 0.0
        p = tf.sigmoid(self.item_logit)[tf.newaxis, :]
        return self._offset(tf.reduce_sum(tf.where(known, ratings - p, 0.0), axis=-1),
                            tf.reduce_sum(tf.where(known, p * (1.0 - p), 0.0), axis=-1))

    def sparse_user_offset(self, rows, movies, values, batch_size):
        """`user_offset` of sparse ratings (`sparse_ratings`)."""
        p = tf.gather(tf.sigmoid(self.item_logit), movies)
        return self._offset(tf.math.unsorted_segment_sum(values - p, rows, batch_size),
                            tf.math.unsorted_segment_sum(p * (1.0 - p), rows, batch_size))

    def _offset(self, residual, information):
        if not self.config.user_offset:
            return None
        rate = tf.sigmoid(self.like_logit)
        return residual / (information + USER_PRIOR_STRENGTH * rate * (1.0 - rate))

    def like_probability(self, ratings):
        """p(like) of every movie [batch, num_movies] from ratings in {-1, 0, 1} (a tensor)."""
        return self.rbm.reconstruct(ratings, ratings >= 0.0, self.user_offset(ratings))

    def ranking_score(self, like_probability):
        """What ranks unrated movies for a user: the chance they will rate the movie (its share
        of the training ratings) times the chance they like it when they do. A like-probability
        alone ranks movies almost nobody has seen, and liked, first."""
        return like_probability * self.rating_share

    def ranking_score_of(self, like_probability, movies):
        """`ranking_score` of the given movies' like-probabilities [batch, len(movies)]."""
        return like_probability * tf.gather(self.rating_share, movies)

    # -- training ----------------------------------------------------------------------------

    def fit(self, train, validation_data=None, epochs=None, callbacks=(), verbose=0):
        """Train on `train` (a `MovieLensPart`) up to `epochs` (default: the config's) epochs.

        Starts where the model is (`epoch`, restored from a checkpoint or left by an earlier
        `fit`); a model that has not trained yet first sets each visible bias to the log-odds
        of the movie's like rate. Every epoch evaluates the training ratings and, given
        `validation_data`, those ratings too ("val_" logs, as Keras names them). Returns the
        `keras.callbacks.History`.
        """
        epochs = self.config.epochs if epochs is None else int(epochs)
        # the tf.data shuffles draw from the global seed as well as their own
        tf.random.set_seed(self.config.seed)
        if int(self.epoch.numpy()) == 0:
            _, movies, labels = training_triplets(train)
            self.rbm.set_visible_bias_from_rates(like_rates(movies, labels, self.num_movies))
            rate = float(np.clip(labels.mean(), 1e-3, 1 - 1e-3))
            self.like_logit.assign(np.log(rate / (1 - rate)))
            self.rating_share.assign(np.bincount(movies, minlength=self.num_movies) / len(movies))
            item_rate = like_rates(movies, labels, self.num_movies, prior_strength=USER_PRIOR_STRENGTH)
            self.item_logit.assign(np.log(item_rate) - np.log1p(-item_rate))

        def train_epoch(epoch, callbacks):
            # one shuffle seed per epoch, so a resumed run sees the same batches as an unbroken one
            shuffle_seed = self.config.seed * 100003 + epoch + 1
            if self.strategy is None:
                movies, labels = train.ragged_tensors["input_movies"], train.ragged_tensors["input_labels"]
                # every user in the order of the batches (one batch of them all)
                everyone = train.case_batches(2**31 - 1, shuffle_seed=shuffle_seed).get_single_element()
                self._train_epoch(movies.row_splits, movies.values, labels.values, everyone)
                self.trainer.flush()
            else:  # every row is updated every step: nothing to flush
                for batch in train.ragged_dataset(self.config.batch_size, shuffle_seed=shuffle_seed):
                    self._train_replicated(batch)
            self.epoch.assign(epoch + 1)
            callbacks.on_test_begin()
            # the training targets are the inputs: accuracy and AUC there, no ranking; from a
            # sample of users on a large release, where they are a progress report only
            logs = self.evaluate(train, ranking=False, max_users=TRAIN_MONITOR_USERS)
            # not finite once training has diverged, which the NaN guard then stops
            logs["weight_norm"] = float(tf.norm(self.rbm.weights))
            if validation_data is not None:
                logs.update({f"val_{key}": value
                             for key, value in self.evaluate(validation_data).items()})
            callbacks.on_test_end()
            return logs

        self.history = loop.fit_loop(self, train_epoch, epochs,
                                     initial_epoch=int(self.epoch.numpy()), callbacks=callbacks,
                                     verbose=verbose)
        return self.history

    @tf.function(reduce_retracing=True)
    def _train_epoch(self, row_splits, movies, labels, users):
        # the whole epoch one traced loop over the batches of `users`, each read in the graph
        # from flat tensors (a ragged argument, or a tf.data loop in the graph, costs more; with
        # the latter CD-10 ran several times as slowly)
        batch_size = self.config.batch_size
        for start in tf.range(0, tf.shape(users, out_type=tf.int64)[0], batch_size):
            self._train_users(row_splits, movies, labels, users[start:start + batch_size])

    def _train_users(self, row_splits, movies, labels, users):
        rows, places = gather_cases(row_splits, users)
        movies, values = tf.gather(movies, places), tf.cast(tf.gather(labels, places), tf.float32)
        batch_size = tf.shape(users)[0]
        self.trainer.train_step(rows, movies, values, batch_size,
                                self.sparse_user_offset(rows, movies, values, batch_size))

    @tf.function(reduce_retracing=True)
    def _train_replicated(self, batch):
        # one step a call: the collective all-reduce of a step runs in a graph of its own
        rows, movies, values = sparse_ratings(batch["input_movies"], batch["input_labels"])
        batch_size = tf.shape(batch["user_id"])[0]
        self._replicated_step(rows, movies, values, batch_size,
                              self.sparse_user_offset(rows, movies, values, batch_size))

    # -- prediction and evaluation -------------------------------------------------------------

    def predict(self, ratings):
        """Like-probabilities [batch, num_movies] from ratings [batch, num_movies] in {-1, 0, 1}.

        Deterministic (a mean-field pass, no sampling): the same ratings give the same numbers.
        """
        ratings = tf.convert_to_tensor(ratings, tf.float32)
        return self.like_probability(ratings).numpy()

    def evaluate(self, data, ranking=True, max_users=None):
        """The metrics of `pipelines.recommender_eval` on `data` (a `MovieLensPart`): its
        targets predicted from its inputs (the targets are never fed to the model).

        accuracy, error, auc, log_loss, squared_error, num_ratings, majority_accuracy (always
        predicting the label most common in the split's *training* ratings) and, where the
        part holds held-out likes, precision_at_10, recall_at_10 and ndcg_at_10 over every
        movie the user did not rate.
        """
        key = data.train_like_rate
        if key not in self._evaluators:
            self._evaluators[key] = RaggedEvaluator(RecommenderScorer(self), self.num_movies, key)
        return self._evaluators[key](data, ranking=ranking, max_users=max_users)

    def recommend(self, ratings, k=10):
        """The k unrated movies a user would like most: [(movie_id, title, like_probability)].

        `ratings`: one user's [num_movies] vector in {-1, 0, 1} (any user, seen in training or
        not), or a batch [users, num_movies], which gives one list per user. A rated movie is
        never recommended: a user with fewer than k unrated movies gets that many.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        ratings = tf.convert_to_tensor(ratings, tf.float32)
        single = ratings.shape.rank == 1
        if single:
            ratings = ratings[tf.newaxis]
        if ratings.shape[-1] != self.num_movies:
            raise ValueError(f"ratings must have num_movies ({self.num_movies}) values per user, "
                             f"got {ratings.shape[-1]}")
        probability = self.like_probability(ratings)
        top = top_unrated(probability, ratings, k, self.ranking_score(probability),
                          tf.constant(self.movie_ids, tf.int64))
        lists = [[(self.movie_ids[index], self.movie_titles[index], float(score))
                  for index, score in zip(indices[:count], scores[:count])]
                 for indices, scores, count in zip(top["movie_indices"].numpy(), top["scores"].numpy(),
                                                   top["num_recommended"].numpy())]
        return lists[0] if single else lists

    # -- export and restore --------------------------------------------------------------------

    def serving_module(self, movie_table_path=None):
        """The `RecommenderServing` module of this model: what `export` saves."""
        return RecommenderServing(self.rbm, self.movie_ids, movie_table_path=movie_table_path,
                                  like_probability=self.like_probability,
                                  ranking_score=self.ranking_score,
                                  variables=[self.like_logit, self.rating_share, self.item_logit])

    def export(self, path):
        """Write the servable recommender (signatures serving_default and recommend, the movie
        table as the asset movies.tsv) as a SavedModel at `path`."""
        return save_servable(path, self.serving_module, self.movie_ids, self.movie_titles)

    @classmethod
    def restore(cls, run_dir, checkpoint=None):
        """The recommender of a training run: its settings, movie table and latest checkpoint
        (or the checkpoint path `checkpoint`)."""
        run = RunDirectory(run_dir)
        stored = run.read_config()
        movie_ids, titles = movie_table.read_movie_table(run.path / movie_table.MOVIE_TABLE)
        model = cls(stored["num_movies"], RecommenderConfig.from_dict(stored),
                    movie_ids=movie_ids, movie_titles=titles)
        tf.train.Checkpoint(**model.trackables()).restore(
            checkpoint or run.checkpoint_to_export()).expect_partial()
        return model


class RecommenderScorer(Scorer):
    """A `Recommender` as `RaggedEvaluator` sees it: its hidden units from each user's ratings,
    its like-probability of the target ratings, and its ranking score of any movies, which
    never exceeds the movie's share of the ratings."""

    def __init__(self, model):
        self.model = model

    @property
    def rank_bound(self):
        return self.model.rating_share

    def user_state(self, batch):
        rbm = self.model.rbm
        rows, movies, values = sparse_ratings(batch["input_movies"], batch["input_labels"])
        batch_size = tf.shape(batch["user_id"])[0]
        offset = self.model.sparse_user_offset(rows, movies, values, batch_size)
        ratings, rated = SparseRatings.of_movies(rows, movies, values, batch_size)
        return rbm.sparse_hidden_probability(ratings, rbm.rows_of(rated)[0]), offset

    def target_probability(self, state, batch):
        hidden, offset = state
        rows, movies, values = sparse_ratings(batch["target_movies"], batch["target_labels"])
        ratings, movies = SparseRatings.of_movies(rows, movies, values, tf.shape(hidden)[0])
        return self.model.rbm.sparse_visible_probability(hidden, ratings, *self.model.rbm.rows_of(movies),
                                                         offset=offset)

    def rank_scores(self, state, movies):
        hidden, offset = state
        return self.model.ranking_score_of(self.model.rbm.visible_probability_of(hidden, movies, offset),
                                           movies)
