"""Exceptions raised by the formdigits library.

Every error a user can cause (a missing file, a corrupt data set, a model from
elsewhere) is a :class:`FormdigitsError` whose message names the file and the
problem; the command line turns it into a one-line message and exit code 1
(exit code 2 for a :class:`UsageError`).
"""


class FormdigitsError(Exception):
    """Base class for all errors a user can act on."""


class DataError(FormdigitsError):
    """A data set or a folder of labelled crops is missing, corrupt or malformed."""


class ModelError(FormdigitsError):
    """A model or checkpoint file cannot be used."""


class UsageError(FormdigitsError):
    """Arguments that cannot work (together); found before any work is done."""
