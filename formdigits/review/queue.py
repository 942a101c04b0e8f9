"""The review queue and the reviewed file.

The reviewed file (``out.reviewed.csv`` beside ``out.csv``) has the scan CSV's
columns, as in the input and in its order, plus ``reviewed_value`` and
``reviewed_status``; every input row is in it, in input order, so it is also the
state a restart resumes from. ``reviewed_status`` is ``verified`` (the reading
was right), ``corrected`` (``reviewed_value`` was typed), ``illegible``,
``rejected`` (no digit field) or empty (not checked yet). The file is rewritten
atomically (a temporary file, then ``os.replace``) after every change; the scan
CSV is never written.
"""

import csv
import io
import os
import re
import stat
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..output import unquote

REVIEWED_COLUMNS = ("reviewed_value", "reviewed_status")
REVIEWED_STATUSES = ("verified", "corrected", "illegible", "rejected")
ACTIONS = ("confirm", "illegible", "reject", "clear")  # what a person does to an item
NEEDED = ("file", "page", "field", "x", "y", "w", "h", "value", "confidence", "status", "error")
MAX_VALUE = 64  # digits a typed reading may have


@dataclass
class Table:
    """A scan CSV as read: its header and its rows' cells, untouched (so they are written back the same)."""

    path: Path
    columns: list[str]
    rows: list[list[str]]

    def cell(self, row: int, column: str) -> str:
        """The cell of ``column`` in row ``row``, as written (spreadsheet-safe quoting kept)."""
        return self.rows[row][self.columns.index(column)]


@dataclass
class Item:
    """One field to check: a row of the scan CSV with its box."""

    row: int  # index of the row in the CSV (0: the first row after the header)
    file: str  # the page file's name, as the scan wrote it (unquoted)
    page: int
    field: str
    box: tuple[int, int, int, int]
    value: str
    confidence: float
    digit_confidences: list[float]
    status: str  # ok or review
    reason: str  # the error column; "" for ok rows
    form: str = ""

    @property
    def kind(self) -> str:
        """The reason, without its numbers and readings: ``readers disagree``, ``low confidence``, a rule's name."""
        return reason_kind(self.reason, self.status)


@dataclass
class Review:
    """What a person decided about one row (``status`` "" while not checked)."""

    value: str = ""
    status: str = ""


@dataclass
class State:
    """The reviewed file's contents: one :class:`Review` per row of the scan CSV."""

    table: Table
    path: Path  # the reviewed file
    reviews: list[Review] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def counts(self, rows: Iterable[int] | None = None) -> dict[str, int]:
        """Reviewed rows by status among ``rows`` (default: all)."""
        chosen = range(len(self.reviews)) if rows is None else rows
        c = Counter(self.reviews[i].status for i in chosen)
        return {s: c[s] for s in REVIEWED_STATUSES}


def reviewed_path(scan_csv: str | os.PathLike) -> Path:
    """``out.csv`` -> ``out.reviewed.csv`` (beside it)."""
    p = Path(scan_csv)
    return p.with_name(p.stem + ".reviewed.csv") if p.suffix.lower() == ".csv" else p.with_name(p.name + ".reviewed.csv")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:  # file names as scan wrote them
            lines = list(csv.reader(fh))
    except (OSError, csv.Error) as e:
        raise DataError(f"{path}: cannot read CSV: {getattr(e, 'strerror', None) or e}") from None
    if not lines:
        raise DataError(f"{path}: empty file: not a formdigits CSV")
    header, rows = lines[0], [r for r in lines[1:] if r]
    bad = next((n for n, r in enumerate(rows, 2) if len(r) != len(header)), None)
    if bad is not None:
        raise DataError(f"{path}: line {bad} has not the header's {len(header)} cells: a damaged file?")
    return header, rows


def load_table(path: str | os.PathLike) -> Table:
    """A scan CSV (long format, as ``formdigits scan`` writes it); DataError naming the file otherwise."""
    path = Path(path)
    columns, rows = _read_csv(path)
    missing = [c for c in NEEDED if c not in columns]
    if missing:
        raise DataError(f"{path}: not a formdigits scan CSV (missing columns: {', '.join(missing)}; "
                        "review reads the long CSV of `formdigits scan`, not --format wide or jsonl)")  # fmt: skip
    if set(REVIEWED_COLUMNS) & set(columns):
        raise DataError(f"{path}: this is a reviewed file: give the scan's CSV (its reviewed file is found beside it)")
    return Table(path, columns, rows)


def items(table: Table, include_ok: bool = False) -> list[Item]:
    """The fields to check, lowest confidence first: every ``review`` row (and ``ok`` rows with ``include_ok``).

    ``error`` rows (a page that could not be read: no box) and ``empty`` rows are left out.
    """
    at = {c: table.columns.index(c) for c in table.columns}
    wanted = ("review", "ok") if include_ok else ("review",)
    out = []
    for n, cells in enumerate(table.rows):
        status = cells[at["status"]]
        if status not in wanted:
            continue
        try:
            box = tuple(int(cells[at[c]]) for c in ("x", "y", "w", "h"))
            page = int(cells[at["page"]])
            confidence = float(cells[at["confidence"]] or 0)
            digits = [float(p) for p in cells[at["digit_confidences"]].split()] if "digit_confidences" in at else []
        except ValueError:
            raise DataError(f"{table.path}: line {n + 2}: page, box or confidence is not a number") from None
        form = unquote(cells[at["form"]]) if "form" in at else ""
        out.append(Item(n, unquote(cells[at["file"]]), page, unquote(cells[at["field"]]), box,  # type: ignore[arg-type]
                        unquote(cells[at["value"]]), confidence, digits, status, unquote(cells[at["error"]]), form))  # fmt: skip
    return sorted(out, key=lambda it: (it.status == "ok", it.confidence, it.row))


def reason_kind(reason: str, status: str = "review") -> str:
    """The kind of a review reason: its first clause, up to a colon, without numbers."""
    if not reason:
        return "accepted" if status == "ok" else "low confidence"
    first = reason.split(";")[0].split(":")[0]
    return re.sub(r"\s+", " ", re.sub(r"[-+]?\d[\d.,]*", "", first)).strip(" ,.") or "other"


def select(found: Sequence[Item], forms: Sequence[str] = (), fields: Sequence[str] = (),
           reasons: Sequence[str] = ()) -> list[Item]:  # fmt: skip
    """The items of these forms, fields (names or numbers) and reason kinds (any of each given; all if none)."""
    return [it for it in found if (not forms or it.form in forms) and (not fields or it.field in fields)
            and (not reasons or it.kind in reasons or any(r in it.reason for r in reasons))]  # fmt: skip


def load_state(table: Table, path: str | os.PathLike | None = None) -> State:
    """The reviewed file of ``table`` (default: beside it), read back when it exists (a restart resumes)."""
    path = Path(path) if path is not None else reviewed_path(table.path)
    state = State(table, path, [Review() for _ in table.rows])
    if not path.exists():
        return state
    columns, rows = _read_csv(path)
    if columns != [*table.columns, *REVIEWED_COLUMNS] or len(rows) != len(table.rows):
        raise DataError(f"{path}: not the reviewed file of {table.path} (other columns or rows): move it away "
                        "to start the review afresh, or name another with --reviewed")  # fmt: skip
    n = len(table.columns)
    for i, (cells, mine) in enumerate(zip(rows, table.rows)):
        if cells[:n] != mine:
            raise DataError(f"{path}: line {i + 2} differs from {table.path}'s: it was made from another scan: "
                            "move it away to start the review afresh")  # fmt: skip
        value, status = cells[n:]
        if status not in ("", *REVIEWED_STATUSES):
            raise DataError(f"{path}: line {i + 2}: unknown reviewed_status {status!r}")
        state.reviews[i] = Review(value, status)
    return state


def decide(item: Item, action: str, typed: str = "") -> Review:
    """The review of ``item`` for ``action``: ``confirm`` the ``typed`` reading (``verified`` when it is the
    scan's value, ``corrected`` otherwise), ``illegible``, ``reject`` (no digit field), ``clear`` (not checked)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    if action == "confirm":
        if len(typed) > MAX_VALUE or not all(c in "0123456789" for c in typed):
            raise ValueError(f"a reading is up to {MAX_VALUE} digits 0-9, got {typed[:80]!r}")
        return Review(typed, "verified" if typed == item.value else "corrected")
    return Review("", {"illegible": "illegible", "reject": "rejected", "clear": ""}[action])


def reviewed_text(table: Table, reviews: Sequence[Review]) -> str:
    """The reviewed file's text (CSV, CRLF lines, as ``formdigits scan`` writes)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([*table.columns, *REVIEWED_COLUMNS])
    w.writerows([*cells, r.value, r.status] for cells, r in zip(table.rows, reviews))
    return out.getvalue()


def save(state: State) -> None:
    """Write the reviewed file atomically: a temporary file beside it, flushed to disk, renamed over it."""
    data = reviewed_text(state.table, state.reviews).encode("utf-8", "surrogateescape")
    folder = state.path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{state.path.name}.", suffix=".partial", dir=folder)
    except OSError as e:
        raise DataError(f"{state.path}: cannot write it: {e.strerror or e}") from None
    try:
        with open(fd, "wb") as fh:
            os.chmod(tmp, stat.S_IMODE(os.stat(state.table.path).st_mode))  # readable as the scan's CSV is
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, state.path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"{state.path}: cannot write it: {e.strerror or e}") from None


def record(state: State, item: Item, action: str, typed: str = "") -> Review:
    """Decide ``item`` and save the reviewed file at once (thread-safe); the review."""
    review = decide(item, action, typed)
    with state.lock:
        old = state.reviews[item.row]
        state.reviews[item.row] = review
        try:
            save(state)
        except DataError:
            state.reviews[item.row] = old
            raise
    return review


@contextmanager
def one_reviewer(state: State) -> Iterator[None]:
    """While inside, no other ``formdigits review`` serves the same reviewed file (they would overwrite each
    other's decisions): DataError at once if one does. An advisory lock on the scan CSV (read-only, never written)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(state.table.path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{state.table.path}: another `formdigits review` is serving it (open the URL it printed, "
                            "or stop it first)") from None  # fmt: skip
        except OSError:  # a file system without locks: go on without
            pass
        yield
