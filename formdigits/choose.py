"""Recognition-guided segmentation: which way of cutting a blob into digits reads best.

A blob (or a comb cell) comes as a :class:`~formdigits.segment.Slot`: pieces
(edges) between cut points, each classified. :func:`best_path` picks the path
of pieces that the classifier reads most convincingly, with priors on how a
digit is shaped and against cutting a digit needlessly.
"""

import math

import numpy as np

from .segment import NARROW

ASPECT = np.array([0.8] * 10)  # typical width / height of each handwritten digit (MNIST)
ASPECT[1] = 0.4
ASPECT_SIGMA = 0.5  # spread of log(aspect) around it
FILL, FILL_SIGMA = 0.8, 0.2  # a digit's ink spans at least ~80 % of its blob's height (log-sd 0.2 below that)
SPLIT_COST = 1.0  # log-odds against each extra piece: a digit's arm, cut off, reads as a "1"
SHARPNESS = 4  # path scores are soft (shape priors); sharpened this much, the best reading's share ranks doubtful cuts
LEAST = 0.01  # an all-digit reading this much less likely than a mark that is no digit is not taken instead
READINGS = 16  # readings (digit strings) weighed per cut point: the heaviest; the rest only count in the total
SURE = 0.99  # comb cells joined by ink whose own ink each reads this surely are read cell by cell


def _digit_probs(probs, reject):
    """The probabilities of the digits alone (the "not a digit" column left out)."""
    return np.delete(probs, reject, axis=1) if reject >= 0 else probs


def piece_scores(aspects, probs, reject):
    """Each piece's score: the log-probability of its best digit, less its shape's implausibility and SPLIT_COST."""
    digit = _digit_probs(probs, reject)
    d = digit.argmax(1)
    aspect, fill = np.asarray(aspects, float).reshape(len(probs), -1).T
    shape = np.log(aspect / ASPECT[d]) ** 2 / (2 * ASPECT_SIGMA**2)
    shape += np.log(np.minimum(1, fill / FILL)) ** 2 / (2 * FILL_SIGMA**2)
    return np.log(np.maximum(digit.max(1), 1e-9)) - shape - SPLIT_COST


def first_path(edges, digits=1):
    """The slot's first reading: its first ``digits`` edges if they run from its start to its end, else [].

    A blob's first edge is the whole blob; comb cells joined by ink start with each cell's ink alone.
    """
    n = min(digits, len(edges))
    chain = edges[0][0] == 0 and all(edges[k][1] == edges[k + 1][0] for k in range(n - 1))
    return list(range(n)) if chain and edges[n - 1][1] == max(b for _, b in edges) else []


def first_wins(edges, aspects, probs, reject, digits=1):
    """Is the slot's :func:`first_path` sure to be chosen? ``probs``: the answers for (at least) its crops.

    Then the slot's other crops need not be classified. A blob expected to hold
    one digit: every piece scores at most -SPLIT_COST, so any cut scores at most
    -2 * SPLIT_COST, and a whole reading that scores more wins (exact), unless
    it reads as no digit at all (then all-digit readings are looked for). Comb
    cells joined by ink: when each cell's ink alone reads as a digit at least
    ``SURE``-ly, that reading is taken (on the tuning sets the full search read
    such slots differently 3 times in 314, for 28 % of all classifications).
    """
    if len(edges) == 1:
        return True
    path = first_path(edges, digits)
    if not path:
        return False
    if digits == 1:
        if probs[0].argmax() == reject:
            return False
        if aspects[0][0] < NARROW:
            return True  # a narrow blob that reads as a digit is one (its cuts are for digits run together)
        return bool(piece_scores(aspects[:1], probs[:1], reject)[0] > -2 * SPLIT_COST)
    p = np.asarray(probs)[path]
    return bool((p.max(1) >= SURE).all() and (p.argmax(1) != reject).all())


def best_path(edges, aspects, probs, reject, digits=1):
    """The likeliest way to read a blob: the indices of the edges on the best path through its slot (see :func:`read_slot`)."""
    return read_slot(edges, aspects, probs, reject, digits)[0]


def read_slot(edges, aspects, probs, reject, digits=1):
    """The likeliest way to read a blob, and how sure that way of cutting it is: ``(path, share)``.

    ``edges`` are the slot's ``(x0, x1)`` pieces (see :class:`~formdigits.segment.Slot`),
    ``aspects`` their (width/height, ink height/height), ``probs`` the classifier's answers for them.
    A path scores, for each of its pieces, the log-probability of its best digit
    minus how implausible the piece's shape is for that digit (a piece far wider
    or narrower than that digit usually is: halves of a "5" may each look like
    a 5, but not 5-shaped; or much shorter than the blob: halves of a slanted
    "1" each look like a "1"), and ``SPLIT_COST`` for each piece more or fewer
    than the ``digits`` the slot is expected to hold (a blob: one; comb cells
    joined by ink: one per cell with ink of its own). ``path`` holds the indices
    of the edges on the best path. ``share`` is how sure that reading is, cut as
    it may be: the summed weights, exp(SHARPNESS * score), of all paths that read
    the same digits, as a share of all paths' weights; near 1 when every other way
    of cutting the blob reads far worse, about 1/2 when one reading other digits
    does as well. (At each cut point only the ``READINGS`` heaviest readings so far
    are followed, all paths still count in the total: a blob with many cuts has
    exponentially many readings.) When the slot's first reading is sure to win
    (:func:`first_wins`), only its own answers are looked at (share 1).
    """
    if first_wins(edges, aspects, probs, reject, digits):
        return first_path(edges, digits) or [0], 1.0
    score = (piece_scores(aspects, probs, reject) + SPLIT_COST).tolist()
    return _read(edges, score, score, probs, reject, digits)


def read_digits(edges, aspects, probs, reject, digits=1, least=LEAST):
    """The likeliest way to read a slot in digits only, ``(path, share)`` as from :func:`read_slot`, or None.

    For a slot whose best reading holds a mark that is no digit (digits run
    together that no cut parts): the best path whose pieces all read as digits,
    its share weighed against every way of reading the slot, marks included. None
    when there is no such path or its share is below ``least``: a reading far
    less likely than the mark, worse than leaving the mark for a person.
    """
    score = piece_scores(aspects, probs, reject) + SPLIT_COST
    mark = np.asarray(probs).argmax(1) == reject
    path, share = _read(edges, np.where(mark, -1e6, score).tolist(), score.tolist(), probs, reject, digits)
    return None if mark[path].any() or share < least else (path, share)


def _read(edges, score, weight, probs, reject, digits):
    """:func:`read_slot`'s search: the best path by the edges' ``score``, its reading's share by their ``weight``
    (Python floats: a tight loop)."""
    digit = _digit_probs(probs, reject).argmax(1).tolist()
    best = {0: {0: (0.0, [])}}  # node -> pieces -> (score of the best path from 0 to it, its edges)
    total = {0: {0: 0.0}}  # node -> pieces -> log of the summed weights of all paths from 0 to it
    mass = {0: {(): 0.0}}  # node -> digits read on the way to it -> log of the summed weights of those paths
    for k in sorted(range(len(edges)), key=lambda k: edges[k]):  # by start node: every path is built in order
        a, b = edges[k]
        at = best.setdefault(b, {})  # (b > a: the paths to a are not changed while they are extended)
        for n, (s, path) in best.get(a, {}).items():
            if n + 1 not in at or s + score[k] > at[n + 1][0]:
                at[n + 1] = (s + score[k], path + [k])
        w = SHARPNESS * weight[k]
        _add(total.setdefault(b, {}), ((n + 1, t + w) for n, t in total.get(a, {}).items()))
        if len(mass.get(a, ())) > READINGS:  # (every path into a is in: a blob with many cuts keeps the heaviest)
            mass[a] = dict(sorted(mass[a].items(), key=lambda r: r[1])[-READINGS:])
        _add(mass.setdefault(b, {}), ((read + (digit[k],), m + w) for read, m in mass.get(a, {}).items()))
    end = max(b for _, b in edges)
    _, path = max(((s - SPLIT_COST * abs(n - digits), path) for n, (s, path) in best[end].items()), key=lambda e: e[0])
    s = sum(weight[k] for k in path) - SPLIT_COST * abs(len(path) - digits)  # its weight (= its score in read_slot)
    every = [t - SHARPNESS * SPLIT_COST * abs(n - digits) for n, t in total[end].items()]
    top = max(every)
    log_total = top + math.log(sum(math.exp(t - top) for t in every))
    read = tuple(digit[k] for k in path)
    mine = mass[end].get(read, -math.inf) - SHARPNESS * SPLIT_COST * abs(len(read) - digits)
    return path, math.exp(min(0.0, max(mine, SHARPNESS * s) - log_total))  # (at least the best path's own weight)


def _add(into, weights):
    """Add ``(key, log weight)`` pairs into a dict of log weights."""
    for key, w in weights:
        into[key] = _logaddexp(into[key], w) if key in into else w


def _logaddexp(a, b):
    """log(exp(a) + exp(b)), for two Python floats."""
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))
