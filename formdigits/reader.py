"""``Reader``: the models loaded once, then images read one at a time or many together, from memory or files.

    >>> reader = formdigits.Reader()
    >>> rows = reader.read(cv2.imread("page.png"))        # or bytes, a PIL image, a path
    >>> per_image = reader.read_many([a, b, c])           # classified together: faster for many pages

A reader is read by :func:`~formdigits.pipeline.read_tasks`, the same core as
``scan``: the same rows for the same page. It holds no state between calls, so
several threads may call ``read`` at once (ONNX Runtime runs one session from
many threads; the decoders' stderr is taken in turns, see ``damage``).
"""

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .classifier import Classifier
from .memory import array_pages, bytes_pages, check_channel_order, pil_pages
from .output import Row
from .pages import Page, PageError
from .pipeline import DEFAULT_MIN_CONFIDENCE, PageTask, check_options, plan_pages, read_tasks
from .sequence import StripReader
from .template import Template
from .template import load as load_template

Image = Any  # a numpy array, bytes, a PIL image, or a path (str or os.PathLike)


class Reader:
    """Read the digit fields of images: numpy arrays, file bytes, PIL images or paths.

    ``model``, ``strip_model``: ONNX models (None: the shipped ones); ``device``:
    ``auto``, ``cpu`` or ``cuda``; ``min_confidence``: fields below it go to
    review; ``templates``: :class:`~formdigits.template.Template` objects or
    paths of template files (each page is matched to the best one);
    ``readers``: ``both`` or ``cut`` (see :func:`~formdigits.pipeline.iter_scan`);
    ``pdf_dpi``: ``auto`` or the resolution PDF pages are rendered at.
    ValueError for options that cannot work, ModelError for a model that cannot be loaded.
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str = "auto",
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, templates: Iterable[Template | str | os.PathLike] = (),
                 batch_size: int = 256, readers: str = "both", strip_model: str | os.PathLike | None = None,
                 pdf_dpi: str | float = "auto") -> None:  # fmt: skip
        check_options(0, min_confidence=min_confidence, pdf_dpi=pdf_dpi, readers=readers)
        if isinstance(templates, (str, os.PathLike, Template)):
            templates = [templates]
        self.templates = tuple(t if isinstance(t, Template) else load_template(t) for t in templates)
        self.min_confidence, self.pdf_dpi = min_confidence, pdf_dpi
        self.classifier = Classifier(model, device=device, batch_size=batch_size)
        self.strip_reader = StripReader(strip_model, device=device) if readers == "both" else None

    def read(self, image: Image, channel_order: str = "bgr", name: str | None = None) -> list[Row]:
        """The rows of every page of one image (see :meth:`read_many`)."""
        return self.read_many([image], channel_order, None if name is None else [name])[0]

    def read_many(self, images: Iterable[Image], channel_order: str = "bgr",
                  names: Iterable[str] | None = None) -> list[list[Row]]:  # fmt: skip
        """The rows of each image (all its pages), one list per image, the pages' crops classified together.

        An image is a 2-D gray or 3-D colour numpy array (``channel_order``
        ``bgr``, as OpenCV gives it, or ``rgb``; with alpha or not; uint8,
        uint16 or float), the bytes of an image or PDF file, a PIL image, or
        the path of a file. ``names`` go in the rows' ``file`` column (default:
        the path, or ``<array>``, ``<bytes>``, ``<PIL image>``). An image that
        cannot be read gives one ``error`` row naming it, and the others are
        read; TypeError for something that is no image, before any is read.
        """
        check_channel_order(channel_order)
        images = list(images)
        for image in images:
            _check_type(image)
        names = [_name(image) for image in images] if names is None else [str(n) for n in names]
        if len(names) != len(images):
            raise ValueError(f"names: {len(names)} given for {len(images)} images")
        owners: list[int] = []  # per task, the index of its image
        tasks = self._tasks(images, names, channel_order, owners)
        out: list[list[Row]] = [[] for _ in images]
        clf, strips = self.classifier, self.strip_reader
        for k, work in enumerate(read_tasks(tasks, clf, strips, self.min_confidence)):
            for row in work.rows:
                row.file = names[owners[k]]
            out[owners[k]].extend(work.rows)
        return out

    def _tasks(self, images: list, names: list[str], channel_order: str, owners: list[int]) -> Iterator[PageTask]:
        """A :class:`~formdigits.pipeline.PageTask` per page, decoded as it is needed; ``owners`` noted."""
        params = self.strip_reader.params if self.strip_reader else None
        for k, (image, name) in enumerate(zip(images, names)):
            if isinstance(image, (str, os.PathLike)):
                tasks = list(plan_pages([os.fsdecode(image)], self.pdf_dpi, False, None, self.templates, params))
            else:
                task = PageTask(name, 1, self.pdf_dpi, False, "", 0, self.templates, params)
                try:
                    tasks = [task._replace(page=p.page, decoded=p) for p in _decode(image, name, channel_order,
                                                                                     self.pdf_dpi)]  # fmt: skip
                except PageError as e:
                    tasks = [task._replace(error=str(e))]
                except Exception as e:  # a decoder failing in a way nobody foresaw: named, and the others are read
                    tasks = [task._replace(error=f"{name}: decoding failed: {type(e).__name__}: {e}")]
            for task in tasks:
                owners.append(k)
                yield task


def _check_type(image: Any) -> None:
    if not (isinstance(image, (np.ndarray, bytes, bytearray, memoryview, str, os.PathLike)) or _is_pil(image)):
        raise TypeError(f"an image must be a numpy array, bytes, a PIL image or a path, got {type(image).__name__}")


def _name(image: Any) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fsdecode(image)
    if isinstance(image, np.ndarray):
        return "<array>"
    return "<PIL image>" if _is_pil(image) else "<bytes>"


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "mode") and hasattr(image, "size")


def _decode(image: Any, name: str, channel_order: str, pdf_dpi: Any) -> list[Page]:
    """The pages of an in-memory image (PageError if it cannot be read)."""
    if isinstance(image, np.ndarray):
        return array_pages(image, name, channel_order)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes_pages(bytes(image), name, pdf_dpi)
    return pil_pages(image, name)
