"""Check what people type into the subscribe and preferences forms. Pure: fields in, values out.

Every problem becomes a message keyed by the field it belongs to, shown next
to that field; nothing is stored unless the whole form is valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email

from notifier.errors import QueryError
from notifier.match import compile_interest
from notifier.models import Interest
from notifier.papers import clean_text
from notifier.schedule import CADENCES, WEEKDAYS, parse_send_time, parse_weekday, zone

MAX_EMAIL = 254  # RFC 5321's limit on a path, less the brackets
MAX_NAME = 100
MAX_INTEREST_NAME = 60
MAX_INTEREST_TEXT = 500
MAX_INTERESTS = 10


@dataclass(frozen=True, slots=True)
class InterestRow:
    """One interest as typed: a name, words it must contain and a plain description."""

    name: str = ""
    query: str = ""
    about: str = ""

    @property
    def blank(self) -> bool:
        """Tell whether nothing was typed in the row."""
        return not (self.name.strip() or self.query.strip() or self.about.strip())


@dataclass(frozen=True, slots=True)
class Checked:
    """A checked form: the values to store, or the messages to show (field -> message)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Tell whether the form can be stored."""
        return not self.errors


def interest_rows(form: Mapping[str, Sequence[str]]) -> list[InterestRow]:
    """Return the interest rows of a form (parallel interest_name/query/about lists)."""
    names = list(form.get("interest_name", ()))
    queries = list(form.get("interest_query", ()))
    abouts = list(form.get("interest_about", ()))
    width = max(len(names), len(queries), len(abouts))

    def at(values: list[str], k: int) -> str:
        return values[k] if k < len(values) else ""

    return [InterestRow(at(names, k), at(queries, k), at(abouts, k)) for k in range(width)]


def rows_of(interests: Sequence[Interest]) -> list[InterestRow]:
    """Return a subscriber's interests as form rows."""
    return [InterestRow(i.name, i.query or "", i.about or "") for i in interests]


def check_interests(rows: Sequence[InterestRow]) -> tuple[list[Interest], dict[str, str]]:
    """Return the interests the rows describe, or messages keyed interest-<row>."""
    chosen: list[Interest] = []
    errors: dict[str, str] = {}
    seen: set[str] = set()
    filled = [row for row in rows if not row.blank]
    if len(filled) > MAX_INTERESTS:
        errors["interests"] = f"at most {MAX_INTERESTS} interests, please"
        return [], errors
    # Errors are keyed by position among the filled rows: the page is shown
    # again with the blank rows dropped, and each message must stay with its row.
    for k, row in enumerate(filled):
        key = f"interest-{k}"
        query, about = clean_text(row.query).strip(), clean_text(row.about).strip()
        if len(query) > MAX_INTEREST_TEXT or len(about) > MAX_INTEREST_TEXT:
            errors[key] = f"keep each part under {MAX_INTEREST_TEXT} characters"
            continue
        name = clean_text(row.name).strip() or _name_from(about or query)
        if len(name) > MAX_INTEREST_NAME:
            errors[key] = f"the name can have at most {MAX_INTEREST_NAME} characters"
            continue
        if name.lower() in seen:
            errors[key] = f"two interests are called {name!r}: give each its own name"
            continue
        try:
            compile_interest(name, query or None, about or None)
        except QueryError as e:
            errors[key] = str(e)
            continue
        seen.add(name.lower())
        chosen.append(Interest(name, query or None, about or None))
    if not chosen and not errors:
        errors["interests"] = "describe at least one interest"
    return chosen, errors


def check_preferences(fields: Mapping[str, str], rows: Sequence[InterestRow]) -> Checked:
    """Check what the sign-up and preferences forms share: name, interests and clock."""
    errors: dict[str, str] = {}
    name, problem = check_name(fields.get("name", ""))
    if problem:
        errors["name"] = problem
    chosen, interest_errors = check_interests(rows)
    errors.update(interest_errors)
    schedule, schedule_errors = check_schedule(fields)
    errors.update(schedule_errors)
    return Checked({"name": name, "interests": chosen, "schedule": schedule}, errors)


def check_signup(fields: Mapping[str, str], rows: Sequence[InterestRow]) -> Checked:
    """Check a whole sign-up form: the address, then what preferences hold."""
    checked = check_preferences(fields, rows)
    email, problem = check_email(fields.get("email", ""))
    errors = {"email": problem, **checked.errors} if problem else checked.errors
    return Checked({"email": email, **checked.values}, errors)


def check_email(text: str) -> tuple[str | None, str | None]:
    """Return the normalised address, or a message saying what is wrong with it."""
    text = text.strip()
    if not text:
        return None, "enter your email address"
    if len(text) > MAX_EMAIL:
        return None, f"an email address has at most {MAX_EMAIL} characters"
    try:
        # Lowercased whole, as the CLI does: A@x and a@x must be one subscriber.
        return validate_email(text, check_deliverability=False).normalized.lower(), None
    except EmailNotValidError as e:
        return None, f"that is not a valid email address: {e}"


def check_schedule(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the schedule columns the cadence, send_time, timezone and weekday fields set."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    cadence = form.get("cadence", "daily").strip()
    if cadence not in CADENCES:
        errors["cadence"] = f"choose one of {', '.join(CADENCES)}"
    else:
        values["cadence"] = cadence
    try:
        values["send_time"] = f"{parse_send_time(form.get('send_time', '') or '07:00'):%H:%M}"
    except ValueError as e:
        errors["send_time"] = str(e)
    try:
        values["timezone"] = zone(form.get("timezone", "").strip()[:64] or "UTC").key
    except ValueError as e:
        errors["timezone"] = str(e)
    if cadence == "weekly":
        try:
            values["weekday"] = parse_weekday(form.get("weekday", "") or "monday")
        except ValueError as e:
            errors["weekday"] = str(e)
    else:
        values["weekday"] = None
    return values, errors


def check_name(text: str) -> tuple[str | None, str | None]:
    """Return a display name (None when empty), or a message when it is too long."""
    name = clean_text(text).strip()
    if len(name) > MAX_NAME:
        return None, f"a name can have at most {MAX_NAME} characters"
    return name or None, None


def weekday_name(number: int | None) -> str:
    """Return the form value of a weekday number."""
    return WEEKDAYS[number] if number is not None else "monday"


def _name_from(text: str) -> str:
    """Return a short name for an unnamed interest: its first few words."""
    words = text.split()
    name = ""
    for word in words:
        if len(name) + len(word) + 1 > 40:
            break
        name = f"{name} {word}".strip()
    return name or text[:40]
