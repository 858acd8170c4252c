"""Assemble the web app `notifier serve` runs: the composition root of the web side.

The web package never imports the pipeline; what it needs of it (the private
feed writer, the matching service) is handed in here.
"""

from __future__ import annotations

import functools

import uvicorn

from notifier import clock
from notifier.app import link_tokens, make_notice_renderer, make_outbox, make_transport
from notifier.matching import matching_for
from notifier.models import OutgoingMessage
from notifier.pipeline import build_private_feed
from notifier.render import make_environment
from notifier.settings import Settings
from notifier.storage import Storage
from notifier.web import create_app
from notifier.web.context import WebContext
from notifier.web.security import ClientLimiter


def make_web_context(settings: Settings, storage: Storage) -> WebContext:
    """Build what the web app needs: signers, templates, the notice mailer and limits."""
    smtp_configured = settings.smtp is not None

    async def send_notice(message: OutgoingMessage) -> None:
        # Sign-ups are rare next to digests: one connection per email is plenty.
        transport = (
            make_transport(settings) if smtp_configured else make_outbox(settings, "notice-")
        )
        async with transport:
            await transport.send(message)

    return WebContext(
        settings=settings,
        storage=storage,
        tokens=link_tokens(settings),
        env=make_environment(settings.templates_dir),
        notices=make_notice_renderer(settings),
        send_notice=send_notice,
        clock=clock.now,
        signups=ClientLimiter(settings.signups_per_client, window=3600),
        previews=ClientLimiter(120, window=60),
        matching_factory=lambda: matching_for(settings),
        write_private_feed=functools.partial(build_private_feed, storage, settings),
    )


def make_web_server(
    settings: Settings, storage: Storage, host: str | None = None, port: int | None = None
) -> uvicorn.Server:
    """Build the server of the web side (default address: the web_host and web_port settings)."""
    app = create_app(make_web_context(settings, storage))
    config = uvicorn.Config(
        app,
        host=host or settings.web_host,
        port=settings.web_port if port is None else port,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Our own access log hides the tokens in paths; uvicorn's would print them.
        access_log=False,
        log_config=None,
        server_header=False,
    )
    return uvicorn.Server(config)


def web_server_notes(settings: Settings) -> list[str]:
    """Return the lines `notifier serve` warns with about what the configuration leaves off."""
    notes = []
    if settings.smtp is None:
        notes.append(
            "warning: no mail server configured (NOTIFIER_SMTP_URL): confirmation emails "
            f"go to {settings.outbox_dir}/"
        )
    if settings.admin_token is None:
        off = "the admin API is" if settings.metrics_public else "the admin API and /metrics are"
        notes.append(f"note: {off} off until NOTIFIER_ADMIN_TOKEN is set")
    return notes
