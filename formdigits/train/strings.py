"""Digit strings composed from MNIST digits, drawn as the scanner cuts a field's ink strip.

The sequence reader learns from these. Every string draws a *style* first
(:func:`draw_style`: size, spacing, pen, slant, baseline drift, separators,
marks, scan kind) and then its digits, so one string is consistent and the set
as a whole is varied far beyond any one synthesizer's pages:

- spacing from wide gaps to heavy overlap, digits touching;
- pens from a thin ballpoint to a thick marker: each digit's skeleton redrawn
  at the pen's width;
- slant, baseline drift, sizes that vary within the string;
- marks that are no digits: ``.`` ``,`` ``-`` ``/``, leading ticks and dashes,
  spaces, guide lines under the digits;
- real styles MNIST lacks: small joined digits, groups of zeros drawn as linked
  rings, continental 1s (a long up-stroke) and crossed 7s;
- box-line remnants, comb ticks, specks, blur, bitonal thresholding and JPEG.

All functions draw their randomness from a ``numpy.random.Generator``; a string
is reproducible from its seed. Images are ``uint8`` ink (0 paper, 255 ink).
"""

import cv2
import numpy as np
from skimage.morphology import skeletonize

SPACINGS = ("wide", "normal", "tight", "overlap")
GAPS = {"wide": (0.25, 0.9), "normal": (0.05, 0.3), "tight": (-0.08, 0.08), "overlap": (-0.35, -0.08)}  # x height


def _tight(img, level=30):
    ys, xs = np.nonzero(img > level)
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if ys.size else img


def draw_style(rng):
    """One string's style: everything that stays the same along a writer's line."""
    return {
        "height": rng.uniform(20, 64),  # px of a full-size digit, as at 150-300 dpi
        "spacing": SPACINGS[rng.choice(4, p=(0.2, 0.4, 0.25, 0.15))],
        "pen": rng.choice((0.05, 0.08, 0.11, 0.15), p=(0.3, 0.35, 0.2, 0.15)) * rng.uniform(0.8, 1.2),  # x height
        "slant": rng.uniform(-0.35, 0.35),
        "drift": rng.uniform(0, 0.12),
        "sizes": rng.uniform(0, 0.18),
        "continental": rng.random() < 0.3,  # 1s with a long up-stroke
        "crossed": rng.random() < 0.3,  # 7s with a bar
        "rings": rng.random() < 0.12,  # trailing zeros as linked rings
        "small_tail": rng.random() < 0.12,  # trailing digits small and joined
        "separators": rng.random() < 0.25,  # thousands separators, a decimal mark
        "marks": rng.random() < 0.3,  # leading/trailing ticks and dashes, slashes, specks
        "guide": rng.random() < 0.12,  # a line under the digits
        "lines": rng.random() < 0.25,  # box-line remnants and comb ticks
        "bitonal": rng.random() < 0.15,
        "jpeg": rng.random() < 0.15,
    }


def redraw(digit, height, pen, rng, aspect=1.0):
    """A digit image scaled to ``height`` px and redrawn along its skeleton with a round pen ``pen`` px wide."""
    digit = _tight(digit)
    h, w = digit.shape
    f = height / h
    big = cv2.resize(digit, (max(2, round(w * f * aspect)), max(2, round(height))), interpolation=cv2.INTER_CUBIC)
    skeleton = skeletonize(big > 110).astype(np.uint8) * 255
    if not skeleton.any():
        return big
    r = max(0.5, pen / 2)
    k = max(1, int(round(2 * r)) | 1)
    ink = cv2.dilate(skeleton, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    if pen < 2.5 and rng.random() < 0.5:  # a ballpoint's thin stroke, a little uneven
        ink = (ink * rng.uniform(0.55, 1.0)).astype(np.uint8)
    return cv2.GaussianBlur(ink, (0, 0), 0.5 + 0.15 * r)


def _canvas(h, w):
    return np.zeros((max(2, int(h)), max(2, int(w))), np.uint8)


def continental_one(height, pen, rng):
    """A 1 with a long up-stroke (flag) from its top, sometimes a foot."""
    w = int(height * rng.uniform(0.45, 0.7))
    img = _canvas(height, w)
    t = max(1, int(round(pen)))
    top, x = (w - 1 - int(rng.uniform(0.05, 0.2) * w), int(rng.uniform(0, 0.05) * height)), w - 1 - int(0.15 * w)
    flag = (int(rng.uniform(0.0, 0.2) * w), int(rng.uniform(0.3, 0.55) * height))
    cv2.line(img, flag, top, 255, t, cv2.LINE_AA)
    cv2.line(img, top, (x - int(rng.uniform(0, 0.1) * w), int(height) - 1), 255, t, cv2.LINE_AA)
    return img


def crossed(seven, pen, rng):
    """A 7 with a bar across its stem."""
    img = seven.copy()
    h, w = img.shape
    y = int(h * rng.uniform(0.45, 0.6))
    cv2.line(img, (int(w * rng.uniform(0.15, 0.35)), y), (int(w * rng.uniform(0.7, 0.95)), y + int(rng.integers(-2, 3))),
             255, max(1, int(round(pen))), cv2.LINE_AA)  # fmt: skip
    return img


def ring_zeros(n, height, pen, rng):
    """``n`` zeros drawn as small linked rings, in one stroke, as cheque writers do."""
    rw, rh = height * rng.uniform(0.35, 0.55), height * rng.uniform(0.6, 0.95)
    step = rw * rng.uniform(0.75, 1.05)
    img = _canvas(rh + 4, step * (n - 1) + rw + 4)
    t = max(1, int(round(pen)))
    cy = img.shape[0] / 2
    for i in range(n):
        cx = 2 + rw / 2 + i * step
        cv2.ellipse(img, (int(cx), int(cy)), (int(rw / 2), int(rh / 2 - 1)), rng.uniform(-20, 20), 0, 360, 255, t, cv2.LINE_AA)
        if i < n - 1:  # the link to the next ring, along the bottom
            cv2.line(img, (int(cx + rw * 0.3), int(cy + rh * 0.35)), (int(cx + step - rw * 0.3), int(cy + rh * 0.3)),
                     255, t, cv2.LINE_AA)  # fmt: skip
    return img


def _mark(kind, height, pen, rng):
    """A mark that is no digit: ``.`` ``,`` ``-`` ``/`` or a tick."""
    t = max(1, int(round(pen * rng.uniform(0.9, 1.4))))
    if kind == ".":
        d = max(2, int(pen * rng.uniform(1.0, 2.0)))
        img = _canvas(d + 2, d + 2)
        cv2.circle(img, (img.shape[1] // 2, img.shape[0] // 2), d // 2 + 1, 255, -1, cv2.LINE_AA)
    elif kind == ",":
        img = _canvas(height * 0.35, height * 0.2)
        cv2.line(img, (img.shape[1] - 2, 1), (1, img.shape[0] - 2), 255, t, cv2.LINE_AA)
    elif kind == "-":
        img = _canvas(t + 4, height * rng.uniform(0.25, 0.6))
        cv2.line(img, (1, 2 + t // 2), (img.shape[1] - 2, 2 + t // 2 + int(rng.integers(-1, 2))), 255, t, cv2.LINE_AA)
    elif kind == "/":  # taller than the digits and leaning far more than any 1
        img = _canvas(height * rng.uniform(1.1, 1.3), height * rng.uniform(0.55, 0.8))
        cv2.line(img, (img.shape[1] - 2, 1), (1, img.shape[0] - 2), 255, t, cv2.LINE_AA)
    else:  # "'": a tick
        img = _canvas(height * rng.uniform(0.2, 0.45), max(4, t + 3))
        cv2.line(img, (img.shape[1] // 2, 1), (img.shape[1] // 2 - int(rng.integers(0, 3)), img.shape[0] - 2), 255, t)
    return img


def compose(rng, images_by_digit, text=None):
    """One string: ``(ink, label)``. ``images_by_digit[d]`` holds MNIST images of digit ``d``.

    ``text`` gives the digits (and ``,`` ``.`` ``-`` ``/`` marks) to write; by
    default one is drawn: 1 to 12 digits, with the style's separators.
    """
    style = draw_style(rng)
    h, pen = style["height"], max(1.0, style["pen"] * style["height"])
    text = text if text is not None else _draw_text(rng, style)
    glyphs = []  # (image, label or "", relative y of its bottom, is it small)
    tail = len(text) - int(rng.integers(2, 4)) if style["small_tail"] else len(text)
    ring_from = len(text.rstrip("0")) if style["rings"] and text.endswith("00") else len(text)
    i = 0
    while i < len(text):
        c = text[i]
        small = i >= tail
        size = h * (rng.uniform(0.5, 0.7) if small else 1 + rng.uniform(-style["sizes"], style["sizes"]))
        if i == ring_from:
            glyphs.append((ring_zeros(len(text) - i, h, pen, rng), "0" * (len(text) - i), 0.0, True))
            break
        if c.isdigit():
            d = int(c)
            if d == 1 and style["continental"]:
                img = continental_one(size, pen, rng)
            else:
                pool = images_by_digit[d]
                img = redraw(pool[rng.integers(len(pool))], size, pen * (0.8 if small else 1), rng, rng.uniform(0.85, 1.15))
                if d == 7 and style["crossed"]:
                    img = crossed(img, pen, rng)
            glyphs.append((img, c, 0.0, small))
        else:
            drop = {".": 0.0, ",": 0.15, "-": -0.4, "/": 0.15, "'": -0.6}[c]
            glyphs.append((_mark(c, h, pen, rng), "", drop, True))
        i += 1
    ink = _lay_out(glyphs, style, rng)
    ink = _extras(ink, style, pen, rng)
    return _scan(ink, style, rng), "".join(g[1] for g in glyphs)


def _draw_text(rng, style):
    n = int(rng.choice(np.arange(1, 13), p=np.array([4, 6, 8, 10, 10, 9, 8, 7, 5, 4, 3, 2]) / 76))
    digits = "".join(str(d) for d in rng.integers(0, 10, n))
    if style["rings"] and n >= 3:
        digits = digits[: n - int(rng.integers(2, 4))] + "000"
    text = digits
    if style["separators"] and 4 <= n <= 8 and rng.random() < 0.25:  # a date
        text = f"{digits[:2]}/{digits[2:4]}/{digits[4:]}".rstrip("/")
    elif style["separators"] and n >= 4:
        sep, dec = (",", ".") if rng.random() < 0.6 else (".", ",")
        if rng.random() < 0.4:  # a decimal part
            text, frac = digits[:-2], digits[-2:]
        else:
            text, frac = digits, ""
        groups = [text[max(0, k - 3) : k] for k in range(len(text), 0, -3)][::-1]
        text = sep.join(groups) + (dec + frac if frac else "")
    if style["marks"]:
        if rng.random() < 0.4:  # (never a slash: a leading stroke that tall is a 1)
            text = rng.choice(["-", "'"]) + text
        if rng.random() < 0.3:
            text = text + rng.choice(["-", "."])
        if rng.random() < 0.2 and len(text) > 2:  # a dash or slash in the middle
            k = int(rng.integers(1, len(text)))
            text = text[:k] + "-" + text[k:]
    return text


def _lay_out(glyphs, style, rng):
    """Put the glyphs side by side on one line: spacing, baseline drift, slant."""
    h = style["height"]
    lo, hi = GAPS[style["spacing"]]
    total = sum(g[0].shape[1] for g in glyphs) + int(2 * h) + int(max(0, hi) * h * len(glyphs))
    canvas = np.zeros((int(2.2 * h), total + int(h)), np.uint8)
    base = int(1.6 * h)
    x, drift = int(0.4 * h), 0.0
    for k, (img, label, drop, small) in enumerate(glyphs):
        gh, gw = img.shape
        if k:
            gap = rng.uniform(lo, hi) * h
            if small or not label:  # marks and small digits sit closer
                gap = min(gap, rng.uniform(-0.1, 0.15) * h)
            if rng.random() < 0.05:  # a space
                gap += rng.uniform(0.3, 0.8) * h
            x = max(1, int(x + gap))
        drift = float(np.clip(drift + rng.normal(0, style["drift"] * h * 0.5), -style["drift"] * h, style["drift"] * h))
        bottom = base + int(drift + drop * h)
        if small and label and rng.random() < 0.5:
            bottom = base - int(rng.uniform(0.2, 0.45) * h)  # raised, as cents often are
        y = max(0, min(canvas.shape[0] - gh, bottom - gh))
        w = min(gw, canvas.shape[1] - x)
        if w <= 0:
            break
        canvas[y : y + gh, x : x + w] = np.maximum(canvas[y : y + gh, x : x + w], img[:, :w])
        x += gw
    m = np.float32([[1, -style["slant"], style["slant"] * base], [0, 1, 0]])
    return _tight(cv2.warpAffine(canvas, m, (canvas.shape[1], canvas.shape[0]), flags=cv2.INTER_LINEAR), 0)


def _extras(ink, style, pen, rng):
    """Paper around the ink, and what else a field's strip holds: guide lines, box-line remnants, comb ticks, specks."""
    h = style["height"]
    ph, pw = int(h * rng.uniform(0.05, 0.35)), int(h * rng.uniform(0.05, 0.4))
    ink = cv2.copyMakeBorder(ink, ph, ph, pw, pw, cv2.BORDER_CONSTANT, value=0)
    H, W = ink.shape
    t = max(1, int(rng.integers(1, 4)))
    if style["guide"]:
        y = int(H - ph + rng.uniform(-0.1, 0.1) * h)
        if rng.random() < 0.5:
            cv2.line(ink, (0, y), (W - 1, y), int(rng.integers(120, 256)), t)
        else:  # dotted
            for x in range(0, W, max(3, int(rng.integers(4, 10)))):
                cv2.circle(ink, (x, y), max(1, t // 2), int(rng.integers(120, 256)), -1)
    if style["lines"]:
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.integers(3)
            v = int(rng.integers(120, 256))
            if kind == 0:  # a piece of the top or bottom line
                y = int(rng.choice([rng.integers(0, max(1, ph // 2 + 1)), H - 1 - rng.integers(0, max(1, ph // 2 + 1))]))
                x0 = int(rng.integers(0, W))
                cv2.line(ink, (x0, y), (min(W - 1, x0 + int(rng.uniform(0.1, 0.6) * W)), y), v, t)
            elif kind == 1:  # a short comb tick rising from the bottom
                x = int(rng.integers(0, W))
                cv2.line(ink, (x, H - 1), (x, H - 1 - int(rng.uniform(0.1, 0.35) * H)), v, t)
            else:  # a side line's remnant at the strip's end
                x = int(rng.choice([rng.integers(0, max(1, pw // 2 + 1)), W - 1 - rng.integers(0, max(1, pw // 2 + 1))]))
                y0 = int(rng.integers(0, H // 2))
                cv2.line(ink, (x, y0), (x, min(H - 1, y0 + int(rng.uniform(0.2, 0.8) * H))), v, t)
    if style["marks"] and rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 5))):
            cv2.circle(ink, (int(rng.integers(W)), int(rng.integers(H))), int(rng.integers(1, max(2, int(pen)))), 255, -1)
    return ink


def _scan(ink, style, rng):
    """What a scanner adds: faint ink, blur, noise, bitonal thresholding, JPEG."""
    if rng.random() < 0.3:
        ink = (ink * rng.uniform(0.4, 1.0)).astype(np.uint8)
    if rng.random() < 0.35:
        ink = cv2.GaussianBlur(ink, (0, 0), rng.uniform(0.4, 1.2))
    if rng.random() < 0.35:
        ink = np.clip(ink + rng.normal(0, rng.uniform(2, 10), ink.shape), 0, 255).astype(np.uint8)
    if style["bitonal"]:
        ink = np.where(ink >= rng.uniform(50, 170), 255, 0).astype(np.uint8)
    if style["jpeg"]:
        _, buf = cv2.imencode(".jpg", 255 - ink, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 80))])
        ink = 255 - cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        ink = cv2.subtract(ink, (int(rng.integers(8, 25)), 0, 0, 0))  # the scanner's ink floor
    return ink


def by_digit(images, labels):
    """MNIST images grouped by their digit: ``images_by_digit[d]``."""
    return [images[labels == d] for d in range(10)]
