"""Decide what a listing changes against stored state. Pure: data in, decisions out.

Identity (DESIGN.md invariant 2): a listed paper is the stored paper with the
same key; failing that, the stored paper with the same normalised title that
has no other arXiv id. A title-keyed paper that shows up with an arXiv id is
merged into that id, not duplicated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from notifier.models import ChangeKind, Listing, PaperChange, PaperData, StoredPaper
from notifier.papers import normalise_title, title_hash


def lookup_keys(listing: Listing) -> tuple[set[str], set[str]]:
    """Return the paper keys and title hashes storage must look up to diff a listing."""
    return {p.key for p in listing.papers}, {title_hash(p.title) for p in listing.papers}


def decide(
    by_key: Mapping[str, StoredPaper],
    by_title: Mapping[str, Sequence[StoredPaper]],
    listing: Listing,
) -> list[PaperChange]:
    """Return one change per listed paper: new, updated, seen, or skipped."""
    changes = []
    for paper in listing.papers:
        known = _find(paper, by_key, by_title)
        if known is None:
            # arXiv's replace / replace-cross announce a new version of a paper:
            # one we never saw is not news for anybody.
            kind = ChangeKind.SKIPPED if paper.announce.is_update else ChangeKind.NEW
            changes.append(PaperChange(kind, paper))
            continue
        updates, significant = _updates(known, paper)
        kind = ChangeKind.UPDATED if significant else ChangeKind.SEEN
        changes.append(PaperChange(kind, paper, known.id, updates))
    return changes


def _find(
    paper: PaperData,
    by_key: Mapping[str, StoredPaper],
    by_title: Mapping[str, Sequence[StoredPaper]],
) -> StoredPaper | None:
    """Return the stored paper a listed paper is, if any."""
    if paper.key in by_key:
        return by_key[paper.key]
    for candidate in by_title.get(title_hash(paper.title), ()):
        # Two papers may share a title; one with a different arXiv id is another paper.
        if paper.arxiv_id is None or candidate.arxiv_id is None:
            return candidate
    return None


def _updates(known: StoredPaper, paper: PaperData) -> tuple[dict[str, Any], bool]:
    """Return the stored fields the listing improves, and whether that is a real update.

    A new version, a changed title or abstract, or a learnt arXiv id is an
    update; fresher metadata (upvotes, authors, a first version number) is
    stored quietly.
    """
    updates: dict[str, Any] = {}
    if paper.arxiv_id and known.arxiv_id != paper.arxiv_id:
        updates |= {"key": paper.key, "arxiv_id": paper.arxiv_id}
    newer = paper.version is not None and (
        paper.version > known.version
        if known.version is not None
        # arXiv announcing a replacement is a new version even if we never knew the old one.
        else paper.announce.is_update
    )
    if newer or (paper.version is not None and known.version is None):
        updates["version"] = paper.version
    # Titles can only differ when the arXiv id matched: a new version's new title.
    if normalise_title(paper.title) != normalise_title(known.title):
        updates["title"] = paper.title
        updates["title_key"] = title_hash(paper.title)
    if _better_abstract(known.abstract, paper.abstract, newer):
        updates["abstract"] = paper.abstract
    merged_meta = {**known.meta, **paper.meta}
    if merged_meta != dict(known.meta):
        updates["meta"] = merged_meta
    if paper.authors and paper.authors != known.authors:
        updates["authors"] = paper.authors
    if paper.url and not known.url:
        updates["url"] = paper.url
    if paper.published_at and not known.published_at:
        updates["published_at"] = paper.published_at
    quiet = {"meta", "authors", "url", "published_at"} | ({"version"} if not newer else set())
    return updates, bool(set(updates) - quiet)


def _better_abstract(stored: str, listed: str, newer_version: bool) -> bool:
    """Tell whether the listed abstract should replace the stored one.

    Sources disagree on abstracts (a snapshot truncates, a title-only page has
    none), so only a new version, a first abstract, or a longer different text
    replaces it; otherwise two sources would overwrite each other on every poll.
    """
    if not listed or _fold(listed) == _fold(stored):
        return False
    return newer_version or not stored or len(listed) >= len(stored)


def _fold(text: str) -> str:
    """Return text in a form that ignores case and spacing."""
    return " ".join(text.casefold().split())
