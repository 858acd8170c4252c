"""Channels: compose the topics' digests, then post every due digest to its channels."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifier.app import link_tokens
from notifier.chat import ChannelDigest, message_for
from notifier.delivery.webhooks import (
    GONE,
    MAX_RETRY_AFTER,
    PostError,
    PostReply,
    WebhookPoster,
    channel_request,
    refusal,
)
from notifier.digest import compose
from notifier.errors import ConfigError, QueryError
from notifier.match import match_interest
from notifier.matching import Matching, candidate_window, compile_interests, paper_index
from notifier.models import (
    ChannelPost,
    ChannelStatus,
    DigestContent,
    Interest,
    Paper,
)
from notifier.paper_index import PaperIndex
from notifier.pipeline.send import RetryPolicy
from notifier.schedule import last_slot
from notifier.settings import Settings, Topic
from notifier.storage.protocols import ChannelStore
from notifier.tokens import LinkTokens, Purpose

log = logging.getLogger("notifier.channels")

# Posts leased at a time, and posted at once. Each is one HTTP request of at most
# 4 x channel_timeout, so a batch ends well within a lease.
POST_BATCH = 20
POST_LANES = 4


@dataclass
class PostReport:
    """What a posting run did: posts sent, put back, and given up with their reasons."""

    sent: int = 0
    retried: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (channel label, reason)
    unconfirmed: list[tuple[str, str]] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)  # channel labels

    def describe(self) -> str:
        """Return the run in one line."""
        parts = [f"{self.sent} posted"]
        if self.retried:
            parts.append(f"{self.retried} to retry")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.unconfirmed:
            parts.append(f"{len(self.unconfirmed)} unconfirmed")
        if self.suspended:
            parts.append(f"channels suspended: {', '.join(self.suspended)}")
        return ", ".join(parts)


def compose_topic_digests(
    storage: ChannelStore, settings: Settings, now: datetime, matching: Matching
) -> int:
    """Compose the due digest of each configured topic that has a channel; return how many.

    A topic's digest follows the default schedule (send_time, timezone,
    cadence). It offers the topic's matching papers of the candidate window
    not offered before (the topic's own ledger), best first, up to max_papers;
    one digest per topic and period, like a subscriber's.
    """
    with_channels = {c.topic for c in storage.channels_of() if c.status is ChannelStatus.ACTIVE}
    topics = [t for t in settings.topics if t.slug in with_channels]
    slot = last_slot(settings.default_cadence, now)
    if not topics or slot is None:
        return 0
    due = [t for t in topics if not storage.has_topic_digest(t.slug, slot.period)]
    if not due:
        return 0
    papers = storage.recent_papers(since=now - candidate_window(settings), until=now)
    index = paper_index(storage, matching, papers)
    made = 0
    for topic in due:
        try:
            content, offered = _topic_content(
                storage, settings, matching, topic, slot.period, papers, index
            )
        except QueryError as e:  # a config checked at load time; a parser change could still
            log.error("topic %s: %s", topic.slug, e)
            continue
        if storage.record_topic_digest(topic.slug, content, offered, now) is not None:
            made += 1
    return made


def _topic_content(  # noqa: PLR0917
    storage: ChannelStore,
    settings: Settings,
    matching: Matching,
    topic: Topic,
    period: str,
    papers: list[Paper],
    index: PaperIndex,
) -> tuple[DigestContent, list[int]]:
    """Return a topic's digest of a period and the papers it offers (index is over papers)."""
    interest = Interest(topic.name, topic.query, topic.about, topic.sensitivity)
    compiled = compile_interests(storage, matching, [interest])[0]
    matches = match_interest(index, compiled, matching.params)
    offered = storage.topic_offered(topic.slug, [papers[m.paper].id for m in matches])
    composed = compose(
        0,
        period,
        interests=[topic.name],
        matches=matches,
        papers=papers,
        already_offered=offered,
        candidates=len(papers),
        max_papers=settings.max_papers,
    )
    content = composed.content
    return content, [p.paper_id for p in content.papers] + [o[0] for o in composed.overflow]


async def post_channels(
    storage: ChannelStore,
    settings: Settings,
    clock: Callable[[], datetime],
    *,
    poster: WebhookPoster | None = None,
    stop: asyncio.Event | None = None,
) -> PostReport:
    """Post every post that is due to its channel.

    Posts are queued with their digests, when composed. A run takes what was
    due when it started: a post put back (a 429, a 5xx) waits for a later run.
    Posts are leased like digests, so several senders can run at once; a post
    whose worker died is taken over when its lease expires, and posted again
    with the same idempotency key only where the service can tell a repeat
    (ChannelKind.deduplicates). Setting stop finishes the posts under way and
    gives the rest of the batch back.
    """
    started = clock()
    policy = RetryPolicy.from_settings(settings)
    # A random part: two containers can share a host name and a process id.
    worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    run = _PostRun(storage, settings, clock, policy, _tokens(settings), worker)
    poster = poster or WebhookPoster(
        timeout=settings.channel_timeout, private_hosts=settings.channel_private_hosts
    )
    lanes = asyncio.Semaphore(POST_LANES)

    async def one(post: ChannelPost) -> None:
        async with lanes:
            if stop is not None and stop.is_set():
                return
            try:
                await run.post(poster, post)
            except Exception as e:  # one post's bug must not stop the others
                log.exception("posting %d to channel %d failed", post.id, post.channel.id)
                if post.id in run.started:
                    return  # it may have gone out: its lease runs out, then in_doubt decides
                when = policy.next_attempt(post.attempts + 1, clock())
                await run.retry(post, f"unexpected {type(e).__name__}: {e}", when, False)

    async def claim() -> list[ChannelPost]:
        if stop is not None and stop.is_set():
            return []
        return await asyncio.to_thread(
            storage.claim_posts, worker, POST_BATCH, clock(), policy.lease, started
        )

    claimed = await claim()
    if not claimed:
        return run.report  # nothing due: no client, no TLS set-up
    async with poster:
        while claimed:
            await asyncio.gather(*(one(p) for p in claimed))
            unstarted = [p.id for p in claimed if p.id not in run.started]
            if stop is not None and stop.is_set() and unstarted:
                await asyncio.to_thread(storage.release_posts, worker, unstarted)
            claimed = await claim()
    return run.report


def channel_digest(
    post: ChannelPost, settings: Settings, tokens: LinkTokens | None
) -> ChannelDigest:
    """Return a post's digest as its message shows it: heading and the page with all of it."""
    content = post.content
    if post.channel.topic is not None:
        name = next((t.name for t in settings.topics if t.slug == post.channel.topic), None)
        title = f"notifier: {name or post.channel.topic}"
        url: str | None = f"{settings.base_url}/topics/{post.channel.topic}/{content.period}"
    else:
        count = content.paper_count + content.more
        title = f"notifier: {count} new paper{'s' if count != 1 else ''} for your interests"
        url = None
        if tokens is not None and post.message_id:
            # Dated by the post, so every attempt sends the same bytes.
            at = post.created_at.timestamp()
            token = tokens.make_message(Purpose.VIEW, post.message_id, at)
            url = f"{settings.base_url}/digest/{token}"
    return ChannelDigest(
        title=title,
        period=content.period,
        sections=content.sections,
        more=content.more,
        reason=content.reason,
        url=url,
        key=post.key,
    )


@dataclass
class _PostRun:
    """One posting run: its worker name, what it needs, and what it did."""

    storage: ChannelStore
    settings: Settings
    clock: Callable[[], datetime]
    policy: RetryPolicy
    tokens: LinkTokens | None
    worker: str
    report: PostReport = field(default_factory=PostReport)
    started: set[int] = field(default_factory=set)  # posts whose request may have gone out

    async def post(self, poster: WebhookPoster, post: ChannelPost) -> None:
        """Make one attempt at a post and record its outcome."""
        channel, now = post.channel, self.clock()
        may_have_arrived = post.in_doubt or post.unknown_since is not None
        if post.in_doubt and not channel.kind.deduplicates:
            await self._unconfirmed(
                post,
                f"the sender stopped while posting; {channel.kind} cannot tell a repeat, "
                "so it is not posted again",
            )
            return
        window = channel.kind.keeps_keys
        if may_have_arrived and window is not None and now - post.created_at > window:
            await self._unconfirmed(
                post, f"{channel.kind} forgets a repeat's key after {window}: not posted again"
            )
            return
        if now - post.created_at > self.settings.retry_deadline:
            why = f"gave up after {post.attempts} attempts over {self.settings.retry_deadline}"
            # Not the channel's refusal: a long outage, or posts waiting out a suspension.
            await self._failed(post, why, suspend=False, counts=False, arrived=may_have_arrived)
            return
        message = message_for(channel.kind, channel_digest(post, self.settings, self.tokens))
        request = channel_request(channel, message.body, post.key, now)
        try:
            pinned = await poster.pin(request)  # nothing is sent if this fails
        except PostError as e:
            await self._lost(post, e, may_have_arrived)
            return
        if not await asyncio.to_thread(
            self.storage.start_post, post.id, self.worker, self.clock(), self.policy.lease
        ):
            return  # the lease expired and another worker has it
        self.started.add(post.id)
        try:
            reply = await poster.send(pinned, now)
        except PostError as e:
            await self._lost(post, e, may_have_arrived)
            return
        await self._answered(post, reply, may_have_arrived)

    async def _lost(self, post: ChannelPost, error: PostError, may_have_arrived: bool) -> None:
        """Record an attempt that got no answer."""
        now = self.clock()
        if error.refused:
            await self._failed(post, str(error), suspend=True, arrived=may_have_arrived)
        elif error.may_have_arrived and not post.channel.kind.deduplicates:
            await self._unconfirmed(
                post,
                f"{error}; {post.channel.kind} cannot tell a repeat, so it is not posted again",
            )
        else:
            unknown = error.may_have_arrived or may_have_arrived
            await self.retry(
                post, str(error), self.policy.next_attempt(post.attempts + 1, now), unknown
            )

    async def _answered(self, post: ChannelPost, reply: PostReply, may_have_arrived: bool) -> None:
        """Record an attempt the service answered."""
        now, status = self.clock(), reply.status
        if 200 <= status < 300:
            await asyncio.to_thread(self.storage.finish_post_sent, post.id, self.worker, now)
            self.report.sent += 1
            return
        why = refusal(post.channel, reply)
        if status == 429 and reply.retry_after is not None:
            wait = min(reply.retry_after, MAX_RETRY_AFTER)
            await self.retry(post, why, now + timedelta(seconds=wait), may_have_arrived)
        elif status in (408, 425, 429) or status >= 500:
            await self.retry(
                post, why, self.policy.next_attempt(post.attempts + 1, now), may_have_arrived
            )
        else:
            await self._failed(post, why, suspend=status in GONE, arrived=may_have_arrived)

    async def retry(self, post: ChannelPost, why: str, when: datetime, unknown: bool) -> None:
        """Put a post back for a later run."""
        await asyncio.to_thread(
            self.storage.finish_post_retry,
            post.id,
            self.worker,
            why,
            when,
            unknown=unknown,
            now=self.clock(),
        )
        self.report.retried += 1

    async def _unconfirmed(self, post: ChannelPost, why: str) -> None:
        """Give up on a post that may have arrived; not the channel's refusal."""
        await self._failed(post, why, suspend=False, counts=False, arrived=True)

    async def _failed(
        self, post: ChannelPost, why: str, *, suspend: bool, counts: bool = True, arrived: bool
    ) -> None:
        """Give a post up; suspend its channel when the service says it is gone.

        arrived: an earlier attempt may have arrived, so it ends unconfirmed.
        """
        suspended = await asyncio.to_thread(
            functools.partial(
                self.storage.finish_post_failed,
                post.id,
                self.worker,
                why,
                suspend=suspend,
                failure_limit=self.settings.channel_failure_limit,
                now=self.clock(),
                counts=counts,
                unconfirmed=arrived,
            )
        )
        (self.report.unconfirmed if arrived else self.report.failed).append(
            (post.channel.label, why)
        )
        if suspended:
            self.report.suspended.append(post.channel.label)
            log.warning("channel %d (%s) suspended: %s", post.channel.id, post.channel.label, why)


def _tokens(settings: Settings) -> LinkTokens | None:
    """Return what signs the digest page links, or None when no key is configured."""
    try:
        return link_tokens(settings)
    except ConfigError as e:
        log.warning("channel messages carry no link to the whole digest: %s", e)
        return None
