"""The ``scan`` command's run: pages into an output, a progress bar, the tally, and how the run ends.

A run ends in one of four ways: every page read (exit 0), some page unreadable
(1; its error rows are written and the rest is read), interrupted by Ctrl-C
(130) or terminated by SIGTERM (143). An interrupted or terminated run keeps
its finished pages in ``OUT.partial`` for ``--resume``, and its worker
processes go with it.
"""

import signal
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from .output import open_output
from .pipeline import iter_scan


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

    @property
    def exit_code(self):
        if self.stopped:
            return 143 if self.stopped == "terminated" else 130
        return 1 if self.failed or self.kept_failed else 0

    def lines(self, quiet=False):
        """The lines for stderr: why the run stopped (always), or the summary (unless ``quiet``)."""
        if self.stopped:
            where = (f"; the finished pages are in {self.output}.partial: run again with --resume to go on"
                     if self.output != "-" else "")  # fmt: skip
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


def run_scan(paths, output="-", fmt="csv", resume=False, names=None, quiet=False, say=None, debug_dir=None,
             **options):  # fmt: skip
    """Scan ``paths`` into ``output`` (``-``: stdout) and return a :class:`RunSummary`.

    ``options`` go to :func:`~formdigits.pipeline.iter_scan`; ``say(text)`` gets
    the progress notes (resuming) unless ``quiet``. Ctrl-C and SIGTERM end the
    run with ``summary.stopped`` set; a failed write (a full disk) raises DataError.
    """
    from .debug import DebugPictures

    summary = RunSummary(str(output))
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
                writer.write_page(work.rows)
                summary.counts.update(row.status for row in work.rows)
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
