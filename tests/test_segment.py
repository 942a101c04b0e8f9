"""Cutting fields into digit crops, on tiny hand-built pages."""

import cv2
import numpy as np

from formdigits.layout import analyze
from formdigits.segment import MIN_PIECE, _beside, _strokes, cut_field, ink_image, line_ink, stroke_pieces


def comb_page(line_grey, half=False, cells=3):
    """A comb (cells 50 px wide, 60 px tall) at (40, 40), lines of the given grey."""
    img = np.full((140, 80 + 50 * cells), 240, np.uint8)
    cv2.rectangle(img, (40, 40), (39 + 50 * cells, 99), line_grey, 2)
    for x in range(90, 40 + 50 * cells, 50):
        cv2.line(img, (x, 80 if half else 40), (x, 99), line_grey, 2)
    return img


def cut(img, cells=3):
    layout = analyze(img)
    (box,) = layout.boxes
    assert (box.kind, len(box.cells)) == ("comb", cells)
    return cut_field(ink_image(layout.darkness), box, line_ink(layout.line_darkness))


def paths(slot):
    """Every way to read a slot: lists of crops from its start to its end."""
    out, end = [], max(b for _, b in slot.edges)

    def walk(node, crops):
        if node == end:
            out.append(crops)
        for (a, b), c in zip(slot.edges, slot.crops):
            if a == node:
                walk(b, crops + [c])

    walk(0, [])
    return out


def width(crop):
    return int(np.ptp(np.flatnonzero(crop.any(0)))) + 1


def test_a_digit_written_across_a_separator_can_be_read_whole():
    img = comb_page(20)  # black lines: erased, the "0" is cut in two by the line
    cv2.ellipse(img, (90, 70), (16, 20), 0, 0, 360, 30, 4)  # a "0" on the line between cells 1 and 2
    cv2.line(img, (165, 55), (165, 88), 30, 4)  # a "1" in cell 3
    slots = cut(img).slots
    assert [bool(s.edges) for s in slots] == [True, False, True]  # cells 1-2 read together, numbering kept
    assert slots[0].digits == 2  # each of the two cells holds ink of its own
    ways = paths(slots[0])
    assert [len(p) for p in ways].count(1) == 1  # one way reads the "0" whole ...
    (whole,) = [p[0] for p in ways if len(p) == 1]
    assert abs(width(whole) - 36) <= 3  # ... with its stroke put back across the erased line
    assert any(len(p) == 2 for p in ways)  # ... and others read each cell's part alone
    assert [len(p) for p in paths(slots[2])] == [1]


def test_digits_apart_are_one_slot_per_cell():
    img = comb_page(20)
    for x in (65, 115, 165):
        cv2.line(img, (x, 55), (x, 88), 30, 4)
    slots = cut(img).slots
    assert [len(s.crops) for s in slots] == [1, 1, 1]


def test_a_tail_cut_off_by_a_separator_goes_with_its_digit():
    img = comb_page(20)
    cv2.ellipse(img, (165, 70), (12, 18), 0, 0, 360, 30, 3)  # a "0" in cell 3 ...
    cv2.line(img, (154, 78), (128, 95), 30, 3)  # ... with a tail across the separator into cell 2
    slots = cut(img).slots
    assert [len(s.crops) for s in slots] == [0, 0, 1]  # the tail is no digit of cell 2
    assert slots[2].crops[0].shape[1] >= 40  # the "0" (24 px wide) and its tail, put back across the line


def test_a_stroke_along_a_dropout_line_survives():
    img = comb_page(185)  # a light, dropout-colour line: ink on it is kept
    cv2.line(img, (140, 52), (140, 90), 30, 4)  # a "1" written right on the separator of cells 2 and 3
    crops = cut(img).crops()
    assert len(crops) == 1
    assert np.ptp(np.flatnonzero(crops[0].any(1))) + 1 >= 36  # its full height


def test_a_stroke_along_a_dark_line_is_taken_for_the_line():
    img = comb_page(20)
    cv2.line(img, (140, 52), (140, 90), 30, 4)  # the same "1", on a black line: indistinguishable from it
    assert cut(img).crops() == []


def test_a_stroke_above_a_half_height_separator_survives():
    img = comb_page(20, half=True, cells=4)  # separators rise from the bottom line to y=80 only
    cv2.line(img, (90, 48), (90, 78), 30, 4)  # a "1" where a full separator would be, touching the short one
    cv2.line(img, (165, 55), (165, 88), 30, 4)
    crops = cut(img, cells=4).crops()
    assert len(crops) == 2
    assert np.ptp(np.flatnonzero(crops[0].any(1))) + 1 >= 26


def open_page():
    img = np.full((140, 260), 240, np.uint8)
    cv2.rectangle(img, (30, 40), (229, 99), 20, 2)
    return img


def test_touching_digits_in_an_open_field_can_be_cut_where_they_touch():
    img = open_page()
    cv2.ellipse(img, (78, 70), (14, 20), 0, 0, 360, 30, 4)  # "0"
    cv2.ellipse(img, (118, 70), (14, 20), 0, 0, 360, 30, 4)  # "0"
    cv2.line(img, (92, 80), (104, 80), 30, 3)  # joined to it by a flourish of the pen
    cv2.line(img, (170, 52), (170, 88), 30, 4)  # "1", apart
    layout = analyze(img)
    (box,) = layout.boxes
    slots = cut_field(ink_image(layout.darkness), box, line_ink(layout.line_darkness)).slots
    assert len(slots) == 2  # the touching pair, then the "1"
    ways = paths(slots[0])
    assert [len(p) for p in ways].count(1) == 1  # whole, ...
    pairs = [[width(c) for c in p] for p in ways if len(p) == 2]
    assert any(30 <= a <= 42 and 30 <= b <= 42 for a, b in pairs)  # ... or cut on the flourish
    assert min(c.shape[1] for c in slots[0].crops) >= MIN_PIECE * 40  # no piece narrower than a "1" can be
    assert [len(p) for p in paths(slots[1])] == [1]


def test_a_speck_beside_the_digits_of_an_open_field_is_dropped():
    img = open_page()
    for x in (78, 118, 170):
        cv2.ellipse(img, (x, 70), (13, 19), 0, 0, 360, 30, 4)  # "0"
    cv2.rectangle(img, (139, 76), (142, 89), 30, -1)  # a sliver after the second (a stray stroke, dust)
    layout = analyze(img)
    (box,) = layout.boxes
    slots = cut_field(ink_image(layout.darkness), box, line_ink(layout.line_darkness)).slots
    assert len(slots) == 3  # the three "0"s: the sliver is not a slot
    assert [s.edges[0] for s in slots] == [(0, s.crops[0].shape[1]) for s in slots]  # each read whole first
    assert all(s.crops[0].shape[0] >= 36 for s in slots)


def one_crossing_a_ring():
    """Ink of a "1" leaning right, written across the left side of a "0": no upright cut parts them."""
    ring, one = np.zeros((60, 50), np.uint8), np.zeros((60, 50), np.uint8)
    cv2.ellipse(ring, (30, 30), (13, 26), 0, 0, 360, 255, 4)
    cv2.line(one, (21, 1), (12, 58), 255, 4)
    return ring, one


def test_a_one_crossing_its_neighbour_is_split_off_along_its_stroke():
    ring, one = one_crossing_a_ring()
    blob = np.maximum(ring, one)
    ((_, band, _, _),) = [s for s in _strokes(blob) if s[0]]
    assert (band & (one > 0)).sum() >= 0.95 * (one > 0).sum()  # all of the "1"
    assert (band & (ring > 0) & (one == 0)).sum() <= 0.1 * (ring > 0).sum()  # little of the "0"
    ((a, v, stroke), (v2, b, rest)) = stroke_pieces(blob, [0, 50])
    assert (a, v, v2, b) == (0, 0.2, 0.2, 50)  # the "1", then the rest, through a node inside column 0
    assert width(stroke) <= 16 and stroke.shape[0] == 60
    assert 28 <= width(rest) <= 32  # the "0": as wide as it is, with the "1" left out
    assert stroke_pieces(ring, [0, 50]) == []  # a curve is no straight stroke
    assert stroke_pieces(one, [0, 50]) == []  # a "1" alone leaves nothing to split it from


def test_a_digit_broken_into_dots_is_read_as_one_but_stray_specks_are_not():
    img = comb_page(20)
    for y in (52, 59, 66, 73):  # a faint "1" that a bitonal scan left as four specks, in the middle cell
        img[y : y + 3, 114:117] = 30
    img[55:58, 160:163] = img[75:78, 170:173] = 30  # two stray specks in the last cell
    slots = cut(img).slots
    assert [len(s.crops) for s in slots] == [0, 1, 0]
    (dots,) = slots[1].crops
    assert dots.shape[0] >= 24 and int((dots > 0).sum()) >= 4 * 9  # all four specks, one crop


def test_a_printed_divider_inside_an_open_box_is_no_digit():
    img = open_page()
    cv2.line(img, (100, 40), (100, 99), 20, 2)  # a divider printed from the top line to the bottom one
    cv2.ellipse(img, (65, 70), (13, 19), 0, 0, 360, 30, 4)  # "0" before it (not a comb: unequal parts)
    cv2.line(img, (170, 52), (166, 88), 30, 4)  # "1" after it
    layout = analyze(img)
    (box,) = layout.boxes
    assert box.kind == "open"
    slots = cut_field(ink_image(layout.darkness), box, line_ink(layout.line_darkness)).slots
    assert [s.crops[0].shape[1] for s in slots][0] >= 26 and len(slots) == 2  # the "0" and the "1", no divider


def test_only_the_core_of_a_dark_line_is_erased_where_a_stroke_crosses_it():
    orig = np.zeros((40, 40), np.uint8)
    orig[:, 18:23] = 200  # a vertical separator 5 px wide, its band 4 px either side of its middle (x = 20)
    orig[10:14, 8:33] = 255  # a stroke crossing it
    erase = np.zeros(orig.shape, bool)
    erase[:, 16:25] = True  # the band
    _beside(erase, orig, 5, 4, (), (0, 40), [20], [0], 39)
    keep = ~erase & (np.arange(40) >= 16) & (np.arange(40) <= 24)
    assert keep[10:14, [16, 24]].all()  # where the stroke crosses: the band's pixels off the line's core stay
    assert not keep[10:14, 17:24].any()  # the core goes
    assert not keep[20:30].any() and not keep[:, :16].any() and not keep[:, 25:].any()  # the line alone: all goes


def test_a_light_stroke_of_a_digit_is_kept():
    # a "9" whose loop is written lighter than its stem (a dry pen, a light touch): 40 darker than the
    # paper is ink (at the old floor of 50 the loop was lost and the "9" read as a "1")
    img = comb_page(20)
    cv2.line(img, (72, 52), (70, 90), 60, 3)  # the stem, dark
    cv2.circle(img, (62, 60), 9, 200, 3)  # the loop, light (paper is 240)
    first, *rest = cut(img).slots
    assert not any(s.crops for s in rest)
    (crop,) = first.crops
    assert crop.shape[1] >= 24  # loop and stem: 9 + 9 + 3 + 3 px wide, not the stem's 3-4
    assert (crop > 0).sum() > 150


def test_a_field_gives_its_whole_ink_strip_to_the_sequence_reader():
    img = comb_page(20)
    cv2.line(img, (65, 55), (65, 88), 30, 4)  # a "1" in cell 1
    cv2.ellipse(img, (165, 70), (12, 16), 0, 0, 360, 30, 4)  # a "0" in cell 3
    field = cut(img)
    assert field.strip is not None and field.wide is None  # nothing left out across the box line
    cols = np.flatnonzero(field.strip.any(0))
    assert field.strip.shape[1] == cols[-1] + 1 and abs(field.strip.shape[1] - (165 + 14 - 63)) <= 3  # "1" to "0"
    assert not field.strip[:, 20:80].any()  # the empty cell and the erased separators between
    assert cut(comb_page(20)).strip is None  # no ink, no strip


def test_a_full_separator_between_short_ticks_is_erased_whole():
    """A grouped comb (ticks between full separators): the full one is line, not a 1, from top to bottom."""
    img = np.full((140, 280), 240, np.uint8)
    cv2.rectangle(img, (40, 40), (239, 99), 20, 2)
    for x, rise in zip((90, 140, 190), (12, 60, 12)):
        cv2.line(img, (x, 99 - rise), (x, 99), 20, 2)
    cv2.line(img, (65, 55), (65, 88), 30, 4)  # a "1" in cell 1, cells 2-4 empty
    slots = cut(img, cells=4).slots
    assert [len(s.edges) for s in slots] == [1, 0, 0, 0]
