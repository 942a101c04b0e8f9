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


def page(fields, probs):
    work = _PageWork("f.png", 1)
    for kind, slots in fields:
        work.boxes.append((0, 0, 10, 10, kind))
        work.fields.append(([], slots))
    return _rows(work, np.array(probs), LABELS, 0.9)


def test_confidence_is_the_product_of_digit_probabilities():
    (row,) = page([("comb", [[[0.5]], [], [[0.5]]])], [onehot("3", 0.99), onehot("7", 0.95)])
    assert row.value == "37" and row.status == "ok"
    assert row.confidence == pytest.approx(0.99 * 0.95)


def test_low_confidence_goes_to_review():
    (row,) = page([("open", [[[0.5]], [[0.5]]])], [onehot("3", 0.99), onehot("7", 0.6)])
    assert (row.value, row.status) == ("37", "review")
    assert "low confidence 0.59" in row.error


def test_a_mark_that_is_no_digit_means_no_confidence():
    (row,) = page([("comb", [[[0.5]], [[0.5]]])], [onehot("3", 0.99), onehot("reject", 0.97)])
    assert (row.value, row.confidence, row.status) == ("3", 0.0, "review")
    assert "cell 2: not a digit" in row.error


def test_empty_field():
    (row,) = page([("comb", [[], []])], np.zeros((0, len(LABELS))))
    assert (row.value, row.confidence, row.status) == ("", 1.0, "empty")


def test_choose_prefers_the_cut_whose_pieces_read_clearly():
    # a blob read whole (not a digit) or cut in two pieces that read as "1" and "4"
    options = [[1.4], [0.4, 0.8]]
    probs = np.array([onehot("reject", 0.9), onehot("1", 0.98), onehot("4", 0.97)])
    assert _choose(options, probs, 0, LABELS.index("reject")) == (1, 3)
    (row,) = page([("open", [options])], probs)
    assert row.value == "14"


def test_choose_does_not_split_a_digit_on_a_near_tie():
    # a wide "0" read whole at 0.9, or cut into halves that read "0" and "1" just as clearly: one piece wins
    options = [[0.9], [0.45, 0.45]]
    probs = np.array([onehot("0", 0.9), onehot("0", 0.92), onehot("1", 0.92)])
    assert _choose(options, probs, 0, LABELS.index("reject")) == (0, 3)
