"""Feeds: the all-papers, topic and private subscriber feeds, written as RSS and Atom files."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from notifier.app import link_tokens
from notifier.citations import bibtex, paper_citation, ris
from notifier.errors import ConfigError, QueryError
from notifier.feedback import taught
from notifier.files import write_atomic
from notifier.match import CompiledInterest, match_interest
from notifier.matching import Matching, compile_interests, matching_for, paper_index
from notifier.models import Interest, Match, Paper, Subscriber
from notifier.paper_index import PaperIndex
from notifier.papers import arxiv_links, by_any, http_url
from notifier.render.feed import (
    FEED_STATUSES,
    FeedItem,
    FeedMeta,
    build_feed,
    build_json_feed,
    feed_url,
    private_feed_name,
)
from notifier.render.links import paper_links
from notifier.settings import Settings
from notifier.storage.protocols import FeedStore
from notifier.tokens import LinkTokens

log = logging.getLogger("notifier.feeds")

# How many of the newest papers topic and private feeds choose from.
FEED_POOL = 1000


def build_feeds(
    storage: FeedStore, settings: Settings, now: datetime, matching: Matching | None = None
) -> list[Path]:
    """Write the all-papers, topic and private subscriber feeds; return the files written."""
    matching = matching or matching_for(settings)
    tokens = _tokens(settings)
    pool = storage.latest_papers(FEED_POOL)
    index = paper_index(storage, matching, pool)
    root = settings.feeds_dir
    written = _write_feed(
        root,
        "all",
        _meta(settings, "all", "notifier: all new papers", "Every new paper notifier has seen."),
        [(p, _item(p, "")) for p in pool[: settings.feed_items]],
        now,
    )
    for topic in settings.topics:
        interest = Interest(topic.name, topic.query, topic.about, topic.sensitivity)
        name = f"topics/{topic.slug}"
        written += _write_feed(
            root,
            name,
            _meta(settings, name, f"notifier: {topic.name}", f"New papers on {topic.name}."),
            [
                (paper, _item(paper, f"{match.interest}: {match.reason}"))
                for paper, match in _matching(
                    index,
                    pool,
                    compile_interests(storage, matching, [interest]),
                    matching,
                    settings.feed_items,
                )
            ],
            now,
        )
    keep = set()
    # A paused or suspended subscriber stops getting email, not their feed.
    for subscriber in (s for s in storage.subscribers() if s.status in FEED_STATUSES):
        keep.add(subscriber.feed_token)
        written += _write_private_feed(
            storage,
            settings,
            subscriber,
            matching=matching,
            pool=pool,
            index=index,
            now=now,
            tokens=tokens,
        )
    # A subscriber who left must not keep a live private feed. Dot files are the
    # temporary files of a concurrent run (two run-once at once) mid-write.
    for stale in (root / "subscribers").glob("[!.]*.*"):
        if stale.stem not in keep:
            stale.unlink(missing_ok=True)
    return written


def build_private_feed(
    storage: FeedStore,
    settings: Settings,
    subscriber: Subscriber,
    now: datetime,
    matching: Matching | None = None,
) -> list[Path]:
    """Write one subscriber's private feed now; return the files written.

    The web side calls it when a feed is asked for before the next build_feeds
    (right after confirming) or has fallen behind the papers stored.
    """
    matching = matching or matching_for(settings)
    pool = storage.latest_papers(FEED_POOL)
    index = paper_index(storage, matching, pool)
    return _write_private_feed(
        storage,
        settings,
        subscriber,
        matching=matching,
        pool=pool,
        index=index,
        now=now,
        tokens=_tokens(settings),
    )


def _tokens(settings: Settings) -> LinkTokens | None:
    """Return what signs a private feed's paper links, or None when no key is configured.

    Against PostgreSQL a key is never invented (app.secret_key): feeds are then
    written without the links rather than not at all.
    """
    try:
        return link_tokens(settings)
    except ConfigError as e:
        log.warning("private feeds carry no rating links: %s", e)
        return None


def _write_private_feed(
    storage: FeedStore,
    settings: Settings,
    subscriber: Subscriber,
    *,
    matching: Matching,
    pool: Sequence[Paper],
    index: PaperIndex,
    now: datetime,
    tokens: LinkTokens | None,
) -> list[Path]:
    """Write the private feed of one subscriber from an indexed pool of papers.

    The interests are taught by their examples and muted authors are left out,
    as in the digests; each item links to rating it (_week_of says when the
    links are dated).
    """
    examples = storage.examples_for([subscriber.id])
    try:
        interests = [
            taught(c, examples.get(i.interest_id or 0, ()))
            for i, c in zip(
                subscriber.interests,
                compile_interests(storage, matching, subscriber.interests),
                strict=True,
            )
        ]
    except QueryError:
        interests = []
    muted = storage.muted_keys([subscriber.id]).get(subscriber.id, frozenset())
    entries = [
        (
            paper,
            _item(
                paper,
                f"{match.interest}: {match.reason}",
                _actions(tokens, settings, subscriber, paper, match.interest, _week_of(now)),
            ),
        )
        for paper, match in _matching(index, pool, interests, matching, settings.feed_items, muted)
    ]
    title = f"notifier: papers for {subscriber.name or subscriber.email}"
    name = private_feed_name(subscriber.feed_token)
    return _write_feed(
        settings.feeds_dir,
        name,
        _meta(settings, name, title, "New papers matching your interests."),
        entries,
        now,
    )


def _actions(  # noqa: PLR0917
    tokens: LinkTokens | None,
    settings: Settings,
    subscriber: Subscriber,
    paper: Paper,
    interest: str,
    dated: float,
) -> tuple[tuple[str, str], ...]:
    """Return a private feed item's rating links, dated as given (see _week_of)."""
    if tokens is None:
        return ()
    links = paper_links(
        tokens,
        settings.base_url,
        subscriber.manage_token,
        paper.id,
        interest,
        bool(paper.authors),
        at=dated,
    )
    found = [("More like this", links.more), ("Not for me", links.less)]
    if links.mute:
        found.append(("Mute an author", links.mute))
    return tuple(found)


def _week_of(now: datetime) -> float:
    """Return the start of now's week (Unix time): when a private feed's links are dated.

    Dated by the build, the links would change every build and an unchanged feed
    would not rebuild byte for byte; dated by the paper's first sight, an old
    paper's links would have expired already. By the week, a rebuild changes
    them at most weekly and each lives at least link_days less a week.
    """
    week = 7 * 86400
    return float(int(now.timestamp()) // week * week)


def _write_feed(
    root: Path,
    name: str,
    meta: FeedMeta,
    entries: Sequence[tuple[Paper, FeedItem]],
    now: datetime,
) -> list[Path]:
    """Write one feed's files atomically; return their paths.

    RSS, Atom and JSON Feed, and its papers as BibTeX and RIS for reference
    managers (the same papers, in the same order).
    """
    items = [item for _, item in entries]
    rss, atom = build_feed(meta, items, empty_date=now)
    documents = [(".rss", rss), (".atom", atom), (".json", build_json_feed(meta, items))]
    citations = [paper_citation(paper) for paper, _ in entries]
    try:
        documents += [(".bib", bibtex(citations).encode()), (".ris", ris(citations).encode())]
    except Exception:  # a writer's bug must not cost the feed itself
        log.exception("could not write the citations of feed %s", name)
    written = []
    for suffix, data in documents:
        path = root / f"{name}{suffix}"
        write_atomic(path, data)
        written.append(path)
    return written


def _meta(settings: Settings, name: str, title: str, description: str) -> FeedMeta:
    """Return the metadata of the feed published at feeds/<name>."""
    url = feed_url(settings.base_url, name)
    return FeedMeta(
        feed_id=f"{url}.atom",
        title=title,
        description=description,
        link=settings.base_url,
        self_base=url,
        author=settings.sender_name,
    )


def _item(paper: Paper, reason: str, actions: tuple[tuple[str, str], ...] = ()) -> FeedItem:
    """Return the feed entry of a paper, with why it was picked when there is a reason.

    Its links follow the text: arXiv abstract and PDF, code and project page
    where known, then actions (a private feed's rating links).
    """
    summary = f"Why: {reason}. {paper.abstract}" if reason else paper.abstract
    return FeedItem(
        guid=paper.guid,
        title=paper.title,
        link=paper.url,
        summary=summary,
        published=paper.first_seen_at,
        updated=paper.updated_at,
        actions=(*_paper_links(paper), *actions),
    )


def _paper_links(paper: Paper) -> tuple[tuple[str, str], ...]:
    """Return the links a reader wants besides the paper's own: arXiv, PDF, code, project."""
    found: list[tuple[str, str]] = []
    if arxiv := arxiv_links(paper.arxiv_id):
        found += [("arXiv", arxiv[0]), ("PDF", arxiv[1])]
    for label, key in (("Code", "github"), ("Project page", "project_page")):
        if url := http_url(paper.meta.get(key)):
            found.append((label, url))
    return tuple(found)


def _matching(  # noqa: PLR0917
    index: PaperIndex,
    pool: Sequence[Paper],
    interests: Sequence[CompiledInterest],
    matching: Matching,
    limit: int,
    muted: frozenset[str] = frozenset(),
) -> list[tuple[Paper, Match]]:
    """Return the newest papers matching any interest, each with its best match.

    Papers by a muted author (keys of papers.author_key) are left out.
    """
    best: dict[int, Match] = {}
    for interest in interests:
        for match in match_interest(index, interest, matching.params):
            if by_any(pool[match.paper].authors, muted):
                continue
            if match.paper not in best or match.score > best[match.paper].score:
                best[match.paper] = match
    newest_first = sorted(best)[:limit]  # positions follow the pool's newest-first order
    return [(pool[i], best[i]) for i in newest_first]
