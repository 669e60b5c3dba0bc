"""The TensorFlow Datasets builder of MNIST and Fashion-MNIST, read from the user's IDX files."""

import numpy as np
import tensorflow_datasets as tfds

from pipelines import images as idx_images


class IdxImages(tfds.core.GeneratorBasedBuilder):
    """MNIST or Fashion-MNIST from the user's IDX directory: 28x28x1 uint8 images and labels.

        builder = IdxImages(config="mnist", data_dir=OUT)
        builder.download_and_prepare(download_config=downloads.manual_download_config(IDX_DIR))
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Images and labels read from the original IDX files."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="mnist", description="MNIST handwritten digits"),
        tfds.core.BuilderConfig(name="fashion_mnist", description="Fashion-MNIST (Zalando) articles"),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass the directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (gz or uncompressed) as the "
        "manual directory; ae-train --download fetches them.")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(idx_images.IMAGE_SIZE, idx_images.IMAGE_SIZE, 1),
                                             dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=idx_images.NUM_CLASSES),
            }),
            supervised_keys=("image", "label"),
            # keep the published order, so test image i is the i-th image of the t10k file
            disable_shuffling=True,
            homepage={"mnist": "http://yann.lecun.com/exdb/mnist/",
                      "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist"}[
                          self.builder_config.name],
        )

    def _split_generators(self, dl_manager):
        raw_dir = dl_manager.manual_dir
        return {split: self._generate_examples(*idx_images.load_images(raw_dir, self.builder_config.name, split))
                for split in idx_images.SPLITS}

    def _generate_examples(self, images, labels):
        for index, (image, label) in enumerate(zip(images, labels)):
            yield index, {"image": image[..., np.newaxis], "label": int(label)}
