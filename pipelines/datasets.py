"""tf.data readers of the prepared TFRecords: parse, densify, shuffle, batch, prefetch.

The same graph runs on CPU and GPU; nothing here names a device.
"""

import pathlib

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import movielens
from pipelines import records

MISSING = -1.0


def prepared_movielens(data_dir, config):
    """The MovieLens builder for `config` whose TFRecords are already written under `data_dir`.

    Raises MovieLensError (one line, telling how to prepare them) when they are not.
    """
    builder = records.MovieLensRatings(config=config, data_dir=str(data_dir))
    if not pathlib.Path(builder.data_dir).is_dir() or not builder.info.splits:
        raise movielens.MovieLensError(
            f"no prepared {config.name} records under {data_dir}; run "
            f"rbm-prepare --release {config.release} --split {config.split} --data-dir {data_dir} first")
    return builder


def densify(movies, values, num_movies):
    """A user's sparse (movie index, value) pairs as a float vector with -1 where missing."""
    return tf.tensor_scatter_nd_update(
        tf.fill([num_movies], MISSING), tf.expand_dims(movies, -1), tf.cast(values, tf.float32))


def movielens_dataset(builder, split, batch_size, shuffle_seed=None):
    """Batches of {"user_id", "inputs", "targets"}: float32 [batch, num_movies] in {-1, 0, 1}.

    ``inputs`` are the ratings the model may see (the user's training ratings), ``targets`` the
    ratings to predict (the same ratings on the train split, the held-out ones on test).
    Shuffled with ``shuffle_seed`` when it is given (the train split), in file order otherwise.
    """
    num_movies = int(builder.info.metadata["num_movies"])
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed) if shuffle_seed is not None else None
    dataset = builder.as_dataset(split=split, shuffle_files=shuffle_seed is not None,
                                 read_config=read_config)

    def to_dense(example):
        return {
            "user_id": example["user_id"],
            "inputs": densify(example["input_movies"], example["input_labels"], num_movies),
            "targets": densify(example["target_movies"], example["target_labels"], num_movies),
        }

    if shuffle_seed is not None:
        # sparse examples are small: shuffle them before they are densified
        dataset = dataset.shuffle(4096, seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.map(to_dense, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# -- MNIST and Fashion-MNIST ----------------------------------------------------------------------

from pipelines import images  # noqa: E402  (kept beside the image readers that use it)


def prepared_images(data_dir, dataset, raw_dir=None):
    """The IdxImages builder of `dataset` with its TFRecords under `data_dir`.

    Writes the records from the IDX files in `raw_dir` when they are not written yet; without
    `raw_dir` and nothing prepared, raises IdxError with a one-line hint.
    """
    images.check_dataset(dataset)
    builder = records.IdxImages(config=dataset, data_dir=str(data_dir))
    if pathlib.Path(builder.data_dir).is_dir() and builder.info.splits:
        return builder
    if raw_dir is None:
        raise images.IdxError(f"no prepared {dataset} records under {data_dir}; pass --raw-dir "
                              "with the directory of the IDX files to write them")
    images.check_raw_dir(raw_dir)  # a readable error before TFDS starts
    builder.download_and_prepare(download_config=records.manual_download_config(raw_dir))
    return builder


def cached_images(builder, split):
    """(uint8 image, label) examples of a split, decoded once and held in memory (47 MB for 60,000).

    Several `image_dataset`s of one split can share them, so the split is decoded only once.
    """
    examples = builder.as_dataset(split=split, as_supervised=True).cache()
    # Fill the cache now with one complete pass: while a cache is only partly written, an
    # iterator that stopped early (a `take`, a `next(iter(...))` for a picture) can leave a
    # concurrent full pass reading the truncated cache, and an evaluation silently covering
    # a few hundred images.
    for _ in examples.batch(8192):
        pass
    return examples


def image_dataset(builder, split, batch_size, shuffle_seed=None, examples=None):
    """Batches of (images float32 [b, 28, 28, 1] in [0, 1], labels int64 [b]).

    Read from `examples` (`cached_images` of the same split) when given, else from a new cache;
    shuffled with ``shuffle_seed`` when it is given (the train split), in file order otherwise.
    """
    dataset = cached_images(builder, split) if examples is None else examples
    if shuffle_seed is not None:
        # a full-size buffer: the split fits in memory and a partial shuffle of file order
        # would keep neighbouring examples together
        dataset = dataset.shuffle(builder.info.splits[split].num_examples, seed=shuffle_seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def scale(pixels, labels):
        return tf.cast(pixels, tf.float32) / 255.0, tf.cast(labels, tf.int64)

    return dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
