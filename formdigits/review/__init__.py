"""``formdigits review``: a verification page for the fields a scan sent to review.

* :mod:`.command`: the Click command (imports nothing heavy until it runs).
* :mod:`.queue`: the scan CSV's rows, the queue of doubtful fields, the reviewed file (load, resume, save).
* :mod:`.views`: the images a person checks (the field cut from its page, the reader's digit cuts).
* :mod:`.page`: the one HTML page (plain HTML, CSS and JavaScript from ``static/``), served or self-contained.
* :mod:`.server`: the local web server (standard library ``http.server``: 127.0.0.1, a token, CSRF-checked writes).
* :mod:`.apply`: the final CSV: the scan's rows with the people's readings.

Nothing here is imported by ``formdigits scan`` or ``formdigits --help``.
"""
