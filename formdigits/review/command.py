"""The ``formdigits review`` command (registered by ``formdigits.cli``; imports only Click until it runs)."""

import os
import sys
from pathlib import Path

import click

from ..cliparams import PdfDpi, library_errors


@click.command()
@click.argument("scan_csv", type=click.Path(exists=True, dir_okay=False))
@click.option("--all", "include_ok", is_flag=True, help="Queue the ok fields too, after the review ones.")
@click.option("--form", "forms", multiple=True, metavar="NAME", help="Only this form's fields (repeatable).")
@click.option("--field", "fields", multiple=True, metavar="NAME", help="Only this field (its name, or its number "
              "on the page without a template; repeatable).")
@click.option("--reason", "reasons", multiple=True, metavar="TEXT", help="Only fields sent to review for this reason, "
              "e.g. 'readers disagree', 'low confidence', a rule (repeatable).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write a self-contained page (images "
              "embedded) to this file instead of serving: its state stays in the browser; its button downloads "
              "the reviewed file.")
@click.option("--reviewed", type=click.Path(dir_okay=False), help="The reviewed file: corrections are saved there "
              "as they are made, and a restart resumes from it [default: SCAN.reviewed.csv beside SCAN_CSV].")
@click.option("--apply", "apply_from", type=click.Path(exists=True, dir_okay=False), metavar="REVIEWED",
              help="Write the final CSV from SCAN_CSV and this reviewed file (to -o).")
@click.option("-o", "--output", default="-", show_default=True, help="With --apply: the final CSV, or - for stdout.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "wide"]), default="csv", show_default=True,
              help="With --apply: as for scan (wide: one row per page, for a scan made with --template).")
@click.option("--export-crops", type=click.Path(file_okay=False), metavar="DIR", help="Write each verified or "
              "corrected digit as a labelled crop, DIR/<digit>/*.png (DIR/reject/: no digit), for "
              "`formdigits train --extra-data DIR`.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 [default: a free one].")
@click.option("--no-browser", is_flag=True, help="Print the URL; do not open a browser.")
@click.option("--model", type=click.Path(dir_okay=False), help="As for scan: give the scan's, so the digit cuts "
              "shown are the ones its values came from.")
@click.option("--strip-model", type=click.Path(dir_okay=False), help="As for scan.")
@click.option("--readers", type=click.Choice(["both", "cut"]), default="both", show_default=True, help="As for scan.")
@click.option("--pdf-dpi", default="auto", show_default=True, type=PdfDpi(), help="As for scan.")
@library_errors
def review(scan_csv, include_ok, forms, fields, reasons, html_out, reviewed, apply_from, output, fmt, export_crops,
           port, no_browser, model, strip_model, readers, pdf_dpi):  # fmt: skip
    """Check the fields a scan sent to review, in the browser, at typing speed.

    Serves the queue of SCAN_CSV's review fields (lowest confidence first) on
    127.0.0.1 and opens the browser: each field's image as scanned, the
    reader's digit cuts, the reading in a text box. Keys: digits to correct,
    Enter to confirm, Esc to skip, I illegible, X not a digit field, U uncheck,
    Up/Down to move. Each decision is saved at once to SCAN.reviewed.csv (the
    scan's columns plus reviewed_value and reviewed_status); a restart resumes
    there. SCAN_CSV is never modified.

    \b
    Examples:
      formdigits review out.csv                      # serve, open the browser
      formdigits review out.csv --html queue.html    # a page to mail: no server
      formdigits review out.csv --apply out.reviewed.csv -o final.csv
      formdigits review out.csv --export-crops fixes/ && formdigits train --extra-data fixes/ --finetune

    \b
    The final CSV: checked fields get the typed value, status ok, confidence 1;
    illegible ones status review, rejected ones (no digit field) status empty.
    """
    if (output != "-" or fmt != "csv") and not apply_from:
        raise click.UsageError("-o and --format go with --apply (the final CSV)")
    if apply_from and html_out:
        raise click.UsageError("--apply writes the final CSV; --html a page to review: one at a time")
    if apply_from or export_crops:
        _finish(scan_csv, apply_from, reviewed, output, fmt, export_crops, (model, strip_model, readers))
        return
    from .queue import items, load_state, load_table, select
    from .views import Views

    table = load_table(scan_csv)
    state = load_state(table, reviewed)
    queue = select(items(table, include_ok), forms, fields, reasons)
    if not queue:
        click.echo(f"formdigits: nothing to review in {scan_csv}" + (" with these filters" if forms or fields or
                   reasons else f" (no review rows{'' if include_ok else '; --all queues the ok ones'})"), err=True)  # fmt: skip
        return
    base = Path(scan_csv).resolve().parent
    _warn_missing(queue, base)
    views = Views(base, _readers(model, strip_model, readers), pdf_dpi)
    if html_out:
        _write_html(state, queue, views, html_out, scan_csv)
        return
    from .queue import one_reviewer
    from .server import ReviewApp, serve

    folder = state.path.resolve().parent
    if not os.access(folder, os.W_OK) or (state.path.exists() and not os.access(state.path, os.W_OK)):
        raise click.ClickException(f"{state.path}: cannot write the reviewed file there: give --reviewed FILE")

    with one_reviewer(state):
        serve(ReviewApp(state, queue, views), port, open_browser=not no_browser, say=lambda t: click.echo(t, err=True))


def _warn_missing(queue, base):
    from .views import resolve

    missing = sorted({it.file for it in queue if not resolve(it.file, base).is_file()})
    if missing:
        click.echo(f"formdigits: warning: {len(missing)} page file(s) not found, e.g. {missing[0]!r} (names are taken "
                   "from the working folder, then from the CSV's): their fields show no image; run review where the "
                   "scan ran", err=True)  # fmt: skip


def _readers(model, strip_model, readers):
    """The scan's models, loaded now (a bad model file is an error before the page opens)."""
    from ..batch import load_readers

    clf, strips, _, _ = load_readers(model, strip_model, readers, workers=0)
    return clf, strips


def _write_html(state, queue, views, html_out, scan_csv):
    from .page import static_config, write_static
    from .views import page_href

    payloads, hrefs = {}, {}
    with click.progressbar(queue, label="formdigits: reading the fields", file=sys.stderr) as bar:
        for it in bar:
            payloads[it.row] = views.payload(it)
            hrefs[it.row] = page_href(it.file, views.base, html_out)
    views.close()
    write_static(html_out, static_config(state, queue, payloads, hrefs))
    click.echo(f"formdigits: {len(queue)} fields to review in {html_out}: open it in a browser; its button "
               f"downloads {state.path.name}; then: formdigits review {scan_csv} --apply {state.path.name} "
               "-o final.csv", err=True)  # fmt: skip


def _finish(scan_csv, apply_from, reviewed, output, fmt, export_crops, models):
    """--apply and --export-crops: the final CSV, the labelled crops."""
    from .queue import reviewed_path

    source = apply_from or reviewed or reviewed_path(scan_csv)
    if apply_from:
        from .apply import apply

        counts = apply(scan_csv, apply_from, output, fmt)
        where = "stdout" if output == "-" else output
        click.echo(f"formdigits: final rows written to {where}: " + ", ".join(f"{n} {s}" for s, n in
                   sorted(counts.items())), err=True)  # fmt: skip
    if export_crops:
        if not Path(source).is_file():
            raise click.ClickException(f"{source}: no reviewed file: review first (formdigits review {scan_csv})")
        try:
            from .. import corrections
        except ImportError:
            raise click.ClickException("--export-crops needs formdigits.corrections (not in this version)") from None
        clf, strips = _readers(*models)
        result = corrections.export_crops(source, export_crops, classifier=clf, strips=strips)
        told = corrections.summary(result) if hasattr(corrections, "summary") else result
        click.echo(f"formdigits: {export_crops}: {told}", err=True)
