"""The shared download helpers: digests by hand, fetching from a local file URL."""

import hashlib
import urllib.error

import pytest

from pipelines import downloads


def test_file_digest_matches_hashlib_on_a_file_larger_than_one_block(tmp_path):
    data = bytes(range(256)) * 5000  # 1.28 MB: more than the 1 MiB read block
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert downloads.file_digest(path) == hashlib.md5(data).hexdigest()
    assert downloads.file_digest(path, "sha256") == hashlib.sha256(data).hexdigest()


def test_fetch_copies_a_url_and_raises_for_a_missing_one(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("ratings")
    downloads.fetch(source.as_uri(), tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_text() == "ratings"
    with pytest.raises((urllib.error.URLError, OSError)):
        downloads.fetch((tmp_path / "missing.txt").as_uri(), tmp_path / "other.txt")
