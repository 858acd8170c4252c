"""Composition root: the only place that builds I/O objects from Settings."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from notifier.delivery import Transport
from notifier.delivery.limits import RateLimit
from notifier.delivery.outbox import OutboxTransport
from notifier.delivery.smtp import SmtpTransport
from notifier.errors import ConfigError
from notifier.ingest.fetch import Fetcher, HostPacer
from notifier.render import make_environment
from notifier.render.email import DkimKey, EmailRenderer, MailIdentity, NoticeRenderer
from notifier.settings import Settings
from notifier.storage import Storage
from notifier.tokens import LinkTokens


def open_storage(settings: Settings) -> Storage:
    """Open the database (creating an SQLite file's folder) and apply migrations."""
    storage = Storage(settings.database)
    storage.migrate()
    return storage


def upgrade_schema(settings: Settings) -> tuple[str | None, str | None]:
    """Apply pending migrations; return the schema revision before and after."""
    storage = Storage(settings.database)
    try:
        before = storage.schema_revision()
        storage.migrate()
        return before, storage.schema_revision()
    finally:
        storage.close()


def schema_revisions(settings: Settings) -> tuple[str | None, str]:
    """Return the database's schema revision (None before the first) and the newest known."""
    storage = Storage(settings.database)
    try:
        return storage.schema_revision(), Storage.head_revision()
    finally:
        storage.close()


def mail_identity(settings: Settings) -> MailIdentity:
    """Return who digests are from, where their links point, and how they are signed."""
    key = None
    if settings.dkim_key_file is not None:
        try:
            private_key = settings.dkim_key_file.read_bytes()
        except OSError as e:
            raise ConfigError(
                f"cannot read dkim_key_file {str(settings.dkim_key_file)!r}: {e.strerror}"
            ) from None
        assert settings.dkim_domain and settings.dkim_selector
        key = DkimKey(settings.dkim_domain, settings.dkim_selector, private_key)
    return MailIdentity(
        settings.sender_address, settings.sender_name, settings.base_url, link_tokens(settings), key
    )


def secret_key(settings: Settings) -> bytes:
    """Return the key that signs links: the secret_key setting, else state_dir/secret.key.

    The file is created once with a random key, readable by its owner only, so
    a laptop install needs no setup and its links survive restarts. Against
    PostgreSQL a key is never invented: the setting (or a file put there) is required.
    """
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().encode()
        if len(key) < 16:
            raise ConfigError("setting 'secret_key' is too short: use at least 16 characters")
        return key
    path = settings.state_dir / "secret.key"
    if settings.database.startswith("postgresql") and not path.exists():
        # Machines sharing one PostgreSQL do not share a state directory, and a
        # container's is new on every run: a key invented here would sign links no
        # other process accepts, and break every link in emails already sent.
        raise ConfigError(
            "no link-signing key: with PostgreSQL, set NOTIFIER_SECRET_KEY (at least 16 "
            "random characters, the same for every process and machine)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create_key_file(path)
        key = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError(
            f"cannot keep the link-signing key in {str(path)!r}: {e.strerror}; "
            "set NOTIFIER_SECRET_KEY instead"
        ) from None
    if len(key) < 16:
        raise ConfigError(f"{str(path)!r} holds no usable key: delete it to make a new one")
    return key


def _create_key_file(path: Path) -> None:
    """Create path holding a new random key, unless another process creates it first.

    The key is written whole to a private temporary file which is then hard-linked
    into place: `notifier send --workers N` starts N processes at once, and with
    O_EXCL on the real name one of them could read it before its creator had
    written the key (seen in the daily-cycle benchmark as "holds no usable key").
    """
    fd, name = tempfile.mkstemp(prefix=".secret.key.", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp: readable by its owner only
            out.write(secrets.token_hex(32))
        # Another process was first: everyone uses its key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink()


def link_tokens(settings: Settings) -> LinkTokens:
    """Build the signer of confirmation, preferences and unsubscribe links."""
    return LinkTokens(secret_key(settings))


def make_renderer(settings: Settings) -> EmailRenderer:
    """Build the email renderer with the configured templates."""
    return EmailRenderer(make_environment(settings.templates_dir), mail_identity(settings))


def make_notice_renderer(settings: Settings) -> NoticeRenderer:
    """Build the renderer of confirmation and "already subscribed" emails."""
    return NoticeRenderer(
        make_environment(settings.templates_dir), mail_identity(settings), settings.confirm_hours
    )


def make_transport(settings: Settings) -> Transport:
    """Build one SMTP transport (one connection), or explain how to configure one."""
    target = settings.smtp
    if target is None:
        raise ConfigError(
            "no mail server configured: set NOTIFIER_SMTP_URL (smtp://user:pass@host:port), "
            f"or run `notifier digest --dry-run` to write the digests to {settings.outbox_dir}/"
        )
    return SmtpTransport(target, settings.smtp_timeout)


def make_transports(settings: Settings) -> list[Transport]:
    """Build smtp_connections SMTP transports: the connections of one sending process."""
    return [make_transport(settings) for _ in range(settings.smtp_connections)]


def make_rate_limit(settings: Settings) -> RateLimit:
    """Build the send rate shared by a process's connections."""
    return RateLimit(settings.send_rate or None, settings.send_rate_hourly)


def make_outbox(settings: Settings, prefix: str = "") -> Transport:
    """Build the transport that writes .eml files to state/outbox/."""
    return OutboxTransport(settings.outbox_dir, prefix)


def make_fetcher(settings: Settings) -> Fetcher:
    """Build the HTTP fetcher with the configured timeouts, retries and politeness."""
    return Fetcher(
        user_agent=settings.http_user_agent,
        timeout=settings.fetch_timeout,
        attempts=settings.fetch_attempts,
        backoff=settings.fetch_backoff,
        max_bytes=settings.max_listing_bytes,
        pacer=HostPacer(default_interval=settings.polite_delay),
    )
