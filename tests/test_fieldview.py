"""fieldview: a page's fields read again as the scan read them (the review page's images and digit crops)."""

from pathlib import Path

import numpy as np
import pytest

from formdigits.fieldview import field_image, page_views
from formdigits.pipeline import scan

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_field_image_cuts_the_box_with_a_margin():
    page = np.full((60, 80), 255, np.uint8)
    page[20:30, 40:60] = 0  # the "box": 20 wide, 10 high, at (40, 20)
    image, inner = field_image(page, np.array([[1, 0, 0], [0, 1, 0]], float), (40, 20, 20, 10), margin=0.5)
    assert inner == (5, 5, 20, 10) and image.shape == (20, 30)
    assert (image[5:15, 5:25] == 0).all() and (image[:5] == 255).all() and (image[:, :5] == 255).all()


def test_field_image_follows_the_deskew_matrix():
    page = np.full((60, 80), 255, np.uint8)
    page[20:30, 40:60] = 0
    shifted = np.array([[1, 0, 10], [0, 1, -5]], float)  # the deskewed page is the original moved by (10, -5)
    image, (mx, my, w, h) = field_image(page, shifted, (50, 15, 20, 10), margin=0.5)
    assert (image[my : my + h, mx : mx + w] == 0).all()
    with pytest.raises(ValueError):
        field_image(page, shifted, (0, 0, 0, 5))


@pytest.mark.parametrize("name", ["census.jpg", "orders.pdf"])
def test_views_are_the_scans_fields(review_readers, name):
    clf, strips = review_readers
    rows = [r for r in scan(SAMPLES / name) if r.page == 1]
    views = page_views(str(SAMPLES / name), 1, clf, strips, boxes=[(r.x, r.y, r.w, r.h) for r in rows])
    assert [(v.box, v.value, v.status) for v in views] == [((r.x, r.y, r.w, r.h), r.value, r.status) for r in rows]
    inked = [v for v in views if v.value]
    assert inked and all(len(v.digits) == len(v.labels) == len(v.confidences) for v in views)
    # a field read whole by its digit crops: one crop per digit, labelled with it
    assert sum("".join(v.labels) == v.value for v in inked) >= 0.9 * len(inked)
    assert all(v.image.ndim == 2 and v.image.shape[0] > v.inner[3] for v in views)
