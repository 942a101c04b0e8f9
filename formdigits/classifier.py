"""The digit classifier: an ONNX model run by ONNX Runtime, in batches.

The model carries its own contract in its ONNX metadata: the labels of its
outputs and the preprocessing parameters it was trained with. The classifier
refuses a model without them, so model and scanner cannot drift apart.
ONNX Runtime is imported lazily; torch is never imported here.
"""

import json
import os
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ModelError, UsageError
from .preprocess import JITTER, PreprocessParams, jitter, preprocess_batch

DIGITS = tuple("0123456789")
REJECT = "reject"  # the class for "this is not a digit"
LABELS = DIGITS + (REJECT,)
MODEL_FORMAT = "1"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


def reject_index(labels):
    """Index of the "not a digit" class in ``labels``, -1 for a model without one."""
    return labels.index(REJECT) if REJECT in labels else -1


def default_model_path(int8: bool = False) -> Path:
    """The model shipped with the package (``export/formdigits.onnx`` in the repository).

    ``int8``: its int8 twin (``formdigits-int8.onnx``, same weights quantized,
    about twice as fast on a CPU) when it is there.
    """
    try:
        folder = Path(str(resources.files("formdigits._export")))
    except ModuleNotFoundError:  # running from a source checkout that is not installed
        folder = Path(__file__).resolve().parent.parent / "export"
    if int8 and (folder / "formdigits-int8.onnx").is_file():
        return folder / "formdigits-int8.onnx"
    return folder / "formdigits.onnx"


def check_device(device):
    """``device`` as given if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (a GPU by index); ValueError otherwise."""
    if device in ("auto", "cpu", "cuda") or (isinstance(device, str) and re.fullmatch(r"cuda:\d{1,4}", device)):
        return device
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N (a GPU by index), got {device!r}")


def check_providers(names):
    """The ONNX Runtime execution providers named (a list, or one string ``A,B``), in order, each one
    available in the installed onnxruntime; UsageError naming the first that is not."""
    import onnxruntime as ort

    names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    available = ort.get_available_providers()
    for name in names:
        if name not in available:
            raise UsageError(f"--providers: {name} is not available in this onnxruntime "
                             f"(available: {', '.join(available)})")  # fmt: skip
    return names


def _providers(device, names=()):
    """The providers to offer ONNX Runtime, in order: ``names`` (see :func:`check_providers`) then the CPU,
    or as ``device`` asks (``cuda:N``: CUDA on GPU N, ONNX Runtime's ``device_id``)."""
    import onnxruntime as ort

    if names:
        return list(dict.fromkeys([*check_providers(names), "CPUExecutionProvider"]))
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        cuda = "CUDAExecutionProvider"
        if device.startswith("cuda:"):
            cuda = (cuda, {"device_id": int(device[5:])})
        return [cuda, "CPUExecutionProvider"]
    if device != "auto":
        raise ModelError(
            f"--device {device}: ONNX Runtime has no CUDA provider here (available: "
            f"{', '.join(available)}); install onnxruntime-gpu instead of onnxruntime"
        )
    return ["CPUExecutionProvider"]


class Classifier:
    """Load an exported formdigits ONNX model and classify digit crops in batches.

    ``device`` is ``auto`` (CUDA when onnxruntime-gpu and a GPU are present),
    ``cuda``, ``cuda:N`` (GPU N) or ``cpu``. ``providers``: ONNX Runtime execution providers to
    use instead, in order (the CPU's last), e.g. ``["OpenVINOExecutionProvider"]``.
    Without ``model_path``, the shipped model: its int8
    twin on the CPU, the float model on CUDA. ``threads`` sets ONNX Runtime's intra-op threads
    (default: all cores).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, device: str = "auto", threads: int | None = None,
                 batch_size: int = 256, providers: Sequence[str] = ()) -> None:  # fmt: skip
        check_device(device)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        import onnxruntime as ort

        providers = _providers(device, providers) if providers else _providers(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # the shipped model: int8 on a CPU (faster, same accuracy), float on a GPU
        self._open(model_path, options, providers, int8=providers[0] == "CPUExecutionProvider")
        if device.startswith("cuda") and self.provider != "CUDAExecutionProvider":
            raise ModelError(f"--device {device}: ONNX Runtime could not start CUDA for {self.path}")
        if model_path is None and self.provider == "CPUExecutionProvider" and providers[0] != self.provider:
            # CUDA was offered but ONNX Runtime fell back to the CPU (onnxruntime-gpu, no working GPU): the CPU's model
            self._open(None, options, ["CPUExecutionProvider"], int8=True)
        self.batch_size = batch_size
        meta = self.session.get_modelmeta().custom_metadata_map
        self.labels, self.params, self.metrics = _read_metadata(self.path, meta)
        self._check_io()

    def _open(self, model_path, options, providers, int8):
        """Start an ONNX Runtime session on ``model_path`` (None: the shipped model, its ``int8`` twin or not)."""
        import onnxruntime as ort

        self.path = Path(model_path) if model_path is not None else default_model_path(int8=int8)
        if not self.path.is_file():
            hint = " (the shipped model is missing: reinstall formdigits or pass --model)" if model_path is None else ""
            raise ModelError(f"{self.path}: model file not found{hint}")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{self.path}: not a usable ONNX model: {first}") from None
        self.provider = self.session.get_providers()[0]  # the one ONNX Runtime really got going

    def _check_io(self):
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        s = self.params.size
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or list(inputs[0].shape[1:]) != [1, s, s]:
            got = [(i.name, i.shape) for i in inputs]
            raise ModelError(f"{self.path}: expected one input {INPUT_NAME!r} of shape [N, 1, {s}, {s}], got {got}")
        if len(outputs) != 1 or outputs[0].name != OUTPUT_NAME or outputs[0].shape[1:] != [len(self.labels)]:
            got = [(o.name, o.shape) for o in outputs]
            raise ModelError(
                f"{self.path}: expected one output {OUTPUT_NAME!r} of shape [N, {len(self.labels)}], got {got}"
            )

    @property
    def device(self) -> str:
        """``cuda`` or ``cpu``: where ONNX Runtime really runs the model."""
        return "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, len(labels))`` for a preprocessed ``(N, 1, S, S)`` batch."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        s = self.params.size
        if batch.ndim != 4 or batch.shape[1:] != (1, s, s):
            raise ValueError(f"batch must have shape (N, 1, {s}, {s}), got {batch.shape}")
        out = np.empty((len(batch), len(self.labels)), np.float32)
        for i in range(0, len(batch), self.batch_size):
            out[i : i + self.batch_size] = self.session.run(None, {INPUT_NAME: batch[i : i + self.batch_size]})[0]
        return out

    def predict_steady(self, batch, plain=None):
        """Probabilities averaged over each input and its jittered copies (see ``preprocess.jitter``).

        Nine times the work of :meth:`predict` (eight given ``plain``, its answers
        for ``batch`` itself), and better judged: an ambiguous digit that one view
        reads confidently seldom reads so in all of them.
        """
        plain = self.predict(batch) if plain is None else plain  # (predict checks the shape)
        moved = self.predict(jitter(np.asarray(batch)[:, 0]).reshape(-1, *np.shape(batch)[1:]))
        return (plain + moved.reshape(-1, *plain.shape).sum(0)) / (len(JITTER) + 1)

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """Probabilities for a list of uint8 ink crops, preprocessed as the model requires."""
        return self.predict(preprocess_batch(crops, self.params))


def _read_metadata(path, meta):
    if meta.get("formdigits.format") != MODEL_FORMAT:
        raise ModelError(
            f"{path}: not a formdigits model (ONNX metadata lacks formdigits.format={MODEL_FORMAT}); "
            "export one with `formdigits export`"
        )
    try:
        labels = tuple(json.loads(meta["labels"]))
        params = PreprocessParams(**json.loads(meta["preprocess"]))
        metrics = json.loads(meta.get("metrics", "{}"))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path}: malformed formdigits metadata: {e}") from None
    if labels[:10] != DIGITS or not set(labels[10:]) <= {REJECT}:
        raise ModelError(f"{path}: labels must be 0-9 (and {REJECT!r}), got {list(labels)}")
    return labels, params, metrics
