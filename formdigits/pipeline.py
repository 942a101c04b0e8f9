"""scan(): paths -> pages -> fields -> digit crops -> batched classification -> rows.

Each page is read, deskewed and cut into digit crops on its own
(``analyse_page``, in worker processes when asked: see ``parallel``); only the
crops come back. Crops of many pages are classified together in large batches
here (each preprocessed when first needed: about half are never classified),
then turned into rows in page order. Rows stream out as
they are ready (``iter_scan``), so memory stays flat however many pages go in.

How crops become readings, and what a field's confidence means: see ``recognize``.
"""

import ctypes
import ctypes.util
import logging
import math
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import cv2
import numpy as np

from . import orient
from .classifier import Classifier
from .damage import LOG_LEVEL_SILENT, set_opencv_log_level
from .layout import analyze
from .output import Row
from .pages import IMAGE_SUFFIXES, Page, PageError, check_pdf_dpi, page_offsets, read_page
from .parallel import DEFAULT_PAGE_TIMEOUT, WorkerFailure, ordered_map
from .preprocess import preprocess_strip
from .recognize import Inputs, read
from .segment import cut_field, ink_image, line_ink
from .sequence import StripReader
from .template import MIN_QUALITY, Template, field_boxes, register

log = logging.getLogger(__name__)
DEFAULT_MIN_CONFIDENCE = 0.9
VERDICTS = {orient.UPRIGHT: "upright", orient.UNSURE: "unsure", orient.UPSIDE_DOWN: "upside down"}
PathArg = str | bytes | os.PathLike  # a path as the OS takes it
SMALL_NOTE = "a box far smaller than the form's fields holds ink: check it"


@dataclass
class _PageWork:
    """One page after analysis: its fields and their digit crops, ready for the network."""

    file: str
    page: int
    boxes: list = field(default_factory=list)  # (x, y, w, h, kind) in original page pixels
    fields: list = field(default_factory=list)  # per box: (notes, slots); slots as FieldCut.shapes() gives them
    strips: list = field(default_factory=list)  # per box: its strip and wide strip, ready for the sequence reader
    readings: list | None = None  # per box: the sequence reader's readings of them (None: not read)
    chosen: list | None = None  # per box, per slot: indices of the crops read as its digits (recognize.read)
    crops: list | None = None  # every digit crop (uint8 ink), in slot order
    image: object = None  # kept only for debug pictures
    error: str = ""
    first_crop: int = 0
    slot_firsts: list = field(default_factory=list)  # index of each slot's first crop (orientation samples)
    form: str = ""  # the template the page matched
    names: list | None = None  # template field names, one per box
    rules: list | None = None  # template field rules, one per box
    turned: int = 0  # the page was turned this many degrees clockwise to read it
    matrix: object = None  # 2x3 affine, original page -> deskewed page (layout.Layout.matrix)
    deskewed: list = field(default_factory=list)  # per box: (x, y, w, h) in the deskewed page
    damage: str = ""  # the decoder reported corrupt data: every row goes to review (pages.Page.damage)
    task: Any = None  # the PageTask it was analysed from
    rows: list[Row] = field(default_factory=list)


def expand_paths(paths: Iterable[str], recursive: bool = False, stdin: TextIO | None = None) -> list[str]:
    """Files to scan: files as given, folders' image files (sorted; ``recursive``: their subfolders' too),
    ``-`` = paths on stdin, one per line, each expanded the same way.

    A path is a list of bytes to the OS: paths on stdin are split at ``\\n`` only and
    decoded as the OS decodes file names (bytes that are not UTF-8 kept as surrogate escapes).
    """
    out: list[str] = []
    for p in paths:
        if p == "-":
            stream = stdin or sys.stdin
            lines = (os.fsdecode(line) for line in stream.buffer) if hasattr(stream, "buffer") else stream
            given = [line.rstrip("\r\n") for line in lines if line.strip()]
        else:
            given = [p]
        for q in given:
            path = Path(q)
            if path.is_dir():
                pattern = "**/*" if recursive else "*"
                out.extend(str(f) for f in sorted(path.glob(pattern))
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)  # fmt: skip
            else:
                out.append(q)
    return out


def as_paths(paths: PathArg | Iterable[PathArg]) -> list[str]:
    """A list of path strings from one path (str, bytes or os.PathLike, never taken apart letter by letter)
    or an iterable of them; TypeError for anything else."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    try:
        paths = list(paths)
    except TypeError:
        raise TypeError(f"paths must be a path or a list of paths, got {type(paths).__name__}") from None
    for p in paths:
        if not isinstance(p, (str, bytes, os.PathLike)):
            raise TypeError(f"paths must be str, bytes or os.PathLike, got {type(p).__name__} {p!r}")
    return [os.fsdecode(p) for p in paths]


def check_options(workers: int = 0, page_timeout: float = DEFAULT_PAGE_TIMEOUT,
                  min_confidence: float = DEFAULT_MIN_CONFIDENCE, pdf_dpi: str | float = "auto",
                  readers: str = "both") -> None:  # fmt: skip
    """ValueError for scan options that cannot work (they failed late, or silently read nothing)."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: all in this process), got {workers!r}")
    if isinstance(page_timeout, bool) or not isinstance(page_timeout, (int, float)) or not 0 < page_timeout < math.inf:
        raise ValueError(f"page_timeout must be a finite number of seconds > 0, got {page_timeout!r}")
    if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) or not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must be a number from 0 to 1, got {min_confidence!r}")
    check_pdf_dpi(pdf_dpi)
    if readers not in ("both", "cut"):
        raise ValueError(f"readers must be both or cut, got {readers!r}")


class PageTask(NamedTuple):
    """One page for a worker to analyse (``error``: the file could not even be opened)."""

    file: str
    page: int
    pdf_dpi: str | float
    keep_image: bool
    error: str = ""
    turn: int = 0  # degrees to turn the page clockwise before reading it
    templates: tuple = ()  # read exactly the fields of the best-matching one of these forms
    strip_params: object = None  # the sequence reader's StripParams (None: no second reader)
    offset: int | None = None  # where the page is in its file (see pages.page_offsets)
    decoded: Page | None = None  # the page already decoded (a pages.Page, from memory: see Reader): not read from file


def analyse_page(task: PageTask) -> _PageWork:
    """Worker: read one page, find its fields, cut them into digit crops.

    Never raises: a page that cannot be read or analysed comes back with ``error`` set.
    """
    file, number = task.file, task.page
    work = _PageWork(file, number, error=task.error, task=task)
    if task.error:
        return work
    try:
        page = task.decoded if task.decoded is not None else read_page(file, number, task.pdf_dpi, task.offset)
    except PageError as e:
        work.error = str(e)
        return work
    except OSError as e:
        work.error = f"{file}: {e.strerror or e}"
        return work
    except Exception as e:  # a decoder failing in a way pages.py does not foresee: named, and the batch goes on
        work.error = f"{file}: page {number}: decoding failed: {type(e).__name__}: {e}"
        return work
    try:
        layout = analyze(page.image, task.turn)
        boxes = layout.boxes
        if task.templates:
            boxes = _template_boxes(work, layout, task.templates)
        ink, line_level = ink_image(layout.darkness), line_ink(layout.line_darkness)
        crops: list[np.ndarray] = []
        for box in boxes:
            cut = cut_field(ink, box, line_level)
            work.boxes.append((*layout.original_box(box), box.kind))
            work.deskewed.append((box.x, box.y, box.w, box.h))
            work.fields.append((cut.notes + ([SMALL_NOTE] if box.small else []), cut.shapes()))
            work.strips.append(_strips(cut, task.strip_params))
            for slot in cut.slots:
                if slot.crops:
                    work.slot_firsts.append(len(crops))
                crops.extend(slot.crops)
        work.crops = crops
        work.turned, work.damage, work.matrix = layout.turned, page.damage, layout.matrix
    except Exception as e:  # a page that breaks the analysis must not stop the batch
        work.boxes, work.fields, work.strips, work.deskewed = [], [], [], []
        work.error = f"{file}: page {number}: analysis failed: {type(e).__name__}: {e}"
    if task.keep_image:
        work.image = page.image
    return work


def _strips(cut, params):
    """A field's strip and wide strip, preprocessed for the sequence reader, as uint8 (a quarter the bytes to
    send back from a worker); None where there is none."""
    if params is None:
        return None, None
    return tuple(None if s is None else (preprocess_strip(s, params) * 255).round().astype(np.uint8)
                 for s in (cut.strip, cut.wide))  # fmt: skip


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
    set_opencv_log_level(LOG_LEVEL_SILENT)


def plan_pages(paths: Iterable[str], pdf_dpi: str | float = "auto", keep_images: bool = False,
               skip: Iterable[tuple[str, int]] | None = None, templates: Iterable[Template] = (),
               strip_params: Any = None) -> Iterator[PageTask]:  # fmt: skip
    """One :class:`PageTask` per page of every file; an unusable file is one task carrying its error.

    ``skip`` counts pages done in an earlier, interrupted run, by ``(file, page)``:
    that many of their first appearances are left out.
    """
    skip = Counter(skip or ())
    for path in paths:
        try:
            offsets, error = page_offsets(path), ""
        except PageError as e:
            offsets, error = [None], str(e)
        except OSError as e:
            offsets, error = [None], f"{path}: {e.strerror or e}"
        for number, offset in enumerate(offsets, 1):
            if skip.get((str(path), number), 0) > 0:
                skip[(str(path), number)] -= 1  # done once already (a file may be listed twice)
                continue
            yield PageTask(str(path), number, pdf_dpi, keep_images, error, 0, tuple(templates), strip_params, offset)


def iter_scan(paths: PathArg | Iterable[PathArg], model: str | os.PathLike | None = None, device: str = "auto",
              batch_size: int = 256, min_confidence: float = DEFAULT_MIN_CONFIDENCE, pdf_dpi: str | float = "auto",
              classifier: Classifier | None = None, on_page: Callable[[str, int], Any] | None = None,
              keep_images: bool = False, workers: int = 0, page_timeout: float = DEFAULT_PAGE_TIMEOUT,
              skip: Iterable[tuple[str, int]] | None = None, templates: Iterable[Template] = (), readers: str = "both",
              strip_model: str | os.PathLike | None = None,
              strip_reader: StripReader | None = None) -> Iterator[_PageWork]:  # fmt: skip
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
    their rules. ``readers``: ``both`` (the default) reads every field with the
    cutting reader and the sequence reader (``strip_model``, default the shipped
    one) and decides from both (see ``decide``); ``cut`` with the cutting reader alone.
    Options that cannot work raise ValueError (TypeError for ``paths``) here, before any page is read.
    """
    check_options(workers, page_timeout, min_confidence, pdf_dpi, readers)
    paths = as_paths(paths)
    clf = classifier or Classifier(model, device=device, batch_size=batch_size)
    strips = strip_reader or (StripReader(strip_model, device=device) if readers == "both" else None)
    tasks = plan_pages(paths, pdf_dpi, keep_images, skip, templates, strips.params if strips else None)
    return read_tasks(tasks, clf, strips, min_confidence, workers, page_timeout, on_page)


def read_tasks(tasks: Iterable[PageTask], clf: Classifier, strips: StripReader | None, min_confidence: float,
               workers: int = 0, page_timeout: float = DEFAULT_PAGE_TIMEOUT,
               on_page: Callable[[str, int], Any] | None = None) -> Iterator[_PageWork]:  # fmt: skip
    """The core of :func:`iter_scan` and :class:`~formdigits.reader.Reader`: yield each page of ``tasks``
    (:class:`PageTask`) analysed, with ``work.rows`` filled in, in task order; the crops of many pages are
    classified together. Holds no state between calls: calls may run in several threads at once."""
    pending: list[_PageWork] = []
    x = Inputs(clf.params)

    def flush():
        nonlocal x
        yield from read_analysed(pending, clf, strips, min_confidence, x)
        pending.clear()
        x = Inputs(clf.params)

    analysed = ordered_map(analyse_page, tasks, workers, page_timeout, initializer=_init_worker)
    try:
        for task, work in analysed:
            if isinstance(work, WorkerFailure):
                work = _PageWork(task.file, task.page, error=f"{task.file}: page {task.page}: {work.message}",
                                 task=task)  # fmt: skip
            work.first_crop = x.add(work.crops or [])
            work.crops = None
            pending.append(work)
            if on_page:
                on_page(work.file, work.page)
            if len(x) >= 4 * clf.batch_size:
                yield from flush()
        yield from flush()
    finally:
        analysed.close()  # stopped early (Ctrl-C, an error, the caller): the workers go now


def read_analysed(pages: list[_PageWork], clf: Classifier, strips: StripReader | None, min_confidence: float,
                  x: Inputs | None = None, reanalyse: Callable[[PageTask], _PageWork] = analyse_page,
                  ) -> Iterator[_PageWork]:  # fmt: skip
    """Classify a batch of analysed pages (:func:`analyse_page`'s) together and yield each with ``work.rows``
    filled in, in order: the readers, then the orientation check (a page found upside down, or unsure, is
    analysed again turned round, by ``reanalyse``, and read again here). The one inference stage of every
    engine: :func:`read_tasks` (local processes) and the Ray engine's actors (``distributed``) call it.

    ``x``: the pages' crops already pooled (each page's ``first_crop`` its index in ``x``, ``work.crops`` None);
    without it, each page's ``work.crops`` are pooled here.
    """
    if x is None:
        x = Inputs(clf.params)
        for work in pages:
            work.first_crop = x.add(work.crops or [])
            work.crops = None
    probs = read(clf, x, pages, min_confidence, strips)
    samples = [None if work.task.turn else work.first_crop + np.array(work.slot_firsts[: orient.SAMPLE], int)
               for work in pages]  # a page already turned round is not judged again
    fields = [[s for s, _ in work.strips if s is not None] for work in pages]
    upright = [[r.probability for r, _ in work.readings or [] if r is not None] for work in pages]
    for work, verdict in zip(pages, orient.judge(clf, probs, x, samples, strips, fields, upright)):
        log.debug("%s: page %d: orientation %s%s", work.file, work.page, VERDICTS[verdict],
                  "" if verdict == orient.UPRIGHT else ": read again turned round")  # fmt: skip
        if verdict != orient.UPRIGHT:
            # read it again here, turned round (rare, so not worth a worker's round trip)
            turned = reanalyse(work.task._replace(turn=(work.turned + 180) % 360))
            read(clf, Inputs(clf.params, turned.crops or []), [turned], min_confidence, strips)
            if verdict == orient.UPSIDE_DOWN:
                work = turned
            elif not turned.error:
                work.rows = orient.pick(work.rows, turned.rows)
        work.crops = None
        _log_page(work)
        yield work


def _log_page(work):
    """INFO: the page and its fields by status (or its error); DEBUG: each field sent to review, and why."""
    if not log.isEnabledFor(logging.INFO):
        return
    if work.error:
        log.info("%s: page %d: error: %s", work.file, work.page, work.error)
        return
    counts = Counter(r.status for r in work.rows)
    log.info("%s: page %d: %d fields (%d ok, %d review, %d empty)%s", work.file, work.page, len(work.rows),
             counts["ok"], counts["review"], counts["empty"], f", turned {work.turned} degrees" if work.turned else "")
    for r in work.rows:
        if r.status == "review":
            log.debug("%s: page %d: field %d: %r to review: %s", work.file, work.page, r.field, r.value, r.error)


def scan(paths: PathArg | Iterable[PathArg], **options: Any) -> list[Row]:
    """Scan files or folders (one path, or a list of them) and return every row as a list of
    :class:`~formdigits.output.Row`."""
    files = expand_paths(as_paths(paths), recursive=options.pop("recursive", False))
    return [row for work in iter_scan(files, **options) for row in work.rows]
