"""The review page in a real browser (headless Chromium through Playwright): keyboard only, saved, resumed, applied."""

import csv
import shutil

import pytest
from click.testing import CliRunner

from formdigits.cli import main
from formdigits.output import COLUMNS, spreadsheet_safe
from formdigits.review.apply import apply
from formdigits.review.queue import Review, items, load_state, load_table, reviewed_path, reviewed_text
from formdigits.review.server import ReviewApp, start
from formdigits.review.views import Views


def read(path):
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return list(csv.DictReader(fh))


def shown(page):
    """Wait until the current item's image is on the page; its row."""
    page.wait_for_function("() => { const it = window.formdigitsReview && window.formdigitsReview.current();"
                           " return it && document.getElementById('field-image').src.startsWith('data:'); }")  # fmt: skip
    return page.evaluate("window.formdigitsReview.current().row")


def check_four(page):
    """Keyboard only: correct the first item, skip the second, correct the third, confirm the fourth.
    Returns the rows of the four items as they were shown."""
    rows = [shown(page)]
    page.keyboard.type("1234")  # the reading is selected: typing replaces it
    page.keyboard.press("Enter")
    rows.append(shown(page))
    page.keyboard.press("Escape")
    rows.append(shown(page))
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.type("9a")  # a letter is never part of a reading
    return rows


@pytest.fixture
def review_copy(samples_scan, tmp_path):
    path = tmp_path / "out.csv"
    shutil.copy(samples_scan, path)
    return path


def expected_final(scan_csv, decided):
    """The scan's rows with ``decided`` ({row: (value)}) applied as corrections (status ok, confidence 1)."""
    rows = read(scan_csv)
    for n, value in decided.items():
        rows[n].update(value=value, confidence="1.0000", digit_confidences=" ".join(["1.0000"] * len(value)),
                       status="ok", error="")  # fmt: skip
    return rows


def test_correct_two_fields_with_the_keyboard_reload_and_apply(chromium, review_copy, review_readers, tmp_path):
    table = load_table(review_copy)
    queue = items(table)
    app = ReviewApp(load_state(table), queue, Views(tmp_path, review_readers))
    server, _ = start(app)
    errors = []
    try:
        page = chromium.new_page(viewport={"width": 1280, "height": 820})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        assert page.locator("#progress-text").inner_text() == f"0 of {len(queue)} checked"
        first, skipped, third = check_four(page)[:3]
        assert [first, skipped] == [queue[0].row, queue[1].row]
        assert page.locator("#reading").input_value() == queue[2].value[:-1] + "9"  # the a was not typed
        page.keyboard.press("Enter")
        shown(page)
        page.wait_for_function("() => document.getElementById('saved').textContent.startsWith('saved to')")
        page.screenshot(path=tmp_path / "review.png")
        assert (tmp_path / "review.png").stat().st_size > 20000
        corrected = {first: "1234", third: queue[2].value[:-1] + "9"}
        state = load_state(table)
        assert {n: (r.value, r.status) for n, r in enumerate(state.reviews) if r.status} == {
            n: (v, "corrected") for n, v in corrected.items()}

        page.reload()  # kept, and resumed at the first item not checked: the one skipped
        assert shown(page) == skipped
        assert page.locator("#progress-text").inner_text() == f"2 of {len(queue)} checked"
        page.keyboard.press("ArrowUp")
        assert shown(page) == first and page.locator("#reading").input_value() == "1234"
        assert "corrected to 1234" in page.locator("#decided").inner_text()
        assert len(page.locator("#crops .crop").all()) > 0
        assert not errors, errors
    finally:
        server.shutdown()
        server.server_close()
        app.views.close()
    final = tmp_path / "final.csv"
    r = CliRunner().invoke(main, ["review", str(review_copy), "--apply", str(reviewed_path(review_copy)), "-o",
                                  str(final)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert read(final) == expected_final(review_copy, corrected)


def test_the_static_page_keeps_its_state_and_downloads_the_reviewed_file(chromium, review_copy, tmp_path):
    html = tmp_path / "queue.html"
    r = CliRunner().invoke(main, ["review", str(review_copy), "--html", str(html)])
    assert r.exit_code == 0, r.output
    queue = items(load_table(review_copy))
    context = chromium.new_context(accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.as_uri())
    first, skipped, third = check_four(page)[:3]
    page.keyboard.press("Enter")
    shown(page)
    page.reload()
    assert shown(page) == skipped
    assert page.locator("#progress-text").inner_text() == f"2 of {len(queue)} checked"
    with page.expect_download() as info:
        page.locator("#export").click()
    download = tmp_path / "downloaded.reviewed.csv"
    info.value.save_as(download)
    assert info.value.suggested_filename == "out.reviewed.csv"
    corrected = {first: "1234", third: queue[2].value[:-1] + "9"}
    table = load_table(review_copy)
    reviews = [Review(corrected[n], "corrected") if n in corrected else Review() for n in range(len(table.rows))]
    assert download.read_bytes() == reviewed_text(table, reviews).encode()  # the server's file, byte for byte
    apply(review_copy, download, tmp_path / "final.csv")
    assert read(tmp_path / "final.csv") == expected_final(review_copy, corrected)
    assert not errors, errors
    context.close()


HOSTILE = ["<script>window.__pwned = 1</script>.png", "=cmd|' /C calc'!A0", '"><img src=x onerror="window.__pwned=2">']


@pytest.mark.parametrize("mode", ["server", "static"])
def test_hostile_file_names_are_shown_as_text(chromium, tmp_path, review_readers, mode):
    rows = [[name, 1, "<b>f</b>", 10, 10, 50, 20, "12", "0.1000", "0.1 0.1", "review", "<i>low</i> confidence"]
            for name in HOSTILE]  # fmt: skip
    path = tmp_path / "out.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(COLUMNS)
        w.writerows([spreadsheet_safe(str(c)) for c in r] for r in rows)
    page = chromium.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    server = None
    if mode == "server":
        table = load_table(path)
        app = ReviewApp(load_state(table), items(table), Views(tmp_path, review_readers))
        server, _ = start(app)
        page.goto(server.url)
    else:
        assert CliRunner().invoke(main, ["review", str(path), "--html", str(tmp_path / "q.html")]).exit_code == 0
        page.goto((tmp_path / "q.html").as_uri())
    try:
        seen = []
        for _ in HOSTILE:
            page.wait_for_function("() => document.getElementById('note').textContent !== 'loading…'")
            seen.append(page.locator("#where").inner_text())
            assert page.locator("#field-image").get_attribute("src") is None  # no such file: a note, no image
            page.keyboard.press("ArrowDown")
        assert [s.split(" · ")[0] for s in seen] == HOSTILE
        assert "<i>low</i> confidence" == page.locator("#reason").inner_text()
        assert page.evaluate("window.__pwned") is None and not dialogs
        assert page.locator("img[src='x']").count() == 0 and page.locator("b, i").count() == 0
        assert page.locator("script").count() == 2  # the config (JSON) and the page's own script
        assert page.locator("#queue-list li").count() == len(HOSTILE)
        href = page.locator("#page-link").get_attribute("href")  # a link to the page, never a script
        assert href.startswith("page?token=" if mode == "server" else "./") and "<" not in href, href
    finally:
        if server:
            server.shutdown()
            server.server_close()


def test_illegible_not_a_digit_field_uncheck_and_the_filters(chromium, review_copy, review_readers, tmp_path):
    table = load_table(review_copy)
    queue = items(table)
    app = ReviewApp(load_state(table), queue, Views(tmp_path, review_readers))
    server, _ = start(app)
    try:
        page = chromium.new_page()
        page.goto(server.url)
        a = shown(page)
        page.keyboard.press("I")  # illegible
        b = shown(page)
        page.keyboard.press("x")  # not a digit field
        c = shown(page)
        page.keyboard.press("Enter")  # verified
        shown(page)
        page.keyboard.press("ArrowUp")
        assert shown(page) == c
        page.keyboard.press("u")  # unchecked again
        page.wait_for_function("() => document.getElementById('saved').textContent.startsWith('saved to')")
        assert {n: r.status for n, r in enumerate(load_state(table).reviews) if r.status} == {a: "illegible",
                                                                                               b: "rejected"}  # fmt: skip
        kinds = {it.kind for it in queue}
        assert "readers disagree" in kinds
        page.locator("#filter-reason").select_option("readers disagree")
        want = [it.row for it in queue if it.kind == "readers disagree"]
        assert page.evaluate("window.formdigitsReview.order()") == want
        assert page.locator("#shown").inner_text() == f"{len(want)} of {len(queue)} shown"
        assert page.evaluate("document.activeElement.id") == "reading"  # back to the keys at once
        page.locator("#filter-open").check()
        assert a not in page.evaluate("window.formdigitsReview.order()")
    finally:
        server.shutdown()
        server.server_close()
        app.views.close()
