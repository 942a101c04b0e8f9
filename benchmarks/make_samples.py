"""Regenerate samples/: a few realistic form scans in mixed formats, and samples/truth.csv.

    python benchmarks/make_samples.py            # needs MNIST ($FORMDIGITS_MNIST_DIR)

Same code, same seeds, same pages (a PDF file differs in its own identifiers only).
"""

import csv
import tempfile
from pathlib import Path

from formdigits.mnist import load_mnist
from formdigits.synth import TRUTH_COLUMNS, DigitSource, generate

SAMPLES = (  # name, pages, seed, preset, overrides
    ("census.jpg", 1, 11, "realistic", dict(dpi=300, line_colour="black", jpeg_quality=0)),
    ("orders.pdf", 2, 12, "skewed", dict(dpi=200, line_colour="blue")),
    ("meters-fax.tif", 2, 13, "fax", dict()),
    ("returns-dropout.jpg", 1, 14, "realistic", dict(dpi=200, line_colour="red", paper="yellow", ink="blue")),
    ("marks.png", 1, 15, "clean", dict(dpi=200, line_colour="grey", noise_max=0)),
)


def main(out=Path(__file__).resolve().parent.parent / "samples"):
    digits = DigitSource(*load_mnist("test"))
    out.mkdir(exist_ok=True)
    truth = []
    for name, pages, seed, preset, overrides in SAMPLES:
        stem, fmt = name.rsplit(".", 1)
        with tempfile.TemporaryDirectory() as tmp:
            rows = generate(tmp, pages, seed, digits, preset, (fmt,), pages, **overrides)
            (Path(tmp) / f"page0001.{fmt}").replace(out / name)
        truth += [{**r, "file": name} for r in rows]
    with open(out / "truth.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, TRUTH_COLUMNS)
        w.writeheader()
        w.writerows(truth)
    for p in sorted(out.iterdir()):
        print(f"{p.name:24s} {p.stat().st_size / 1e6:6.2f} MB")


if __name__ == "__main__":
    main()
