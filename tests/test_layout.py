"""Box finding on tiny hand-built pages with exactly known boxes."""

import cv2
import numpy as np
import pytest

from formdigits.layout import analyze, darkness, estimate_skew, line_mask, reading_order, Box


def blank(h=200, w=300, paper=235):
    return np.full((h, w), paper, np.uint8)


def rect(img, x, y, w, h, t=2, v=20):
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), v, t)


def test_open_box_and_comb_with_exact_coordinates():
    img = blank()
    rect(img, 20, 30, 120, 40)  # open box
    rect(img, 160, 30, 120, 40)  # comb of 4 cells, full-height separators
    for i in range(1, 4):
        cv2.line(img, (160 + 30 * i, 30), (160 + 30 * i, 69), 20, 2)
    rect(img, 20, 110, 150, 40)  # comb of 5 cells, half-height separators
    for i in range(1, 5):
        cv2.line(img, (20 + 30 * i, 136), (20 + 30 * i, 149), 20, 2)
    layout = analyze(img)
    assert layout.angle == 0
    got = [(b.x, b.y, b.w, b.h, b.kind, len(b.cells)) for b in layout.boxes]
    assert got == [(20, 30, 120, 40, "open", 0), (160, 30, 120, 40, "comb", 4), (20, 110, 150, 40, "comb", 5)]
    comb = layout.boxes[1]
    centres = [(a + b) / 2 for a, b in comb.cells]
    assert np.abs(np.subtract(centres, [175.5, 205.5, 235.5, 265.5])).max() <= 1
    assert layout.original_box(comb) == (160, 30, 120, 40)


def test_a_bold_stroke_running_down_beside_a_separator_does_not_unmake_the_comb():
    img = blank(120, 360)
    rect(img, 20, 30, 300, 60)  # comb of 6 cells, 50 px wide
    for i in range(1, 6):
        cv2.line(img, (20 + 50 * i, 30), (20 + 50 * i, 89), 20, 2)
    cv2.line(img, (178, 48), (178, 88), 20, 12)  # a bold stroke running down beside a separator, touching it
    (box,) = analyze(img).boxes
    assert (box.kind, len(box.cells)) == ("comb", 6)
    centres = [(a + b) / 2 for a, b in box.cells]
    assert np.abs(np.subtract(centres, [45.5, 95.5, 145.5, 195.5, 245.5, 295.5])).max() <= 1.5


def test_specks_text_page_border_and_frames_are_not_fields():
    img = blank(240, 320)
    rect(img, 0, 0, 320, 240, t=3)  # page border
    rect(img, 10, 10, 300, 220)  # a frame around the fields
    rect(img, 40, 60, 100, 40)  # the one field
    cv2.putText(img, "Total", (150, 90), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 20, 2)
    cv2.circle(img, (250, 180), 2, 20, -1)  # speck
    cv2.circle(img, (200, 180), 15, 20, 2)  # a round mark is no box
    boxes = analyze(img).boxes
    assert [(b.x, b.y, b.w, b.h) for b in boxes] == [(40, 60, 100, 40)]


def test_digit_touching_and_crossing_the_line_does_not_move_the_box():
    img = blank()
    rect(img, 20, 30, 120, 40)
    cv2.line(img, (60, 45), (62, 80), 20, 3)  # a stroke crossing the bottom line
    [b] = analyze(img).boxes
    assert (b.x, b.y, b.w, b.h) == (20, 30, 120, 40)


def test_dropout_colour_lines_are_found_and_stay_out_of_the_ink():
    img = blank(paper=245)
    rect(img, 20, 30, 120, 40, v=180)  # a light line, as red or blue dropout prints
    layout = analyze(img)
    assert len(layout.boxes) == 1 and layout.line_darkness < 120


@pytest.mark.parametrize("angle", [-5, -2.5, 1, 4])
def test_skew_is_measured_and_boxes_map_back_to_the_page(angle):
    img = blank(400, 500)
    rect(img, 100, 100, 200, 60)
    rect(img, 100, 220, 240, 60)
    m = cv2.getRotationMatrix2D((250, 200), angle, 1.0)
    turned = cv2.warpAffine(img, m, (500, 400), borderValue=235)
    layout = analyze(turned)
    assert layout.angle == pytest.approx(-angle, abs=0.3)  # turned back by as much
    assert len(layout.boxes) == 2
    corners = np.array([[100, 100], [299, 100], [100, 159], [299, 159]], float) @ m[:, :2].T + m[:, 2]
    x, y, w, h = layout.original_box(layout.boxes[0])
    assert abs(x - corners[:, 0].min()) <= 3 and abs(y - corners[:, 1].min()) <= 3
    assert abs(x + w - 1 - corners[:, 0].max()) <= 3 and abs(y + h - 1 - corners[:, 1].max()) <= 3


@pytest.mark.parametrize("angle", [-4, 0.3, 2.5])
def test_a_large_page_finds_its_skew_at_half_size_as_well(angle):
    img = blank(1800, 1700)  # over HALF_FROM: the skew comes from a half-size copy
    for y in (200, 500, 800, 1100):
        rect(img, 150, y, 900, 110, v=150, t=2)  # faint, thin lines: the half-size copy keeps them
        rect(img, 1150, y, 300, 110, v=150, t=2)
    m = cv2.getRotationMatrix2D((850, 900), angle, 1.0)
    turned = cv2.warpAffine(img, m, (1700, 1800), borderValue=235)
    layout = analyze(turned)
    assert layout.angle == pytest.approx(-angle, abs=0.1)
    assert len(layout.boxes) == 8 and all(abs(b.w - 900) <= 3 or abs(b.w - 300) <= 3 for b in layout.boxes)


def test_reading_order_rows_then_columns():
    boxes = [Box(200, 12, 50, 20), Box(10, 100, 50, 20), Box(10, 10, 50, 24), Box(120, 104, 50, 20)]
    assert [(b.x, b.y) for b in reading_order(boxes)] == [(10, 10), (200, 12), (10, 100), (120, 104)]


def test_darkness_is_relative_to_the_paper_and_input_is_checked():
    img = blank(paper=200)
    img[10, 10] = 50
    d = darkness(img)
    assert d[0, 0] == 0 and d[10, 10] == 150
    assert estimate_skew(line_mask(d)) == 0.0
    with pytest.raises(ValueError, match="2-D uint8"):
        darkness(np.zeros((5, 5, 3), np.uint8))


def test_skew_is_found_when_a_frame_runs_off_the_page():
    img = blank(400, 500)
    rect(img, 20, 20, 560, 360)  # a frame wider than the page: it leaves the picture
    rect(img, 100, 100, 200, 60)
    rect(img, 100, 220, 240, 60)
    m = cv2.getRotationMatrix2D((250, 200), 3, 1.0)
    layout = analyze(cv2.warpAffine(img, m, (500, 400), borderValue=235))
    assert layout.angle == pytest.approx(-3, abs=0.3) and len(layout.boxes) == 2


@pytest.mark.parametrize("rises", [[12] * 5, [12, 12, 60, 12, 12], [60, 12, 60, 12, 60]])
def test_combs_with_short_ticks_and_grouped_separators_are_combs(rises):
    """Separators as short as a fifth of the box, mixed with full ones (dates, amounts grouped)."""
    img = np.full((140, 380), 240, np.uint8)
    cv2.rectangle(img, (40, 40), (339, 99), 20, 2)
    for x, rise in zip(range(90, 340, 50), rises):
        cv2.line(img, (x, 99 - rise), (x, 99), 20, 2)
    (box,) = analyze(img).boxes
    assert box.kind == "comb" and len(box.cells) == 6
    assert [c0 for c0, _ in box.cells] == [40, 90, 140, 190, 240, 290]


def test_a_small_box_is_a_field_only_when_it_holds_ink():
    """Tick boxes far smaller than the fields: an empty one is no field; one with a mark is read (for review)."""
    img = np.full((200, 520), 240, np.uint8)
    cv2.rectangle(img, (40, 40), (189, 119), 20, 2)  # two fields 80 px tall
    cv2.rectangle(img, (230, 40), (379, 119), 20, 2)
    cv2.rectangle(img, (420, 60), (453, 93), 20, 1)  # a 34 px tick box, empty
    assert [b.small for b in analyze(img).boxes] == [False, False]
    cv2.polylines(img, [np.array([(427, 76), (434, 85), (445, 68)], np.int32)], False, 30, 2)  # ticked
    boxes = analyze(img).boxes
    assert [(b.x, b.small) for b in boxes] == [(40, False), (230, False), (420, True)]


def test_light_lines_on_tinted_paper_are_looked_for_again():
    """Pale dropout lines on grey paper, too faint for the usual line mask: the page is looked at again."""
    img = np.full((200, 700), 200, np.uint8)
    for x in (40, 260, 480):
        cv2.rectangle(img, (x, 60), (x + 180, 139), 172, 3)
    dark = darkness(img)
    assert not line_mask(dark).any()  # at the usual level the lines are not there
    assert [(b.x, b.y, b.w, b.h) for b in analyze(img).boxes] == [(40, 60, 181, 80), (260, 60, 181, 80), (480, 60, 181, 80)]


@pytest.mark.parametrize("size", [1, 4])  # small pages, and pages looked at half size first
def test_pale_boxes_beside_dark_ones_are_found_too(size):
    """A form mixing dark boxes with boxes in a pale dropout colour: with 8 or more dark boxes the page
    was not looked at again, and every pale field was missed."""
    img = np.full((520 * size, 900 * size), 250, np.uint8)
    rects = [(40 + 210 * i, 40 + 120 * j) for j in range(4) for i in range(4)]
    for n, (x, y) in enumerate(rects):
        x, y = x * size, y * size
        shade = 228 if n in (5, 10) else 30  # two pale boxes (darkness 22, under the usual level 30)
        cv2.rectangle(img, (x, y), (x + 170 * size, y + 80 * size), shade, 3)
    boxes = analyze(img).boxes
    assert [(b.x, b.y) for b in boxes] == [(x * size, y * size) for x, y in rects]  # all 16, in reading order


@pytest.mark.parametrize("shape", [(4, 1), (1, 4), (3, 1), (1, 1)])
def test_a_page_of_a_few_pixels_is_darkness_like_any_other(shape):
    """A 4x1 page was taken by OpenCV for a scalar: float darkness, negative values (issue 19, item 17)."""
    gray = np.arange(1, 1 + shape[0] * shape[1], dtype=np.uint8).reshape(shape) * 60
    dark = darkness(gray)
    assert dark.dtype == np.uint8 and dark.shape == shape and dark.min() == 0
    assert analyze(gray).boxes == []
