"""formdigits: read handwritten digits from boxes on scanned forms into CSV.

    >>> import formdigits
    >>> rows = formdigits.scan(["forms/page1.png"])   # list of formdigits.Row
    >>> reader = formdigits.Reader()                  # models loaded once
    >>> rows = reader.read(image)                     # a numpy array, bytes, a PIL image or a path

Importing formdigits is cheap: OpenCV and ONNX Runtime are imported when a name that needs them is
first used (PEP 562), and torch never (training is an optional extra).
"""

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# OpenCV's own limit on the pixels of an image it decodes, read once when cv2 is imported (so before any module of
# ours imports it; worker processes inherit it): pages.MAX_PIXELS, for a file whose header we could not judge
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "150000000")

if TYPE_CHECKING:
    from .output import Row
    from .pipeline import iter_scan, scan
    from .reader import Reader

__all__ = ["Reader", "Row", "__version__", "iter_scan", "scan"]

_LAZY = {"Row": "output", "iter_scan": "pipeline", "scan": "pipeline", "Reader": "reader"}


def __getattr__(name: str) -> Any:
    """``formdigits.Row``, ``scan``, ``iter_scan``, ``Reader``: imported when first asked for."""
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
