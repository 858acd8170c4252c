"""Decide what a listing changes against stored state. Pure: data in, decisions out."""

from __future__ import annotations

from collections.abc import Mapping

from notifier.models import ChangeKind, Listing, PaperChange, PaperData, StoredPaper
from notifier.papers import paper_key


def lookup_keys(paper: PaperData) -> tuple[str, ...]:
    """Return the keys under which a listed paper may already be stored, strongest first."""
    title_key = paper_key(paper.title)
    return (paper.key,) if paper.key == title_key else (paper.key, title_key)


def decide(stored: Mapping[str, StoredPaper], listing: Listing) -> list[PaperChange]:
    """Return one change per listed paper: new, updated (text changed or id learnt) or seen."""
    changes = []
    for paper in listing.papers:
        known = next((stored[k] for k in lookup_keys(paper) if k in stored), None)
        if known is None:
            changes.append(PaperChange(ChangeKind.NEW, paper))
        elif _differs(known, paper):
            changes.append(PaperChange(ChangeKind.UPDATED, paper, known.id))
        else:
            changes.append(PaperChange(ChangeKind.SEEN, paper, known.id))
    return changes


def _differs(known: StoredPaper, paper: PaperData) -> bool:
    """Tell whether the listing carries something the stored paper lacks."""
    # A title-keyed paper that now has an arXiv id is merged into that identity
    # (DESIGN.md invariant 2); a listing without an id never erases a known one.
    gains_id = paper.arxiv_id is not None and known.arxiv_id != paper.arxiv_id
    return gains_id or known.title != paper.title or known.abstract != paper.abstract
