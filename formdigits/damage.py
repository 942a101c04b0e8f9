"""Tell a damaged page from a good one: what the native decoders report while decoding, and pixels
that are no numbers.

A decoder that meets corrupt data often still returns an image: libjpeg fills
what it lost with grey and says only "Corrupt JPEG data: ..." on stderr,
libpng gives black rows after a damaged stretch of its data with a warning,
libtiff (through OpenCV) returns a black page for a strip it cannot inflate
and logs the error. Such a page is read, but its rows go to ``review`` with the
reason (see ``recognize.make_rows``), so no value read from it passes as ``ok``.
"""

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager

import cv2
import numpy as np

# libjpeg's warnings about lost data (it prints only the first one of an image); bytes before the
# end-of-image marker come after all the pixels were decoded, and are harmless
_LIBJPEG = re.compile(r"^(Corrupt JPEG data|Premature end of JPEG file)")
_HARMLESS = re.compile(r"extraneous bytes before marker 0xd9")
# libpng's complaints about the pixel data (not about metadata chunks such as iCCP), except data to spare
_LIBPNG = re.compile(r"^libpng (warning|error): IDAT: (?!Too much image data|Extra compressed data)")
# an error in OpenCV's log (libtiff's errors arrive this way): "[ERROR:0@0.02] global grfmt_tiff.cpp:117 TIFF_Error ..."
_OPENCV_ERROR = re.compile(r"^\[\s*ERROR:[^\]]*\]\s*(?:global\s+)?(?:\S+:\d+\s+)?(.*)")
# what the native decoders print (and OpenCV's log lines): kept from the terminal; any other line caught
# meanwhile (another thread's logging, a progress line) is written to stderr after the decode
_DECODER = re.compile(r"^(Corrupt JPEG|Premature end of JPEG|Invalid JPEG|Unsupported (JPEG|marker)|Bogus|"
                      r"libpng |\[\s*(ERROR|WARN|INFO|DEBUG)|TIFF|.*: (Unknown field|Incorrect count|.*tag))")
# stderr and OpenCV's log level belong to the process: one thread at a time points them elsewhere
_STDERR_LOCK = threading.Lock()
# OpenCV's log level: cv2.utils.logging in OpenCV 5, cv2.setLogLevel/getLogLevel (same numbers) in 4.x
_CV_LOG = getattr(cv2.utils, "logging", cv2)
LOG_LEVEL_SILENT, LOG_LEVEL_ERROR = 0, 2


def set_opencv_log_level(level: int) -> int:
    """Set OpenCV's log level (``LOG_LEVEL_*``); returns the level it had."""
    old = _CV_LOG.getLogLevel()
    _CV_LOG.setLogLevel(level)
    return old


@contextmanager
def decoder_messages():
    """Collect what the native decoders say while the block runs: a list of lines, filled in at its end.

    libjpeg prints its warnings straight to stderr, and libtiff's errors reach stderr
    through OpenCV's log (set to show errors for the while): file descriptor 2 is
    pointed at a temporary file meanwhile, so they are caught here instead of
    reaching the terminal. Threads take turns (the file descriptor is the process's);
    what other threads write to stderr meanwhile is written on after the block,
    not lost.
    """
    with _STDERR_LOCK, _captured() as lines:
        yield lines


@contextmanager
def _captured():
    lines = []
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (closed by a daemon): nothing to catch, nothing would be seen
        yield lines
        return
    level = set_opencv_log_level(LOG_LEVEL_ERROR)
    if sys.stderr:
        sys.stderr.flush()
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                if sys.stderr:
                    sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                text = sink.read()
                lines.extend(text.decode("utf-8", "replace").splitlines())
                others = [line for line in text.splitlines(keepends=True)
                          if not _DECODER.match(line.decode("utf-8", "replace"))]  # fmt: skip
                if others:
                    os.write(2, b"".join(others))
    finally:
        os.close(saved)
        set_opencv_log_level(level)


def corruption(lines):
    """Why the decoders' ``lines`` say the data was damaged ('' when they do not)."""
    for line in lines:
        if m := _OPENCV_ERROR.match(line):
            return f"damaged image data: {m.group(1).strip()}"
        if (_LIBJPEG.match(line) and not _HARMLESS.search(line)) or _LIBPNG.match(line):
            return f"damaged image data: {line.strip()}"
    return ""


def finite(img):
    """``img`` with the pixels that are no numbers (NaN or infinite: damaged float data) set to the lightest
    of the others (paper), and a note saying how many there were ('' when none); ValueError if all are."""
    if img.dtype.kind != "f":
        return img, ""
    bad = ~np.isfinite(img)
    count = int(bad.sum())
    if count == 0:
        return img, ""
    if count == bad.size:
        raise ValueError("no pixel is a number (all NaN or infinite)")
    img = np.where(bad, img[~bad].max(), img)
    return img, f"damaged image data: {count} pixel{'s are' if count > 1 else ' is'} not a number (NaN or infinite)"
