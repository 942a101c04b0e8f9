"""Form templates: the named fields of a known form, found again on every scanned page.

A template is made from one scan of the form (``from_layout``), saved as
editable JSON (``save``; rename the fields ``f1, f2, ...`` and add rules by
hand), and checked strictly when loaded (``load``). On each page, the boxes the
layout stage found are matched to the template's (``register``): a similarity
transform (shift, scale, a little rotation; the page is already deskewed) is
voted for by pairs of boxes of the same shape, refined on all matched boxes,
and scored by how many boxes agree. Then exactly the template's fields are
read, each from its box as found on the page or, where its lines are too faint
or broken to be found, from the template's box carried over by the transform.

Coordinates in a template are pixels of the template's page after deskewing.
"""

import bisect
import heapq
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import FormdigitsError
from .layout import Box
from .rules import MAX_DIGITS, check_rules

FORMAT = "formdigits-template/1"
MIN_QUALITY = 0.6  # registration quality below which a page is said not to be this form
MAX_FIELDS = 1000
MAX_SIDE = 100_000  # pixels: width and height of the template's page (150 Mpixel pages are 12,000 x 12,500)
MAX_BYTES = 10_000_000
# registration's cost, in time and memory, is hypotheses x voters x page boxes: bounded for huge templates and
# pages of many boxes alike (a real form's boxes all vote, and give far fewer hypotheses)
MAX_HYPOTHESES = 1000
MAX_VOTERS = 100
_TOP_KEYS = {"format", "name", "width", "height", "fields"}
_FIELD_KEYS = {"name", "kind", "x", "y", "w", "h", "cells", "rules"}
_RESERVED = {"file", "page", "form", "status", "error"}  # columns of the wide format, beside <name>_confidence


class TemplateError(FormdigitsError):
    """A template file that cannot be used."""


@dataclass
class TemplateField:
    """One named field of a form: its box in the template's pixels, and the rules its value must keep."""

    name: str
    kind: str  # "comb" or "open"
    x: int
    y: int
    w: int
    h: int
    cells: int = 0  # comb fields: number of cells
    rules: dict = field(default_factory=dict)


@dataclass
class Template:
    """A known form: its size in pixels (of the scan it was made from) and its fields."""

    name: str
    width: int
    height: int
    fields: list[TemplateField]


def from_layout(layout: Any, name: str) -> Template:
    """A template with a field ``f1, f2, ...`` (reading order) for every box of an analysed page."""
    h, w = layout.darkness.shape
    fields = [TemplateField(f"f{i}", b.kind, b.x, b.y, b.w, b.h, len(b.cells) if b.kind == "comb" else 0)
              for i, b in enumerate(layout.boxes, 1)]  # fmt: skip
    return Template(name, w, h, fields)


def save(template: Template, path: str | os.PathLike) -> None:
    """Write ``template`` as JSON, one line per field (easy to edit by hand)."""
    d = {"format": FORMAT, **asdict(template)}
    lines = ",\n".join("  " + json.dumps(f) for f in d.pop("fields"))
    head = json.dumps(d, indent=1)[:-2]  # the top-level keys, one per line, without the closing brace
    Path(path).write_text(f'{head},\n "fields": [\n{lines}\n ]\n}}\n', encoding="utf-8")


def load(path: str | os.PathLike) -> Template:
    """Read and check a template; TemplateError names the file and the problem."""
    path = Path(path)
    try:
        if not path.is_file():  # a FIFO or a device would hang or never end
            raise TemplateError(f"{path}: not a regular file" if path.exists() else f"{path}: no such file")
        if path.stat().st_size > MAX_BYTES:
            raise TemplateError(f"{path}: {path.stat().st_size} bytes, more than a template's {MAX_BYTES}")
        d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TemplateError(f"{path}: cannot read: {e.strerror or e}") from None
    except RecursionError:
        raise TemplateError(f"{path}: not a template: its JSON is nested too deeply") from None
    except ValueError as e:
        raise TemplateError(f"{path}: not valid JSON: {e}") from None
    try:
        return _check(d, path)
    except KeyError as e:
        raise TemplateError(f"{path}: missing key {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise TemplateError(f"{path}: {e}") from None


def _check(d, path):
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f'not a formdigits template (needs "format": "{FORMAT}")')
    if unknown := set(d) - _TOP_KEYS:
        raise ValueError(f"unknown keys {sorted(unknown)} (allowed: {sorted(_TOP_KEYS)})")
    form = d.get("name") or path.stem
    if not isinstance(form, str):
        raise ValueError(f"name must be a string (the form column of the scans), got {form!r}")
    width, height = _int(d, "width", 1, MAX_SIDE), _int(d, "height", 1, MAX_SIDE)
    if not isinstance(d["fields"], list) or not 1 <= len(d["fields"]) <= MAX_FIELDS:
        got = f"{len(d['fields'])} fields" if isinstance(d["fields"], list) else repr(d["fields"])[:40]
        raise ValueError(f"fields must be a list of 1 to {MAX_FIELDS} fields, got {got}")
    fields, names = [], set()
    for i, f in enumerate(d["fields"], 1):
        where = f"field {i} ({f.get('name', '?')!r})" if isinstance(f, dict) else f"field {i}"
        if not isinstance(f, dict):
            raise ValueError(f"{where}: must be an object")
        if unknown := set(f) - _FIELD_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_FIELD_KEYS)})")
        name = f["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,99}", name):
            raise ValueError(f"{where}: name must be letters, digits and _ (a spreadsheet column), got {name!r}")
        if name.lower() in _RESERVED or name.lower().endswith("_confidence"):
            raise ValueError(f"{where}: the name {name!r} is taken by a column of the wide format "
                             f"({', '.join(sorted(_RESERVED))}, <name>_confidence)")  # fmt: skip
        if name in names:
            raise ValueError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        kind = f["kind"]
        if kind not in ("comb", "open"):
            raise ValueError(f"{where}: kind must be comb or open, got {kind!r}")
        x, y = _int(f, "x", 0, width, where), _int(f, "y", 0, height, where)
        w, h = _int(f, "w", 2, width, where), _int(f, "h", 2, height, where)
        if x + w > width or y + h > height:
            raise ValueError(f"{where}: box {x},{y},{w},{h} is outside the {width} x {height} page")
        cells = _int(f, "cells", 2, MAX_DIGITS, where) if kind == "comb" else 0
        fields.append(TemplateField(name, kind, x, y, w, h, cells, check_rules(f.get("rules", {}), where)))
    _check_overlaps(fields)
    return Template(form, width, height, fields)


def _int(d, key, low, high, where=""):
    v = d[key]
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise ValueError(f"{where + ': ' if where else ''}{key} must be an integer from {low} to {high}, got {v!r}")
    return v


def _check_overlaps(fields):
    """Refuse two fields that overlap by more than 3 pixels both ways (sharing a line is fine).

    A sweep from left to right, in n log n: the fields the sweep line crosses cannot
    overlap one another (that was checked as each came), so ordered by top they are
    ordered by bottom too, and a new field can overlap only its two neighbours in that order.
    """
    fields = sorted((f for f in fields if f.w > 3 and f.h > 3), key=lambda f: f.x)  # thinner ones overlap nothing
    crossed = []  # (top, bottom, index) of the fields the sweep line crosses, sorted
    ends = []  # heap of their (right end, top, bottom, index)
    for i, f in enumerate(fields):
        while ends and ends[0][0] <= f.x + 3:
            del crossed[bisect.bisect_left(crossed, heapq.heappop(ends)[1:])]
        key = (f.y, f.y + f.h, i)
        k = bisect.bisect_left(crossed, key)
        for top, bottom, j in crossed[max(0, k - 1) : k + 1]:
            if min(bottom, f.y + f.h) - max(top, f.y) > 3:
                raise ValueError(f"fields {fields[j].name!r} and {f.name!r} overlap")
        crossed.insert(k, key)
        heapq.heappush(ends, (f.x + f.w, *key))


# --- registration -------------------------------------------------------------------------


@dataclass
class Registration:
    template: Template
    matrix: np.ndarray  # 2x3: template pixels -> deskewed page pixels
    quality: float  # 2 * matched / (template boxes + page boxes): 1.0 = every box in place, nothing else
    matched: dict  # template field index -> page Box


def _centres(boxes):
    return np.array([[b.x + b.w / 2, b.y + b.h / 2, b.w, b.h] for b in boxes], float).reshape(-1, 4)


def _shape_key(kind, cells):
    return (kind, cells if kind == "comb" else 0)


def register(template: Template, boxes: list) -> "Registration":
    """Match a template's fields to the boxes found on a (deskewed) page; see :class:`Registration`."""
    T, P = _centres(template.fields), _centres(boxes)
    none = Registration(template, np.hstack([np.eye(2), np.zeros((2, 1))]), 0.0, {})
    if not len(T) or not len(P):
        return none
    tkeys = [_shape_key(f.kind, f.cells) for f in template.fields]
    pkeys = [_shape_key(b.kind, len(b.cells)) for b in boxes]
    # hypotheses: template box i is page box k (same shape) -> scale and shift
    hyp: list[tuple] = []
    # the largest boxes are enough to vote, and fewest alike (a stable sort: ties in one order on every numpy)
    for i in np.argsort(-T[:, 2] * T[:, 3], kind="stable")[:8]:
        if len(hyp) >= MAX_HYPOTHESES:  # a page of many boxes alike: enough from fewer template boxes
            break
        _, _, tw, th = T[i]
        for k, (_, _, pw, ph) in enumerate(P):
            if tkeys[i] == pkeys[k] and abs(math.log((pw / ph) / (tw / th))) < 0.15:
                s = math.sqrt(pw * ph / (tw * th))
                hyp.append((s, *(P[k, :2] - s * T[i, :2])))
    if not hyp:
        return none
    H = np.array(hyp)  # (n, 3): s, tx, ty
    voters = T[:: -(-len(T) // MAX_VOTERS)]  # every template box of any real form; a sample of a huge one
    step = max(1, 1_000_000 // (len(voters) * len(P)))  # hypotheses at a time: memory stays small
    votes = np.concatenate([_votes(H[i : i + step], voters, P) for i in range(0, len(H), step)])
    s, tx, ty = H[int(votes.argmax())]
    m = np.array([[s, 0, tx], [0, s, ty]])
    pairs = _match(T, P, m)
    if len(pairs) >= 3:  # refine on every matched box (a little rotation, too)
        src = np.array([T[i, :2] for i, _ in pairs], np.float32)
        dst = np.array([P[k, :2] for _, k in pairs], np.float32)
        refined, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        if refined is not None:
            m = refined
            pairs = _match(T, P, m)
    quality = 2 * len(pairs) / (len(T) + len(P))
    return Registration(template, m, quality, {i: boxes[k] for i, k in pairs})


def _votes(H, T, P):
    """Per hypothesis (s, tx, ty): how many template boxes it moves onto a page box of their size."""
    s = H[:, 0].reshape(-1, 1, 1)  # broadcast over (hypothesis, template box, page box)
    moved = s[..., None] * T[None, :, None, :2] + H[:, 1:].reshape(-1, 1, 1, 2)
    dist = np.linalg.norm(moved - P[None, None, :, :2], axis=-1)
    size_ok = np.abs(np.log(P[None, None, :, 3] / (s * T[None, :, None, 3]))) < 0.2
    close = (dist < 0.4 * s * T[None, :, None, 3]) & size_ok
    return close.any(2).sum(1)


def _match(T, P, m):
    """(template index, page index) of boxes that overlap by IoU >= 0.5 once the template is moved by m."""
    s = math.sqrt(abs(np.linalg.det(m[:, :2])))
    c = T[:, :2] @ m[:, :2].T + m[:, 2]
    t0, t1 = c - T[:, 2:] * s / 2, c + T[:, 2:] * s / 2  # moved template boxes, corners
    p0, p1 = P[:, :2] - P[:, 2:] / 2, P[:, :2] + P[:, 2:] / 2
    overlap = np.clip(np.minimum(t1[:, None], p1[None]) - np.maximum(t0[:, None], p0[None]), 0, None)
    inter = overlap[..., 0] * overlap[..., 1]
    iou = inter / ((T[:, 2] * T[:, 3] * s * s)[:, None] + (P[:, 2] * P[:, 3])[None] - inter)
    pairs, used = [], set()
    for i, k in enumerate(iou.argmax(1)):
        if iou[i, k] >= 0.5 and k not in used:
            pairs.append((i, int(k)))
            used.add(k)
    return pairs


def field_boxes(reg: "Registration", line: int) -> list:
    """A :class:`~formdigits.layout.Box` per template field on the page: the box found there, or
    the template's carried over by the registration (faint or broken lines); comb cells as the template says."""
    s = math.sqrt(abs(np.linalg.det(reg.matrix[:, :2])))
    out = []
    for i, f in enumerate(reg.template.fields):
        found = reg.matched.get(i)
        if found is not None:
            b = Box(found.x, found.y, found.w, found.h, f.kind, list(found.cells), found.line)
        else:
            cx, cy = reg.matrix[:, :2] @ [f.x + f.w / 2, f.y + f.h / 2] + reg.matrix[:, 2]
            w, h = round(f.w * s), round(f.h * s)
            b = Box(round(cx - w / 2), round(cy - h / 2), w, h, f.kind, [], line)
        if f.kind == "comb" and len(b.cells) != f.cells:
            edges = np.linspace(b.x, b.x + b.w - 1, f.cells + 1).round().astype(int).tolist()
            b.cells = list(zip(edges[:-1], edges[1:]))
        elif f.kind == "open":
            b.cells = []
        out.append(b)
    return out


def preview(template, darkness, path):
    """Draw the template's fields with their names on the (deskewed) page, for renaming by eye."""
    pic = cv2.cvtColor(255 - darkness, cv2.COLOR_GRAY2BGR)
    scale = max(0.5, pic.shape[1] / 2400)
    for f in template.fields:
        cv2.rectangle(pic, (f.x, f.y), (f.x + f.w, f.y + f.h), (0, 120, 255), max(2, int(2 * scale)))
        label = f"{f.name} ({f.kind}{f' {f.cells}' if f.kind == 'comb' else ''})"
        cv2.putText(pic, label, (f.x, max(12, f.y - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 0, 0),
                    max(1, int(2 * scale)), cv2.LINE_AA)  # fmt: skip
    if not cv2.imwrite(str(path), pic):
        raise TemplateError(f"{path}: could not write the preview picture")
