"""MNIST in its standard IDX files: find, verify, download, read.

Files are looked up as ``<name>`` or ``<name>.gz`` in the data folder and checked
against the sha256 of their *decompressed* content, so a truncated download or
a different data set is caught before it trains or evaluates anything.
"""

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from .errors import DataError

ENV_VAR = "FORMDIGITS_MNIST_DIR"

# name -> sha256 of the decompressed IDX content
FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def default_data_dir():
    """``$FORMDIGITS_MNIST_DIR`` if set, else a per-user cache folder."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    import platformdirs

    return platformdirs.user_cache_path("formdigits") / "mnist"


def _find(data_dir, name):
    for candidate in (data_dir / f"{name}.gz", data_dir / name):
        if candidate.is_file():
            return candidate
    return None


def _missing_message(data_dir, missing):
    names = ", ".join(f"{n}.gz" for n in missing)
    return (
        f"MNIST not found in {data_dir}: missing {names}. Put the four standard MNIST IDX "
        f"files there (gzipped or not), or point --data-dir / ${ENV_VAR} at a folder that has them"
    )


def read_idx(path, expected_sha256=None):
    """Read one IDX file (gzipped or raw) into a numpy array, verifying its checksum."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    if expected_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected_sha256:
            raise DataError(
                f"{path}: checksum mismatch (sha256 of content {digest[:12]}…, expected "
                f"{expected_sha256[:12]}…): the file is corrupt or not the original MNIST"
            )
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(raw) - header != count:
        raise DataError(f"{path}: IDX header says {shape} but holds {len(raw) - header} bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def download_mnist(data_dir, mirrors=MIRRORS, timeout=15):
    """Download the missing MNIST files into ``data_dir``, verifying each checksum.

    Raises :class:`DataError` saying where to put the files when no mirror answers.
    """
    data_dir = Path(data_dir)
    missing = [n for n in FILES if _find(data_dir, n) is None]
    if not missing:
        return
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{data_dir}: cannot create data folder: {e}") from None
    for name in missing:
        errors = []
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            try:
                _fetch(url, data_dir / f"{name}.gz", FILES[name], timeout)
                break
            except (urllib.error.URLError, OSError, ValueError, DataError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
        else:
            raise DataError(
                _missing_message(data_dir, [n for n in FILES if _find(data_dir, n) is None])
                + ". Download failed: " + "; ".join(errors)
            )


def _fetch(url, target, sha256, timeout):
    """Download ``url`` to ``target``; it lands there only once its checksum is right."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        read_idx(tmp, sha256)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def require_mnist(data_dir=None, download=False):
    """Make sure all four files are there (the missing ones downloaded when ``download``), before a run that
    needs both splits starts: :class:`DataError` names every file that is missing, not just one split's."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if download:
        download_mnist(data_dir)
    if missing := [n for n in FILES if _find(data_dir, n) is None]:
        raise DataError(_missing_message(data_dir, missing))


def load_mnist(split, data_dir=None, download=False):
    """Return ``(images, labels)`` of a split ("train" or "test") as uint8 arrays.

    Images are ``(N, 28, 28)`` ink images (0 paper, 255 ink).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if download:
        download_mnist(data_dir)
    paths = {n: _find(data_dir, n) for n in SPLITS[split]}
    missing = [n for n, p in paths.items() if p is None]
    if missing:
        raise DataError(_missing_message(data_dir, missing))
    images_name, labels_name = SPLITS[split]
    images = read_idx(paths[images_name], FILES[images_name])
    labels = read_idx(paths[labels_name], FILES[labels_name])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{data_dir}: images {images.shape} and labels {labels.shape} do not match")
    return images, labels
