"""Rows out: CSV (RFC 4180) or JSON Lines, streamed, spreadsheet-safe, never half-written.

A file output is written to ``OUT.partial``, flushed after every page, and renamed
to ``OUT`` only when the run completes, so a crash never leaves a truncated ``OUT``.
An interrupted run is continued with ``resume=True``: the pages already in
``OUT.partial`` are kept (the last one, which may be cut short, is dropped and
read again) and reported in ``writer.done`` so the scan can skip them.
"""

import csv
import dataclasses
import io
import json
import os
import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

COLUMNS = ("file", "page", "field", "x", "y", "w", "h", "value", "confidence", "digit_confidences", "status", "error")
FORMATS = ("csv", "jsonl", "wide")
_RISKY = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Row:
    """One field of one page (or one row for a page that could not be read)."""

    file: str
    page: int
    field: int = 0
    x: int = 0
    y: int = 0
    w: int = 0
    h: int = 0
    value: str = ""
    confidence: float = 0.0
    digit_confidences: list = dataclasses.field(default_factory=list)
    status: str = "error"  # ok | review | empty | error
    error: str = ""
    kind: str = ""  # comb | open (JSON Lines only)
    form: str = ""  # the template the page matched (with --template only)

    def csv_cells(self, columns=COLUMNS):
        cells = {c: getattr(self, c) for c in columns}
        cells["confidence"] = f"{self.confidence:.4f}" if self.status != "error" else ""
        cells["digit_confidences"] = " ".join(f"{p:.4f}" for p in self.digit_confidences)
        return [spreadsheet_safe(str(cells[c])) for c in columns]

    def json(self):
        d = {c: getattr(self, c) for c in COLUMNS}
        d["confidence"] = round(self.confidence, 6)
        d["digit_confidences"] = [round(p, 6) for p in self.digit_confidences]
        d["kind"] = self.kind
        if self.form:
            d["form"] = self.form
        return json.dumps(d, ensure_ascii=False)


def spreadsheet_safe(text):
    """Neutralise a cell a spreadsheet would run as a formula (OWASP: prefix a quote)."""
    return "'" + text if text.startswith(_RISKY) else text


def wide_columns(names):
    """Columns of the wide format: one row per page, a value and a confidence column per field name."""
    return ("file", "page", "form", *(c for n in names for c in (n, f"{n}_confidence")), "status", "error")


def wide_cells(rows, names):
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
    column, and the wide format needs them. ``done`` counts the pages already written.
    """

    def __init__(self, fh, fmt, header=True, names=None):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        if fmt == "wide" and not names:
            raise ValueError("the wide format needs template field names (--template)")
        self.fh, self.fmt, self.names = fh, fmt, names
        self.done = Counter()  # (file, page) -> times already written
        self.columns = wide_columns(names) if fmt == "wide" else (*COLUMNS, "form") if names else COLUMNS
        if fmt != "jsonl":
            self._csv = csv.writer(fh, lineterminator="\r\n")
            if header:
                self._csv.writerow(self.columns)

    def write(self, row):
        """Write one row (long formats)."""
        self.write_page([row])

    def write_page(self, rows):
        """Write one page's rows (a page with no fields writes nothing)."""
        if not rows:
            return
        if self.fmt == "wide":
            self._csv.writerow(wide_cells(rows, self.names))
        elif self.fmt == "csv":
            self._csv.writerows(r.csv_cells(self.columns) for r in rows)
        else:
            self.fh.write("".join(r.json() + "\n" for r in rows))

    def flush(self):
        self.fh.flush()


def _unquote(cell):
    """Undo :func:`spreadsheet_safe`."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_RISKY) else cell


def _recover(partial, fmt, columns):
    """Whole pages in an interrupted output, as ``(kept text, Counter of (file, page))``.

    Records are read up to the first damaged one; the last page read is dropped
    as it may be incomplete (rows are written page by page, in order).
    """
    text = partial.read_text(encoding="utf-8", errors="replace")
    records = []  # (key, serialised record)
    if fmt != "jsonl":
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            for cells in reader:
                if len(cells) != len(columns):
                    break
                out = io.StringIO()
                csv.writer(out, lineterminator="\r\n").writerow(cells)
                records.append(((_unquote(cells[0]), int(cells[1])), out.getvalue()))
        except (csv.Error, ValueError):
            pass
        if header is not None and tuple(header) != tuple(columns):
            raise DataError(f"{partial}: its header is not the one this run writes (another --format or "
                            "--template?); cannot resume from it")  # fmt: skip
    else:
        for line in text.splitlines(keepends=True):
            try:
                d = json.loads(line)
                records.append(((d["file"], int(d["page"])), line if line.endswith("\n") else line + "\n"))
            except (ValueError, KeyError, TypeError):
                break
    groups = []  # (key, text) per page: runs of rows of one page (a file listed twice has two runs)
    for key, text in records:
        if groups and groups[-1][0] == key:
            groups[-1] = (key, groups[-1][1] + text)
        else:
            groups.append((key, text))
    groups = groups[:-1]  # the last page may have been cut short
    head = ""
    if fmt != "jsonl":
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(columns)
        head = out.getvalue()
    return head + "".join(text for _, text in groups), Counter(key for key, _ in groups)


@contextmanager
def open_output(path, fmt="csv", resume=False, names=None):
    """A RowWriter on stdout (``-``) or on ``path`` via ``path.partial``, renamed on success.

    With ``resume``, an existing ``path.partial`` is continued: its whole pages are
    kept and counted in ``writer.done``. ``names``: see :class:`RowWriter`.
    """
    if path in (None, "-"):
        if resume:
            raise DataError("--resume needs an output file (-o FILE), not stdout")
        yield RowWriter(sys.stdout, fmt, names=names)
        sys.stdout.flush()
        return
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    columns = RowWriter(io.StringIO(), fmt, names=names).columns
    done = Counter()
    if resume and partial.is_file():
        kept, done = _recover(partial, fmt, columns)
        with open(partial, "w", newline="", encoding="utf-8") as fh:
            fh.write(kept)
    with open(partial, "a" if done else "w", newline="", encoding="utf-8") as fh:
        writer = RowWriter(fh, fmt, header=not done, names=names)
        writer.done = done
        yield writer
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
