"""Debug pictures: every field outlined and labelled with value and confidence, coloured by status."""

import os
from pathlib import Path

import cv2

COLOURS = {"ok": (40, 160, 40), "review": (0, 140, 255), "empty": (160, 160, 160), "error": (0, 0, 230)}  # BGR


def draw_page(image, rows, max_width=1800):
    """A BGR picture of the page with its rows drawn on it (downscaled to ``max_width``)."""
    f = min(1.0, max_width / image.shape[1])
    pic = cv2.cvtColor(cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    scale = max(0.4, pic.shape[1] / 2000)
    for r in rows:
        if r.status == "error":
            continue
        colour = COLOURS[r.status]
        x, y, w, h = (round(v * f) for v in (r.x, r.y, r.w, r.h))
        cv2.rectangle(pic, (x, y), (x + w, y + h), colour, 2)
        label = f"{r.field}: {r.value or '-'} {r.confidence:.2f}" if r.status != "empty" else f"{r.field}: empty"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(pic, (x, y - th - 6), (x + tw + 4, y), colour, -1)
        cv2.putText(pic, label, (x + 2, y - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return pic


class DebugPictures:
    """Writes a page's picture to ``DIR/<the file's path below the inputs' common folder>-p<page>.png``.

    The input's folders are mirrored, and its whole name kept, so that no two
    input files share a picture (``a/form.png`` and ``b/form.jpg``, or ``form.png``
    and ``form.jpg``): ``DIR/a/form.png-p1.png``, ``DIR/b/form.jpg-p1.png``.
    """

    def __init__(self, folder, files):
        self.folder = Path(folder)
        try:
            self.root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
        except ValueError:  # no files, or on several drives (Windows): name them by their whole path
            self.root = None

    def path(self, file, page):
        full = os.path.abspath(file)
        below = os.path.relpath(full, self.root) if self.root else os.path.splitdrive(full)[1].lstrip("\\/")
        return self.folder / f"{below}-p{page}.png"

    def write(self, file, page, image, rows):
        out = self.path(file, page)
        out.parent.mkdir(parents=True, exist_ok=True)
        # (cv2.imwrite crashes on a name that is not UTF-8)
        out.write_bytes(cv2.imencode(".png", draw_page(image, rows))[1].tobytes())
        return out
