"""``python -m formdigits`` = the ``formdigits`` command."""

from .cli import main

main()
