"""Dates in text, resolved against the time a memory was observed.

"yesterday", "last May", "next Tuesday", "3 days ago", "June 3, 2025", "2019" become absolute
dates with a granularity (day, week, month, year), so "last May" said on 2025-06-01 and "May
2025" written in a note are the same DATE entity (key ``2025-05``). Relative forms that the
patterns here don't cover are handed to ``dateparser`` with the observation time as its base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}
_UNITS = {
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
}
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}  # fmt: skip
WHEN_QUESTION = re.compile(
    r"\b(when|what (date|day|year|month|time)|which (date|day|year|month)|how long ago|since when)\b", re.I
)


@dataclass(frozen=True)
class DateValue:
    """A resolved date: its first day and how precise it is."""

    start: date
    granularity: str  # "day", "week", "month" or "year"

    @property
    def key(self) -> str:
        """``2025-05-31``, ``2025-W22``, ``2025-05`` or ``2025``: the DATE entity key."""
        if self.granularity == "day":
            return self.start.isoformat()
        if self.granularity == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        if self.granularity == "month":
            return f"{self.start.year:04d}-{self.start.month:02d}"
        return f"{self.start.year:04d}"


def end_of(value: DateValue) -> date:
    """The first day after the period a date stands for ("2023" → 2024-01-01)."""
    start = value.start
    if value.granularity == "year":
        return date(start.year + 1, 1, 1)
    if value.granularity == "month":
        return _month_start(start.year, start.month + 1)
    if value.granularity == "week":
        return start + timedelta(days=7)
    return start + timedelta(days=1)


def _month_start(year: int, month: int) -> date:
    year += (month - 1) // 12
    return date(year, (month - 1) % 12 + 1, 1)


def normalize_date(text: str, base: datetime | date | None, *, future: bool = False) -> DateValue | None:
    """Resolve a DATE expression against ``base`` (when it was said); ``None`` when unknown.

    A bare month or weekday is the latest one not after ``base`` ("I moved in March"), or with
    ``future`` the next one not before it ("we move in September": a plan).

    >>> normalize_date("last May", date(2025, 6, 1)).key
    '2025-05'
    >>> normalize_date("yesterday", date(2025, 6, 1)).key
    '2025-05-31'
    """
    if base is None:
        base = datetime.now(UTC)
    today = base.date() if isinstance(base, datetime) else base
    words = re.sub(r"[,.]", " ", text.lower()).split()
    if not words:
        return None
    if words[0] == "the" and len(words) > 1:
        words = words[1:]
    phrase = " ".join(words)

    simple = {"today": 0, "tonight": 0, "yesterday": -1, "tomorrow": 1}
    if phrase in simple:
        return DateValue(today + timedelta(days=simple[phrase]), "day")
    if phrase in ("day before yesterday",):
        return DateValue(today - timedelta(days=2), "day")
    if phrase in ("day after tomorrow",):
        return DateValue(today + timedelta(days=2), "day")

    if len(words) == 2 and words[0] in ("last", "next", "this", "past", "coming"):
        return _relative(words[0], words[1], today)
    if len(words) == 1 and words[0] in WEEKDAYS:
        # A bare weekday in a memory most often refers to the past week (a plan: the coming one).
        if future:
            return DateValue(today + timedelta(days=(WEEKDAYS[words[0]] - today.weekday()) % 7), "day")
        delta = (today.weekday() - WEEKDAYS[words[0]]) % 7
        return DateValue(today - timedelta(days=delta), "day")
    if len(words) == 1 and words[0] in MONTHS and len(words[0]) > 3:
        # A bare month: the latest one not after the observation (a plan: the next one not before it).
        month = MONTHS[words[0]]
        if future:
            return DateValue(date(today.year if month >= today.month else today.year + 1, month, 1), "month")
        year = today.year if month <= today.month else today.year - 1
        return DateValue(date(year, month, 1), "month")

    ago = _ago(words, today)
    if ago is not None:
        return ago
    absolute = _absolute(words)
    if absolute is not None:
        return absolute
    return _dateparser(text, today, future=future)


def _relative(which: str, unit: str, today: date) -> DateValue | None:
    step = -1 if which in ("last", "past") else 1 if which in ("next", "coming") else 0
    if unit in MONTHS:
        month = MONTHS[unit]
        if step < 0:
            year = today.year if month < today.month else today.year - 1
        elif step > 0:
            year = today.year if month > today.month else today.year + 1
        else:
            year = today.year
        return DateValue(date(year, month, 1), "month")
    if unit in WEEKDAYS:
        target = WEEKDAYS[unit]
        if step < 0:
            delta = (today.weekday() - target) % 7 or 7
            return DateValue(today - timedelta(days=delta), "day")
        if step > 0:
            delta = (target - today.weekday()) % 7 or 7
            return DateValue(today + timedelta(days=delta), "day")
        return DateValue(today + timedelta(days=target - today.weekday()), "day")
    if unit in ("week", "weekend"):
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=step)
        return DateValue(
            monday + timedelta(days=5) if unit == "weekend" else monday, "day" if unit == "weekend" else "week"
        )
    if unit == "month":
        return DateValue(_month_start(today.year, today.month + step), "month")
    if unit == "year":
        return DateValue(date(today.year + step, 1, 1), "year")
    if unit in ("summer", "winter", "spring", "autumn", "fall"):
        month = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}[unit]
        year = today.year + step if step else today.year
        if step < 0 and _month_start(today.year, month) < today.replace(day=1):
            year = today.year
        return DateValue(date(year, month, 1), "month")
    return None


def _ago(words: list[str], today: date) -> DateValue | None:
    # "3 days ago", "two weeks ago", "a year ago", "in 2 months"
    if len(words) == 3 and words[2] == "ago" and words[1] in _UNITS:
        count, unit = _count(words[0]), _UNITS[words[1]]
        sign = -1
    elif len(words) == 3 and words[0] == "in" and words[2] in _UNITS:
        count, unit = _count(words[1]), _UNITS[words[2]]
        sign = 1
    else:
        return None
    if count is None:
        return None
    if unit == "day":
        return DateValue(today + timedelta(days=sign * count), "day")
    if unit == "week":
        return DateValue(today + timedelta(weeks=sign * count), "week")
    if unit == "month":
        return DateValue(_month_start(today.year, today.month + sign * count), "month")
    return DateValue(date(today.year + sign * count, 1, 1), "year")


def _count(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _NUMBER_WORDS.get(word)


def _absolute(words: list[str]) -> DateValue | None:
    text = " ".join(words)
    if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text):
        return _safe_day(int(m[1]), int(m[2]), int(m[3]))
    if m := re.fullmatch(r"(?:in |since |by )?(1[89]\d\d|2\d{3})", text):
        return DateValue(date(int(m[1]), 1, 1), "year")
    day = year = month = None
    for word in words:
        token = re.sub(r"(st|nd|rd|th)$", "", word)
        if word in MONTHS:
            month = MONTHS[word]
        elif token.isdigit() and len(token) == 4:
            year = int(token)
        elif token.isdigit() and 1 <= int(token) <= 31:
            day = int(token)
        elif word not in ("of", "in", "on"):
            return None
    if month is None or year is None:
        return None  # "June 3" without a year: left to dateparser's base-relative guess
    return _safe_day(year, month, day) if day else DateValue(date(year, month, 1), "month")


def _safe_day(year: int, month: int, day: int) -> DateValue | None:
    try:
        return DateValue(date(year, month, day), "day")
    except ValueError:
        return None


def _dateparser(text: str, today: date, *, future: bool = False) -> DateValue | None:
    try:
        import dateparser
    except ImportError:  # optional: the patterns above cover the common forms
        return None
    base = datetime(today.year, today.month, today.day)
    parsed = dateparser.parse(
        text,
        languages=["en"],
        settings={
            "RELATIVE_BASE": base,
            "PREFER_DATES_FROM": "future" if future else "past",
            "RETURN_AS_TIMEZONE_AWARE": False,
        },
    )
    if parsed is None:
        return None
    has_day = bool(re.search(r"\b\d{1,2}(st|nd|rd|th)?\b", text)) or any(w in text.lower() for w in WEEKDAYS)
    if has_day:
        return DateValue(parsed.date(), "day")
    return DateValue(date(parsed.year, parsed.month, 1), "month")


def is_when_question(query: str) -> bool:
    """Questions that ask for a time ("When did...", "What year...")."""
    return bool(WHEN_QUESTION.search(query))
