"""formdigits: read handwritten digits from boxes on scanned forms into CSV.

    >>> import formdigits
    >>> rows = formdigits.scan(["forms/page1.png"])   # list of formdigits.Row

Importing formdigits never imports torch: training is an optional extra.
"""

__version__ = "0.1.0"

from .output import Row  # noqa: E402
from .pipeline import iter_scan, scan  # noqa: E402

__all__ = ["Row", "iter_scan", "scan", "__version__"]
