"""Decide what a valid subscriber, interest, query and schedule are. Pure: text in, values out.

The CLI, the web forms, the admin API and the config file all call these, so
one set of limits holds wherever a subscriber is written. Each check returns
the value to store, cleaned, or raises InvalidInput with a line the person
who typed it can act on; each surface decides only where to show it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from notifier.errors import InvalidInput, QueryError
from notifier.models import SENSITIVITIES, ChannelKind, Interest
from notifier.papers import clean_text
from notifier.query import MAX_QUERY_LENGTH
from notifier.schedule import CADENCES, parse_send_time, parse_weekday, zone

MAX_EMAIL = 254  # RFC 5321's limit on a path, less the brackets
MAX_NAME = 100  # a display name
MAX_INTEREST_NAME = 100  # the interests.name column's width
MAX_INTEREST_TEXT = MAX_QUERY_LENGTH  # a query or a description
MAX_INTERESTS = 10
MAX_PAPERS = 500  # the cap a subscriber may set on papers per digest
AUTO_NAME = 40  # an unnamed interest is named by its first words, up to this


def email(text: str) -> str:
    """Return the address normalised and lowercased, or raise InvalidInput."""
    text = text.strip()
    if not text:
        raise InvalidInput("enter your email address")
    if len(text) > MAX_EMAIL:
        raise InvalidInput(f"an email address has at most {MAX_EMAIL} characters")
    try:
        # Lowercased whole: providers treat local parts case-insensitively, and
        # A@x and a@x must not become two subscribers who both get every digest.
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as e:
        raise InvalidInput(f"that is not a valid email address: {e}", reason=str(e)) from None


def display_name(text: str) -> str | None:
    """Return how to greet a subscriber (None when empty), or raise InvalidInput."""
    name = clean_text(text).strip()
    if len(name) > MAX_NAME:
        raise InvalidInput(f"a name can have at most {MAX_NAME} characters")
    return name or None


def interest_name(text: str) -> str:
    """Return an interest's name cleaned of control characters, or raise InvalidInput."""
    name = clean_text(text).strip()
    if not name:
        raise InvalidInput("an interest needs a name")
    # Checked after cleaning: NFC normalisation can lengthen a string.
    if len(name) > MAX_INTEREST_NAME:
        raise InvalidInput(f"the name can have at most {MAX_INTEREST_NAME} characters")
    return name


def interest_text(text: str, what: str = "description") -> str:
    """Return a query or description cleaned, or raise InvalidInput when it is too long."""
    cleaned = clean_text(text).strip()
    if len(cleaned) > MAX_INTEREST_TEXT:
        raise InvalidInput(
            f"{len(cleaned)} characters is too long; a {what} may have {MAX_INTEREST_TEXT},"
            f" so keep it under {MAX_INTEREST_TEXT} characters"
        )
    return cleaned


def sensitivity(text: str) -> str:
    """Return a known sensitivity, or raise InvalidInput."""
    if text not in SENSITIVITIES:
        raise InvalidInput(f"sensitivity must be one of {', '.join(SENSITIVITIES)}, not {text!r}")
    return text


def interest(
    name: str | None, query: str | None, about: str | None, level: str = "normal"
) -> Interest:
    """Return the interest as it will be stored and matched, or raise InvalidInput.

    A name left empty is made from the first words of the description or query.
    The query is parsed as matching will parse it, so a syntax error points at
    its position.
    """
    cleaned_query = interest_text(query or "", "query") or None
    cleaned_about = interest_text(about or "") or None
    if cleaned_query is None and cleaned_about is None:
        raise InvalidInput("an interest needs a query, a description, or both")
    given = clean_text(name or "").strip()
    chosen = interest_name(given or _name_from(cleaned_about or cleaned_query or ""))
    chosen_level = sensitivity(level)
    from notifier.match import compile_interest  # numpy: imported when an interest is checked

    try:
        compile_interest(chosen, cleaned_query, cleaned_about, chosen_level)
    except QueryError as e:  # it names the position in the query
        raise InvalidInput(str(e)) from None
    return Interest(chosen, cleaned_query, cleaned_about, chosen_level)


def interests(chosen: Sequence[Interest]) -> list[Interest]:
    """Return a subscriber's whole list of interests, or raise InvalidInput."""
    if not chosen:
        raise InvalidInput("describe at least one interest")
    if len(chosen) > MAX_INTERESTS:
        raise InvalidInput(f"at most {MAX_INTERESTS} interests, please")
    seen: set[str] = set()
    for item in chosen:
        if item.name.lower() in seen:
            raise InvalidInput(f"two interests are called {item.name!r}: give each its own name")
        seen.add(item.name.lower())
    return list(chosen)


def cadence(text: str) -> str:
    """Return a known cadence, or raise InvalidInput."""
    if text not in CADENCES:
        raise InvalidInput(f"cadence must be one of {', '.join(CADENCES)}, not {text!r}")
    return text


def send_time(text: str) -> str:
    """Return a send time as HH:MM, or raise InvalidInput."""
    try:
        return f"{parse_send_time(text):%H:%M}"
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def time_zone(name: str) -> str:
    """Return the key of a known IANA time zone, or raise InvalidInput."""
    try:
        return zone(name).key
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def weekday(value: int | str) -> int:
    """Return a weekday number (0 is Monday) from 0-6 or a day name, or raise InvalidInput."""
    try:
        return parse_weekday(value)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def max_papers(value: int) -> int:
    """Return a cap on papers per digest, or raise InvalidInput."""
    if not 1 <= value <= MAX_PAPERS:
        raise InvalidInput(f"the cap on papers per digest must be 1 to {MAX_PAPERS}, not {value}")
    return value


def _name_from(text: str) -> str:
    """Return a short name for an unnamed interest: its first few words."""
    name = ""
    for word in text.split():
        if len(name) + len(word) + 1 > AUTO_NAME:
            break
        name = f"{name} {word}".strip()
    return name or text[:AUTO_NAME]


def schedule(changes: Mapping[str, str | int | None]) -> dict[str, str | int | None]:
    """Return the schedule columns given (cadence, send_time, timezone, weekday), checked.

    None puts a column back to the configured default; a column left out stays.
    """
    checks: dict[str, Callable[[Any], str | int]] = {
        "cadence": cadence,
        "send_time": send_time,
        "timezone": time_zone,
        "weekday": weekday,
    }
    unknown = set(changes) - set(checks)
    if unknown:
        raise InvalidInput(f"no schedule field called {', '.join(sorted(unknown))}")
    return {
        column: None if value is None else checks[column](value)
        for column, value in changes.items()
    }


def merged_interests(
    existing: Sequence[Interest],
    queries: Sequence[tuple[str, str]] = (),
    abouts: Sequence[tuple[str, str]] = (),
    levels: Sequence[tuple[str, str]] = (),
) -> list[Interest]:
    """Return the interests changed by (name, value) pairs, each checked as it will be stored.

    A name matches an existing interest whatever its letter case, and that
    interest keeps the fields not given; a new name adds one, up to
    MAX_INTERESTS. A sensitivity may only be set on an interest that exists.
    Interests not named are left as they are, so a list stored under older
    limits can still be edited.
    """
    by_key = {i.name.lower(): i for i in existing}
    changed: dict[str, Interest] = {}
    spelled: dict[str, str] = {}  # how this change writes each name

    def base(raw_name: str) -> tuple[str, Interest]:
        name = interest_name(raw_name)
        key = name.lower()
        if spelled.setdefault(key, name) != name:
            raise InvalidInput(
                f"two interests are called {spelled[key]!r} and {name!r}: give each its own name"
            )
        return key, changed.get(key) or by_key.get(key) or Interest(name)

    for raw_name, query in queries:
        key, current = base(raw_name)
        changed[key] = replace(current, query=query)
    for raw_name, about in abouts:
        key, current = base(raw_name)
        changed[key] = replace(current, about=about)
    for raw_name, level in levels:
        key, current = base(raw_name)
        if key not in changed and key not in by_key:
            raise InvalidInput(
                f"there is no interest named {current.name!r} to set the sensitivity of"
            )
        changed[key] = replace(current, sensitivity=level.strip().lower())
    checked = [interest(i.name, i.query, i.about, i.sensitivity) for i in changed.values()]
    added = sum(1 for key in changed if key not in by_key)
    if added and len(existing) + added > MAX_INTERESTS:
        raise InvalidInput(f"at most {MAX_INTERESTS} interests, please")
    return checked


MAX_CHANNEL_URL = 2_000
MAX_CHANNEL_SECRET = 1_000


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A channel as typed, checked: what storage keeps of it."""

    kind: ChannelKind
    label: str
    url: str
    room: str | None = None
    secret: str | None = field(default=None, repr=False)


def channel(
    kind: str,
    url: str,
    *,
    label: str | None = None,
    room: str | None = None,
    token: str | None = None,
    allow_http: bool = False,
) -> ChannelSpec:
    """Return a checked channel, or raise InvalidInput naming what to fix.

    url is the webhook's URL (Slack, Discord, webhook) or the Matrix
    homeserver's; a Matrix channel also needs the room's id and an access token;
    a webhook's token is the key its posts are signed with (one is made when
    none is given). Plain http is refused unless allow_http: the URL is itself
    the secret that lets anyone post.
    """
    try:
        chosen = ChannelKind(kind.strip().lower())
    except ValueError:
        kinds = ", ".join(k.value for k in ChannelKind)
        raise InvalidInput(f"unknown channel kind {kind!r}: use one of {kinds}") from None
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > MAX_CHANNEL_URL:
        raise InvalidInput(f"a channel URL has at most {MAX_CHANNEL_URL} characters")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"a {chosen} channel needs its https:// URL")
    if parts.scheme == "http" and not allow_http:
        raise InvalidInput(
            f"a {chosen} channel needs an https:// URL, not http:// "
            "(the channel_private_hosts setting allows http:// inside your own network)"
        )
    if parts.username or parts.password:
        raise InvalidInput("a channel URL cannot carry a user name or password")
    try:
        port = parts.port
        host = parts.hostname.encode("idna").decode("ascii")  # bücher.de -> xn--bcher-kva.de
    except (ValueError, UnicodeError):
        raise InvalidInput(f"{parts.netloc!r} is not a host name and port") from None
    if host != parts.hostname:
        netloc = f"{host}:{port}" if port is not None else host
        url = parts._replace(netloc=netloc).geturl()
        parts = urlsplit(url)
    if chosen is ChannelKind.DISCORD and "/api/webhooks/" not in parts.path:
        raise InvalidInput(
            "a Discord webhook URL looks like https://discord.com/api/webhooks/ID/TOKEN "
            "(Server settings > Integrations > Webhooks > Copy Webhook URL)"
        )
    room = (room or "").strip() or None
    token = (token or "").strip() or None
    if chosen is ChannelKind.MATRIX:
        # Room versions before 12 end their ids in ":server"; version 12's do not
        # (https://spec.matrix.org/v1.16/appendices/#room-ids).
        if room is None or not room.startswith("!") or len(room) < 2 or not room.isprintable():
            raise InvalidInput(
                "a Matrix channel needs the room's id, like !abcdef:example.org "
                "(in Element: Room settings > Advanced), not its #alias"
            )
        if token is None:
            raise InvalidInput("a Matrix channel needs an access token of a user in the room")
        if parts.path not in ("", "/"):
            raise InvalidInput(
                "give the Matrix homeserver's address only, like https://matrix.example.org"
            )
    elif chosen is not ChannelKind.WEBHOOK:
        room = token = None  # the URL is the whole secret of a Slack or Discord webhook
    if chosen is ChannelKind.WEBHOOK and token is None:
        token = secrets.token_urlsafe(32)
    if token is not None and (len(token) > MAX_CHANNEL_SECRET or not token.isprintable()):
        raise InvalidInput(f"a token has at most {MAX_CHANNEL_SECRET} printable characters")
    name = clean_text(label or "").strip() or f"{chosen.title()} ({parts.hostname})"
    if len(name) > MAX_NAME:
        raise InvalidInput(f"a channel's label can have at most {MAX_NAME} characters")
    return ChannelSpec(chosen, name, url, room, token)
