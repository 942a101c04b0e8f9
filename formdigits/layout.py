"""Find the digit fields on a page: deskew, boxes, comb cells, reading order.

Everything works on *darkness* (0 paper .. 255 black, relative to the page's own
paper tone) and sizes itself from the page, not from an assumed dpi:

1. deskew: the angle of the page's rectangles (``minAreaRect`` of the outlines
   whose filled area is rectangular), so it follows the form's own lines;
2. boxes: connected components of the line-and-ink mask whose four sides are
   straight lines (a comb's separators and digits that touch its lines belong
   to the same component); the page border and frames around other boxes are
   dropped;
3. combs: separators are short vertical runs rising from the bottom line at
   regular spacing (full or half height); otherwise the box is an open field;
4. reading order: rows top to bottom, left to right within a row.

A page whose boxes stand upright was scanned a quarter turn off and is turned
before all this (see ``analyze``).
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

MASK_LEVEL = 30  # darkness (after a 3x3 blur) that counts as printed line or ink
MIN_BOX_PX = 12  # smaller outlines are specks, not boxes
SIDE_COVERAGE = 0.88  # share of each side a box outline must cover
HALF_FROM = 1600  # pages at least this many pixels on their short side find their skew at half size


@dataclass
class Box:
    x: int  # in deskewed page pixels, at the centre of the box lines
    y: int
    w: int
    h: int
    kind: str = "open"  # "comb" or "open"
    cells: list = field(default_factory=list)  # comb: [(x0, x1), ...] separator centres, page pixels
    line: int = 1  # line thickness, px
    small: bool = False  # far smaller than the page's other boxes, but holding ink: read, and checked by a person

    @property
    def margin(self):
        """Distance from a line's centre to the first pixel surely inside the box."""
        return (self.line + 1) // 2 + 2


@dataclass
class Layout:
    darkness: np.ndarray  # deskewed, uint8
    matrix: np.ndarray  # 2x3 affine: original page -> deskewed page
    angle: float  # degrees the page was turned to deskew it
    boxes: list  # Box, in reading order
    line_darkness: int  # typical darkness of the box lines (low for dropout colours)
    turned: int = 0  # degrees the page was turned clockwise before deskewing (0, 90, 180 or 270)

    @property
    def inverse(self):
        """2x3 affine: deskewed page -> original page."""
        return cv2.invertAffineTransform(self.matrix)

    def original_box(self, box):
        """(x, y, w, h) of a box in the original page's pixels (bounding box of its corners)."""
        inv = self.inverse
        c = np.array([[box.x, box.y], [box.x + box.w - 1, box.y], [box.x, box.y + box.h - 1],
                      [box.x + box.w - 1, box.y + box.h - 1]], np.float64) @ inv[:, :2].T + inv[:, 2]  # fmt: skip
        x0, y0 = np.floor(c.min(0) + 0.5).astype(int)
        x1, y1 = np.floor(c.max(0) + 0.5).astype(int)
        return int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)


def darkness(gray):
    """Darkness relative to the paper: 0 for paper (the page's median tone), up to 255."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"page must be 2-D uint8 grayscale, got {gray.shape} {gray.dtype}")
    sample = gray[::4, ::4]  # every 16th pixel tells the paper tone as well as all of them
    hist = cv2.calcHist([sample], [0], None, [256], [0, 256]).ravel()
    paper = int(np.searchsorted(np.cumsum(hist), sample.size / 2))
    if gray.shape[1] == 1:  # OpenCV would take a one-column page of up to 4 rows for a scalar
        return (paper - np.minimum(gray, paper)).astype(np.uint8)
    return cv2.subtract((paper, 0, 0, 0), gray)  # a scalar minus the page, saturating at 0


def line_mask(dark, level=MASK_LEVEL):
    return (cv2.blur(dark, (3, 3)) >= level).view(np.uint8)


def _contours(mask):
    """Outer boundaries at every level and their holes (CCOMP): boxes inside a frame count too."""
    return cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)


def estimate_skew(mask, contours=None):
    """Skew in degrees from the page's rectangular outlines (0 when there are none).

    ``contours``: the mask's :func:`_contours`, when already found.
    """
    h, w = mask.shape
    min_side = max(MIN_BOX_PX, 0.01 * min(h, w))
    contours, hierarchy = contours or _contours(mask)
    angles, weights = [], []
    for c, (_, _, _, parent) in zip(contours, hierarchy[0] if hierarchy is not None else []):
        if parent != -1:
            continue  # a hole
        x, y, bw, bh = cv2.boundingRect(c)
        if bw < min_side or bh < min_side or x == 0 or y == 0 or x + bw >= w or y + bh >= h:
            continue
        (_, _), (rw, rh), a = cv2.minAreaRect(c)
        if min(rw, rh) < min_side or cv2.contourArea(c) < 0.9 * rw * rh:
            continue
        angles.append((a + 45) % 90 - 45)  # the deviation from the nearest axis
        weights.append(rw + rh)
    if not angles:
        return 0.0
    order = np.argsort(angles)
    cum = np.cumsum(np.asarray(weights)[order])
    return float(np.asarray(angles)[order][np.searchsorted(cum, cum[-1] / 2)])


def _box_edges(roi):
    """(top, bottom, left, right) of a rectangle outline in a component, or None.

    Edges are the outermost rows and columns that are dark almost all the way
    across, so digits crossing a line do not move them; a 5 px dilation along
    the other axis tolerates what little skew is left.
    """
    u8 = cv2.copyMakeBorder(roi.view(np.uint8), 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0)
    rows = np.flatnonzero(_share(cv2.dilate(u8, np.ones((5, 1), np.uint8)), 1) >= SIDE_COVERAGE)
    if rows.size == 0 or rows[-1] - rows[0] < MIN_BOX_PX:
        return None
    top, bottom = int(rows[0]), int(rows[-1]) - 4  # in roi rows: undo the border and the dilation
    cols = np.flatnonzero(_share(cv2.dilate(u8[top + 2 : bottom + 3], np.ones((1, 5), np.uint8)), 0) >= SIDE_COVERAGE)
    if cols.size == 0 or cols[-1] - cols[0] < MIN_BOX_PX:
        return None
    left, right = int(cols[0]), int(cols[-1]) - 4
    inner = roi[top + 3 : bottom - 2, left + 3 : right - 2]
    if inner.size == 0 or cv2.countNonZero(inner.view(np.uint8)) > 0.5 * inner.size:
        return None  # a solid blob, not an outline
    return top, bottom, left, right


def _share(mask01, axis):
    """Share of set pixels in each column (``axis=0``) or row (``axis=1``) of a 0/1 uint8 image."""
    sums = cv2.reduce(mask01, axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    return sums / mask01.shape[axis]


def _thickness(roi):
    """Line thickness: rows of the top band that are mostly dark."""
    band = roi[: max(2, roi.shape[0] // 4)]
    return max(1, int((band.mean(1) > 0.6).sum()))


def _comb_cells(roi, line):
    """Cell x-ranges (relative to the box) if the box is a comb, else []."""
    h, w = roi.shape
    run = max(3, round(0.1 * h))  # short comb ticks count: a tenth of the box height
    bottom = h - line - 1
    band = cv2.dilate(roi[bottom - run : bottom].view(np.uint8), np.ones((1, 3), np.uint8)) > 0
    cols = band.all(0)
    cols[: line + 3] = cols[w - line - 3 :] = False
    idx = np.flatnonzero(cols)
    if idx.size == 0:
        return []
    groups = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    centres = np.array([g.mean() for g in groups])
    starts, ends = np.array([g[0] for g in groups]), np.array([g[-1] for g in groups])
    left, right = (line - 1) / 2, w - 1 - (line - 1) / 2
    best = []
    for n in range(int((right - left) / (0.3 * h)), 1, -1):  # the most cells that fit
        cw = (right - left) / n
        tolerance = max(2.0, 0.12 * cw)
        if n - 1 > len(centres) and 2 * tolerance < cw:
            continue  # each separator needs a run of its own
        expected = left + cw * np.arange(1, n)
        nearest = np.abs(centres[None, :] - expected[:, None]).min(1)
        # a separator's run widened by a stroke that runs down along it still marks the separator
        narrow = ends - starts < 0.4 * cw
        covered = (narrow & (starts <= expected[:, None] + 1) & (expected[:, None] - 1 <= ends)).any(1)
        if (covered | (nearest <= tolerance)).all():
            widened = covered & (nearest > tolerance)
            best = [e if wide else centres[np.abs(centres - e).argmin()] for e, wide in zip(expected, widened)]
            break
    if not best:
        return []
    if len(best) == 1:  # two cells: accept only a thin, straight, full-height separator
        c = int(round(best[0]))
        counts = roi[line + 1 : h - line - 1, max(0, c - line - 3) : c + line + 4].sum(1)
        if (counts > 0).mean() < 0.95 or np.median(counts) > line + 2:
            return []
    # printed separators are evenly spaced: a straight-line fit through them ignores a digit touching one
    n = len(best) + 1
    i, c = np.arange(n + 1), np.array([left] + best + [right])
    slope = ((i - i.mean()) * (c - c.mean())).sum() / ((i - i.mean()) ** 2).sum()  # least squares
    offset = c.mean() - slope * i.mean()
    edges = [left] + [offset + slope * k for k in range(1, n)] + [right]
    return [(int(round(a)), int(round(b))) for a, b in zip(edges[:-1], edges[1:])]


def _outlines(mask, contours=None):
    """``(x, y, w, h, roi)`` of each connected shape in the mask that encloses a hole, roi its own pixels.

    Outer contours with a hole (``RETR_CCOMP``) find the candidates at a fraction
    of the cost of labelling the whole page. A shape's pixels are those of the
    mask inside its outline and outside its holes (a hole's outline is the
    shape's own pixels): the same as labelling its bounding box, for less.
    """
    contours, hierarchy = contours or _contours(mask)
    if hierarchy is None:
        return
    links = hierarchy[0]
    for c, (_, _, child, parent) in zip(contours, links):
        if parent != -1 or child == -1:
            continue  # a hole, or a shape without one
        x, y, w, h = cv2.boundingRect(c)
        if w < MIN_BOX_PX or h < MIN_BOX_PX:
            continue
        holes = []
        while child != -1:
            holes.append(contours[child])
            child = links[child][0]
        # the largest hole's smaller side: a box has a room inside, a letter's loop is small
        if max(min(cv2.boundingRect(hole)[2:]) for hole in holes) < MIN_BOX_PX:
            continue
        inside = np.zeros((h, w), np.uint8)
        cv2.drawContours(inside, [c], -1, 1, cv2.FILLED, offset=(-x, -y))
        cv2.drawContours(inside, holes, -1, 0, cv2.FILLED, offset=(-x, -y))
        cv2.drawContours(inside, holes, -1, 1, 1, offset=(-x, -y))
        roi = (inside > 0) & (mask[y : y + h, x : x + w] > 0)
        if roi.sum() > 0.6 * w * h:
            continue  # a solid blob, not lines
        yield x, y, w, h, roi


def find_boxes(dark, mask=None, contours=None, level=MASK_LEVEL):
    """Boxes on a deskewed darkness image, in reading order, and the lines' typical darkness.

    ``mask``: the page's :func:`line_mask`, and ``contours`` its :func:`_contours`, when already found.
    """
    mask = line_mask(dark, level) if mask is None else mask
    H, W = mask.shape
    found = []
    for x, y, w, h, roi in _outlines(mask, contours):
        if x == 0 or y == 0 or x + w >= W or y + h >= H or (w > 0.9 * W and h > 0.9 * H):
            continue  # the page border or the scanner's edge
        edges = _box_edges(roi)
        if edges is not None:
            t, b, l, r = edges
            roi = roi[t : b + 1, l : r + 1]
            found.append((Box(int(x + l), int(y + t), r - l + 1, b - t + 1, line=_thickness(roi)), roi))
    # from the lines' outer edges to their centres, where the form's designer drew them
    for b, _ in found:
        half = b.line // 2
        b.x, b.y, b.w, b.h = b.x + half, b.y + half, b.w - 2 * half, b.h - 2 * half
    # fields are similar in height: much smaller outlines are shapes inside digits or print, or small
    # boxes (tick boxes); one that holds ink is still read, for a person to check: no ink goes unreported
    if found:
        tall = np.median([b.h for b, _ in found])
        for b, _ in found:
            b.small = b.h < 0.45 * tall
        found = [(b, roi) for b, roi in found if not b.small or _holds_ink(dark, b)]
    # frames: boxes that hold other (not small) boxes; a small box inside another is a shape in a digit
    inner = [
        (b, roi) for b, roi in found
        if not any(_within(o, b) for o, _ in found if not o.small) and not (b.small and any(_within(b, o) for o, _ in found))
    ]  # fmt: skip
    boxes, line_levels = [], []
    for b, roi in inner:
        cells = _comb_cells(roi, b.line)
        if cells:
            x0 = b.x - b.line // 2  # roi starts at the outer edge
            b.kind, b.cells = "comb", [(x0 + c0, x0 + c1) for c0, c1 in cells]
        top = dark[b.y - b.line // 2 : b.y + (b.line + 1) // 2, b.x : b.x + b.w]  # the top line, centred on it
        line_levels.append(int(np.median(top)))
        boxes.append(b)
    level = int(np.median(line_levels)) if line_levels else 255
    return reading_order(boxes), level


def _within(o, b):
    """Is box ``o`` inside box ``b`` (and not ``b`` itself)?"""
    return o is not b and o.x >= b.x and o.y >= b.y and o.x + o.w <= b.x + b.w and o.y + o.h <= b.y + b.h


def _holds_ink(dark, b):
    """Does the inside of box ``b`` (off its lines) hold ink: a mark, not a speck?"""
    m = b.line + 2
    inside = dark[b.y + m : b.y + b.h - m, b.x + m : b.x + b.w - m]
    return inside.size > 0 and cv2.countNonZero((inside >= MASK_LEVEL).view(np.uint8)) >= 0.03 * inside.size


def reading_order(boxes):
    """Rows top to bottom (a box whose centre lies within a row's span joins it), left to right."""
    rows = []
    for b in sorted(boxes, key=lambda b: b.y):
        cy = b.y + b.h / 2
        for row in rows:
            if row[0] <= cy <= row[1]:
                row[2].append(b)
                break
        else:
            rows.append([b.y, b.y + b.h, [b]])
    return [b for row in rows for b in sorted(row[2], key=lambda b: b.x)]


def _tall(boxes):
    """More boxes standing upright than lying flat: a form scanned a quarter turn off."""
    tall = sum(1 for b in boxes if b.h > 1.5 * b.w)
    return len(boxes) >= 3 and tall > sum(1 for b in boxes if b.w > 1.5 * b.h)


_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def _turn(dark, degrees):
    """The page turned clockwise, and the 3x3 affine from its pixels to the turned page's."""
    h, w = dark.shape
    m = {90: [[0, -1, h - 1], [1, 0, 0]], 180: [[-1, 0, w - 1], [0, -1, h - 1]], 270: [[0, 1, 0], [-1, 0, w - 1]]}
    return cv2.rotate(dark, _ROTATE[degrees]), np.vstack([np.array(m[degrees], float), [0, 0, 1]])


def analyze(gray, turn=0):
    """Deskew a grayscale page (turned ``turn`` degrees clockwise first) and find its boxes.

    A page whose boxes mostly stand upright (fields of digits lie flat) was
    scanned a quarter turn off: it is turned 90 degrees clockwise and analysed
    again; ``Layout.turned`` says how far it was turned in all. (Whether it is
    then upside down, the digits tell: see ``pipeline``.)
    """
    if turn not in (0, 90, 180, 270):
        raise ValueError(f"turn must be 0, 90, 180 or 270 degrees, got {turn!r}")
    dark = darkness(gray)
    layout = _analyze_dark(dark)
    if turn == 0 and _tall(layout.boxes):
        turn = 90
    if turn:
        turned, m = _turn(dark, turn)
        again = _analyze_dark(turned)
        if layout.boxes and _tall(again.boxes):
            return layout  # turning did not help: not a form on its side
        again.matrix = again.matrix @ m
        again.turned = turn
        return again
    return layout


def _skew(dark, level=MASK_LEVEL):
    """``(angle, mask, contours)``: the page's skew, and its line mask and contours when they were made on the way.

    A large page finds its skew on a half-size copy, each 2x2 block as dark as
    its darkest pixel (thin faint lines stay): a quarter of the work.
    """
    h, w = dark.shape
    if min(h, w) >= HALF_FROM:
        return estimate_skew(line_mask(_half(dark), level)), None, None
    mask = line_mask(dark, level)
    contours = _contours(mask)
    return estimate_skew(mask, contours), mask, contours


FAINT_LEVEL = MASK_LEVEL // 2  # a page with few boxes at MASK_LEVEL is looked at again for fainter lines
FEW_BOXES = 8


def _analyze_dark(dark):
    layout = _analyze_at(dark, MASK_LEVEL)
    if len(layout.boxes) < FEW_BOXES:  # light lines on tinted paper (a pale dropout colour): look again
        faint = _analyze_at(dark, FAINT_LEVEL)
        if len(faint.boxes) > len(layout.boxes):
            return faint
    else:  # boxes in a pale colour beside dark ones
        layout.boxes = reading_order(layout.boxes + _pale_boxes(layout))
    return layout


def _half(dark):
    """A half-size copy, each 2x2 block as dark as its darkest pixel (thin faint lines stay)."""
    h, w = dark.shape
    d = dark[: h // 2 * 2, : w // 2 * 2]
    return np.maximum(np.maximum(d[::2, ::2], d[1::2, ::2]), np.maximum(d[::2, 1::2], d[1::2, 1::2]))


def _pale_boxes(layout):
    """Boxes drawn in a pale colour beside the page's dark ones: found with fainter lines (on a
    half-size copy first, then each exactly, in its own window), like the page's boxes in size, and
    touching none of them."""
    dark, boxes = layout.darkness, layout.boxes
    tall, out = np.median([b.h for b in boxes]), []
    k = 2 if min(dark.shape) >= HALF_FROM else 1
    for p in find_boxes(_half(dark) if k == 2 else dark, level=FAINT_LEVEL)[0]:
        x, y, w, h = k * p.x, k * p.y, k * p.w, k * p.h
        if p.small or not 0.6 * tall <= h <= 1.6 * tall or any(_touch((x, y, w, h), b) for b in boxes):
            continue
        x0, y0 = max(0, x - 20), max(0, y - 20)
        for b in find_boxes(dark[y0 : y + h + 20, x0 : x + w + 20], level=FAINT_LEVEL)[0]:
            b.x, b.y, b.cells = b.x + x0, b.y + y0, [(a + x0, c + x0) for a, c in b.cells]
            if not b.small and 0.6 * tall <= b.h and not any(_touch((b.x, b.y, b.w, b.h), o) for o in boxes + out):
                out.append(b)
    return out


def _touch(r, b):
    x, y, w, h = r
    return x < b.x + b.w and b.x < x + w and y < b.y + b.h and b.y < y + h


def _analyze_at(dark, level):
    h, w = dark.shape
    angle, mask, contours = _skew(dark, level)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    if abs(angle) >= 0.05:
        dark = cv2.warpAffine(dark, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        mask = contours = None  # the lines moved: found again on the straightened page
    boxes, line_level = find_boxes(dark, mask, contours, level)
    return Layout(dark, matrix, angle, boxes, line_level)
