"""The synthesizer: reproducible pages whose truth describes what was drawn."""

import numpy as np
import pytest

from formdigits.layout import analyze
from formdigits.mnist import load_mnist
from formdigits.synth import FAMILIES, HELD_OUT, DigitSource, PageStyle, _Drawer, _fit, generate, make_page, read_truth

STYLE = PageStyle(width_mm=120, height_mm=110, dpi=200, rotation_max=4, noise_max=4)


@pytest.fixture(scope="module")
def digits(mnist_dir):
    return DigitSource(*load_mnist("test", mnist_dir))


def test_same_seed_same_page(digits):
    a = make_page(digits, np.random.default_rng(5), STYLE)
    b = make_page(digits, np.random.default_rng(5), STYLE)
    c = make_page(digits, np.random.default_rng(6), STYLE)
    np.testing.assert_array_equal(a.image, b.image)
    assert [f.value for f in a.fields] == [f.value for f in b.fields]
    assert not np.array_equal(a.image, c.image)


def test_truth_boxes_hold_the_drawn_fields(digits):
    page = make_page(digits, np.random.default_rng(1), STYLE)
    h, w = page.image.shape[:2]
    assert page.image.shape == (round(110 * 200 / 25.4), round(120 * 200 / 25.4), 3)
    assert len(page.fields) >= 3 and {f.kind for f in page.fields} <= {"comb", "open"}
    for f in page.fields:
        assert 0 <= f.x and f.x + f.w <= w and 0 <= f.y and f.y + f.h <= h
        assert f.value == "" or f.value.isdigit()
        if f.kind == "comb":
            assert len(f.value) <= f.cells
    # the truth agrees with an independent look at the page: same number of boxes, same places
    layout = analyze(page.image[:, :, 1])
    assert len(layout.boxes) == len(page.fields)
    for b, f in zip(layout.boxes, page.fields):
        x, y, bw, bh = layout.original_box(b)
        assert abs(x - f.x) <= 4 and abs(y - f.y) <= 4 and abs(bw - f.w) <= 6 and abs(bh - f.h) <= 6


def test_generate_writes_files_and_truth(digits, tmp_path):
    rows = generate(tmp_path, 4, seed=3, digits=digits, style=STYLE, formats=("png", "tif", "jpg"), pages_per_file=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["page0001.png", "page0002.tif", "page0003.jpg", "style.json", "truth.csv"]
    truth = read_truth(tmp_path / "truth.csv")
    assert len(truth) == len(rows) and {r["file"] for r in truth} == {"page0001.png", "page0002.tif", "page0003.jpg"}
    assert {r["page"] for r in truth if r["file"] == "page0002.tif"} == {"1", "2"}


def test_fit_closes_spaces_then_writes_smaller():
    pen = np.ones((40, 30), np.float32)  # ink 30 px wide, for digits 30 px tall
    pens, gaps = _fit([pen] * 3, [6.0, 6.0], room=200, height=30)
    assert gaps == [6.0, 6.0] and pens[0] is pen  # room enough: as drawn
    pens, gaps = _fit([pen] * 3, [6.0, 6.0], room=94, height=30)
    assert gaps == pytest.approx([2.0, 2.0]) and pens[0] is pen  # spaces closed up just enough
    pens, gaps = _fit([pen] * 3, [6.0, 6.0], room=70, height=30)
    f = 70 / 93  # spaces down to 0.05 x height, then everything smaller
    assert gaps == pytest.approx([1.5 * f, 1.5 * f]) and pens[0].shape == (round(40 * f), round(30 * f))
    pens, gaps = _fit([pen] * 3, [6.0, 6.0], room=20, height=30)
    assert pens[0].shape == (30, 22)  # never below MIN_SQUEEZE: the number runs over


def _blue_ink_pages(digits, **style):
    """15 clean 200-dpi pages written in blue ink on black lines: ``(ink mask, truth fields)`` of each."""
    style = PageStyle(dpi=200, noise_max=0, blur_max=0, empty_prob=0, line_colour="black", ink="blue", paper="white",
                      **style)  # fmt: skip
    for seed in range(15):
        page = make_page(digits, np.random.default_rng(seed), style)
        b, _, r = (page.image[:, :, k].astype(int) for k in range(3))
        yield b - r > 40, page.fields  # blue ink, not the black lines or labels


def test_open_field_numbers_stay_in_their_boxes(digits):
    # unsqueezed, about 3 % of numbers ran past their box (up to 0.6 x its height), onto the next label
    fields = 0
    for ink, truth in _blue_ink_pages(digits, comb_prob=0):
        for f in truth:
            right = f.x + f.w - 1
            assert ink[f.y : f.y + f.h, f.x : right].any()
            assert not ink[f.y - 5 : f.y + f.h + 5, right + 2 : right + 60].any(), f
            fields += 1
    assert fields > 400


def test_comb_digits_are_written_to_fit_their_cells(digits):
    # unfitted, ink crossed 19 % of the separators (11 % of digits were wider than their cell), not "sometimes"
    crossed = separators = 0
    for ink, truth in _blue_ink_pages(digits, comb_prob=1, touch_prob=0):
        for f in truth:
            for i in range(1, f.cells):
                x = f.x + round(i * (f.w - 1) / f.cells)
                crossed += ink[f.y : f.y + f.h, x - 1 : x + 2].any()
                separators += 1
    assert separators > 1500
    assert crossed / separators < 0.08


def test_random_families_never_draw_the_held_out_kind():
    style = PageStyle(separators="random", spacing="random", pen="random")
    d = _Drawer(style, np.random.default_rng(3), None)
    for name, kinds in FAMILIES.items():
        drawn = {d.family(name) for _ in range(300)}
        assert drawn == set(kinds) - {HELD_OUT.get(name)}, name
    forced = _Drawer(PageStyle(spacing=HELD_OUT["spacing"]), np.random.default_rng(3), None)
    assert forced.family("spacing") == HELD_OUT["spacing"]


def test_a_varied_page_is_reproducible_and_its_combs_are_found(digits):
    style = PageStyle(width_mm=120, height_mm=110, separators="ticks", pen="thin", spacing="wide",
                      dpi_choices=(200, 240), bitonal_prob=0.5)  # fmt: skip
    a = make_page(digits, np.random.default_rng(11), style)
    b = make_page(digits, np.random.default_rng(11), style)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.dpi in (200, 240)
    gray = a.image if a.image.ndim == 2 else a.image[:, :, 1]
    found = analyze(gray).boxes
    combs = [f for f in a.fields if f.kind == "comb"]
    assert combs and len(found) == len(a.fields)
    assert sorted(len(b.cells) for b in found if b.kind == "comb") == sorted(f.cells for f in combs)
