"""Templates cannot make a run hang or overrun memory: bounded rules, caps, an n log n overlap check."""

import json
import time

import numpy as np
import pytest

from formdigits.rules import broken_rules
from formdigits.template import TemplateError, TemplateField, _check_overlaps
from formdigits.template import load as load_template


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
