"""Each family's whole workflow through the public API only, as the README's "From Python"
section shows it: prepare the data, train, evaluate, export, reload."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k
from tests.conftest import write_stripe_digits


def test_recommender_workflow(tmp_path):
    raw_dir = write_ml100k(tmp_path / "ml-100k", planted_ml100k_ratings())

    from pipelines import prepare_movielens
    from rbm_tf import Recommender

    data = prepare_movielens("ml-100k", raw_dir, tmp_path / "data", split="u1")
    model = Recommender(data.num_movies, movie_ids=data.movie_ids, movie_titles=data.movie_titles,
                        hidden=8, batch_size=10)
    model.fit(data.train, validation_data=data.validation, epochs=10)
    metrics = model.evaluate(data.test)            # accuracy, auc, majority_accuracy, ...
    new_user = np.full(data.num_movies, -1.0, np.float32)
    new_user[:3] = 1.0                             # likes three movies, rated nothing else
    top = model.recommend(new_user, k=5)           # [(movie_id, title, like_probability)]
    model.export(tmp_path / "export" / "1")

    assert metrics["accuracy"] > metrics["majority_accuracy"] + 0.1 and metrics["auc"] > 0.9
    assert len(top) == 5 and not {movie_id for movie_id, _, _ in top} & {1, 2, 3}
    served = tf.saved_model.load(str(tmp_path / "export" / "1")).signatures["serving_default"]
    np.testing.assert_array_equal(served(ratings=tf.constant(new_user[np.newaxis]))["like_probability"],
                                  model.predict(new_user[np.newaxis]))


def test_dbn_workflow(tmp_path):
    raw_dir = write_stripe_digits(tmp_path / "mnist")

    from pipelines import prepare_images
    from rbm_tf import DBNConfig, export_dbn_run, train_dbn

    data = prepare_images("mnist", tmp_path / "data", raw_dir=raw_dir)
    config = DBNConfig(hidden=(16, 8), pretrain_epochs=2, finetune_epochs=3, batch_size=20,
                       finetune_learning_rate=0.5, gibbs_steps=3)
    final = train_dbn(config, data, tmp_path / "run")["final"]
    second = export_dbn_run(tmp_path / "run")      # the next version, from the checkpoint

    # one bright band per class: the pre-trained network separates them, unlike chance (3/4)
    assert final["test_error"] < 0.5 and final["test_error"] == 1 - final["test_accuracy"]
    assert set(final["baselines"]) == {"same_init", "modern"}
    images, labels = next(iter(data.dataset("test", batch_size=40)))
    served = tf.saved_model.load(str(second)).signatures["serving_default"]
    error = np.mean(served(images=images)["class"].numpy() != labels.numpy())
    assert error == pytest.approx(final["test_error"])


def test_autoencoder_workflow(tmp_path):
    raw_dir = write_stripe_digits(tmp_path / "mnist")

    from pipelines import prepare_images
    from autoencoders_tf import AutoencoderConfig, export_autoencoder_run, train_autoencoder

    data = prepare_images("mnist", tmp_path / "data", raw_dir=raw_dir)
    config = AutoencoderConfig(model="dense", hidden_units=(64,), code_size=8, epochs=3,
                               batch_size=20, learning_rate=0.01)
    final = train_autoencoder(config, data, tmp_path / "run")["final"]
    second = export_autoencoder_run(tmp_path / "run")   # the next version, from the checkpoint

    assert final["test_mse"] < final["baselines"]["mean_image"]["test_mse"]
    images, _ = next(iter(data.dataset("test", batch_size=40)))
    reconstruction = tf.saved_model.load(str(second)).signatures["reconstruct"](images=images)
    mse = np.mean((reconstruction["reconstruction"].numpy() - images.numpy()) ** 2)
    assert mse == pytest.approx(final["test_mse"], rel=1e-4)


def test_recommender_with_keras_early_stopping_and_baselines(tmp_path):
    raw_dir = write_ml100k(tmp_path / "ml-100k", planted_ml100k_ratings())

    import keras
    import pipelines
    from pipelines import prepare_movielens
    from rbm_tf import Recommender

    data = prepare_movielens("ml-100k", raw_dir, tmp_path / "data", split="u1")
    model = Recommender(data.num_movies, hidden=8, batch_size=10, learning_rate=0.5)
    # the second epoch dips before the planted tastes are found: a patience of one would stop there
    stopping = keras.callbacks.EarlyStopping("val_auc", mode="max", patience=2,
                                             restore_best_weights=True)
    history = model.fit(data.train, validation_data=data.validation, epochs=30, callbacks=[stopping])
    baselines = pipelines.Baselines(data).evaluate(data.test)

    aucs = history.history["val_auc"]
    assert len(aucs) < 30 and model.evaluate(data.validation)["auc"] == pytest.approx(max(aucs))
    assert model.evaluate(data.test)["auc"] > baselines["user_item_biases"]["auc"]
