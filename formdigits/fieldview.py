"""One page's fields as a person checking them sees them: the deskewed field image and the digits read in it.

Used by ``formdigits review`` (the verification page) and by the export of
corrected digits for training. A page is read again exactly as the scan read
it (``pipeline.analyse_page`` and ``recognize.read``: same code, same models),
so each field's digit crops are the very crops its value came from.
"""

from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .classifier import Classifier
from .pipeline import DEFAULT_MIN_CONFIDENCE, PageTask, analyse_page
from .recognize import Inputs, read
from .sequence import StripReader

MARGIN = 0.25  # around a field's image: this share of its height on every side


@dataclass
class FieldView:
    """One field of a page, as the scan read it."""

    file: str
    page: int
    field: int  # 1, 2, ... in the page's reading order (the CSV's field number without a template)
    box: tuple  # (x, y, w, h) in the original page's pixels: the CSV's x, y, w, h
    image: np.ndarray  # the field deskewed, with a margin: 2-D uint8 grayscale, paper light
    inner: tuple  # (x, y, w, h) of the box itself within ``image``
    value: str  # what the scan read (this reading's value)
    status: str
    digits: list = dataclasses.field(default_factory=list)  # ink crops (uint8, ink bright) of the marks read, left to right
    labels: list = dataclasses.field(default_factory=list)  # per crop: the digit read, or "reject" (a mark read as no digit)
    confidences: list = dataclasses.field(default_factory=list)  # per crop: the probability of its label
    strip: np.ndarray | None = None  # the field's strip as the sequence reader sees it (uint8), if read


def page_views(file: str, page: int, classifier: Classifier, strips: StripReader | None = None,
               boxes: Sequence[tuple] = (), pdf_dpi: str | float = "auto",
               min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[FieldView]:  # fmt: skip
    """Every field of page ``page`` of ``file``, read as the scan reads it.

    ``boxes``: the ``(x, y, w, h)`` the scan's CSV gives for this page's fields;
    when most of them are not found upright, the page is read turned round (the
    scan turned it: see ``orient``). Raises ``PageError`` (or OSError) for a page
    that cannot be read.
    """
    work = _read(PageTask(str(file), page, pdf_dpi, True, strip_params=strips.params if strips else None),
                 classifier, strips, min_confidence)  # fmt: skip
    if boxes and _found(work, boxes) * 2 < len(boxes):
        turned = _read(work.task._replace(turn=(work.turned + 180) % 360), classifier, strips, min_confidence)
        if _found(turned, boxes) > _found(work, boxes):
            work = turned
    return _views(work, classifier)


def _read(task: PageTask, classifier: Classifier, strips: StripReader | None, min_confidence: float) -> Any:
    work = analyse_page(task)
    if work.error:
        from .pages import PageError

        raise PageError(work.error)
    x = Inputs(classifier.params, work.crops or [])
    read(classifier, x, [work], min_confidence, strips)
    work.crops = x.crops  # with the extra cuts read may have added
    return work


def _found(work: Any, boxes: Sequence[tuple]) -> int:
    mine = {tuple(b[:4]) for b in work.boxes}
    return sum(tuple(b[:4]) in mine for b in boxes)


def _views(work: Any, classifier: Classifier) -> list[FieldView]:
    chosen = [[i for slot in slots for i in slot] for slots in work.chosen or []]
    flat = [i for field_ in chosen for i in field_]
    probs = classifier.predict(Inputs(classifier.params, [work.crops[i] for i in flat])[np.arange(len(flat))]) \
        if flat else np.zeros((0, len(classifier.labels)), np.float32)  # fmt: skip
    views, k = [], 0
    for n, (box, deskewed, row, crops) in enumerate(zip(work.boxes, work.deskewed, work.rows, chosen), 1):
        image, inner = field_image(work.image, work.matrix, deskewed)
        p = probs[k : k + len(crops)]
        k += len(crops)
        strip = work.strips[n - 1][0] if work.strips and work.strips[n - 1] else None
        views.append(FieldView(work.file, work.page, n, tuple(box[:4]), image, inner, row.value, row.status,
                               [work.crops[i] for i in crops], [classifier.labels[j] for j in p.argmax(1)],
                               [float(q) for q in p.max(1)], strip))  # fmt: skip
    return views


def field_image(page: np.ndarray, matrix: np.ndarray, box: tuple, margin: float = MARGIN) -> tuple:
    """``(image, inner)``: the deskewed page's ``box`` (x, y, w, h) with a margin, cut straight from the
    original ``page`` through ``matrix`` (original -> deskewed, 2x3), and where the box lies in it."""
    if page is None or page.ndim != 2:
        raise ValueError("page must be a 2-D grayscale image")
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"box must have a positive size, got {box}")
    m = max(4, int(round(margin * h)))
    shift = np.array([[1, 0, m - x], [0, 1, m - y]], np.float64)
    to_crop = shift @ np.vstack([np.asarray(matrix, np.float64), [0, 0, 1]])
    image = cv2.warpAffine(page, to_crop, (w + 2 * m, h + 2 * m), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return image, (m, m, w, h)
