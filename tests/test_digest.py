"""Pure digest composition: sections, best section, cap, ledger exclusion, reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.digest import compose
from notifier.match import parse_query
from notifier.models import Paper

T0 = datetime(2026, 3, 11, tzinfo=UTC)
FILLER = " Filler text that does not mention any query term at all, padding the abstract."


def paper(pid: int, title: str, abstract: str = "", age_hours: int = 0) -> Paper:
    seen = T0 - timedelta(hours=age_hours)
    return Paper(
        id=pid,
        key=f"title:{pid}",
        guid=f"urn:notifier:title:{pid}",
        title=title,
        abstract=abstract + FILLER,
        url=f"https://example.org/{pid}",
        first_seen_at=seen,
        updated_at=seen,
    )


QUERIES = [("robots", parse_query("robot OR robots")), ("vision", parse_query("vision"))]
PAPERS = [
    paper(1, "Robot vision", "robot robot vision"),  # both; robots scores higher
    paper(2, "Vision transformers", "vision"),
    paper(3, "A robot arm"),
    paper(4, "Unrelated work on proteins"),
    paper(5, "Vision and robots", "vision vision vision"),  # both; vision scores higher
]


def test_sections_follow_interest_order_and_papers_appear_once_in_their_best_section() -> None:
    content = compose(
        1, "2026-03-11", queries=QUERIES, candidates=PAPERS, already_offered=set()
    ).content
    assert [s.interest for s in content.sections] == ["robots", "vision"]
    by_section = {s.interest: [p.paper_id for p in s.papers] for s in content.sections}
    assert by_section == {"robots": [1, 3], "vision": [5, 2]}
    ids = [p.paper_id for p in content.papers]
    assert len(ids) == len(set(ids))
    also = {p.paper_id: p.also_matches for p in content.papers}
    assert also[1] == ("vision",)
    assert also[5] == ("robots",)
    assert also[3] == ()


def test_papers_within_a_section_are_best_first() -> None:
    content = compose(1, "p", queries=QUERIES, candidates=PAPERS, already_offered=set()).content
    for section in content.sections:
        scores = [p.score for p in section.papers]
        assert scores == sorted(scores, reverse=True)


def test_each_paper_carries_its_reason() -> None:
    content = compose(1, "p", queries=QUERIES, candidates=PAPERS, already_offered=set()).content
    first = content.sections[0].papers[0]
    assert first.reason == "“robot” in title and abstract (2 times)"
    assert first.terms == ("robot",)


def test_cap_keeps_the_best_and_counts_the_rest() -> None:
    composition = compose(
        1, "p", queries=QUERIES, candidates=PAPERS, already_offered=set(), max_papers=2
    )
    content = composition.content
    assert len(content.papers) == 2
    assert content.more == 2
    assert {p.paper_id for p in content.papers} | {o[0] for o in composition.overflow} == {
        1,
        2,
        3,
        5,
    }
    best_two = sorted(
        compose(1, "p", queries=QUERIES, candidates=PAPERS, already_offered=set()).content.papers,
        key=lambda p: -p.score,
    )[:2]
    assert {p.paper_id for p in content.papers} == {p.paper_id for p in best_two}
    assert (
        content.reason == "2 of the 5 recent papers you have not seen matched, 2 more over the cap"
    )


def test_papers_already_offered_are_never_offered_again() -> None:
    content = compose(1, "p", queries=QUERIES, candidates=PAPERS, already_offered={1, 3, 5}).content
    assert [p.paper_id for p in content.papers] == [2]


def test_empty_digest_says_why() -> None:
    nothing = compose(1, "p", queries=QUERIES, candidates=[], already_offered=set()).content
    assert nothing.is_empty
    assert nothing.reason == "no new papers were ingested in the window"
    seen = compose(1, "p", queries=QUERIES, candidates=PAPERS, already_offered={1, 2, 3, 4, 5})
    assert seen.content.reason == "all 5 recent papers were already in earlier digests"
    unmatched = compose(1, "p", queries=QUERIES, candidates=[PAPERS[3]], already_offered=set())
    assert unmatched.content.reason == (
        "none of the 1 recent papers you have not seen matched your interests"
    )


def test_equal_scores_rank_newer_papers_first() -> None:
    older, newer = paper(10, "robot", age_hours=5), paper(11, "robot", age_hours=1)
    content = compose(
        1, "p", queries=QUERIES, candidates=[older, newer], already_offered=set(), max_papers=1
    ).content
    assert [p.paper_id for p in content.papers] == [11]
