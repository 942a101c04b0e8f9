"""scan(): paths -> pages -> fields -> digit crops -> batched classification -> rows.

Each page is read, deskewed and cut into digit crops on its own
(``analyse_page``, in worker processes when asked: see ``parallel``); only the
crops come back. Crops of many pages are classified together in large batches
here (each preprocessed when first needed: about half are never classified),
then turned into rows in page order. Rows stream out as
they are ready (``iter_scan``), so memory stays flat however many pages go in.

Field confidence is the product of its digits' probabilities (the chance that
every digit is right, if the model is calibrated; a doubtful digit's is the mean
over it and jittered copies of it, see ``_second_look``); 0 when a mark in it is not a
digit (mostly digits run together) or when ink crossing its box line could not
be given to any digit: the value is then likely incomplete. A field is
``review`` when its confidence is below ``min_confidence``, when a mark in it is
not a digit, or when ink crossing the box line could not be given to any digit;
``empty`` when it holds no ink at all.
"""

import ctypes
import ctypes.util
import math
import multiprocessing
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .choose import best_path, first_path, first_wins
from .classifier import REJECT, Classifier
from .layout import analyze
from .output import Row
from .pages import IMAGE_SUFFIXES, PageError, count_pages, read_page
from .parallel import DEFAULT_PAGE_TIMEOUT, WorkerFailure, ordered_map
from .preprocess import preprocess
from .segment import CUT_NOTE, cut_field, ink_image, line_ink
from .template import MIN_QUALITY, broken_rules, field_boxes, register

DEFAULT_MIN_CONFIDENCE = 0.9


@dataclass
class _PageWork:
    """One page after analysis: its fields and their digit crops, ready for the network."""

    file: str
    page: int
    boxes: list = field(default_factory=list)  # (x, y, w, h, kind) in original page pixels
    fields: list = field(default_factory=list)  # per box: (notes, slots); per slot its edges, crop aspects, digits expected
    crops: list = None  # every digit crop (uint8 ink), in slot order
    image: object = None  # kept only for debug pictures
    error: str = ""
    first_crop: int = 0
    whole_crops: list = field(default_factory=list)  # index of each slot's first crop
    form: str = ""  # the template the page matched
    names: list = None  # template field names, one per box
    rules: list = None  # template field rules, one per box
    turned: int = 0  # the page was turned this many degrees clockwise to read it
    task: object = None
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


class PageTask(NamedTuple):
    """One page for a worker to analyse (``error``: the file could not even be opened)."""

    file: str
    page: int
    pdf_dpi: object
    keep_image: bool
    error: str = ""
    turn: int = 0  # degrees to turn the page clockwise before reading it
    templates: tuple = ()  # read exactly the fields of the best-matching one of these forms


def analyse_page(task):
    """Worker: read one page, find its fields, cut them into digit crops.

    Never raises: a page that cannot be read or analysed comes back with ``error`` set.
    """
    file, number = task.file, task.page
    work = _PageWork(file, number, error=task.error, task=task)
    if task.error:
        return work
    try:
        page = read_page(file, number, task.pdf_dpi)
    except PageError as e:
        work.error = str(e)
        return work
    except OSError as e:
        work.error = f"{file}: {e.strerror or e}"
        return work
    try:
        layout = analyze(page.image, task.turn)
        boxes = layout.boxes
        if task.templates:
            boxes = _template_boxes(work, layout, task.templates)
        ink, line_level = ink_image(layout.darkness), line_ink(layout.line_darkness)
        crops = []
        for box in boxes:
            cut = cut_field(ink, box, line_level)
            work.boxes.append((*layout.original_box(box), box.kind))
            work.fields.append((cut.notes, cut.shapes()))
            for slot in cut.slots:
                if slot.crops:
                    work.whole_crops.append(len(crops))  # the slot's first crop (see Slot): for the orientation check
                crops.extend(slot.crops)
        work.crops = crops
        work.turned = layout.turned
    except Exception as e:  # a page that breaks the analysis must not stop the batch
        work.boxes, work.fields = [], []
        work.error = f"{file}: page {number}: analysis failed: {type(e).__name__}: {e}"
    if task.keep_image:
        work.image = page.image
    return work


def _template_boxes(work, layout, templates):
    """The boxes of the template that fits the page best (names and rules noted on ``work``)."""
    reg = max((register(t, layout.boxes) for t in templates), key=lambda r: r.quality)
    if reg.quality < MIN_QUALITY:
        work.error = (f"{work.file}: page {work.page}: matches no template (best: {reg.template.name!r}, "
                      f"registration quality {reg.quality:.2f} < {MIN_QUALITY})")  # fmt: skip
        return []
    line = int(np.median([b.line for b in layout.boxes])) if layout.boxes else 2
    work.form = reg.template.name
    work.names = [f.name for f in reg.template.fields]
    work.rules = [f.rules for f in reg.template.fields]
    return field_boxes(reg, line)


class _Inputs:
    """The digit crops of a batch of pages; each is preprocessed for the network when first asked for.

    ``x[indices]`` gives the network inputs ``(len(indices), 1, S, S)`` of those crops.
    """

    def __init__(self, params, crops=()):
        self.params, self.crops = params, list(crops)
        self._x = self._ready = None

    def add(self, crops):
        """Append a page's crops (before any is asked for); returns the index of its first."""
        if self._x is not None:
            raise RuntimeError("crops added after inputs were taken")
        self.crops.extend(crops)
        return len(self.crops) - len(crops)

    def __len__(self):
        return len(self.crops)

    def __getitem__(self, indices):
        if self._x is None:
            self._x = np.zeros((len(self.crops), 1, self.params.size, self.params.size), np.float32)
            self._ready = np.zeros(len(self.crops), bool)
        indices = np.asarray(indices, int)
        for i in np.unique(indices[~self._ready[indices]]):
            self._x[i, 0] = preprocess(self.crops[i], self.params)
        self._ready[indices] = True
        return self._x[indices]


def _init_worker():
    cv2.setNumThreads(1)  # one page per process: no thread pools fighting over the cores
    quiet_opencv()
    if multiprocessing.parent_process() is not None:  # a worker process of ours (not a caller's, workers=0)
        reuse_memory()


def reuse_memory():
    """Let freed page-sized buffers serve the next page instead of going back to the OS (glibc only).

    Each page allocates several arrays of a few MB; glibc maps every one afresh
    and the kernel zeroes it page by page (on the benchmark pages 5x the page
    faults, a few ms a page). Kept in the heap, they are reused; the process
    holds on to its largest page's worth of memory.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed on 64-bit
    mallopt(m_trim_threshold, 256 << 20)


def quiet_opencv():
    """OpenCV logs its decoders' complaints to stderr; the scan reports unreadable files itself."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _slots(work):
    """(index of its first crop, edges, aspects, expected digits) for every slot of a page's fields, in crop order."""
    j = work.first_crop
    for _, slots in work.fields:
        for edges, aspects, digits in slots:
            yield j, edges, aspects, digits
            j += len(edges)


def _classify(clf, x, works):
    """The classifier's answers for the crops of ``works`` (in ``x``, an :class:`_Inputs`) that can matter.

    Each slot's first reading (see :func:`~formdigits.choose.first_path`) is
    classified; the rest of its crops only when that reading is not sure to win
    (see :func:`~formdigits.choose.first_wins`): most wide blobs are one clear
    digit, and their cuts need not be read (rows of zeros).
    """
    reject = clf.labels.index(REJECT) if REJECT in clf.labels else -1
    probs = np.zeros((len(x), len(clf.labels)), np.float32)
    slots = [(*s, first_path(s[1], s[3]) or [0]) for work in works for s in _slots(work) if s[1]]
    firsts = [j + k for j, *_, first in slots for k in first]
    if firsts:
        probs[firsts] = clf.predict(x[firsts])
    rest = [j + k for j, edges, aspects, digits, first in slots
            if not first_wins(edges, aspects, probs[j : j + len(edges)], reject, digits)
            for k in range(len(first), len(edges))]  # fmt: skip
    if rest:
        probs[rest] = clf.predict(x[rest])
    return probs


ORIENTATION_SAMPLE = 32  # at most this many crops of a page are read a second time, turned 180 degrees


def _upside_down(clf, probs, x, pages):
    """Which pages' digits read clearly better turned 180 degrees (the page is upside down)?

    ``pages`` holds, per page, the indices of its sample crops into ``probs`` and
    ``x``; all samples are turned and classified in one batch. Compares the
    log-probability of the best digit for each crop as it is and turned round:
    upright digits lose when turned (a 7 turned is no digit), upside-down ones
    gain. Clearly = the mean gain is positive and at least 1.5 standard errors
    from zero (on upright pages it is negative, 1.8 to 4.4 standard errors; on
    upside-down ones positive, 2.3 to 3.7). Pages with fewer than 8 crops are
    not judged.
    """
    pages = [i if len(i) >= 8 else i[:0] for i in pages]
    every = np.concatenate(pages) if pages else np.zeros(0, int)
    if not len(every):
        return [False] * len(pages)
    digits = [k for k, label in enumerate(clf.labels) if label != REJECT]
    best = lambda p: np.log(np.maximum(p[:, digits].max(1), 1e-6))  # noqa: E731
    gain = best(clf.predict(np.ascontiguousarray(x[every][:, :, ::-1, ::-1]))) - best(probs[every])
    out, start = [], 0
    for i in pages:
        g, start = gain[start : start + len(i)], start + len(i)
        out.append(len(g) > 0 and g.mean() > 0 and g.mean() > 1.5 * g.std(ddof=1) / np.sqrt(len(g)))
    return out


def _paths(work, probs, reject):
    """Per field, per slot: the indices (into ``probs``) of the crops on the slot's best path."""
    out, j = [], work.first_crop
    for _, slots in work.fields:
        chosen = []
        for edges, aspects, digits in slots:
            p = probs[j : j + len(edges)]
            chosen.append([j + e for e in best_path(edges, aspects, p, reject, digits)] if edges else [])
            j += len(edges)
        out.append(chosen)
    return out


DOUBT = 0.99  # a chosen digit read with less than this probability gets a second look


def _second_look(clf, x, probs, paths):
    """``probs`` with the doubtful digits on the chosen paths read again, from jittered copies too.

    About one digit in ten; on the tuning set this lowers the confidence of
    ambiguous digits read wrongly more than of those read right (field error at
    5 % reject 1.2 -> 0.8 %), for a tenth more inference.
    """
    doubtful = [i for field_ in paths for slot in field_ for i in slot if probs[i].max() < DOUBT]
    if doubtful:
        probs = probs.copy()
        probs[doubtful] = clf.predict_steady(x[doubtful], probs[doubtful])
    return probs


def _rows(work, probs, paths, labels, min_confidence):
    """The page's rows, from the classifier's answers and each slot's chosen crops (see :func:`_paths`)."""
    if work.error:
        return [Row(work.file, work.page, error=work.error, form=work.form)]
    rows = []
    reject = labels.index(REJECT) if REJECT in labels else -1
    for n, ((x, y, w, h, kind), (cut_notes, _), chosen) in enumerate(zip(work.boxes, work.fields, paths), 1):
        digits, confs, notes, marks = [], [], list(cut_notes), 0
        for k, slot in enumerate(chosen, 1):
            for p in probs[slot]:
                top = int(p.argmax())
                if top == reject:
                    marks += 1
                    notes.append(f"{'cell' if kind == 'comb' else 'mark'} {k}: not a digit")
                else:
                    digits.append(labels[top])
                    confs.append(float(p[top]))
        # a mark that is no digit (or several digits run together), or ink left out, leaves the value
        # incomplete: no confidence
        incomplete = marks or CUT_NOTE in cut_notes
        confidence = 0.0 if incomplete else math.prod(confs) if confs else 1.0
        if work.rules and (digits or marks):
            notes += broken_rules("".join(digits), work.rules[n - 1])
        if not digits and not marks:
            status = "empty"
        elif notes or confidence < min_confidence:
            status = "review"
            if confidence < min_confidence and digits and not incomplete:
                notes.append(f"low confidence {confidence:.2f}")
        else:
            status = "ok"
        name = work.names[n - 1] if work.names else n
        rows.append(Row(work.file, work.page, name, x, y, w, h, "".join(digits), confidence, confs, status,
                        "; ".join(notes), kind, work.form))  # fmt: skip
    return rows


def _read(clf, x, works, min_confidence):
    """Classify the crops of ``works`` (stacked in ``x``), choose each slot's reading, fill in their rows.

    Returns the classifier's first answers for every crop.
    """
    probs = _classify(clf, x, works) if len(x) else None
    reject = clf.labels.index(REJECT) if REJECT in clf.labels else -1
    paths = [_paths(work, probs, reject) for work in works]
    final = _second_look(clf, x, probs, [f for page in paths for f in page]) if len(x) else None
    for work, page in zip(works, paths):
        work.rows = _rows(work, final, page, clf.labels, min_confidence)
    return probs


def plan_pages(paths, pdf_dpi="auto", keep_images=False, skip=None, templates=()):
    """One :class:`PageTask` per page of every file; an unusable file is one task carrying its error.

    ``skip`` counts pages done in an earlier, interrupted run, by ``(file, page)``:
    that many of their first appearances are left out.
    """
    skip = Counter(skip or ())
    for path in paths:
        try:
            numbers = range(1, count_pages(path) + 1)
            error = ""
        except PageError as e:
            numbers, error = [1], str(e)
        except OSError as e:
            numbers, error = [1], f"{path}: {e.strerror or e}"
        for number in numbers:
            if skip.get((str(path), number), 0) > 0:
                skip[(str(path), number)] -= 1  # done once already (a file may be listed twice)
                continue
            yield PageTask(str(path), number, pdf_dpi, keep_images, error, 0, tuple(templates))


def iter_scan(paths, model=None, device="auto", batch_size=256, min_confidence=DEFAULT_MIN_CONFIDENCE,
              pdf_dpi="auto", classifier=None, on_page=None, keep_images=False, workers=0,
              page_timeout=DEFAULT_PAGE_TIMEOUT, skip=None, templates=()):  # fmt: skip
    """Yield one analysed page (``work.rows`` filled in) at a time, in input order.

    Pages are read and analysed by ``workers`` processes (0: in this process);
    their crops are classified here, many pages' worth per batch.
    ``on_page(file, page)`` is called as each page is analysed (progress bars);
    ``keep_images`` keeps each page's image on ``work.image`` (debug pictures).
    With workers, a page that takes longer than ``page_timeout`` seconds or
    crashes its worker process gets an error row; the batch goes on. Pages
    counted in ``skip`` (see ``plan_pages``) are not read at all. With
    ``templates`` (:class:`~formdigits.template.Template`), each page is matched
    to the best one and exactly its fields are read, named, and checked against
    their rules.
    """
    clf = classifier or Classifier(model, device=device, batch_size=batch_size)
    tasks = plan_pages(paths, pdf_dpi, keep_images, skip, templates)
    pending, x = [], _Inputs(clf.params)

    def flush():
        nonlocal x
        probs = _read(clf, x, pending, min_confidence)
        samples = [work.first_crop + np.array(work.whole_crops[:ORIENTATION_SAMPLE] if work.task.turn == 0 else [], int)
                   for work in pending]  # a page already turned round is not judged again
        flipped = _upside_down(clf, probs, x, samples)
        for work, upside_down in zip(pending, flipped):
            if upside_down:
                # upside down: read it again here, turned round (rare, so not worth a worker's round trip)
                work = analyse_page(work.task._replace(turn=(work.turned + 180) % 360))
                _read(clf, _Inputs(clf.params, work.crops or []), [work], min_confidence)
            work.crops = None
            yield work
        pending.clear()
        x = _Inputs(clf.params)

    for task, work in ordered_map(analyse_page, tasks, workers, page_timeout, initializer=_init_worker):
        if isinstance(work, WorkerFailure):
            work = _PageWork(task.file, task.page, error=f"{task.file}: page {task.page}: {work.message}", task=task)
        work.first_crop = x.add(work.crops or [])
        work.crops = None
        pending.append(work)
        if on_page:
            on_page(work.file, work.page)
        if len(x) >= 4 * clf.batch_size:
            yield from flush()
    yield from flush()


def scan(paths, **options):
    """Scan files (or folders) and return every row as a list of :class:`~formdigits.output.Row`."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = expand_paths([str(p) for p in paths], recursive=options.pop("recursive", False))
    return [row for work in iter_scan(files, **options) for row in work.rows]
