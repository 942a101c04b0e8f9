"""Synthetic scanned forms with known answers, made from MNIST *test* digits.

A page is drawn in millimetres and rendered at the chosen dpi: a printed title,
rows of printed labels with digit fields beside them, and handwritten digits
(MNIST test digits scaled smoothly to pen size) in them. Two field kinds:

* comb: a row of adjacent cells, one digit per cell (written to fit it), separators full or half
  height, amounts often right-aligned (leading cells empty);
* open: one box with several digits, some touching or overlapping.

Then the scanner's view: rotation, scale and shift, paper tone, noise, blur,
JPEG, bitonal. Every random choice comes from one seed. The truth for each
field is its box in page pixels (axis-aligned bounding box after rotation),
its kind and its value.
"""

import csv
import io
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from .options import FAMILIES, HELD_OUT

LINE_COLOURS = {"black": (30, 30, 30), "red": (130, 130, 240), "blue": (235, 190, 140), "grey": (165, 165, 165)}
INK_COLOURS = {"black": (35, 35, 40), "blue": (150, 60, 25)}  # BGR
FIELD_LABELS = ("Account", "Amount", "Qty", "Year", "Code", "Ref.", "Total", "Postcode", "Meter", "Mark", "Units", "ID")
TRUTH_COLUMNS = ("file", "page", "field", "x", "y", "w", "h", "value", "kind", "cells")


@dataclass
class PageStyle:
    """The realism knobs; each ``*_max`` is the bound of a uniform random draw."""

    width_mm: float = 210.0
    height_mm: float = 297.0
    dpi: int = 300
    rotation_max: float = 0.0  # degrees, either way
    scale_max: float = 0.0  # relative, e.g. 0.03 for +-3 %
    shift_max_mm: float = 0.0
    line_colour: str = "black"  # black, red, blue, grey or "random"
    ink: str = "random"  # black, blue or random
    half_height_prob: float = 0.3  # comb fields with half-height separators
    comb_prob: float = 0.6
    empty_prob: float = 0.08
    right_align_prob: float = 0.5
    touch_prob: float = 0.08  # a digit touching or crossing its box line
    overlap_prob: float = 0.25  # open-field neighbours touching or overlapping
    frame_prob: float = 0.5  # an outer frame around the fields, as tables have
    paper: str = "random"  # white, grey, yellow or random
    noise_max: float = 6.0  # sigma of sensor noise, grey levels
    blur_max: float = 0.8  # sigma of the scanner's blur, pixels at 300 dpi
    jpeg_quality: int = 0  # 0: no JPEG round trip
    bitonal: bool = False  # fax-like black and white
    faint_line_prob: float = 0.0  # a field's box drawn faint and broken (a worn print, a light scan)
    # style families, each "classic" (as the first synthesizer drew them), one of its kinds, or "random":
    # drawn per field among the kinds not held out (see HELD_OUT)
    separators: str = "classic"  # comb separators: full, half, ticks, grouped (full ones with ticks between), dotted
    spacing: str = "classic"  # open fields: normal, wide, crowded (most neighbours touching or overlapping)
    pen: str = "classic"  # thin (a ballpoint), normal, thick (a marker)
    dpi_choices: tuple = ()  # a page's resolution drawn from these (empty: dpi)
    bitonal_prob: float = 0.0  # a page scanned bitonal (fax-like), drawn per page


@dataclass
class TruthField:
    kind: str  # "comb" or "open"
    x: int
    y: int
    w: int
    h: int
    value: str
    cells: int = 0  # comb fields: number of cells
    corners: list = field(default_factory=list, repr=False)


@dataclass
class Page:
    image: np.ndarray  # BGR uint8, or 2-D uint8 when bitonal
    fields: list
    dpi: int


class DigitSource:
    """Draw MNIST test digits of a wanted value, in a reproducible order."""

    def __init__(self, images, labels):
        self.images = images
        self.by_digit = [np.flatnonzero(labels == d) for d in range(10)]

    def draw(self, digit, rng):
        idx = self.by_digit[digit]
        img = self.images[idx[rng.integers(len(idx))]]
        ys, xs = np.nonzero(img > 30)
        return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _pen(digit, height, rng, pen="classic"):
    """A digit scaled smoothly to ``height`` px as ink coverage in [0, 1], written with ``pen``
    (classic: now and then a little thicker or thinner; thin, normal, thick)."""
    h, w = digit.shape
    f = height / h
    w2 = max(2, round(w * f * rng.uniform(0.9, 1.1)))
    img = cv2.resize(digit, (w2, max(2, round(height))), interpolation=cv2.INTER_CUBIC)
    if pen == "classic" and rng.random() < 0.3:  # pen width
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        img = cv2.dilate(img, k) if rng.random() < 0.6 else cv2.erode(img, k)
    elif pen != "classic":
        img = _pen_width(img, height, pen, rng)
    a = np.deg2rad(rng.uniform(-8, 8))
    m = cv2.getRotationMatrix2D((w2 / 2, height / 2), np.rad2deg(a), 1.0)
    pad = int(0.2 * height)
    m[:, 2] += pad
    img = cv2.warpAffine(img, m, (w2 + 2 * pad, round(height) + 2 * pad), flags=cv2.INTER_LINEAR)
    return img.astype(np.float32) / 255


def _pen_width(img, height, pen, rng):
    """Redraw a digit's strokes at a pen's width: thin (a ballpoint, 1-2 % of the height), normal, thick."""
    target = {"thin": rng.uniform(0.03, 0.06), "normal": rng.uniform(0.07, 0.1), "thick": rng.uniform(0.12, 0.17)}[pen]
    mask = (img > 127).view(np.uint8)
    perimeter = sum(cv2.arcLength(c, True) for c in cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)[0])
    now = 2 * cv2.countNonZero(mask) / perimeter if perimeter else 1.0  # a stroke's width: area / half its outline
    k = int(round(target * height - now))
    if k == 0:
        return img
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (abs(k) + 1, abs(k) + 1))
    out = cv2.dilate(img, kernel) if k > 0 else cv2.erode(img, kernel)
    return out if out.max() > 127 else img


def _stamp(page, alpha, x, y, colour):
    """Composite ink coverage ``alpha`` with its top-left at (x, y), clipped to the page."""
    h, w = alpha.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(page.shape[1], x + w), min(page.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    roi = page[y0:y1, x0:x1].astype(np.float32)
    page[y0:y1, x0:x1] = (roi * (1 - a) + np.float32(colour) * a).astype(np.uint8)


def _ink_span(alpha, height):
    """``(first, width)``: the first column of ``alpha`` holding visible ink, and how much room the
    digit takes on the line (its ink's width; a "1" at least 0.2 x ``height``)."""
    cols = np.flatnonzero(alpha.max(0) > 0.15)
    first, last = (int(cols[0]), int(cols[-1])) if len(cols) else (0, alpha.shape[1] - 1)
    return first, max(last - first + 1, 0.2 * height)


MIN_SQUEEZE = 0.75  # a number is written at least this large, squeezed into its box; past that, it runs over


def _fit(pens, gaps, room, height):
    """Digits ``pens`` and the gaps between them (px) as a person fits them into ``room`` px: the
    spaces closed up first (to 0.05 x height), then the digits written smaller (down to MIN_SQUEEZE)."""
    total = sum(_ink_span(a, height)[1] for a in pens) + sum(gaps)
    if total <= room:
        return pens, gaps
    slack = sum(max(g - 0.05 * height, 0) for g in gaps)
    take = min(slack, total - room)
    gaps = [g - take * max(g - 0.05 * height, 0) / slack if slack else g for g in gaps]
    total -= take
    if total <= room:
        return pens, gaps
    f = max(MIN_SQUEEZE, room / total)
    pens = [cv2.resize(a, (max(2, round(a.shape[1] * f)), max(2, round(a.shape[0] * f))), interpolation=cv2.INTER_AREA)
            for a in pens]  # fmt: skip
    return pens, [g * f for g in gaps]


def _value(rng, n):
    return "".join(str(d) for d in rng.integers(0, 10, n))


class _Drawer:
    def __init__(self, style, rng, digits):
        self.s, self.rng, self.digits = style, rng, digits
        self.mm = style.dpi / 25.4
        self.lw = max(1, round(0.25 * self.mm))  # printed line width
        pick = lambda v, opts: opts[rng.integers(len(opts))] if v == "random" else v  # noqa: E731
        self.line = LINE_COLOURS[pick(style.line_colour, list(LINE_COLOURS))]
        self.ink = INK_COLOURS[pick(style.ink, list(INK_COLOURS))]
        paper = pick(style.paper, ["white", "grey", "yellow"])
        self.paper = {"white": (250, 250, 250), "grey": (225, 225, 225), "yellow": (205, 238, 248)}[paper]
        self.page = np.empty((round(style.height_mm * self.mm), round(style.width_mm * self.mm), 3), np.uint8)
        self.page[:] = self.paper

    def family(self, name):
        """This field's kind of style family ``name`` (see :data:`FAMILIES`)."""
        v = getattr(self.s, name)
        if v != "random":
            return v
        kinds = [k for k in FAMILIES[name] if HELD_OUT.get(name) != k]
        return kinds[self.rng.integers(len(kinds))]

    def faint(self):
        return self.s.faint_line_prob > 0 and self.rng.random() < self.s.faint_line_prob

    def px(self, mm):
        return int(round(mm * self.mm))

    def text(self, s, x_mm, y_mm, height_mm):
        scale = height_mm * self.mm / 22  # Hershey simplex capitals are ~22 px at scale 1
        thick = max(1, round(scale * 1.6))
        cv2.putText(self.page, s, (self.px(x_mm), self.px(y_mm)), cv2.FONT_HERSHEY_SIMPLEX, scale, (40, 40, 40), thick,
                    cv2.LINE_AA)  # fmt: skip
        return cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] / self.mm

    def rect(self, x0, y0, x1, y1, faint=False):
        if not faint:
            cv2.rectangle(self.page, (x0, y0), (x1, y1), self.line, self.lw)
            return
        paper = np.array(self.paper, float)
        colour = tuple(int(v) for v in paper + 0.45 * (np.array(self.line, float) - paper))  # half as dark
        for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x0, y1), (x1, y1)), ((x0, y0), (x0, y1))):
            n = max(1, int(np.hypot(b[0] - a[0], b[1] - a[1]) / (3 * self.mm)))  # dashes of about 3 mm
            for i in range(n):
                if self.rng.random() < 0.2:
                    continue  # a gap
                p = [int(a[k] + (b[k] - a[k]) * i / n) for k in (0, 1)]
                q = [int(a[k] + (b[k] - a[k]) * (i + 1) / n) for k in (0, 1)]
                cv2.line(self.page, p, q, colour, self.lw)

    def stamp(self, alpha, cx, cy):
        h, w = alpha.shape
        _stamp(self.page, alpha, int(cx - w / 2), int(cy - h / 2), self.ink)

    def comb(self, x_mm, y_mm, n, cell_w_mm, cell_h_mm, half):
        rng, s = self.rng, self.s
        x0, y0 = self.px(x_mm), self.px(y_mm)
        cw, ch = cell_w_mm * self.mm, self.px(cell_h_mm)
        x1 = x0 + round(n * cw)
        self.rect(x0, y0, x1, y0 + ch, faint=self.faint())
        kind = ("half" if half else "full") if s.separators == "classic" else self.family("separators")
        group = int(rng.integers(2, 4)) if kind == "grouped" else 0  # (classic pages draw as they always did)
        for i in range(1, n):
            xi = x0 + round(i * cw)
            if kind == "grouped":
                rise = ch if i % group == 0 else ch // 5
            else:
                rise = {"full": ch, "half": ch // 3, "dotted": ch, "ticks": ch // 5}[kind]
            if kind == "dotted":
                for yy in range(y0, y0 + ch, max(3, self.lw * 3)):
                    cv2.line(self.page, (xi, yy), (xi, yy + self.lw), self.line, self.lw)
            else:
                cv2.line(self.page, (xi, y0 + ch - rise), (xi, y0 + ch), self.line, self.lw)
        pen = self.family("pen") if s.pen != "classic" else "classic"
        value = "" if rng.random() < s.empty_prob else _value(rng, int(rng.integers(1, n + 1)))
        first = n - len(value) if rng.random() < s.right_align_prob else 0
        for i, ch_ in enumerate(value):
            cx = x0 + (first + i + 0.5) * cw + rng.uniform(-0.08, 0.08) * cw
            cy = y0 + ch * rng.uniform(0.45, 0.58)
            height = ch * rng.uniform(0.55, 0.78)
            if rng.random() < s.touch_prob:  # touching or crossing the bottom or a side line
                if rng.random() < 0.5:
                    cy += ch * rng.uniform(0.12, 0.25)
                else:
                    cx += cw * rng.choice([-1, 1]) * rng.uniform(0.12, 0.22)
            # a person writes a digit to fit its cell: written smaller (to MIN_SQUEEZE) when wider than 0.8 x the cell
            alpha = _pen(self.digits.draw(int(ch_), rng), height, rng, pen)
            self.stamp(_fit([alpha], [], 0.8 * cw - self.lw, height)[0][0], cx, cy)
        return TruthField("comb", x0, y0, x1 - x0 + 1, ch + 1, value, n)

    def open(self, x_mm, y_mm, k, w_mm, h_mm):
        rng, s = self.rng, self.s
        x0, y0, x1, y1 = self.px(x_mm), self.px(y_mm), self.px(x_mm + w_mm), self.px(y_mm + h_mm)
        self.rect(x0, y0, x1, y1, faint=self.faint())
        value = "" if rng.random() < s.empty_prob else _value(rng, k)
        height = (y1 - y0) * rng.uniform(0.55, 0.72)
        x = x0 + self.px(rng.uniform(2, 5))
        pen = self.family("pen") if s.pen != "classic" else "classic"
        pens = [_pen(self.digits.draw(int(c), rng), height, rng, pen) for c in value]
        # the gap to the previous digit's ink, in digit heights (negative = overlapping; the first is drawn, unused)
        spacing = self.family("spacing") if s.spacing != "classic" else "classic"
        if spacing == "crowded":
            gaps = [rng.uniform(-0.25, 0.02) if rng.random() < 0.8 else rng.uniform(0.02, 0.15) for _ in value]
        elif spacing == "wide":
            gaps = [rng.uniform(0.3, 0.8) for _ in value]
        else:
            gaps = [rng.uniform(-0.12, 0.05) if rng.random() < s.overlap_prob else rng.uniform(0.1, 0.35) for _ in value]
        pens, gaps = _fit(pens, [g * height for g in gaps[1:]], x1 - self.lw - x, height)
        for alpha, gap in zip(pens, [0.0] + gaps):
            cy = (y0 + y1) / 2 + rng.uniform(-0.06, 0.06) * (y1 - y0)
            x += gap
            first, width = _ink_span(alpha, height)
            self.stamp(alpha, x - first + alpha.shape[1] / 2, cy)
            x += width
        return TruthField("open", x0, y0, x1 - x0 + 1, y1 - y0 + 1, value, 0)


def make_page(digits, rng, style=PageStyle(), layout_seed=None):
    """Draw one form page; returns a :class:`Page` with its truth fields.

    The form (title, labels, fields and their boxes) is drawn from ``rng``, or,
    with ``layout_seed``, from its own generator: every page with the same
    ``layout_seed`` (and page size) is the same form, filled in differently.
    """
    if style.dpi_choices:
        style = replace(style, dpi=int(style.dpi_choices[rng.integers(len(style.dpi_choices))]))
    if style.bitonal_prob and rng.random() < style.bitonal_prob:
        style = replace(style, bitonal=True, line_colour="black")  # (dropout-colour lines vanish in a bitonal scan)
    d = _Drawer(style, rng, digits)
    lay = rng if layout_seed is None else np.random.default_rng(layout_seed)
    margin = 12.0
    d.text(f"FORM {int(lay.integers(100, 999))}-{lay.choice(['A', 'B', 'C'])}  RETURN OF FIGURES", margin,
           margin + 7, 6.0)  # fmt: skip
    d.text("Write one digit per box, in black or blue ink.", margin, margin + 15, 3.2)
    fields = []
    y = margin + 24.0
    top = y
    while True:
        row_h = float(lay.uniform(8, 11))
        if y + row_h > style.height_mm - margin - 4:
            break
        x = margin + 2
        n_fields = int(lay.integers(1, 4)) if style.width_mm >= 150 else 1
        for _ in range(n_fields):
            label = FIELD_LABELS[lay.integers(len(FIELD_LABELS))]
            x += d.text(label, x, y + row_h * 0.7, 3.5) + 3
            if lay.random() < style.comb_prob:
                n = int(lay.integers(3, 9))
                cell_w = float(lay.uniform(6, 8))
                if x + n * cell_w > style.width_mm - margin - 2:
                    break
                fields.append(d.comb(x, y, n, cell_w, row_h, half=lay.random() < style.half_height_prob))
                x += n * cell_w + 10
            else:
                k = int(lay.integers(2, 6))
                w = k * row_h * 0.62 + lay.uniform(6, 12)
                if x + w > style.width_mm - margin - 2:
                    break
                fields.append(d.open(x, y, k, w, row_h))
                x += w + 10
        y += row_h + float(lay.uniform(4, 8))
    if fields and lay.random() < style.frame_prob:
        d.rect(d.px(margin - 4), d.px(top - 4), d.px(style.width_mm - margin + 4), d.px(y - 2))
    return Page(*_scan(d.page, fields, d, rng, style), style.dpi)


def _scan(page, fields, d, rng, style):
    """Rotate/scale/shift as a scanner would, then paper, noise, blur, JPEG, bitonal."""
    h, w = page.shape[:2]
    angle = rng.uniform(-style.rotation_max, style.rotation_max)
    scale = 1 + rng.uniform(-style.scale_max, style.scale_max)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += rng.uniform(-1, 1, 2) * style.shift_max_mm * d.mm
    if angle or scale != 1 or style.shift_max_mm:
        page = cv2.warpAffine(page, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=d.paper)
    for f in fields:
        corners = np.array([[f.x, f.y], [f.x + f.w - 1, f.y], [f.x + f.w - 1, f.y + f.h - 1], [f.x, f.y + f.h - 1]], float)
        moved = corners @ m[:, :2].T + m[:, 2]
        f.corners = moved.round(1).tolist()
        x0, y0 = np.floor(moved.min(0)).astype(int)
        x1, y1 = np.ceil(moved.max(0)).astype(int)
        f.x, f.y, f.w, f.h = int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)
    blur = rng.uniform(0, style.blur_max) * style.dpi / 300
    if blur > 0.2:
        page = cv2.GaussianBlur(page, (0, 0), blur)
    sigma = rng.uniform(0, style.noise_max)
    if sigma > 0:
        noise = np.empty(page.shape[:2], np.int16)
        cv2.setRNGSeed(int(rng.integers(2**31)))  # OpenCV's fast generator, seeded from ours
        cv2.randn(noise, 0, sigma)
        page = np.clip(page.astype(np.int16) + noise[..., None], 0, 255).astype(np.uint8)
    if style.bitonal:
        gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
        page = np.where(gray < 150, 0, 255).astype(np.uint8)
    elif style.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, style.jpeg_quality])
        page = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return page, fields


# --- writing pages and truth --------------------------------------------------------------


def save_pages(pages, path):
    """Write pages to ``path``; .png/.jpg/.bmp take one page, .tif/.tiff and .pdf take many."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg", ".bmp"):
        if len(pages) != 1:
            raise ValueError(f"{path}: {suffix} holds one page, got {len(pages)}")
        params = [cv2.IMWRITE_PNG_BILEVEL, 1] if suffix == ".png" and pages[0].image.ndim == 2 else []
        if suffix in (".jpg", ".jpeg"):
            params = [cv2.IMWRITE_JPEG_QUALITY, 90]
        if not cv2.imwrite(str(path), pages[0].image, params):
            raise OSError(f"{path}: could not write image")
    elif suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffWriter(path) as tif:
            for p in pages:
                img = p.image > 127 if p.image.ndim == 2 else cv2.cvtColor(p.image, cv2.COLOR_BGR2RGB)
                tif.write(img, photometric="minisblack" if img.ndim == 2 else "rgb", compression="zlib",
                          resolution=(p.dpi, p.dpi), resolutionunit="INCH")  # fmt: skip
    elif suffix == ".pdf":
        _save_pdf(pages, path)
    else:
        raise ValueError(f"{path}: unsupported output format {suffix!r}")


def _save_pdf(pages, path):
    """A scanned-style PDF: each page one JPEG image at its dpi (via pypdfium2)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for p in pages:
        h, w = p.image.shape[:2]
        w_pt, h_pt = w * 72 / p.dpi, h * 72 / p.dpi
        page = pdf.new_page(w_pt, h_pt)
        ok, buf = cv2.imencode(".jpg", p.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        image = pdfium.PdfImage.new(pdf)
        image.load_jpeg(io.BytesIO(buf.tobytes()), inline=True)
        image.set_matrix(pdfium.PdfMatrix().scale(w_pt, h_pt))
        page.insert_obj(image)
        page.gen_content()
    pdf.save(str(path))


def truth_rows(file, pages):
    for page_no, p in enumerate(pages, 1):
        for i, f in enumerate(p.fields, 1):
            yield {"file": file, "page": page_no, "field": i, "x": f.x, "y": f.y, "w": f.w, "h": f.h,
                   "value": f.value, "kind": f.kind, "cells": f.cells}  # fmt: skip


def write_truth(rows, path):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, TRUTH_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_truth(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


STYLE_PRESETS = {
    "clean": PageStyle(noise_max=2, blur_max=0.3),
    "realistic": PageStyle(rotation_max=3, scale_max=0.02, shift_max_mm=4, line_colour="random", jpeg_quality=80),
    "skewed": PageStyle(rotation_max=5, scale_max=0.03, shift_max_mm=6, line_colour="random"),
    "fax": PageStyle(dpi=200, rotation_max=2, bitonal=True, ink="black", line_colour="black", paper="white"),
    # every family drawn per field (the held-out kinds left out), scan kinds and resolutions per page
    "varied": PageStyle(rotation_max=4, scale_max=0.03, shift_max_mm=5, line_colour="random", jpeg_quality=75,
                        separators="random", spacing="random", pen="random",
                        dpi_choices=(200, 240, 300), bitonal_prob=0.2),
}


def generate(out_dir, n_pages, seed=0, digits=None, style="realistic", formats=("png",), pages_per_file=1, **overrides):
    """Write ``n_pages`` pages into ``out_dir`` plus ``truth.csv``; returns the truth rows.

    ``formats`` cycles over the files written (png, jpg, tif, pdf, bmp);
    multi-page formats hold ``pages_per_file`` pages each.
    """
    base = STYLE_PRESETS[style] if isinstance(style, str) else style
    style = replace(base, **overrides)
    if digits is None:
        from .mnist import load_mnist

        digits = DigitSource(*load_mnist("test"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, made, i = [], 0, 0
    while made < n_pages:
        fmt = formats[i % len(formats)]
        count = min(pages_per_file if fmt in ("tif", "tiff", "pdf") else 1, n_pages - made)
        pages = [make_page(digits, rng, style) for _ in range(count)]
        name = f"page{i + 1:04d}.{fmt}"
        save_pages(pages, out_dir / name)
        rows.extend(truth_rows(name, pages))
        made += count
        i += 1
    write_truth(rows, out_dir / "truth.csv")
    (out_dir / "style.json").write_text(json.dumps({"seed": seed, **asdict(style)}, indent=1) + "\n")
    return rows
