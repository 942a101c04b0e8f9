import numpy as np
import pytest

from formdigits.preprocess import JITTER, PreprocessParams, jitter, preprocess, preprocess_batch


def ink_box(shape, top, left, h, w, value=255):
    img = np.zeros(shape, np.uint8)
    img[top : top + h, left : left + w] = value
    return img


def bbox(x, level=0.5):
    ys, xs = np.nonzero(x > level)
    return ys.min(), ys.max(), xs.min(), xs.max()


def test_tall_bar_is_scaled_to_box_height_and_centred():
    out = preprocess(ink_box((60, 50), top=5, left=30, h=40, w=8))
    assert out.shape == (28, 28) and out.dtype == np.float32
    y0, y1, x0, x1 = bbox(out)
    assert y1 - y0 + 1 == 20  # longer side scaled to the 20 px box
    assert 3 <= x1 - x0 + 1 <= 5  # aspect kept: 8/40 of 20 px
    assert (y0 + y1) / 2 == pytest.approx(13.5, abs=1) and (x0 + x1) / 2 == pytest.approx(13.5, abs=1)
    assert out.max() == pytest.approx(1.0)


def test_wide_mark_keeps_its_aspect():
    y0, y1, x0, x1 = bbox(preprocess(ink_box((40, 80), top=18, left=10, h=4, w=60)))
    assert x1 - x0 + 1 == 20 and y1 - y0 + 1 <= 3


def test_position_in_the_crop_does_not_matter():
    a = preprocess(ink_box((60, 60), top=2, left=3, h=30, w=12))
    b = preprocess(ink_box((60, 60), top=25, left=40, h=30, w=12))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_faint_ink_is_contrast_stretched():
    strong = preprocess(ink_box((50, 50), 10, 20, 30, 6, value=255))
    faint = preprocess(ink_box((50, 50), 10, 20, 30, 6, value=90))
    np.testing.assert_allclose(faint, strong, atol=1e-6)


def test_blank_and_too_faint_crops_give_zero_input():
    assert not preprocess(np.zeros((30, 30), np.uint8)).any()
    assert not preprocess(np.full((30, 30), 20, np.uint8)).any()  # below min_ink
    assert not preprocess(np.zeros((0, 0), np.uint8)).any()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        preprocess(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((10, 10), np.float32))


def test_batch_uses_the_given_parameters():
    params = PreprocessParams(size=32, box=24)
    batch = preprocess_batch([ink_box((40, 40), 5, 5, 30, 30)] * 3, params)
    assert batch.shape == (3, 1, 32, 32)
    y0, y1, _, _ = bbox(batch[2, 0])
    assert y1 - y0 + 1 == 24


def test_mnist_digits_come_out_as_mnist(mnist_dir):
    from formdigits.mnist import load_mnist

    images, _ = load_mnist("test", mnist_dir)
    for img in images[:50]:
        out = preprocess(img)
        corr = np.corrcoef(out.ravel(), img.ravel().astype(np.float32))[0, 1]
        assert corr > 0.85  # same digit, same place, same size within a pixel or two


def test_jitter_moves_turns_and_scales_each_input():
    x = np.zeros((2, 28, 28), np.float32)
    x[0, 10:18, 12:16] = 1.0  # a bar
    x[1, 4, 4] = 0.5
    out = jitter(x)
    assert out.shape == (len(JITTER), 2, 28, 28)
    for k, (dx, dy, degrees, scale) in enumerate(JITTER):
        if degrees == 0 and scale == 1.0:  # a whole-pixel move is exact
            np.testing.assert_array_equal(out[k], np.roll(x, (dy, dx), axis=(1, 2)))
        else:
            assert not np.array_equal(out[k, 0], x[0])
            assert out[k, 0].sum() == pytest.approx(x[0].sum() * scale**2, rel=0.05)  # ink kept, scaled by area
    with pytest.raises(ValueError, match="shape"):
        jitter(np.zeros((28, 28), np.float32))
