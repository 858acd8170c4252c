"""Pure digest composition: sections, best section, cap, ledger exclusion, reasons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from notifier.digest import compose
from notifier.models import ComposedDigest, Match, Paper

T0 = datetime(2026, 3, 11, tzinfo=UTC)


def paper(pid: int, age_hours: int = 0) -> Paper:
    seen = T0 - timedelta(hours=age_hours)
    return Paper(
        pid,
        f"title:{pid}",
        f"urn:notifier:title:{pid}",
        f"Paper {pid}",
        "Abstract.",
        f"https://example.org/{pid}",
        seen,
        seen,
    )


PAPERS = [paper(i) for i in range(6)]
INTERESTS = ["robots", "vision"]


def m(interest: str, position: int, score: float) -> Match:
    return Match(interest, score, (interest,), f"“{interest}” in title", paper=position)


MATCHES = [
    m("robots", 1, 0.9),
    m("vision", 1, 0.5),  # both: robots is best
    m("vision", 2, 0.6),
    m("robots", 3, 0.7),
    m("robots", 5, 0.55),
    m("vision", 5, 0.8),  # both: vision is best
]


def composed(**kwargs: object) -> ComposedDigest:
    args: dict[str, object] = {
        "interests": INTERESTS,
        "matches": MATCHES,
        "papers": PAPERS,
        "already_offered": set(),
        "candidates": len(PAPERS),
    }
    args.update(kwargs)
    return compose(1, "2026-03-11", **args)  # type: ignore[arg-type]


def test_sections_follow_interest_order_and_papers_appear_once_in_their_best_section() -> None:
    content = composed().content
    assert [s.interest for s in content.sections] == ["robots", "vision"]
    by_section = {s.interest: [p.paper_id for p in s.papers] for s in content.sections}
    assert by_section == {"robots": [1, 3], "vision": [5, 2]}
    also = {p.paper_id: p.also_matches for p in content.papers}
    assert also == {1: ("vision",), 3: (), 5: ("robots",), 2: ()}


def test_each_paper_carries_its_reason_and_score() -> None:
    first = composed().content.sections[0].papers[0]
    assert (first.paper_id, first.score, first.reason) == (1, 0.9, "“robots” in title")


def test_cap_keeps_the_best_and_counts_the_rest() -> None:
    result = composed(max_papers=2)
    assert [p.paper_id for p in result.content.papers] == [1, 5]
    assert result.content.more == 2
    assert [o[0] for o in result.overflow] == [3, 2]
    assert result.content.reason == (
        "2 of the 6 recent papers you have not seen matched, 2 more over the cap"
    )


def test_papers_already_offered_are_never_offered_again() -> None:
    content = composed(already_offered={1, 3, 5}).content
    assert [p.paper_id for p in content.papers] == [2]
    assert content.candidates == 3


def test_empty_digest_says_why() -> None:
    assert composed(matches=[], papers=[], candidates=0).content.reason == (
        "no new papers were ingested in the window"
    )
    nothing_new = composed(matches=[], papers=[], candidates=6)
    assert nothing_new.content.reason == (
        "no paper has arrived since your last digest; the 6 recent papers were matched then"
    )
    seen = composed(already_offered=set(range(6)))
    assert seen.content.reason == "all 6 recent papers were already in earlier digests"
    unmatched = composed(matches=[])
    assert unmatched.content.is_empty
    assert unmatched.content.reason == (
        "none of the 6 recent papers you have not seen matched your interests"
    )


def test_equal_scores_rank_newer_papers_first() -> None:
    papers = [paper(0, age_hours=5), paper(1, age_hours=1)]
    matches = [m("robots", 0, 0.5), m("robots", 1, 0.5)]
    content = composed(matches=matches, papers=papers, candidates=2, max_papers=1).content
    assert [p.paper_id for p in content.papers] == [1]


def test_reasons_are_built_only_for_the_papers_shown() -> None:
    bare = [Match(x.interest, x.score, (), "", x.paper) for x in MATCHES]
    asked: list[tuple[str, int]] = []

    def explain(matches: Sequence[Match]) -> list[Match]:
        asked.extend((x.interest, x.paper) for x in matches)
        return [m(x.interest, x.paper, x.score) for x in matches]

    result = composed(matches=bare, max_papers=2, explain=explain)
    assert asked == [("robots", 1), ("vision", 5)]
    assert [p.reason for p in result.content.papers] == ["“robots” in title", "“vision” in title"]
    assert result.content.papers[0].terms == ("robots",)
    # Papers over the cap are counted and recorded, with a reason that says so.
    assert [(o[0], o[3]) for o in result.overflow] == [
        (3, "matched, over the cap of 2 papers"),
        (2, "matched, over the cap of 2 papers"),
    ]
