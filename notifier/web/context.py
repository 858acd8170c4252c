"""What every web handler works with, built once by notifier.server.make_web_context."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment

from notifier.errors import NotifierError
from notifier.models import OutgoingMessage, Subscriber
from notifier.render.email import NoticeRenderer
from notifier.settings import Settings
from notifier.storage import Storage
from notifier.tokens import LinkTokens
from notifier.web.security import ClientLimiter

if TYPE_CHECKING:
    from notifier.matching import Matching

log = logging.getLogger("notifier.web")


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
    # Slow the first time: the sentence model is quantized and loaded
    # (25-29 s on a loaded machine), so the server starts it in the
    # background (start_preparing) and the preview says so while it runs.
    matching_factory: Callable[[], Matching]
    # Writes one subscriber's private feed now, with this matching; returns the files.
    write_private_feed: Callable[[Subscriber, datetime, Matching], list[Path]]
    _matching: Matching | None = field(default=None, init=False)
    _preparing: threading.Lock = field(default_factory=threading.Lock, init=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False)
    _starting: threading.Lock = field(default_factory=threading.Lock, init=False)
    _started: bool = field(default=False, init=False)
    # One thread embeds the interests written through the web, in order.
    _embedding: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="embed-interests"),
        init=False,
    )
    # Why the last preparation failed, for the preview to say; None when it did not.
    preparation_error: str | None = field(default=None, init=False)

    @property
    def matching(self) -> Matching:
        """Return the matching used for previews, preparing it first if it is not ready."""
        return self.prepare_matching()

    @property
    def matching_ready(self) -> bool:
        """Tell whether the matching is prepared, so using it does not wait."""
        return self._ready.is_set()

    def prepare_matching(self) -> Matching:
        """Build the matching and load its model, once; other callers wait for it."""
        with self._preparing:
            if self._matching is None:
                matching = self.matching_factory()
                if matching.embedder is not None:
                    # Embedding one text loads the model (quantizing it the first time).
                    matching.embedder.embed(["notifier"])
                self._matching = matching
                self.preparation_error = None
                self._ready.set()
            return self._matching

    def start_preparing(self) -> None:
        """Prepare the matching on a background thread, unless that has begun already."""
        with self._starting:
            if self._started or self._ready.is_set():
                return
            self._started = True
        threading.Thread(target=self._prepare_logged, name="prepare-matching", daemon=True).start()

    def embed_interests_soon(self, subscriber: Subscriber | None) -> Future[None] | None:
        """Embed a subscriber's new or changed interests in the background, if the model is
        loaded; otherwise the next compose run embeds them."""
        if subscriber is None or not subscriber.interests or not self.matching_ready:
            return None
        return self._embedding.submit(self._embed_logged, subscriber)

    def embed_pending_soon(self) -> int:
        """Embed every interest without embeddings in the background; return how many there are.

        On the one embedding thread, a batch stored at a time (a subscriber's
        own save waits behind it); while the model is not loaded, the daemon's
        embed job (or `notifier embed`) does it instead.
        """
        from notifier.embedding import shared_embedder

        # Its name only: the model is loaded by prepare_matching, not here.
        embedder = shared_embedder(self.settings.matching, self.settings.cache_dir)
        if embedder is None:
            return 0
        waiting = self.storage.count_interests_to_embed(embedder.model_id)
        if waiting and self.matching_ready:
            self._embedding.submit(self._embed_pending_logged)
        return waiting

    def _embed_pending_logged(self) -> None:
        """Embed the interests that have no embeddings, logging why when that fails."""
        from notifier.matching import embed_pending

        try:
            done = embed_pending(self.storage, self.matching)
            log.info("embedded %d imported interest(s)", done)
        except (NotifierError, OSError) as e:
            log.warning("imported interests wait for the daemon's embed job: %s", e)

    def _embed_logged(self, subscriber: Subscriber) -> None:
        """Embed and store a subscriber's interests, logging why when that fails."""
        from notifier.matching import embed_interests

        try:
            embed_interests(self.storage, self.matching, subscriber)
        except (NotifierError, OSError) as e:
            log.warning("interests of subscriber %d wait for the cycle: %s", subscriber.id, e)

    def wait_for_matching(self, seconds: float) -> bool:
        """Wait up to seconds for the matching to be prepared; tell whether it is."""
        return self._ready.wait(seconds)

    def _prepare_logged(self) -> None:
        """Prepare the matching, logging when it is ready or why it could not be."""
        mode = self.settings.matching
        log.info("preparing the %s matching model in the background; previews wait for it", mode)
        started = time.perf_counter()
        try:
            self.prepare_matching()
        except (NotifierError, OSError) as e:
            self.preparation_error = str(e)
            log.error("could not prepare the %s matching model: %s", mode, e)
            with self._starting:
                self._started = False  # the next preview may try again
            return
        log.info("the %s matching model is ready (%.1f s)", mode, time.perf_counter() - started)
