"""formdigits: read handwritten digits from boxes on scanned forms into CSV.

    >>> import formdigits
    >>> rows = formdigits.scan(["forms/page1.png"])   # list of formdigits.Row

Importing formdigits never imports torch: training is an optional extra.
"""

__version__ = "0.1.0"

import os  # noqa: E402

# OpenCV's own limit on the pixels of an image it decodes, read once when cv2 is imported (so before any module of
# ours imports it; worker processes inherit it): pages.MAX_PIXELS, for a file whose header we could not judge
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "150000000")

from .output import Row  # noqa: E402
from .pipeline import iter_scan, scan  # noqa: E402

__all__ = ["Row", "iter_scan", "scan", "__version__"]
