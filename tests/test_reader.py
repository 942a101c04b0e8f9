"""formdigits.Reader: the models loaded once, images read from memory (arrays, bytes, PIL) or files."""

import dataclasses
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import formdigits
from formdigits.reader import Reader

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CENSUS = SAMPLES / "census.jpg"


@pytest.fixture(scope="module")
def reader():
    return formdigits.Reader()


def _fields(rows):
    """The rows without their ``file`` column."""
    return [{k: v for k, v in dataclasses.asdict(r).items() if k != "file"} for r in rows]


@pytest.fixture(scope="module")
def census_rows(reader):
    rows = reader.read(CENSUS)
    assert rows and sum(r.status == "ok" for r in rows) >= 5, rows
    return rows


def test_array_bytes_pil_and_path_give_the_rows_scan_gives(reader, census_rows):
    data = CENSUS.read_bytes()
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert _fields(formdigits.scan(CENSUS)) == _fields(census_rows)  # one core: scan and the reader agree
    assert {r.file for r in census_rows} == {str(CENSUS)}
    for image, name in [(gray, "<array>"), (data, "<bytes>"), (bytearray(data), "<bytes>"),
                        (Image.open(io.BytesIO(data)), "<PIL image>"), (str(CENSUS), str(CENSUS))]:  # fmt: skip
        rows = reader.read(image)
        assert _fields(rows) == _fields(census_rows), name
        assert {r.file for r in rows} == {name}
    assert {r.file for r in reader.read(CENSUS, name="census")} == {"census"}  # the path still read


def test_colour_arrays_in_either_channel_order_alpha_and_16_bit(reader, census_rows):
    gray = cv2.imread(str(CENSUS), cv2.IMREAD_GRAYSCALE)
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    rgba = np.dstack([bgr[:, :, ::-1], np.full(gray.shape, 255, np.uint8)])
    for image, order in [(bgr, "bgr"), (bgr[:, :, ::-1].copy(), "rgb"), (rgba, "rgb"),
                         (gray.astype(np.uint16) * 257, "bgr"), (gray[:, :, None], "bgr")]:  # fmt: skip
        assert _fields(reader.read(image, channel_order=order)) == _fields(census_rows), (image.shape, order)
    with pytest.raises(ValueError, match="channel_order"):
        reader.read(gray, channel_order="grb")


def test_read_many_keeps_images_apart_and_reads_every_page(reader, census_rows, tmp_path):
    data = CENSUS.read_bytes()
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    pages = [Image.fromarray(gray), Image.fromarray(gray)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    out = reader.read_many([gray, buf.getvalue(), b"not an image", np.zeros((3, 3, 7))])
    assert len(out) == 4
    assert _fields(out[0]) == _fields(census_rows)
    assert [r.page for r in out[1]] == [1] * len(census_rows) + [2] * len(census_rows)  # both pages of the TIFF
    assert [(r.status, r.file) for r in out[2]] == [("error", "<bytes>")]
    assert "<bytes>: not a supported image" in out[2][0].error and "formdigits-" not in out[2][0].error
    assert out[3][0].status == "error" and "<array>: not an image: an array of shape (3, 3, 7)" in out[3][0].error
    with pytest.raises(TypeError, match="got int"):
        reader.read_many([gray, 42])


def test_a_huge_array_is_refused_before_it_is_read(reader):
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (20000, 20000), (0, 0))  # no memory behind it
    [row] = reader.read(huge)
    assert row.status == "error" and "Mpixel limit" in row.error and row.error.startswith("<array>: ")


def test_concurrent_reads_from_4_threads_equal_serial_reads(reader, census_rows):
    data = CENSUS.read_bytes()
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    images = [data, gray, data, gray] * 2  # bytes are decoded with stderr caught: threads take turns at that
    stderr = os.fstat(2)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(reader.read, images))
    assert all(_fields(rows) == _fields(census_rows) for rows in results)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (stderr.st_dev, stderr.st_ino)  # stderr put back where it was


def test_threads_take_turns_at_catching_the_decoders_stderr():
    """Two threads pointing file descriptor 2 elsewhere at once left it pointing at the first one's temporary
    file for good (the second put back what it had found: the first one's)."""
    import threading
    import time

    from formdigits.damage import decoder_messages

    first_in, second_trying = threading.Event(), threading.Event()

    def first():
        with decoder_messages():
            first_in.set()
            second_trying.wait(5)
            time.sleep(0.2)  # the second thread gets in meanwhile, unless it must wait its turn

    def second():
        first_in.wait(5)
        second_trying.set()
        with decoder_messages():
            time.sleep(0.4)  # and leaves after the first

    before = os.fstat(2)
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_reader_is_the_exported_one_and_checks_its_options():
    assert formdigits.Reader is Reader
    with pytest.raises(ValueError, match="min_confidence"):
        Reader(min_confidence=2)
    with pytest.raises(ValueError, match="readers"):
        Reader(readers="all")
