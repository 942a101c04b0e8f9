"""The scan command's Click parameter types and the checks on its options made before any page is read."""

import functools
import math
from pathlib import Path

import click

from .errors import FormdigitsError, UsageError


class Device(click.ParamType):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (a GPU by index)."""

    name = "auto|cpu|cuda|cuda:N"

    def convert(self, value, param, ctx):
        from .classifier import check_device

        try:
            return check_device(value)
        except ValueError:
            self.fail(f"{value!r} is not auto, cpu, cuda or cuda:N (N: the GPU's index)", param, ctx)


class PdfDpi(click.ParamType):
    """``auto`` or a whole resolution in ``pages.PDF_DPI_RANGE`` (50 to 1200 dpi)."""

    name = "auto|DPI"

    def convert(self, value, param, ctx):
        from .pages import PDF_DPI_RANGE, check_pdf_dpi

        try:
            return check_pdf_dpi(int(value) if str(value).isdigit() else value)
        except ValueError:
            self.fail(f"{value!r} is not 'auto' or a number from {PDF_DPI_RANGE[0]} to {PDF_DPI_RANGE[1]}", param, ctx)


def check_scan_options(output, min_confidence, page_timeout, summary_json=None):
    """Usage errors that would otherwise show only after the pages were read (or as a traceback)."""
    if output == "-" and summary_json == "-":
        raise click.UsageError("--summary-json - and -o - cannot both write to stdout: give -o FILE")
    if math.isnan(min_confidence):
        raise click.BadParameter("must be a number from 0 to 1, not nan", param_hint="--min-confidence")
    if not math.isfinite(page_timeout):
        raise click.BadParameter(f"must be a finite number of seconds, not {page_timeout}", param_hint="--page-timeout")
    for hint, where in (("-o", output), ("--summary-json", summary_json)):
        if where not in (None, "-"):
            if Path(where).is_dir():
                raise click.BadParameter(f"{where} is a folder: give the file to write", param_hint=hint)
            if not Path(where).parent.is_dir():
                raise click.BadParameter(f"the folder {Path(where).parent} does not exist", param_hint=hint)


def write_summary(summary, where):
    """``summary`` as one JSON object into the file ``where`` (``-``: stdout)."""
    if where == "-":
        click.echo(summary.to_json())
        return
    try:
        Path(where).write_text(summary.to_json() + "\n", encoding="utf-8")
    except OSError as e:
        raise click.ClickException(f"{where}: cannot write the summary: {e.strerror or e}") from None


def library_errors(f):
    """Turn a FormdigitsError into click's one-line error, exit code 1 (2 for a UsageError)."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except UsageError as e:
            raise click.UsageError(str(e)) from None
        except FormdigitsError as e:
            raise click.ClickException(str(e)) from None

    return wrapper
