"""Turning classified crops into rows: values, confidences, statuses, choosing between cuts; crops prepared lazily."""

import numpy as np
import pytest

from formdigits.choose import NARROW, SHARPNESS, best_path, first_path, first_wins, piece_scores, read_digits, read_slot
from formdigits.decide import agreement
from formdigits.pipeline import _PageWork
from formdigits.recognize import DOUBT, choose_paths, make_rows, second_look
from formdigits.segment import CUT_NOTE
from formdigits.sequence import Reading

LABELS = [str(d) for d in range(10)] + ["reject"]


def onehot(label, p):
    """A probability row: ``p`` on ``label``, the rest spread evenly."""
    row = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), np.float32)
    row[LABELS.index(label)] = p
    return row


def chain(*aspects):
    """A slot read one way only: full-height pieces of these width/height ratios, left to right."""
    return [(i, i + 1) for i in range(len(aspects))], [(a, 1.0) for a in aspects], 1


def full(*aspects):
    return [(a, 1.0) for a in aspects]


def page(fields, probs, notes=(), readings=None, crops=None):
    work = _PageWork("f.png", 1)
    for kind, slots in fields:
        work.boxes.append((0, 0, 10, 10, kind))
        work.fields.append((list(notes), slots))
    probs = np.array(probs)
    paths, shares = choose_paths(work, probs, LABELS.index("reject"))
    return make_rows(work, probs, paths, LABELS, 0.9, shares, readings, crops)


def seq_reading(text, p):
    """The sequence reader's answer: ``text`` read with probability ``p``, one sure frame per digit."""
    frames = np.zeros((2 * len(text) + 1, 11), np.float32)
    frames[:, 10] = 1
    for k, c in enumerate(text):
        frames[2 * k + 1] = 0
        frames[2 * k + 1, int(c)] = 1
    return Reading(text, p, tuple([p] * len(text)), frames)


def test_with_the_sequence_reader_agreeing_a_separator_is_no_reason_for_review():
    fields = [("open", [chain(0.5), chain(0.2), chain(0.5)])]  # "1", a comma, "5"
    probs = [onehot("1", 0.99), onehot("reject", 0.95), onehot("5", 0.98)]
    (alone,) = page(fields, probs)
    assert (alone.value, alone.status, alone.confidence) == ("15", "review", 0.0)
    digit, comma = np.full((40, 20), 255, np.uint8), np.full((12, 6), 255, np.uint8)
    (row,) = page(fields, probs, readings=[(seq_reading("15", 0.97), None)], crops=[digit, comma, digit])
    assert (row.value, row.status, row.error) == ("15", "ok", "")
    assert row.confidence == pytest.approx(agreement(0.99 * 0.98, 0.97))
    # a digit-sized blob read as no digit may be digits that neither reader made out: checked by a person
    (row,) = page(fields, probs, readings=[(seq_reading("15", 0.97), None)], crops=[digit, digit, digit])
    assert (row.value, row.status, row.error) == ("15", "review", "mark 2: not a digit")


def test_a_field_with_ink_is_never_empty_whatever_the_sequence_reader_says():
    (row,) = page([("open", [chain(0.5)])], [onehot("7", 0.99)], readings=[(seq_reading("", 0.99), None)])
    assert (row.value, row.status) == ("7", "review") and "readers disagree" in row.error


def test_confidence_is_the_product_of_digit_probabilities():
    (row,) = page([("comb", [chain(0.5), ([], [], 1), chain(0.5)])], [onehot("3", 0.99), onehot("7", 0.95)])
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


def test_ink_left_out_means_no_confidence():
    (row,) = page([("open", [chain(0.5)])], [onehot("3", 0.99)], notes=[CUT_NOTE])
    assert (row.value, row.confidence, row.status, row.error) == ("3", 0.0, "review", CUT_NOTE)


def test_empty_field():
    (row,) = page([("comb", [([], [], 1), ([], [], 1)])], np.zeros((0, len(LABELS))))
    assert (row.value, row.confidence, row.status) == ("", 1.0, "empty")


REJECT = LABELS.index("reject")


def test_best_path_prefers_the_cut_whose_pieces_read_clearly():
    # a blob 56 px wide read whole (not a digit) or cut at x=16 into pieces that read "1" and "4"
    edges, aspects = [(0, 56), (0, 16), (16, 56)], full(1.4, 0.4, 1.0)
    probs = np.array([onehot("reject", 0.9), onehot("1", 0.98), onehot("4", 0.97)])
    assert best_path(edges, aspects, probs, REJECT) == [1, 2]
    (row,) = page([("open", [(edges, aspects, 1)])], probs)
    assert row.value == "14"


def test_best_path_does_not_split_a_digit_on_a_near_tie():
    # a wide "0" read whole at 0.9, or cut into halves that read "0" and "1" just as clearly: one piece wins
    edges, aspects = [(0, 36), (0, 18), (18, 36)], full(0.9, 0.45, 0.45)
    probs = np.array([onehot("0", 0.9), onehot("0", 0.92), onehot("1", 0.92)])
    assert best_path(edges, aspects, probs, REJECT) == [0]


def test_best_path_finds_the_best_path_through_many_cuts():
    # three cut points; the best reading takes the pieces (0,10), (10,30), (30,40): "1", "0", "1"
    edges = [(0, 40), (0, 10), (10, 30), (30, 40), (0, 30), (10, 40)]
    aspects = full(1.3, 0.35, 0.7, 0.35, 1.0, 1.0)
    probs = np.array([onehot("reject", 0.99), onehot("1", 0.99), onehot("0", 0.99), onehot("1", 0.99),
                      onehot("reject", 0.95), onehot("reject", 0.95)])  # fmt: skip
    assert best_path(edges, aspects, probs, REJECT) == [1, 2, 3]


def test_comb_cells_joined_by_ink_are_expected_to_hold_a_digit_each():
    # two comb cells joined by ink: each cell's ink alone reads "1" and "7" (fairly), or the whole a fair "0"
    edges, aspects = [(0, 25), (25, 50), (0, 50)], full(0.5, 0.5, 1.0)
    probs = np.array([onehot("1", 0.8), onehot("7", 0.8), onehot("0", 0.9)])
    assert first_path(edges, digits=2) == [0, 1]
    assert not first_wins(edges, aspects, probs, REJECT, digits=2)  # not sure: every reading is weighed
    assert best_path(edges, aspects, probs, REJECT, digits=1) == [2]
    assert best_path(edges, aspects, probs, REJECT, digits=2) == [0, 1]
    (row,) = page([("comb", [(edges, aspects, 2), ([], [], 1)])], probs)
    assert row.value == "17"


def test_comb_cells_read_surely_one_by_one_need_no_other_reading():
    edges, aspects = [(0, 25), (25, 50), (0, 50), (0, 30), (30, 50)], full(0.5, 0.5, 1.0, 0.6, 0.4)
    probs = np.array([onehot("1", 0.995), onehot("7", 0.99)] + [np.zeros(len(LABELS))] * 3)  # the rest unread
    assert first_wins(edges, aspects, probs, REJECT, digits=2)
    assert best_path(edges, aspects, probs, REJECT, digits=2) == [0, 1]
    probs[1] = onehot("reject", 0.995)  # a cell's ink that is no digit: everything must be read
    assert not first_wins(edges, aspects, probs, REJECT, digits=2)


def test_best_path_does_not_cut_a_slanted_stroke_into_shorter_ones():
    # a slanted "1" as wide as it is tall, or cut into halves that each span only half its height
    edges, aspects = [(0, 40), (0, 20), (20, 40)], [(1.0, 1.0), (0.5, 0.55), (0.5, 0.55)]
    probs = np.array([onehot("1", 0.99), onehot("1", 0.99), onehot("1", 0.99)])
    assert best_path(edges, aspects, probs, REJECT) == [0]


def test_skipping_the_cuts_of_a_clear_whole_never_changes_the_choice():
    # the shortcut in best_path (whole blob clear enough: its cuts are not even classified) against the full search
    rng = np.random.default_rng(0)
    edges = [(0, 60), (0, 20), (0, 35), (20, 35), (20, 60), (35, 60)]
    shortcuts = rescued = 0
    for _ in range(2000):
        probs = rng.dirichlet(np.full(len(LABELS), 0.05), size=len(edges)).astype(np.float32)
        aspects = [(float(rng.uniform(0.3, 1.6)), float(rng.uniform(0.5, 1.0))) for _ in edges]
        aspects[0] = (float(rng.uniform(NARROW, 1.6)), 1.0)  # (narrow blobs: see the next test)
        scores = piece_scores(aspects, probs, REJECT)
        full = _best_path_by_brute_force(edges, scores)
        assert best_path(edges, aspects, probs, REJECT) == full
        shortcuts += first_wins(edges, aspects, probs, REJECT)
        mark = probs.argmax(1) == REJECT
        if not mark.all():  # the best reading in digits only, when there is one likely enough
            digits_only = _best_path_by_brute_force(edges, np.where(mark, -1e6, scores))
            found = read_digits(edges, aspects, probs, REJECT, least=0)
            assert found[0] == digits_only if not mark[digits_only].any() else found is None
            rescued += found is not None and found[0] != full
    assert shortcuts > 100  # the shortcut was taken often enough to be tested
    assert rescued > 100  # and the digits-only reading differed often enough


def test_a_narrow_blob_is_cut_only_when_it_reads_as_no_digit():
    # two "1"s run together: narrow, and whole it reads as no digit; cut, as two clear 1s
    edges, aspects = [(0, 30), (0, 14), (14, 30)], [(0.48, 1.0), (0.22, 1.0), (0.25, 1.0)]
    probs = np.array([onehot("reject", 0.97), onehot("1", 0.99), onehot("1", 0.99)])
    assert not first_wins(edges, aspects, probs, REJECT)
    assert best_path(edges, aspects, probs, REJECT) == [1, 2]
    probs[0] = onehot("4", 0.3)  # a narrow blob that reads as a digit, even doubtfully, is that digit
    assert first_wins(edges, aspects, probs, REJECT)
    assert best_path(edges, aspects, probs, REJECT) == [0]
    wide = [(NARROW + 0.1, 1.0)] + aspects[1:]  # as wide as a digit: its cuts are weighed
    assert not first_wins(edges, wide, probs, REJECT)


def test_the_share_says_how_sure_a_cut_is():
    # two 1s run together: whole, no digit; cut, two clear 1s -- no other reading comes close
    edges, aspects = [(0, 30), (0, 14), (14, 30)], [(0.9, 1.0), (0.4, 1.0), (0.4, 1.0)]
    probs = np.array([onehot("reject", 0.97), onehot("1", 0.99), onehot("1", 0.99)])
    path, share = read_slot(edges, aspects, probs, REJECT)
    assert path == [1, 2] and share > 0.99
    # whole, a doubtful 4; cut, two clear 1s: the cut wins, but the 4 is nearly as likely
    probs[0] = onehot("4", 0.3)
    scores = piece_scores(aspects, probs, REJECT) + 1.0  # (SPLIT_COST: one piece is the expected count)
    path, share = read_slot(edges, aspects, probs, REJECT)
    gap = scores[1] + scores[2] - 1.0 - scores[0]  # best path's score over the whole's
    assert share == pytest.approx(1 / (1 + np.exp(-SHARPNESS * gap)))
    assert 0.5 < share < 0.99


def test_paths_that_read_the_same_digits_add_up():
    # comb cells joined by ink: each cell alone, or the ink cut at the line, give the same two digits
    edges, aspects = [(0, 25), (25, 50), (0, 50), (0, 26), (26, 50)], full(0.5, 0.5, 1.0, 0.52, 0.48)
    probs = np.array([onehot("1", 0.9), onehot("7", 0.9), onehot("reject", 0.9), onehot("1", 0.9), onehot("7", 0.9)])
    _, share = read_slot(edges, aspects, probs, REJECT, digits=2)
    assert share > 0.99  # not 1/2: both ways read "17"


def test_a_blob_with_many_cuts_is_read_without_weighing_every_reading():
    # 40 pieces in a row, each also joined with the next: 10^8 paths, most reading different digits
    # (weighing every reading took minutes; the template benchmark's empty, faint combs have such slots)
    n = 40
    edges = [(i, i + 1) for i in range(n)] + [(i, i + 2) for i in range(n - 1)]
    aspects = full(*[0.6] * n, *[1.0] * (n - 1))
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(len(LABELS), 0.3), size=len(edges)).astype(np.float32)
    path, share = read_slot(edges, aspects, probs, REJECT, digits=n)
    assert path == best_path(edges, aspects, probs, REJECT, digits=n) and 0 < share < 1


def test_a_doubtful_cut_lowers_the_field_confidence():
    edges, aspects = [(0, 30), (0, 14), (14, 30)], [(0.9, 1.0), (0.4, 1.0), (0.4, 1.0)]
    probs = [onehot("4", 0.3), onehot("1", 0.99), onehot("1", 0.99)]
    (row,) = page([("open", [(edges, aspects, 1)])], probs)
    share = read_slot(edges, aspects, np.array(probs), REJECT)[1]
    assert row.value == "11" and row.confidence == pytest.approx(0.99 * 0.99 * share)
    assert row.digit_confidences == pytest.approx([0.99 * share**0.5] * 2)  # the cut's doubt, shared


def _best_path_by_brute_force(edges, scores):
    paths = [[k] for k, (a, _) in enumerate(edges) if a == 0]
    done = []
    while paths:
        p = paths.pop()
        end = edges[p[-1]][1]
        if end == 60:
            done.append(p)
        paths += [p + [k] for k, (a, _) in enumerate(edges) if a == end]
    return max(done, key=lambda p: (sum(scores[k] for k in p), -len(p)))


class _Steady:
    """A classifier stand-in whose second look reads every crop as a sure 8."""

    def __init__(self):
        self.seen = []

    def predict_steady(self, x, plain):
        self.seen.append(x[:, 0, 0, 0].tolist())
        return np.array([onehot("8", 0.999)] * len(x))


def test_second_look_rereads_only_doubtful_chosen_digits():
    probs = np.array([onehot("3", 0.999), onehot("5", 0.97), onehot("7", DOUBT - 0.01), onehot("1", 0.5)])
    x = np.arange(4, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 28, 28), np.float32)
    clf = _Steady()
    final = second_look(clf, x, probs, [[[0], [1]], [[2]]])  # crop 3 is on no chosen path
    assert clf.seen == [[1.0, 2.0]]  # the doubtful chosen crops, and only they
    assert [LABELS[i] for i in final.argmax(1)] == ["3", "8", "8", "1"]
    assert probs[1].argmax() == 5  # the first answers are left as they were


def test_crops_are_preprocessed_only_when_asked_for(monkeypatch):
    from formdigits import recognize
    from formdigits.preprocess import DEFAULT_PARAMS, preprocess_batch

    crops = [np.zeros((30, 20), np.uint8) for _ in range(4)]
    for i, c in enumerate(crops):
        c[5:25, 3 + i : 8 + i] = 255
    made = []
    real = recognize.preprocess
    monkeypatch.setattr(recognize, "preprocess", lambda c, p: made.append(len(made)) or real(c, p))
    x = recognize.Inputs(DEFAULT_PARAMS)
    assert x.add(crops[:1]) == 0 and x.add(crops[1:]) == 1 and len(x) == 4
    np.testing.assert_array_equal(x[[2, 0, 2]], preprocess_batch([crops[2], crops[0], crops[2]]))
    assert len(made) == 2  # crops 0 and 2, once each
    np.testing.assert_array_equal(x[[0, 3]], preprocess_batch([crops[0], crops[3]]))
    assert len(made) == 3
    assert x.add(crops[1:2]) == 4 and len(x) == 5  # more ways to cut a blob, after some were taken
    np.testing.assert_array_equal(x[[4, 0]], preprocess_batch([crops[1], crops[0]]))
    assert len(made) == 4


class _Lookup:
    """A classifier stand-in that knows some network inputs by heart; anything else is no digit."""

    labels = LABELS

    def __init__(self, known):
        self.known = {x.tobytes(): label for x, label in known}

    def predict(self, x):
        return np.array([onehot(self.known.get(i.tobytes(), "reject"), 0.98) for i in x])


def test_a_mark_that_is_no_digit_is_read_again_with_a_one_split_off():
    import cv2

    from formdigits.preprocess import DEFAULT_PARAMS, preprocess
    from formdigits.recognize import Inputs, read_marks
    from formdigits.segment import piece_shape, stroke_pieces

    blob = np.zeros((60, 50), np.uint8)  # a "1" leaning right, written across the left side of a "0"
    cv2.ellipse(blob, (30, 30), (13, 26), 0, 0, 360, 255, 4)
    cv2.line(blob, (21, 1), (12, 58), 255, 4)
    edges, crops = [(0, 50), (0, 25), (25, 50)], [blob, blob[:, :25], blob[:, 25:]]  # whole, or cut upright
    (_, _, one), (_, _, rest) = stroke_pieces(blob, [0, 25, 50])[:2]
    clf = _Lookup([(preprocess(one), "1"), (preprocess(rest), "0")])  # each read so only when split off
    work = _PageWork("f.png", 1, boxes=[(0, 0, 60, 60, "open")])
    work.fields = [([], [(edges, [piece_shape(c) for c in crops], 1)])]
    x = Inputs(DEFAULT_PARAMS, crops)
    probs = clf.predict(x[[0, 1, 2]])
    chosen = [choose_paths(work, probs, LABELS.index("reject"))]
    (before,) = make_rows(work, probs, chosen[0][0], LABELS, 0.9, chosen[0][1])
    assert before.value == "" and before.status == "review"  # the blob is no digit, whole or cut upright
    probs, chosen = read_marks(clf, x, [work], probs, chosen)
    assert len(x) > 3 and len(probs) == len(x)  # the split pieces were added and read
    (row,) = make_rows(work, probs, chosen[0][0], LABELS, 0.9, chosen[0][1])
    assert row.value == "10" and row.confidence > 0.9 and row.status == "ok"


def test_a_comb_cell_read_as_no_digit_is_cut_like_a_blob():
    import cv2

    from formdigits.preprocess import DEFAULT_PARAMS, preprocess
    from formdigits.recognize import Inputs, read_marks
    from formdigits.segment import more_pieces, piece_shape

    cell = np.zeros((40, 52), np.uint8)  # two 0s run together in one comb cell
    cv2.ellipse(cell, (13, 20), (11, 18), 0, 0, 360, 255, 3)
    cv2.ellipse(cell, (37, 20), (11, 18), 0, 0, 360, 255, 3)
    cuts = more_pieces(cell, [(0, 52)])
    halves = [c for a, b, c in cuts if (a == 0 or b == 52) and 20 <= c.shape[1] <= 32]  # cut where they touch
    assert halves
    clf = _Lookup([(preprocess(c), "0") for c in halves])  # only the halves read as digits
    work = _PageWork("f.png", 1, boxes=[(0, 0, 160, 50, "comb")])
    work.fields = [([], [([(0, 52)], [piece_shape(cell)], 1), ([], [], 1)])]  # the cell, an empty one
    x = Inputs(DEFAULT_PARAMS, [cell])
    probs = clf.predict(x[[0]])
    chosen = [choose_paths(work, probs, LABELS.index("reject"))]
    probs, chosen = read_marks(clf, x, [work], probs, chosen)
    (row,) = make_rows(work, probs, chosen[0][0], LABELS, 0.9, chosen[0][1])
    assert row.value == "00" and "not a digit" not in row.error
