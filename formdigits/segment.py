"""Cut a field into single-digit ink crops.

Comb fields: one crop per cell (inside its lines), or ``None`` for an empty cell.
Open fields: connected components of the ink inside the box; pieces of one
digit (a detached stroke) are joined when they overlap horizontally; blobs much
wider than one digit (touching digits) are split at the weakest ink columns.
In both, specks and thin remnants of the box lines along the crop's edges are
dropped.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

INK_LEVEL = 40  # darkness (above the line level for dropout forms) that counts as ink
DIGIT_ASPECT = 0.62  # typical width / height of a handwritten digit


@dataclass
class FieldCut:
    crops: list  # uint8 ink crops, left to right; comb: None for an empty cell
    notes: list = field(default_factory=list)  # what looked odd while cutting


def ink_image(dark, line_darkness):
    """Darkness -> ink, with light (dropout-colour) box lines below the ink floor."""
    floor = INK_LEVEL if line_darkness >= 120 else max(INK_LEVEL, line_darkness + 30)
    return cv2.subtract(dark, np.full_like(dark, floor))


def _components(ink, line):
    """Label the ink blobs worth keeping; returns (labels, stats of kept components)."""
    h, w = ink.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0).view(np.uint8), connectivity=8)
    keep = []
    for i in range(1, n):
        x, y, cw, ch, area = stats[i]
        if max(cw, ch) < 0.18 * h or area < 0.004 * h * h:
            continue  # speck
        thin = min(cw, ch) <= 2 * line + 2
        hugs = x <= 1 or y <= 1 or x + cw >= w - 1 or y + ch >= h - 1
        if thin and hugs and max(cw, ch) >= 3 * min(cw, ch):
            continue  # a remnant of the box lines along an edge
        keep.append(i)
    return labels, keep, stats


def _height(stats, ids):
    y0 = min(stats[i][1] for i in ids)
    y1 = max(stats[i][1] + stats[i][3] for i in ids)
    return y1 - y0


def _crop(ink, labels, ids):
    mask = np.isin(labels, ids)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.where(mask[y0:y1, x0:x1], ink[y0:y1, x0:x1], 0).astype(np.uint8)


def cut_comb(ink, box):
    """One crop (or None) per cell of a comb field."""
    pad = box.margin
    y0, y1 = box.y + pad, box.y + box.h - pad
    crops, notes = [], []
    for x0, x1 in box.cells:
        cell = ink[y0:y1, x0 + pad : x1 - pad + 1]
        if cell.size == 0:
            crops.append(None)
            continue
        labels, keep, _ = _components(cell, box.line)
        if not keep:
            crops.append(None)
            continue
        crops.append(_crop(cell, labels, keep))
        mask = np.isin(labels, keep)
        if max(mask[:, 0].sum(), mask[:, -1].sum(), mask[0].sum(), mask[-1].sum()) >= 4:
            notes.append(f"cell {len(crops)}: digit crosses the box line")
    return FieldCut(crops, notes)


def _split_points(profile, k):
    """k-1 cut columns near the even split points, at the weakest ink."""
    w = len(profile)
    cuts = []
    for j in range(1, k):
        centre = j * w / k
        lo, hi = int(centre - 0.25 * w / k), int(centre + 0.25 * w / k) + 1
        cuts.append(lo + int(np.argmin(profile[lo:hi])))
    return cuts


def cut_open(ink, box):
    """Digit crops of an open field, left to right."""
    pad = box.margin
    region = ink[box.y + pad : box.y + box.h - pad, box.x + pad : box.x + box.w - pad]
    notes = []
    if region.size == 0:
        return FieldCut([], notes)
    labels, keep, stats = _components(region, box.line)
    if not keep:
        return FieldCut([], notes)
    # join pieces of one digit: components whose x-ranges overlap by half the narrower
    groups = []
    for i in sorted(keep, key=lambda i: stats[i][0]):
        x, _, w, _, _ = stats[i]
        if groups:
            gx0, gx1, ids = groups[-1]
            overlap = min(gx1, x + w) - max(gx0, x)
            if overlap >= 0.5 * min(w, gx1 - gx0):
                groups[-1] = (min(gx0, x), max(gx1, x + w), ids + [i])
                continue
        groups.append((x, x + w, [i]))
    heights = [_height(stats, ids) for _, _, ids in groups]
    tall = float(np.median(heights))
    # a small piece (a detached bar or hook) joins the neighbour it nearly touches
    merged = []
    for g, gh in zip(groups, heights):
        if merged and gh < 0.45 * tall and g[0] - merged[-1][1] <= 0.15 * tall:
            px0, px1, pids = merged[-1]
            merged[-1] = (px0, max(px1, g[1]), pids + g[2])
        elif merged and _height(stats, merged[-1][2]) < 0.45 * tall and g[0] - merged[-1][1] <= 0.15 * tall:
            px0, _, pids = merged[-1]
            merged[-1] = (px0, g[1], pids + g[2])
        else:
            merged.append(g)
    groups = merged
    heights = [_height(stats, ids) for _, _, ids in groups]
    digit_w = DIGIT_ASPECT * tall
    crops = []
    for (gx0, gx1, ids), gh in zip(groups, heights):
        crop = _crop(region, labels, ids)
        k = int(round(crop.shape[1] / (0.95 * max(digit_w, DIGIT_ASPECT * gh))))
        if k >= 2:
            cuts = [0] + _split_points((crop > 0).sum(0), k) + [crop.shape[1]]
            for a, b in zip(cuts[:-1], cuts[1:]):
                piece = crop[:, a:b]
                if piece.any():
                    crops.append(piece)
        else:
            crops.append(crop)
    return FieldCut(crops, notes)


def cut_field(ink, box):
    return cut_comb(ink, box) if box.kind == "comb" else cut_open(ink, box)
