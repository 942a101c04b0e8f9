"""scan(): paths -> pages -> fields -> digit crops -> batched classification -> rows.

Pages are analysed one at a time and only their crops are kept; crops of many
pages are classified together in large batches, then turned into rows in page
order. Rows stream out as they are ready (``iter_scan``), so memory stays flat
however many pages go in.

Field confidence is the product of its digits' probabilities (the chance that
every digit is right, if the model is calibrated). A field is ``review`` when
that is below ``min_confidence``, when a mark in it is not a digit, or when ink
crossing the box line could not be given to any digit; ``empty`` when it holds
no ink at all.
"""

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classifier import REJECT, Classifier
from .layout import analyze
from .output import Row
from .pages import IMAGE_SUFFIXES, PageError, read_pages
from .segment import cut_field, ink_image

DEFAULT_MIN_CONFIDENCE = 0.9


@dataclass
class _PageWork:
    file: str
    page: int
    boxes: list  # (x, y, w, h, kind) in original page pixels
    cuts: list  # FieldCut per box
    image: object = None  # kept only for debug pictures
    error: str = ""
    first_crop: int = 0
    rows: list = field(default_factory=list)


def expand_paths(paths, recursive=False, stdin=None):
    """Files to scan: files as given, folders' image files (sorted), ``-`` = paths on stdin, one per line."""
    out = []
    for p in paths:
        if p == "-":
            stream = stdin or sys.stdin
            out.extend(line.rstrip("\r\n") for line in stream if line.strip())
            continue
        path = Path(p)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            out.extend(str(f) for f in sorted(path.glob(pattern)) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def _analyse(page):
    layout = analyze(page.image)
    ink = ink_image(layout.darkness, layout.line_darkness)
    boxes = [(*layout.original_box(b), b.kind) for b in layout.boxes]
    return boxes, [cut_field(ink, b) for b in layout.boxes]


ASPECT = np.array([0.8] * 10)  # typical width / height of each handwritten digit (MNIST)
ASPECT[1] = 0.4
ASPECT_SIGMA = 0.5  # spread of log(aspect) around it
SPLIT_COST = 0.5  # log-odds against each extra piece: a digit's arm, cut off, reads as a "1"


def _choose(options, probs, j, reject):
    """The likeliest way to read a blob; returns (option index, next j).

    Each option scores, for each of its pieces, the best digit probability
    times how plausible the piece's shape is for that digit (a piece far wider
    or narrower than that digit usually is, is unlikely): halves of a "5" may
    each look like a 5, but not 5-shaped.
    """
    if len(options) == 1:
        return 0, j + len(options[0])
    best, best_score = 0, -np.inf
    for i, option in enumerate(options):
        p = probs[j : j + len(option)]
        digit = np.delete(p, reject, axis=1) if reject >= 0 else p
        d = digit.argmax(1)
        aspect = np.array([c.shape[1] / max(c.shape[0], 1) for c in option])
        shape = (np.log(aspect / ASPECT[d]) ** 2).sum() / (2 * ASPECT_SIGMA**2)
        score = float(np.log(np.maximum(digit.max(1), 1e-9)).sum()) - shape - SPLIT_COST * (len(option) - 1)
        if score > best_score:
            best, best_score = i, score
        j += len(option)
    return best, j


def _rows(work, probs, labels, min_confidence):
    if work.error:
        return [Row(work.file, work.page, error=work.error)]
    rows, j = [], work.first_crop
    reject = labels.index(REJECT) if REJECT in labels else -1
    for n, ((x, y, w, h, kind), cut) in enumerate(zip(work.boxes, work.cuts), 1):
        digits, confs, notes, marks = [], [], list(cut.notes), 0
        for k, options in enumerate(cut.slots, 1):
            if not options:
                continue
            start = j
            chosen, j = _choose(options, probs, j, reject)
            first = start + sum(len(o) for o in options[:chosen])
            for p in probs[first : first + len(options[chosen])]:
                top = int(p.argmax())
                if top == reject:
                    marks += 1
                    notes.append(f"{'cell' if kind == 'comb' else 'mark'} {k}: not a digit")
                else:
                    digits.append(labels[top])
                    confs.append(float(p[top]))
        confidence = math.prod(confs) if confs else 1.0
        if not digits and not marks:
            status = "empty"
        elif notes or confidence < min_confidence:
            status = "review"
            if confidence < min_confidence and digits:
                notes.append(f"low confidence {confidence:.2f}")
        else:
            status = "ok"
        rows.append(Row(work.file, work.page, n, x, y, w, h, "".join(digits), confidence, confs, status,
                        "; ".join(notes), kind))  # fmt: skip
    return rows


def iter_scan(paths, model=None, device="auto", batch_size=256, min_confidence=DEFAULT_MIN_CONFIDENCE,
              pdf_dpi="auto", classifier=None, on_page=None, keep_images=False):  # fmt: skip
    """Yield ``(work, rows)`` page by page, in input order.

    ``on_page(file, page)`` is called as each page is read (for progress bars);
    ``keep_images`` keeps each page's image on ``work.image`` (debug pictures).
    """
    clf = classifier or Classifier(model, device=device, batch_size=batch_size)
    pending, crops = [], []

    def flush():
        probs = clf.classify(crops) if crops else None
        for work in pending:
            work.rows = _rows(work, probs, clf.labels, min_confidence)
            yield work
        pending.clear()
        crops.clear()

    for path in paths:
        read = 0
        try:
            for page in read_pages(path, pdf_dpi):
                read = page.page
                work = _PageWork(page.file, page.page, [], [], page.image if keep_images else None)
                try:
                    work.boxes, work.cuts = _analyse(page)
                except Exception as e:  # a page that breaks the analysis must not stop the batch
                    work.error = f"{page.file}: page {page.page}: analysis failed: {type(e).__name__}: {e}"
                work.first_crop = len(crops)
                crops.extend(c for cut in work.cuts for c in cut.crops())
                pending.append(work)
                if on_page:
                    on_page(page.file, page.page)
                if len(crops) >= 4 * clf.batch_size:
                    yield from flush()
        except (PageError, OSError) as e:
            message = str(e) if isinstance(e, PageError) else f"{path}: {e.strerror or e}"
            pending.append(_PageWork(str(path), read + 1, [], [], error=message))
            if on_page:
                on_page(str(path), read + 1)
    yield from flush()


def scan(paths, **options):
    """Scan files (or folders) and return every row as a list of :class:`~formdigits.output.Row`."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = expand_paths([str(p) for p in paths], recursive=options.pop("recursive", False))
    return [row for work in iter_scan(files, **options) for row in work.rows]
