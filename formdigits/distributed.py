"""The Ray engine (``scan --engine ray``): the scan's own stages run by Ray Data, rows into a folder of shards.

::

    input files ─ CPU tasks: fetch, plan_pages, analyse_page (pipeline's) ─> analysed pages (crops, uint8)
      ─ actors, each with its ONNX Runtime sessions, on a GPU where asked: pipeline.read_analysed ─> rows
      ─ this process: a shard per block of input files, written whole (shards.ShardFolder) + manifest.json

Nothing of the reading is here: the stages are ``pipeline``'s, the rows
``recognize``'s, the CSV ``output``'s; Ray Data schedules them across the cluster,
streams pages through with back-pressure, and runs a task again when its worker
or node is lost. This process collects each page's rows by (shard, input, page),
so a page that comes twice (a retried task) is kept once, and writes a shard as
soon as every page of its block is in. ``ray`` is imported only here, and only
when the Ray engine runs (``pip install "formdigits[ray]"``).

Files given as URLs (``s3://``, ``gs://``, any fsspec URL) are fetched by the
task that reads them into a temporary file; local paths must be readable on
every node (a shared file system) when the cluster has more than this machine.
"""

import logging
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .batch import REVIEW_LIST, RunSummary, Terminated, sigterm_stops
from .errors import DataError, UsageError
from .shards import DEFAULT_SHARD_FILES, ShardFolder, ShardStats, filesystem, is_url, n_shards, stats_of

log = logging.getLogger(__name__)
PAGES_PER_BATCH = 8  # analysed pages an actor classifies together (their crops in one batch)
FILES_PER_TASK = 16  # at most this many input files read by one CPU task
INFERENCE_SHARE = 0.2  # of a page's CPU time, the readers' (the actors'): BENCHMARKS.md, "Ray engine"
SMALL_CLUSTER = 8  # cores: under this, the one actor reserves no core of its own
RAY_MISSING = 'the Ray engine needs Ray: pip install "formdigits[ray]"'
# fault injection for the node-loss test: a task on a node started with this variable set notes itself in that
# folder and hangs there, until the test kills the node
HANG_FOR_TESTS = "FORMDIGITS_TEST_HANG_DIR"
TASK_RETRIES = 3  # a CPU task whose worker dies (a decoder crash, a lost node) is run again at most this often


@dataclass(frozen=True)
class Settings:
    """What the tasks and actors need to read pages as the local scan does (sent to every worker)."""

    pdf_dpi: Any = "auto"
    templates: tuple = ()
    strip_params: Any = None  # the sequence reader's StripParams (None: the cutting reader alone)
    min_confidence: float = 0.9
    model: str | None = None
    strip_model: str | None = None
    readers: str = "both"
    device: str = "cpu"
    providers: tuple = ()
    batch_size: int = 256
    threads: int = 1  # ONNX Runtime threads per actor
    crash_on: str = ""  # tests only: a worker about to read a file whose path ends so dies (a decoder crash)


def ray_module():
    """``ray`` and ``ray.data``, or UsageError saying how to install them."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


# --- the CPU stage: one task reads input files into analysed pages ----------------------------------------------

_ready = False


def _init_process():
    """Once per worker process: OpenCV on one thread, quiet, page buffers reused (as the local workers)."""
    global _ready
    if not _ready:
        import cv2

        from .pipeline import quiet_opencv, reuse_memory

        cv2.setNumThreads(1)
        quiet_opencv()
        reuse_memory()
        _ready = True


@contextmanager
def local_copy(path: str) -> Iterator[tuple[str, str]]:
    """``(local path, error)``: a URL fetched into a temporary file (removed after), a local path as it is."""
    if not is_url(path):
        yield path, ""
        return
    folder = tempfile.mkdtemp(prefix="formdigits-")
    local = os.path.join(folder, os.path.basename(path.rstrip("/")) or "page")
    try:
        try:
            fs, where = filesystem(path)
            fs.get_file(where, local)
            error = ""
        except FileNotFoundError:
            error = f"{path}: no such file"
        except Exception as e:  # any store's failure, named: the page becomes an error row
            error = f"{path}: cannot fetch it: {type(e).__name__}: {e}"
        yield local, error
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _named(work, local: str, path: str):
    """``work`` read from ``local`` named as the input file ``path`` (its rows and errors)."""
    if local != path:
        work.file, work.error = path, work.error.replace(local, path)
        work.task = work.task._replace(file=path)
    work.image = None
    return work


def analyse_files(batch: dict, settings: Settings) -> Iterator[dict]:
    """CPU task: each input file of ``batch`` (columns path, shard, seq) into its analysed pages, one row each
    (shard, seq, page, pages: the file's page count, work: the pickled ``pipeline._PageWork``), yielded file by
    file (Ray Data streams each on to the actors at once)."""
    from .pipeline import PageTask, analyse_page, plan_pages

    _init_process()
    if os.environ.get(HANG_FOR_TESTS):
        open(os.path.join(os.environ[HANG_FOR_TESTS], f"task-{os.getpid()}"), "w").close()
        time.sleep(3600)
    for path, shard, seq in zip(batch["path"], batch["shard"], batch["seq"]):
        out: dict[str, list] = {"shard": [], "seq": [], "page": [], "pages": [], "work": []}
        path = str(path)
        if settings.crash_on and path.endswith(settings.crash_on):
            os._exit(3)
        with local_copy(path) as (local, error):
            tasks = ([PageTask(path, 1, settings.pdf_dpi, False, error)] if error else
                     plan_pages([local], settings.pdf_dpi, False, None, settings.templates, settings.strip_params))
            works = [_named(analyse_page(task), local, path) for task in tasks]
        if not works:  # a file of no pages (an empty PDF): no row, as locally; its shard must still end
            out = {"shard": [shard], "seq": [seq], "page": [0], "pages": [1], "work": [b""]}
        for work in works:
            for k, v in (("shard", shard), ("seq", seq), ("page", work.page), ("pages", len(works)),
                         ("work", pickle.dumps(work, protocol=5))):  # fmt: skip
                out[k].append(v)
        yield _arrays(out)


def _arrays(columns: dict[str, list]) -> dict:
    import numpy as np

    return {k: np.array(v, dtype=object if k in ("work", "rows") else np.int64) for k, v in columns.items()}


def analyse_anywhere(task):
    """``analyse_page`` of a task whose file may be a URL (the orientation check's second look, in an actor)."""
    from .pipeline import analyse_page

    with local_copy(task.file) as (local, error):
        if error:
            return _named(analyse_page(task._replace(error=error)), task.file, task.file)
        return _named(analyse_page(task._replace(file=local)), local, task.file)


# --- the inference stage: actors holding the readers ------------------------------------------------------------


class PageReader:
    """Ray actor: the two readers (ONNX Runtime sessions), loaded once; classifies batches of analysed pages."""

    def __init__(self, settings: Settings) -> None:
        from .classifier import Classifier
        from .sequence import StripReader

        _init_process()
        self.settings = settings
        self.clf = Classifier(settings.model, device=settings.device, batch_size=settings.batch_size,
                              threads=settings.threads, providers=settings.providers)  # fmt: skip
        self.strips = (StripReader(settings.strip_model, device=settings.device, threads=settings.threads,
                                   providers=settings.providers) if settings.readers == "both" else None)  # fmt: skip

    def __call__(self, batch: dict) -> dict:
        from .pipeline import read_analysed

        pages = [pickle.loads(w) for w in batch["work"] if len(w)]  # (b"": a file of no pages)
        done = iter(read_analysed(pages, self.clf, self.strips, self.settings.min_confidence,
                                  reanalyse=analyse_anywhere))  # fmt: skip
        out = {k: list(batch[k]) for k in ("shard", "seq", "page", "pages")}
        out["rows"] = [pickle.dumps(next(done).rows if len(w) else [], protocol=5) for w in batch["work"]]
        return _arrays(out)


# --- this process: collect pages, write shards ------------------------------------------------------------------


@dataclass
class _Shard:
    files: int  # input files in it still to come
    pages: dict = field(default_factory=dict)  # seq -> {page: rows}
    counts: dict = field(default_factory=dict)  # seq -> the file's page count


class Collector:
    """Pages' rows as they come, in any order, a page twice at most kept once; a shard is done when every page of
    every file in it is in."""

    def __init__(self, sizes: dict[int, int]) -> None:
        self.shards = {index: _Shard(files) for index, files in sizes.items()}

    def add(self, shard: int, seq: int, page: int, pages: int, rows: list) -> tuple[bool, bool]:
        """Add a page's rows: ``(new, done)``: not a retried task's copy of a page already in; the last page of
        its shard."""
        s = self.shards.get(shard)
        if s is None:  # the shard is written: a copy of one of its pages
            return False, False
        got = s.pages.setdefault(seq, {})
        if page in got or len(got) == s.counts.get(seq, -1):
            return False, False
        got[page] = rows
        s.counts[seq] = pages
        if len(got) == pages:
            s.files -= 1
        return True, s.files == 0

    def finish(self, items: Sequence[tuple[str, int, int]]) -> Iterator[tuple[int, list[list]]]:
        """Once the run is over: each shard not complete (a task that failed every try: its worker died each
        time), its files not read given an error row each, as ``(shard, pages)`` like :meth:`pop`."""
        from .output import Row  # the pipeline's modules load only in the run (the command stays light)

        for path, shard, seq in items:
            s = self.shards.get(shard)
            if s is None:
                continue
            got = s.pages.setdefault(seq, {})
            if got and len(got) == s.counts.get(seq):
                continue
            message = (f"{path}: the Ray task reading it failed {TASK_RETRIES + 1} times (its worker process died): "
                       f"{'pages not read' if got else 'not read'}")  # fmt: skip
            for page in range(1, max(s.counts.get(seq, 1), 1) + 1):
                got.setdefault(page, [Row(path, page, error=message)])
            s.counts[seq] = len(got)
        for shard in sorted(self.shards):
            yield shard, self.pop(shard)

    def pop(self, shard: int) -> list[list]:
        """A complete shard's pages (each its rows), in input order (page 0: a file of no pages, left out)."""
        s = self.shards.pop(shard)
        return [s.pages[seq][page] for seq in sorted(s.pages) for page in sorted(s.pages[seq]) if page]


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected: to the cluster at ``address`` (``auto``: the one this machine is part of), or to a local
    Ray started with this machine's cores (stopped again after). A Ray already started in this process is used
    as it is."""
    ray = ray_module()
    if ray.is_initialized():
        yield ray
        return
    from .parallel import available_cores

    _check_reachable(address)
    try:
        if address:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or available_cores(), include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise DataError(f"cannot start or reach {where}: {e}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str | None, timeout: float = 10) -> None:
    """DataError at once for a ``HOST:PORT`` where nothing listens (Ray would retry for minutes)."""
    import socket

    if not address or "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise DataError(f"cannot reach the Ray cluster at {address}: {e}") from None


def _quiet_data(ray) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_rich_progress_bars = False
    ctx.verbose_stats_logs = False
    ctx.max_errored_blocks = -1  # a task that fails every try costs its files (error rows: Collector.finish), not the run
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def pipeline_of(ray, items: Sequence[tuple[str, int, int]], settings: Settings, num_gpus: float):
    """The Ray Data pipeline over ``items`` (path, shard, seq): read and cut in CPU tasks, classify in actors."""
    import pyarrow as pa

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_task = max(1, min(FILES_PER_TASK, len(items) // (8 * cpus)))  # small tasks: an even end, pages early
    tables = [pa.table({"path": [p for p, _, _ in chunk], "shard": [s for _, s, _ in chunk],
                        "seq": [q for _, _, q in chunk]})
              for chunk in (items[i:i + per_task] for i in range(0, len(items), per_task))]  # fmt: skip
    ds = ray.data.from_arrow(tables)
    ds = ds.map_batches(analyse_files, fn_kwargs={"settings": settings}, batch_size=None, batch_format="numpy",
                        num_cpus=1, max_retries=TASK_RETRIES)  # fmt: skip
    actors, actor_cpus = actor_pool(ray, num_gpus)
    return ds.map_batches(PageReader, fn_constructor_kwargs={"settings": settings}, batch_size=PAGES_PER_BATCH,
                          batch_format="numpy", compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                          num_cpus=actor_cpus, num_gpus=num_gpus or None)  # fmt: skip


def actor_pool(ray, num_gpus: float) -> tuple[int, float]:
    """``(most actors, CPUs each)`` for the inference stage. With GPUs: an actor per ``num_gpus`` GPUs. On CPUs:
    a cluster under ``SMALL_CLUSTER`` cores gets one actor that reserves no core (as the local engine's main
    process reads beside one worker per core); a larger one up to an actor, with its core, per
    1 / ``INFERENCE_SHARE`` cores (Ray Data starts more as pages queue up for them; each reserving a core,
    Ray places them where cores are free)."""
    resources = ray.cluster_resources()
    if num_gpus:
        return max(1, int(resources.get("GPU", 0) / num_gpus)), 1
    cpus = int(resources.get("CPU", 1))
    if cpus < SMALL_CLUSTER:
        return 1, 0
    return max(1, round(cpus * INFERENCE_SHARE)), 1


def run_ray_scan(files: Sequence[str], output: str, settings: Settings, fmt: str = "csv", resume: bool = False,
                 names: Sequence[str] | None = None, address: str | None = None,
                 shard_files: int = DEFAULT_SHARD_FILES, num_gpus: float = 0,
                 on_page: Callable[[str, int], Any] | None = None, on_shard: Callable[[int, str], Any] | None = None,
                 say: Callable[[str], Any] | None = None) -> RunSummary:  # fmt: skip
    """Scan ``files`` on Ray into the folder of shards ``output``; returns the run's :class:`RunSummary`.

    ``on_page(file, page)`` as each page's rows come in; ``on_shard(index, path)`` as each shard is written.
    Ctrl-C stops the run with ``summary.stopped`` set; the shards written are kept for ``--resume``.
    """
    folder = ShardFolder(output, fmt, names)
    kept = folder.start(files, shard_files, resume)
    summary = RunSummary(str(output), kept_in=f"the shards written in {output}")
    summary.kept_pages = sum(s.pages for s in kept.values())
    summary.kept_failed = [e for s in kept.values() for e in s.failed]
    summary.device = settings.device
    if resume and say:
        say(f"formdigits: resuming {output}: {len(kept)} of {n_shards(len(files), shard_files)} shards already done")
    items = [(path, i // shard_files, i) for i, path in enumerate(files) if i // shard_files not in kept]
    stats: dict[int, ShardStats] = dict(kept)
    start = time.perf_counter()
    try:
        if items:
            with sigterm_stops(), ray_session(address) as ray:
                folder.begin()
                _quiet_data(ray)
                sizes: dict[int, int] = {}
                for _, shard, _ in items:
                    sizes[shard] = sizes.get(shard, 0) + 1
                collector = Collector(sizes)
                ds = pipeline_of(ray, items, settings, num_gpus)
                for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    for shard, seq, page, pages, rows in zip(*(batch[k] for k in ("shard", "seq", "page", "pages",
                                                                                  "rows"))):  # fmt: skip
                        rows = pickle.loads(rows)
                        new, done = collector.add(int(shard), int(seq), int(page), int(pages), rows)
                        if new and on_page:
                            on_page(rows[0].file if rows else "", int(page))
                        if not done:
                            continue
                        pages_rows = collector.pop(int(shard))
                        path = folder.write(int(shard), pages_rows)
                        stats[int(shard)] = s = stats_of(pages_rows)
                        _tally(summary, pages_rows, s)
                        if on_shard:
                            on_shard(int(shard), path)
                for shard, pages_rows in collector.finish(items):  # tasks that failed every try: error rows
                    path = folder.write(shard, pages_rows)
                    stats[shard] = s = stats_of(pages_rows)
                    _tally(summary, pages_rows, s)
                    if on_shard:
                        on_shard(shard, path)
        folder.finish(files, shard_files, stats)
    except KeyboardInterrupt as e:
        summary.stopped = "terminated" if isinstance(e, Terminated) else "interrupted"
    summary.seconds = time.perf_counter() - start
    return summary


def _tally(summary: RunSummary, pages: list[list], stats: ShardStats) -> None:
    summary.pages += stats.pages
    summary.failed += stats.failed
    for rows in pages:
        summary.counts.update(r.status for r in rows)
        review = [r for r in rows if r.status == "review"]
        summary.review.extend(review[: REVIEW_LIST - len(summary.review)])
