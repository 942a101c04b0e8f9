"""The package as others get it: a wheel installed with no source tree about, its metadata, its types, its imports."""

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def _env():
    """This environment without PYTHONPATH (which may point at the source tree)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_the_wheel_installs_in_a_fresh_venv_and_scans_the_samples(tmp_path):
    """Built offline from a copy of the project's files (the checkout gets no build/ or egg-info), installed
    without pip's network in a fresh venv; its dependencies are this environment's, appended to the venv's path
    by a .pth file (after the venv's own site-packages, and the editable install of this checkout stays off:
    .pth files inside a directory named that way are not read). The package must come from the venv."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pt", "*.png")
    for name in ("formdigits", "export"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp_path / "dist"
    run = dict(capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "--no-index", "-q", "-w", str(dist)], **run)  # fmt: skip
    assert r.returncode == 0, r.stderr
    [wheel] = dist.glob("formdigits-*.whl")
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, **run)
    python = venv / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                        "-q", str(wheel)], **run)  # fmt: skip
    assert r.returncode == 0, r.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, **run).stdout.strip()  # fmt: skip
    Path(site, "deps-from-the-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    r = subprocess.run([str(python), "-c", "import formdigits, formdigits.classifier as c; "
                        "print(formdigits.__file__); print(c.default_model_path())"], **run)  # fmt: skip
    assert r.returncode == 0, r.stderr
    package, model = r.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(model).is_relative_to(venv), r.stdout
    assert Path(package).with_name("py.typed").is_file()
    r = subprocess.run([str(venv / "bin" / "formdigits"), "scan", str(SAMPLES), "-o", "out.csv"], **run)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = {Path(f).name for f in SAMPLES.iterdir() if f.suffix != ".csv"}
    assert {Path(row["file"]).name for row in rows} == files
    assert not [row for row in rows if row["status"] == "error"]
    assert sum(row["status"] == "ok" for row in rows) > len(rows) / 2
    # the review page's files are in the wheel: its self-contained page is made from them
    r = subprocess.run([str(venv / "bin" / "formdigits"), "review", "out.csv", "--html", "queue.html"], **run)
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "queue.html").read_text()
    assert "<script" in page and "data:image/" in page


def test_dependencies_are_bounded_both_ways_and_the_package_is_typed_and_licensed():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["build-system"]["requires"] == ["setuptools>=77"]
    meta = project["project"]
    deps = meta["dependencies"] + [d for extra in meta["optional-dependencies"].values() for d in extra]
    unbounded = [d for d in deps if (">=" not in d or "<" not in d) and not d.startswith("formdigits[")]
    assert not unbounded
    assert "matplotlib" not in " ".join(meta["dependencies"])
    assert any(d.startswith("matplotlib") for d in meta["optional-dependencies"]["plot"])
    assert any(d.startswith("tifffile") for d in meta["dependencies"])  # the scan path reads TIFF pages with it
    assert "mypy" in " ".join(meta["optional-dependencies"]["test"])
    assert set(meta["urls"]) >= {"Homepage", "Documentation", "Issues"} and meta["classifiers"]
    assert "Copyright (c) 2026 the formdigits authors" in (ROOT / "LICENSE").read_text()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["formdigits"]
    assert (ROOT / "formdigits" / "py.typed").is_file()


def test_mypy_passes_over_the_package():
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--no-error-summary"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)  # fmt: skip  # ([tool.mypy] in pyproject.toml)
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_formdigits_and_the_command_load_neither_opencv_nor_onnxruntime():
    code = ("import formdigits, sys, os; heavy = [m for m in ('cv2', 'onnxruntime') if m in sys.modules]; "
            "assert not heavy, heavy; assert os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'] == '150000000'; "
            "import formdigits.cli; assert not [m for m in ('cv2', 'onnxruntime') if m in sys.modules]; "
            "from formdigits.reader import Reader; assert formdigits.Reader is Reader and 'cv2' in sys.modules; "
            "assert 'Reader' in dir(formdigits) and formdigits.Row.__module__ == 'formdigits.output'")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "formdigits", "--help"], capture_output=True,
                       text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0 and "Usage" in r.stdout
    loaded = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert not loaded & {"cv2", "onnxruntime", "numpy"}, sorted(loaded & {"cv2", "onnxruntime", "numpy"})


def test_an_unknown_attribute_of_the_package_is_an_attribute_error():
    import formdigits

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        formdigits.nothing  # noqa: B018
