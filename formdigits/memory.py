"""Images held in memory -> pages: numpy arrays, PIL images, and the bytes of an image or PDF file.

Each becomes a list of :class:`~formdigits.pages.Page` (every page of a
multi-page TIFF, PDF or PIL image), normalised like a page read from a file
(see ``pages.to_gray``) and held to the same size limit (``pages.MAX_PIXELS``).
Problems raise :class:`~formdigits.pages.PageError` naming the image.
"""

import os
import tempfile
from typing import Any

import numpy as np

from .damage import finite
from .pages import Page, PageError, _check_size, page_offsets, read_page, to_gray

CHANNEL_ORDERS = ("bgr", "rgb")
_PIL_MODES = ("1", "L", "RGB", "RGBA", "I;16", "I", "F")  # modes numpy takes as they are; others go to RGBA


def check_channel_order(channel_order: str) -> str:
    """``channel_order`` if it is ``"bgr"`` or ``"rgb"``; ValueError otherwise."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be bgr or rgb, got {channel_order!r}")
    return channel_order


def array_pages(array: np.ndarray, name: str, channel_order: str = "bgr", number: int = 1) -> list[Page]:
    """One page from a 2-D gray or 3-D colour (3 or 4 channels, ``channel_order``) array, any numeric dtype."""
    check_channel_order(channel_order)
    a = np.asarray(array)
    if a.ndim not in (2, 3) or a.size == 0 or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise PageError(f"{name}: not an image: an array of shape {a.shape} (expected H x W or H x W x C)")
    if a.dtype.kind not in "buif":
        raise PageError(f"{name}: not an image: an array of dtype {a.dtype}")
    h, w = a.shape[:2]
    _check_size(name, number, w, h)
    if channel_order == "rgb" and a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[:, :, [2, 1, 0, 3][: a.shape[2]]]  # to BGR(A), as OpenCV decodes (a copy)
    a = np.ascontiguousarray(a)  # OpenCV takes no negative strides (an RGB view reversed with [:, :, ::-1])
    try:
        a, damage = finite(a)
        return [Page(to_gray(a), name, number, None, damage)]
    except ValueError as e:
        raise PageError(f"{name}: {e}") from None


def pil_pages(image: Any, name: str) -> list[Page]:
    """Every frame of a PIL image as a page."""
    from PIL import ImageSequence

    frames = ImageSequence.Iterator(image) if getattr(image, "n_frames", 1) > 1 else [image]
    pages = []
    for number, frame in enumerate(frames, 1):
        _check_size(name, number, *frame.size)  # before converting it
        if frame.mode not in _PIL_MODES:
            frame = frame.convert("RGBA")
        pages += array_pages(np.asarray(frame), name, "rgb", number)
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    return pages


def bytes_pages(data: bytes, name: str, pdf_dpi: Any = "auto") -> list[Page]:
    """Every page of a file's bytes (PNG, JPEG, BMP, TIFF or PDF), read as that file would be.

    The bytes go to a temporary file for the while: the readers of ``pages``
    (their header checks, size limits and damage reports) work on files.
    """
    fd, tmp = tempfile.mkstemp(prefix="formdigits-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            pages = [read_page(tmp, n, pdf_dpi, offset) for n, offset in enumerate(page_offsets(tmp), 1)]
        except PageError as e:
            raise PageError(str(e).replace(tmp, name)) from None
    finally:
        os.unlink(tmp)
    for page in pages:
        page.file = name
    return pages
