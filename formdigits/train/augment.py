"""Make MNIST digits look like crops the scanner cuts out of forms, and make non-digits.

All functions take and return 2-D ``uint8`` ink images (0 paper, 255 ink) and draw
their randomness from a ``numpy.random.Generator``, so every sample is reproducible
from its seed. Their output goes through :func:`formdigits.preprocess.preprocess`,
exactly like a scanned crop.
"""

import cv2
import numpy as np

NONDIGIT_TEST_SEED = 20261121  # the held-out non-digit crops that figures are measured on; training never draws it
SCALE = 56  # digits are redrawn at ~56 px tall, as a digit written at 200-300 dpi
_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
# Letters and signs that no handwritten digit resembles (no O, I, l, S, Z, B, g, q, ...).
NON_DIGIT_GLYPHS = "ACEFHKMNPRUVWXacefhkmnprwx#%&@"


def _to_scale(img):
    """Resize smoothly so the longer side is ``SCALE`` px (MNIST 28 px -> 56 px)."""
    h, w = img.shape
    f = SCALE / max(h, w)
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_LINEAR)


def _cell(rng):
    """An empty cell canvas somewhat larger than a digit, as the scanner cuts it."""
    h = int(SCALE * rng.uniform(1.05, 1.45))
    w = int(h * rng.uniform(0.7, 1.25))
    return np.zeros((h, w), np.uint8)


def _affine(rng, src_shape, dst_shape, rotate=12, shear=0.25, scale=(0.85, 1.1), aspect=(0.8, 1.2), shift=0.08):
    """A random rotation/scale/shear/shift mapping src's centre near dst's centre."""
    sh, sw = src_shape
    dh, dw = dst_shape
    a = np.deg2rad(rng.uniform(-rotate, rotate))
    s = rng.uniform(*scale)
    r = rng.uniform(*aspect)
    k = rng.uniform(-shear, shear)
    lin = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array([[r, k], [0, 1 / r]])
    centre_dst = np.array([dw / 2 + rng.uniform(-shift, shift) * dw, dh / 2 + rng.uniform(-shift, shift) * dh])
    t = centre_dst - lin @ np.array([sw / 2, sh / 2])
    return np.hstack([lin, t[:, None]]).astype(np.float32)


def _place(img, canvas, rng, **affine):
    m = _affine(rng, img.shape, canvas.shape, **affine)
    warped = cv2.warpAffine(img, m, (canvas.shape[1], canvas.shape[0]), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.maximum(canvas, warped)


def _stroke(img, rng):
    """Thicker or thinner pen."""
    k = int(rng.integers(2, 5))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    if rng.random() < 0.7:
        return cv2.dilate(img, kernel)
    thin = cv2.erode(img, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2, 2)))
    return thin if thin.max() >= 128 else img


def _box_lines(img, rng):
    """Remnants of the cell's box lines along one or two edges."""
    h, w = img.shape
    for _ in range(int(rng.integers(1, 3))):
        side = rng.integers(4)
        t = int(rng.integers(2, 6))
        off = int(rng.integers(0, 6))
        v = int(rng.integers(150, 256))
        frac = rng.uniform(0.3, 1.0)
        if side < 2:  # top or bottom
            y = off if side == 0 else h - 1 - off
            x0 = int(rng.uniform(0, 1 - frac) * w)
            cv2.line(img, (x0, y), (x0 + int(frac * w), y), v, t)
        else:  # left or right
            x = off if side == 2 else w - 1 - off
            y0 = int(rng.uniform(0, 1 - frac) * h)
            cv2.line(img, (x, y0), (x, y0 + int(frac * h)), v, t)
    return img


def _neighbour(img, other, rng):
    """A slice of a neighbouring (touching) digit entering from the left or right edge."""
    other = _to_scale(other)
    h, w = img.shape
    oh, ow = other.shape
    cols = np.flatnonzero(other.max(axis=0) > 64)
    if cols.size == 0:
        return img
    enter = max(1, int((cols[-1] - cols[0]) * rng.uniform(0.1, 0.3)))
    y = int(rng.integers(0, max(1, h - oh + 1)))
    ph = min(oh, h - y)
    if rng.random() < 0.5:  # from the left: the other digit's right end
        piece = other[:ph, cols[-1] - enter : cols[-1]]
        img[y : y + ph, : piece.shape[1]] = np.maximum(img[y : y + ph, : piece.shape[1]], piece)
    else:
        piece = other[:ph, cols[0] : cols[0] + enter]
        img[y : y + ph, w - piece.shape[1] :] = np.maximum(img[y : y + ph, w - piece.shape[1] :], piece)
    return img


def _erased(img, rng):
    """A band of the digit wiped out near one edge: a box line erased across a stroke written over it."""
    ys, xs = np.nonzero(img > 64)
    if xs.size == 0:
        return img
    t = int(rng.integers(3, 8))  # the erased band: the line's width and a margin, at scan scale
    band = np.zeros(img.shape, bool)
    if rng.random() < 0.7:  # a separator or side line, across the digit's left or right part
        lo, hi = xs.min(), xs.max()
        x = int(lo + (hi - lo) * (rng.uniform(0.05, 0.3) if rng.random() < 0.5 else rng.uniform(0.7, 0.95)))
        band[:, max(0, x - t // 2) : x + t - t // 2] = True
    else:  # the bottom or top line
        lo, hi = ys.min(), ys.max()
        y = int(lo + (hi - lo) * (rng.uniform(0.8, 0.97) if rng.random() < 0.7 else rng.uniform(0.03, 0.2)))
        band[max(0, y - t // 2) : y + t - t // 2, :] = True
    # as the scanner does: strokes crossing the band are put back, strokes along it are lost
    kept = np.where(band, 0, img)
    closed = cv2.morphologyEx((kept > 64).view(np.uint8), cv2.MORPH_CLOSE, np.ones((t + 3, t + 3), np.uint8)) > 0
    return np.where(band & closed, img, kept).astype(np.uint8)


def _uneven(img, rng):
    """Ink that fades along the stroke (a dry pen, a light touch): a smooth random darkness field."""
    h, w = img.shape
    field = cv2.resize(rng.uniform(0.15, 1.0, (3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return (img * np.clip(field, 0.15, 1.0)).astype(np.uint8)


def _scan(img, rng):
    """Faint ink, blur, sensor noise, a speck or two, bitonal thresholding: what a scanner adds."""
    if rng.random() < 0.3:
        img = (img * rng.uniform(0.45, 1.0)).astype(np.uint8)
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.3))
    if rng.random() < 0.4:
        noise = rng.normal(0, rng.uniform(2, 8), img.shape)
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.1:
        h, w = img.shape
        for _ in range(int(rng.integers(1, 3))):
            cv2.circle(img, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(1, 3)), 255, -1)
    if rng.random() < 0.15:  # a bitonal (fax) scan: ink or paper, at the scanner's threshold
        img = np.where(img >= rng.uniform(60, 180), 255, 0).astype(np.uint8)
    return img


def scan_like(digit, rng, neighbour=None):
    """Redraw one digit image as the scanner would cut it from a form cell."""
    img = _place(_to_scale(digit), _cell(rng), rng)
    if rng.random() < 0.35:
        img = _stroke(img, rng)
    if rng.random() < 0.25:
        img = _box_lines(img, rng)
    if neighbour is not None and rng.random() < 0.15:
        img = _neighbour(img, neighbour, rng)
    if rng.random() < 0.12:
        img = _erased(img, rng)
    if rng.random() < 0.15:
        img = _uneven(img, rng)
    return _scan(img, rng)


def _glyph(rng):
    canvas = np.zeros((SCALE * 2, SCALE * 2), np.uint8)
    font = _FONTS[rng.integers(len(_FONTS))] | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    ch = NON_DIGIT_GLYPHS[rng.integers(len(NON_DIGIT_GLYPHS))]
    cv2.putText(canvas, ch, (20, SCALE + 30), font, 2.0, 255, int(rng.integers(2, 8)), cv2.LINE_AA)
    ys, xs = np.nonzero(canvas)
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _mark(rng):
    """A tick, a cross, a scribble or a strike-through: marks people put in boxes."""
    img = np.zeros((SCALE, SCALE), np.uint8)
    t = int(rng.integers(2, 7))
    kind = rng.integers(4)
    j = lambda: rng.integers(-6, 7, 2)  # noqa: E731  hand jitter
    if kind == 0:  # tick
        p = [(8, 30) + j(), (22, 48) + j(), (50, 6) + j()]
    elif kind == 1:  # cross
        cv2.line(img, tuple(map(int, (8, 8) + j())), tuple(map(int, (48, 48) + j())), 255, t)
        p = [(48, 8) + j(), (8, 48) + j()]
    elif kind == 2:  # zigzag scribble
        n = int(rng.integers(4, 8))
        p = [(4 + 48 * i / (n - 1), 12 if i % 2 else 44) + j() for i in range(n)]
    else:  # strike-through, one to three strokes
        for i in range(int(rng.integers(1, 4))):
            y = int(rng.integers(10, 46))
            cv2.line(img, (int(rng.integers(0, 10)), y), (int(rng.integers(46, 56)), y + int(rng.integers(-5, 6))), 255, t)
        return img
    cv2.polylines(img, [np.array(p, np.int32)], False, 255, t, cv2.LINE_AA)
    return img


def _lines(rng):
    """Box-line remnants: horizontal bars, corners and T-joints.

    A lone vertical bar is deliberately absent: it cannot be told from a "1" in
    isolation, so the scanner removes such remnants by their position instead.
    """
    h, w = int(SCALE * rng.uniform(1.05, 1.45)), int(SCALE * rng.uniform(0.8, 1.3))
    img = np.zeros((h, w), np.uint8)
    t = int(rng.integers(2, 7))
    y = int(rng.choice([rng.integers(0, 8), rng.integers(h - 8, h)]))
    cv2.line(img, (int(rng.integers(0, w // 3)), y), (int(rng.integers(2 * w // 3, w)), y), 255, t)
    if rng.random() < 0.6:  # plus a vertical piece: corner or T
        x = int(rng.choice([rng.integers(0, 8), rng.integers(w - 8, w), w // 2]))
        y2 = int(rng.integers(h // 4, h // 2)) if y < h // 2 else int(rng.integers(h // 2, 3 * h // 4))
        cv2.line(img, (x, y), (x, y2), 255, t)
    return img


def _specks(rng):
    img = np.zeros((SCALE, SCALE), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        cv2.circle(img, (int(rng.integers(SCALE)), int(rng.integers(SCALE))), int(rng.integers(1, 5)), 255, -1)
    return img


def _fragment(digit, rng):
    """The top or bottom edge of a digit, as cut off by a neighbouring cell."""
    img = _to_scale(digit)
    rows = np.flatnonzero(img.max(axis=1) > 64)
    if rows.size == 0:
        return img
    keep = max(2, int((rows[-1] - rows[0]) * rng.uniform(0.1, 0.25)))
    return img[rows[0] : rows[0] + keep] if rng.random() < 0.5 else img[rows[-1] - keep : rows[-1] + 1]


def _tight(img):
    ys, xs = np.nonzero(img > 30)
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if ys.size else img


def _pair(digits, rng):
    """Two (sometimes three) digits written side by side as on a form, touching or overlapping:
    one crop of them must never read as one digit.

    Drawn with the synthesizer's own pen (smooth scaling, pen width, a slight
    slant each) at slightly different sizes and heights, so the pairs look like
    the blobs the scanner cuts from open fields, not like MNIST glued together.
    """
    from ..synth import _pen  # the same pen that writes the synthetic forms

    n = 3 if rng.random() < 0.25 else 2
    height = SCALE * rng.uniform(0.9, 1.1)
    inks = [_pen(_tight(digits[rng.integers(len(digits))]), height * rng.uniform(0.85, 1.15), rng) for _ in range(n)]
    pad = int(0.2 * height)
    canvas = np.zeros((int(2 * height), sum(i.shape[1] for i in inks) + 4 * pad), np.float32)
    x = 0.0
    for k, ink in enumerate(inks):
        h, w = ink.shape
        y = int((canvas.shape[0] - h) / 2 + rng.uniform(-0.08, 0.08) * height)
        left = max(0, int(x) - pad)
        canvas[y : y + h, left : left + w] = np.maximum(canvas[y : y + h, left : left + w], ink)
        x = left + w - pad + rng.uniform(-0.15, 0.03) * height  # next digit's ink starts here: touching or over
    img = (canvas * 255).astype(np.uint8)
    return _tight(img)


def nondigit(rng, digits=None):
    """One non-digit crop: a letter, a mark, box-line remnants, specks, a digit's edge
    or touching digits (four kinds in ten when digits are given)."""
    kind = rng.integers(5 if digits is None else 10)
    if kind == 0 or kind == 1:
        img = _place(_to_scale(_glyph(rng)), _cell(rng), rng, scale=(0.6, 1.0))
    elif kind == 2:
        img = _place(_mark(rng), _cell(rng), rng, scale=(0.6, 1.1))
    elif kind == 3:
        img = _lines(rng)
    elif kind == 4:
        img = _specks(rng)
    elif kind == 5:
        img = _place(_fragment(digits[rng.integers(len(digits))], rng), _cell(rng), rng, rotate=5, scale=(0.9, 1.1))
    else:  # four of the ten kinds: the commonest mistake to guard against in open fields
        img = _pair(digits, rng)
    return _scan(img, rng)


def nondigit_set(n, seed, digits=None):
    """A reproducible list of ``n`` non-digit crops (evaluation uses a seed training never sees)."""
    rng = np.random.default_rng(seed)
    return [nondigit(rng, digits) for _ in range(n)]


def scanner_view(images, seed):
    """Held-out digits as the scanner sees them: each clean, each redrawn as a scan, then
    ``len(images) // 5`` non-digits. Returns ``(crops, n_nondigits)``; reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    scanned = [scan_like(img, rng, images[rng.integers(len(images))]) for img in images]
    nondigits = nondigit_set(len(images) // 5, seed + 1, images)
    return list(images) + scanned + nondigits, len(nondigits)
