"""Interest matching: query syntax and errors, the index, hybrid scores and reasons."""

from __future__ import annotations

from dataclasses import replace

import pytest

from notifier.demo import seed_papers
from notifier.embedding import shared_embedder
from notifier.errors import QueryError
from notifier.evaluate import with_vectors
from notifier.match import (
    CompiledInterest,
    compile_interest,
    default_params,
    explainer,
    match_interest,
    match_many,
    subscriber_matches,
)
from notifier.paper_index import IndexedPaper, PaperIndex
from notifier.query import Term, parse_query
from notifier.terms import words

LEXICAL = default_params("lexical")
HYBRID = default_params("hybrid")

PAPERS = [
    IndexedPaper(
        1,
        "Offline Reinforcement Learning for Robot Manipulation",
        "We learn manipulation policies from human videos. Robots benefit from large "
        "datasets. Our URL is example.org and training is RLHF-free.",
        ("Sergey Levine", "Chelsea Finn"),
    ),
    IndexedPaper(2, "Reinforcing Language Agents", "Agents reinforced by feedback.", ("A. Lee",)),
    IndexedPaper(3, "A Survey of Robot Learning", "We survey robot learning methods.", ()),
    IndexedPaper(4, "Sim-to-real transfer", "Policies trained in sim-to-real settings.", ()),
]
INDEX = PaperIndex(PAPERS)


def ids(query: str, index: PaperIndex = INDEX) -> set[int]:
    """Return the ids of the papers a query's filter lets through."""
    parsed = parse_query(query)
    assert parsed.include is not None
    allowed = set(index.matching(parsed.include))
    for expr in parsed.exclude:
        allowed -= set(index.matching(expr))
    return {index.papers[i].id for i in allowed}


def test_words_and_phrases_and_boundaries() -> None:
    assert ids("robot manipulation") == {1}
    assert ids("ROBOT") == {1, 3}  # case-insensitive
    assert ids("robo") == set()  # whole words only
    assert ids("RL") == set()  # not inside "URL" or "RLHF"
    assert ids('"robot learning"') == {3}
    assert ids('"learning robot"') == set()  # a phrase matches only as a phrase
    assert ids("sim-to-real") == {4}  # a hyphenated word is a phrase of its parts


def test_or_binds_tighter_than_and_and_parentheses_group() -> None:
    assert ids("offline robot OR agents") == {1}  # offline AND (robot OR agents)
    assert ids("(offline robot) OR agents") == {1, 2}
    assert ids("robot AND survey") == {3}


def test_excluded_terms_always_exclude() -> None:
    assert ids("robot -survey") == {1}
    assert ids('robot NOT "robot learning"') == {1}
    assert ids("(robot OR agents) -(survey OR feedback)") == {1}


def test_prefix_wildcards_and_fields() -> None:
    assert ids("reinforc*") == {1, 2}
    assert ids("title:reinforc*") == {1, 2}
    assert ids("abstract:robots") == {1, 3}  # "robot learning" too: plurals fold
    assert ids("abstract:=robots") == {1}  # "=" asks for the exact form
    assert ids("title:survey") == {3}
    assert ids("abstract:survey") == {3}
    assert ids("author:levine") == {1}
    assert ids('author:"chelsea finn"') == {1}
    assert ids("title:policies") == set()


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ('robot "unclosed phrase', "unclosed quote", 7),
        ("OR robot", "OR needs a term on each side", 1),
        ("robot OR", "OR needs a term on each side", 7),
        ("robot OR OR arm", "OR needs a term on each side", 7),
        ("robot -", "'-' must be followed by a word to exclude", 7),
        ("robot OR -arm", "an excluded term cannot be part of OR", 10),
        ('robot ""', "empty phrase", 7),
        ("(robot OR arm", "unclosed '('", 1),
        ("robot)", "unmatched ')'", 6),
        ("robot AND", "AND needs a term on each side", 7),
        ("re*", "a wildcard needs at least 3 letters before '*'", 1),
        ("ro*bot", "'*' is only allowed at the end of a word", 1),
        ("title:", "'title:' needs a word or phrase", 1),
        ("()", "empty parentheses", 1),
        # Deep enough to exhaust the stack if it were parsed; it fits in a web form's field.
        ("(" * 240 + "a" + ")" * 240, "parentheses nested more than 20 deep", 21),
        ("   ", "the query needs at least one word or phrase to look for", None),
    ],
)
def test_invalid_queries_point_at_the_position(
    query: str, message: str, position: int | None
) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    where = f" at position {position}" if position is not None else ""
    assert str(info.value) == f"query {query!r}: {message}{where}"


def test_an_interest_needs_a_query_or_a_description() -> None:
    with pytest.raises(QueryError, match="needs a query, a description, or both"):
        compile_interest("empty", None, "  ")
    with pytest.raises(QueryError, match="sensitivity must be one of strict, normal, broad"):
        compile_interest("x", "robot", None, "loose")


def test_lexical_reasons_name_the_terms_and_where_they_are() -> None:
    interest = compile_interest("rob", "=robot OR robots manipulation", None)
    [match] = match_interest(INDEX, interest, LEXICAL)
    assert INDEX.papers[match.paper].id == 1
    assert match.terms == ("=robot", "robots", "manipulation")
    assert match.reason == (
        "“robot” in title; “robots” in title and abstract; “manipulation” in title and abstract"
    )


def test_description_words_and_pairs_are_the_lexical_terms() -> None:
    interest = compile_interest("wm", None, "world models, for planning")
    assert Term("world models", ("world", "models")) in interest.description_terms
    assert "for" not in [t.text for t in interest.description_terms]


# -- hybrid scoring with the real embedding model ----------------------------

MEANING_ONLY = IndexedPaper(
    1001,
    "Picking up unfamiliar tools with a five-fingered robotic gripper",
    "A five-fingered robotic gripper picks up and rotates unfamiliar tools; a controller "
    "trained in simulation transfers to a physical arm.",
)
PASSING_MENTION = IndexedPaper(
    1002,
    "Preference optimization for safer chatbots",
    "We align chat assistants with human preferences using pairwise feedback. Unlike "
    "diffusion approaches to text generation, our method is autoregressive and simple, "
    "and improves harmlessness ratings.",
)
ON_TOPIC = IndexedPaper(
    1003,
    "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
    "We represent a robot's visuomotor policy as a conditional denoising diffusion "
    "process over actions and show strong results on manipulation benchmarks.",
)


@pytest.fixture(scope="module")
def hybrid_index() -> PaperIndex:
    """Index 150 seed papers and three crafted ones, with real embeddings."""
    embedder = shared_embedder("hybrid")
    assert embedder is not None
    papers = [IndexedPaper(p.id, p.title, p.abstract) for p in seed_papers()[:150]]
    papers += [MEANING_ONLY, PASSING_MENTION, ON_TOPIC]
    return PaperIndex(papers, embedder.embed([f"{p.title}. {p.abstract}" for p in papers]))


def embedded(interest: CompiledInterest) -> CompiledInterest:
    embedder = shared_embedder("hybrid")
    assert embedder is not None
    return with_vectors(interest, embedder)


def matched_ids(index: PaperIndex, interest: CompiledInterest) -> set[int]:
    return {index.papers[m.paper].id for m in match_interest(index, interest, HYBRID)}


def test_a_paper_relevant_by_meaning_with_no_shared_word_is_found(
    hybrid_index: PaperIndex,
) -> None:
    about = "learning to grasp and manipulate objects with dexterous hands"
    # Broad lets a paper in on meaning alone; a shared word would lift it further.
    interest = embedded(compile_interest("hands", None, about, "broad"))
    content = {t.text for t in interest.description_terms}
    assert not content & set(words(MEANING_ONLY.title + " " + MEANING_ONLY.abstract))
    matches = {
        hybrid_index.papers[m.paper].id: m for m in match_interest(hybrid_index, interest, HYBRID)
    }
    assert 1001 in matches
    assert matches[1001].terms == ()
    assert matches[1001].reason.startswith("close to “")


def test_a_query_delivers_every_paper_it_matches_best_first(hybrid_index: PaperIndex) -> None:
    interest = embedded(compile_interest("diffusion", "diffusion", None))
    matches = match_interest(hybrid_index, interest, HYBRID)
    found = [hybrid_index.papers[m.paper].id for m in matches]
    # Every paper with the word, however weak the evidence: a query is a hard filter.
    parsed = parse_query("diffusion")
    assert parsed.include is not None
    assert len(found) == len(hybrid_index.matching(parsed.include))
    assert 1002 in found  # one passing mention in the abstract is still a match
    assert found.index(1003) < found.index(1002)  # but ranks below the paper about it
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    for level in ("strict", "broad"):  # sensitivity cuts descriptions, not queries
        assert len(match_interest(hybrid_index, replace(interest, sensitivity=level), HYBRID)) == (
            len(found)
        )


def test_a_negated_term_excludes_even_the_best_semantic_match(hybrid_index: PaperIndex) -> None:
    about = "diffusion models used as policies for robot control"
    assert 1003 in matched_ids(hybrid_index, embedded(compile_interest("d", None, about)))
    # Next to a description, a query may hold only exclusions.
    excluding = embedded(compile_interest("d", "-visuomotor", about))
    assert 1003 not in matched_ids(hybrid_index, excluding)
    with pytest.raises(QueryError, match="or a description"):
        compile_interest("d", "-visuomotor", None)


def test_negation_excludes_in_hybrid_mode(hybrid_index: PaperIndex) -> None:
    interest = embedded(
        compile_interest("d", "diffusion -visuomotor", "diffusion models for robot control")
    )
    found = matched_ids(hybrid_index, interest)
    assert 1003 not in found


def test_sensitivity_orders_what_is_matched(hybrid_index: PaperIndex) -> None:
    about = "offline reinforcement learning from fixed datasets"
    found = {
        level: matched_ids(hybrid_index, embedded(compile_interest("o", None, about, level)))
        for level in ("strict", "normal", "broad")
    }
    assert found["strict"] <= found["normal"] <= found["broad"]
    assert len(found["strict"]) < len(found["broad"])


def test_semantic_reason_quotes_the_closest_description_phrase(hybrid_index: PaperIndex) -> None:
    interest = embedded(
        compile_interest(
            "mix", None, "language model alignment, diffusion policies for robot manipulation"
        )
    )
    match = next(
        m
        for m in match_interest(hybrid_index, interest, HYBRID)
        if hybrid_index.papers[m.paper].id == 1003
    )
    assert "close to “diffusion policies for robot manipulation”" in match.reason


def test_batch_matching_finds_and_explains_what_one_at_a_time_matching_does(
    hybrid_index: PaperIndex,
) -> None:
    interests = [
        embedded(compile_interest("hands", None, "robots grasping objects with dexterous hands")),
        embedded(compile_interest("diffusion", "diffusion", None)),
        embedded(compile_interest("video", "video -survey", "video generation")),
    ]
    decisions = list(match_many(hybrid_index, interests, HYBRID, chunk=2))
    excluded = {m.paper for m in match_interest(hybrid_index, interests[1], HYBRID)[:2]}
    bare = subscriber_matches(decisions, exclude=excluded)
    assert all(m.reason == "" for m in bare)
    explained = explainer(hybrid_index, decisions)(bare)
    expected = [
        m
        for interest in interests
        for m in match_interest(hybrid_index, interest, HYBRID)
        if m.paper not in excluded
    ]
    key = lambda m: (m.interest, m.paper)  # noqa: E731
    assert sorted(explained, key=key) == sorted(expected, key=key)
    assert {m.interest for m in explained} == {"hands", "diffusion", "video"}


def test_words_fold_to_their_stems_unless_written_exact() -> None:
    papers = [
        IndexedPaper(1, "World Models for Planning", "Policies learned in a world model."),
        IndexedPaper(2, "A policy benchmark", "One benchmark, many policies."),
    ]
    index = PaperIndex(papers)
    assert ids('"world model"', index) == {1}  # a phrase folds each of its words
    assert ids('="world model"', index) == {1}  # the abstract has the exact form
    assert ids('title:="world model"', index) == set()  # the title says "Models"
    assert ids("benchmarks", index) == {2}
    assert ids("=benchmarks", index) == set()
    assert ids("policy", index) == {1, 2}
    assert ids("policy -=policies", index) == set()  # both say "policies" somewhere
    assert ids("policy -=policy", index) == {1}  # only paper 2 says "policy"


def test_a_query_is_bounded_in_length_and_a_run_of_negations_is_one_exclusion() -> None:
    # Any number of NOTs is read without recursion (a thousand used to raise
    # RecursionError); what follows them is excluded.
    parsed = parse_query("robot " + "NOT " * 100 + "survey")
    assert parsed.exclude and [t.text for t in parsed.terms()] == ["robot"]
    with pytest.raises(QueryError, match="characters is too long; a query may have 500"):
        parse_query("robot " + "NOT " * 990 + "survey")
    with pytest.raises(QueryError, match="'=' asks for one exact form"):
        parse_query("=robot*")


def test_highlighting_marks_every_form_the_query_matched() -> None:
    from notifier.render import highlight

    marked = str(highlight("World Models & world-model planners; Robots, robotic R&D", []))
    assert "<mark>" not in marked
    marked = str(
        highlight(
            "World Models & world-model planners; Robots, robotic R&D",
            ["world model", "robot*", "planner"],
        )
    )
    assert marked == (
        "<mark>World Models</mark> &amp; <mark>world-model</mark> <mark>planners</mark>; "
        "<mark>Robots</mark>, <mark>robotic</mark> R&amp;D"
    )
    assert str(highlight("the robots and one robot", ["=robot"])) == (
        "the robots and one <mark>robot</mark>"
    )


def test_terms_no_paper_holds_share_one_row_so_memory_follows_the_papers() -> None:
    index = PaperIndex(PAPERS)
    found = index.summed([Term("robot", ("robot",)), Term("survey", ("survey",))])
    rows_for_the_papers = index.scores().shape[0]
    for k in range(2000):  # interests that subscribers each wrote in their own words
        absent = [Term(f"zyx{k}", (f"zyx{k}",)), Term(f"zyx{k} qwv", (f"zyx{k}", "qwv"))]
        assert not index.summed(absent).any()
        assert index.matching(absent[0]) == frozenset()
    assert index.scores().shape[0] == rows_for_the_papers
    assert (index.summed([Term("robot", ("robot",)), Term("survey", ("survey",))]) == found).all()
