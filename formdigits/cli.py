"""The ``formdigits`` command: a thin Click layer over the library.

Library errors (:class:`formdigits.errors.FormdigitsError`) become one-line
messages with exit code 1; usage errors (:class:`formdigits.errors.UsageError` too) exit with 2.
"""

import json
import sys
from contextlib import ExitStack

import click

from . import __version__
from .cliparams import Device, PdfDpi, check_scan_options, library_errors, write_summary
from .options import DEFAULT_PAGE_TIMEOUT, FAMILIES
from .raycli import engine_options, merge


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="formdigits")
def main():
    """Read handwritten digits from boxes on scanned forms into CSV.

    \b
    Read forms (CSV on stdout, or -o FILE):
      formdigits scan forms/*.png -o out.csv
      find scans -name '*.tif' | formdigits scan - --format jsonl

    \b
    Train the two readers' models and check the digit model:
      formdigits train                             # runs/<date>-<time>/formdigits.onnx, strip-reader.onnx
      formdigits evaluate --model export/formdigits.onnx --json
    """


@main.command()
@click.argument("paths", nargs=-1)
@click.option("-o", "--output", default="-", show_default=True, help="CSV/JSONL file to write, or - for stdout. "
              "A file is written as OUTPUT.partial and renamed when the run completes.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "wide", "parquet"]), default="csv",
              show_default=True, help="csv: one row per field; jsonl: the same as JSON Lines; wide: one row per page, "
              "a column per template field (needs --template); parquet: shards of --engine ray as Parquet.")
@click.option("-t", "--template", "templates", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Read exactly the fields of this form template (from `formdigits template`), named and checked "
                   "against its rules. Repeat for several forms: each page gets the one it matches best.")
@click.option("-r", "--recursive", is_flag=True, help="Scan folders given as PATHS recursively.")
@click.option("--files-from", metavar="FILE", help="Also scan the paths listed in FILE (- for stdin), one per line.")
@click.option("-0", "--null", is_flag=True, help="Paths listed by --files-from or - are separated by NUL bytes "
              "(find -print0), so names may hold newlines.")
@click.option("--stdin-image", is_flag=True, help="- among PATHS is one image file's bytes on stdin (any supported "
              "format, multi-page TIFF/PDF too); its rows' file is <stdin>.")
@click.option("--model", type=click.Path(dir_okay=False),
              help="Exported ONNX model [default: the shipped model, its int8 twin on the CPU].")
@click.option("--readers", type=click.Choice(["both", "cut"]), default="both", show_default=True,
              help="both: every field is read by the cutting reader (digit by digit) and the sequence reader "
                   "(the whole field at once); a field is accepted only when they agree. cut: the cutting reader "
                   "alone (faster, less sure).")
@click.option("--strip-model", type=click.Path(dir_okay=False),
              help="Exported sequence reader (ONNX) [default: the shipped one].")
@click.option("--device", type=Device(), default="auto", show_default=True,
              help="auto: CUDA when onnxruntime-gpu and a GPU are present, else CPU; cuda:N: GPU number N.")
@click.option("--providers", metavar="NAME[,NAME]", help="ONNX Runtime execution providers to use, in order, "
              "instead of --device (e.g. OpenVINOExecutionProvider); the CPU's is added last.")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1), help="Digits per inference batch.")
@click.option("--min-confidence", default=0.9, show_default=True, type=click.FloatRange(0, 1),
              help="Fields whose confidence is lower get status 'review'. With both readers: how sure a reading "
                   "is that both gave; with the cutting reader alone: the product of its digits' probabilities "
                   "(0 with a mark that is not a digit or ink left out).")
@click.option("--pdf-dpi", default="auto", show_default=True, type=PdfDpi(),
              help="Resolution at which PDF pages are rendered; auto: the resolution of the scan inside each page "
                   "(300 for pages without one).")
@click.option("-j", "--jobs", "--workers", "jobs", type=click.IntRange(0), default=None,
              help="Processes that read and analyse pages; 0: all in this process [default: one per CPU core].")
@click.option("--page-timeout", type=click.FloatRange(min=1), default=DEFAULT_PAGE_TIMEOUT, show_default=True,
              help="Seconds one page may take (with workers) before it is given up as an error row.")
@click.option("--debug-dir", type=click.Path(file_okay=False),
              help="Write a picture per page with every field outlined, labelled and coloured by status.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run: keep the pages already in "
              "OUTPUT.partial and read only the rest.")
@click.option("--summary-json", metavar="FILE", help="Write the run's summary as one JSON object to FILE (- for "
              "stdout, with -o FILE), also when pages failed or the run was interrupted.")
@click.option("--list-review", is_flag=True, help="At the end, list the fields sent to review on stderr "
              "(the first 50).")
@click.option("-v", "--verbose", count=True, help="Log each page on stderr; -vv: and the decisions on it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, device line or summary.")
@engine_options
@library_errors
def scan(paths, output, fmt, templates, recursive, files_from, null, stdin_image, model, readers, strip_model, device,
         providers, batch_size, min_confidence, pdf_dpi, jobs, page_timeout, debug_dir, resume, summary_json,
         list_review, verbose, quiet, engine, ray_address, shard_size, gpus_per_actor):  # fmt: skip
    """Read the handwritten digits in the boxes of scanned forms into CSV.

    PATHS are image files (PNG, JPEG, BMP, TIFF incl. multi-page, PDF),
    folders (their image files; -r for subfolders), or - to read paths from
    stdin, one per line (files or folders, taken literally: no globbing;
    -0: NUL-separated), or with --stdin-image an image's bytes.

    \b
    One row per field, in reading order:
      file,page,field,x,y,w,h,value,confidence,digit_confidences,status,error
    status is ok, review (check it by hand), empty or error (page unreadable).
    Exit code 0 when every page was read, 1 when some page failed (every
    other page is still read and written), 130 when interrupted (Ctrl-C),
    143 when terminated (SIGTERM).

    Pages scanned on their side or upside down are turned and read. Pages
    over 150 Mpixel are refused before decoding.

    \b
    Examples:
      formdigits scan forms/*.png -o out.csv
      find scans -name '*.tif' -print0 | formdigits scan -0 - -o out.csv
      formdigits scan - -o out.csv --resume < list.txt   # after a crash or Ctrl-C
      formdigits scan scans/ -t census.json --format wide -o forms.csv
      curl -s URL/page.png | formdigits scan --stdin-image - --summary-json run.json
      formdigits scan s3://bucket/scans/ --engine ray -o s3://bucket/out/   # shards
    """
    from .batch import load_readers, log_to_stderr, run_scan
    from .inputs import gather, stdin_image as reading_stdin
    from .pipeline import expand_paths
    from .raycli import check_engine, scan_on_ray
    from .template import TemplateError, load as load_template

    check_engine(engine, fmt, output, stdin_image, debug_dir, ray_address, gpus_per_actor)
    check_scan_options("-" if engine == "ray" else output, min_confidence, page_timeout, summary_json)
    if fmt == "wide" and not templates:
        raise click.UsageError("--format wide needs --template: the columns are the template's field names")
    if not paths and not files_from:
        raise click.UsageError("give PATHS to scan, or --files-from FILE")
    if stdin_image and (files_from == "-" or resume):
        raise click.UsageError("--stdin-image reads stdin once: not with --files-from - or --resume")
    try:
        forms = [load_template(t) for t in templates]
    except TemplateError as e:
        raise click.BadParameter(str(e), param_hint="--template") from None
    if engine == "ray":
        summary = scan_on_ray(paths, files_from, null, recursive, output, fmt, resume, forms, ray_address, shard_size,
                              gpus_per_actor, quiet, readers, min_confidence, pdf_dpi, model=model,
                              strip_model=strip_model, providers=providers, batch_size=batch_size)  # fmt: skip
    else:
        with ExitStack() as stack:
            paths, rename = stack.enter_context(reading_stdin(list(paths))) if stdin_image else (list(paths), {})
            files = expand_paths(gather(paths, files_from, null), recursive)
            if not files:
                raise click.UsageError("no image files found in the given PATHS")
            names = list(dict.fromkeys(f.name for form in forms for f in form.fields)) or None
            clf, strips, jobs, line = load_readers(model, strip_model, readers, device, providers, batch_size, jobs)
            if not quiet:
                click.echo(line, err=True)
            stack.enter_context(log_to_stderr(verbose))
            say = lambda text: click.echo(text, err=True)  # noqa: E731
            summary = run_scan(files, output, fmt, resume, names, quiet=quiet, say=say, debug_dir=debug_dir,
                               rename=rename, classifier=clf, min_confidence=min_confidence, pdf_dpi=pdf_dpi,
                               workers=jobs, page_timeout=page_timeout, templates=forms, readers=readers,
                               strip_reader=strips)  # fmt: skip
    for text in summary.lines(quiet) + (summary.review_lines() if list_review else []):
        click.echo(text, err=True)
    if summary_json:
        write_summary(summary, summary_json)
    if summary.exit_code:
        sys.exit(summary.exit_code)


@main.command()
@click.argument("page", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Template JSON file to write.")
@click.option("--page-number", default=1, show_default=True, type=click.IntRange(1), help="Page of a multi-page file.")
@click.option("--name", help="The form's name (the `form` column of scans) [default: the output file's name].")
@click.option("--preview", type=click.Path(dir_okay=False), help="Draw the page with each field's name into this PNG.")
@click.option("--pdf-dpi", default="auto", show_default=True, type=PdfDpi(), help="As for scan.")
@library_errors
def template(page, output, page_number, name, preview, pdf_dpi):
    """Make a form template from a scan of the form (blank or filled in).

    Every box found becomes a field named f1, f2, ... in reading order, with
    its box, its kind (comb with its number of cells, or open) and no rules.
    Open the JSON to rename fields ("account", "amount") and add rules, then
    scan with --template. --preview shows which name is which box.

    \b
    Rules, per field, all optional:
      "digits": 6 or [4, 8]    number of digits
      "min": 1, "max": 9999    value range
      "pattern": "0[0-9]+"     regular expression the whole value must match
      "check": "luhn"|"mod11"  check digit
    A value that breaks a rule is sent to review with the rule named.
    """
    from pathlib import Path

    from .layout import analyze
    from .pages import read_page
    from .template import from_layout, preview as draw_preview, save

    layout = analyze(read_page(page, page_number, pdf_dpi).image)
    if not layout.boxes:
        raise click.ClickException(f"{page}: no boxes found on page {page_number}: is it a form?")
    t = from_layout(layout, name or Path(output).stem)
    save(t, output)
    if preview:
        draw_preview(t, layout.darkness, preview)
    click.echo(f"formdigits: {len(t.fields)} fields ({sum(f.kind == 'comb' for f in t.fields)} comb, "
               f"{sum(f.kind == 'open' for f in t.fields)} open) written to {output}", err=True)  # fmt: skip


@main.command()
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False))
@click.argument("truth", type=click.Path(exists=True, dir_okay=False))
@click.option("--reject", default="0,0.01,0.02,0.05,0.1", show_default=True,
              help="Reject rates at which to report the field error, comma-separated fractions.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the error-reject curve into this PNG.")
@library_errors
def score(predictions, truth, reject, as_json, plot):
    """Score a scan's PREDICTIONS.csv against TRUTH.csv.

    Fields are matched by position (a predicted box's centre inside a truth
    box). Reports field accuracy, digit accuracy (edit distance), and the
    three figures staff are planned by: the share of fields accepted without
    review (status ok or empty), the error among them, and the fields missed
    (no row at all); then spurious fields and the field error after rejecting
    the least confident fields (the error-reject curve; --plot marks the
    scan's own operating point on it).
    """
    from .score import curve, plot_curve, read_rows, score as run

    try:
        rates = [float(r) for r in reject.split(",") if r.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {reject!r}", param_hint="--reject") from None
    if any(not 0 <= r <= 1 for r in rates):
        raise click.BadParameter("reject rates are fractions between 0 and 1", param_hint="--reject")
    pred_rows, truth_rows = read_rows(predictions), read_rows(truth)
    if pred_rows and not {"confidence", "status"} & set(pred_rows[0]):
        raise click.UsageError(f"{predictions} has no confidence or status column: it looks like a truth file. "
                               "Give the scan's CSV first, then the truth: formdigits score out.csv truth.csv")  # fmt: skip
    r = run(pred_rows, truth_rows, rates)
    if plot:
        points, operating = curve(pred_rows, truth_rows)
        plot_curve(points, plot, operating=operating)
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"fields {r['fields']}: field accuracy {r['field_accuracy']:.2%}, digit accuracy "
               f"{r['digit_accuracy']:.2%} ({r['digits']} digits)")
    click.echo(f"accepted without review {r['accepted']:.2%} of fields, wrong among accepted "
               f"{r['error_of_accepted']:.2%}, missed {r['missed']} (review {r['review']}, spurious {r['spurious']})")
    click.echo("field error at reject rate: " + ", ".join(
        f"{float(k):.0%}: {v:.2%}" for k, v in r["error_at_reject"].items()))


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("-n", "--pages", default=10, show_default=True, type=click.IntRange(1), help="Pages to make.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--style", type=click.Choice(["clean", "realistic", "skewed", "fax", "varied"]), default="realistic",
              show_default=True, help="Preset of realism knobs (see formdigits.synth.STYLE_PRESETS); varied draws "
              "separators, spacing, pens, resolution and scan kind per field or page, the held-out kinds left out.")
@click.option("--separators", type=click.Choice(("random",) + FAMILIES["separators"]),
              help="Comb separators of every comb field (overrides the style's).")
@click.option("--spacing", type=click.Choice(("random",) + FAMILIES["spacing"]),
              help="Spacing of the digits in every open field (overrides the style's). crowded is the held-out family.")
@click.option("--pen", type=click.Choice(("random",) + FAMILIES["pen"]), help="Pen of every digit (overrides the style's).")
@click.option("--formats", default="png", show_default=True,
              help="Comma-separated file formats to cycle through: png, jpg, bmp, tif, pdf.")
@click.option("--pages-per-file", default=1, show_default=True, type=click.IntRange(1),
              help="Pages in each multi-page file (tif, pdf).")
@click.option("--dpi", type=click.IntRange(72, 600), help="Override the style's resolution.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="MNIST folder [default: $FORMDIGITS_MNIST_DIR or cache].")
@library_errors
def synth(out_dir, pages, seed, style, separators, spacing, pen, formats, pages_per_file, dpi, data_dir):
    """Make synthetic scanned forms with known answers (OUT_DIR/truth.csv).

    Handwriting comes from the MNIST *test* digits, so a model trained on the
    MNIST training set never saw it. Same seed, same pages.
    """
    from .mnist import load_mnist
    from .synth import DigitSource, generate

    fmts = tuple(f.strip().lower().lstrip(".") for f in formats.split(",") if f.strip())
    bad = [f for f in fmts if f not in ("png", "jpg", "jpeg", "bmp", "tif", "tiff", "pdf")]
    if bad or not fmts:
        raise click.BadParameter(f"unsupported format(s): {', '.join(bad) or formats!r}", param_hint="--formats")
    overrides = {"dpi": dpi, "dpi_choices": ()} if dpi else {}
    overrides.update({k: v for k, v in (("separators", separators), ("spacing", spacing), ("pen", pen)) if v})
    rows = generate(out_dir, pages, seed, DigitSource(*load_mnist("test", data_dir)), style, fmts, pages_per_file,
                    **overrides)  # fmt: skip
    click.echo(f"wrote {pages} pages with {len(rows)} fields to {out_dir} (truth in {out_dir}/truth.csv)", err=True)


from .modelcli import evaluate, export, train  # noqa: E402  (imports Click only: torch loads when they run)
from .review.command import review  # noqa: E402  (imports Click only: the web layer loads when the command runs)

main.add_command(review)
main.add_command(merge)
for command in (train, export, evaluate):
    main.add_command(command)

if __name__ == "__main__":
    sys.exit(main())
