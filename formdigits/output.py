"""Rows out: CSV (RFC 4180) or JSON Lines, streamed, spreadsheet-safe, never half-written.

A file output is written to ``OUT.partial``, flushed after every page, and renamed
to ``OUT`` only when the run completes, so a crash never leaves a truncated ``OUT``.
"""

import csv
import json
import os
import sys
from contextlib import contextmanager
import dataclasses
from dataclasses import dataclass
from pathlib import Path

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
    def __init__(self, fh, fmt):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        self.fh, self.fmt = fh, fmt
        if fmt == "csv":
            self._csv = csv.writer(fh, lineterminator="\r\n")
            self._csv.writerow(COLUMNS)

    def write(self, row):
        if self.fmt == "csv":
            self._csv.writerow(row.csv_cells())
        else:
            self.fh.write(row.json() + "\n")

    def flush(self):
        self.fh.flush()


@contextmanager
def open_output(path, fmt="csv"):
    """A RowWriter on stdout (``-``) or on ``path`` via ``path.partial``, renamed on success."""
    if path in (None, "-"):
        yield RowWriter(sys.stdout, fmt)
        sys.stdout.flush()
        return
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as fh:
        yield RowWriter(fh, fmt)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
