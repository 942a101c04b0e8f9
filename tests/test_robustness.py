"""Bad and hostile input, interrupted runs, crashing workers: the batch goes on, nothing is lost."""

import csv
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from formdigits.cli import main
from formdigits.layout import analyze
from formdigits.pages import MAX_PIXELS, PageError, count_pages, read_page
from formdigits.parallel import WorkerFailure, ordered_map
from formdigits.rules import broken_rules
from formdigits.template import TemplateError, TemplateField, _check_overlaps
from formdigits.template import load as load_template


def _png_header_only(w, h):
    """A PNG whose header claims w x h pixels, with almost no data behind it."""
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def bad_files(tmp_path):
    good = tmp_path / "good.png"
    page = np.full((400, 600), 250, np.uint8)
    cv2.rectangle(page, (100, 100), (400, 180), 0, 3)
    cv2.putText(page, "4", (200, 165), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 0, 5)
    cv2.imwrite(str(good), page)
    data = good.read_bytes()
    ok, jpeg = cv2.imencode(".jpg", page)
    files = {
        "truncated.jpg": (jpeg.tobytes()[: len(jpeg) // 3], "not a readable image"),
        "empty.png": (b"", "empty file (0 bytes)"),
        "truncated.png": (data[: len(data) // 2], "not a readable image"),
        "text.png": (b"hello, world\n", "not a supported image"),
        "anim.gif": (b"GIF89a" + bytes(40), "not a supported image"),
        "bomb.png": (_png_header_only(100_000, 100_000), "over the 150 Mpixel limit"),
    }
    for name, (content, _) in files.items():
        (tmp_path / name).write_bytes(content)
    expected = {name: fragment for name, (_, fragment) in files.items()}
    expected["missing.png"] = "no such file"
    return tmp_path, good, expected


def test_each_bad_file_gets_one_error_row_and_the_batch_goes_on(bad_files):
    folder, good, expected = bad_files
    (folder / "folder.png").mkdir()  # on stdin as in the arguments, a folder stands for its image files: none
    paths = [str(folder / name) for name in sorted(expected)] + [str(folder / "folder.png"), str(good)]
    result = CliRunner().invoke(main, ["scan", "-", "--workers", "0"], input="\n".join(paths) + "\n")
    assert result.exit_code == 1
    rows = list(csv.DictReader(result.stdout.splitlines()))
    errors = {os.path.basename(r["file"]): r["error"] for r in rows if r["status"] == "error"}
    assert set(errors) == set(expected)
    for name, fragment in expected.items():
        assert fragment in errors[name] and name in errors[name], (name, errors[name])
    good_rows = [r for r in rows if r["file"] == str(good)]
    assert [(r["value"], r["status"]) for r in good_rows] == [("4", "ok")]
    for name in expected:  # the summary lists every failed file
        assert f"failed: {folder / name}" in result.stderr


def test_unreadable_file_is_an_error_row(tmp_path, monkeypatch):
    import formdigits.pages

    f = tmp_path / "locked.png"
    f.write_bytes(_png_header_only(10, 10))
    f.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: make the open fail as it does for everyone else

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(formdigits.pages, "open", refuse, raising=False)
    with pytest.raises(PageError, match="locked.png: cannot read: Permission denied"):
        count_pages(f)


def test_a_fifo_is_an_error_row_not_a_hang(tmp_path):
    """Nothing ever writes to the FIFO: opening it would wait for ever (issue 19, item 4)."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = tmp_path / "empty.png"
    cv2.imwrite(str(good), np.full((40, 40), 255, np.uint8))
    out = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, "-m", "formdigits", "scan", str(fifo), str(good), "-o", str(out),
                           "--readers", "cut", "-j", "0"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(r["status"], r["error"]) for r in rows] == [("error", f"{fifo}: not a regular file")]
    assert "2 pages, 0 fields (0 ok, 0 review, 0 empty), 1 error in" in proc.stderr  # (not "1 errors")


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    f = tmp_path / "bomb.png"
    f.write_bytes(_png_header_only(50_000, 40_000))
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded a decompression bomb"))
    with pytest.raises(PageError, match=r"50000 x 40000 pixels \(2000 Mpixel\) is over the 150 Mpixel limit"):
        read_page(f, 1)
    assert MAX_PIXELS == 150_000_000  # the documented limit (README)


def _never(name):
    def refuse(*args, **kwargs):
        pytest.fail(f"called {name}")

    return refuse


def test_a_tiff_whose_header_pillow_cannot_parse_is_held_to_the_pixel_limit(tmp_path, monkeypatch):
    """Issue 19, item 3: Pillow cannot parse a float64 tiled TIFF, so no size was checked, and OpenCV
    decoded its 225 Mpixel (3.6 GB in one worker). 1.9 MB on disk: one compressed tile of zeros, 900 times."""
    import itertools

    import tifffile

    tile = zlib.compress(bytes(512 * 512 * 8), 9)
    with tifffile.TiffWriter(tmp_path / "bomb.tif") as tif:
        tif.write(itertools.repeat(tile, 30 * 30), shape=(15000, 15000), dtype=np.float64, tile=(512, 512),
                  compression="zlib", photometric="minisblack")  # fmt: skip
    for name in ("imdecode", "imread", "imreadmulti"):
        monkeypatch.setattr(cv2, name, _never(f"cv2.{name} on a decompression bomb"))
    with pytest.raises(PageError, match=r"bomb.tif: 15000 x 15000 pixels \(225 Mpixel\) is over the 150 Mpixel"):
        read_page(tmp_path / "bomb.tif", 1)


def test_an_image_whose_size_cannot_be_read_is_refused_before_decoding(tmp_path, monkeypatch):
    f = tmp_path / "odd.bmp"
    f.write_bytes(b"BM" + bytes(60))  # a BMP header Pillow cannot parse
    monkeypatch.setattr(cv2, "imdecode", _never("cv2.imdecode on an image of unknown size"))
    with pytest.raises(PageError, match="odd.bmp: not a readable image \\(its size cannot be read from its header"):
        read_page(f, 1)


def test_opencv_refuses_to_decode_over_the_pixel_limit_itself(tmp_path):
    """The last line of defence, in case a file's header was misjudged: OpenCV's own limit, set when formdigits is
    imported (before cv2 is: it is read once), and inherited by the worker processes."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(12300, 12300))  # 151 Mpixel
    code = (f"import formdigits, cv2, numpy as np\n"
            f"cv2.imdecode(np.fromfile({str(bomb)!r}, np.uint8), cv2.IMREAD_GRAYSCALE)")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and "pixels <= CV_IO_MAX_IMAGE_PIXELS" in proc.stderr, proc.stderr
    assert str(MAX_PIXELS) == "150000000"  # the value set in formdigits/__init__.py


def test_a_multi_page_tiff_is_read_in_one_pass(tmp_path, monkeypatch):
    """Issue 19, item 9: every page was found by walking the file's list of pages from the first (OpenCV's
    imreadmulti(start=k)): quadratic, 1,000 pages took 15 s and 4,000 took 587 s. Now the list is walked
    once and each page is read straight from its place: each page's directory is parsed a bounded number
    of times and the decoder called once per page."""
    import tifffile

    import formdigits
    from formdigits.pages import read_pages

    n = 300
    with tifffile.TiffWriter(tmp_path / "long.tif") as tif:
        for i in range(n):
            tif.write(np.full((8, 12), i % 251, np.uint8), photometric="minisblack", compression="zlib")
    parsed, decoded, decode = [], [], cv2.imdecode
    for cls in (tifffile.TiffPage, tifffile.TiffFrame):
        init = cls.__init__
        monkeypatch.setattr(cls, "__init__", lambda self, *a, _init=init, **kw: parsed.append(1) or _init(self, *a, **kw))
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1) or decode(*a))
    for name in ("imreadmulti", "imcount"):  # they walk the list of pages from the first
        monkeypatch.setattr(cv2, name, _never(f"cv2.{name}"))
    pages = list(read_pages(tmp_path / "long.tif"))
    assert [p.page for p in pages] == list(range(1, n + 1))
    assert all((p.image == (p.page - 1) % 251).all() for p in pages)  # each page is its own
    assert len(decoded) == n and len(parsed) <= 3 * n + 1, len(parsed)
    parsed.clear(), decoded.clear()
    scanned = list(formdigits.iter_scan([str(tmp_path / "long.tif")], readers="cut", workers=0))
    assert len(scanned) == n and len(decoded) == n and len(parsed) <= 3 * n + 1, len(parsed)


def test_a_multi_page_tiff_whose_pages_differ_in_kind_is_read_whole(tmp_path):
    """A colour page, then a bitonal one (the synthesizer's varied sets make such files): tifffile's light
    page frames refused the second ("incompatible keyframe") and the whole file became an error row."""
    import tifffile

    from formdigits.pages import read_pages

    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tif:
        tif.write(np.full((30, 40, 3), 200, np.uint8), photometric="rgb", compression="zlib")
        tif.write(np.ones((20, 24), bool), compression="zlib")
    pages = list(read_pages(tmp_path / "mixed.tif"))
    assert [p.image.shape for p in pages] == [(30, 40), (20, 24)]


def _form_page():
    page = np.full((400, 600), 250, np.uint8)
    cv2.rectangle(page, (100, 100), (400, 180), 0, 3)
    cv2.putText(page, "4", (200, 165), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 0, 5)
    return page


def _scan_rows(*paths):
    import formdigits

    return [(Path(r.file).name, r.page, r.value, r.status, r.error)
            for r in formdigits.scan([str(p) for p in paths], readers="cut", workers=0)]  # fmt: skip


def test_a_tiff_page_whose_data_is_corrupt_is_an_error_row(tmp_path):
    """Issue 19, item 5: libtiff could not inflate page 2, OpenCV gave it back all black: no row, exit 0."""
    import tifffile

    f = tmp_path / "three.tif"
    with tifffile.TiffWriter(f) as tif:
        for _ in range(3):
            tif.write(_form_page(), photometric="minisblack", compression="zlib")
    data = bytearray(f.read_bytes())
    with tifffile.TiffFile(f) as tif:
        for offset, count in zip(tif.pages[1].dataoffsets, tif.pages[1].databytecounts):
            data[offset : offset + count] = np.random.default_rng(0).integers(0, 256, count, np.uint8).tobytes()
    f.write_bytes(bytes(data))
    rows = _scan_rows(f)
    assert [r[:4] for r in rows] == [("three.tif", 1, "4", "ok"), ("three.tif", 2, "", "error"),
                                     ("three.tif", 3, "4", "ok")]  # fmt: skip
    assert rows[1][4].startswith(f"{f}: page 2: damaged image data: TIFF_Error ZIPDecode: Decoding error"), rows[1]
    result = CliRunner().invoke(main, ["scan", str(f), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 1 and "1 error" in result.stderr  # the lost page counts as an error


def test_a_jpeg_with_lost_data_sends_every_row_to_review(tmp_path, capfd):
    """Issue 19, item 5: 2000 zero bytes in the middle of census.jpg lost two fields and read 9505 as 950, ok."""
    data = bytearray((Path(__file__).resolve().parent.parent / "samples" / "census.jpg").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = bytes(2000)
    (tmp_path / "census.jpg").write_bytes(bytes(data))
    rows = _scan_rows(tmp_path / "census.jpg")
    assert len(rows) > 20 and {r[3] for r in rows} == {"review"}
    assert all("damaged image data: Corrupt JPEG data: premature end of data segment" in r[4] for r in rows)
    assert "Corrupt JPEG data" not in capfd.readouterr().err  # said in the rows, not on the terminal


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_pixels_that_are_not_numbers_send_the_rows_to_review(tmp_path, bad):
    """Issue 19, item 5: one NaN or infinite pixel made the whole page blank, with no row and exit 0."""
    import tifffile

    page = _form_page().astype(np.float32) / 255
    page[5:7, 5:7] = bad
    tifffile.imwrite(tmp_path / "float.tif", page)
    tifffile.imwrite(tmp_path / "all.tif", np.full((40, 60), bad, np.float32))
    rows = _scan_rows(tmp_path / "float.tif", tmp_path / "all.tif")
    assert rows[0] == ("float.tif", 1, "4", "review", "damaged image data: 4 pixels are not a number (NaN or infinite)")
    assert rows[1][1:4] == (1, "", "error") and rows[1][4].endswith("all.tif: page 1: no pixel is a number (all NaN or infinite)")


def test_a_png_whose_pixel_data_is_corrupt_is_marked_damaged(tmp_path):
    """libpng inflates a damaged stretch of data to black rows and says so only in a warning."""
    png = cv2.imencode(".png", _form_page(), [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()
    start = png.index(b"IDAT") + 4
    size = struct.unpack(">I", png[start - 8 : start - 4])[0]
    data = bytearray(png[start : start + size])
    data[size // 2 : size // 2 + 50] = bytes(b ^ 0x5A for b in data[size // 2 : size // 2 + 50])
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + data))  # a right checksum: only the data inside is wrong
    (tmp_path / "bad.png").write_bytes(png[:start] + data + crc + png[start + size + 4 :])
    assert read_page(tmp_path / "bad.png", 1).damage == "damaged image data: libpng warning: IDAT: incorrect data check"


def test_only_decoder_messages_about_lost_data_count_as_damage():
    from formdigits.damage import corruption, decoder_messages

    assert corruption(["libpng warning: iCCP: known incorrect sRGB profile",
                       "libpng warning: IDAT: Too much image data",
                       "Corrupt JPEG data: 2 extraneous bytes before marker 0xd9",
                       "Invalid SOS parameters for sequential JPEG"]) == ""  # fmt: skip
    assert corruption(["Premature end of JPEG file"]) == "damaged image data: Premature end of JPEG file"
    assert corruption(["[ERROR:0@0.020] global grfmt_tiff.cpp:117 TIFF_Error Fax4Decode: Bad code word at line 7"]) == (
        "damaged image data: TIFF_Error Fax4Decode: Bad code word at line 7")
    with decoder_messages() as said:
        os.write(2, b"Corrupt JPEG data: bad Huffman code\n")
    assert said == ["Corrupt JPEG data: bad Huffman code"]
    code = "from formdigits.damage import decoder_messages\nwith decoder_messages() as said: pass\nprint(said)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=lambda: os.close(2))
    assert proc.returncode == 0 and proc.stdout == "[]\n"  # a process without stderr still reads its pages


def _hostile_images():
    rng = np.random.default_rng(0)
    photo = cv2.resize(cv2.GaussianBlur(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), (0, 0), 2), (500, 400))
    return {
        "noise": rng.integers(0, 256, (600, 500), dtype=np.uint8),
        "black": np.zeros((300, 200), np.uint8),
        "white": np.full((300, 200), 255, np.uint8),
        "one-pixel": np.zeros((1, 1), np.uint8),
        "16-bit": rng.integers(0, 65535, (300, 200)).astype(np.uint16),
        "alpha": np.dstack([photo, np.full(photo.shape[:2], 100, np.uint8)]),
        "photo": photo,
    }


def test_hostile_images_give_no_fields_and_no_crash(tmp_path):
    from PIL import Image

    for name, img in _hostile_images().items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), img)
    photo = Image.fromarray(_hostile_images()["photo"][:, :, ::-1])
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg")
    photo.convert("P").save(tmp_path / "palette.png")
    result = CliRunner().invoke(main, ["scan", str(tmp_path), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == []  # read fine, and no form on them: no rows at all


def test_pages_on_their_side_or_upside_down_are_read_the_right_way_up(tmp_path):
    page = np.full((500, 700), 250, np.uint8)
    for i, text in enumerate(["4701", "2593", "8364"]):
        y = 60 + 140 * i
        cv2.rectangle(page, (60, y), (560, y + 90), 0, 3)
        cv2.putText(page, text, (120, y + 72), cv2.FONT_HERSHEY_SIMPLEX, 2.2, 0, 6)
    turns = {"0": None, "90": cv2.ROTATE_90_CLOCKWISE, "180": cv2.ROTATE_180, "270": cv2.ROTATE_90_COUNTERCLOCKWISE}
    for name, code in turns.items():
        cv2.imwrite(str(tmp_path / f"turned{name}.png"), page if code is None else cv2.rotate(page, code))
    result = CliRunner().invoke(main, ["scan", str(tmp_path), "--workers", "0"])
    rows = list(csv.DictReader(result.stdout.splitlines()))
    by_file = {}
    for r in rows:
        by_file.setdefault(os.path.basename(r["file"]), []).append(r)
    upright = [r["value"] for r in by_file["turned0.png"]]
    assert upright == ["4701", "2593", "8364"]
    for name in turns:
        assert [r["value"] for r in by_file[f"turned{name}.png"]] == upright, name
    # boxes are reported in the pixels of the page as scanned
    r = by_file["turned180.png"][0]
    assert abs(int(r["x"]) - (700 - 560)) <= 3 and abs(int(r["y"]) - (500 - 150)) <= 3
    assert analyze(cv2.rotate(page, cv2.ROTATE_90_CLOCKWISE)).turned == 90


def test_marks_sample_turned_round_or_on_its_side_reads_as_upright(tmp_path):
    # its digits are rich in 0, 1 and 8, which read the same turned round: 32 sample crops left the test
    # unsure, and the page was read upside down (34 of 35 values wrong, 4 of them ok)
    page = cv2.imread(str(Path(__file__).resolve().parent.parent / "samples" / "marks.png"), cv2.IMREAD_GRAYSCALE)
    for name, code in {"0": None, "90": cv2.ROTATE_90_CLOCKWISE, "180": cv2.ROTATE_180}.items():
        cv2.imwrite(str(tmp_path / f"marks{name}.png"), page if code is None else cv2.rotate(page, code))
    result = CliRunner().invoke(main, ["scan", str(tmp_path), "--workers", "0", "-q"])
    by_file = {}
    for r in csv.DictReader(result.stdout.splitlines()):
        by_file.setdefault(os.path.basename(r["file"]), []).append((r["value"], r["status"]))
    assert len(by_file["marks0.png"]) == 35
    assert by_file["marks90.png"] == by_file["marks180.png"] == by_file["marks0.png"]


def test_a_page_unsure_on_its_digits_is_judged_on_its_strips():
    """Crowded fields: cut crops of digits run together read poorly either way up, the digit test is unsure
    and the page was read twice in the main process; a string read whole turned round tells at once."""
    from types import SimpleNamespace

    from formdigits import orient

    class Reader:  # reads a strip well when its mark is at the top left, as an upright string "is"
        def read_inputs(self, strips):
            return [SimpleNamespace(probability=0.9 - 0.01 * s[0, 1] if s[0, 0] else 0.01) for s in strips]

    def strips(corner):
        out = [np.zeros((4, 6), np.uint8) for _ in range(orient.MIN_SAMPLE)]
        for k, s in enumerate(out):
            s[corner], s[0, 1], s[-1, -2] = 1, k, k  # a little spread, either way up
        return out

    few = np.arange(3)  # too few digit samples: the digit test is unsure
    upright, upside_down = strips((0, 0)), strips((-1, -1))
    verdicts = orient.judge(None, None, None, [few, few, few], Reader(), [upright, upside_down, upright[:3]])
    assert verdicts == [orient.UPRIGHT, orient.UPSIDE_DOWN, orient.UNSURE]  # too few strips: still unsure
    assert orient.judge(None, None, None, [few], None, None) == [orient.UNSURE]  # no sequence reader


def test_a_page_that_reads_as_well_upside_down_gives_no_accepted_field(tmp_path):
    page = np.full((500, 900), 250, np.uint8)
    for i, text in enumerate(["8008", "1001", "808", "6699"]):  # the same turned round, or nearly
        cv2.rectangle(page, (60, 20 + 120 * i), (760, 110 + 120 * i), 0, 3)
        cv2.putText(page, text, (120, 92 + 120 * i), cv2.FONT_HERSHEY_SIMPLEX, 2.2, 0, 6)
    cv2.imwrite(str(tmp_path / "turned.png"), cv2.rotate(page, cv2.ROTATE_180))
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "turned.png"), "--workers", "0", "-q"])
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [r["value"] for r in rows] == ["8008", "1001", "808", "6699"]  # either way up, nearly the same
    assert {r["status"] for r in rows} == {"review"}
    assert all(r["error"].endswith("page orientation uncertain: it reads about as well upside down") for r in rows)


def _sleep_or_die(task):
    if task == "die":
        os._exit(3)  # a worker killed mid-page
    time.sleep(task)
    return task


def test_a_crashed_or_hung_worker_costs_only_its_own_task():
    tasks = [0, 0.01, "die", 0, 30, 0.01, 0]
    results = list(ordered_map(_sleep_or_die, tasks, workers=2, timeout=3))
    assert [t for t, _ in results] == tasks  # every task, in order
    failed = {i: r.message for i, (_, r) in enumerate(results) if isinstance(r, WorkerFailure)}
    assert set(failed) == {2, 4}
    assert "crashed" in failed[2] and "time limit" in failed[4]
    assert [r for i, (_, r) in enumerate(results) if i not in failed] == [0, 0.01, 0, 0.01, 0]


def test_five_hundred_page_pdf_is_read_page_by_page(tmp_path):
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for _ in range(500):
        pdf.new_page(144, 144)
    pdf.save(str(tmp_path / "long.pdf"))
    pdf.close()
    assert count_pages(tmp_path / "long.pdf") == 500
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "long.pdf"), "--workers", "0", "--pdf-dpi", "72"])
    assert result.exit_code == 0 and "500 pages" in result.stderr


def test_encrypted_pdf_is_an_error_row():
    # tests/data/encrypted.pdf: one blank page, AES-256, user password "secret" (made with qpdf --encrypt)
    f = Path(__file__).resolve().parent / "data" / "encrypted.pdf"
    with pytest.raises(PageError, match=r"encrypted.pdf: not a readable PDF: it is encrypted \(password protected\)"):
        count_pages(f)


def test_damaged_pdf_is_an_error_row(tmp_path):
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(200, 200)
    pdf.save(str(tmp_path / "ok.pdf"))
    data = (tmp_path / "ok.pdf").read_bytes()
    (tmp_path / "damaged.pdf").write_bytes(data[:40])
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "damaged.pdf"), "--workers", "0"])
    assert result.exit_code == 1 and "damaged.pdf: not a readable PDF" in result.stdout


def _pdf(objects):
    """A small PDF of these numbered objects (1 is the catalog), with a correct xref table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


BROKEN_PAGE_PDF = _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                        b"(not a page)"])  # fmt: skip


def test_a_pdf_page_that_fails_to_load_is_an_error_row_and_the_batch_goes_on(bad_files):
    """Issue 19, item 1: pdfium's 'Failed to load page' stopped the batch with a traceback."""
    folder, good, _ = bad_files
    broken = folder / "broken.pdf"
    broken.write_bytes(BROKEN_PAGE_PDF)
    assert count_pages(broken) == 1
    out = folder / "out.csv"
    result = CliRunner().invoke(main, ["scan", str(broken), str(good), "--workers", "0", "-o", str(out)])
    assert result.exit_code == 1, result.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["file"], r["status"], r["error"]) for r in rows] == [
        (str(broken), "error", f"{broken}: page 1: pdfium cannot read it: Failed to load page."),
        (str(good), "ok", "")]  # fmt: skip


def test_template_of_a_pdf_page_that_fails_to_load_is_a_one_line_error(tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(BROKEN_PAGE_PDF)
    result = CliRunner().invoke(main, ["template", str(broken), "-o", str(tmp_path / "t.json")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == f"Error: {broken}: page 1: pdfium cannot read it: Failed to load page."
    assert not (tmp_path / "t.json").exists()


def test_any_library_failure_while_decoding_is_an_error_row_naming_it(tmp_path, monkeypatch):
    import formdigits.pipeline as pipeline

    def fail(*args):
        raise cv2.error("OpenCV(5.1.0) grfmt_tiff.cpp:42: error: (-2:Unspecified error) in function 'readData'")

    cv2.imwrite(str(tmp_path / "p.png"), np.full((40, 40), 255, np.uint8))
    monkeypatch.setattr(cv2, "imdecode", fail)
    with pytest.raises(PageError, match=r"p.png: page 1: OpenCV cannot decode it: OpenCV\(5.1.0\) grfmt_tiff"):
        read_page(tmp_path / "p.png", 1)
    monkeypatch.setattr(pipeline, "read_page", fail)  # a failure pages.py does not foresee
    work = pipeline.analyse_page(pipeline.PageTask("a.tif", 3, "auto", False))
    assert work.error == ("a.tif: page 3: decoding failed: error: OpenCV(5.1.0) grfmt_tiff.cpp:42: error: "
                          "(-2:Unspecified error) in function 'readData'")  # fmt: skip


@pytest.mark.parametrize("dpi", [0, -300, float("nan"), float("inf"), "300", True])
def test_a_pdf_dpi_that_cannot_work_is_refused_before_any_page_is_read(dpi, monkeypatch):
    import formdigits
    import formdigits.pipeline as pipeline

    monkeypatch.setattr(pipeline, "page_offsets", lambda *a: pytest.fail("read a file"))
    with pytest.raises(ValueError, match=r"pdf_dpi must be 'auto' or a number from 50 to 1200, got"):
        formdigits.scan(["any.pdf"], pdf_dpi=dpi)
    with pytest.raises(ValueError, match=r"pdf_dpi must be"):
        read_page("any.pdf", 1, pdf_dpi=dpi)


@pytest.mark.parametrize("dpi", ["0", "-300", "nan", "1201", "72.5"])
def test_a_pdf_dpi_that_cannot_work_is_a_usage_error(dpi, tmp_path):
    for command in (["scan", str(tmp_path / "p.pdf")], ["template", __file__, "-o", str(tmp_path / "t.json")]):
        result = CliRunner().invoke(main, [*command, "--pdf-dpi", dpi])
        assert result.exit_code == 2 and "is not 'auto' or a number from 50 to 1200" in result.output, result.output


def _pages_in(path):
    try:
        return len({(r["file"], r["page"]) for r in csv.DictReader(path.read_text().splitlines())})
    except (OSError, csv.Error, KeyError):
        return 0


def test_resume_after_a_killed_run_gives_the_same_csv(tmp_path):
    samples = Path(__file__).resolve().parent.parent / "samples"
    files = [str(p) for p in sorted(samples.iterdir()) if p.suffix != ".csv"] * 3  # 21 pages
    listing = "\n".join(files) + "\n"
    full, cut = tmp_path / "full.csv", tmp_path / "cut.csv"
    scan = [sys.executable, "-m", "formdigits", "scan", "-", "--workers", "0", "-q"]
    subprocess.run([*scan, "-o", str(full)], input=listing, text=True, check=True)

    proc = subprocess.Popen([*scan, "-o", str(cut)], stdin=subprocess.PIPE, text=True)
    proc.stdin.write(listing)
    proc.stdin.close()
    partial = tmp_path / "cut.csv.partial"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _pages_in(partial) < 3:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up of any kind: as a crash or a power cut
    proc.wait()
    assert not cut.exists() and 3 <= _pages_in(partial) < _pages_in(full)

    resumed = subprocess.run([*scan, "-o", str(cut), "--resume"], input=listing, text=True, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert cut.read_bytes() == full.read_bytes()
    assert not partial.exists()


def test_resume_keeps_whole_pages_only(tmp_path):
    from formdigits.output import Row, open_output

    out = tmp_path / "o.csv"
    with pytest.raises(KeyboardInterrupt), open_output(out) as w:
        for page in (1, 2, 3):
            w.write(Row("a.png", page, 1, value="12", status="ok"))
            w.write(Row("a.png", page, 2, value="34", status="ok"))
            w.flush()
        raise KeyboardInterrupt
    partial = tmp_path / "o.csv.partial"
    partial.write_bytes(partial.read_bytes()[:-7])  # the last row cut short, as by a crash mid-write
    with open_output(out, resume=True) as w:
        assert w.done == {("a.png", 1): 1, ("a.png", 2): 1}  # page 3 is read again
        w.write(Row("a.png", 3, 1, value="99", status="ok"))
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["page"], r["field"], r["value"]) for r in rows] == [
        ("1", "1", "12"), ("1", "2", "34"), ("2", "1", "12"), ("2", "2", "34"), ("3", "1", "99")]  # fmt: skip


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker process through Linux /proc")
def test_killing_a_worker_mid_run_costs_at_most_its_page(tmp_path):
    samples = Path(__file__).resolve().parent.parent / "samples"
    files = [str(p) for p in sorted(samples.iterdir()) if p.suffix != ".csv"] * 2  # 14 pages
    out = tmp_path / "out.csv"
    proc = subprocess.Popen([sys.executable, "-m", "formdigits", "scan", "-", "--workers", "1", "-q", "-o", str(out)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdin.write("\n".join(files) + "\n")
    proc.stdin.close()
    partial, deadline, killed = tmp_path / "out.csv.partial", time.time() + 120, None
    while time.time() < deadline and proc.poll() is None and killed is None:
        workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
        if workers and _pages_in(partial) >= 2:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    assert killed, "no worker process to kill before the run ended"
    proc.wait()
    stderr = proc.stderr.read()
    rows = list(csv.DictReader(out.read_text().splitlines()))
    keys = [(r["file"], r["page"]) for r in rows]
    runs = [k for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
    assert len(runs) == 14  # every page of every file listed has its rows (a run of them), in order
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) <= 1 and all("worker process reading it crashed" in r["error"] for r in errors), errors
    assert proc.returncode == (1 if errors else 0), stderr


def _template(tmp_path, fields, **rules):
    d = {"format": "formdigits-template/1", "name": "t", "width": 20_000, "height": 20_000, "fields": fields}
    if rules:
        d["fields"][0]["rules"] = rules
    f = tmp_path / "t.json"
    f.write_text(json.dumps(d))
    return f


def test_template_work_in_the_main_process_is_bounded(tmp_path):
    """Issue 19 item 8: rules run in the main process, where no --page-timeout reaches; a pattern with catastrophic
    backtracking ran over 90 s a page, 'cells': 1000000 cost 39 s a page, 10,000 fields 21 s to load."""
    field = {"name": "a", "kind": "comb", "x": 0, "y": 19_000, "w": 400, "h": 60, "cells": 5}
    slow = [r"(0*)*1", r"(\d+)+5", r"(0|00)+1", r"\d?" * 22 + r"\d{22}", r"\d*\d*\d*5", r"(\d)\1", r"(?=1)\d+",
            r"\d{0,9}" * 4, "1" * 101]  # fmt: skip
    for pattern in slow:
        with pytest.raises(TemplateError, match="rule pattern"):
            load_template(_template(tmp_path, [dict(field)], pattern=pattern))
    with pytest.raises(TemplateError, match="cells must be an integer from 2 to 100, got 1000000"):
        load_template(_template(tmp_path, [{**field, "cells": 1_000_000}]))
    grid = [{"name": f"f{i}", "kind": "open", "x": i % 100 * 200, "y": i // 100 * 100, "w": 190, "h": 90}
            for i in range(10_001)]  # fmt: skip
    with pytest.raises(TemplateError, match="fields must be a list of 1 to 1000 fields, got 10001"):
        load_template(_template(tmp_path, grid))
    # the costliest patterns allowed stay fast on any value, one read from the widest open field included
    allowed = [r"\d{0,9}\d{0,9}\d{0,9}\d*5", r"\d*" + r"\d?" * 9 + "5", r"^0?[1-9][0-9]*$"]
    t = load_template(_template(tmp_path, [dict(field)] + grid[1:1000], pattern=allowed[0]))
    assert len(t.fields) == 1000
    start = time.perf_counter()
    for pattern in allowed:
        load_template(_template(tmp_path, [dict(field)], pattern=pattern))
        for value in ("0" * 30, "0" * 2000, "1" * 10_000):
            assert broken_rules(value, {"pattern": pattern, "min": 5, "max": 10**99})
    assert time.perf_counter() - start < 2


def test_template_overlap_check_sweeps_and_agrees_with_every_pair():
    """The overlap check is n log n (a sweep) and says what comparing every pair says."""
    rng = np.random.default_rng(0)

    def overlap(a, b):
        return (min(a.x + a.w, b.x + b.w) - max(a.x, b.x) > 3) and (min(a.y + a.h, b.y + b.h) - max(a.y, b.y) > 3)

    for trial in range(300):
        n = int(rng.integers(2, 12))
        fields = [TemplateField(f"f{i}", "open", *map(int, rng.integers(0, 60, 2)), *map(int, rng.integers(2, 25, 2)))
                  for i in range(n)]  # fmt: skip
        pairs = any(overlap(a, b) for i, a in enumerate(fields) for b in fields[i + 1 :])
        try:
            _check_overlaps(fields)
            swept = False
        except ValueError:
            swept = True
        assert swept == pairs, fields
    # 10,000 fields in a column, all crossed by one sweep line, and in a grid: comparing every pair took 21 s
    column = [TemplateField(f"f{i}", "open", 10, 10 + i * 50, 100, 44) for i in range(10_000)]
    grid = [TemplateField(f"f{i}", "open", i % 100 * 200, i // 100 * 100, 190, 90) for i in range(10_000)]
    start = time.perf_counter()
    _check_overlaps(column)
    _check_overlaps(grid)
    assert time.perf_counter() - start < 1


def test_registering_a_huge_template_to_a_page_of_boxes_alike_stays_small():
    """Every template box voted on every hypothesis at once: 1,000 fields against a page of 300 boxes alike took
    gigabytes (the worker was killed). Voting is now chunked, and huge templates and pages are sampled."""
    import tracemalloc

    from formdigits.layout import Box
    from formdigits.template import Template, register

    fields = [TemplateField(f"f{i}", "comb", 10 + i % 20 * 120, 10 + i // 20 * 60, 100, 40, 5) for i in range(1000)]
    page = [Box(15 + i % 20 * 120, 18 + i // 20 * 60, 100, 40, "comb", [(0, 1)] * 5, 2) for i in range(150)]
    tracemalloc.start()
    start = time.perf_counter()
    reg = register(Template("t", 3000, 4000, fields), page)
    took, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(reg.matched) == 150 and reg.matrix[:, 2] == pytest.approx([5, 8], abs=0.5)
    assert peak < 100e6 and took < 5


def test_python_api_takes_one_path_whole_and_refuses_options_that_cannot_work(tmp_path):
    """Issue 19: scan(b"/path") read the bytes as 29 paths, scan(..., workers=-1) silently returned nothing."""
    import formdigits
    from formdigits.pipeline import iter_scan

    missing = tmp_path / "no-such-page.png"
    for one in (bytes(missing), str(missing), missing):
        rows = formdigits.scan(one, readers="cut", device="cpu")
        assert [(r.file, r.status) for r in rows] == [(str(missing), "error")], one
    bad = [({"workers": -1}, "workers must be an integer >= 0"), ({"page_timeout": float("inf")}, "page_timeout"),
           ({"min_confidence": float("nan")}, "min_confidence"), ({"pdf_dpi": 10}, "pdf_dpi"),
           ({"readers": "all"}, "readers must be both or cut")]  # fmt: skip
    for options, message in bad:
        with pytest.raises(ValueError, match=message):
            formdigits.scan([missing], **options)
        with pytest.raises(ValueError, match=message):
            iter_scan([missing], **options)  # at the call, not at the first page
    for paths in ([1, 2], 7, [None]):
        with pytest.raises(TypeError, match="paths must be"):
            iter_scan(paths)


def test_paths_from_stdin_are_expanded_like_arguments(tmp_path):
    """`echo dir | formdigits scan - -r` said "is a directory"."""
    from formdigits.pipeline import expand_paths

    for name in ("a.png", "sub/b.tif", "sub/notes.txt"):
        (tmp_path / "dir" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dir" / name).write_bytes(b"")
    stdin = io.StringIO(f"{tmp_path / 'dir'}\n{tmp_path / 'one.png'}\n")
    got = expand_paths(["-"], recursive=True, stdin=stdin)
    assert got == [str(tmp_path / "dir" / "a.png"), str(tmp_path / "dir" / "sub" / "b.tif"), str(tmp_path / "one.png")]


def _write_form_page(path, text="4"):
    """A small page with one open box holding ``text``."""
    page = np.full((400, 600), 250, np.uint8)
    cv2.rectangle(page, (100, 100), (400, 180), 0, 3)
    cv2.putText(page, text, (200, 165), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 0, 5)
    Path(path).write_bytes(cv2.imencode(".png", page)[1].tobytes())  # (cv2.imwrite crashes on a non-UTF-8 name)
    return path


def test_names_that_are_not_utf8_do_not_stop_the_batch(tmp_path):
    """Issue 19 item 2: `formdigits scan d -o out.csv` with d/bad\xff.jpg ended in a UnicodeEncodeError (and a
    TIFF or a debug picture so named crashed OpenCV)."""
    folder = tmp_path / "d"
    folder.mkdir()
    bad = [os.fsdecode(os.fsencode(folder) + name) for name in (b"/bad\xff.png", b"/odd\xfe.tif")]
    _write_form_page(bad[0])
    _write_form_page(folder / "good.png")
    cv2.imencode(".tif", cv2.imread(str(folder / "good.png"), cv2.IMREAD_GRAYSCALE))[1].tofile(bad[1])
    out = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, "-m", "formdigits", "scan", str(folder), "-o", str(out), "-j", "0",
                           "--debug-dir", str(tmp_path / "debug")], capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    keys = [line.split(b",")[0] for line in out.read_bytes().splitlines()[1:]]
    assert keys == [os.fsencode(bad[0]), os.fsencode(folder / "good.png"), os.fsencode(bad[1])]
    assert len(list((tmp_path / "debug").iterdir())) == 3
    result = CliRunner().invoke(main, ["scan", str(folder), "-o", str(tmp_path / "o.jsonl"), "--format", "jsonl",
                                       "-j", "0", "--readers", "cut"])  # fmt: skip
    assert result.exit_code == 0 and os.fsencode(bad[0]) in (tmp_path / "o.jsonl").read_bytes()
    # paths on stdin are bytes too
    result = CliRunner().invoke(main, ["scan", "-", "-j", "0", "-q", "--readers", "cut"], input=os.fsencode(bad[0]) + b"\n")
    assert result.exit_code == 0 and result.stdout_bytes.splitlines()[1].startswith(os.fsencode(bad[0]) + b",1,1,")


def test_resume_exits_1_when_the_kept_pages_hold_an_error(tmp_path):
    """Issue 19 item 10: the kept part's error rows were not counted: '0 errors', exit 0."""
    from formdigits.output import Row, open_output

    good, out = _write_form_page(tmp_path / "good.png"), tmp_path / "out.csv"
    missing = str(tmp_path / "missing.png")
    with pytest.raises(KeyboardInterrupt), open_output(out) as w:
        w.write(Row(missing, 1, error=f"{missing}: no such file"))
        w.write(Row(str(good), 1, 1, status="empty"))  # the last page: read again
        w.flush()
        raise KeyboardInterrupt
    result = CliRunner().invoke(main, ["scan", missing, str(good), "-o", str(out), "--resume", "-j", "0"])
    assert result.exit_code == 1, result.output
    assert "formdigits: 1 page, 1 field (1 ok, 0 review, 0 empty), 0 errors in" in result.stderr
    assert f"and 1 page kept from the interrupted run, 1 error\n  failed: {missing}: no such file" in result.stderr
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["file"], r["status"]) for r in rows] == [(missing, "error"), (str(good), "ok")]


def test_a_second_run_on_the_same_output_stops_before_reading_a_page(tmp_path, monkeypatch):
    """Issue 19 item 6: two runs writing one -o left NUL bytes and mixed rows in it."""
    import formdigits.pipeline
    from formdigits.output import Row, open_output

    good, out = _write_form_page(tmp_path / "good.png"), tmp_path / "out.csv"
    monkeypatch.setattr(formdigits.pipeline, "plan_pages", lambda *a, **k: pytest.fail("a page was read"))
    with open_output(out) as first:
        first.write(Row("a.png", 1, status="empty"))
        first.flush()
        for extra in ([], ["--resume"]):
            result = CliRunner().invoke(main, ["scan", str(good), "-o", str(out), "-j", "0", *extra])
            assert result.exit_code == 1 and "Traceback" not in result.output
            assert result.output.splitlines()[-1] == (f"Error: {out}.partial: another formdigits run is writing it "
                                                      "(it is locked): wait for that run to end, or give another -o")
    assert out.read_text().splitlines()[1:] == ["a.png,1,0,0,0,0,0,,0.0000,,empty,"]


def test_a_full_disk_keeps_the_partial_and_says_so(tmp_path, monkeypatch):
    """ENOSPC while writing: one line naming the problem, exit 1, the finished pages kept for --resume."""
    import errno

    from formdigits import output

    pages = [str(_write_form_page(tmp_path / f"p{i}.png", str(i))) for i in range(3)]
    out, full = tmp_path / "out.csv", tmp_path / "full.csv"
    scan = ["scan", *pages, "-j", "0", "-q", "--readers", "cut"]
    assert CliRunner().invoke(main, [*scan, "-o", str(full)]).exit_code == 0
    room = len(full.read_bytes()) - 30  # the last page does not fit

    def write(self, text, real=output._Utf8Out.write):
        nonlocal room
        room -= len(text)
        if room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, text)

    monkeypatch.setattr(output._Utf8Out, "write", write)
    result = CliRunner().invoke(main, [*scan, "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines() == [f"Error: {out}.partial: cannot write: No space left on device; the pages "
                                          "finished before are kept in it: run again with --resume once it can be "
                                          "written"]  # fmt: skip
    assert not out.exists() and "p1.png" in (tmp_path / "out.csv.partial").read_text()
    monkeypatch.undo()
    assert CliRunner().invoke(main, [*scan, "-o", str(out), "--resume"]).exit_code == 0
    assert out.read_bytes() == full.read_bytes()


def test_a_damaged_partial_is_one_line_not_a_traceback(tmp_path):
    good, out = _write_form_page(tmp_path / "good.png"), tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.partial").write_text('{"file": ["x"], "page": 1, "status": "ok", "error": ""}\n')
    result = CliRunner().invoke(main, ["scan", str(good), "-o", str(out), "--format", "jsonl", "--resume", "-j", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1].startswith(f"Error: {out}.partial: line 1 is not a formdigits JSON Lines")


def test_the_progress_total_counts_pages_not_names():
    """A path listed twice is read twice: one page each, not one more page each time it comes again."""
    from collections import Counter

    from formdigits.batch import _Progress

    p = _Progress(["a.png", "a.png", "b.tif"], Counter(), quiet=True)
    for page in [("a.png", 1), ("a.png", 1), ("b.tif", 1), ("b.tif", 2), ("b.tif", 3)]:
        p.page(*page)
    assert p.bar.total == 5
    resumed = _Progress(["a.png", "a.png", "b.tif"], Counter({("a.png", 1): 2, ("b.tif", 1): 1, ("b.tif", 2): 1}), True)
    resumed.page("b.tif", 3)
    assert resumed.bar.total == 5 and resumed.bar.n == 4  # n: updates while disabled are not counted


def _tree(pid):
    """``pid``'s descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def _start_run(tmp_path, copies=6):
    """A scan with two workers, once its workers are up and (to stop it mid-run) before it is done."""
    samples = Path(__file__).resolve().parent.parent / "samples"
    files = [str(p) for p in sorted(samples.iterdir()) if p.suffix != ".csv"] * copies
    out = tmp_path / "out.csv"
    proc = subprocess.Popen([sys.executable, "-m", "formdigits", "scan", "-", "-j", "2", "-q", "-o", str(out)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    proc.stdin.write("\n".join(files) + "\n")
    proc.stdin.close()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)]
        if len(workers) == 2:
            return proc, out
        time.sleep(0.01)
    pytest.fail(f"the run never had two workers: {proc.poll()}")


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:  # gone already
        return ""


def _gone(pids, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker processes through Linux /proc")
def test_workers_and_resource_tracker_exit_when_the_scan_is_killed(tmp_path):
    """Issue 19 item 7: after `kill -9` two workers (~140 MB each) and the resource tracker lived on for good."""
    proc, out = _start_run(tmp_path)
    while proc.poll() is None and _pages_in(out.with_name("out.csv.partial")) < 1:  # the workers are at work
        time.sleep(0.02)
    children = _tree(proc.pid)
    assert len(children) >= 3  # two workers and the resource tracker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone(children) == []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker processes through Linux /proc")
def test_sigterm_stops_a_scan_as_ctrl_c_does(tmp_path):
    proc, out = _start_run(tmp_path)
    partial = out.with_name("out.csv.partial")
    while proc.poll() is None and _pages_in(partial) < 2:
        time.sleep(0.02)
    children = _tree(proc.pid)
    proc.terminate()
    assert proc.wait(60) == 143
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("formdigits: terminated after ")
    assert stderr.splitlines()[-1].endswith(f"the finished pages are in {out}.partial: run again with --resume to go on")
    assert not out.exists() and _pages_in(partial) >= 2
    assert _gone(children) == []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker processes through Linux /proc")
def test_ctrl_c_while_the_workers_start_prints_no_worker_traceback(tmp_path):
    """The terminal sends SIGINT to the whole process group, workers included, even while they import."""
    proc, out = _start_run(tmp_path)
    children = _tree(proc.pid)
    deadline = time.time() + 60
    while time.time() < deadline and not all(_handles_sigint(c) for c in children):
        time.sleep(0.01)  # until Python runs in every worker (before, SIGINT would end it silently)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 130
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.splitlines()[-1].startswith("formdigits: interrupted after ")
    assert _gone(children) == []


def _handles_sigint(pid):
    """Whether ``pid`` ignores or catches SIGINT (Linux /proc): Python in it is up, or it was told to ignore it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone
    masks = dict(line.split(":\t") for line in status.splitlines() if line.startswith(("SigIgn", "SigCgt")))
    return bool((int(masks["SigIgn"], 16) | int(masks["SigCgt"], 16)) & (1 << (signal.SIGINT - 1)))


def _report_worker(task):
    return os.getpid(), signal.getsignal(signal.SIGINT) == signal.SIG_IGN


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker processes through Linux /proc")
def test_workers_ignore_ctrl_c_and_go_when_the_caller_stops():
    results = ordered_map(_report_worker, range(20), workers=2)
    _, (pid, ignores) = next(results)
    assert ignores  # Ctrl-C is the parent's to handle
    results.close()  # the caller stopped early: the workers are killed, not left to finish their tasks
    assert _gone([pid], seconds=5) == []
