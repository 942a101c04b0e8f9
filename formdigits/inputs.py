"""What ``scan`` reads: names from ``--files-from`` lists (``-0``: NUL-separated) and image bytes on stdin.

Names are bytes to the OS: they are decoded as the OS decodes file names
(``os.fsdecode``: bytes that are not UTF-8 kept as surrogate escapes), so every
name a list can hold reaches the file it names.
"""

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager

from .errors import UsageError

STDIN_NAME = "<stdin>"  # the ``file`` of rows read from image bytes on stdin (--stdin-image): not "-",
# which spreadsheet-safe CSV cells would write as "'-"


def split_names(data, null=False):
    """File names in ``data`` (bytes): separated by NUL (``null``: what ``find -print0`` writes, so a name may hold
    a newline) or one per line (a trailing ``\\r`` dropped, blank lines skipped)."""
    if null:
        return [os.fsdecode(name) for name in data.split(b"\0") if name]
    lines = (line.rstrip(b"\r") for line in data.split(b"\n"))
    return [os.fsdecode(line) for line in lines if line.strip()]


def _binary_stdin(stdin=None):
    stream = stdin or sys.stdin
    return stream.buffer if hasattr(stream, "buffer") else stream


def read_names(source, null=False, stdin=None):
    """The file names listed in the file ``source`` (``-``: stdin); UsageError naming a file that cannot be read."""
    if source == "-":
        data = _binary_stdin(stdin).read()
        return split_names(data.encode() if isinstance(data, str) else data, null)
    try:
        with open(source, "rb") as fh:
            return split_names(fh.read(), null)
    except OSError as e:
        raise UsageError(f"--files-from {source}: {e.strerror or e}") from None


def literal(name):
    """A listed name as a path ``expand_paths`` takes as it is (a file named ``-`` is no request for stdin)."""
    return os.path.join(".", name) if name == "-" else name


def gather(paths, files_from=None, null=False, stdin=None):
    """The PATHS for ``expand_paths``: ``paths``, with ``-`` read from stdin NUL-separated when ``null``,
    and the names listed in ``files_from``. Stdin can be read once only: UsageError where two ask for it."""
    if (files_from == "-") + paths.count("-") > 1:
        raise UsageError("stdin can be read once: give - once (PATHS or --files-from)")
    out = []
    for p in paths:
        out.extend([literal(n) for n in read_names("-", True, stdin)] if p == "-" and null else [p])
    if files_from is not None:
        out.extend(literal(n) for n in read_names(files_from, null, stdin))
    return out


@contextmanager
def stdin_image(paths, stdin=None):
    """While inside: ``paths`` with ``-`` replaced by a temporary file holding stdin's bytes (one image, or a
    multi-page TIFF or PDF), and ``rename``, which maps that file's name back to :data:`STDIN_NAME`.
    The file is removed on the way out."""
    if paths.count("-") != 1:
        raise UsageError("--stdin-image reads one image from stdin: give - once among PATHS")
    folder = tempfile.mkdtemp(prefix="formdigits-stdin-")
    try:
        name = os.path.join(folder, "stdin")
        with open(name, "wb") as fh:
            shutil.copyfileobj(_binary_stdin(stdin), fh)
        yield [name if p == "-" else p for p in paths], {name: STDIN_NAME}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
