"""Composition root: the only place that builds I/O objects from Settings."""

from __future__ import annotations

from notifier.delivery import Transport
from notifier.delivery.limits import RateLimit
from notifier.delivery.outbox import OutboxTransport
from notifier.delivery.smtp import SmtpTransport
from notifier.errors import ConfigError
from notifier.ingest.fetch import Fetcher, HostPacer
from notifier.render import make_environment
from notifier.render.email import DkimKey, EmailRenderer, MailIdentity
from notifier.settings import Settings
from notifier.storage import Storage


def open_storage(settings: Settings) -> Storage:
    """Open the database (creating an SQLite file's folder) and apply migrations."""
    storage = Storage(settings.database)
    storage.migrate()
    return storage


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
    return MailIdentity(settings.sender_address, settings.sender_name, settings.base_url, key)


def make_renderer(settings: Settings) -> EmailRenderer:
    """Build the email renderer with the configured templates."""
    return EmailRenderer(make_environment(settings.templates_dir), mail_identity(settings))


def make_transport(settings: Settings) -> Transport:
    """Build one SMTP transport (one connection), or explain how to configure one."""
    target = settings.smtp
    if target is None:
        raise ConfigError(
            "no mail server configured: set NOTIFIER_SMTP_URL (smtp://user:pass@host:port), "
            "or use --dry-run to write the digests to the outbox instead"
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
