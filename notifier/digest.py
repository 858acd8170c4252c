"""Compose one subscriber's digest from matched papers. Pure: data in, frozen content out."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from notifier.memo import IdentityMemo
from notifier.models import ComposedDigest, DigestContent, DigestPaper, DigestSection, Match, Paper
from notifier.papers import http_url, normalise_arxiv_id

DEFAULT_MAX_PAPERS = 30


@dataclass(frozen=True, slots=True)
class _Ranked:
    paper: Paper
    best: Match
    others: tuple[Match, ...]


def compose(
    subscriber_id: int,
    period: str,
    *,
    interests: Sequence[str],
    matches: Sequence[Match],
    papers: Sequence[Paper],
    already_offered: Collection[int],
    candidates: int,
    max_papers: int = DEFAULT_MAX_PAPERS,
    explain: Callable[[Sequence[Match]], Sequence[Match]] | None = None,
    tuned: Mapping[str, int] | None = None,
) -> ComposedDigest:
    """Group matched papers by interest, best first, capped at max_papers.

    matches refer to papers by position (Match.paper) in papers: the recent
    papers new to the subscriber (since their last digest). A paper matching
    several interests appears once, in the section of its best match (on a tie,
    the interest listed first), naming the others. Papers already offered to the
    subscriber are skipped; candidates is how many recent papers there are in
    all (the candidate window), papers or not. tuned says how many example
    papers taught each interest that has some, for the digest to say so.
    """
    order = {name: i for i, name in enumerate(interests)}
    by_paper: dict[int, list[Match]] = {}
    for match in matches:
        if papers[match.paper].id not in already_offered:
            by_paper.setdefault(match.paper, []).append(match)
    ranked = []
    for position, found in by_paper.items():
        found.sort(key=lambda m: (-m.score, order[m.interest]))
        ranked.append(_Ranked(papers[position], found[0], tuple(found[1:])))
    ranked.sort(key=lambda r: (-r.best.score, -r.paper.first_seen_at.timestamp(), r.paper.id))
    shown, overflow = ranked[:max_papers], ranked[max_papers:]
    if explain is not None and shown:
        explained = explain([r.best for r in shown])
        shown = [_Ranked(r.paper, m, r.others) for r, m in zip(shown, explained, strict=True)]
    sections = tuple(
        DigestSection(
            name,
            tuple(_digest_paper(r) for r in shown if r.best.interest == name),
            (tuned or {}).get(name, 0),
        )
        for name in interests
        if any(r.best.interest == name for r in shown)
    )
    fresh = len(papers) - (
        sum(1 for p in papers if p.id in already_offered) if already_offered else 0
    )
    return ComposedDigest(
        content=DigestContent(
            subscriber_id=subscriber_id,
            period=period,
            sections=sections,
            more=len(overflow),
            candidates=fresh,
            reason=_reason(candidates, len(papers), fresh, len(shown), len(overflow)),
        ),
        overflow=tuple(
            (
                r.paper.id,
                r.best.interest,
                r.best.score,
                r.best.reason or f"matched, over the cap of {max_papers} papers",
            )
            for r in overflow
        ),
    )


def _digest_paper(ranked: _Ranked) -> DigestPaper:
    """Freeze one ranked paper for the digest, or return the same one frozen before.

    A day's digests show a few hundred papers, each for a handful of reasons
    (reasons are built once per interest and paper), so subscribers shown a paper
    for the same reason share one frozen paper instead of building thousands.
    """
    paper, best = ranked.paper, ranked.best
    also = tuple(m.interest for m in ranked.others)
    key = (id(paper), best.score, best.reason, best.terms, also)
    known = _FROZEN.get(key)
    if known is not None:
        return known
    return _FROZEN.put(key, paper, _freeze(paper, best, also))


def _freeze(paper: Paper, best: Match, also: tuple[str, ...]) -> DigestPaper:
    """Return one paper as a digest shows it, for the reason best gives."""
    return DigestPaper(
        paper_id=paper.id,
        guid=paper.guid,
        title=paper.title,
        abstract=paper.abstract,
        url=paper.url,
        score=best.score,
        reason=best.reason,
        terms=best.terms,
        also_matches=also,
        authors=paper.authors,
        upvotes=paper.meta.get("upvotes"),
        code_url=http_url(paper.meta.get("github")),
        summary=paper.meta.get("ai_summary"),
        # Only an id that reads as one makes links: it is printed into URLs.
        arxiv_id=normalise_arxiv_id(paper.arxiv_id) if paper.arxiv_id else None,
        project_url=http_url(paper.meta.get("project_page")),
    )


_FROZEN: IdentityMemo[DigestPaper] = IdentityMemo(65_536)  # about 20 MB at most


def _reason(candidates: int, new: int, fresh: int, shown: int, overflow: int) -> str:
    """Say in one line why the digest holds what it holds."""
    if candidates == 0:
        return "no new papers were ingested in the window"
    if new == 0:
        return (
            f"no paper has arrived since your last digest; the {candidates} recent papers "
            "were matched then"
        )
    if fresh == 0:
        return f"all {new} recent papers were already in earlier digests"
    if shown == 0:
        return f"none of the {fresh} recent papers you have not seen matched your interests"
    more = f", {overflow} more over the cap" if overflow else ""
    return f"{shown} of the {fresh} recent papers you have not seen matched{more}"
