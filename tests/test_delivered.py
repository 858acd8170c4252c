"""A digest holds what the subscriber asked for: every paper a query matches, words folded."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from notifier import pipeline
from notifier.demo import seed_papers
from notifier.match import compile_interest, default_params, match_interest
from notifier.models import Interest
from notifier.paper_index import IndexedPaper, PaperIndex
from notifier.settings import Settings
from notifier.storage import Storage
from tests.conftest import JOINED, NOW, Cli, seed_bytes

SOURCES = Path(__file__).resolve().parent / "data" / "sources"


def _ingest_seeds(storage: Storage) -> None:
    """Ingest the five bundled listings, a day apart, ending an hour before NOW."""
    for day in range(5):
        when = NOW - timedelta(days=4 - day, hours=1)
        pipeline.ingest(storage, f"day{day}", seed_bytes(day), when)


def _delivered(storage: Storage, settings: Settings, interest: Interest) -> tuple[set[str], int]:
    """Return the titles a new subscriber's first digest shows, and how many it holds in all."""
    storage.save_subscriber("reader@example.org", None, [interest], NOW - timedelta(days=6))
    [composed] = pipeline.compose_digests(storage, settings, NOW, record=False)
    content = composed.content
    assert content is not None
    return {p.title for p in content.papers}, content.paper_count + content.more


def _containing(storage: Storage, pattern: str) -> set[str]:
    """Return the titles of stored papers whose title or abstract matches a regex."""
    found = re.compile(pattern, re.IGNORECASE)
    papers = storage.recent_papers(since=NOW - timedelta(days=30), until=NOW)
    return {p.title for p in papers if found.search(f"{p.title} {p.abstract}")}


@pytest.mark.parametrize(
    ("query", "pattern"),
    [
        # A prefix: "robot", "robots", "robotic", "robotics".
        ("robot*", r"\brobot\w*"),
        # A word most papers share: a score cut used to drop all but a few.
        ("reinforcement", r"\breinforcements?\b"),
        ('"reinforcement learning"', r"\breinforcement[\s-]+learning\b"),
        # A plural folds to the singular and back.
        ("benchmark", r"\bbenchmarks?\b"),
        ("policies", r"\bpolic(y|ies)\b"),
    ],
)
def test_a_query_alone_delivers_every_paper_it_matches(
    storage: Storage, settings: Settings, query: str, pattern: str
) -> None:
    _ingest_seeds(storage)
    expected = _containing(storage, pattern)
    assert len(expected) > 8  # more than a score cut would ever have let through
    shown, total = _delivered(storage, settings, Interest("q", query))
    # Every paper with the words is counted; the digest shows the cap, best first.
    assert total >= len(expected)
    assert len(shown) == min(total, settings.max_papers)
    assert shown <= _containing(storage, pattern.replace("s?", r"\w*").replace("(y|ies)", r"\w*"))


def test_every_paper_matching_a_query_is_delivered_when_the_cap_allows(
    storage: Storage, settings: Settings
) -> None:
    _ingest_seeds(storage)
    wide = settings.model_copy(update={"max_papers": 1000})
    expected = _containing(storage, r"\brobot\w*")
    shown, total = _delivered(storage, wide, Interest("r", "robot*"))
    assert shown == expected
    assert total == len(expected)


def test_an_exact_form_is_not_folded(storage: Storage, settings: Settings) -> None:
    _ingest_seeds(storage)
    wide = settings.model_copy(update={"max_papers": 1000})
    shown, _ = _delivered(storage, wide, Interest("b", "=benchmarks"))
    assert shown == _containing(storage, r"\bbenchmarks\b")
    assert shown != _containing(storage, r"\bbenchmarks?\b")


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
def test_an_author_query_finds_the_authors_paper_in_every_mode(
    storage: Storage, settings: Settings, mode: str
) -> None:
    data = (SOURCES / "hf_daily_papers.json").read_bytes()
    pipeline.ingest(storage, "hf", data, NOW - timedelta(hours=1), kind="hf-api")
    chosen = settings.model_copy(update={"matching": mode})
    storage.save_subscriber("reader@example.org", None, [Interest("o", "author:Okafor")], JOINED)
    [composed] = pipeline.compose_digests(storage, chosen, NOW, record=False)
    assert composed.content is not None
    [paper] = composed.content.papers
    assert "Okafor" in " ".join(paper.authors)
    assert paper.reason == "author “Okafor”"


def test_a_description_folds_plurals_and_never_quotes_filler() -> None:
    papers = seed_papers()
    index = PaperIndex([IndexedPaper(p.id, p.title, p.abstract) for p in papers])
    about = "making world model approaches better"
    interest = compile_interest("w", None, about)
    assert [t.text for t in interest.description_terms] == ["world", "world model"]
    matches = match_interest(index, interest, default_params("lexical"))
    titles = [papers[m.paper].title for m in matches]
    # "world model" in the description finds papers that only say "world models".
    assert any("World Models" in t and "World Model " not in t + " " for t in titles)
    for match in matches:
        assert "making" not in match.reason and "better" not in match.reason
        assert "approaches" not in match.reason


def test_status_says_how_many_passed_the_query_and_what_the_cut_left_out(run: Cli) -> None:
    for day in range(2):
        listing = Path.cwd() / f"day{day}.txt"
        listing.write_bytes(seed_bytes(day))
        assert run("ingest", str(listing)).exit_code == 0
    run("subscribe", "a@example.org", "--interest", "r=robot*")
    run(
        "subscribe",
        "b@example.org",
        "--about",
        "w=world models for planning",
        "--sensitivity",
        "w=strict",
    )
    robots = run("status", "a@example.org").stdout
    count = re.search(
        r"interest 'r': (\d+) of (\d+) recent papers you have not seen passed the query", robots
    )
    assert count is not None, robots
    assert int(count.group(1)) > 8 and "all are delivered, best first" in robots
    world = run("status", "b@example.org").stdout
    line = next(x for x in world.splitlines() if "interest 'w'" in x)
    assert re.search(r"\d+ scored at least 0\.\d\d \(strict\)", line)
    assert "closest below: “" in line  # the titles the cut left out, with their scores
    assert re.search(r"\(0\.\d\d\)", line)
