"""Rows out: CSV (RFC 4180) or JSON Lines, streamed, spreadsheet-safe, never half-written.

A file output is written to ``OUT.partial``, flushed after every page, and renamed
to ``OUT`` only when the run completes, so a crash never leaves a truncated ``OUT``.
An interrupted run is continued with ``resume=True``: the pages already in
``OUT.partial`` are kept (the last one, which may be cut short, is dropped and
read again) and reported in ``writer.done`` so the scan can skip them. While a run
writes ``OUT.partial`` it holds an exclusive lock on it: a second run on the same
``OUT`` stops at once instead of writing into it too.

Text goes out as UTF-8; a file name that is not valid UTF-8 (held by Python with
surrogate escapes) is written as its own bytes, and read back the same way.
"""

import csv
import dataclasses
import errno
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from .errors import DataError

try:
    import fcntl
except ImportError:  # Windows: no lock (and a file must be closed before it is renamed)
    fcntl = None  # type: ignore[assignment]

COLUMNS = ("file", "page", "field", "x", "y", "w", "h", "value", "confidence", "digit_confidences", "status", "error")
FORMATS = ("csv", "jsonl", "wide")
STATUSES = ("ok", "review", "empty", "error")
_RISKY = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Row:
    """One field of one page (or one row for a page that could not be read)."""

    file: str
    page: int
    field: int | str = 0  # 1, 2, ... in page order; the template's field name with a template
    x: int = 0
    y: int = 0
    w: int = 0
    h: int = 0
    value: str = ""
    confidence: float = 0.0
    digit_confidences: list[float] = dataclasses.field(default_factory=list)
    status: str = "error"  # ok | review | empty | error
    error: str = ""
    kind: str = ""  # comb | open (JSON Lines only)
    form: str = ""  # the template the page matched (with --template only)

    def csv_cells(self, columns: Sequence[str] = COLUMNS) -> list[str]:
        """The row's cells for ``columns`` as CSV text (confidences to 4 places, spreadsheet-safe)."""
        cells = {c: getattr(self, c) for c in columns}
        cells["confidence"] = f"{self.confidence:.4f}" if self.status != "error" else ""
        cells["digit_confidences"] = " ".join(f"{p:.4f}" for p in self.digit_confidences)
        return [spreadsheet_safe(str(cells[c])) for c in columns]

    def json(self) -> str:
        """The row as one JSON object (a line of JSON Lines)."""
        d = {c: getattr(self, c) for c in COLUMNS}
        d["confidence"] = round(self.confidence, 6)
        d["digit_confidences"] = [round(p, 6) for p in self.digit_confidences]
        d["kind"] = self.kind
        if self.form:
            d["form"] = self.form
        return json.dumps(d, ensure_ascii=False)


def spreadsheet_safe(text: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula (OWASP: prefix a quote).

    A cell that starts with a quote gets one more, so that :func:`unquote` can always undo it.
    """
    return "'" + text if text.startswith((*_RISKY, "'")) else text


def unquote(cell: str) -> str:
    """Undo :func:`spreadsheet_safe`."""
    return cell.removeprefix("'")


def wide_columns(names: Sequence[str]) -> tuple[str, ...]:
    """Columns of the wide format: one row per page, a value and a confidence column per field name."""
    return ("file", "page", "form", *(c for n in names for c in (n, f"{n}_confidence")), "status", "error")


def wide_cells(rows: Sequence[Row], names: Sequence[str]) -> list[str]:
    """One page's rows as one wide row (see :func:`wide_columns`)."""
    first = rows[0]
    by_name = {str(r.field): r for r in rows if r.status != "error"}
    cells = [first.file, first.page, first.form]
    for n in names:
        r = by_name.get(n)
        cells += [r.value, f"{r.confidence:.4f}"] if r is not None else ["", ""]
    if first.status == "error":
        status, error = "error", first.error
    elif any(r.status == "review" for r in rows):
        status = "review"
        error = "; ".join(f"{r.field}: {r.error}" for r in rows if r.status == "review")
    else:
        status, error = "ok", ""
    return [spreadsheet_safe(str(c)) for c in [*cells, status, error]]


class RowWriter:
    """Writes rows as CSV (with a header), JSON Lines, or wide CSV (one row per page).

    ``names``: the template field names (``--template``): long CSV gets a ``form``
    column, and the wide format needs them. ``done`` counts the pages already written
    and ``failed`` lists their error messages (see :func:`open_output`). ``where``
    names the output in the message of a write that fails (a full disk).
    """

    def __init__(self, fh: IO[str] | Any, fmt: str, header: bool = True, names: Sequence[str] | None = None,
                 where: str | os.PathLike = "the output") -> None:  # fmt: skip
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        if fmt == "wide" and not names:
            raise ValueError("the wide format needs template field names (--template)")
        self.fh, self.fmt, self.where = fh, fmt, where
        self.names: Sequence[str] = names or ()
        self.done: Counter[tuple[str, int]] = Counter()  # (file, page) -> times already written
        self.failed: list[str] = []  # the error messages of the pages already written
        self.columns = wide_columns(self.names) if fmt == "wide" else (*COLUMNS, "form") if names else COLUMNS
        if fmt != "jsonl":
            self._csv = csv.writer(fh, lineterminator="\r\n")
            if header:
                with self._checked():
                    self._csv.writerow(self.columns)

    def write(self, row: Row) -> None:
        """Write one row (long formats)."""
        self.write_page([row])

    def write_page(self, rows: Sequence[Row]) -> None:
        """Write one page's rows (a page with no fields writes nothing)."""
        if not rows:
            return
        with self._checked():
            if self.fmt == "wide":
                self._csv.writerow(wide_cells(rows, self.names))
            elif self.fmt == "csv":
                self._csv.writerows(r.csv_cells(self.columns) for r in rows)
            else:
                self.fh.write("".join(r.json() + "\n" for r in rows))

    def flush(self) -> None:
        """Flush the output."""
        with self._checked():
            self.fh.flush()

    @contextmanager
    def _checked(self):
        """A write that fails (a full disk) becomes a one-line error naming the output."""
        try:
            yield
        except OSError as e:
            raise write_error(self.where, e) from None


def write_error(where: str | os.PathLike, e: OSError) -> DataError:
    """The error for a failed write to ``where`` (a ``.partial`` keeps what was written before)."""
    message = f"{where}: cannot write: {e.strerror or e}"
    if str(where).endswith(".partial"):
        message += "; the pages finished before are kept in it: run again with --resume once it can be written"
    return DataError(message)


class _Utf8Out:
    """Text to a binary stream as UTF-8, file names that are not UTF-8 as their own bytes, no newline
    translation (``\\r\\n`` stays ``\\r\\n`` on every OS)."""

    def __init__(self, binary):
        self.binary = binary

    def write(self, text):
        return self.binary.write(text.encode("utf-8", "surrogateescape"))

    def flush(self):
        self.binary.flush()


class Kept(NamedTuple):
    """What an interrupted output holds: its whole pages."""

    text: str  # the pages, serialised as this run writes them (CSV: with the header)
    done: Counter  # (file, page) -> times written
    failed: list  # the error message of each error page among them


def _csv_line(cells):
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def _csv_records(text, columns, where):
    """``(key, text, error)`` per row of a CSV output, up to the first damaged one."""
    header = _csv_line(columns)
    if not text.startswith(header):
        if header.startswith(text):
            return []  # cut short in its header: nothing written yet
        raise DataError(f"{where}: its first line is not the header this run writes (another --format or "
                        "--template, or a damaged file?): cannot resume from it")  # fmt: skip
    at = {c: columns.index(c) for c in ("file", "page", "status", "error")}
    records, reader = [], csv.reader(io.StringIO(text[len(header):], newline=""))
    try:
        for cells in reader:
            if len(cells) != len(columns) or cells[at["status"]] not in STATUSES or int(cells[at["page"]]) < 1:
                break
            error = unquote(cells[at["error"]]) if cells[at["status"]] == "error" else None
            records.append(((unquote(cells[at["file"]]), int(cells[at["page"]])), _csv_line(cells), error))
    except (csv.Error, ValueError):
        pass
    return records


def _json_record(line):
    """``(key, text, error)`` of one JSON Lines record; ValueError if it is not one of ours."""
    d = json.loads(line)
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    file, page, status, error = (d.get(k) for k in ("file", "page", "status", "error"))
    if not isinstance(file, str) or type(page) is not int or page < 1 or status not in STATUSES:
        raise ValueError("its file, page or status is missing or of the wrong type")
    if not isinstance(error, str):
        raise ValueError("its error is missing or not text")
    return (file, page), line, error if status == "error" else None


def _json_records(text, where):
    """``(key, text, error)`` per line of a JSON Lines output, up to the first damaged one."""
    records = []
    for number, line in enumerate(_lines(text), 1):
        try:
            records.append(_json_record(line))
        except (ValueError, RecursionError) as e:  # (RecursionError: "[[[[..." nested past the parser's limit)
            if number == 1 and line.endswith("\n"):  # a whole first line that is not ours: not our output
                raise DataError(f"{where}: line 1 is not a formdigits JSON Lines record ({e}; another --format, "
                                "or a damaged file?): cannot resume from it") from None  # fmt: skip
            break
    return records


def _lines(text):
    """Lines ending in ``\\n`` only (a file name may hold other line breaks)."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def recover(text, fmt, columns, where):
    """The whole pages of an interrupted output's ``text``.

    Records are read up to the first damaged one; the last page read is dropped
    as it may be incomplete (rows are written page by page, in order). Output of
    another format, or one damaged from its first line, is refused (DataError).
    """
    records = _json_records(text, where) if fmt == "jsonl" else _csv_records(text, columns, where)
    pages = []  # [key, text, errors] per page: a run of rows of one page (a file listed twice has two runs)
    for key, line, error in records:
        if not pages or pages[-1][0] != key:
            pages.append([key, "", []])
        pages[-1][1] += line
        if error is not None:
            pages[-1][2].append(error)
    pages = pages[:-1]  # the last page may have been cut short
    head = _csv_line(columns) if fmt != "jsonl" and pages else ""
    return Kept(head + "".join(text for _, text, _ in pages), Counter(key for key, _, _ in pages),
                [e for _, _, errors in pages for e in errors])  # fmt: skip


def _open_locked(partial):
    """``partial`` opened for reading and writing (created, not truncated) under an exclusive lock.

    Another run holding the lock is an error at once (no waiting). The lock is
    taken before anything is read or truncated, and on the file that is still
    named ``partial`` (not one a finished run has just renamed to its output).
    """
    for _ in range(5):
        try:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise DataError(f"{partial}: cannot open it for writing: {e.strerror or e}") from None
        if fcntl is None:
            return open(fd, "r+b")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return open(fd, "r+b")  # a file system without locks: go on without
            os.close(fd)
            break
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(partial))
        except FileNotFoundError:
            same = False
        if same:
            return open(fd, "r+b")
        os.close(fd)
    raise DataError(f"{partial}: another formdigits run is writing it (it is locked): wait for that run to end, "
                    "or give another -o")  # fmt: skip


def _close(fh):
    try:
        fh.close()
    except OSError:  # only after a failed write, which is being reported
        pass


@contextmanager
def open_output(path: str | os.PathLike | None, fmt: str = "csv", resume: bool = False,
                names: Sequence[str] | None = None) -> Iterator[RowWriter]:  # fmt: skip
    """A RowWriter on stdout (``-``) or on ``path`` via ``path.partial``, renamed on success (a device or
    a pipe, such as ``/dev/null``, is written straight into).

    ``path.partial`` is locked while the run writes it: a second run on the same
    path is refused (DataError). With ``resume``, an existing ``path.partial`` is
    continued: its whole pages are kept, counted in ``writer.done``, their error
    messages in ``writer.failed``. ``names``: see :class:`RowWriter`.
    """
    if path in (None, "-"):
        if resume:
            raise DataError("--resume needs an output file (-o FILE), not stdout")
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)  # none for an in-memory stdout (notebooks, tests)
        writer = RowWriter(_Utf8Out(binary) if binary else sys.stdout, fmt, names=names, where="stdout")
        yield writer
        writer.flush()
        return
    path = Path(path)
    if path.exists() and not path.is_file():  # a device or a pipe (/dev/null, a FIFO): written straight into,
        if resume:  # never replaced by a renamed file
            raise DataError(f"{path}: --resume needs a regular output file, not a device or a pipe")
        with open(path, "wb", buffering=0) as fh:  # unbuffered: a failed write fails in the writer, named
            writer = RowWriter(_Utf8Out(fh), fmt, names=names, where=path)
            yield writer
            writer.flush()
        return
    partial = path.with_name(path.name + ".partial")
    columns = RowWriter(io.StringIO(), fmt, names=names).columns
    fh = _open_locked(partial)
    try:
        kept = Kept("", Counter(), [])
        if resume:
            kept = recover(fh.read().decode("utf-8", "surrogateescape"), fmt, columns, partial)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(kept.text.encode("utf-8", "surrogateescape"))
        except OSError as e:
            raise write_error(partial, e) from None
        writer = RowWriter(_Utf8Out(fh), fmt, header=not kept.done, names=names, where=partial)
        writer.done, writer.failed = kept.done, kept.failed
        yield writer
        writer.flush()
        try:
            os.fsync(fh.fileno())
        except OSError as e:
            raise write_error(partial, e) from None
        if fcntl is None:
            fh.close()  # Windows cannot rename an open file
        os.replace(partial, path)  # while still locked: no other run can start on it in between
    finally:
        _close(fh)
