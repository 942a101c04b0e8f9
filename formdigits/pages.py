"""Read scanned pages: PNG, JPEG, BMP, TIFF (multi-page, bitonal), PDF -> grayscale pages.

Every reader yields :class:`Page` objects one at a time (a 500-page PDF is never
held in memory at once). Images are normalised to 2-D ``uint8`` grayscale:
16-bit is scaled down, alpha is composited over white paper, colour is turned
into luminance. Problems raise :class:`PageError` naming the file; a page whose
decoder reported corrupt data is read, with ``damage`` saying so (see ``damage``).
"""

import io
import os
import struct
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .damage import corruption, decoder_messages, finite
from .errors import FormdigitsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pdf"}
DEFAULT_PDF_DPI = 300  # for PDF pages that hold no scanned image
PDF_DPI_RANGE = (50, 1200)  # resolutions a PDF page may be rendered at
MAX_PIXELS = 150_000_000  # refuse larger pages (decompression bombs) before decoding them


class PageError(FormdigitsError):
    """A page or file that cannot be read."""


@dataclass
class Page:
    image: np.ndarray  # 2-D uint8 grayscale, paper light
    file: str  # the path as the user gave it
    page: int  # 1-based
    dpi: float | None = None  # known for PDFs (rendered at that dpi); None for images
    damage: str = ""  # why the decoder's output is not to be trusted (it reported corrupt data), '' if it is


def to_gray(img: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR, BGRA, 8/16-bit, float) -> 2-D uint8 grayscale."""
    if img is None or img.size == 0:
        raise ValueError("empty image")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        img = cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:  # alpha over white paper
        a = img[:, :, 3:4].astype(np.float32) / 255
        img = (img[:, :, :3] * a + 255 * (1 - a)).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim != 2:
        raise ValueError(f"unsupported image shape {img.shape}")
    return np.ascontiguousarray(img)


def _kind(path):
    """The file's format from its first bytes: "pdf", "tiff", "jpeg" or "image"; PageError if unusable."""
    name = str(path)
    if path.is_dir():
        raise PageError(f"{name}: is a directory (use --recursive to scan folders)")
    if not path.exists():
        raise PageError(f"{name}: no such file")
    if not path.is_file():  # a FIFO, a socket, a device: opening it could wait for ever
        raise PageError(f"{name}: not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise PageError(f"{name}: cannot read: {e.strerror or e}") from None
    if not head:
        raise PageError(f"{name}: empty file (0 bytes)")
    if head.startswith(b"%PDF"):
        return "pdf"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"\x89PNG", b"BM")):
        return "image"
    raise PageError(f"{name}: not a supported image (PNG, JPEG, BMP, TIFF or PDF)")


def check_pdf_dpi(dpi: Any) -> str | float:
    """``dpi`` if it is ``"auto"`` or a number in ``PDF_DPI_RANGE``; ValueError otherwise."""
    low, high = PDF_DPI_RANGE
    is_number = isinstance(dpi, (int, float, np.integer, np.floating)) and not isinstance(dpi, bool)
    if dpi == "auto" or (is_number and low <= dpi <= high):  # (NaN fails every comparison)
        return dpi
    raise ValueError(f"pdf_dpi must be 'auto' or a number from {low} to {high}, got {dpi!r}")


def page_offsets(path: str | os.PathLike) -> list[int | None]:
    """One entry per page of a file, to hand to :func:`read_page`: a TIFF page's offset in the file
    (all found in one pass over its list of pages, so that each page is then read straight from
    there), None for a page of any other format. PageError if the file is unusable."""
    path = Path(path)
    kind = _kind(path)
    if kind == "pdf":
        with closing(_open_pdf(path)) as pdf:  # closing(): pypdfium2 4.x documents are no context managers
            return [None] * len(pdf)
    if kind == "tiff":
        return _tiff_offsets(path)
    return [None]


def count_pages(path: str | os.PathLike) -> int:
    """Number of pages in a file (1 for single images), without decoding any; PageError if unusable."""
    return len(page_offsets(path))


def read_page(path: str | os.PathLike, number: int, pdf_dpi: str | float = "auto", offset: int | None = None) -> Page:
    """Page ``number`` (1-based) of a file as a :class:`Page`.

    PDF pages are rendered at ``pdf_dpi``; ``"auto"`` renders a scanned page at
    the resolution of the scan inside it (so its pixels are the scan's pixels),
    and a page without one at 300 dpi. Images larger than ``MAX_PIXELS``, or
    whose size cannot be read, are refused from their header, before any pixel
    is decoded. ``offset``: the page's entry from :func:`page_offsets` (without
    it, a TIFF's list of pages is walked to find the page).
    """
    path = Path(path)
    check_pdf_dpi(pdf_dpi)
    kind = _kind(path)
    dpi = None
    with decoder_messages() as said:
        try:
            if kind == "pdf":
                img, dpi = _read_pdf_page(path, number, pdf_dpi)
            else:
                img = _read_image(path, kind, number, offset)
        except cv2.error as e:  # its pixel limit, a decoder's failure (PDF pages' JPEGs are decoded by OpenCV too)
            raise PageError(f"{path}: page {number}: OpenCV cannot decode it: {e}") from None
    try:
        img, damage = finite(img)
        return Page(to_gray(img), str(path), number, dpi, damage or corruption(said))
    except ValueError as e:
        raise PageError(f"{path}: page {number}: {e}") from None


def _read_image(path, kind, number, offset):
    """Decode a page of an image file (TIFF, PNG, JPEG, BMP) with OpenCV, after checking its size."""
    if kind == "tiff":
        offset, size, gray = _tiff_page(path, number, offset)
    else:
        size, mode = _image_size(path)
        gray = kind == "jpeg" or mode in ("RGB", "L", "1")
    _check_size(path, number, *size)
    # straight to gray where nothing is lost (8-bit colour or gray, no alpha): JPEG decoders skip the
    # colour planes (3x faster), PNG and TIFF save a conversion; anything else is decoded as it is
    flags = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_UNCHANGED
    if kind == "tiff":
        img = _decode_tiff_page(path, offset, flags)
    else:
        img = cv2.imdecode(np.fromfile(path, np.uint8), flags)
    if img is None:
        what = f"page {number} is not readable" if kind == "tiff" else "not a readable image"
        raise PageError(f"{path}: {what} (corrupt, truncated or unsupported format)")
    return img


def read_pages(path: str | os.PathLike, pdf_dpi: str | float = "auto") -> Iterator[Page]:
    """Yield the pages of one file, in order, one at a time."""
    for number, offset in enumerate(page_offsets(path), 1):
        yield read_page(path, number, pdf_dpi, offset)


def _check_size(path, number, w, h):
    """Refuse a page whose header says it is over MAX_PIXELS (a decompression bomb)."""
    if w * h > MAX_PIXELS:
        page = f"page {number}: " if number > 1 else ""
        raise PageError(f"{path}: {page}{w} x {h} pixels ({w * h / 1e6:.0f} Mpixel) is over the "
                        f"{MAX_PIXELS / 1e6:.0f} Mpixel limit for one page")  # fmt: skip


def _image_size(path):
    """A single image's ``(width, height)`` and Pillow mode ("RGB", "L", "RGBA", "I;16", ...) from its header."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # we judge the size ourselves
    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except Exception as e:  # Pillow parses hostile bytes: whatever it raises, the size is unknown
        raise PageError(f"{path}: not a readable image (its size cannot be read from its header: "
                        f"Pillow: {type(e).__name__}: {e})") from None  # fmt: skip
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _tiff_offsets(path):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tif.pages.cache = False  # each page's directory parsed once, none kept (pages may differ in kind:
            offsets = [p.offset for p in tif.pages]  # tifffile's light frames refuse a bitonal page after a colour one)
    except Exception as e:  # tifffile parses hostile bytes: whatever it raises, the file is not a usable TIFF
        raise PageError(f"{path}: not a readable TIFF (tifffile: {type(e).__name__}: {e})") from None
    if not offsets:
        raise PageError(f"{path}: not a readable TIFF (no pages)")
    return offsets


def _tiff_page(path, number, offset):
    """A TIFF page's ``offset``, ``(width, height)``, and whether it may be decoded straight to gray, from its
    directory (IFD): read at ``offset``, or found by walking the file's list of pages when that is None."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if offset is None:
                pages = len(tif.pages)
                ifd = tif.pages[number - 1] if number <= pages else None
            else:
                tif.filehandle.seek(offset)
                ifd = tifffile.TiffPage(tif, index=number - 1)
    except Exception as e:  # tifffile parses hostile bytes: whatever it raises, the page cannot be read
        raise PageError(f"{path}: page {number} is not readable (tifffile: {type(e).__name__}: {e})") from None
    if ifd is None:
        raise PageError(f"{path}: has no page {number} ({pages} pages)")
    gray = (ifd.bitspersample in (1, 8) and ifd.sampleformat == 1 and not ifd.extrasamples
            and ifd.photometric in (0, 1, 2, 6))  # fmt: skip  # min-is-white or -black, RGB, YCbCr
    return ifd.offset, (ifd.imagewidth, ifd.imagelength), gray


def _decode_tiff_page(path, offset, flags):
    """Decode the TIFF page whose directory is at ``offset`` with OpenCV, without walking the pages before it.

    OpenCV (libtiff) decodes a file's first page: it is given the file mapped
    copy-on-write (nothing is read until used, nothing is written back) with
    the header's offset of the first page pointed at this page.
    """
    data = np.memmap(path, np.uint8, mode="c")
    data[4:8] = np.frombuffer(struct.pack("<I" if data[0] == ord("I") else ">I", offset), np.uint8)
    return cv2.imdecode(data, flags)


def _native_dpi(page, raw):
    """The resolution of the scan inside a PDF page (its largest image), or None."""
    best = None
    for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=1):
        m = obj.get_metadata()
        if m.horizontal_dpi > 0 and (best is None or m.width * m.height > best[0]):
            best = (m.width * m.height, m.horizontal_dpi)
    return None if best is None else min(max(best[1], 100.0), 600.0)


def _open_pdf(path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise PageError(f"{path}: not a readable PDF: it is encrypted (password protected)") from None
        raise PageError(f"{path}: not a readable PDF ({e})") from None


def _read_pdf_page(path, number, dpi):
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    with closing(_open_pdf(path)) as pdf:  # closing(): pypdfium2 4.x documents are no context managers
        if not 1 <= number <= len(pdf):
            raise PageError(f"{path}: has no page {number} ({len(pdf)} pages)")
        try:  # a page pdfium cannot load or render (a broken page tree, a damaged content stream)
            page = pdf[number - 1]
            w, h = page.get_size()
            page_dpi = (_native_dpi(page, raw) or DEFAULT_PDF_DPI) if dpi == "auto" else float(dpi)
            pixels = w * h * (page_dpi / 72) ** 2
            if pixels > MAX_PIXELS:
                raise PageError(f"{path}: page {number} would be {pixels / 1e6:.0f} Mpixel at {page_dpi:.0f} dpi, "
                                f"over the {MAX_PIXELS / 1e6:.0f} Mpixel limit for one page")  # fmt: skip
            image = _scanned_jpeg(page, raw, page_dpi) if dpi == "auto" else None
            if image is None:
                bitmap = page.render(scale=page_dpi / 72, grayscale=True)
                image = np.array(bitmap.to_numpy())
                bitmap.close()
            page.close()
        except pdfium.PdfiumError as e:
            raise PageError(f"{path}: page {number}: pdfium cannot read it: {e}") from None
    return image, page_dpi


def _scanned_jpeg(page, raw, dpi):
    """A scanned page's own pixels, when the page is nothing but one upright JPEG covering it.

    Then its JPEG is decoded straight to gray (about 5x faster than rendering
    the page, and the same pixels at the scan's resolution); anything else -
    other objects on the page (an OCR text layer, stamps), a rotated page or
    image, another image encoding - is rendered instead (None).
    """
    if page.get_rotation() != 0 or raw.FPDFPage_CountObjects(page) != 1:
        return None
    objs = list(page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=1))
    if len(objs) != 1 or objs[0].get_filters() != ["DCTDecode"]:
        return None
    image = objs[0]
    a, b, c, d, e, f = image.get_matrix().get()
    w, h = page.get_size()
    meta = image.get_metadata()
    upright = b == 0 and c == 0 and a > 0 and d > 0
    covers = abs(e) < 1 and abs(f) < 1 and abs(a - w) < 1 and abs(d - h) < 1
    same_dpi = abs(meta.width - w * dpi / 72) <= 1 and abs(meta.height - h * dpi / 72) <= 1
    if not (upright and covers and same_dpi) or meta.colorspace not in (1, 2):  # DeviceGray, DeviceRGB
        return None
    data = io.BytesIO()
    image.extract(data)
    gray = cv2.imdecode(np.frombuffer(data.getvalue(), np.uint8), cv2.IMREAD_GRAYSCALE)
    return gray if gray is not None and gray.shape == (meta.height, meta.width) else None
