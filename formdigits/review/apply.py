"""The final CSV: the scan's rows with what the people who checked them decided.

A checked field (``verified`` or ``corrected``) gets the person's value, status
``ok`` (``empty`` for a field confirmed blank), confidence 1 and an empty error;
an ``illegible`` one status ``review`` with no value and the error
``illegible (checked in review)``; a ``rejected`` one (no digit field) status
``empty`` with no value and the error ``not a digit field (checked in review)``.
Rows not checked, and error rows, are written as the scan wrote them.
"""

import os
from collections.abc import Iterator

from ..errors import DataError
from ..output import Row, open_output, unquote
from .queue import Review, Table, load_state, load_table


def _row(table: Table, cells: list[str]) -> Row:
    get = {c: unquote(v) for c, v in zip(table.columns, cells)}
    status = get["status"]
    try:
        field: int | str = int(get["field"]) if get["field"].isdigit() and "form" not in get else get["field"]
        x, y, w, h = (int(get[c] or 0) for c in ("x", "y", "w", "h"))
        return Row(get["file"], int(get["page"]), field, x, y, w, h, value=get["value"], confidence=float(get["confidence"] or 0),
                   digit_confidences=[float(p) for p in get.get("digit_confidences", "").split()], status=status,
                   error=get["error"], form=get.get("form", ""))  # fmt: skip
    except ValueError:
        raise DataError(f"{table.path}: a row with a page, box or confidence that is not a number") from None


def reviewed_row(row: Row, review: Review) -> Row:
    """``row`` as the person's ``review`` leaves it (see the module's docstring)."""
    if row.status == "error" or not review.status:
        return row
    if review.status in ("verified", "corrected"):
        value = review.value
        return Row(row.file, row.page, row.field, row.x, row.y, row.w, row.h, value, 1.0, [1.0] * len(value),
                   "ok" if value else "empty", "", row.kind, row.form)  # fmt: skip
    error = "illegible (checked in review)" if review.status == "illegible" else "not a digit field (checked in review)"
    return Row(row.file, row.page, row.field, row.x, row.y, row.w, row.h, "", 0.0, [],
               "review" if review.status == "illegible" else "empty", error, row.kind, row.form)  # fmt: skip


def final_rows(scan_csv: str | os.PathLike, reviewed_csv: str | os.PathLike) -> Iterator[list[Row]]:
    """The final rows, a list per page run (as the scan wrote them), from the scan CSV and its reviewed file."""
    table = load_table(scan_csv)
    if not os.path.isfile(reviewed_csv):
        raise DataError(f"{reviewed_csv}: no such reviewed file (review the queue first: formdigits review {scan_csv})")
    state = load_state(table, reviewed_csv)
    page: list[Row] = []
    for cells, review in zip(table.rows, state.reviews):
        row = reviewed_row(_row(table, cells), review)
        if page and (page[-1].file, page[-1].page) != (row.file, row.page):
            yield page
            page = []
        page.append(row)
    if page:
        yield page


def apply(scan_csv: str | os.PathLike, reviewed_csv: str | os.PathLike, output: str | os.PathLike = "-",
          fmt: str = "csv") -> dict[str, int]:  # fmt: skip
    """Write the final CSV (``fmt``: csv, jsonl or wide) to ``output`` (``-``: stdout); rows by final status."""
    table = load_table(scan_csv)
    names = None
    if "form" in table.columns:
        at = table.columns.index("form")
        names = list(dict.fromkeys(unquote(c[table.columns.index("field")]) for c in table.rows if c[at]))
    if fmt == "wide" and not names:
        raise DataError(f"{scan_csv}: --format wide needs a scan made with --template (field names): this one has none")
    counts: dict[str, int] = {}
    with open_output(output, fmt, names=names) as writer:
        for rows in final_rows(scan_csv, reviewed_csv):
            writer.write_page(rows)
            for r in rows:
                counts[r.status] = counts.get(r.status, 0) + 1
    return counts
