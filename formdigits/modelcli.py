"""The model commands: ``train``, ``export`` and ``evaluate`` (registered by ``formdigits.cli``; Click only
until they run: torch and ONNX Runtime load inside them)."""

import json

import click

from .cliparams import library_errors


def _need_torch(command):

    try:
        import torch  # noqa: F401
    except ImportError:
        from .train.runs import missing_torch_message

        raise click.ClickException(missing_torch_message(command)) from None


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with the four MNIST IDX files "
              "[default: $FORMDIGITS_MNIST_DIR or a per-user cache folder; downloaded there if missing].")
@click.option("--extra-data", type=click.Path(exists=True, file_okay=False),
              help="Your own labelled crops to train on as well: DIR/<digit>/*.png (and DIR/reject/ for non-digits).")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False), help="Where the checkpoints, ONNX models, metrics "
              "and plots go [default: a new folder runs/<date>-<time>]. Models there are not overwritten without --force.")
@click.option("--reader", type=click.Choice(["digit", "strip", "both"]), default="both", show_default=True,
              help="Which model to train: digit (the cutting reader's digit CNN), strip (the sequence reader, "
                   "a CRNN trained with CTC on digit strings composed from MNIST train digits), or both.")
@click.option("--finetune", is_flag=True, help="Digit CNN only: start from the shipped model and fine-tune it on "
              "--extra-data (needed) mixed with a replay sample of MNIST, BatchNorm frozen; defaults then: "
              "--epochs 3, --lr 3e-4, --limit 6000. The sequence reader is not fine-tuned (see --init).")
@click.option("--epochs", type=click.IntRange(1), help="Digit CNN: epochs [default: 40].")
@click.option("--steps", default=6000, show_default=True, type=click.IntRange(1),
              help="Sequence reader: training steps of 64 composed strings.")
@click.option("--init", type=click.Path(dir_okay=False, exists=True),
              help="Sequence reader: start from this strip-checkpoint.pt's weights, with a new schedule (fine-tuning).")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1), help="Digit CNN: batch size.")
@click.option("--lr", type=click.FloatRange(0, min_open=True),
              help="Peak learning rate [default: 3e-3 for the digit CNN, 2e-3 for the sequence reader].")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True,
              help="auto: CUDA when PyTorch sees a GPU (mixed precision), else CPU.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--val-size", default=1000, show_default=True, type=click.IntRange(100),
              help="Last N training digits held out for the validation curve and calibration.")
@click.option("--limit", type=click.IntRange(0), help="Train on the first N digits only (quick runs) [default: all].")
@click.option("--test-limit", default=0, type=click.IntRange(0), help="Report on the first N test digits only.")
@click.option("--workers", default=-1, type=click.IntRange(-1), help="Data-loading processes [default: by machine].")
@click.option("--download/--no-download", default=True, show_default=True,
              help="Fetch MNIST from the public mirrors (checksums verified) when it is not in the data folder.")
@click.option("--resume", is_flag=True, help="Continue from OUT_DIR/checkpoint.pt with its saved settings (needs -o).")
@click.option("--force", is_flag=True, help="Overwrite the models already in OUT_DIR.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@library_errors
def train(data_dir, extra_data, out_dir, reader, finetune, epochs, steps, init, batch_size, lr, device, seed, val_size,
          limit, test_limit, workers, download, resume, force, quiet):  # fmt: skip
    """Train the two readers' models and export them to ONNX (CUDA when PyTorch sees a GPU).

    \b
    The digit CNN (MNIST redrawn as scanned form crops) writes into OUT_DIR:
    checkpoint.pt, formdigits.onnx, formdigits-int8.onnx (its int8 twin, which
    the scanner runs on CPUs), metrics.json, curves.png and confusion.png.
    The sequence reader (digit strings composed from MNIST train digits, widely
    randomised: spacing, pens, slant, separators, marks, scan kinds) writes
    strip-checkpoint.pt, strip-reader.onnx and strip-metrics.json; it takes
    about an hour on two CPU cores at the default --steps.
    """
    from .train.runs import run_folder

    if finetune and (reader == "strip" or not extra_data):
        raise click.UsageError("--finetune fine-tunes the digit CNN on --extra-data DIR: give it, not --reader strip")
    reader = "digit" if finetune else reader
    out_dir = run_folder(out_dir, reader, resume, force)
    _need_torch("train")
    if reader in ("digit", "both"):
        from .train.finetune import train_config
        from .train.loop import train as run

        config = train_config(finetune, epochs=epochs, lr=lr, limit=limit, batch_size=batch_size, device=device,
                              seed=seed, val_size=val_size, test_limit=test_limit, workers=workers)  # fmt: skip
        metrics = run(out_dir, data_dir, extra_data, config, resume=resume, download=download, progress=not quiet)
        click.echo(f"test accuracy {metrics['test_accuracy']:.2%} on {metrics['test_n']} MNIST test digits; "
                   f"non-digits rejected {metrics['nondigit_rejected']:.1%}; model: {out_dir}/formdigits.onnx",
                   err=True)  # fmt: skip
    if reader in ("strip", "both"):
        from .train.seqloop import StripTrainConfig, train_strips

        config = StripTrainConfig(steps=steps, device=device, seed=seed, workers=workers, init=init or "")
        config.lr = lr or config.lr
        metrics = train_strips(out_dir, data_dir, config, resume=resume, download=download, progress=not quiet)
        click.echo(f"held-back strings read exactly {metrics['string_accuracy']:.2%} ({metrics['strings']} strings, "
                   f"digits {metrics['digit_accuracy']:.2%}); model: {out_dir}/strip-reader.onnx", err=True)  # fmt: skip


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="formdigits.onnx", show_default=True, type=click.Path(dir_okay=False),
              help="ONNX file to write.")
@click.option("--int8/--no-int8", default=True, show_default=True,
              help="Also write an int8 copy beside it (NAME-int8.onnx), calibrated on the checkpoint's "
                   "held-out MNIST training digits; the scanner runs it on the CPU, ~2x faster.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Folder with the MNIST IDX files, for --int8 [default: $FORMDIGITS_MNIST_DIR or the cache folder].")
@library_errors
def export(checkpoint, output, int8, data_dir):
    """Export a training CHECKPOINT to an ONNX model the scanner can use.

    The model's metadata carries its labels, preprocessing parameters and the
    metrics.json found beside the checkpoint.
    """
    _need_torch("export")
    from .train.export import export_checkpoint, quantize_export

    export_checkpoint(checkpoint, output)
    click.echo(f"wrote {output}", err=True)
    if int8:
        click.echo(f"wrote {quantize_export(checkpoint, output, data_dir)}", err=True)


@click.command()
@click.option("--model", type=click.Path(dir_okay=False),
              help="ONNX model [default: the shipped model, its int8 twin on the CPU].")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Folder with the MNIST IDX files [default: $FORMDIGITS_MNIST_DIR or the cache folder].")
@click.option("--limit", default=0, type=click.IntRange(0), help="Use the first N test digits only.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@library_errors
def evaluate(model, data_dir, limit, device, as_json):
    """Accuracy of an exported ONNX model, run by ONNX Runtime, on the MNIST test set.

    Also reports how many generated non-digit crops (letters, ticks, specks,
    box-line remnants) the model rejects.
    """
    from .evaluate import evaluate as run, report_lines

    r = run(model, data_dir, limit=limit, device=device)
    click.echo(json.dumps(r) if as_json else "\n".join(report_lines(r)))
