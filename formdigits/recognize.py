"""Digit crops of many pages -> classified in batches -> each slot's reading -> rows.

The crops of a batch of pages (:class:`Inputs`) are preprocessed when first
needed: each slot's first reading is classified, its other cuts only when that
reading is not sure to win (``classify``); the best path through every slot is
chosen (``choose_paths``); slots read with a mark that is no digit are read
again, cut in more ways (a "1" split off along its stroke, a comb cell at its
weak columns), in digits only (``read_marks``);
doubtful digits get a second look (``second_look``);
the pages' rows are made (``make_rows``). ``read`` does all of it.

Field confidence is the product of its digits' probabilities (the chance that
every digit is right, if the model is calibrated; a doubtful digit's is the mean
over it and jittered copies of it, see ``second_look``). Where a blob was cut
into digits, or comb cells joined by ink were read, the digits' probabilities
also carry the chance that the cut is right: the reading's share of all ways of
cutting it (``choose.read_slot``), split evenly among its digits. It is 0 when
a mark in it is not a digit (mostly digits run together) or when ink crossing
its box line could not be given to any digit: the value is then likely
incomplete. A field is ``review`` when its confidence is below
``min_confidence``, when a mark in it is not a digit, or when ink crossing the
box line could not be given to any digit; ``empty`` when it holds no ink at all.
"""

import math

import cv2
import numpy as np

from .choose import first_path, first_wins, read_digits, read_slot
from .classifier import reject_index
from .decide import decide
from .output import Row
from .preprocess import preprocess
from .rules import broken_rules
from .segment import CUT_NOTE, more_pieces, piece_shape


class Inputs:
    """The digit crops of a batch of pages; each is preprocessed for the network when first asked for.

    ``x[indices]`` gives the network inputs ``(len(indices), 1, S, S)`` of those crops.
    """

    def __init__(self, params, crops=()):
        self.params, self.crops = params, list(crops)
        self._x = self._ready = None

    def add(self, crops):
        """Append crops (a page's, or more ways to cut a blob); returns the index of the first."""
        self.crops.extend(crops)
        return len(self.crops) - len(crops)

    def __len__(self):
        return len(self.crops)

    def __getitem__(self, indices):
        n, held = len(self.crops), 0 if self._x is None else len(self._x)
        if held < n:  # room for the crops added since: at least twice as much, not a copy per add
            x = np.zeros((max(n, 2 * held), 1, self.params.size, self.params.size), np.float32)
            ready = np.zeros(len(x), bool)
            if held:
                x[:held], ready[:held] = self._x, self._ready
            self._x, self._ready = x, ready
        indices = np.asarray(indices, int)
        for i in np.unique(indices[~self._ready[indices]]):
            self._x[i, 0] = preprocess(self.crops[i], self.params)
        self._ready[indices] = True
        return self._x[indices]


def _slots(work):
    """``(field, slot, index of its first crop, edges, aspects, expected digits)`` for every slot of a
    page's fields, in crop order."""
    j = work.first_crop
    for f, (_, slots) in enumerate(work.fields):
        for s, (edges, aspects, digits) in enumerate(slots):
            yield f, s, j, edges, aspects, digits
            j += len(edges)


def classify(clf, x, works):
    """The classifier's answers for the crops of ``works`` (in ``x``, an :class:`Inputs`) that can matter.

    Each slot's first reading (see :func:`~formdigits.choose.first_path`) is
    classified; the rest of its crops only when that reading is not sure to win
    (see :func:`~formdigits.choose.first_wins`): most wide blobs are one clear
    digit, and their cuts need not be read (rows of zeros).
    """
    reject = reject_index(clf.labels)
    probs = np.zeros((len(x), len(clf.labels)), np.float32)
    slots = [(j, edges, aspects, digits, first_path(edges, digits) or [0])
             for work in works for _, _, j, edges, aspects, digits in _slots(work) if edges]  # fmt: skip
    firsts = [j + k for j, *_, first in slots for k in first]
    if firsts:
        probs[firsts] = clf.predict(x[firsts])
    rest = [j + k for j, edges, aspects, digits, first in slots
            if not first_wins(edges, aspects, probs[j : j + len(edges)], reject, digits)
            for k in range(len(first), len(edges))]  # fmt: skip
    if rest:
        probs[rest] = clf.predict(x[rest])
    return probs


def choose_paths(work, probs, reject):
    """``(paths, shares)``: per field, per slot, the indices (into ``probs``) of the crops on the slot's
    best path, and how sure that way of cutting it is (see :func:`~formdigits.choose.read_slot`)."""
    out, shares = [[] for _ in work.fields], [[] for _ in work.fields]
    for f, _, j, edges, aspects, digits in _slots(work):
        path, share = read_slot(edges, aspects, probs[j : j + len(edges)], reject, digits) if edges else ([], 1.0)
        out[f].append([j + e for e in path])
        shares[f].append(share)
    return out, shares


def read_marks(clf, x, works, probs, chosen):
    """Slots read with a mark that is no digit, read again in digits only, cut in more ways.

    Digits run together that no upright cut parts read as a mark that is no
    digit; often it is a "1" touching or crossing its neighbour, or two digits
    run together in one comb cell. For such slots (about one in 300) the whole
    blob is also offered cut along straight strokes near its ends, and a comb
    cell's ink cut at its weak columns (:func:`~formdigits.segment.more_pieces`):
    those crops are appended to ``x`` and classified in one batch; then the
    slot's likeliest reading in digits only is taken, if it is likely enough
    (:func:`~formdigits.choose.read_digits`). Returns ``probs`` (extended to the
    new crops) and ``chosen`` (changed in place), as from :func:`choose_paths`.
    """
    reject = reject_index(clf.labels)
    todo = []
    for work, (paths, shares) in zip(works, chosen):
        for f, s, j, edges, aspects, digits in _slots(work):
            if paths[f][s] and (probs[paths[f][s]].argmax(1) == reject).any():
                whole = (0, max(b for _, b in edges))  # the blob read whole (comb cells joined by ink: all)
                extra = more_pieces(x.crops[j + edges.index(whole)], edges) if whole in edges else []
                start = x.add([c for _, _, c in extra])
                todo.append((paths, shares, f, s, j, edges, aspects, digits, extra, start))
    if len(x) > len(probs):
        new = np.arange(len(probs), len(x))
        probs = np.concatenate([probs, clf.predict(x[new])])
    for paths, shares, f, s, j, edges, aspects, digits, extra, start in todo:
        index = list(range(j, j + len(edges))) + list(range(start, start + len(extra)))
        more = edges + [(a, b) for a, b, _ in extra], aspects + [piece_shape(c) for _, _, c in extra]
        found = read_digits(*more, probs[index], reject, digits)
        if found:
            paths[f][s], shares[f][s] = [index[k] for k in found[0]], found[1]
    return probs, chosen


DOUBT = 0.99  # a chosen digit read with less than this probability gets a second look


def second_look(clf, x, probs, paths):
    """``probs`` with the doubtful digits on the chosen paths read again, from jittered copies too.

    About one digit in ten; on the tuning set this lowers the confidence of
    ambiguous digits read wrongly more than of those read right (field error at
    5 % reject 1.2 -> 0.8 %), for a tenth more inference.
    """
    doubtful = [i for field_ in paths for slot in field_ for i in slot if probs[i].max() < DOUBT]
    if doubtful:
        probs = probs.copy()
        probs[doubtful] = clf.predict_steady(x[doubtful], probs[doubtful])
    return probs


def make_rows(work, probs, paths, labels, min_confidence, shares=None, readings=None, crops=None):
    """The page's rows, from the classifier's answers and each slot's chosen crops and how sure
    the cuts are (see :func:`choose_paths`), and, where given, the sequence reader's readings of
    each field's strip and wide strip (see ``decide``; ``crops``, indexed like ``probs``, tell
    whether the marks read as no digit are small beside the digits: separators, ticks)."""
    if work.error:
        return [Row(work.file, work.page, error=work.error, form=work.form)]
    if work.damage and not work.boxes:  # nothing to send to review: the page is lost
        return [Row(work.file, work.page, error=f"{work.file}: page {work.page}: {work.damage}, and no field "
                                                f"was found in what could be decoded", form=work.form)]  # fmt: skip
    rows = []
    reject = reject_index(labels)
    shares = shares or [[1.0] * len(chosen) for chosen in paths]
    readings = readings or [(None, None)] * len(paths)
    fields = zip(work.boxes, work.fields, paths, shares, readings)
    for n, ((x, y, w, h, kind), (cut_notes, _), chosen, sure, (seq, wide)) in enumerate(fields, 1):
        digits, confs, rows_p, notes, marks, tall = [], [], [], list(cut_notes), [], []
        for k, (slot, share) in enumerate(zip(chosen, sure), 1):
            for i, p in zip(slot, probs[slot]):
                top = int(p.argmax())
                rows_p.append(p)
                if top == reject:
                    marks.append(i)
                    notes.append(f"{'cell' if kind == 'comb' else 'mark'} {k}: not a digit")
                else:
                    digits.append(labels[top])
                    confs.append(float(p[top]) * share ** (1 / len(slot)))  # the cut's doubt shared by its digits
                    tall.append(i)
        value, inked = "".join(digits), bool(digits or marks)
        if seq is not None and inked:
            small = _small_marks(crops, marks, tall)
            value, confidence, confs, notes = decide(value, confs, rows_p, notes, seq, wide, small)
        else:
            # a mark that is no digit (or several digits run together), or ink left out, leaves the value
            # incomplete: no confidence
            incomplete = bool(marks) or CUT_NOTE in cut_notes
            confidence = 0.0 if incomplete else math.prod(confs) if confs else 1.0
        if work.rules and inked:
            notes += broken_rules(value, work.rules[n - 1])
        if work.damage:  # even an empty box: its ink may be what was lost
            notes.append(work.damage)
        if not inked and not work.damage:
            status = "empty"
        elif notes or confidence < min_confidence:
            status = "review"
            if confidence < min_confidence and value and confidence > 0:
                notes.append(f"low confidence {confidence:.2f}")
        else:
            status = "ok"
        name = work.names[n - 1] if work.names else n
        rows.append(Row(work.file, work.page, name, x, y, w, h, value, confidence, confs, status,
                        "; ".join(notes), kind, work.form))  # fmt: skip
    return rows


def _small_marks(crops, marks, digits):
    """Are the crops read as no digit (``marks``, indices into ``crops``) all small beside the field's
    ``digits``: under half their typical ink height (a separator, a tick, not a digit-sized blob)?"""
    if not marks:
        return True
    if crops is None or not digits:
        return False
    typical = float(np.median([_ink_height(crops[i]) for i in digits]))
    return max(_ink_height(crops[i]) for i in marks) < 0.5 * typical


def _ink_height(crop):
    return cv2.boundingRect(crop)[3]  # of its nonzero pixels


def read_strips(reader, works):
    """The sequence reader's ``(strip, wide strip)`` readings for every field of ``works`` (None where a
    field has none), all read in one batch; None for every page when there is no reader."""
    if reader is None:
        return [None] * len(works)
    inputs = [s for work in works for pair in work.strips for s in pair if s is not None]
    found = iter(reader.read_inputs(inputs))
    return [[tuple(None if s is None else next(found) for s in pair) for pair in work.strips] for work in works]


def read(clf, x, works, min_confidence, strips=None):
    """Classify the crops of ``works`` (stacked in ``x``), choose each slot's reading, read the fields'
    strips with ``strips`` (a :class:`~formdigits.sequence.StripReader`, or None), fill in their rows.

    Returns the classifier's first answers for every crop.
    """
    probs = classify(clf, x, works) if len(x) else None
    reject = reject_index(clf.labels)
    chosen = [choose_paths(work, probs, reject) for work in works]
    if len(x):
        probs, chosen = read_marks(clf, x, works, probs, chosen)
    final = second_look(clf, x, probs, [f for page, _ in chosen for f in page]) if len(x) else None
    for work, (page, shares), readings in zip(works, chosen, read_strips(strips, works)):
        work.readings = readings  # the sequence reader's, kept for the orientation test
        work.chosen = page  # per field, per slot: the indices (into x) of the crops read (see fieldview)
        work.rows = make_rows(work, final, page, clf.labels, min_confidence, shares, readings, x.crops)
    return probs
