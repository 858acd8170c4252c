"""Compose one subscriber's digest from candidate papers. Pure: data in, frozen content out."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from notifier.match import Query, best_match
from notifier.models import DigestContent, DigestPaper, DigestSection, Match, Paper

DEFAULT_MAX_PAPERS = 30


@dataclass(frozen=True, slots=True)
class Composition:
    """A composed digest and the matched papers left out by the cap."""

    content: DigestContent
    # (paper id, interest, score, reason) of each paper counted in "and N more".
    overflow: tuple[tuple[int, str, float, str], ...]


@dataclass(frozen=True, slots=True)
class _Ranked:
    paper: Paper
    best: Match
    others: tuple[Match, ...]


def compose(
    subscriber_id: int,
    period: str,
    *,
    queries: Sequence[tuple[str, Query]],
    candidates: Sequence[Paper],
    already_offered: Collection[int],
    max_papers: int = DEFAULT_MAX_PAPERS,
) -> Composition:
    """Group new matching papers by interest, best first, capped at max_papers.

    A paper matching several interests appears once, in the section of its best
    match, naming the others. Papers already offered to the subscriber are skipped.
    """
    fresh = [p for p in candidates if p.id not in already_offered]
    ranked: list[_Ranked] = []
    for paper in fresh:
        if found := best_match(queries, paper.title, paper.abstract):
            ranked.append(_Ranked(paper, *found))
    ranked.sort(key=lambda r: (-r.best.score, -r.paper.first_seen_at.timestamp(), r.paper.id))
    shown, overflow = ranked[:max_papers], ranked[max_papers:]
    sections = tuple(
        DigestSection(name, tuple(_digest_paper(r) for r in shown if r.best.interest == name))
        for name, _ in queries
        if any(r.best.interest == name for r in shown)
    )
    return Composition(
        content=DigestContent(
            subscriber_id=subscriber_id,
            period=period,
            sections=sections,
            more=len(overflow),
            candidates=len(fresh),
            reason=_reason(len(candidates), len(fresh), len(shown), len(overflow)),
        ),
        overflow=tuple(
            (r.paper.id, r.best.interest, r.best.score, r.best.reason) for r in overflow
        ),
    )


def _digest_paper(ranked: _Ranked) -> DigestPaper:
    """Freeze one ranked paper for the digest."""
    paper, best = ranked.paper, ranked.best
    return DigestPaper(
        paper_id=paper.id,
        guid=paper.guid,
        title=paper.title,
        abstract=paper.abstract,
        url=paper.url,
        score=best.score,
        reason=best.reason,
        terms=best.terms,
        also_matches=tuple(m.interest for m in ranked.others),
        authors=paper.authors,
        upvotes=paper.meta.get("upvotes"),
        code_url=paper.meta.get("github"),
        summary=paper.meta.get("ai_summary"),
    )


def _reason(candidates: int, fresh: int, shown: int, overflow: int) -> str:
    """Say in one line why the digest holds what it holds."""
    if candidates == 0:
        return "no new papers were ingested in the window"
    if fresh == 0:
        return f"all {candidates} recent papers were already in earlier digests"
    if shown == 0:
        return f"none of the {fresh} recent papers you have not seen matched your interests"
    more = f", {overflow} more over the cap" if overflow else ""
    return f"{shown} of the {fresh} recent papers you have not seen matched{more}"
