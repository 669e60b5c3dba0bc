"""IDX reading, validation and download checks; the IdxImages builder and its tf.data reader."""

import gzip
import pathlib
import struct

import numpy as np
import pytest

from pipelines import downloads
from pipelines import images
from pipelines.errors import IdxError
from pipelines.image_data import prepare_images

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def make_idx_dir(directory, num_train=7, num_test=3, gz=True, seed=0):
    """Four IDX files of random 28x28 images with labels 0..9; returns the arrays written."""
    rng = np.random.default_rng(seed)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    written = {}
    for split, prefix, count in (("train", "train", num_train), ("test", "t10k", num_test)):
        pixels = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        images.write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", pixels)
        images.write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        written[split] = (pixels, labels)
    return written


def test_write_idx_lays_out_the_header_as_the_format_specifies(tmp_path):
    path = tmp_path / "tiny-idx3-ubyte"
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    images.write_idx(path, array)
    data = path.read_bytes()
    assert data[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">3I", data[4:16]) == (2, 3, 4)
    assert data[16:] == bytes(range(24))


@pytest.mark.parametrize("name", ["three-images-idx3-ubyte", "three-images-idx3-ubyte.gz"])
def test_read_idx_round_trips_raw_and_gzipped_files(tmp_path, name):
    array = np.random.default_rng(1).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    images.write_idx(tmp_path / name, array)
    read = images.read_idx(tmp_path / name)
    assert read.dtype == np.uint8 and read.shape == (3, 28, 28)
    np.testing.assert_array_equal(read, array)


def test_read_idx_reads_big_endian_types(tmp_path):
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints-idx1-int"
    path.write_bytes(b"\x00\x00\x0c\x01" + struct.pack(">I", 3) + values.tobytes())
    np.testing.assert_array_equal(images.read_idx(path), [1, -2, 70000])


def test_read_idx_detects_gzip_by_content_not_by_name(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"  # gzipped, but no .gz suffix
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x05\x07"))
    np.testing.assert_array_equal(images.read_idx(path), [5, 7])


def _valid_idx_bytes():
    return b"\x00\x00\x08\x01" + struct.pack(">I", 4) + b"\x01\x02\x03\x04"


@pytest.mark.parametrize("content, message", [
    (_valid_idx_bytes()[:-1], "truncated"),
    (_valid_idx_bytes() + b"\x00", "longer than its header says"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "truncated IDX header"),
    (b"\x50\x4b\x03\x04" + b"\x00" * 20, "not an IDX file"),  # a zip file
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),  # unknown type
    (b"", "not an IDX file"),
    # a header of garbage sizes whose product overflows 64 bits
    (b"\x00\x00\x08\x03" + b"\xe1\x1f\x8b\x08" * 3 + b"\x00" * 8, "truncated"),
    (gzip.compress(_valid_idx_bytes())[:-6], "corrupt or truncated gzip"),
])
def test_read_idx_rejects_malformed_files_naming_them(tmp_path, content, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(IdxError, match=message) as raised:
        images.read_idx(path)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(IdxError, match="no such file"):
        images.read_idx(tmp_path / "nothing-idx3-ubyte.gz")


@pytest.mark.parametrize("gz", [True, False])
def test_load_images_returns_what_was_written(tmp_path, gz):
    written = make_idx_dir(tmp_path, gz=gz)
    for split in ("train", "test"):
        pixels, labels = images.load_images(tmp_path, "fashion_mnist", split)
        np.testing.assert_array_equal(pixels, written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])
        assert pixels.dtype == np.uint8 and labels.dtype == np.uint8


def test_load_images_accepts_the_dotted_file_names(tmp_path):
    written = make_idx_dir(tmp_path, gz=False)
    for path in tmp_path.iterdir():
        path.rename(tmp_path / path.name.replace("-idx", ".idx"))
    np.testing.assert_array_equal(images.load_images(tmp_path, "mnist", "test")[0], written["test"][0])


def test_load_images_errors(tmp_path):
    with pytest.raises(IdxError, match="no such directory"):
        images.load_images(tmp_path / "absent", "mnist", "train")
    with pytest.raises(IdxError, match="unknown image data set 'cifar10'"):
        images.load_images(tmp_path, "cifar10", "train")
    with pytest.raises(IdxError, match="unknown split"):
        images.load_images(tmp_path, "mnist", "validation")
    with pytest.raises(IdxError, match="no t10k-images-idx3-ubyte.gz"):
        images.load_images(tmp_path, "mnist", "test")

    make_idx_dir(tmp_path, num_test=3)
    images.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    with pytest.raises(IdxError, match="2 labels for 3 images"):
        images.load_images(tmp_path, "mnist", "test")
    images.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 10, 1], np.uint8))
    with pytest.raises(IdxError, match="label 10 outside 0..9"):
        images.load_images(tmp_path, "mnist", "test")
    images.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(IdxError, match="expected uint8 images of 28x28"):
        images.load_images(tmp_path, "mnist", "test")


def test_verify_md5(tmp_path):
    path = tmp_path / "file.gz"
    path.write_bytes(b"abc")
    images.verify_md5(path, "900150983cd24fb0d6963f7d28e17f72")  # md5("abc"), RFC 1321
    with pytest.raises(IdxError, match="differs from the published"):
        images.verify_md5(path, "0" * 32)


def test_download_checks_md5_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    make_idx_dir(mirror)
    good = {name: downloads.file_digest(mirror / name) for name in images.OFFICIAL_MD5["mnist"]}
    # the first mirror is unreachable, the second serves the files
    mirrors = ((tmp_path / "absent").as_uri() + "/", mirror.as_uri() + "/")
    monkeypatch.setitem(images.OFFICIAL_MD5, "mnist", good)
    target = tmp_path / "raw"
    images.download("mnist", target, mirrors=mirrors)
    assert sorted(p.name for p in target.iterdir()) == sorted(good)
    images.load_images(target, "mnist", "train")

    damaged = dict(good, **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    monkeypatch.setitem(images.OFFICIAL_MD5, "mnist", damaged)
    fresh = tmp_path / "fresh"
    with pytest.raises(IdxError, match="could not download t10k-labels-idx1-ubyte.gz"):
        images.download("mnist", fresh, mirrors=mirrors)
    # the three good files stay, the damaged one is not left behind, nor any temporary file
    assert sorted(p.name for p in fresh.iterdir()) == sorted(set(good) - {"t10k-labels-idx1-ubyte.gz"})


def test_builder_and_dataset_yield_what_was_written(tmp_path):
    written = make_idx_dir(tmp_path / "raw", num_train=12, num_test=5, gz=False)
    data_dir = tmp_path / "records"
    with pytest.raises(IdxError, match="no prepared mnist records"):
        prepare_images("mnist", data_dir)
    data = prepare_images("mnist", data_dir, raw_dir=tmp_path / "raw")
    assert data.num_examples("train") == 12
    assert data.builder.info.features["label"].num_classes == 10

    # prepared records are found again without the raw files
    data = prepare_images("mnist", data_dir)
    test_batches = list(data.dataset("test", batch_size=2))
    assert [len(labels) for _, labels in test_batches] == [2, 2, 1]
    pixels = np.concatenate([batch.numpy() for batch, _ in test_batches])
    labels = np.concatenate([batch.numpy() for _, batch in test_batches])
    assert pixels.dtype == np.float32 and pixels.shape == (5, 28, 28, 1)
    assert labels.dtype == np.int64
    np.testing.assert_allclose(pixels[..., 0], written["test"][0] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(labels, written["test"][1])
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0

    def train_epoch(seed):
        batches = list(data.dataset("train", batch_size=5, shuffle_seed=seed))
        return (np.concatenate([p.numpy() for p, _ in batches]),
                np.concatenate([l.numpy() for _, l in batches]))

    shuffled, shuffled_labels = train_epoch(seed=3)
    again, _ = train_epoch(seed=3)
    np.testing.assert_array_equal(shuffled, again)  # seeded: the same order every run
    # a permutation of what was written, images still beside their labels
    order = [int(np.flatnonzero((written["train"][0] == np.round(image[..., 0] * 255)).all(axis=(1, 2)))[0])
             for image in shuffled]
    assert sorted(order) == list(range(12)) and order != list(range(12))
    np.testing.assert_array_equal(shuffled_labels, written["train"][1][order])


def test_prepared_images_rejects_bad_raw_dir_before_writing(tmp_path):
    with pytest.raises(IdxError, match="no such directory"):
        prepare_images("mnist", tmp_path / "records", raw_dir=tmp_path / "absent")
    with pytest.raises(IdxError, match="unknown image data set"):
        prepare_images("svhn", tmp_path / "records", raw_dir=tmp_path)


def test_corrupt_file_during_prepare_is_an_idx_error(tmp_path):
    make_idx_dir(tmp_path / "raw")
    path = tmp_path / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IdxError, match="train-images-idx3-ubyte.gz"):
        prepare_images("mnist", tmp_path / "records", raw_dir=tmp_path / "raw")
    assert not list((tmp_path / "records").glob("idx_images/mnist/1.0.0/*.tfrecord*"))


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="no shared MNIST copy")
def test_real_mnist_test_split():
    pixels, labels = images.load_images(SHARED_DATA / "mnist", "mnist", "test")
    assert pixels.shape == (10000, 28, 28)
    np.testing.assert_array_equal(labels[:5], [7, 2, 1, 0, 4])
    assert np.bincount(labels, minlength=10).min() > 800
