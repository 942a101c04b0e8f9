"""Recognition-guided segmentation: which way of cutting a blob into digits reads best.

A blob (or a comb cell) comes as a :class:`~formdigits.segment.Slot`: pieces
(edges) between cut points, each classified. :func:`best_path` picks the path
of pieces that the classifier reads most convincingly, with priors on how a
digit is shaped and against cutting a digit needlessly.
"""

import numpy as np

ASPECT = np.array([0.8] * 10)  # typical width / height of each handwritten digit (MNIST)
ASPECT[1] = 0.4
ASPECT_SIGMA = 0.5  # spread of log(aspect) around it
FILL, FILL_SIGMA = 0.8, 0.2  # a digit's ink spans at least ~80 % of its blob's height (log-sd 0.2 below that)
SPLIT_COST = 1.0  # log-odds against each extra piece: a digit's arm, cut off, reads as a "1"


def piece_scores(aspects, probs, reject):
    """Each piece's score: the log-probability of its best digit, less its shape's implausibility and SPLIT_COST."""
    digit = np.delete(probs, reject, axis=1) if reject >= 0 else probs
    d = digit.argmax(1)
    aspect, fill = np.asarray(aspects, float).reshape(len(probs), -1).T
    shape = np.log(aspect / ASPECT[d]) ** 2 / (2 * ASPECT_SIGMA**2)
    shape += np.log(np.minimum(1, fill / FILL)) ** 2 / (2 * FILL_SIGMA**2)
    return np.log(np.maximum(digit.max(1), 1e-9)) - shape - SPLIT_COST


def whole_wins(edges, aspects, first, reject, digits=1):
    """Is reading the blob whole (its first edge, ``first`` its probabilities) sure to beat every cut?

    Every piece scores at most -SPLIT_COST, so any cut of a blob expected to hold
    one digit scores at most -2 * SPLIT_COST: a whole reading that scores more
    needs no other piece classified. (A slot expected to hold several digits
    never takes the shortcut.)
    """
    if len(edges) == 1:
        return True
    return (digits == 1 and edges[0] == (0, max(b for _, b in edges))
            and piece_scores(aspects[:1], first[None], reject)[0] > -2 * SPLIT_COST)  # fmt: skip


def best_path(edges, aspects, probs, reject, digits=1):
    """The likeliest way to read a blob: the indices of the edges on the best path through its slot.

    ``edges`` are the slot's ``(x0, x1)`` pieces (see :class:`~formdigits.segment.Slot`),
    ``aspects`` their (width/height, ink height/height), ``probs`` the classifier's answers for them.
    A path scores, for each of its pieces, the log-probability of its best digit
    minus how implausible the piece's shape is for that digit (a piece far wider
    or narrower than that digit usually is: halves of a "5" may each look like
    a 5, but not 5-shaped; or much shorter than the blob: halves of a slanted
    "1" each look like a "1"), and ``SPLIT_COST`` for each piece more or fewer
    than the ``digits`` the slot is expected to hold (a blob: one; comb cells
    joined by ink: one per cell with ink of its own). When the whole blob reads
    clearly enough (:func:`whole_wins`), only its own answer is looked at.
    """
    if whole_wins(edges, aspects, probs[0], reject, digits):
        return [0]
    score = piece_scores(aspects, probs, reject) + SPLIT_COST
    best = {(0, 0): (0.0, [])}  # (node, pieces) -> (score of the best path from 0 to it, its edges)
    for k in sorted(range(len(edges)), key=lambda k: edges[k]):  # by start node: every path is built in order
        a, b = edges[k]
        for (node, n), (s, path) in [item for item in best.items() if item[0][0] == a]:
            s += score[k]
            if (b, n + 1) not in best or s > best[(b, n + 1)][0]:
                best[(b, n + 1)] = (s, path + [k])
    end = max(b for _, b in edges)
    ends = [(s - SPLIT_COST * abs(n - digits), path) for (node, n), (s, path) in best.items() if node == end]
    return max(ends, key=lambda e: e[0])[1]
