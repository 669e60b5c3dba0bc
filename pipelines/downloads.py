"""Fetching and checking the official data files, and handing them to the TFDS builders:
shared by the MovieLens and image readers."""

import hashlib
import shutil
import tempfile
import urllib.request


def file_digest(path, algorithm="md5"):
    """Hex digest of the file at `path`, read in blocks so a large zip never sits in memory."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url, path, timeout=60):
    """Copy `url` into the file `path`; raises urllib.error.URLError or OSError on failure."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as handle:
        shutil.copyfileobj(response, handle, length=1 << 20)


def manual_download_config(raw_dir):
    """A TFDS download config that reads the raw files from `raw_dir` (the builders' manual
    directory) and never touches the network."""
    import tensorflow_datasets as tfds

    return tfds.download.DownloadConfig(manual_dir=str(raw_dir), try_download_gcs=False)


def build_tfds_builder(builder_class, **kwargs):
    """`builder_class(**kwargs)`, without the empty ``tmp*tfds`` directory TFDS's constructor
    leaves in the system's temporary directory for every dataset not prepared yet
    (`DatasetInfo.initialize_from_bucket` makes it before finding no bucket files): it is made
    in a scratch directory that is removed at once."""
    with tempfile.TemporaryDirectory() as scratch:
        saved = tempfile.tempdir
        tempfile.tempdir = scratch
        try:
            return builder_class(**kwargs)
        finally:
            tempfile.tempdir = saved
