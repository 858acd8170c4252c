"""What every web handler works with, built once by notifier.app.make_web_context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jinja2 import Environment

from notifier.models import OutgoingMessage
from notifier.render.email import NoticeRenderer
from notifier.settings import Settings
from notifier.storage import Storage
from notifier.tokens import LinkTokens
from notifier.web.security import ClientLimiter

if TYPE_CHECKING:
    from notifier.pipeline import Matching


@dataclass
class WebContext:
    """The web side's settings, storage, signers, mailer and limits."""

    settings: Settings
    storage: Storage
    tokens: LinkTokens
    env: Environment
    notices: NoticeRenderer
    # Sends one confirmation or reminder email; raises a DeliveryError when it cannot.
    send_notice: Callable[[OutgoingMessage], Awaitable[None]]
    clock: Callable[[], datetime]
    signups: ClientLimiter
    previews: ClientLimiter
    # Built on first use: loading the sentence model takes a second.
    matching_factory: Callable[[], Matching]
    _matching: Matching | None = field(default=None, init=False)

    @property
    def matching(self) -> Matching:
        """Return the matching used for previews, building it once."""
        if self._matching is None:
            self._matching = self.matching_factory()
        return self._matching
