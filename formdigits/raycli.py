"""The command's parts for big runs: ``scan``'s engine options, the Ray run, and the ``merge`` command.

Light to import (click only): Ray, fsspec and pyarrow load only when a Ray run or a merge starts.
"""

import sys

import click

ENGINE_HELP = ("local: processes on this machine, rows into one file. ray: Ray Data, on the cluster at "
               "--ray-address or on a local Ray with this machine's cores; -o is a folder (or URL) of shards "
               "(part-NNNNNN.csv, or .parquet with --format parquet) and a manifest.json: join them with "
               "`formdigits merge`. Needs pip install \"formdigits[ray]\".")  # fmt: skip


def engine_options(f):
    """``--engine``, ``--ray-address``, ``--shard-size``, ``--gpus-per-actor`` (added to ``scan``)."""
    options = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help=ENGINE_HELP),
        click.option("--ray-address", metavar="ADDRESS", help="With --engine ray: the Ray cluster to run on (auto: "
                     "the one this machine belongs to; ray://HOST:10001) [default: start a local Ray]."),
        click.option("--shard-size", type=click.IntRange(1), default=100, show_default=True,
                     help="With --engine ray: input files per shard (a shard is written when all its pages are read)."),
        click.option("--gpus-per-actor", type=click.FloatRange(0), default=0, show_default=True,
                     help="With --engine ray: run the readers on GPUs, this many per actor (1: an actor per GPU); "
                          "0: on CPUs. Needs onnxruntime-gpu on the cluster's nodes."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def check_engine(engine, fmt, output, stdin_image, debug_dir, ray_address, gpus_per_actor):
    """Usage errors of the engine options, before anything is read."""
    if engine != "ray":
        if fmt == "parquet":
            raise click.UsageError("--format parquet writes shards: it needs --engine ray")
        if ray_address or gpus_per_actor:
            raise click.UsageError("--ray-address and --gpus-per-actor need --engine ray")
        return
    if fmt not in ("csv", "parquet"):
        raise click.UsageError("--engine ray writes CSV or Parquet shards: --format csv or parquet")
    if output == "-":
        raise click.UsageError("--engine ray writes a folder of shards: give -o FOLDER (or a URL such as s3://b/out/)")
    if stdin_image or debug_dir:
        raise click.UsageError("--stdin-image and --debug-dir are for the local engine, not --engine ray")


def expand_inputs(paths, recursive=False):
    """Files to scan: local paths as ``scan`` expands them; a URL of a folder (prefix) its image files, sorted
    (``recursive``: under it at any depth); a URL of a file as it is."""
    from .pages import IMAGE_SUFFIXES
    from .pipeline import expand_paths
    from .shards import filesystem, is_url

    out = []
    for p in paths:
        if not is_url(p):
            out.extend(expand_paths([p], recursive))
            continue
        fs, root = filesystem(p)
        try:
            if not fs.isdir(root):
                out.append(p)
                continue
            found = fs.find(root) if recursive else fs.ls(root, detail=False)
        except OSError as e:
            raise click.ClickException(f"{p}: cannot list it: {e}") from None
        files = sorted(f for f in found if any(str(f).lower().endswith(s) for s in IMAGE_SUFFIXES))
        out.extend(fs.unstrip_protocol(f) for f in files)
    return out


def read_url_names(url, null=False):
    """The names listed in the file at ``url`` (``--files-from s3://...``)."""
    from .inputs import split_names
    from .shards import filesystem

    fs, where = filesystem(url)
    try:
        return split_names(fs.cat_file(where), null)
    except OSError as e:
        raise click.UsageError(f"--files-from {url}: {e}") from None


def scan_on_ray(paths, files_from, null, recursive, output, fmt, resume, forms, ray_address, shard_size,
                gpus_per_actor, quiet, readers, min_confidence, pdf_dpi, **reader_options):  # fmt: skip
    """``scan --engine ray``: the readers loaded here first (a bad model fails before Ray starts), then the run;
    returns the :class:`~formdigits.batch.RunSummary`."""
    from collections import Counter

    from .batch import _Progress, load_readers
    from .classifier import check_providers
    from .distributed import Settings, run_ray_scan
    from .inputs import gather
    from .shards import is_url

    listed = []
    if files_from and is_url(files_from):
        listed, files_from = read_url_names(files_from, null), None
    files = expand_inputs(gather(list(paths), files_from, null) + listed, recursive)
    if not files:
        raise click.UsageError("no image files found in the given PATHS")
    names = list(dict.fromkeys(f.name for form in forms for f in form.fields)) or None
    model, strip_model = reader_options.get("model"), reader_options.get("strip_model")
    providers = check_providers(reader_options["providers"]) if reader_options.get("providers") else ()
    _, strips, _, _ = load_readers(model, strip_model, readers, "cpu", None, workers=0)  # checked before Ray starts
    settings = Settings(pdf_dpi, tuple(forms), strips.params if strips else None, min_confidence, model, strip_model,
                        readers, "cuda" if gpus_per_actor else "cpu", tuple(providers),
                        reader_options.get("batch_size", 256))  # fmt: skip
    say = None if quiet else (lambda text: click.echo(text, err=True))
    if say:
        say(f"formdigits: {len(files)} files on Ray ({ray_address or 'a local Ray'}), shards of {shard_size} files "
            f"into {output}")  # fmt: skip
    progress = _Progress(files, Counter(), quiet)
    try:
        return run_ray_scan(files, output, settings, fmt, resume, names, ray_address, shard_size,
                            num_gpus=gpus_per_actor, on_page=progress.page, say=say)  # fmt: skip
    finally:
        progress.bar.close()


@click.command()
@click.argument("folder")
@click.option("-o", "--output", default="-", show_default=True,
              help="CSV file (or URL) to write, or - for stdout. A file is written as OUTPUT.partial and renamed.")
def merge(folder, output):
    """Join the shards of a `scan --engine ray` run (FOLDER: its -o, a path or a URL) into one CSV.

    The rows come in input order, as one `formdigits scan` over the same files
    writes them (the same bytes). A run that is not complete is refused: finish
    it with `scan ... --resume` first.

    \b
    Examples:
      formdigits merge out/ -o all.csv
      formdigits merge s3://bucket/out/ -o all.csv
    """
    from .errors import FormdigitsError
    from .shards import merge as run

    try:
        written = run(folder, output)
    except FormdigitsError as e:
        raise click.ClickException(str(e)) from None
    if output != "-":
        click.echo(f"formdigits: {written} bytes written to {output}", err=True)
    sys.stdout.flush()
