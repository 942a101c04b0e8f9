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
FORMATS = ("csv", "jsonl")
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

    def csv_cells(self):
        cells = {c: getattr(self, c) for c in COLUMNS}
        cells["confidence"] = f"{self.confidence:.4f}" if self.status != "error" else ""
        cells["digit_confidences"] = " ".join(f"{p:.4f}" for p in self.digit_confidences)
        return [spreadsheet_safe(str(cells[c])) for c in COLUMNS]

    def json(self):
        d = {c: getattr(self, c) for c in COLUMNS}
        d["confidence"] = round(self.confidence, 6)
        d["digit_confidences"] = [round(p, 6) for p in self.digit_confidences]
        d["kind"] = self.kind
        return json.dumps(d, ensure_ascii=False)


def spreadsheet_safe(text):
    """Neutralise a cell a spreadsheet would run as a formula (OWASP: prefix a quote)."""
    return "'" + text if text.startswith(_RISKY) else text


class RowWriter:
    """Writes rows as CSV (with a header) or JSON Lines; ``done`` counts the pages already written."""

    def __init__(self, fh, fmt, header=True):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        self.fh, self.fmt = fh, fmt
        self.done = Counter()  # (file, page) -> times already written
        if fmt == "csv":
            self._csv = csv.writer(fh, lineterminator="\r\n")
            if header:
                self._csv.writerow(COLUMNS)

    def write(self, row):
        if self.fmt == "csv":
            self._csv.writerow(row.csv_cells())
        else:
            self.fh.write(row.json() + "\n")

    def flush(self):
        self.fh.flush()


def _unquote(cell):
    """Undo :func:`spreadsheet_safe`."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_RISKY) else cell


def _recover(partial, fmt):
    """Whole pages in an interrupted output, as ``(kept text, Counter of (file, page))``.

    Records are read up to the first damaged one; the last page read is dropped
    as it may be incomplete (rows are written page by page, in order).
    """
    text = partial.read_text(encoding="utf-8", errors="replace")
    records = []  # (key, serialised record)
    if fmt == "csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            for cells in reader:
                if len(cells) != len(COLUMNS):
                    break
                out = io.StringIO()
                csv.writer(out, lineterminator="\r\n").writerow(cells)
                records.append(((_unquote(cells[0]), int(cells[1])), out.getvalue()))
        except (csv.Error, ValueError):
            pass
        if header is not None and tuple(header) != COLUMNS:
            raise DataError(f"{partial}: not a formdigits CSV (its header differs); cannot resume from it")
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
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(COLUMNS)
        head = out.getvalue()
    return head + "".join(text for _, text in groups), Counter(key for key, _ in groups)


@contextmanager
def open_output(path, fmt="csv", resume=False):
    """A RowWriter on stdout (``-``) or on ``path`` via ``path.partial``, renamed on success.

    With ``resume``, an existing ``path.partial`` is continued: its whole pages are
    kept and listed in ``writer.done``.
    """
    if path in (None, "-"):
        if resume:
            raise DataError("--resume needs an output file (-o FILE), not stdout")
        yield RowWriter(sys.stdout, fmt)
        sys.stdout.flush()
        return
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    done = Counter()
    if resume and partial.is_file():
        kept, done = _recover(partial, fmt)
        with open(partial, "w", newline="", encoding="utf-8") as fh:
            fh.write(kept)
    with open(partial, "a" if done else "w", newline="", encoding="utf-8") as fh:
        writer = RowWriter(fh, fmt, header=not done)
        writer.done = done
        yield writer
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
