"""Field rules of a template: checked when the template is loaded, applied to every value read.

A value is a string of digits. The rules (all optional): ``digits`` (a count or
``[min, max]``), ``min`` and ``max`` (value range), ``pattern`` (a regular
expression the whole value must match) and ``check`` (``luhn`` or ``mod11``).

Rules are applied in the main process, where no page time limit reaches, so
every rule must cost little on any value. A ``pattern`` is therefore limited to
a plain subset: a sequence of single-character items (a digit, ``.``, ``\\d`` or
a class like ``[0-7]``), each with an optional ``?``, ``*``, ``+``, ``{m}``,
``{m,}`` or ``{m,n}``; no groups, alternation, backreferences or lookarounds.
Matching such a sequence, Python's backtracking engine tries at most every way
of sharing the value's characters among the items; with at most one open-ended
item (``*``, ``+``, ``{m,}``) and at most ``MAX_PATTERN_WAYS`` ways to choose the
counts of the bounded ones, that is under ``MAX_PATTERN_WAYS * (len(value) + 1)``
tries of ``len(pattern)`` steps each: linear in the value, whatever the pattern.
(``\\d?`` written 22 times before ``\\d{22}``, with no group at all, takes 2^22 tries.)
"""

import math
import re

CHECKS = ("luhn", "mod11")
RULE_KEYS = {"digits", "min", "max", "pattern", "check"}
MAX_DIGITS = 100  # the most digits a rule may speak of (digits, min, max, {m,n}); also the most comb cells
MAX_PATTERN_LENGTH = 100
MAX_PATTERN_WAYS = 1000

_ITEM = re.compile(r"(?:[0-9]|\.|\\d|\[\^?(?:[0-9](?:-[0-9])?)+\])(?:([?*+])|\{([0-9]+)(,([0-9]*))?\})?")
_SUBSET = r"digits, '.', '\d' and classes like [0-7], each with an optional ?, *, +, {m} or {m,n}"


def check_rules(rules, where):
    """The rules of one field, checked (ValueError naming ``where`` and the rule); a copy."""
    if not isinstance(rules, dict):
        raise ValueError(f"{where}: rules must be an object")
    if unknown := set(rules) - RULE_KEYS:
        raise ValueError(f"{where}: unknown rules {sorted(unknown)} (allowed: {sorted(RULE_KEYS)})")
    if "digits" in rules:
        digits = rules["digits"]
        lo_hi = [digits, digits] if _is_int(digits) else digits
        if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and all(_is_int(v) and 1 <= v <= MAX_DIGITS for v in lo_hi)
                and lo_hi[0] <= lo_hi[1]):  # fmt: skip
            raise ValueError(f"{where}: rule digits must be a count or [min, max] counts from 1 to {MAX_DIGITS}, "
                             f"min <= max, got {digits!r}")  # fmt: skip
    for k in ("min", "max"):
        v = rules.get(k, 0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not abs(v) < 10**MAX_DIGITS:  # nan, inf too
            raise ValueError(f"{where}: rule {k} must be a finite number of at most {MAX_DIGITS} digits, got {v!r}")
    if rules.get("min", -math.inf) > rules.get("max", math.inf):
        raise ValueError(f"{where}: rule min {rules['min']} is above rule max {rules['max']}")
    if "pattern" in rules:
        try:
            check_pattern(rules["pattern"])
        except ValueError as e:
            raise ValueError(f"{where}: rule pattern {e}") from None
    if "check" in rules and rules["check"] not in CHECKS:
        raise ValueError(f"{where}: rule check must be one of {list(CHECKS)}, got {rules['check']!r}")
    return dict(rules)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_pattern(pattern):
    """Refuse a pattern outside the plain subset, or one whose matching could cost much (see the module)."""
    if not isinstance(pattern, str):
        raise ValueError(f"must be a string, got {pattern!r}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"is longer than {MAX_PATTERN_LENGTH} characters")
    body = pattern[pattern.startswith("^") : len(pattern) - pattern.endswith("$")]  # the whole value matches anyway
    pos, open_ended, ways = 0, 0, 1
    while pos < len(body):
        item = _ITEM.match(body, pos)
        if item is None:
            raise ValueError(f"{pattern!r}: character {pos + 1 + pattern.startswith('^')} is not allowed: "
                             f"only {_SUBSET} (no groups, |, or other syntax)")  # fmt: skip
        one, m, comma, n = item.groups()
        if one:
            lo, hi = {"?": (0, 1), "*": (0, None), "+": (1, None)}[one]
        elif m:
            lo = int(m)
            hi = lo if not comma else int(n) if n else None
        else:
            lo = hi = 1
        if lo > MAX_DIGITS or (hi is not None and not lo <= hi <= MAX_DIGITS):
            raise ValueError(f"{pattern!r}: {item.group()!r}: counts must be from 0 to {MAX_DIGITS}, min <= max")
        if hi is None:
            open_ended += 1
        else:
            ways *= hi - lo + 1
        pos = item.end()
    if open_ended > 1 or ways > MAX_PATTERN_WAYS:
        raise ValueError(f"{pattern!r} could take long to match: at most one open-ended repeat (*, +, {{m,}}) "
                         f"and at most {MAX_PATTERN_WAYS} ways to choose the counts of the others")  # fmt: skip
    re.compile(pattern)  # the subset is Python syntax: never fails


def luhn_ok(value):
    total = 0
    for i, c in enumerate(reversed(value)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def mod11_ok(value):
    """ISBN-10 style: weights n..1 from the left, the sum divisible by 11 (digits only)."""
    n = len(value)
    return sum(int(c) * (n - i) for i, c in enumerate(value)) % 11 == 0


def broken_rules(value, rules):
    """Names (with the reason) of the rules a read value breaks; [] when it keeps them all."""
    out = []
    if "digits" in rules:
        lo, hi = (rules["digits"],) * 2 if isinstance(rules["digits"], int) else rules["digits"]
        if not lo <= len(value) <= hi:
            out.append(f"rule digits: {len(value)} digits, wanted {lo if lo == hi else f'{lo}-{hi}'}")
    # min and max have at most MAX_DIGITS digits: a longer value is above both (and int() of thousands of
    # digits is refused by Python)
    significant = value.lstrip("0") or "0"
    number = int(significant) if len(significant) <= MAX_DIGITS else math.inf
    if value and "min" in rules and number < rules["min"]:
        out.append(f"rule min: {number} < {rules['min']}")
    if value and "max" in rules and number > rules["max"]:
        out.append(f"rule max: {number if number < math.inf else f'{len(value)} digits'} > {rules['max']}")
    if "pattern" in rules and not re.fullmatch(rules["pattern"], value):
        out.append(f"rule pattern: {value!r} does not match {rules['pattern']!r}")
    if value and rules.get("check") == "luhn" and not luhn_ok(value):
        out.append("rule check: Luhn check digit wrong")
    if value and rules.get("check") == "mod11" and not mod11_ok(value):
        out.append("rule check: mod 11 check digit wrong")
    return out
