"""The images a person checks: each field cut from its page as the scan read it, and the reader's digit cuts.

Pages are read again with the scan's own code (:func:`formdigits.fieldview.page_views`),
once per page: the last few pages read are kept (an LRU), and the pages of the
next items are read ahead in a background thread so the person never waits.
A field whose box the reader no longer finds (another model, a changed file) is
still shown: cut straight from the page, with no digit cuts and a note.
"""

import base64
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .queue import Item

CACHED_PAGES = 24  # a page's views hold only its fields' cuts (not the page): small
MAX_PAGE_SIDE = 2000  # the whole page image is sent at most this many pixels on its longer side


def png_data_url(image: Any) -> str:
    """A 2-D uint8 image as a ``data:image/png;base64,...`` URL."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("cannot encode the image as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def resolve(file: str, base: Path) -> Path:
    """The page file ``file`` names: as given (relative to the working folder), else relative to ``base`` (the
    scan CSV's folder)."""
    p = Path(file)
    if p.is_absolute() or p.exists():
        return p
    other = base / p
    return other if other.exists() else p


class Views:
    """Field images for items, page by page, cached; ``readers``: ``(classifier, strip reader or None)``,
    loaded on first use when None (``formdigits.batch.load_readers``)."""

    def __init__(self, base: Path, readers: tuple | None = None, pdf_dpi: str | float = "auto",
                 min_confidence: float = 0.9, cached: int = CACHED_PAGES) -> None:  # fmt: skip
        self.base, self.readers, self.pdf_dpi, self.min_confidence = base, readers, pdf_dpi, min_confidence
        self.cached = cached
        self._pages: OrderedDict[tuple[str, int], Future] = OrderedDict()
        self._lock = threading.Lock()
        self._readers_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="formdigits-review")

    def _models(self) -> tuple:
        with self._readers_lock:
            if self.readers is None:
                from ..batch import load_readers

                clf, strips, _, _ = load_readers(workers=0)
                self.readers = (clf, strips)
            return self.readers

    def _read(self, file: str, page: int, boxes: Sequence[tuple]) -> dict:
        """``{box: FieldView}`` of a page, or ``{"error": message}``."""
        from ..fieldview import page_views

        clf, strips = self._models()
        try:
            views = page_views(str(resolve(file, self.base)), page, clf, strips, boxes=boxes, pdf_dpi=self.pdf_dpi,
                               min_confidence=self.min_confidence)  # fmt: skip
        except Exception as e:  # noqa: BLE001  (a page that cannot be read is shown as a note, not a crash)
            return {"error": f"{file}: page {page}: cannot be read again: {e}"}
        return {v.box: v for v in views}

    def page(self, file: str, page: int, boxes: Sequence[tuple] = ()) -> Future:
        """The future ``{box: FieldView}`` of a page (started now, or cached)."""
        key = (file, page)
        with self._lock:
            if key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
            future = self._pool.submit(self._read, file, page, tuple(boxes))
            self._pages[key] = future
            while len(self._pages) > self.cached:
                self._pages.popitem(last=False)
            return future

    def prefetch(self, upcoming: Sequence[Item], boxes: dict) -> None:
        """Start reading the pages of ``upcoming`` items (not waiting); ``boxes``: (file, page) -> the CSV's boxes."""
        seen: set = set()
        for it in upcoming:
            key = (it.file, it.page)
            if key not in seen and len(seen) < self.cached - 1:
                seen.add(key)
                self.page(it.file, it.page, boxes.get(key, ()))

    def payload(self, item: Item, boxes: Sequence[tuple] = ()) -> dict:
        """What the page shows of ``item``: the field image, where the box is in it, the digit cuts."""
        found = self.page(item.file, item.page, boxes).result()
        if "error" in found:
            return {"image": None, "inner": None, "crops": [], "note": found["error"]}
        view = found.get(item.box)
        if view is None:
            return self._fallback(item)
        crops = [{"src": png_data_url(255 - crop), "label": label, "confidence": round(float(p), 4)}
                 for crop, label, p in zip(view.digits, view.labels, view.confidences)]  # fmt: skip
        h, w = view.image.shape
        return {"image": png_data_url(view.image), "size": [w, h], "inner": list(view.inner), "crops": crops, "note": ""}

    def _fallback(self, item: Item) -> dict:
        import numpy as np

        from ..fieldview import field_image
        from ..pages import read_page

        try:
            page = read_page(resolve(item.file, self.base), item.page, self.pdf_dpi).image
            image, inner = field_image(page, np.array([[1, 0, 0], [0, 1, 0]], float), item.box)
        except Exception as e:  # noqa: BLE001
            return {"image": None, "inner": None, "crops": [], "note": f"{item.file}: page {item.page}: {e}"}
        h, w = image.shape
        return {"image": png_data_url(image), "size": [w, h], "inner": list(inner), "crops": [],
                "note": "the reader no longer finds this box on the page: shown as cut, without the digit cuts"}  # fmt: skip

    def close(self, wait: bool = False) -> None:
        """Stop reading pages (the one being read is finished when ``wait``)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


def page_jpeg(file: str, page: int, base: Path, pdf_dpi: str | float = "auto", box: tuple | None = None) -> bytes:
    """A whole page as the scan read it (before deskewing), as JPEG bytes, at most MAX_PAGE_SIDE pixels a side;
    ``box`` (x, y, w, h in the page's pixels): a field to outline on it."""
    import cv2

    from ..pages import read_page

    image = read_page(resolve(file, base), page, pdf_dpi).image
    scale = min(1.0, MAX_PAGE_SIDE / max(image.shape))
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if box is not None:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        x, y, w, h = (int(round(v * scale)) for v in box)
        pad = max(4, int(0.15 * h))
        cv2.rectangle(image, (x - pad, y - pad), (x + w + pad, y + h + pad), (214, 87, 37), max(3, h // 12))
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ValueError("cannot encode the page as JPEG")
    return buf.tobytes()


def page_href(file: str, base: Path, html_path: str | os.PathLike) -> str:
    """A link from the static page at ``html_path`` to the page file (a relative URL, each character that is not
    plain percent-escaped: never a ``javascript:`` or other scheme)."""
    from urllib.parse import quote

    target = resolve(file, base).resolve()
    try:
        rel = os.path.relpath(target, Path(html_path).resolve().parent)
    except ValueError:  # another drive (Windows)
        return "file://" + quote(target.as_posix().encode("utf-8", "surrogateescape"))
    return "./" + quote(Path(rel).as_posix().encode("utf-8", "surrogateescape"))
