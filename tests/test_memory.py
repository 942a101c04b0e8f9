"""Page-sized buffers are reused from page to page, not mapped afresh (glibc)."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "reuse":
    from formdigits.pipeline import reuse_memory
    reuse_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # 20 pages: a colour scan decoded, then four gray images made from it, then all dropped
    page = [np.ones(3508 * 2480 * 3, np.uint8)] + [np.ones(3508 * 2480, np.uint8) for _ in range(4)]
    del page
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-fault counts and mallopt: Linux with glibc")
def test_reuse_memory_keeps_page_buffers_for_the_next_page():
    faults = {
        mode: int(subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True).stdout)
        for mode in ("default", "reuse")
    }
    # by default most buffers are mapped and zeroed afresh, page after page; reused, hardly any
    assert faults["reuse"] * 5 < faults["default"], faults
