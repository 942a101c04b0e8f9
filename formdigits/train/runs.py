"""Where a training run writes, and what it needs before it starts; no PyTorch here.

A new run goes into a new folder (``runs/<date>-<time>``) unless told otherwise,
and a run never overwrites another's models without being asked: in a source
checkout ``export/`` holds the shipped models.
"""

import time
from pathlib import Path

from ..errors import UsageError

OUTPUTS = {
    "digit": ("checkpoint.pt", "formdigits.onnx", "formdigits-int8.onnx", "metrics.json", "curves.png",
              "confusion.png"),  # fmt: skip
    "strip": ("strip-checkpoint.pt", "strip-reader.onnx", "strip-metrics.json"),
}


def run_folder(out_dir, reader, resume=False, force=False):
    """The folder a run writes into: ``out_dir``, or a new one (:func:`default_out_dir`).

    Raises :class:`~formdigits.errors.UsageError` for a folder that holds the models
    ``reader`` (digit, strip or both) would write, unless the run ``resume``s there
    or is told to ``force`` it, and for ``resume`` with no folder.
    """
    if out_dir is None:
        if resume:
            raise UsageError("--resume needs -o: the folder of the run to continue")
        return default_out_dir()
    readers = ("digit", "strip") if reader == "both" else (reader,)
    present = [name for r in readers for name in OUTPUTS[r] if (Path(out_dir) / name).exists()]
    if present and not (resume or force):
        raise UsageError(f"{out_dir} already holds {', '.join(present)}: give a new -o folder, --resume to continue "
                         "that run, or --force to overwrite them")  # fmt: skip
    return Path(out_dir)


def default_out_dir():
    """A new folder for a run: ``runs/<date>-<time>`` in the current folder."""
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def missing_torch_message(command, checkout=Path(__file__).resolve().parents[2]):
    """How to get PyTorch for ``command``: in a source checkout (``checkout``: where this package would be in
    one), with its own train extra; else from a package index."""
    if (checkout / "pyproject.toml").is_file() and (checkout / "formdigits").is_dir():
        how = f'cd {checkout} && pip install torch==2.13.0 && pip install -e ".[train]"'
    else:
        how = "pip install torch==2.13.0 'formdigits[train]'"
    return f"`formdigits {command}` needs PyTorch (the train extra): {how}"
