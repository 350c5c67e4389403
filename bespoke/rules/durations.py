"""ISO-8601 durations for policy deadlines.

Only day/time designators are accepted ("P2D", "PT36H", "P1DT12H", "P2W"): years and
months have no fixed length, so a deadline written with them would mean different
things on different dates. Fractions and negative durations are rejected too.
"""

from __future__ import annotations

import re
from datetime import timedelta

_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)

EXPECTED = 'an ISO-8601 duration such as "P2D", "PT36H" or "P1DT12H" (weeks, days, hours, minutes, seconds; whole numbers)'


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration; raise ValueError naming what was expected."""
    if not isinstance(text, str):
        raise ValueError(f"expected {EXPECTED}, got {type(text).__name__} {text!r}")
    m = _ISO_DURATION.match(text)
    if m is None:
        hint = ""
        if re.match(r"^P(\d+Y|\d+M)", text):
            hint = " (years and months have no fixed length; write days)"
        raise ValueError(f"expected {EXPECTED}, got {text!r}{hint}")
    parts = {k: int(v) for k, v in m.groupdict().items() if v is not None}
    return timedelta(**parts)


def format_duration(value: timedelta) -> str:
    """Canonical ISO-8601 form: days then hours/minutes/seconds, e.g. "P1DT12H", "PT0S"."""
    if value < timedelta(0) or value.microseconds:
        raise ValueError(f"cannot format {value!r}: durations are whole, non-negative seconds")
    days, seconds = value.days, value.seconds
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    out = "P"
    if days:
        out += f"{days}D"
    if hours or minutes or secs:
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if secs:
            out += f"{secs}S"
    if out == "P":
        out = "PT0S"
    return out


def duration_words(value: timedelta) -> str:
    """Plain words: "2 days", "1 day and 12 hours", "36 minutes"."""
    days, seconds = value.days, value.seconds
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    bits = []
    for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"), (secs, "second")):
        if n:
            bits.append(f"{n} {unit}{'s' if n != 1 else ''}")
    if not bits:
        return "no time"
    if len(bits) == 1:
        return bits[0]
    return ", ".join(bits[:-1]) + " and " + bits[-1]
