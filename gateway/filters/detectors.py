"""What the content filter looks for, and where a text could still grow into a match.

Built in: US Social Security numbers and payment card numbers (`DigitRuns`). Operators add
their own regular expressions in the admin (gateway.FilterPattern, `Pattern` here).

Every detector answers two questions about a text: where its matches are (`find`), and from
where the end of the text could still become a match once more text arrives (`held_from`).
A stream keeps back only that end until its next chunk (gateway/filters/content.py).
"""

import re
from dataclasses import dataclass

import regex
from stdnum import luhn
from stdnum.us import ssn

DIGITS = frozenset("0123456789")
SEPARATORS = frozenset(" -")
CARD_DIGITS = range(13, 20)
MOST_MATCH_DIGITS = CARD_DIGITS[-1]  # the longest number any built-in detector matches

# Digits with single spaces or dashes between them: the only text an SSN or card number is in.
_RUN = re.compile(r"[0-9](?:[ -]?[0-9])*")
_GROUP = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    kind: str


class DigitRuns:
    """SSNs (AAA-GG-SSSS with dashes or spaces, valid by the SSA's rules: no 000, 666 or 9xx
    area, no 00 group, no 0000 serial, none of the advertised numbers; python-stdnum) and card
    numbers (13 to 19 digits, spaces or dashes allowed between them, Luhn-valid).

    Both are read in runs of digits and separators, and a match begins and ends on a group of
    digits: `4111 1111 1111 1111` is found in `4111 1111 1111 1111 12`, but never a number
    cut out of a longer group (a 20-digit order number is not a card)."""

    kinds = ("SSN", "CARD")

    def find(self, text: str, pos: int = 0) -> list[Match]:
        if not DIGITS.intersection(text[pos:]):
            return []
        matches = []
        for run in _RUN.finditer(text, pos):
            matches.extend(self._in_run(text, run.start(), run.end()))
        return matches

    def held_from(self, text: str, pos: int = 0) -> int:
        """The first group of the trailing run from which more digits could still make a match:
        groups further back already have more digits after them than any match holds."""
        end = len(text)
        i = end - 1 if end > pos and text[-1] in SEPARATORS else end
        if i <= pos or text[i - 1] not in DIGITS:
            return end
        digits_after = 0
        held = end
        while i > pos:
            if text[i - 1] in DIGITS:
                i -= 1
                digits_after += 1
            elif text[i - 1] in SEPARATORS and i - 2 >= pos and text[i - 2] in DIGITS:
                if digits_after > MOST_MATCH_DIGITS:
                    break
                held = i  # a group starts here
                i -= 1
            else:
                break
        if digits_after <= MOST_MATCH_DIGITS:
            held = i
        return held

    def _in_run(self, text: str, start: int, end: int) -> list[Match]:
        groups = [(g.start(), g.end()) for g in _GROUP.finditer(text, start, end)]
        digits = [0]  # digits before each group
        for first, last in groups:
            digits.append(digits[-1] + last - first)
        matches = []
        i = 0
        while i < len(groups):
            found = self._card_from(text, groups, digits, i) or self._ssn_at(text, groups, i)
            if found is None:
                i += 1
                continue
            last, kind = found
            matches.append(Match(groups[i][0], groups[last][1], kind))
            i = last + 1
        return matches

    @staticmethod
    def _card_from(text, groups, digits, i) -> tuple[int, str] | None:
        # The longest Luhn-valid window from this group (a group holds at least one digit, so
        # no window spans more groups than a card has digits).
        furthest = i
        while furthest + 1 < len(groups) and digits[furthest + 2] - digits[i] <= CARD_DIGITS[-1]:
            furthest += 1
        for last in range(furthest, i - 1, -1):
            count = digits[last + 1] - digits[i]
            if count in CARD_DIGITS:
                number = "".join(text[a:b] for a, b in groups[i : last + 1])
                if luhn.is_valid(number):
                    return last, "CARD"
        return None

    @staticmethod
    def _ssn_at(text, groups, i) -> tuple[int, str] | None:
        if i + 2 >= len(groups):
            return None
        (a0, a1), (g0, g1), (s0, s1) = groups[i : i + 3]
        if (a1 - a0, g1 - g0, s1 - s0) != (3, 2, 4) or text[a1] != text[g1]:
            return None
        return (i + 2, "SSN") if ssn.is_valid(text[a0:a1] + text[g0:g1] + text[s0:s1]) else None


class Pattern:
    """An operator's regular expression (the `regex` module: its partial matching tells a
    stream how much of the end of a text could still be the start of a match)."""

    def __init__(self, kind: str, pattern: str):
        self.kinds = (kind,)
        self.kind = kind
        self.regex = regex.compile(pattern)

    def find(self, text: str, pos: int = 0) -> list[Match]:
        return [Match(m.start(), m.end(), self.kind) for m in self.regex.finditer(text, pos) if m.end() > m.start()]

    def held_from(self, text: str, pos: int = 0) -> int:
        end = len(text)
        # A match that reaches the end may still grow; a partial one may still complete.
        for m in self.regex.finditer(text, pos, partial=True):
            if m.end() == end and m.start() < end:
                return m.start()
        return end


def find(text: str, detectors, pos: int = 0) -> list[Match]:
    """Every detector's matches from `pos`, in order; overlapping ones merge into the first."""
    found = sorted((m for detector in detectors for m in detector.find(text, pos)), key=lambda m: (m.start, -m.end))
    merged: list[Match] = []
    for match in found:
        if merged and match.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Match(last.start, max(last.end, match.end), last.kind)
        else:
            merged.append(match)
    return merged


def held_from(text: str, detectors, pos: int = 0) -> int:
    held = min((detector.held_from(text, pos) for detector in detectors), default=len(text))
    # Never between two digits: the built-in detectors read whole groups.
    while pos < held < len(text) and text[held - 1] in DIGITS and text[held] in DIGITS:
        held -= 1
    return held


def compiles(pattern: str) -> str | None:
    """Why an operator's pattern is unusable, or None."""
    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        return f"Not a regular expression: {exc}."
    if compiled.fullmatch(""):
        return "The pattern matches empty text, so it would match everywhere."
    return None
