"""Read scanned pages: PNG, JPEG, BMP, TIFF (multi-page, bitonal), PDF -> grayscale pages.

Every reader yields :class:`Page` objects one at a time (a 500-page PDF is never
held in memory at once). Images are normalised to 2-D ``uint8`` grayscale:
16-bit is scaled down, alpha is composited over white paper, colour is turned
into luminance. Problems raise :class:`PageError` naming the file.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import FormdigitsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pdf"}
DEFAULT_PDF_DPI = 300  # for PDF pages that hold no scanned image
MAX_PIXELS = 200_000_000  # refuse larger pages (decompression bombs) before decoding them


class PageError(FormdigitsError):
    """A page or file that cannot be read."""


@dataclass
class Page:
    image: np.ndarray  # 2-D uint8 grayscale, paper light
    file: str  # the path as the user gave it
    page: int  # 1-based
    dpi: float | None = None  # known for PDFs (rendered at that dpi); None for images


def to_gray(img):
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


def read_pages(path, pdf_dpi="auto"):
    """Yield the pages of one file, in order.

    PDF pages are rendered at ``pdf_dpi``; ``"auto"`` renders a scanned page at
    the resolution of the scan inside it (so its pixels are the scan's pixels),
    and a page without one at 300 dpi.
    """
    path = Path(path)
    name = str(path)
    if path.is_dir():
        raise PageError(f"{name}: is a directory (use --recursive to scan folders)")
    if not path.exists():
        raise PageError(f"{name}: no such file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise PageError(f"{name}: cannot read: {e.strerror or e}") from None
    if not head:
        raise PageError(f"{name}: empty file (0 bytes)")
    if head.startswith(b"%PDF"):
        yield from _read_pdf(path, name, pdf_dpi)
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        yield from _read_tiff(path, name)
    else:
        yield Page(_decode(path, name), name, 1)


def _decode(path, name):
    data = np.fromfile(path, np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PageError(f"{name}: not a readable image (corrupt, truncated or unsupported format)")
    try:
        return to_gray(img)
    except ValueError as e:
        raise PageError(f"{name}: {e}") from None


def _read_tiff(path, name):
    count = cv2.imcount(str(path))
    if count <= 0:
        raise PageError(f"{name}: not a readable TIFF")
    for i in range(count):
        ok, imgs = cv2.imreadmulti(str(path), start=i, count=1, flags=cv2.IMREAD_UNCHANGED)
        if not ok or not imgs:
            raise PageError(f"{name}: page {i + 1} of {count} is not readable")
        try:
            yield Page(to_gray(imgs[0]), name, i + 1)
        except ValueError as e:
            raise PageError(f"{name}: page {i + 1}: {e}") from None


def _native_dpi(page, raw):
    """The resolution of the scan inside a PDF page (its largest image), or None."""
    best = None
    for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=1):
        m = obj.get_metadata()
        if m.horizontal_dpi > 0 and (best is None or m.width * m.height > best[0]):
            best = (m.width * m.height, m.horizontal_dpi)
    return None if best is None else min(max(best[1], 100.0), 600.0)


def _read_pdf(path, name, dpi):
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        raise PageError(f"{name}: not a readable PDF ({e})") from None
    try:
        for i in range(len(pdf)):
            page = pdf[i]
            w, h = page.get_size()
            page_dpi = (_native_dpi(page, raw) or DEFAULT_PDF_DPI) if dpi == "auto" else float(dpi)
            if w * h * (page_dpi / 72) ** 2 > MAX_PIXELS:
                raise PageError(f"{name}: page {i + 1} would be {w * h * (page_dpi / 72) ** 2 / 1e6:.0f} Mpixel "
                                f"at {page_dpi:.0f} dpi, over the {MAX_PIXELS / 1e6:.0f} Mpixel limit")  # fmt: skip
            bitmap = page.render(scale=page_dpi / 72, grayscale=True)
            image = np.array(bitmap.to_numpy())
            bitmap.close()
            page.close()
            yield Page(to_gray(image), name, i + 1, page_dpi)
    finally:
        pdf.close()
