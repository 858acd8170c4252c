"""Interest queries: syntax, errors with positions, matching rules and reasons."""

from __future__ import annotations

import pytest

from notifier.errors import QueryError
from notifier.match import best_match, match_paper, parse_query

TITLE = "Offline Reinforcement Learning for Robot Manipulation"
ABSTRACT = (
    "We learn manipulation policies from human videos. Robots benefit from large datasets. "
    "Our URL is example.org and we use RLHF-free training."
)


def matches(query: str, title: str = TITLE, abstract: str = ABSTRACT) -> bool:
    return match_paper(parse_query(query), "i", title, abstract) is not None


def test_all_words_must_appear() -> None:
    assert matches("robot manipulation")
    assert not matches("robot diffusion")


def test_matching_ignores_case() -> None:
    assert matches("ROBOT offline")


def test_word_boundaries_are_respected() -> None:
    assert not matches("robo")  # no prefix match
    assert not matches("RL")  # not inside "URL" or "RLHF"
    assert matches("robots")


def test_phrase_matches_only_as_a_phrase() -> None:
    assert matches('"reinforcement learning"')
    assert not matches('"learning reinforcement"')
    assert not matches('"robot videos"')  # both words present, not adjacent
    assert matches('"offline reinforcement-learning"', title="Offline reinforcement-learning")


def test_or_accepts_either_side() -> None:
    assert matches("diffusion OR manipulation")
    assert not matches("diffusion OR transformer")
    assert matches("offline diffusion OR robot")  # offline AND (diffusion OR robot)
    assert not matches("survey diffusion OR robot")


def test_excluded_term_always_excludes() -> None:
    assert not matches("robot -videos")
    assert not matches('robot OR manipulation -"human videos"')
    assert matches("robot -survey")


def test_match_explains_itself_and_title_hits_weigh_more() -> None:
    result = match_paper(parse_query("robot OR robots manipulation"), "rob", TITLE, ABSTRACT)
    assert result is not None
    assert result.terms == ("robot", "robots", "manipulation")
    assert result.reason == (
        "“robot” in title; “robots” in abstract; “manipulation” in title and abstract"
    )
    in_title = match_paper(parse_query("robot"), "a", TITLE, "")
    in_abstract = match_paper(parse_query("robots"), "a", "", ABSTRACT)
    assert in_title is not None and in_abstract is not None
    assert in_title.score > in_abstract.score


def test_best_match_prefers_the_higher_score_and_names_the_others() -> None:
    queries = [("videos", parse_query("videos")), ("robots", parse_query("robot"))]
    found = best_match(queries, TITLE, ABSTRACT)
    assert found is not None
    best, others = found
    assert best.interest == "robots"
    assert [m.interest for m in others] == ["videos"]
    assert best_match(queries, "Unrelated", "Nothing here") is None


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ('robot "unclosed phrase', "unclosed quote", 7),
        ("OR robot", "OR needs a term on each side", 1),
        ("robot OR", "OR needs a term on each side", 7),
        ("robot OR OR arm", "OR needs a term on each side", 10),
        ("robot -", "'-' must be followed by a word to exclude", 7),
        ("robot OR -arm", "an excluded term cannot be part of OR", 10),
        ('robot ""', "empty phrase", 7),
        ("-robot", "the query needs at least one word or phrase to look for", None),
        ("   ", "the query needs at least one word or phrase to look for", None),
    ],
)
def test_invalid_queries_point_at_the_position(
    query: str, message: str, position: int | None
) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert message in str(info.value)
    where = f" at position {position}" if position is not None else ""
    assert str(info.value) == f"query {query!r}: {message}{where}"
