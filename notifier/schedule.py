"""When each subscriber's digest is due, on their own clock. Pure: cadence and `now` in, slots out.

A slot is one scheduled send: a local date (or ISO week) and the UTC moment it
comes due. The slot's period is the digest's key, so composing is idempotent
on it and downtime never multiplies digests: after an outage only the latest
slot is due, and its digest covers everything not yet offered.

Local times that do not exist or exist twice follow RFC 5545 (3.3.5): a time in
the spring-forward gap is read with the offset before the gap (02:30 becomes
03:30), and a time in the fall-back overlap means its first occurrence. The
period is the local date either way, so each day has exactly one slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.models import Subscriber

CADENCES = ("daily", "weekdays", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often and when one subscriber wants their digest."""

    every: str = "daily"  # daily | weekdays (Monday to Friday) | weekly
    send_time: time = time(0, 0)
    timezone: str = "UTC"
    weekday: int = 0  # weekly only: 0 is Monday

    def __post_init__(self) -> None:
        if self.every not in CADENCES:
            raise ValueError(f"cadence must be one of {', '.join(CADENCES)}, not {self.every!r}")
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), not {self.weekday}")
        zone(self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        """Return the time zone."""
        return zone(self.timezone)

    def describe(self) -> str:
        """Return the cadence in words: "weekly on Monday at 07:00 (Europe/Berlin)"."""
        when = {
            "daily": "daily",
            "weekdays": "on weekdays",
            "weekly": f"weekly on {WEEKDAYS[self.weekday].title()}",
        }[self.every]
        return f"{when} at {self.send_time:%H:%M} ({self.timezone})"


@dataclass(frozen=True, slots=True)
class Slot:
    """One scheduled digest: its period key and the moment (UTC) it comes due."""

    period: str
    due_at: datetime


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone name, or raise ValueError saying it is unknown."""
    try:
        return ZoneInfo(name)
    # "America" names a folder of zones: zoneinfo raises IsADirectoryError for it.
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from e


def parse_send_time(text: str) -> time:
    """Return an HH:MM send time, or raise ValueError naming the expected form."""
    try:
        parsed = datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError as e:
        raise ValueError(f"send time must be HH:MM (24-hour), not {text!r}") from e
    return parsed


def parse_weekday(text: str | int) -> int:
    """Return a weekday number (0 is Monday) from a name, a three-letter prefix or 0-6."""
    if isinstance(text, int) or text.strip().isdigit():
        number = int(text)
        if 0 <= number <= 6:
            return number
    else:
        word = text.strip().lower()
        for number, name in enumerate(WEEKDAYS):
            if len(word) >= 3 and name.startswith(word):
                return number
    raise ValueError(f"weekday must be a day name (monday ... sunday) or 0-6, not {text!r}")


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """Return the UTC moment of a local wall time on a local date (RFC 5545 gap and fold rules)."""
    # fold=0 is the first occurrence in an overlap, and in a gap zoneinfo applies the
    # offset from before the transition, which is exactly what RFC 5545 asks for.
    return datetime.combine(day, at, tzinfo=tz).replace(fold=0).astimezone(UTC)


def has_slot(cadence: Cadence, day: date) -> bool:
    """Return whether a local date carries a scheduled digest."""
    if cadence.every == "weekdays":
        return day.weekday() < 5
    if cadence.every == "weekly":
        return day.weekday() == cadence.weekday
    return True


def period_key(cadence: Cadence, day: date) -> str:
    """Return the period of a slot day: the local date, or the ISO week for weekly digests."""
    if cadence.every == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def last_slot(cadence: Cadence, now: datetime) -> Slot | None:
    """Return the latest slot due at or before now (None only for a weekly one not reached)."""
    tz = cadence.zone
    today = now.astimezone(tz).date()
    for back in range(8):
        day = today - timedelta(days=back)
        if not has_slot(cadence, day):
            continue
        due = local_moment(day, cadence.send_time, tz)
        if due <= now:
            return Slot(period_key(cadence, day), due)
    return None


def next_slot(cadence: Cadence, now: datetime) -> Slot:
    """Return the first slot due after now."""
    tz = cadence.zone
    today = now.astimezone(tz).date()
    for ahead in range(9):
        day = today + timedelta(days=ahead)
        if not has_slot(cadence, day):
            continue
        due = local_moment(day, cadence.send_time, tz)
        if due > now:
            return Slot(period_key(cadence, day), due)
    raise AssertionError("every cadence has a slot within a week")


def resolve(
    default: Cadence,
    every: str | None = None,
    send_time: str | None = None,
    timezone: str | None = None,
    weekday: int | None = None,
) -> Cadence:
    """Return a subscriber's cadence: their own choices over the configured default.

    Raises ValueError when a stored choice is no longer valid (a removed zone).
    """
    return Cadence(
        every or default.every,
        parse_send_time(send_time) if send_time else default.send_time,
        timezone or default.timezone,
        default.weekday if weekday is None else weekday,
    )


def next_due(default: Cadence, subscriber: Subscriber, now: datetime) -> tuple[Cadence, datetime]:
    """Return a subscriber's cadence and when their next digest is due, in their own zone.

    Raises ValueError when a stored choice is no longer valid (a removed zone).
    """
    cadence = resolve(
        default, subscriber.cadence, subscriber.send_time, subscriber.timezone, subscriber.weekday
    )
    return cadence, next_slot(cadence, now).due_at.astimezone(cadence.zone)
