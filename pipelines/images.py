"""MNIST and Fashion-MNIST in their original IDX files: read, validate, download.

The IDX format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code (0x08 for
unsigned bytes), the number of dimensions, each dimension as a big-endian int32, then the data
in row-major order. Files may be gzipped (as published) or raw; both read the same.

    images, labels = load_images("../shared/data/mnist", "mnist", "train")
"""

import gzip
import math
import os
import pathlib
import struct
import tempfile
import urllib.error
import zlib

import numpy as np

from pipelines import downloads
from pipelines.errors import IdxError

IMAGE_DATASETS = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")
IMAGE_SIZE = 28
# one image as every model here takes it: height, width, one channel
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
NUM_CLASSES = 10

# type code -> numpy dtype of the data, as the format's specification lists them
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}

# split -> (images file, labels file), the names under which both data sets are published
_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# official md5 of the published gz files (MNIST: LeCun et al.; Fashion-MNIST: the README of
# zalandoresearch/fashion-mnist)
OFFICIAL_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# tried in order: yann.lecun.com often refuses downloads, so MNIST needs its well-known mirrors
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
}


def check_dataset(dataset):
    """Raise IdxError unless `dataset` is one of IMAGE_DATASETS."""
    if dataset not in IMAGE_DATASETS:
        raise IdxError(f"unknown image data set {dataset!r}; choose one of {', '.join(IMAGE_DATASETS)}")


def _read_bytes(path):
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as error:
            raise IdxError(f"{path}: corrupt or truncated gzip file ({error})") from None
    return data


def read_idx(path):
    """The array stored in the IDX file `path` (gzipped or raw), with its stored shape.

    Raises IdxError naming the file when it is missing, truncated, longer than its header
    says, or not an IDX file at all.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise IdxError(f"{path}: no such file")
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise IdxError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'none'})")
    dtype = _IDX_DTYPES[data[2]]
    num_dims = data[3]
    header_size = 4 + 4 * num_dims
    if num_dims == 0 or len(data) < header_size:
        raise IdxError(f"{path}: truncated IDX header ({num_dims} dimensions, {len(data)} bytes)")
    shape = struct.unpack(f">{num_dims}I", data[4:header_size])
    # Python integers: a garbage header can name sizes that overflow int64
    expected = header_size + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise IdxError(f"{path}: {what}: shape {list(shape)} needs {expected} bytes, "
                       f"the file holds {len(data)}")
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def find_idx_file(raw_dir, stem):
    """The path of `stem` (e.g. "t10k-images-idx3-ubyte") in raw_dir, gzipped or raw."""
    raw_dir = pathlib.Path(raw_dir)
    # also accept the "train-images.idx3-ubyte" spelling some copies use
    dotted = stem.replace("-idx", ".idx")
    for name in (f"{stem}.gz", stem, f"{dotted}.gz", dotted):
        if (raw_dir / name).is_file():
            return raw_dir / name
    raise IdxError(f"{raw_dir}: no {stem}.gz (or uncompressed {stem}); pass the directory "
                   "holding the four IDX files, or download them")


def check_raw_dir(raw_dir):
    """Raise IdxError unless `raw_dir` holds all four IDX files (cheap: reads nothing)."""
    raw_dir = pathlib.Path(raw_dir)
    if not raw_dir.is_dir():
        raise IdxError(f"{raw_dir}: no such directory")
    for stems in _FILE_STEMS.values():
        for stem in stems:
            find_idx_file(raw_dir, stem)


def load_images(raw_dir, dataset, split):
    """(images uint8 [n, 28, 28], labels uint8 [n]) of `split` ("train" or "test")."""
    check_dataset(dataset)
    if split not in SPLITS:
        raise IdxError(f"unknown split {split!r}; choose train or test")
    raw_dir = pathlib.Path(raw_dir)
    if not raw_dir.is_dir():
        raise IdxError(f"{raw_dir}: no such directory")
    images_path, labels_path = (find_idx_file(raw_dir, stem) for stem in _FILE_STEMS[split])
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise IdxError(f"{images_path}: expected uint8 images of {IMAGE_SIZE}x{IMAGE_SIZE}, "
                       f"found {images.dtype} of shape {list(images.shape)}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IdxError(f"{labels_path}: expected a uint8 vector of labels, "
                       f"found {labels.dtype} of shape {list(labels.shape)}")
    if len(labels) != len(images):
        raise IdxError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise IdxError(f"{labels_path}: label {int(labels.max())} outside 0..{NUM_CLASSES - 1}")
    return images, labels


def write_idx(path, array):
    """Write `array` (uint8) as an IDX file, gzipped when `path` ends in .gz (tests, fixtures)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx writes uint8 arrays, got {array.dtype}")
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    pathlib.Path(path).write_bytes(data)


def verify_md5(path, expected_md5):
    """Raise IdxError unless the file at `path` has the md5 `expected_md5`."""
    actual = downloads.file_digest(path, "md5")
    if actual != expected_md5:
        raise IdxError(f"{path}: md5 {actual} differs from the published {expected_md5}; "
                       "the file is damaged or not the official one")


def download(dataset, raw_dir, mirrors=None, log=None):
    """Fetch the four official gz files of `dataset` into `raw_dir`, checking their md5.

    Files already present with the right md5 are kept. Each file is written under a temporary
    name and renamed only after its md5 matched, so nothing half-downloaded is left behind.
    Raises IdxError when no mirror delivers a file with the published md5.
    """
    check_dataset(dataset)
    raw_dir = pathlib.Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    mirrors = MIRRORS[dataset] if mirrors is None else mirrors
    for name, md5 in OFFICIAL_MD5[dataset].items():
        target = raw_dir / name
        if target.is_file() and downloads.file_digest(target, "md5") == md5:
            continue
        failures = []
        for base in mirrors:
            url = base + name
            if log:
                log(f"downloading {url}")
            handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=raw_dir)
            os.close(handle)
            try:
                downloads.fetch(url, temporary)
                verify_md5(temporary, md5)
                os.replace(temporary, target)
                break
            except (urllib.error.URLError, OSError, IdxError) as error:
                failures.append(f"{url}: {error}")
            finally:
                if os.path.exists(temporary):
                    os.remove(temporary)
        else:
            raise IdxError(f"could not download {name} with md5 {md5}: " + "; ".join(failures))
    return raw_dir
