"""Read the subscribe and preferences forms. Pure: fields in, values or messages out.

What is valid is decided by notifier.validation; here every problem becomes a
message keyed by the field it belongs to, shown next to that field; nothing
is stored unless the whole form is valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from notifier import validation
from notifier.errors import InvalidInput
from notifier.models import Interest
from notifier.schedule import CADENCES, WEEKDAYS


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
    filled = [row for row in rows if not row.blank]
    if len(filled) > validation.MAX_INTERESTS:
        errors["interests"] = f"at most {validation.MAX_INTERESTS} interests, please"
        return [], errors
    # Errors are keyed by position among the filled rows: the page is shown
    # again with the blank rows dropped, and each message must stay with its row.
    for k, row in enumerate(filled):
        try:
            item = validation.interest(row.name, row.query, row.about)
            chosen = validation.interests([*chosen, item])
        except InvalidInput as e:
            errors[f"interest-{k}"] = str(e)
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
    try:
        return validation.email(text), None
    except InvalidInput as e:
        return None, str(e)


def check_schedule(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the schedule columns the cadence, send_time, timezone and weekday fields set."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    cadence = form.get("cadence", "daily").strip()
    try:
        values["cadence"] = validation.cadence(cadence)
    except InvalidInput:
        # The form offers the cadences as a choice, so the message names the choice.
        errors["cadence"] = f"choose one of {', '.join(CADENCES)}"
    try:
        values["send_time"] = validation.send_time(form.get("send_time", "") or "07:00")
    except InvalidInput as e:
        errors["send_time"] = str(e)
    try:
        values["timezone"] = validation.time_zone(form.get("timezone", "").strip()[:64] or "UTC")
    except InvalidInput as e:
        errors["timezone"] = str(e)
    if cadence == "weekly":
        try:
            values["weekday"] = validation.weekday(form.get("weekday", "") or "monday")
        except InvalidInput as e:
            errors["weekday"] = str(e)
    else:
        values["weekday"] = None
    return values, errors


def check_name(text: str) -> tuple[str | None, str | None]:
    """Return a display name (None when empty), or a message when it is too long."""
    try:
        return validation.display_name(text), None
    except InvalidInput as e:
        return None, str(e)


def weekday_name(number: int | None) -> str:
    """Return the form value of a weekday number."""
    return WEEKDAYS[number] if number is not None else "monday"
