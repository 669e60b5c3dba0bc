"""MNIST and Fashion-MNIST as one handle: records written once, splits decoded once.

    data = prepare_images("mnist", data_dir, raw_dir)       # writes the records the first time
    for images, labels in data.dataset("train", batch_size=100, shuffle_seed=0): ...

Images are float32 [batch, 28, 28, 1] in [0, 1], labels int64 [batch].
"""

import pathlib

import tensorflow as tf

from pipelines import image_records
from pipelines import images
from pipelines.downloads import build_tfds_builder
from pipelines.downloads import manual_download_config
from pipelines.errors import IdxError


class ImageData:
    """A prepared image data set: ``name``, ``num_examples(split)`` and batched ``dataset``s.

    Each split is decoded once and held in memory (47 MB for 60,000 images), shared by every
    dataset made from it.
    """

    def __init__(self, builder):
        self.builder = builder
        self.name = builder.builder_config.name
        self._examples = {}

    def num_examples(self, split):
        return self.builder.info.splits[split].num_examples

    def examples(self, split):
        """(uint8 image, label) examples of a split, decoded once and cached in memory."""
        if split not in self._examples:
            examples = self.builder.as_dataset(split=split, as_supervised=True).cache()
            # Fill the cache now with one complete pass: while a cache is only partly written,
            # an iterator that stopped early (a `take`, a `next(iter(...))` for a picture) can
            # leave a concurrent full pass reading the truncated cache, and an evaluation
            # silently covering a few hundred images.
            for _ in examples.batch(8192):
                pass
            self._examples[split] = examples
        return self._examples[split]

    def dataset(self, split, batch_size, shuffle_seed=None):
        """Batches of (images float32 [b, 28, 28, 1] in [0, 1], labels int64 [b]).

        Shuffled with ``shuffle_seed`` when it is given (the train split), in file order otherwise.
        """
        dataset = self.examples(split)
        if shuffle_seed is not None:
            # a full-size buffer: the split fits in memory and a partial shuffle of file order
            # would keep neighbouring examples together
            dataset = dataset.shuffle(self.num_examples(split), seed=shuffle_seed,
                                      reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size)

        def scale(pixels, labels):
            return tf.cast(pixels, tf.float32) / 255.0, tf.cast(labels, tf.int64)

        return dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def prepare_images(dataset, data_dir, raw_dir=None, download=False, log=None):
    """The `ImageData` of `dataset` ("mnist" or "fashion_mnist") with its records in `data_dir`.

    Writes the records from the IDX files in `raw_dir` when they are not written yet
    (`download` fetches the official files into `raw_dir` first); without `raw_dir` and
    nothing prepared, raises IdxError with a one-line hint.
    """
    images.check_dataset(dataset)
    if download:
        if raw_dir is None:
            raise IdxError("download needs raw_dir, the directory to put the files in")
        images.download(dataset, raw_dir, log=log)
    builder = build_tfds_builder(image_records.IdxImages, config=dataset, data_dir=str(data_dir))
    if pathlib.Path(builder.data_dir).is_dir() and builder.info.splits:
        return ImageData(builder)
    if raw_dir is None:
        raise IdxError(f"no prepared {dataset} records under {data_dir}; give raw_dir, the "
                       "directory of the IDX files, to write them")
    images.check_raw_dir(raw_dir)  # a readable error before TFDS starts
    builder.download_and_prepare(download_config=manual_download_config(raw_dir))
    return ImageData(builder)
