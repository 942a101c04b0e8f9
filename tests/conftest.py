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
