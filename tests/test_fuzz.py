"""Property-based fuzzing of the reader, the box finder and the cutter: only clean errors, never a crash.

Deterministic (``derandomize``): the same examples every run, so CI is stable;
run with ``--hypothesis-seed=random`` locally to look further.
"""

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formdigits.layout import analyze
from formdigits.pages import PageError, count_pages, read_page, read_pages
from formdigits.segment import cut_field, ink_image, line_ink, stroke_pieces

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"%PDF-1.7\n", b"BM"]


@FUZZ
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=2048))
def test_random_bytes_are_read_or_refused_cleanly(tmp_path, magic, body):
    f = tmp_path / "page.bin"
    f.write_bytes(magic + body)
    try:
        for page in read_pages(f):  # as a scan reads them: each page straight from its place in the file
            assert page.image.dtype == np.uint8
    except PageError as e:
        assert str(f) in str(e)


@FUZZ
@given(ext=st.sampled_from([".png", ".jpg", ".tif", ".bmp"]), cut=st.floats(0.05, 1.0), flip=st.integers(0, 2**16))
def test_damaged_real_files_are_read_or_refused_cleanly(tmp_path, ext, cut, flip):
    page = np.full((120, 160), 240, np.uint8)
    cv2.rectangle(page, (10, 20), (150, 80), 0, 2)
    data = bytearray(cv2.imencode(ext, page)[1].tobytes())
    data = data[: max(8, int(len(data) * cut))]
    data[flip % len(data)] ^= 0xFF
    f = tmp_path / f"page{ext}"
    f.write_bytes(bytes(data))
    try:
        for number in range(1, count_pages(f) + 1):
            read_page(f, number)
    except PageError as e:
        assert str(f) in str(e)


@st.composite
def pages(draw):
    h, w = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    img = np.full((h, w), draw(st.integers(0, 255)), np.uint8)
    if draw(st.booleans()):
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    for _ in range(draw(st.integers(0, 6))):  # boxes, lines and blobs anywhere, of any size
        x0, y0 = int(rng.integers(-20, w + 1)), int(rng.integers(-20, h + 1))
        x1, y1 = x0 + int(rng.integers(1, w + 40)), y0 + int(rng.integers(1, h + 40))
        cv2.rectangle(img, (x0, y0), (x1, y1), int(rng.integers(0, 256)), int(rng.choice([-1, 1, 2, 5])))
    for _ in range(draw(st.integers(0, 4))):
        x, y = int(rng.integers(0, w + 1)), int(rng.integers(0, h + 1))
        cv2.line(img, (x, 0), (x, h), 0, int(rng.integers(1, 4)))
        cv2.line(img, (0, y), (w, y), 0, int(rng.integers(1, 4)))
    return img


@FUZZ
@given(page=pages())
def test_box_finder_and_cutter_survive_any_page(page):
    layout = analyze(page)
    ink = ink_image(layout.darkness)
    for box in layout.boxes:
        assert 0 <= box.x and 0 <= box.y and box.x + box.w <= page.shape[1] + 1 and box.y + box.h <= page.shape[0] + 1
        for slot in cut_field(ink, box, line_ink(layout.line_darkness)).slots:
            assert all(c.dtype == np.uint8 and c.ndim == 2 and c.size for c in slot.crops)
            assert len(slot.edges) == len(slot.crops) and all(a < b for a, b in slot.edges)


@FUZZ
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 90), w=st.integers(1, 160), strokes=st.integers(0, 5))
def test_splitting_off_a_one_survives_any_blob(seed, h, w, strokes):
    rng = np.random.default_rng(seed)
    crop = (rng.random((h, w)) < rng.uniform(0, 0.3)).astype(np.uint8) * 255  # specks, anything
    for _ in range(strokes):  # and straight strokes, upright or leaning, anywhere
        x0, x1 = (int(v) for v in rng.integers(-5, w + 5, 2))
        cv2.line(crop, (x0, int(rng.integers(-5, 6))), (x1, h - int(rng.integers(-5, 6))), int(rng.integers(1, 256)), 3)
    nodes = sorted({0, w, *(int(v) for v in rng.integers(1, max(2, w), 3))})
    inside = lambda x: x in nodes or 0 < x < 1 or w - 1 < x < w  # a cut, or a node in the end columns
    for a, b, piece in stroke_pieces(crop, nodes):
        assert a < b and inside(a) and inside(b)
        assert piece.dtype == np.uint8 and piece.ndim == 2 and piece.shape[0] == h and piece.any()
