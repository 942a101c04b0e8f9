"""Values the command's options offer or default to, light to import (``formdigits --help`` loads only this)."""

DEFAULT_PAGE_TIMEOUT = 120  # seconds one task (a page) may take in a worker before it is given up (see parallel)

# the style families of synthetic forms (see synth)
FAMILIES: dict[str, tuple[str, ...]] = {
    "separators": ("full", "half", "ticks", "grouped", "dotted"),
    "spacing": ("normal", "wide", "crowded"),
    "pen": ("thin", "normal", "thick"),
}
# the style family that no tuning ever sees: figures on it are reported beside the tuning sets' (BENCHMARKS.md)
HELD_OUT: dict[str, str] = {"spacing": "crowded"}
