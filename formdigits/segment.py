"""Cut a field into single-digit ink crops.

Comb fields: one crop per cell (inside its lines), none for an empty cell.
Open fields: connected components of the ink inside the box; pieces of one
digit (a detached stroke) are joined when they overlap horizontally or are
small and close; a blob wide enough to be several touching digits is offered
whole and split in several ways, and the classifier's answers choose.
In both, specks and thin remnants of the box lines along the crop's edges are
dropped.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

INK_LEVEL = 40  # darkness (above the line level for dropout forms) that counts as ink


@dataclass
class FieldCut:
    """A field cut into slots, left to right: a comb cell or a blob of ink in an open field.

    Each slot holds the ways its ink can be read: a list of options, each a list
    of digit crops (uint8 ink). Most slots have one option of one crop; a blob
    that may be several touching digits has one option per way of splitting it,
    and the classifier picks the likeliest (recognition-guided segmentation).
    An empty comb cell is a slot with no options.
    """

    slots: list
    notes: list = field(default_factory=list)  # what looked odd while cutting

    def crops(self):
        """Every crop of every option, in order (what the classifier must see)."""
        return [c for slot in self.slots for option in slot for c in option]


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
    slots, notes = [], []
    for x0, x1 in box.cells:
        cell = ink[y0:y1, x0 + pad : x1 - pad + 1]
        if cell.size == 0:
            slots.append([])
            continue
        labels, keep, _ = _components(cell, box.line)
        if not keep:
            slots.append([])
            continue
        slots.append([[_crop(cell, labels, keep)]])
        mask = np.isin(labels, keep)
        if max(mask[:, 0].sum(), mask[:, -1].sum(), mask[0].sum(), mask[-1].sum()) >= 4:
            notes.append(f"cell {len(slots)}: digit crosses the box line")
    return FieldCut(slots, notes)


def _splits(crop, height):
    """Ways to read a blob: whole, or cut into k pieces at the weakest ink columns.

    k runs up to what the blob's width allows (a digit is at least ~0.35 of its
    height wide); two-piece cuts are tried at the three weakest columns.
    """
    w = crop.shape[1]
    options = [[crop]]
    if w < 0.8 * height:
        return options
    profile = (crop > 0).sum(0).astype(np.float32)
    profile = np.convolve(profile, np.ones(3, np.float32) / 3, mode="same")
    cuts_tried = []
    for k in range(2, min(6, int(w / (0.35 * height))) + 1):
        cuts = []
        for j in range(1, k):
            lo, hi = int((j - 0.35) * w / k), int((j + 0.35) * w / k) + 1
            cuts.append(lo + int(np.argmin(profile[lo:hi])))
        cuts_tried.append(cuts)
        if k == 2:  # the next-weakest columns too
            lo, hi = int(0.25 * w), int(0.75 * w) + 1
            for c in lo + np.argsort(profile[lo:hi], kind="stable")[1:8:3]:
                cuts_tried.append([int(c)])
    for cuts in cuts_tried:
        edges = [0] + cuts + [w]
        pieces = [crop[:, a:b] for a, b in zip(edges[:-1], edges[1:])]
        if all(p.shape[1] >= 2 and p.any() for p in pieces):
            options.append(pieces)
    return options


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
    slots = [_splits(_crop(region, labels, ids), max(gh, 0.8 * tall)) for (_, _, ids), gh in zip(groups, heights)]
    return FieldCut(slots, notes)


def cut_field(ink, box):
    return cut_comb(ink, box) if box.kind == "comb" else cut_open(ink, box)
