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
CARD_GROUP_DIGITS = 4  # the fewest digits in a printed group that another follows
SSN_GROUPS = (3, 2, 4)

# Digits with single spaces or dashes between them: the only text an SSN or card number is in.
_RUN = re.compile(r"[0-9](?:[ -]?[0-9])*")
_GROUP = re.compile(r"[0-9]+")
has_digit = re.compile(r"[0-9]").search


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    kind: str


class DigitRuns:
    """SSNs (AAA-GG-SSSS with dashes or spaces, valid by the SSA's rules: no 000, 666 or 9xx
    area, no 00 group, no 0000 serial, none of the advertised numbers; python-stdnum) and card
    numbers (13 to 19 digits, Luhn-valid, either in one group or in groups of at least four
    digits but the last, as cards print them: 4-4-4-4, 4-6-5, 4-4-4-4-3).

    Both are read in runs of digits with single spaces or dashes between them; a match begins
    and ends on a whole group, so `4111 1111 1111 1111` is found in `4111 1111 1111 1111 12`,
    but never a number cut out of a longer group (a 20-digit order number is not a card), and
    a list such as `1 2 3 4 5 6 7 8 9 10 11 12` is never taken for one."""

    kinds = ("SSN", "CARD")

    def find(self, text: str, pos: int = 0) -> list[Match]:
        if not DIGITS.intersection(text[pos:]):
            return []
        matches = []
        for run in _RUN.finditer(text, pos):
            matches.extend(self._in_run(text, run.start(), run.end()))
        return matches

    def held_from(self, text: str, pos: int = 0) -> int:
        """The first group of the trailing run that, with more text, could still begin a match
        (len(text) when none could): the smallest hold-back that never lets one through."""
        end = len(text)
        trailing_separator = end > pos and text[-1] in SEPARATORS
        groups = _trailing_groups(text, pos, end - 1 if trailing_separator else end)
        for index, (start, _) in enumerate(groups):
            if self._may_begin(text, groups[index:], trailing_separator):
                return start
        return end

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
        # The longest Luhn-valid window from this group.
        furthest = i
        while (
            furthest + 1 < len(groups)
            and groups[furthest][1] - groups[furthest][0] >= CARD_GROUP_DIGITS
            and digits[furthest + 2] - digits[i] <= CARD_DIGITS[-1]
        ):
            furthest += 1
        for last in range(furthest, i - 1, -1):
            if digits[last + 1] - digits[i] in CARD_DIGITS:
                number = "".join(text[a:b] for a, b in groups[i : last + 1])
                if luhn.is_valid(number):
                    return last, "CARD"
        return None

    @staticmethod
    def _ssn_at(text, groups, i) -> tuple[int, str] | None:
        if i + 2 >= len(groups):
            return None
        (a0, a1), (g0, g1), (s0, s1) = groups[i : i + 3]
        if (a1 - a0, g1 - g0, s1 - s0) != SSN_GROUPS or text[a1] != text[g1]:
            return None
        return (i + 2, "SSN") if ssn.is_valid(text[a0:a1] + text[g0:g1] + text[s0:s1]) else None

    @staticmethod
    def _may_begin(text: str, groups: list[tuple[int, int]], trailing_separator: bool) -> bool:
        """Whether more text could still make a match that begins at the first of these groups
        (the trailing ones; the last may still grow unless a separator follows it)."""
        lengths = [b - a for a, b in groups]
        followed = lengths if trailing_separator else lengths[:-1]  # groups another one will follow
        if sum(lengths) <= CARD_DIGITS[-1] and all(n >= CARD_GROUP_DIGITS for n in followed):
            return True
        separators = {text[b] for _, b in groups[:-1]} | ({text[-1]} if trailing_separator else set())
        if len(groups) > len(SSN_GROUPS) or len(separators) > 1 or (trailing_separator and len(groups) == 3):
            return False
        *whole, last = zip(lengths, SSN_GROUPS, strict=False)
        return all(n == wanted for n, wanted in whole) and (
            last[0] == last[1] if trailing_separator else last[0] <= last[1]
        )


def _trailing_groups(text: str, pos: int, end: int) -> list[tuple[int, int]]:
    """The groups of digits of the run that ends at `end`, as far back as a match could reach."""
    groups: list[tuple[int, int]] = []
    digits = 0
    i = end
    while i > pos and text[i - 1] in DIGITS:
        start = i
        while start > pos and text[start - 1] in DIGITS:
            start -= 1
        digits += i - start
        if digits > CARD_DIGITS[-1]:
            break
        groups.append((start, i))
        if not (start - 1 > pos and text[start - 1] in SEPARATORS and text[start - 2] in DIGITS):
            break
        i = start - 1
    return groups[::-1]


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
    if len(detectors) == 1:
        return detectors[0].find(text, pos)
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
