"""The ``scan`` command's run: pages into an output, a progress bar, the tally, and how the run ends.

A run ends in one of four ways: every page read (exit 0), some page unreadable
(1; its error rows are written and the rest is read), interrupted by Ctrl-C
(130) or terminated by SIGTERM (143). An interrupted or terminated run keeps
its finished pages in ``OUT.partial`` for ``--resume``, and its worker
processes go with it.
"""

import json
import logging
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import __version__
from .output import open_output
from .pipeline import iter_scan

REVIEW_LIST = 50  # --list-review names this many fields sent to review, then how many more there are


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: a terminated run stops as an interrupted one does."""


@contextmanager
def sigterm_stops():
    """While inside, SIGTERM raises :class:`Terminated` (main thread, where signals are handled, only)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the clean-up finish
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _n(count, noun):
    """``1 page``, ``2 pages``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass
class RunSummary:
    """What a run did: the pages it read, their rows by status, the failures (earlier run's kept ones too)."""

    output: str
    pages: int = 0
    counts: Counter = field(default_factory=Counter)  # rows by status
    failed: list = field(default_factory=list)  # error messages of the pages read now
    kept_pages: int = 0  # pages kept from an interrupted run (--resume)
    kept_failed: list = field(default_factory=list)  # error messages among them
    seconds: float = 0.0
    stopped: str = ""  # "interrupted" (Ctrl-C) or "terminated" (SIGTERM)
    models: list = field(default_factory=list)  # the model files that read the pages
    device: str = ""  # cpu or cuda
    provider: str = ""  # the ONNX Runtime execution provider the digit model runs on
    review: list = field(default_factory=list)  # the first REVIEW_LIST rows sent to review (pages read now)
    kept_in: str = ""  # where a stopped run's finished pages are [default: OUTPUT.partial]

    @property
    def exit_code(self):
        if self.stopped:
            return 143 if self.stopped == "terminated" else 130
        return 1 if self.failed or self.kept_failed else 0

    def lines(self, quiet=False):
        """The lines for stderr: why the run stopped (always), or the summary (unless ``quiet``)."""
        if self.stopped:
            where = (f"; the finished pages are in {self.kept_in or self.output + '.partial'}: run again with "
                     "--resume to go on" if self.output != "-" else "")  # fmt: skip
            return [f"formdigits: {self.stopped} after {_n(self.pages, 'page')}{where}"]
        if quiet:
            return []
        c, rate = self.counts, self.pages / max(self.seconds, 1e-9)
        fields = c["ok"] + c["review"] + c["empty"]
        lines = [(f"formdigits: {_n(self.pages, 'page')}, {_n(fields, 'field')} ({c['ok']} ok, {c['review']} review, "
                  f"{c['empty']} empty), {_n(len(self.failed), 'error')} in {self.seconds:.1f} s ({rate:.1f} pages/s)")]
        if self.kept_pages:
            lines.append(f"formdigits: and {_n(self.kept_pages, 'page')} kept from the interrupted run, "
                         f"{_n(len(self.kept_failed), 'error')}")  # fmt: skip
        return lines + [f"  failed: {message}" for message in self.kept_failed + self.failed]

    def review_lines(self):
        """The fields sent to review, one line each (``--list-review``): the first ``REVIEW_LIST``, then how many
        more there are."""
        lines = [f"review: {r.file}: page {r.page}: field {r.field}: {r.value or '-'}: {r.error or 'low confidence'}"
                 for r in self.review]  # fmt: skip
        more = self.counts["review"] - len(self.review)
        return lines + ([f"review: ... and {more} more"] if more > 0 else [])

    def as_dict(self):
        """The run as one JSON-ready object (``--summary-json``); its keys and types are fixed (see the README)."""
        c = self.counts
        return {
            "version": __version__,
            "output": self.output,
            "complete": not self.stopped,
            "stopped": self.stopped or None,
            "exit_code": self.exit_code,
            "pages": self.pages,
            "fields": {"ok": c["ok"], "review": c["review"], "empty": c["empty"]},
            "errors": len(self.failed),
            "error_messages": list(self.failed),
            "kept_pages": self.kept_pages,
            "kept_error_messages": list(self.kept_failed),
            "seconds": round(self.seconds, 3),
            "pages_per_second": round(self.pages / max(self.seconds, 1e-9), 3),
            "models": [str(m) for m in self.models],
            "device": self.device,
            "provider": self.provider,
        }

    def to_json(self):
        """:meth:`as_dict` as one line of JSON."""
        return json.dumps(self.as_dict(), ensure_ascii=False)


class _Progress:
    """A page bar: one page per path listed to start with; a file's pages after its first add to the total."""

    def __init__(self, paths, done, quiet):
        from tqdm import tqdm

        extra = sum(n for (_, page), n in done.items() if page > 1)
        self.bar = tqdm(total=len(paths) + extra, initial=done.total(), unit="page", disable=True if quiet else None,
                        file=sys.stderr, dynamic_ncols=True)  # fmt: skip

    def page(self, file, page):
        if page > 1 and self.bar.total is not None:
            self.bar.total += 1
        self.bar.update()


def load_readers(model=None, strip_model=None, readers="both", device="auto", providers=None, batch_size=256,
                 workers=None):  # fmt: skip
    """The scan command's models, loaded once: ``(classifier, strip reader or None, workers, device line)``.

    ``workers`` None: one per core; inference in this process gets the cores the workers leave (at least one
    thread). ``providers``: ONNX Runtime provider names, ``A,B`` (UsageError for one not installed).
    """
    from .classifier import Classifier, check_providers
    from .parallel import available_cores
    from .pipeline import quiet_opencv, reuse_memory
    from .sequence import StripReader

    quiet_opencv()
    reuse_memory()  # this process is ours: with no workers it reads the pages itself
    workers = available_cores() if workers is None else workers
    threads = max(1, available_cores() - workers)
    chosen = check_providers(providers) if providers else ()
    clf = Classifier(model, device=device, batch_size=batch_size, threads=threads, providers=chosen)
    strips = StripReader(strip_model, device=device, threads=threads, providers=chosen) if readers == "both" else None
    also = f" and {strips.path.name}" if strips else ""
    line = (f"formdigits: {clf.path.name}{also} on ONNX Runtime {clf.device.upper()} ({clf.provider}), "
            f"{workers or 'no'} worker processes")  # fmt: skip
    return clf, strips, workers, line


def _renamed(work, rename):
    """``work`` with its file named as the user knows it (``rename``: the temporary file of --stdin-image -> ``<stdin>``)."""
    for old, new in rename.items():
        if work.file == old:
            work.error = work.error.replace(old, new)
            for row in work.rows:
                row.file, row.error = new, row.error.replace(old, new)
    return work


def run_scan(paths, output="-", fmt="csv", resume=False, names=None, quiet=False, say=None, debug_dir=None,
             rename=None, **options):  # fmt: skip
    """Scan ``paths`` into ``output`` (``-``: stdout) and return a :class:`RunSummary`.

    ``options`` go to :func:`~formdigits.pipeline.iter_scan`; ``say(text)`` gets
    the progress notes (resuming) unless ``quiet``; ``rename`` maps file names to the names
    the rows give them. Ctrl-C and SIGTERM end the
    run with ``summary.stopped`` set; a failed write (a full disk) raises DataError.
    """
    from .debug import DebugPictures

    summary = RunSummary(str(output))
    clf, strips = options.get("classifier"), options.get("strip_reader")
    summary.models = [r.path for r in (clf, strips) if r is not None] or [options.get("model") or "default"]
    summary.device, summary.provider = (clf.device, clf.provider) if clf else (options.get("device", "auto"), "")
    pictures = DebugPictures(debug_dir, paths) if debug_dir else None
    start, progress = time.perf_counter(), None
    try:
        with sigterm_stops(), open_output(output, fmt, resume, names) as writer:
            summary.kept_pages, summary.kept_failed = writer.done.total(), list(writer.failed)
            if resume and say and not quiet:
                say(f"formdigits: resuming {output}: {_n(summary.kept_pages, 'page')} already done" if writer.done
                    else f"formdigits: nothing to resume in {output}.partial: reading every page")  # fmt: skip
            progress = _Progress(paths, writer.done, quiet)
            for work in iter_scan(paths, on_page=progress.page, keep_images=bool(debug_dir), skip=writer.done,
                                  **options):  # fmt: skip
                summary.pages += 1
                work = _renamed(work, rename or {})
                writer.write_page(work.rows)
                summary.counts.update(row.status for row in work.rows)
                review = [r for r in work.rows if r.status == "review"]
                summary.review.extend(review[: REVIEW_LIST - len(summary.review)])
                writer.flush()  # every finished page is on disk
                failed = [row.error for row in work.rows if row.status == "error"]  # a damaged page's too
                summary.failed += failed
                if debug_dir and not failed:
                    pictures.write(work.file, work.page, work.image, work.rows)
    except KeyboardInterrupt as e:
        summary.stopped = "terminated" if isinstance(e, Terminated) else "interrupted"
    finally:
        if progress:
            progress.bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


@contextmanager
def log_to_stderr(verbosity):
    """While inside, the ``formdigits`` logger writes to stderr: INFO (a line per page) at ``verbosity`` 1,
    DEBUG (the decisions on each page) at 2 or more; nothing at 0. The library only logs: this configures."""
    if not verbosity:
        yield
        return
    logger = logging.getLogger("formdigits")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
