"""Bad and hostile input: every file that cannot be read costs only its own rows, named; the batch goes on."""

import csv
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from formdigits.cli import main
from formdigits.pages import MAX_PIXELS, PageError, count_pages, read_page


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


def test_what_other_threads_write_to_stderr_while_a_page_decodes_is_written_on_not_lost(capfd):
    """While a page decodes, file descriptor 2 points at a temporary file: another thread's log line (a
    server's URL, a warning) went there and was lost. It is written to stderr after the decode; the
    decoders' own messages are not."""
    import threading

    from formdigits.damage import decoder_messages

    capfd.readouterr()
    with decoder_messages() as said:
        other = threading.Thread(target=lambda: os.write(2, b"formdigits review: serving http://127.0.0.1:1/\n"))
        other.start()
        other.join()
        os.write(2, b"Corrupt JPEG data: bad Huffman code\n[ WARN:0@0.1] global loadsave.cpp:1 imread_ something\n")
    err = capfd.readouterr().err
    assert err == "formdigits review: serving http://127.0.0.1:1/\n"
    assert "Corrupt JPEG data: bad Huffman code" in said


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
