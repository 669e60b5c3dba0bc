"""Keras 3 autoencoders (dense, convolutional, denoising, variational) and what trains them.

    from pipelines import prepare_images
    from autoencoders_tf import AutoencoderConfig, train_autoencoder, load_autoencoder_run

    data = prepare_images("mnist", "data", raw_dir="../shared/data/mnist")
    result = train_autoencoder(AutoencoderConfig(model="vae"), data, "runs/vae")
    model = load_autoencoder_run("runs/vae")              # the trained Keras model
    model.evaluate(data.dataset("test", 500), return_dict=True)
    model.export("serving/vae/1")                          # SavedModel for TF Serving

Names load on first use: importing `autoencoders_tf.config` does not load TensorFlow.
Keras registers a model class for `keras.saving.load_model` when its module loads: name the
class first (`from autoencoders_tf import VAE`), since `import autoencoders_tf` loads none.
"""

from pipelines.lazy import lazy_api

_EXPORTS = {
    # the models
    "Autoencoder": "autoencoders_tf.base",
    "DenseAutoencoder": "autoencoders_tf.dense",
    "ConvAutoencoder": "autoencoders_tf.conv",
    "DenoisingAutoencoder": "autoencoders_tf.denoising",
    "VAE": "autoencoders_tf.vae",
    # settings
    "AutoencoderConfig": "autoencoders_tf.config",
    "MODELS": "autoencoders_tf.config",
    "EXPORT_NAMES": "autoencoders_tf.config",
    # training runs
    "build_model": "autoencoders_tf.training",
    "train_autoencoder": "autoencoders_tf.training",
    "load_autoencoder_run": "autoencoders_tf.training",
    "export_autoencoder_run": "autoencoders_tf.training",
    "mean_image_baseline": "autoencoders_tf.training",
    # serving
    "AutoencoderServing": "autoencoders_tf.serving",
    "export_autoencoder": "autoencoders_tf.serving",
    # figures
    "latent_scatter": "autoencoders_tf.pictures",
    # recommenders on MovieLens
    "AutoRec": "autoencoders_tf.autorec",
    "AutoRecRecommender": "autoencoders_tf.autorec",
    "MultVAE": "autoencoders_tf.mult_vae",
    "MultVAERecommender": "autoencoders_tf.mult_vae",
    "EASE": "autoencoders_tf.ease",
    "choose_ease": "autoencoders_tf.ease",
    "AutoRecConfig": "autoencoders_tf.rec_config",
    "MultVAEConfig": "autoencoders_tf.rec_config",
    "EASEConfig": "autoencoders_tf.rec_config",
    "train_rec_model": "autoencoders_tf.recommender_training",
    "fit_rec_model": "autoencoders_tf.recommender_training",
    "RecBaselines": "autoencoders_tf.recommender_training",
    "load_rec_run": "autoencoders_tf.recommender_training",
    "export_rec_run": "autoencoders_tf.recommender_training",
}

__all__, __getattr__, __dir__ = lazy_api(__name__, _EXPORTS)
