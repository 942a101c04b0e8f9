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

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import FormdigitsError
from .layout import Box

FORMAT = "formdigits-template/1"
MIN_QUALITY = 0.6  # registration quality below which a page is said not to be this form
CHECKS = ("luhn", "mod11")
_TOP_KEYS = {"format", "name", "width", "height", "fields"}
_FIELD_KEYS = {"name", "kind", "x", "y", "w", "h", "cells", "rules"}
_RULE_KEYS = {"digits", "min", "max", "pattern", "check"}


class TemplateError(FormdigitsError):
    """A template file that cannot be used."""


@dataclass
class TemplateField:
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
    name: str
    width: int
    height: int
    fields: list


def from_layout(layout, name):
    """A template with a field ``f1, f2, ...`` (reading order) for every box of an analysed page."""
    h, w = layout.darkness.shape
    fields = [TemplateField(f"f{i}", b.kind, b.x, b.y, b.w, b.h, len(b.cells) if b.kind == "comb" else 0)
              for i, b in enumerate(layout.boxes, 1)]  # fmt: skip
    return Template(name, w, h, fields)


def save(template, path):
    d = {"format": FORMAT, **asdict(template)}
    lines = ",\n".join("  " + json.dumps(f) for f in d.pop("fields"))
    head = json.dumps(d, indent=1)[:-2]  # the top-level keys, one per line, without the closing brace
    Path(path).write_text(f'{head},\n "fields": [\n{lines}\n ]\n}}\n', encoding="utf-8")


def load(path):
    """Read and check a template; TemplateError names the file and the problem."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TemplateError(f"{path}: cannot read: {e.strerror or e}") from None
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
    width, height = _int(d, "width", 1), _int(d, "height", 1)
    fields, names = [], set()
    for i, f in enumerate(d["fields"], 1):
        where = f"field {i} ({f.get('name', '?')!r})" if isinstance(f, dict) else f"field {i}"
        if not isinstance(f, dict):
            raise ValueError(f"{where}: must be an object")
        if unknown := set(f) - _FIELD_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_FIELD_KEYS)})")
        name = f["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{where}: name must be letters, digits and _ (a spreadsheet column), got {name!r}")
        if name in names:
            raise ValueError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        kind = f["kind"]
        if kind not in ("comb", "open"):
            raise ValueError(f"{where}: kind must be comb or open, got {kind!r}")
        x, y, w, h = (_int(f, k, 0 if k in "xy" else 2, where) for k in ("x", "y", "w", "h"))
        if x + w > width or y + h > height:
            raise ValueError(f"{where}: box {x},{y},{w},{h} is outside the {width} x {height} page")
        cells = _int(f, "cells", 2, where) if kind == "comb" else 0
        fields.append(TemplateField(name, kind, x, y, w, h, cells, _check_rules(f.get("rules", {}), where)))
    for i, a in enumerate(fields):
        for b in fields[i + 1 :]:
            ox = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
            oy = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
            if ox > 3 and oy > 3:  # sharing a line is fine, overlapping is not
                raise ValueError(f"fields {a.name!r} and {b.name!r} overlap")
    return Template(d.get("name") or path.stem, width, height, fields)


def _int(d, key, low, where=""):
    v = d[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ValueError(f"{where + ': ' if where else ''}{key} must be an integer >= {low}, got {v!r}")
    return v


def _check_rules(rules, where):
    if not isinstance(rules, dict):
        raise ValueError(f"{where}: rules must be an object")
    if unknown := set(rules) - _RULE_KEYS:
        raise ValueError(f"{where}: unknown rules {sorted(unknown)} (allowed: {sorted(_RULE_KEYS)})")
    digits = rules.get("digits")
    if digits is not None:
        lo_hi = [digits, digits] if isinstance(digits, int) else digits
        if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and all(isinstance(v, int) and v >= 1 for v in lo_hi)):
            raise ValueError(f"{where}: rule digits must be a count or [min, max] counts, got {digits!r}")
    for k in ("min", "max"):
        if k in rules and (not isinstance(rules[k], (int, float)) or isinstance(rules[k], bool)):
            raise ValueError(f"{where}: rule {k} must be a number, got {rules[k]!r}")
    if "pattern" in rules:
        try:
            re.compile(rules["pattern"])
        except (re.error, TypeError) as e:
            raise ValueError(f"{where}: rule pattern is not a regular expression: {e}") from None
    if "check" in rules and rules["check"] not in CHECKS:
        raise ValueError(f"{where}: rule check must be one of {list(CHECKS)}, got {rules['check']!r}")
    return dict(rules)


# --- rules --------------------------------------------------------------------------------


def luhn_ok(value):
    total = 0
    for i, c in enumerate(reversed(value)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def mod11_ok(value):
    """ISBN-10 style: weights n..1 from the left, the sum divisible by 11 (digits only)."""
    n = len(value)
    return sum(int(c) * (n - i) for i, c in enumerate(value)) % 11 == 0


def broken_rules(value, rules):
    """Names (with the reason) of the rules a read value breaks; [] when it keeps them all."""
    out = []
    if "digits" in rules:
        lo, hi = (rules["digits"],) * 2 if isinstance(rules["digits"], int) else rules["digits"]
        if not lo <= len(value) <= hi:
            out.append(f"rule digits: {len(value)} digits, wanted {lo if lo == hi else f'{lo}-{hi}'}")
    if value and "min" in rules and int(value) < rules["min"]:
        out.append(f"rule min: {int(value)} < {rules['min']}")
    if value and "max" in rules and int(value) > rules["max"]:
        out.append(f"rule max: {int(value)} > {rules['max']}")
    if "pattern" in rules and not re.fullmatch(rules["pattern"], value):
        out.append(f"rule pattern: {value!r} does not match {rules['pattern']!r}")
    if value and rules.get("check") == "luhn" and not luhn_ok(value):
        out.append("rule check: Luhn check digit wrong")
    if value and rules.get("check") == "mod11" and not mod11_ok(value):
        out.append("rule check: mod 11 check digit wrong")
    return out


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


def register(template, boxes):
    """Match a template's fields to the boxes found on a (deskewed) page; see :class:`Registration`."""
    T, P = _centres(template.fields), _centres(boxes)
    none = Registration(template, np.hstack([np.eye(2), np.zeros((2, 1))]), 0.0, {})
    if not len(T) or not len(P):
        return none
    tkeys = [_shape_key(f.kind, f.cells) for f in template.fields]
    pkeys = [_shape_key(b.kind, len(b.cells)) for b in boxes]
    # hypotheses: template box i is page box k (same shape) -> scale and shift
    hyp = []
    for i in np.argsort(-T[:, 2] * T[:, 3])[:8]:  # the largest boxes are enough to vote, and fewest alike
        _, _, tw, th = T[i]
        for k, (_, _, pw, ph) in enumerate(P):
            if tkeys[i] == pkeys[k] and abs(math.log((pw / ph) / (tw / th))) < 0.15:
                s = math.sqrt(pw * ph / (tw * th))
                hyp.append((s, *(P[k, :2] - s * T[i, :2])))
    if not hyp:
        return none
    H = np.array(hyp)  # (n, 3): s, tx, ty
    s = H[:, 0].reshape(-1, 1, 1)  # broadcast over (hypothesis, template box, page box)
    moved = s[..., None] * T[None, :, None, :2] + H[:, 1:].reshape(-1, 1, 1, 2)
    dist = np.linalg.norm(moved - P[None, None, :, :2], axis=-1)
    size_ok = np.abs(np.log(P[None, None, :, 3] / (s * T[None, :, None, 3]))) < 0.2
    close = (dist < 0.4 * s * T[None, :, None, 3]) & size_ok
    best = int(close.any(2).sum(1).argmax())
    s, tx, ty = H[best]
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


def field_boxes(reg, line):
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
