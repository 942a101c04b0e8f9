"""Which way up is a page? The digits tell; where they cannot, the page is read both ways.

Layout turns pages scanned on their side (fields of digits lie flat); whether
a page is then upside down, only its handwriting says. ``judge`` reads a
sample of each page's digit crops again turned 180 degrees: upright digits
lose when turned (a 7 turned is no digit), upside-down ones gain. Many digits
read the same either way (0, 1, 8; 6 and 9 swap), and cut crops of digits run
together read poorly either way, so the test can be unsure. Such a page is
judged again on its fields' whole strips by the sequence reader, turned and
not (a string of digits turned round is seldom a likely string): far surer,
and far cheaper than reading the page again. Where that is unsure too (or
there is no sequence reader), the page is read both ways and the readings
compared (``pick``): the way up with clearly more fields accepted wins, and
where neither does, no field of the page is accepted (``ORIENTATION_NOTE``).
"""

import logging

import numpy as np

from .classifier import REJECT

log = logging.getLogger(__name__)
SAMPLE = 128  # at most this many crops of a page (each slot's first) are read again, turned 180 degrees
FIRST = 32  # the first this many are read first: most pages are plainly upright on them
MIN_SAMPLE = 8  # fewer crops than this: the test is unsure
SURE_Z = 1.5  # standard errors of the mean gain that make the test sure either way
UPRIGHT, UNSURE, UPSIDE_DOWN = -1, 0, 1
ORIENTATION_NOTE = "page orientation uncertain: it reads about as well upside down"


def judge(clf, probs, x, pages, reader=None, strips=None, upright=None):
    """Per page, ``UPRIGHT``, ``UPSIDE_DOWN`` or ``UNSURE``, from how its sample crops read turned round.

    ``pages`` holds, per page, the indices of its sample crops into ``probs``
    (the classifier's answers) and ``x`` (the network inputs), or None for a
    page not to be judged (already turned round, or with no ink: upright).
    The samples of all pages are turned and classified together. The statistic is the
    mean gain in log-probability of the best digit, in standard errors:
    on upright pages of the tuning sets -5.1 to -1.5 (one of 80 pages at +1.3),
    on the same pages upside down +1.8 to +4.9. A page plainly upright on its
    first ``FIRST`` samples is not read further (on 32 samples, upright pages
    of the tuning sets went as high as +1.3, upside-down ones as low as +0.8:
    only "upright" is trusted that early).

    ``reader``, ``strips``: the sequence reader and, per page, its fields'
    preprocessed strips; pages still unsure are judged on them (the same
    statistic, from each strip's likeliest reading: on the held-out set's
    upright pages -8.0 to -3.0, upside down +2.4 to +6.9). ``upright``: per page, the
    probabilities the reader already gave those strips as they are (None: read them here).
    """
    verdicts = _judge(clf, probs, x, [None if i is None else i[:FIRST] for i in pages])
    more = [i if v != UPRIGHT and i is not None and len(i) > FIRST else None for i, v in zip(pages, verdicts)]
    if any(i is not None for i in more):
        verdicts = [v if i is None else w for i, v, w in zip(more, verdicts, _judge(clf, probs, x, more))]
    if reader is not None and UNSURE in verdicts:
        unsure = [k for k, v in enumerate(verdicts) if v == UNSURE and len(strips[k]) >= MIN_SAMPLE]
        known = None if upright is None else [upright[k] for k in unsure]
        for k, gain in zip(unsure, _strip_gains(reader, [strips[k] for k in unsure], known)):
            verdicts[k] = _verdict(gain)
    return verdicts


def _judge(clf, probs, x, pages):
    judged = [i for i in pages if i is not None and len(i) >= MIN_SAMPLE]
    gains = iter(_gains(clf, probs, x, judged))
    out = []
    for i in pages:
        if i is None or len(i) == 0:
            out.append(UPRIGHT)
        elif len(i) < MIN_SAMPLE:
            out.append(UNSURE)
        else:
            out.append(_verdict(next(gains)))
    return out


def _verdict(gain):
    """From the gains of a page's samples when turned round: their mean, in standard errors."""
    se = gain.std(ddof=1) / np.sqrt(len(gain))
    z = gain.mean() / se if se > 0 else np.sign(gain.mean()) * np.inf
    log.debug("orientation test: %d samples, mean gain turned round %+.2f standard errors", len(gain), z)
    return UPSIDE_DOWN if z > SURE_Z else UPRIGHT if z < -SURE_Z else UNSURE


def _strip_gains(reader, pages, upright=None):
    """Per page, each strip's gain in log-probability of its likeliest reading when turned round
    (``upright``: per page, the strips' probabilities as they are, when already read)."""
    every = [s for strips in pages for s in strips]
    if not every:
        return []
    turned = [np.ascontiguousarray(s[::-1, ::-1]) for s in every]
    if upright is None:
        found = [r.probability for r in reader.read_inputs(every + turned)]
        upright, found = [found[: len(every)]], found[len(every) :]
    else:
        found = [r.probability for r in reader.read_inputs(turned)]
    log_up = np.log(np.maximum([p for page in upright for p in page], 1e-6))
    gain = np.log(np.maximum(found, 1e-6)) - log_up
    return np.split(gain, np.cumsum([len(strips) for strips in pages])[:-1])


def _gains(clf, probs, x, pages):
    if not pages:
        return []
    every = np.concatenate(pages)
    digits = [k for k, label in enumerate(clf.labels) if label != REJECT]
    best = lambda p: np.log(np.maximum(p[:, digits].max(1), 1e-6))
    gain = best(clf.predict(np.ascontiguousarray(x[every][:, :, ::-1, ::-1]))) - best(probs[every])
    return np.split(gain, np.cumsum([len(i) for i in pages])[:-1])


def pick(rows, turned_rows):
    """The rows of an unsure page read as it is and turned round: the way up with clearly more
    fields accepted (more than twice as many), or else the first, none of its fields accepted."""
    ok, ok_turned = _accepted(rows), _accepted(turned_rows)
    if ok_turned > 2 * ok:
        return turned_rows
    if ok > 2 * ok_turned:
        return rows
    return doubt(turned_rows if ok_turned > ok else rows)


def doubt(rows):
    """``rows`` with every accepted field sent to review for the page's orientation."""
    for r in rows:
        if r.status == "ok":
            r.status, r.error = "review", "; ".join(filter(None, [r.error, ORIENTATION_NOTE]))
    return rows


def _accepted(rows):
    return sum(r.status == "ok" for r in rows)
