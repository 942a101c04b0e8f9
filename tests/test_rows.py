"""Turning classified crops into rows: values, confidences, statuses, and choosing between cuts."""

import numpy as np
import pytest

from formdigits.pipeline import _choose, _PageWork, _rows

LABELS = [str(d) for d in range(10)] + ["reject"]


def onehot(label, p):
    """A probability row: ``p`` on ``label``, the rest spread evenly."""
    row = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), np.float32)
    row[LABELS.index(label)] = p
    return row


def chain(*aspects):
    """A slot read one way only: full-height pieces of these width/height ratios, left to right."""
    return [(i, i + 1) for i in range(len(aspects))], [(a, 1.0) for a in aspects]


def full(*aspects):
    return [(a, 1.0) for a in aspects]


def page(fields, probs):
    work = _PageWork("f.png", 1)
    for kind, slots in fields:
        work.boxes.append((0, 0, 10, 10, kind))
        work.fields.append(([], slots))
    return _rows(work, np.array(probs), LABELS, 0.9)


def test_confidence_is_the_product_of_digit_probabilities():
    (row,) = page([("comb", [chain(0.5), ([], []), chain(0.5)])], [onehot("3", 0.99), onehot("7", 0.95)])
    assert row.value == "37" and row.status == "ok"
    assert row.confidence == pytest.approx(0.99 * 0.95)


def test_low_confidence_goes_to_review():
    (row,) = page([("open", [chain(0.5), chain(0.5)])], [onehot("3", 0.99), onehot("7", 0.6)])
    assert (row.value, row.status) == ("37", "review")
    assert "low confidence 0.59" in row.error


def test_a_mark_that_is_no_digit_means_no_confidence():
    (row,) = page([("comb", [chain(0.5), chain(0.5)])], [onehot("3", 0.99), onehot("reject", 0.97)])
    assert (row.value, row.confidence, row.status) == ("3", 0.0, "review")
    assert "cell 2: not a digit" in row.error


def test_empty_field():
    (row,) = page([("comb", [([], []), ([], [])])], np.zeros((0, len(LABELS))))
    assert (row.value, row.confidence, row.status) == ("", 1.0, "empty")


REJECT = LABELS.index("reject")


def test_choose_prefers_the_cut_whose_pieces_read_clearly():
    # a blob 56 px wide read whole (not a digit) or cut at x=16 into pieces that read "1" and "4"
    edges, aspects = [(0, 56), (0, 16), (16, 56)], full(1.4, 0.4, 1.0)
    probs = np.array([onehot("reject", 0.9), onehot("1", 0.98), onehot("4", 0.97)])
    assert _choose(edges, aspects, probs, REJECT) == [1, 2]
    (row,) = page([("open", [(edges, aspects)])], probs)
    assert row.value == "14"


def test_choose_does_not_split_a_digit_on_a_near_tie():
    # a wide "0" read whole at 0.9, or cut into halves that read "0" and "1" just as clearly: one piece wins
    edges, aspects = [(0, 36), (0, 18), (18, 36)], full(0.9, 0.45, 0.45)
    probs = np.array([onehot("0", 0.9), onehot("0", 0.92), onehot("1", 0.92)])
    assert _choose(edges, aspects, probs, REJECT) == [0]


def test_choose_finds_the_best_path_through_many_cuts():
    # three cut points; the best reading takes the pieces (0,10), (10,30), (30,40): "1", "0", "1"
    edges = [(0, 40), (0, 10), (10, 30), (30, 40), (0, 30), (10, 40)]
    aspects = full(1.3, 0.35, 0.7, 0.35, 1.0, 1.0)
    probs = np.array([onehot("reject", 0.99), onehot("1", 0.99), onehot("0", 0.99), onehot("1", 0.99),
                      onehot("reject", 0.95), onehot("reject", 0.95)])  # fmt: skip
    assert _choose(edges, aspects, probs, REJECT) == [1, 2, 3]


def test_choose_does_not_cut_a_slanted_stroke_into_shorter_ones():
    # a slanted "1" as wide as it is tall, or cut into halves that each span only half its height
    edges, aspects = [(0, 40), (0, 20), (20, 40)], [(1.0, 1.0), (0.5, 0.55), (0.5, 0.55)]
    probs = np.array([onehot("1", 0.99), onehot("1", 0.99), onehot("1", 0.99)])
    assert _choose(edges, aspects, probs, REJECT) == [0]
