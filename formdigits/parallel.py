"""Run a function over tasks in worker processes, results in task order, failures contained.

``ordered_map`` keeps only a bounded number of tasks in flight (memory stays
flat however many tasks there are) and yields ``(task, result)`` in the order
the tasks came. A worker that dies (killed, out of memory, a crash in native
code) or runs past the time budget costs its own task a :class:`WorkerFailure`
result, not the batch: the pool is restarted, and the tasks that were in
flight with it are re-run one at a time, so the culprit is found exactly.

Workers never outlive the run: they exit when the parent process dies (even by
SIGKILL), they are killed when the caller stops early (Ctrl-C, SIGTERM, a
generator closed), and they ignore Ctrl-C, which is the parent's to handle.
"""

import multiprocessing
import os
import signal
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

from .options import DEFAULT_PAGE_TIMEOUT  # noqa: F401  (seconds a page may take in a worker)


@dataclass
class WorkerFailure:
    """The result of a task whose worker process crashed or ran out of time."""

    message: str


def available_cores():
    """CPU cores this process may use (respects affinity masks and container limits where visible)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _start_worker(initializer, initargs):
    """First thing in a worker: leave Ctrl-C to the parent, exit when the parent dies, then ``initializer``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (a Ctrl-C that came while it started is dropped with this)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by _sigint_blocked
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()
    if initializer:
        initializer(*initargs)


def _exit_with(parent):
    parent.join()  # returns when the parent is gone: the pipe it holds to this process closes with it
    os._exit(1)


@contextmanager
def _sigint_blocked():
    """Processes started in here inherit SIGINT blocked (POSIX): a Ctrl-C, which the terminal sends to every
    process of the group, waits in a starting worker until :func:`_start_worker` ignores it, instead of
    breaking its imports with a traceback. This process still gets it, now or when this returns."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _Pool:
    def __init__(self, workers, initializer, initargs):
        self.args = workers, initializer, initargs
        self.executor = None

    def submit(self, func, task):
        if self.executor is None and hasattr(signal, "pthread_sigmask"):
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()  # first: starting it unblocks SIGINT (it does not restore the mask)
        with _sigint_blocked():  # the executor starts its processes here, as they are needed
            if self.executor is None:
                workers, initializer, initargs = self.args
                # spawn: workers start clean (no copied ONNX Runtime threads or locks), on every OS alike
                self.executor = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _start_worker,
                                                    (initializer, initargs))  # fmt: skip
            try:
                return self.executor.submit(func, task)
            except BrokenProcessPool as e:  # a worker died since the last submit: fail this one the same way
                future = Future()
                future.set_exception(e)
                return future

    def kill(self):
        """Stop every worker now (a hung one included) and forget the pool."""
        if self.executor is None:
            return
        for p in list(getattr(self.executor, "_processes", {}).values()):  # no public API before Python 3.14
            p.kill()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = None

    def close(self):
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None


def _wait(future, timeout):
    """``(result, outcome)``: outcome is "ok", or "timeout" / "crash" with a WorkerFailure as result."""
    try:
        return future.result(timeout=timeout), "ok"
    except FutureTimeout:
        return WorkerFailure(f"gave up after {timeout:g} s (the time limit per page)"), "timeout"
    except BrokenProcessPool:
        return WorkerFailure("the worker process reading it crashed"), "crash"


def ordered_map(func, tasks, workers, timeout=None, ahead=None, initializer=None, initargs=()):
    """Yield ``(task, func(task))`` in task order, computed by ``workers`` processes.

    ``func`` must be a picklable top-level function that handles its own
    exceptions (return them as values); ``workers=0`` runs everything here,
    without processes and without the time limit. ``timeout`` is the most
    seconds one task may take; ``ahead`` bounds the tasks in flight
    (default: 4 per worker). When the caller stops early (an exception such as
    KeyboardInterrupt, or the generator closed), the workers are killed at once.
    """
    if workers == 0:
        if initializer:
            initializer(*initargs)
        for task in tasks:
            yield task, func(task)
        return
    ahead = ahead or 4 * workers
    tasks = iter(tasks)
    pool = _Pool(workers, initializer, initargs)
    pending = deque()
    try:
        while True:
            while len(pending) < ahead:
                task = next(tasks, None)
                if task is None:
                    break
                pending.append((task, pool.submit(func, task)))
            if not pending:
                return
            task, future = pending.popleft()
            result, outcome = _wait(future, timeout)
            if outcome == "ok":
                yield task, result
                continue
            # the pool is gone: this task ran out of time (it is the culprit), or some task in flight crashed
            pool.kill()
            suspects = [t for t, _ in pending]
            pending.clear()
            if outcome == "timeout":
                yield task, result
            else:
                suspects.insert(0, task)
            for t in suspects:  # one at a time, so a crash can only be its own
                result, outcome = _wait(pool.submit(func, t), timeout)
                if outcome != "ok":
                    pool.kill()
                yield t, result
    except BaseException:  # interrupted, or the caller stopped: the pages in flight are not wanted
        pool.kill()
        raise
    finally:
        pool.close()
