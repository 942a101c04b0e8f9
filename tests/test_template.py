"""Form templates: making, checking, registering, rules, and scans of a known form."""

import csv
import io
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from formdigits.cli import main
from formdigits.layout import analyze
from formdigits.mnist import load_mnist
from formdigits.rules import broken_rules, check_pattern, luhn_ok, mod11_ok
from formdigits.score import read_rows, score
from formdigits.synth import DigitSource, PageStyle, make_page, save_pages, truth_rows, write_truth
from formdigits.template import TemplateError, field_boxes, from_layout, load, register, save

GOOD = {"format": "formdigits-template/1", "name": "t", "width": 1000, "height": 800, "fields": [
    {"name": "account", "kind": "comb", "x": 100, "y": 100, "w": 400, "h": 60, "cells": 8, "rules": {"check": "luhn"}},
    {"name": "amount", "kind": "open", "x": 100, "y": 200, "w": 300, "h": 60}]}  # fmt: skip


def _write(tmp_path, d):
    f = tmp_path / "t.json"
    f.write_text(json.dumps(d))
    return f


def _with(field=None, **top):
    d = json.loads(json.dumps(GOOD))
    d.update(top)
    if field:
        d["fields"][0].update(field)
    return d


def test_template_round_trip_and_checks(tmp_path):
    t = load(_write(tmp_path, GOOD))
    assert [f.name for f in t.fields] == ["account", "amount"] and t.fields[0].cells == 8
    save(t, tmp_path / "again.json")
    assert load(tmp_path / "again.json") == t
    bad = {
        "unknown keys \\['colour'\\]": _with({"colour": "red"}),
        "unknown keys \\['extra'\\]": _with(extra=1),
        "overlap": _with({"y": 210}),
        "outside the 1000 x 800 page": _with({"x": 700}),
        "kind must be comb or open": _with({"kind": "boxes"}),
        "cells must be an integer from 2 to 100": _with({"cells": 1}),
        "name .* used twice": _with({"name": "amount"}),
        "unknown rules": _with({"rules": {"even": True}}),
        "rule check must be one of": _with({"rules": {"check": "crc"}}),
        "rule pattern .* is not allowed": _with({"rules": {"pattern": "(["}}),
        "missing key 'width'": {k: v for k, v in GOOD.items() if k != "width"},
        "not a formdigits template": _with(format="other/1"),
    }
    for message, d in bad.items():
        with pytest.raises(TemplateError, match=message):
            load(_write(tmp_path, d))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(TemplateError, match="broken.json: not valid JSON"):
        load(tmp_path / "broken.json")


def test_rules():
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert mod11_ok("0306406152") and not mod11_ok("0306406153")  # ISBN-10 0-306-40615-2
    assert broken_rules("1234", {"digits": 4, "min": 1000, "max": 5000, "pattern": "1[0-9]*"}) == []  # whole value
    assert broken_rules("123", {"digits": [4, 6]}) == ["rule digits: 3 digits, wanted 4-6"]
    assert broken_rules("6001", {"max": 5000}) == ["rule max: 6001 > 5000"]
    assert broken_rules("0999", {"min": 1000}) == ["rule min: 999 < 1000"]
    assert broken_rules("2345", {"pattern": "^1[0-9]+$"}) == ["rule pattern: '2345' does not match '^1[0-9]+$'"]
    assert broken_rules("79927398710", {"check": "luhn"}) == ["rule check: Luhn check digit wrong"]
    for pattern in ("0[0-9]+", "[1-9][0-9]{3}", "^1[0-9]+$", r"9?\d{5,8}", r"[^0]\d*", "...", "[0-35-9]{2,}"):
        check_pattern(pattern)  # the plain patterns a form needs are allowed


def _form(boxes, shape=(700, 900)):
    page = np.full(shape, 250, np.uint8)
    import cv2

    for x, y, w, h, n in boxes:
        cv2.rectangle(page, (x, y), (x + w, y + h), 0, 3)
        for i in range(1, n):
            cv2.line(page, (x + i * w // n, y), (x + i * w // n, y + h), 0, 3)
    return page


def test_registration_finds_the_form_shifted_and_scaled_with_a_box_missing():
    import cv2

    boxes = [(60, 60, 400, 70, 5), (520, 60, 250, 70, 1), (60, 200, 600, 70, 8), (60, 340, 300, 70, 1)]
    t = from_layout(analyze(_form(boxes)), "t")
    # the same form scanned at 2/3 the resolution, shifted, and with its last box too faint to be found
    page = _form(boxes[:3])
    page = cv2.warpAffine(page, np.float32([[2 / 3, 0, 25], [0, 2 / 3, 40]]), (700, 560), borderValue=250)
    layout = analyze(page)
    reg = register(t, layout.boxes)
    assert len(reg.matched) == 3 and reg.quality == pytest.approx(2 * 3 / 7)
    assert reg.matrix[0, 0] == pytest.approx(2 / 3, abs=0.01)
    missing = field_boxes(reg, 2)[3]  # carried over from the template
    x, y = 60 * 2 / 3 + 25, 340 * 2 / 3 + 40
    assert abs(missing.x - x) <= 3 and abs(missing.y - y) <= 3 and abs(missing.w - 200) <= 3


@pytest.fixture(scope="module")
def digits(mnist_dir):
    return DigitSource(*load_mnist("test", mnist_dir))


def test_scan_with_templates_names_fields_picks_the_form_and_reads_at_least_as_well(tmp_path, digits):
    small = PageStyle(width_mm=150, height_mm=120, dpi=200, frame_prob=0.0, line_colour="black", paper="white")
    templates, rows = [], []
    for form, seed in (("alpha", 11), ("beta", 12)):
        blank = make_page(digits, np.random.default_rng(0), PageStyle(**{**small.__dict__, "empty_prob": 1.0}),
                          layout_seed=seed)  # fmt: skip
        save_pages([blank], tmp_path / f"{form}-blank.png")
        r = CliRunner().invoke(main, ["template", str(tmp_path / f"{form}-blank.png"), "-o",
                                      str(tmp_path / f"{form}.json"), "--preview", str(tmp_path / f"{form}.png")])  # fmt: skip
        assert r.exit_code == 0, r.output
        templates += ["--template", str(tmp_path / f"{form}.json")]
        rng = np.random.default_rng(seed)
        for i, dpi in enumerate((200, 300, 200)):
            style = PageStyle(**{**small.__dict__, "dpi": dpi, "rotation_max": 5, "scale_max": 0.03,
                                 "shift_max_mm": 4, "faint_line_prob": 0.2})  # fmt: skip
            page = make_page(digits, rng, style, layout_seed=seed)
            name = f"{form}{i}.png"
            save_pages([page], tmp_path / "scans" / name if (tmp_path / "scans").exists() else _mkdir(tmp_path) / name)
            rows += [{**r, "form": form} for r in truth_rows(name, [page])]
    write_truth([{k: v for k, v in r.items() if k != "form"} for r in rows], tmp_path / "truth.csv")
    truth = read_rows(tmp_path / "truth.csv")
    plain = CliRunner().invoke(main, ["scan", str(tmp_path / "scans"), "-j", "0"])
    long = CliRunner().invoke(main, ["scan", str(tmp_path / "scans"), "-j", "0", *templates])
    wide = CliRunner().invoke(main, ["scan", str(tmp_path / "scans"), "-j", "0", "--format", "wide", *templates])
    assert long.exit_code == 0 and wide.exit_code == 0, long.output
    got = list(csv.DictReader(io.StringIO(long.stdout)))
    forms = {(r["file"].split("/")[-1]): r["form"] for r in got}
    assert forms == {f"{f}{i}.png": f for f in ("alpha", "beta") for i in range(3)}  # every page, the right form
    assert all(not r["field"].isdigit() for r in got)  # named fields
    with_t = score(got, truth)
    without = score(list(csv.DictReader(io.StringIO(plain.stdout))), truth)
    assert with_t["field_accuracy"] >= without["field_accuracy"] and with_t["missed"] <= without["missed"]
    table = list(csv.reader(io.StringIO(wide.stdout)))
    assert len(table) == 1 + 6 and len({len(r) for r in table}) == 1  # one row per page, all the same width
    assert table[0][:3] == ["file", "page", "form"] and table[0][-2:] == ["status", "error"]


def _mkdir(tmp_path):
    (tmp_path / "scans").mkdir()
    return tmp_path / "scans"


def test_unusable_templates_are_refused_with_the_problem_named(tmp_path):
    """Issue 19: each of these crashed later (or ran) instead of being refused when loaded."""
    bad = {
        "rule digits must be .* min <= max": _with({"rules": {"digits": [5, 1]}}),
        "rule digits must be": _with({"rules": {"digits": True}}),
        "rule min must be a finite number": _with({"rules": {"min": float("nan")}}),
        "rule max must be a finite number": _with({"rules": {"max": 10**400}}),
        "rule min 10 is above rule max 5": _with({"rules": {"min": 10, "max": 5}}),
        "name must be a string": _with(name={"a": 1}),
        "width must be an integer from 1 to 100000": _with(width=10**400),
        "x must be an integer from 0 to 1000": _with({"x": 10**400}),
        "'file' is taken by a column of the wide format": _with({"name": "file"}),
        "'Status' is taken by a column": _with({"name": "Status"}),
        "'f4_confidence' is taken by a column": _with({"name": "f4_confidence"}),
        "fields must be a list of 1 to 1000 fields, got 0 fields": _with(fields=[]),
        "fields must be a list": _with(fields="ab"),
    }
    for message, d in bad.items():
        with pytest.raises(TemplateError, match=message):
            load(_write(tmp_path, d))
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TemplateError, match="nested.json: not a template: its JSON is nested too deeply"):
        load(nested)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(TemplateError, match="fifo.json: not a regular file"):
        load(fifo)  # refused without opening it: reading would wait for a writer forever


def test_a_bad_template_is_a_usage_error_naming_it(tmp_path):
    t = _write(tmp_path, _with({"name": "error"}))
    r = CliRunner().invoke(main, ["scan", str(tmp_path / "never-read.png"), "-t", str(t)])
    assert r.exit_code == 2 and "t.json: field 1 ('error'): the name 'error' is taken" in r.output, r.output
    assert "Traceback" not in r.output
