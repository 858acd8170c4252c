"""One validated Settings, from notifier.toml and NOTIFIER_* variables, built once."""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from notifier import __version__, validation
from notifier.errors import ConfigError
from notifier.schedule import WEEKDAYS, Cadence, parse_send_time, parse_weekday, zone

CONFIG_FILE = "notifier.toml"


class Topic(BaseModel):
    """A public feed: a name, a URL-safe slug and a query."""

    model_config = {"extra": "forbid", "frozen": True}

    name: str = Field(min_length=1, max_length=validation.MAX_INTEREST_NAME)
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    query: str | None = None
    about: str | None = None
    sensitivity: Literal["strict", "normal", "broad"] = "normal"

    @model_validator(mode="before")
    @classmethod
    def _valid_interest(cls, data: Any) -> Any:
        """Check the topic's interest as every surface does, and keep it as matching reads it."""
        fields = ("name", "query", "about", "sensitivity")
        if not isinstance(data, dict) or not data.get("name"):
            return data  # the field checks say what is missing
        if any(not isinstance(data.get(f), str | None) for f in fields):
            return data  # the field checks say what is not text
        # InvalidInput is a ValueError, so the config names the topic and the reason.
        interest = validation.interest(
            data["name"], data.get("query"), data.get("about"), data.get("sensitivity") or "normal"
        )
        return {**data, "name": interest.name, "query": interest.query, "about": interest.about}


SourceKind = Literal["snapshot", "hf-api", "hf-page", "arxiv-api", "arxiv-rss", "feed"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """Return a duration written as seconds or "30m", "6h", "1d"; raise ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration such as 90, '30m', '6h' or '1d'")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2) or "s"])


class SourceConfig(BaseModel):
    """A listing to poll: where it is, what format it has, and how often to look."""

    model_config = {"extra": "forbid", "frozen": True}

    name: str = Field(min_length=1, max_length=100)
    kind: SourceKind
    url: str = Field(min_length=1, description="http(s) URL, or a file path for snapshots")
    # Query parameters, e.g. hf-api: date ("today", "yesterday" or YYYY-MM-DD), sort, limit.
    params: dict[str, str | int] = Field(default_factory=dict)
    every: timedelta = timedelta(hours=1)
    pages: int = Field(default=1, ge=1, le=50, description="hf-api: pages to follow")
    enabled: bool = True

    @field_validator("every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        every = parse_duration(value)
        if every < timedelta(minutes=1):
            raise ValueError("poll at most once a minute")
        return every


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to reach the mail server, parsed from NOTIFIER_SMTP_URL."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    def describe(self) -> str:
        """Return host:port for messages (never the password)."""
        return f"{self.host}:{self.port}"


def user_cache_dir() -> Path:
    """Return this user's cache directory: $XDG_CACHE_HOME/notifier, else ~/.cache/notifier."""
    if base := os.environ.get("XDG_CACHE_HOME"):
        return Path(base) / "notifier"
    try:
        return Path.home() / ".cache" / "notifier"
    except RuntimeError:  # no home directory (a service user without one)
        return Path(tempfile.gettempdir()) / "notifier-cache"


class Settings(BaseSettings):
    """Every setting notifier reads; see deploy/notifier.example.toml for each one."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFIER_",
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    state_dir: Path = Path("state")
    database_url: str | None = None
    smtp_url: SecretStr | None = None
    smtp_timeout: float = Field(default=60.0, gt=0)
    smtp_connections: int = Field(default=2, ge=1, le=50, description="per sending process")
    # Shared by all connections of a process; 0: as fast as the server takes them.
    send_rate: float = Field(default=10.0, ge=0, description="messages per second")
    send_rate_hourly: int | None = Field(default=None, gt=0, description="messages per hour")
    retry_base: float = Field(default=60.0, gt=0, description="first retry after ~this, s")
    retry_max: float = Field(default=3600.0, gt=0, description="longest wait between tries, s")
    retry_deadline: timedelta = timedelta(days=3)
    lease_seconds: float = Field(default=300.0, gt=0, description="a dead worker's claim expires")
    hard_bounce_limit: int = Field(default=2, ge=1, description="5xx replies that suspend")
    # DKIM signing (all three, or none): d=domain, s=selector, the PEM private key.
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_file: Path | None = None
    sender_address: str = "notifier@localhost.localdomain"
    sender_name: str = "notifier"
    base_url: str = "http://localhost:8000"
    templates_dir: Path | None = None
    # Signs the links in emails; unset: a random key kept in state_dir/secret.key.
    # Every process that sends or serves must share it (set it when they do not share state_dir).
    secret_key: SecretStr | None = None
    # notifier serve: where it listens, and which proxies may set X-Forwarded-For.
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=0, le=65535)
    forwarded_allow_ips: str = "127.0.0.1"
    # The admin JSON API (/api/v1) answers only "Authorization: Bearer <admin_token>";
    # unset, the API is off.
    admin_token: SecretStr | None = None
    # /metrics tells subscriber and digest counts, which are the operator's business,
    # so by default it asks for the admin token as the API does (Prometheus sends it
    # with `authorization: {credentials: ...}`); true opens it to anyone who can reach
    # the port, for a scraper that cannot send a token on a network of its own.
    metrics_public: bool = False
    # Unsubscribe and preferences links work this long after the email (RFC 8058
    # and Gmail ask for at least 60 days); a confirmation link for confirm_hours.
    link_days: int = Field(default=90, ge=60, le=3650)
    confirm_hours: int = Field(default=72, ge=1, le=720)
    # At most one confirmation email per address per this many hours, and at most
    # this many sign-ups per client address per hour.
    confirm_resend_hours: int = Field(default=48, ge=1)
    # Sign-ups never confirmed are deleted this many days after their last email.
    unconfirmed_days: int = Field(default=7, ge=1)
    signups_per_client: int = Field(default=10, ge=1, description="per client address per hour")
    max_papers: int = Field(default=30, ge=1, le=500)
    backlog_days: int = Field(default=8, ge=1, le=365)
    feed_items: int = Field(default=50, ge=1, le=1000)
    topics: tuple[Topic, ...] = ()
    # Chat and webhook channels (Slack, Discord, Matrix, signed JSON webhooks).
    # A channel URL may name any public host; loopback, private and link-local
    # addresses are refused unless this is set (a relay on the institute's own
    # network, or tests), since subscribers type these URLs themselves.
    channel_private_hosts: bool = False
    channel_timeout: float = Field(default=10.0, gt=0, description="per network operation, s")
    channel_failure_limit: int = Field(default=3, ge=1, description="refusals that suspend")
    # hybrid: query filter + BM25F fused with sentence embeddings (the default);
    # lexical: no model needed; semantic: embeddings only. See docs/matching.md.
    matching: Literal["hybrid", "semantic", "lexical"] = "hybrid"
    # Files derived once per machine and kept across runs: the embedding model,
    # quantized (notifier/embedding/). Unwritable, it is rebuilt in memory by
    # each process that embeds, which only costs start-up time.
    cache_dir: Path = Field(default_factory=user_cache_dir)
    sources: tuple[SourceConfig, ...] = ()
    fetch_timeout: float = Field(default=30.0, gt=0)
    fetch_attempts: int = Field(default=3, ge=1, le=10)
    fetch_backoff: float = Field(default=2.0, ge=0, description="base of exponential backoff, s")
    polite_delay: float = Field(default=1.0, ge=0, description="seconds between requests per host")
    max_listing_bytes: int = Field(default=20_000_000, ge=1_000)
    failure_alert_after: int = Field(default=3, ge=1, description="failures in a row to flag")
    user_agent: str | None = None
    # A subscriber's cadence when they chose none (notifier subscribe --cadence ...).
    # The default, daily at 00:00 UTC, makes a digest due whenever the day's first
    # run happens, which suits cron.
    cadence: Literal["daily", "weekdays", "weekly"] = "daily"
    send_time: str = "00:00"
    timezone: str = "UTC"
    weekday: str = "monday"
    # Processes that compose digests (matching is CPU-bound: one per core).
    compose_workers: int = Field(default=1, ge=1, le=64)
    # notifier run: how often to look for due digests, and the leader's lock.
    compose_every: timedelta = timedelta(minutes=5)
    send_every: timedelta = timedelta(minutes=1)
    misfire_grace: timedelta = timedelta(minutes=10)
    standby_poll: float = Field(default=5.0, gt=0, description="s between a standby's lock tries")

    @field_validator("compose_every", "send_every", "misfire_grace", mode="before")
    @classmethod
    def _intervals(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("templates_dir")
    @classmethod
    def _templates_dir_exists(cls, value: Path | None) -> Path | None:
        # A mistyped path would otherwise fall back to the built-in templates unseen.
        if value is not None and not value.is_dir():
            raise ValueError(f"{str(value)!r} is not a directory: create it or fix the path")
        return value

    @field_validator("send_time")
    @classmethod
    def _valid_send_time(cls, value: str) -> str:
        return f"{parse_send_time(value):%H:%M}"

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("weekday")
    @classmethod
    def _valid_weekday(cls, value: str) -> str:
        return WEEKDAYS[parse_weekday(value)]

    @property
    def default_cadence(self) -> Cadence:
        """Return the cadence of a subscriber who chose none."""
        return Cadence(
            self.cadence,
            parse_send_time(self.send_time),
            self.timezone,
            parse_weekday(self.weekday),
        )

    @field_validator("retry_deadline", mode="before")
    @classmethod
    def _deadline(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @model_validator(mode="after")
    def _dkim_complete(self) -> Settings:
        given = [self.dkim_domain, self.dkim_selector, self.dkim_key_file]
        if any(given) and not all(given):
            raise ValueError("dkim_domain, dkim_selector and dkim_key_file go together")
        return self

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, sources: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
        names = [s.name for s in sources]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return sources

    @field_validator("sender_address")
    @classmethod
    def _valid_sender(cls, address: str) -> str:
        try:
            return validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as e:
            raise ValueError(str(e)) from None

    @field_validator("base_url")
    @classmethod
    def _valid_base_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, token: SecretStr | None) -> SecretStr | None:
        # The token is the whole of the API's authentication: as long as secret_key.
        if token is not None and len(token.get_secret_value().strip()) < 16:
            raise ValueError("too short: use at least 16 random characters")
        return token

    @field_validator("smtp_url")
    @classmethod
    def _valid_smtp_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            _parse_smtp_url(url.get_secret_value())
        return url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read arguments first, then NOTIFIER_* variables, then the TOML file."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def database(self) -> str:
        """Return the database URL, SQLite in the state directory by default."""
        return self.database_url or f"sqlite:///{(self.state_dir / 'notifier.db').resolve()}"

    @property
    def outbox_dir(self) -> Path:
        """Return where .eml files go (dry runs and the demo)."""
        return self.state_dir / "outbox"

    @property
    def journal_dir(self) -> Path:
        """Return where sending runs journal accepted messages (delivery/journal.py)."""
        return self.state_dir / "journal"

    @property
    def feeds_dir(self) -> Path:
        """Return where feeds are written."""
        return self.state_dir / "feeds"

    @property
    def smtp(self) -> SmtpTarget | None:
        """Return the parsed SMTP target, or None when none is configured."""
        if self.smtp_url is None:
            return None
        return _parse_smtp_url(self.smtp_url.get_secret_value())

    @property
    def http_user_agent(self) -> str:
        """Return the User-Agent: who we are and how to reach the operator (arXiv asks for it)."""
        return self.user_agent or (
            f"notifier/{__version__} (+{self.base_url}; mailto:{self.sender_address})"
        )

    @property
    def sender_domain(self) -> str:
        """Return the domain of the sender address (for Message-ID and List-Id)."""
        return self.sender_address.rpartition("@")[2]


def _parse_smtp_url(url: str) -> SmtpTarget:
    """Parse smtp://user:pass@host:port or smtps://..., or raise ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("has no host name")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError:
        raise ValueError("has an invalid port") from None
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=parts.scheme == "smtps",
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from the config file (given, $NOTIFIER_CONFIG or ./notifier.toml).

    Raises ConfigError with one line naming the setting and what is wrong.
    """
    explicit = config_file or (
        Path(os.environ["NOTIFIER_CONFIG"]) if os.environ.get("NOTIFIER_CONFIG") else None
    )
    path = explicit or Path(CONFIG_FILE)
    if explicit is not None and not explicit.is_file():
        raise ConfigError(f"config file {str(explicit)!r} does not exist")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path if path.is_file() else None)

    try:
        return _FromFile(**overrides)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 (byte {e.start}): save it as UTF-8"
        ) from None
    except ValidationError as e:
        error = e.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "settings"
        env = f"NOTIFIER_{str(error['loc'][0]).upper()}" if error["loc"] else "NOTIFIER_*"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"setting '{field}' ({path if path.is_file() else 'no config file'} or {env}): "
            f"{message}"
        ) from None
