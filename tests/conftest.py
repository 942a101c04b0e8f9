import os
from pathlib import Path

import pytest

from formdigits.mnist import ENV_VAR, FILES


@pytest.fixture(scope="session")
def mnist_dir():
    """The MNIST folder named by $FORMDIGITS_MNIST_DIR; skips without it, except under CI."""
    value = os.environ.get(ENV_VAR)
    path = Path(value) if value else None
    if path is None or not all((path / f"{n}.gz").is_file() or (path / n).is_file() for n in FILES):
        reason = f"MNIST not found: set ${ENV_VAR} to a folder with the four IDX files (got {value!r})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip  (a closed network refuses the rest)


@pytest.fixture(scope="session")
def samples_scan(tmp_path_factory):
    """``formdigits scan samples/ -o out.csv`` (file names absolute), made once; copy it before reviewing it."""
    from click.testing import CliRunner

    from formdigits.cli import main

    out = tmp_path_factory.mktemp("scan") / "out.csv"
    r = CliRunner().invoke(main, ["scan", str(SAMPLES), "-o", str(out), "-j", "0", "-q"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def review_readers():
    """The scan's models, loaded once: ``(classifier, strip reader)``."""
    from formdigits.batch import load_readers

    clf, strips, _, _ = load_readers(workers=0)
    return clf, strips


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium (Debian's ``chromium``) driven by Playwright; skips without them, except under CI."""
    import shutil

    exe = os.environ.get("FORMDIGITS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright, reason = None, "Playwright not installed: pip install -e '.[test]'"
    else:
        reason = "" if exe else "Chromium not found: apt-get install chromium (or set $FORMDIGITS_CHROMIUM)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
