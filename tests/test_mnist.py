import gzip
import hashlib
import shutil
import time

import numpy as np
import pytest

from formdigits.errors import DataError
from formdigits.mnist import FILES, download_mnist, load_mnist, read_idx


def idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_raw_and_gzip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(a)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz", hashlib.sha256(raw).hexdigest()), a)


def test_read_idx_errors_name_the_file(tmp_path):
    raw = idx_bytes(np.zeros((5, 2), np.uint8))
    bad_sum = tmp_path / "sum"
    bad_sum.write_bytes(raw)
    with pytest.raises(DataError, match=r"sum: checksum mismatch"):
        read_idx(bad_sum, "0" * 64)
    short = tmp_path / "short"
    short.write_bytes(raw[:-3])
    with pytest.raises(DataError, match=r"short: IDX header says \(5, 2\) but holds 7 bytes"):
        read_idx(short)
    text = tmp_path / "text"
    text.write_bytes(b"hello world")
    with pytest.raises(DataError, match="text: not an IDX file"):
        read_idx(text)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(raw)[:20])
    with pytest.raises(DataError, match="broken.gz: cannot read"):
        read_idx(broken)


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(DataError, match=rf"MNIST not found in {tmp_path}: missing t10k-images-idx3-ubyte.gz"):
        load_mnist("test", tmp_path)


def test_load_real_mnist(mnist_dir):
    images, labels = load_mnist("test", mnist_dir)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_download_from_a_mirror_verifies_and_lands(tmp_path, mnist_dir):
    # a local folder served through file:// exercises the real urllib download path
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in FILES:
        shutil.copy(mnist_dir / f"{name}.gz", mirror / f"{name}.gz")
    target = tmp_path / "cache"
    download_mnist(target, mirrors=[f"{mirror.as_uri()}/"])
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    assert load_mnist("test", target)[0].shape == (10000, 28, 28)


def test_download_refuses_a_corrupt_copy(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in FILES:
        (mirror / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    target = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch"):
        download_mnist(target, mirrors=[f"{mirror.as_uri()}/"])
    assert list(target.iterdir()) == []  # nothing half-downloaded or wrong is left behind


def test_offline_download_fails_fast_with_directions(tmp_path):
    t = time.perf_counter()
    with pytest.raises(DataError, match=r"Put the four standard MNIST IDX files there.*Download failed"):
        download_mnist(tmp_path / "cache", mirrors=["http://127.0.0.1:9/"])  # closed port on loopback
    assert time.perf_counter() - t < 10
