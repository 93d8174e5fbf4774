"""Five-field cron schedules (UTC): each field checked against its range, and the longest wait
between two runs, which the backup alerts compare the last success against."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

# (name, lowest, highest) of each field; day of week 7 is Sunday, as 0.
FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


def _values(text: str, low: int, high: int) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, last_text = span.split("-", 1)
            first, last = int(first_text), int(last_text)
        else:
            first = int(span)
            last = high if step_text else first
        if not (low <= first <= last <= high) or step < 1:
            raise ValueError(part)
        found.update(range(first, last + 1, step))
    return frozenset(found)


def parse(schedule: str) -> tuple[frozenset[int], ...]:
    """The values of each field; ValueError naming the bad field."""
    texts = schedule.split()
    if len(texts) != len(FIELDS):
        raise ValueError(f"{len(texts)} fields, not 5")
    parsed = []
    for text, (name, low, high) in zip(texts, FIELDS, strict=True):
        try:
            parsed.append(_values(text, low, high))
        except ValueError:
            raise ValueError(f"{name} {text!r} is outside {low}-{high}") from None
    return tuple(parsed)


def longest_interval_seconds(schedule: str) -> int:
    """The longest wait between two consecutive runs over a leap year and the next."""
    minutes, hours, days, months, weekdays = parse(schedule)
    weekdays = frozenset(d % 7 for d in weekdays)
    # Cron's rule: with both day fields restricted, a day matching either runs.
    any_day, any_weekday = schedule.split()[2] == "*", schedule.split()[4] == "*"
    times = sorted(h * 60 + m for h in hours for m in minutes)
    runs: list[int] = []
    start = date(2028, 1, 1)
    for offset in range(2 * 366):
        day = start + timedelta(days=offset)
        by_day, by_weekday = day.day in days, (day.isoweekday() % 7) in weekdays
        restricted_both = not (any_day or any_weekday)
        matches = (by_day or by_weekday) if restricted_both else (by_day and by_weekday)
        if day.month in months and matches:
            runs.extend(offset * 1440 + t for t in times)
    if len(runs) < 2:
        raise ValueError("runs less than twice in two years")
    return max(b - a for a, b in pairwise(runs)) * 60
