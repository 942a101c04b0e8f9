"""Reading pages: every format and pixel type down to 2-D uint8 grayscale, clear errors."""

import cv2
import numpy as np
import pytest

from formdigits.pages import PageError, read_pages, to_gray
from formdigits.synth import Page as SynthPage
from formdigits.synth import save_pages


def page_image():
    img = np.full((120, 160), 230, np.uint8)
    cv2.rectangle(img, (20, 20), (140, 60), 30, 2)
    return img


def test_pixel_types_are_normalised():
    g = page_image()
    assert to_gray(g) is not None and to_gray(g).dtype == np.uint8
    np.testing.assert_array_equal(to_gray(g.astype(np.uint16) * 257), g)  # 16-bit
    bgr = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    np.testing.assert_array_equal(to_gray(bgr), g)
    bgra = np.dstack([bgr, np.zeros_like(g)])  # fully transparent: white paper shows through
    assert (to_gray(bgra) == 255).all()
    assert set(np.unique(to_gray(g < 128))) == {0, 255}  # bitonal
    with pytest.raises(ValueError):
        to_gray(np.zeros((0, 0), np.uint8))


def test_png_files_of_every_pixel_type(tmp_path):
    from PIL import Image

    g = page_image()
    rgba = np.dstack([np.stack([g] * 3, -1), np.full_like(g, 255)])
    rgba[:10, :10, 3] = 0  # a transparent corner: white paper shows through
    files = {
        "rgb": Image.fromarray(np.stack([g] * 3, -1), "RGB"),
        "gray": Image.fromarray(g, "L"),
        "rgba": Image.fromarray(rgba, "RGBA"),
        "gray16": Image.fromarray(g.astype(np.uint16) * 257),
        "palette": Image.fromarray(g, "L").convert("P"),
    }
    for name, im in files.items():
        im.save(tmp_path / f"{name}.png")
        [page] = list(read_pages(tmp_path / f"{name}.png"))
        want = g.copy()
        if name == "rgba":
            want[:10, :10] = 255
        assert np.abs(page.image.astype(int) - want).max() <= 1, name


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_single_page_formats(tmp_path, suffix):
    path = tmp_path / f"p{suffix}"
    cv2.imwrite(str(path), cv2.cvtColor(page_image(), cv2.COLOR_GRAY2BGR))
    [page] = list(read_pages(path))
    assert page.image.shape == (120, 160) and page.page == 1 and page.file == str(path)
    assert abs(int(page.image[40, 20]) - 30) < 20 and abs(int(page.image[5, 5]) - 230) < 10


def test_multipage_tiff_bitonal_and_colour(tmp_path):
    bitonal = SynthPage(np.where(page_image() < 128, 0, 255).astype(np.uint8), [], 200)
    colour = SynthPage(cv2.cvtColor(page_image(), cv2.COLOR_GRAY2BGR), [], 200)
    save_pages([bitonal, bitonal, bitonal], tmp_path / "fax.tif")
    pages = list(read_pages(tmp_path / "fax.tif"))
    assert [p.page for p in pages] == [1, 2, 3]
    assert set(np.unique(pages[0].image)) == {0, 255}
    save_pages([colour, colour], tmp_path / "rgb.tiff")
    assert len(list(read_pages(tmp_path / "rgb.tiff"))) == 2


def test_pdf_pages_are_rendered_at_the_asked_dpi(tmp_path):
    p = SynthPage(cv2.cvtColor(page_image(), cv2.COLOR_GRAY2BGR), [], 100)
    save_pages([p, p], tmp_path / "two.pdf")
    pages = list(read_pages(tmp_path / "two.pdf", pdf_dpi=200))
    assert len(pages) == 2 and pages[1].page == 2 and pages[0].dpi == 200
    h, w = pages[0].image.shape
    assert abs(h - 240) <= 1 and abs(w - 320) <= 1  # 1.2 x 1.6 inch at 200 dpi


def test_bad_files_name_the_file(tmp_path):
    cases = {
        "empty.png": b"",
        "text.png": b"this is not an image at all",
        "cut.png": cv2.imencode(".png", page_image())[1].tobytes()[:60],
        "bad.pdf": b"%PDF-1.4 broken",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    expected = {"empty.png": "empty file", "text.png": "not a supported image", "cut.png": "not a readable image",
                "bad.pdf": "not a readable PDF"}  # fmt: skip
    for name, fragment in expected.items():
        with pytest.raises(PageError, match=f"{name}: {fragment}"):
            list(read_pages(tmp_path / name))
    with pytest.raises(PageError, match="nothere.png: no such file"):
        list(read_pages(tmp_path / "nothere.png"))
    with pytest.raises(PageError, match="is a directory"):
        list(read_pages(tmp_path))


def _rendered(monkeypatch):
    """Count page renders (the slow path)."""
    import pypdfium2 as pdfium

    calls, render = [], pdfium.PdfPage.render
    monkeypatch.setattr(pdfium.PdfPage, "render", lambda self, **kw: calls.append(kw) or render(self, **kw))
    return calls


def test_a_scanned_pdf_page_is_read_from_its_jpeg(tmp_path, monkeypatch):
    img = cv2.cvtColor(cv2.resize(page_image(), (480, 360)), cv2.COLOR_GRAY2BGR)
    save_pages([SynthPage(img, [], 300)], tmp_path / "scan.pdf")
    calls = _rendered(monkeypatch)
    [fast] = list(read_pages(tmp_path / "scan.pdf"))
    assert calls == []  # not rendered: the embedded JPEG, decoded to gray
    assert fast.image.shape == (360, 480) and round(fast.dpi) == 300  # the scan's own pixels
    [slow] = list(read_pages(tmp_path / "scan.pdf", pdf_dpi=300))  # an asked dpi is always rendered
    assert len(calls) == 1
    h, w = min(fast.image.shape[0], slow.image.shape[0]), min(fast.image.shape[1], slow.image.shape[1])
    assert np.abs(fast.image[:h, :w].astype(int) - slow.image[:h, :w]).mean() < 3


def test_a_rotated_pdf_page_is_rendered(tmp_path, monkeypatch):
    import pypdfium2 as pdfium

    img = cv2.cvtColor(cv2.resize(page_image(), (480, 360)), cv2.COLOR_GRAY2BGR)
    save_pages([SynthPage(img, [], 300)], tmp_path / "scan.pdf")
    pdf = pdfium.PdfDocument(str(tmp_path / "scan.pdf"))
    pdf[0].set_rotation(90)
    pdf.save(str(tmp_path / "turned.pdf"))
    pdf.close()
    calls = _rendered(monkeypatch)
    [page] = list(read_pages(tmp_path / "turned.pdf"))
    assert len(calls) == 1 and abs(page.image.shape[0] - 480) <= 1 and abs(page.image.shape[1] - 360) <= 1  # turned
