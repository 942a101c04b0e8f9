"""Cut a field into single-digit ink crops.

Comb fields: one crop per cell (inside its lines), none for an empty cell.
Open fields: connected components of the ink inside the box; pieces of one
digit (a detached stroke) are joined when they overlap horizontally or are
small and close; a blob wide enough to be several touching digits is offered
whole and cut at its weak columns in every way that gives digit-sized pieces
(a :class:`Slot`), and the classifier's answers choose.
Comb cells joined by ink across their separator are read the same way.
In both, specks and thin remnants of the box lines along the crop's edges are
dropped.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

# darkness that counts as ink, ~6x a scan's noise (on a dropout-colour line: darker than the line, see line_ink)
INK_LEVEL = 35
CUT_NOTE = "ink crosses the box line and was left out"
# a blob's cut into digits (as fractions of its height; tuned on the tuning sets, see BENCHMARKS.md)
CUT_SPACING = 0.1  # candidate cuts at least this far apart (the weakest column wins)
MIN_PIECE, MAX_PIECE = 0.12, 1.4  # the narrowest and widest piece that may be one digit
NARROW = 0.75  # a blob narrower than this (width / height) is one digit, unless it reads as no digit at all
STROKE = 0.3  # a blob narrower than this is one stroke: never cut
SPECK_INK, SPECK_HEIGHT = 0.2, 0.6  # an open field's blob under these shares of the typical blob's ink and height
# specks and scraps (under DOT_INK x height^2 of ink) in a row: how many, how close, how tall (x height): a broken stroke
DOTS, DOT_INK, DOT_GAP, DOTTED = 3, 0.03, 0.08, 0.35
# a "1" touching or crossing its neighbour: a straight stroke along most of the blob's height near one of its ends
ONE_SLANTS = np.linspace(-0.5, 0.5, 11)  # its lean, x per y
ONE_LENGTH, ONE_END = 0.8, 0.4  # rows of the blob it runs through; how near the end (share of the blob's width)
ONE_REST = 0.25  # the rest of the blob holds at least this share of its ink


@dataclass
class Slot:
    """The ways to read one comb cell or blob of ink: paths through a small graph.

    Nodes are x positions in the blob (0 its left end, :attr:`end` its right
    end); each edge ``(x0, x1)`` carries one digit crop, and each path from 0 to
    the end is one way to cut the blob into digits: whole, cut at its weakest
    columns, or one crop per comb cell. The classifier's answers choose the
    likeliest path (recognition-guided segmentation, see ``choose.best_path``).
    An empty comb cell has no edges. (A blob read as no digit may later be
    offered a "1" split off along its stroke: edges through nodes inside its
    first or last column, see :func:`stroke_pieces`.)
    """

    edges: list = field(default_factory=list)  # (x0, x1) per crop, x0 < x1; the first: a cell's ink or the whole blob
    crops: list = field(default_factory=list)  # uint8 ink, one per edge
    digits: int = 1  # how many digits it likely holds (comb cells joined by ink: one per cell with ink)

    def add(self, x0, x1, crop):
        self.edges.append((int(x0), int(x1)))
        self.crops.append(crop)
        return self

    def add_path(self, xs, crops):
        """One way to read the blob: ``crops`` between the nodes ``xs`` (one more than crops)."""
        for a, b, c in zip(xs[:-1], xs[1:], crops):
            self.add(a, b, c)
        return self


@dataclass
class FieldCut:
    """A field cut into :class:`Slot` s, left to right: a comb cell or a blob of ink in an open field."""

    slots: list
    notes: list = field(default_factory=list)  # what looked odd while cutting
    strip: np.ndarray | None = None  # the field's ink, lines erased (strokes across them put back): the sequence reader's
    wide: np.ndarray | None = None  # the same with the ink across the box line that was left out (only when some was)

    def crops(self):
        """Every crop of every slot, in order (what the classifier must see)."""
        return [c for slot in self.slots for c in slot.crops]

    def shapes(self):
        """Per slot, its edges, each crop's (width/height, height of its ink/height) and its expected
        number of digits: what choosing a path needs besides the classifier."""
        return [(s.edges, [piece_shape(c) for c in s.crops], s.digits) for s in self.slots]


def _strong(crop):
    """The crop's ink that counts (a quarter of its darkest and more): ``preprocess``'s threshold, unstretched."""
    return crop >= max(1, int(crop.max()) // 4)


def piece_shape(crop):
    _, _, _, ink_h = cv2.boundingRect(crop)  # of the ink (nonzero pixels); 0 for a blank crop
    h = max(crop.shape[0], 1)
    return crop.shape[1] / h, ink_h / h


DROPOUT_LINES = 120  # box lines lighter than this darkness are a dropout colour


def ink_image(dark):
    """Darkness -> ink: 0 up to the ink floor, then how much darker than that."""
    return cv2.subtract(dark, (INK_LEVEL, 0, 0, 0))  # saturating at 0


def line_ink(line_darkness):
    """Ink level up to which ink on a field's box lines is taken for the line itself and erased.

    Dark lines cannot be told from ink on them: erased whole (255). Light,
    dropout-colour lines are erased only where their ink is no darker than the line
    (a little over its typical darkness), so strokes along and across them survive.
    """
    return 255 if line_darkness >= DROPOUT_LINES else max(0, line_darkness + 10 - INK_LEVEL)


@dataclass
class _Window:
    """A field's ink with its own box lines erased, a little larger than the box."""

    ink: np.ndarray  # uint8, lines erased
    orig: np.ndarray  # uint8, as on the page
    band: np.ndarray  # bool, the erased line pixels
    reach: int  # a little more than the erased band's width
    edges: list  # x of the box's vertical lines (comb: every separator), window pixels
    starts: list  # y where each of them starts (half-height separators start low)
    top: int  # y of the top and bottom lines, window pixels
    bottom: int
    labels: np.ndarray | None = None
    stats: np.ndarray | None = None
    cut: bool = False  # a sizeable piece of ink across the box line was left out
    outside: list = field(default_factory=list)  # the blobs of that ink
    line_level: int = 255  # ink up to this on the lines is the lines' own

    @property
    def erased(self):
        """Were the lines erased whole (dark lines), cutting the strokes that cross them?"""
        return self.line_level >= 255


def _window(ink, box, line_level=255):
    edges = [box.x] + [c1 for _, c1 in box.cells[:-1]] + [box.x + box.w - 1]
    ext_x = int(0.35 * min(np.diff(edges))) if len(edges) > 2 else int(0.2 * box.h)
    ext_y = int(0.3 * box.h)
    x0, y0 = max(0, box.x - ext_x), max(0, box.y - ext_y)
    x1, y1 = min(ink.shape[1], box.x + box.w + ext_x), min(ink.shape[0], box.y + box.h + ext_y)
    orig = ink[y0:y1, x0:x1]
    win = orig.copy()
    band = np.zeros(win.shape, bool)
    r = box.line // 2 + 2
    top, bottom = box.y - y0, box.y + box.h - 1 - y0
    left, right = box.x - x0, box.x + box.w - 1 - x0
    for y in (top, bottom):
        band[max(0, y - r) : y + r + 1, max(0, left - r) : right + r + 1] = True
    edges = [e - x0 for e in edges]
    # printed separators rise equally high, but for full ones between short ticks (grouped combs): the
    # median ignores a tick that a digit seems to extend; one that reaches the top line is a full separator
    tops = [_separator_top(orig, x, top, bottom, box.line) for x in edges[1:-1]]
    inner = int(np.median(tops or [top]))
    starts = [top] + [t if _printed(orig, x, t, inner, bottom, box.line) else inner for x, t in zip(edges[1:-1], tops)] + [top]
    for x, start in zip(edges, starts):
        band[max(0, start - r) : bottom + r + 1, max(0, x - r) : x + r + 1] = True
    erase = band & (win <= line_level)
    if line_level >= 255:  # dark lines: ink on them is lost (put back where a stroke crosses, see _crop) ...
        _beside(erase, orig, box.line, r, (top, bottom), (left - r, right + r + 1), edges, starts, bottom)
    win[erase] = 0
    return _Window(win, orig, band, 2 * r + 3, edges, starts, top, bottom, line_level=line_level)


def _beside(erase, orig, line, r, rows, span, cols, starts, bottom):
    """... except where a stroke crosses a dark line or runs beside it: in a row of a vertical line's
    band (a column of a horizontal one) whose ink is wider than the line, the pixels off the line's
    core (its middle +- half its width + 1) are kept, ``erase`` changed in place. Erasing the whole
    band cut more off a digit crossing a comb separator than the line took (fax combs: "550" read
    "55", "225007" "225937")."""
    c, wide = line // 2 + 1, line + 2
    cores = []
    for y in rows:
        y0, y1, x0, x1 = max(0, y - r), y + r + 1, max(0, span[0]), span[1]
        busy = (orig[y0:y1, x0:x1] > 0).sum(0) > wide
        erase[y0:y1, x0:x1][:, busy] = False
        cores.append((slice(max(0, y - c), y + c + 1), slice(x0, x1)))
    for x, start in zip(cols, starts):
        y0, y1, x0, x1 = max(0, start - r), bottom + r + 1, max(0, x - r), x + r + 1
        busy = (orig[y0:y1, x0:x1] > 0).sum(1) > wide
        erase[y0:y1, x0:x1][busy] = False
        cores.append((slice(y0, y1), slice(max(0, x - c), x + c + 1)))
    for core in cores:  # (where lines meet, one line's kept pixels may be another's core)
        erase[core] = True


def _printed(orig, x, start, inner, bottom, line):
    """Is the ink of the separator at column ``x`` above ``inner`` (where the others start), from ``start``,
    the printed line: no wider than the same line below ``inner`` (a pen stroke along it is wider)?"""
    if start >= inner - line:
        return False
    def width(y0, y1):
        return np.median((orig[y0:y1, max(0, x - line - 3) : x + line + 4] > 0).sum(1))

    return bool(width(start, inner) <= width(inner, bottom - line) + 1)


def _separator_top(orig, x, top, bottom, line):
    """The row where a comb separator at column ``x`` starts: half-height separators rise only part way.

    Walks up from the bottom line while the separator's ink is there (short gaps
    allowed); where no ink marks it (a line lighter than the ink floor), full height.
    """
    reach, gap = line // 2 + 1, max(4, 2 * line + 2)  # the line may lean a pixel or two; dashes, specks
    there = orig[top : bottom + 1, max(0, x - reach) : x + reach + 1].max(1) > 0
    if not there[-gap:].any():
        return top
    # from the bottom row up through the rows with ink, until a gap of more than ``gap`` rows
    chain = np.concatenate([[len(there) - 1], np.flatnonzero(there)[::-1]])
    broken = np.flatnonzero(chain[:-1] - chain[1:] > gap)
    return top + int(chain[broken[0]] if broken.size else chain[-1])


def _on_a_line(w, x, y, cw, ch):
    """Does a thin blob run along one of the box's lines (within a few pixels of it)?"""
    near = w.reach // 2 + 2  # just outside the erased band
    if ch > cw:  # vertical: beside a vertical line, where there is one (half-height separators are short)
        return any(abs(x + cw / 2 - e) <= near and y + ch >= start + near for e, start in zip(w.edges, w.starts))
    return min(abs(y + ch / 2 - w.top), abs(y + ch / 2 - w.bottom)) <= near


def _assign(w, box):
    """Label the ink blobs and give each to a cell (index into the spans between edges), or -1.

    A blob belongs to the cell holding its centre of mass; a piece cut off by
    a box line (it touches the erased line, and a blob at least twice its size on
    the other side does too, within the line's width) goes with that blob.
    Blobs outside the box that join nothing inside are dropped, and so are specks,
    unless several line up into a stroke: a faint digit that a bitonal scan broke
    into dots is one blob (see :func:`_dotted`).
    """
    h = box.h
    # BBDT: 3x faster than the default algorithm when statistics are wanted, on windows this size
    n, labels, stats, cents = cv2.connectedComponentsWithStatsWithAlgorithm(w.ink, 8, cv2.CV_32S, cv2.CCL_BBDT)  # ink > 0
    w.labels, w.stats = labels, stats
    cell = np.full(n, -1)
    size = np.zeros(n)
    edge = w.reach // 2 + 1  # ink this near a line's middle touches its erased band
    for i, (x, y, cw, ch, area) in enumerate(stats.tolist()[1:], 1):  # Python ints: a tight loop
        if max(cw, ch) < 0.12 * h or area < 0.003 * h * h:
            continue  # speck
        thin_along_a_line = min(cw, ch) <= box.line + 3 and max(cw, ch) >= 4 * min(cw, ch) and (
            _on_a_line(w, x, y, cw, ch) or (cw < ch and y <= w.top + edge and y + ch >= w.bottom - edge)
        )  # (or printed from the top line to the bottom one, touching both: a divider inside the box)
        if thin_along_a_line and (w.erased or w.ink[y : y + ch, x : x + cw].max() <= 2 * w.line_level + 10):
            continue  # a remnant of the box's own lines, left by skew or a thick pen-stroke over it
        size[i] = area
        cx, cy = cents[i]
        if w.edges[0] < cx < w.edges[-1] and w.top < cy < w.bottom:
            cell[i] = int(np.searchsorted(w.edges, cx)) - 1
    for dots in _dotted(w, h):  # a faint digit that a bitonal scan broke into dots: one blob
        x0, y0 = stats[dots, :2].min(0)
        x1, y1 = (stats[dots, :2] + stats[dots, 2:4]).max(0)
        first = dots[0]
        part = labels[y0:y1, x0:x1]
        part[np.isin(part, dots)] = first
        stats[first] = (x0, y0, x1 - x0, y1 - y0, stats[dots, 4].sum())
        size[dots] = 0
        size[first] = stats[first, 4]
        cell[dots] = -1
        cell[first] = int(np.searchsorted(w.edges, (x0 + x1) / 2)) - 1
    near = cv2.dilate(w.band.view(np.uint8), np.ones((3, 3), np.uint8)) > 0
    for i in np.argsort(size):  # small pieces first
        if size[i] == 0:
            continue
        x, y, cw, ch, _ = stats[i]
        r = w.reach if ch < 0.35 * h else box.line + 4  # a short piece (a tail) reaches across the erased band
        ys, xs = slice(max(0, y - r), y + ch + r), slice(max(0, x - r), x + cw + r)
        mine = labels[ys, xs] == i
        if not (mine & near[ys, xs]).any():
            continue
        reach = cv2.dilate(mine.view(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
        others = np.flatnonzero(np.bincount(labels[ys, xs][reach], minlength=n))  # blobs within reach
        # bigger ones (a piece, not a digit beside it) inside another cell
        others = others[(others != 0) & (size[others] > 2 * size[i]) & (cell[others] >= 0) & (cell[others] != cell[i])]
        if others.size and w.erased:  # (lines not erased: nothing was cut off)
            cell[i] = cell[others[np.argmax(size[others])]]
        elif cell[i] < 0 and size[i] >= 0.02 * h * h:
            w.cut = True  # ink that crosses the box line and belongs to nothing inside
            w.outside.append(int(i))
    return cell


def _dotted(w, h):
    """Groups of specks and scraps inside the box, off its lines (where they leave scraps of their own),
    that line up into a stroke: at least ``DOTS`` of them, each within ``DOT_GAP`` x height of the next,
    spanning ``DOTTED`` x height or more. Yields label arrays."""
    stats, labels = w.stats, w.labels
    small = 1 + np.flatnonzero(stats[1:, 4] < DOT_INK * h * h)
    if len(small) < DOTS:
        return
    mid = stats[small, :2] + stats[small, 2:4] / 2
    off_lines = (np.abs(mid[:, 1] - (w.top + w.bottom) / 2) < (w.bottom - w.top) / 2 - w.reach) & (
        np.abs(mid[:, :1] - np.asarray(w.edges)).min(1) > w.reach
    )
    specks = small[off_lines]
    if len(specks) < DOTS or _height(stats, specks) < DOTTED * h:
        return
    s = stats[specks]
    y0, y1 = int(s[:, 1].min()), int((s[:, 1] + s[:, 3]).max())
    x0, x1 = int(s[:, 0].min()), int((s[:, 0] + s[:, 2]).max())
    mine = np.zeros(len(stats), bool)
    mine[specks] = True
    dots = mine[labels[y0:y1, x0:x1]]
    r = max(1, int(DOT_GAP * h))
    _, groups = cv2.connectedComponents(cv2.dilate(dots.view(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)))
    sub = labels[y0:y1, x0:x1]
    for g in range(1, int(groups.max()) + 1):
        ids = np.unique(sub[dots & (groups == g)])
        if len(ids) >= DOTS and _height(stats, ids) >= DOTTED * h:
            yield ids


def _height(stats, ids):
    return max(stats[i][1] + stats[i][3] for i in ids) - min(stats[i][1] for i in ids)


def _crop(w, ids):
    """The ink of blobs ``ids``; where an erased line crossed a stroke, the stroke is put back."""
    s = w.stats[ids]  # the blobs' joint bounding box, so only that part of the window is looked at
    x0, y0 = s[:, 0].min(), s[:, 1].min()
    x1, y1 = (s[:, 0] + s[:, 2]).max(), (s[:, 1] + s[:, 3]).max()
    mine = np.zeros(len(w.stats), bool)
    mine[ids] = True
    mask, band = mine[w.labels[y0:y1, x0:x1]], w.band[y0:y1, x0:x1]
    if band.any():
        k = np.ones((w.reach, w.reach), np.uint8)
        mask = mask | ((cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_CLOSE, k) > 0) & band)
    return np.where(mask, w.orig[y0:y1, x0:x1], 0).astype(np.uint8, copy=False)


def _field_cut(w, slots, ids):
    """The :class:`FieldCut` of a window whose field ink is the blobs ``ids``."""
    ids = list(ids)
    return FieldCut(slots, [CUT_NOTE] if w.cut else [], _crop(w, ids) if ids else None,
                    _crop(w, ids + w.outside) if w.cut else None)  # fmt: skip


def _crossed(w, cell):
    """Per separator of a comb: does ink run across it from the cell on its left into the one on its right?

    True when blobs of the two cells both reach the erased separator at about
    the same height (a digit written across the line, or two digits touching there).
    """
    out = []
    h = w.bottom - w.top
    for k, e in enumerate(w.edges[1:-1]):
        a, b = max(0, e - w.reach), min(w.labels.shape[1] - 1, e + w.reach)
        left, right = w.labels[w.top : w.bottom, a], w.labels[w.top : w.bottom, b]
        on_left = (cell[left] == k) & (left > 0)
        on_right = (cell[right] == k + 1) & (right > 0)
        near = np.convolve(on_right, np.ones(w.reach, int), mode="same") > 0  # an oblique stroke exits a little lower or higher
        out.append(bool((on_left & near).sum() >= max(2, 0.02 * h)))
    return out


def _spanned(w, cell):
    """Per separator of a comb: does one blob reach well across it on both sides (lines not erased)?"""
    x0, x1 = w.stats[1:, 0], w.stats[1:, 0] + w.stats[1:, 2]  # every blob's x-range (label 0: paper)
    inside = cell[1:] >= 0
    return [bool((inside & (x0 + m < e) & (e < x1 - m)).any())
            for e, m in zip(w.edges[1:-1], 0.15 * np.diff(w.edges))]  # fmt: skip


def cut_comb(ink, box, line_level=255):
    """One slot per cell of a comb field (an empty cell: a slot with no edges).

    Cells joined by ink across their separator are read together: one slot
    offering each cell's ink alone, or all of it cut where the ink is weakest
    (a digit written across the line); the empty slots it leaves keep the
    cells' numbering.
    """
    w = _window(ink, box, line_level)
    cell = _assign(w, box)
    n = len(box.cells)
    crossed = [a or b for a, b in zip(_crossed(w, cell), _spanned(w, cell))] + [False]
    slots, k = [], 0
    while k < n:
        j = k
        while crossed[j]:
            j += 1
        inked = [c for c in range(k, j + 1) if (cell == c).any()]
        if j == k or not inked:
            for c in range(k, j + 1):
                ids = np.flatnonzero(cell == c)
                if not ids.size:
                    slots.append(Slot())
                    continue
                crop = _crop(w, ids)
                slots.append(Slot().add(0, crop.shape[1], crop))  # (nodes: its columns, as a blob's)
        else:
            ids = np.flatnonzero((cell >= k) & (cell <= j))
            joint, x0 = _crop(w, ids), w.stats[ids, 0].min()
            W = joint.shape[1]
            slot = Slot(digits=max(1, len(inked)))
            xs = [0] + [min(max(w.edges[c] - x0, 1), W - 1) for c in inked[1:]] + [W]
            if len(inked) > 1 and all(a < b for a, b in zip(xs[:-1], xs[1:])):  # each cell's ink alone
                slot.add_path(xs, [_crop(w, np.flatnonzero(cell == c)) for c in inked])
            lines = [0] + [e - x0 for e in w.edges[k + 1 : j + 1] if 0 < e - x0 < W] + [W]
            spans = [(a, b) for a, b in zip(lines[:-1], lines[1:]) if joint[:, a:b].any()]
            if len(spans) > len(inked):  # one blob across a line, cut at the line
                slot.add_path([0] + [b for _, b in spans[:-1]] + [W], [joint[:, a:b] for a, b in spans])
            _lattice(joint, _height(w.stats, ids), 0, slot)  # whole, or cut where the ink is weakest
            slots.append(slot)
            slots.extend(Slot() for _ in range(j - k))
        k = j + 1
    return _field_cut(w, slots, np.flatnonzero(cell >= 0))


def _cut_points(crop, height, most=None):
    """Columns where a blob of touching digits may be cut: where its ink is weakest.

    Every local minimum of the ink profile, and the four weakest columns anywhere
    but the very ends (where digits overlap, the cut may lie on a slope).
    """
    w = crop.shape[1]
    profile = (crop > 0).sum(0).astype(np.float32)
    profile = np.convolve(profile, np.ones(3, np.float32) / 3, mode="same")
    cuts = []
    lo, hi = int(0.15 * w), int(0.85 * w) + 1
    for c in (lo + np.argsort(profile[lo:hi], kind="stable")).tolist():  # Python ints: a tight loop
        if all(abs(c - t) > 0.08 * w for t in cuts):
            cuts.append(c)
        if len(cuts) == 4:
            break
    r, edge = max(2, int(0.08 * height)), int(0.12 * height)
    lowest = cv2.erode(profile[None], np.ones((1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)[0]  # min filter
    cuts += [int(c) + edge for c in np.flatnonzero(profile[edge : w - edge] <= lowest[edge : w - edge])]
    kept, weight = [], profile.tolist()  # of cuts closer together than a stroke or two, the weakest
    for c in sorted(set(cuts), key=lambda c: (weight[c], c)):
        if all(abs(c - k) >= CUT_SPACING * height for k in kept):
            kept.append(c)
    return sorted(kept[:most])


def _lattice(crop, height, min_width=STROKE, slot=None):
    """A blob read whole, or cut at any of its weak columns into pieces of a digit's width (added to ``slot``).

    A narrow blob (see ``NARROW``) is cut only in two, at its weakest column: it
    is cut at all only when it reads as no digit (two digits run together).
    """
    w = crop.shape[1]
    slot = (slot or Slot()).add(0, w, crop)
    if w < min_width * height:  # a stroke
        return slot
    most = 1 if w < NARROW * height else None
    xs = [0] + [c for c in _cut_points(crop, height, most) if 2 <= c <= w - 2] + [w]
    for i, a in enumerate(xs):
        for b in xs[i + 1 :]:
            if (a, b) == (0, w):
                continue
            if b - a > MAX_PIECE * height:
                break
            piece = crop[:, a:b]
            if b - a >= max(2, MIN_PIECE * height) and piece.any():
                slot.add(a, b, piece)
    return slot


def more_pieces(crop, edges):
    """More ways to cut a blob that was read as no digit: ``(x0, x1, piece)`` edges to add to its slot.

    ``edges`` are the slot's (in columns of ``crop``, the whole blob). A slot
    offering no cut (a comb cell read alone: two digits run together in one
    cell) is offered its weak-column cuts, as an open field's blob is; every blob
    is offered a "1" split off along its stroke (:func:`stroke_pieces`).
    """
    out = []
    if len(edges) == 1:
        cuts = _lattice(crop, crop.shape[0])
        out = [(a, b, c) for (a, b), c in zip(cuts.edges[1:], cuts.crops[1:])]
    nodes = sorted({n for a, b in edges + [(a, b) for a, b, _ in out] for n in (a, b)})
    return out + stroke_pieces(crop, nodes)


def stroke_pieces(crop, nodes):
    """Another way to cut a blob whose reading held a mark that is no digit: a "1" touching or crossing
    its neighbour, split off along its stroke (see :func:`_strokes`), which no upright cut parts.

    ``crop`` is the whole blob, ``nodes`` the columns where it may be cut (its
    slot's nodes). Returns ``(x0, x1, piece)`` edges to add to its slot: for a
    "1" at the left end, the "1" from 0 to a node inside column 0 (0.2, 0.4:
    one per stroke found), and the rest of the ink from there to each cut
    (the "1" left out of it); at the right end, the same mirrored (nodes
    inside the last column).
    """
    h, w = crop.shape
    wide = max(2, MIN_PIECE * h)
    out = []
    ink = _strong(crop)
    place = {True: 0, False: 0}  # strokes found so far at each end: each gets a node of its own
    for left, band, x0, x1 in _strokes(crop):
        k, place[left] = place[left], place[left] + 1
        if (ink & ~band).sum() < ONE_REST * ink.sum():
            continue  # scraps of the stroke's own edges, not another digit
        one, rest = _trim(np.where(band, crop, 0)), np.where(band, 0, crop)
        if left:
            v = (k + 1) / 5
            pieces = [(v, b, _trim(rest[:, :b])) for b in nodes if b - x1 >= wide and b <= MAX_PIECE * h]
            stroke = (0, v, one)
        else:
            v = w - (k + 1) / 5
            pieces = [(a, v, _trim(rest[:, a:])) for a in nodes if x0 - a >= wide and w - a <= MAX_PIECE * h]
            stroke = (v, w, one)
        pieces = [p for p in pieces if p[2].any()]
        if pieces and one.any():
            out += [stroke] + pieces
    return out


def _strokes(crop, most=2):
    """Straight strokes near either end of a blob that run through most of its rows: a "1" touching or
    crossing its neighbour, which no upright cut parts.

    Each line ``x = c + slant * (y - middle)`` (slants in ``ONE_SLANTS``) is scored
    by the rows in which it meets ink (a pixel either side allowed); per end,
    the ``most`` best lines meeting ink in ``ONE_LENGTH`` of the rows, their
    centre within ``ONE_END`` of the blob's width from that end. Returns
    ``(left, band, x0, x1)`` for each: the pixels within the stroke's width of
    the line, over the rows it runs through, and the columns they span.
    """
    h, w = crop.shape
    ys, xs = np.nonzero(_strong(crop))
    if h < 8 or not len(ys):
        return []
    mid, pad = (h - 1) / 2, int(ONE_SLANTS.max() * h / 2) + 2
    n, span = len(ONE_SLANTS), w + 2 * pad
    col = np.rint(xs - ONE_SLANTS[:, None] * (ys - mid)).astype(int) + pad  # (slant, pixel): the line's column
    hit = np.zeros((n, span, h), bool)
    hit[np.arange(n)[:, None], col, ys] = True
    near = hit.copy()
    near[:, 1:-1] |= hit[:, :-2] | hit[:, 2:]
    rows = near.sum(2)  # rows in which each line meets ink
    centre = np.arange(span) - pad
    out = []
    for left in (True, False):
        at_end = (centre >= 0) & (centre < ONE_END * w) if left else (centre > (1 - ONE_END) * w) & (centre < w)
        score = np.where(at_end, rows, 0)
        taken = []
        while len(taken) < most:
            s, c = np.unravel_index(int(np.argmax(score)), score.shape)
            if score[s, c] < ONE_LENGTH * h:
                break
            score[:, max(0, c - 3) : c + 4] = 0  # the same stroke at other slants (its middle moves little)
            band = _band(hit[s], c, ONE_SLANTS[s], pad, mid, crop.shape)
            if band is not None and not any((band & t).sum() > 0.5 * band.sum() for t in taken):
                taken.append(band)
                cols = np.flatnonzero(band.any(0))
                out.append((left, band, int(cols[0]), int(cols[-1]) + 1))
    return out


def _band(hit, c, slant, pad, mid, shape):
    """The pixels of the stroke along line ``c`` of ``hit`` (columns x rows, sheared by ``slant``): within
    half its typical width (in the rows it meets ink) of its middle."""
    rows = np.flatnonzero(hit[c - 1 : c + 2].any(0))
    if not len(rows):
        return None
    runs = hit[:, rows]
    at = np.where(runs[c], c, np.where(runs[c - 1], c - 1, c + 1))  # the line's pixel in each row
    cols = np.arange(len(hit))[:, None]
    gap = ~runs  # the first paper either side of it
    lo = np.where(gap & (cols < at), cols, -1).max(0) + 1
    hi = np.where(gap & (cols > at), cols, len(hit)).min(0) - 1
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    line = float(np.median((lo + hi) / 2)) - pad + slant * (yy - mid)
    band = (np.abs(xx - line) <= float(np.median(hi - lo + 1)) / 2 + 1) & (yy >= rows[0] - 1) & (yy <= rows[-1] + 1)
    return band if band.any() else None


def _trim(crop):
    """A piece's ink without specks (under a tenth of its largest blob) and without the empty columns either side."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(_strong(crop).view(np.uint8), connectivity=8)
    if n > 2:
        keep = stats[:, cv2.CC_STAT_AREA] >= 0.1 * stats[1:, cv2.CC_STAT_AREA].max()
        keep[0] = False
        crop = np.where(keep[labels] | (labels == 0), crop, 0).astype(np.uint8)  # (faint edges stay)
    cols = np.flatnonzero(_strong(crop).any(0)) if crop.any() else []
    return crop[:, cols[0] : cols[-1] + 1] if len(cols) else crop[:, :0]


def cut_open(ink, box, line_level=255):
    """Slots of an open field, left to right: one per blob of ink (see :class:`FieldCut`)."""
    w = _window(ink, box, line_level)
    ids = np.flatnonzero(_assign(w, box) == 0)
    if not ids.size:
        return _field_cut(w, [], [])
    stats = w.stats
    # join pieces of one digit: a short piece overlapping a blob's x-range by half (a detached bar),
    # or blobs overlapping almost entirely; two tall digits side by side stay apart
    groups = []
    for i in sorted(ids, key=lambda i: stats[i][0]):
        x, _, bw, _, _ = stats[i]
        if groups:
            gx0, gx1, members = groups[-1]
            overlap = min(gx1, x + bw) - max(gx0, x)
            short = min(stats[i][3], _height(stats, members)) < 0.7 * box.h * 0.6  # a piece, not a whole digit
            if overlap >= 0.5 * min(bw, gx1 - gx0) and (short or overlap >= 0.8 * min(bw, gx1 - gx0)):
                groups[-1] = (min(gx0, x), max(gx1, x + bw), members + [i])
                continue
        groups.append((x, x + bw, [i]))
    tall = float(np.median([_height(stats, m) for _, _, m in groups]))
    # a speck beside the digits (far smaller and shorter than they are, overlapping none) is no digit
    area = [stats[m, 4].sum() for _, _, m in groups]
    typical = float(np.median(area))
    groups = [g for g, a in zip(groups, area) if a >= SPECK_INK * typical or _height(stats, g[2]) >= SPECK_HEIGHT * tall]
    # a small piece (a detached bar or hook) joins the neighbour it nearly touches
    merged = []
    for g in groups:
        if merged and g[0] - merged[-1][1] <= 0.15 * tall and (
            _height(stats, g[2]) < 0.45 * tall or _height(stats, merged[-1][2]) < 0.45 * tall
        ):
            px0, px1, members = merged[-1]
            merged[-1] = (px0, max(px1, g[1]), members + g[2])
        else:
            merged.append(g)
    slots = [_lattice(_crop(w, m), max(_height(stats, m), 0.8 * tall)) for _, _, m in merged]
    return _field_cut(w, slots, [i for _, _, m in merged for i in m])


def cut_field(ink, box, line_level=255):
    """Cut a field's ink into digits; ink on its box lines up to ``line_level`` is erased (see :func:`line_ink`)."""
    return (cut_comb if box.kind == "comb" else cut_open)(ink, box, line_level)
