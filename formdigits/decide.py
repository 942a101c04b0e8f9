"""Two readers, one decision: the cutting reader and the sequence reader vote on every field.

The cutting reader (``recognize``) cuts a field into digits and classifies each;
the sequence reader (``sequence``) reads the field's whole strip with no
cutting. They fail in different ways (a wrong cut; a digit lost in a run of
touching ones), so:

- **they agree**: the field is accepted with a confidence that both support
  (:func:`agreement`). The cutting reader's doubts that agreement answers are
  dropped: a mark that is no digit (a separator, a tick) when the sequence
  reader, which reads marks as nothing, gives the same digits; ink across the
  box line when reading the field with that ink gives the same value.
- **they disagree**: the likelier reading is given, scored by both readers
  (:func:`likelier`), with both readers' support for it as confidence (low:
  disagreements rank below agreements), and ``review``.
"""

import math

from .segment import CUT_NOTE
from .sequence import label_probability

FLOOR = 1e-4  # the least probability either reader gives any reading
MISSING = 0.01  # how likely the cutting reader finds a reading with a digit more or less than it has crops
# Fitted on the tuning sets (BENCHMARKS.md), never on the held-out family or the fresh sets:
SAME_MISTAKE = 30.0  # how much likelier the two readers make the same mistake than independent readers would
SEQ_WEIGHT, CUT_PRIOR = 2.0, 4.0  # a disagreement: the sequence reader's log-probability x 2, +4 for the cut's


def agreement(p_cut, p_seq, k=SAME_MISTAKE):
    """Confidence in a reading both readers gave, with probabilities ``p_cut`` and ``p_seq``.

    The chance that it is right rather than both readers wrong in the same way:
    ``pq / (pq + k (1-p)(1-q))``. With ``k = 1`` the readers' mistakes would be
    independent; they are not (both learnt from MNIST and misread the same
    ambiguous shapes), and ``k`` is fitted on the tuning sets so that at the
    default ``--min-confidence`` few accepted fields are wrong. Two readers each
    95 % sure give 0.92; one sure and one doubtful (0.99, 0.6) 0.83; (0.9, 0.6) 0.31.
    """
    p, q = min(max(p_cut, FLOOR), 1 - FLOOR), min(max(p_seq, FLOOR), 1 - FLOOR)
    return p * q / (p * q + k * (1 - p) * (1 - q))


def cut_probability(slot_probs, text):
    """How likely the cutting reader finds ``text``: the product of its crops' probabilities for
    ``text``'s digits, position by position; a reading of another length gets ``MISSING`` per digit of
    difference (the cut it needs was not made). ``slot_probs``: the chosen crops' probability rows,
    marks that are no digit included (a mark may be a digit the sequence reader read)."""
    if len(slot_probs) != len(text):
        return MISSING ** abs(len(slot_probs) - len(text))
    return math.prod(max(float(p[int(c)]), FLOOR) for p, c in zip(slot_probs, text))


def likelier(cut_text, cut_p, seq, slot_probs):
    """``(text, confidence)``: of the two readers' readings, the one both find likelier together, and how
    much both support it (:func:`agreement` of each reader's probability *for that reading*: low, since
    one of them read something else). The choice weighs the sequence reader's log-probability double and
    gives the cut's reading a head start (``SEQ_WEIGHT``, ``CUT_PRIOR``): on the tuning sets the cutting
    reader is right more often where the two disagree, except where it had to cut digits apart."""
    seq_p_of_cut = label_probability(seq.frames, cut_text)
    if cut_text and not seq.text:  # ink the cutting reader read as digits: an empty reading cannot be the value
        return cut_text, agreement(cut_p, seq_p_of_cut)
    cut_p_of_seq = cut_probability(slot_probs, seq.text)
    score_cut = CUT_PRIOR + math.log(max(cut_p, FLOOR)) + SEQ_WEIGHT * math.log(max(seq_p_of_cut, FLOOR))
    score_seq = math.log(max(cut_p_of_seq, FLOOR)) + SEQ_WEIGHT * math.log(max(seq.probability, FLOOR))
    if score_cut >= score_seq:
        return cut_text, agreement(cut_p, seq_p_of_cut)
    return seq.text, agreement(cut_p_of_seq, seq.probability)


def decide(cut_text, cut_confs, slot_probs, notes, seq, wide=None, small_marks=True):
    """The field's ``(value, confidence, digit confidences, notes)`` from both readers.

    ``cut_text``, ``cut_confs``: the cutting reader's digits and their
    probabilities (marks that are no digit left out); ``slot_probs``: its chosen
    crops' probability rows; ``notes``: its doubts (see
    ``recognize.make_rows``), changed here as above (its crops' rows,
    ``slot_probs``, include the marks); ``seq``, ``wide``: the
    sequence reader's readings of the strip and of the strip with the ink left
    out across the box line (None: none); ``small_marks``: the marks it read as
    no digit are small beside its digits (a digit-sized one may be digits that
    neither reader made out). An empty return ``notes`` with a high confidence
    means the field can be accepted.
    """
    cut_p = math.prod(cut_confs) if cut_confs else 1.0
    if seq.text == cut_text == "":  # marks only, and no digit in them for either reader
        return "", 0.0, [], notes
    if seq.text == cut_text:
        if small_marks:  # separators and ticks: both read no digit there
            notes = [n for n in notes if not n.endswith("not a digit")]
        if wide is not None and wide.text == cut_text:
            notes = [n for n in notes if n != CUT_NOTE]  # the ink left out changes nothing
        return cut_text, agreement(cut_p, seq.probability), list(cut_confs), notes
    text, confidence = likelier(cut_text, cut_p, seq, slot_probs)
    notes = notes + [f"readers disagree: cut {cut_text or '-'}, sequence {seq.text or '-'}"]
    return text, confidence, list(cut_confs) if text == cut_text else list(seq.char_probs), notes
