"""Cutting fields into digit crops, on tiny hand-built pages."""

import cv2
import numpy as np

from formdigits.layout import analyze
from formdigits.segment import cut_field, ink_image, line_ink


def comb_page(line_grey):
    """A 3-cell comb (cells 50 px wide, 60 px tall) at (40, 40), lines of the given grey."""
    img = np.full((140, 230), 240, np.uint8)
    cv2.rectangle(img, (40, 40), (189, 99), line_grey, 2)
    for x in (90, 140):
        cv2.line(img, (x, 40), (x, 99), line_grey, 2)
    return img


def cut(img):
    layout = analyze(img)
    (box,) = layout.boxes
    assert (box.kind, len(box.cells)) == ("comb", 3)
    return cut_field(ink_image(layout.darkness), box, line_ink(layout.line_darkness))


def widths(option):
    return [int(np.ptp(np.flatnonzero(c.any(0)))) + 1 for c in option]


def test_a_digit_written_across_a_separator_can_be_read_whole():
    img = comb_page(20)  # black lines: erased, the "0" is cut in two by the line
    cv2.ellipse(img, (90, 70), (16, 20), 0, 0, 360, 30, 4)  # a "0" on the line between cells 1 and 2
    cv2.line(img, (165, 55), (165, 88), 30, 4)  # a "1" in cell 3
    slots = cut(img).slots
    assert [len(s) > 0 for s in slots] == [True, False, True]  # cells 1-2 read together, numbering kept
    assert [1] in [[len(o)] for o in slots[0]]  # one option reads the "0" whole ...
    whole = next(o for o in slots[0] if len(o) == 1)
    assert abs(widths(whole)[0] - 36) <= 3  # ... with its stroke put back across the erased line
    assert [len(o) for o in slots[2]] == [1]


def test_digits_apart_are_one_slot_per_cell():
    img = comb_page(20)
    for x in (65, 115, 165):
        cv2.line(img, (x, 55), (x, 88), 30, 4)
    slots = cut(img).slots
    assert [[len(o) for o in s] for s in slots] == [[1], [1], [1]]


def test_a_stroke_along_a_dropout_line_survives():
    img = comb_page(185)  # a light, dropout-colour line: ink on it is kept
    cv2.line(img, (140, 52), (140, 90), 30, 4)  # a "1" written right on the separator of cells 2 and 3
    slots = cut(img).slots
    crops = [c for s in slots for o in s[:1] for c in o]
    assert len(crops) == 1
    assert np.ptp(np.flatnonzero(crops[0].any(1))) + 1 >= 36  # its full height


def test_a_stroke_along_a_dark_line_is_taken_for_the_line():
    img = comb_page(20)
    cv2.line(img, (140, 52), (140, 90), 30, 4)  # the same "1", on a black line: indistinguishable from it
    assert all(not s for s in cut(img).slots)
