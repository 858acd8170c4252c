"""The snapshot parser on the bundled seeds, both header variants and malformed input."""

from __future__ import annotations

import pytest

from notifier.errors import ListingError
from notifier.ingest.snapshot import parse_snapshot
from notifier.papers import paper_key
from tests.conftest import SEED_FILES

ABSTRACT = "We study a problem in depth and report results that matter to many readers. " * 2


@pytest.mark.parametrize(("index", "count"), [(0, 72), (1, 102), (2, 71), (3, 187), (4, 64)])
def test_each_seed_parses_to_the_known_number_of_papers(index: int, count: int) -> None:
    listing = parse_snapshot(SEED_FILES[index].read_bytes(), SEED_FILES[index].name)
    assert len(listing.papers) == count
    assert [p.rank for p in listing.papers] == list(range(1, count + 1))
    assert all(len(p.abstract) >= 100 for p in listing.papers)


def test_all_seeds_hold_411_distinct_papers() -> None:
    keys = {p.key for f in SEED_FILES for p in parse_snapshot(f.read_bytes(), f.name).papers}
    assert len(keys) == 411


def test_header_with_date_line_and_blank_lines() -> None:
    listing = parse_snapshot(SEED_FILES[0].read_bytes(), "x")
    assert listing.label == "Mar 11"
    assert listing.papers[0].title == (
        "Dropout's Dream Land: Generalization from Learned Simulators to Reality"
    )
    assert listing.papers[0].abstract.startswith("A World Model is a generative model")


def test_header_without_date_and_title_glued_to_subscribe() -> None:
    listing = parse_snapshot(SEED_FILES[3].read_bytes(), "x")
    assert listing.label is None
    assert listing.papers[0].title == "Foundation Policies with Hilbert Representations"
    assert listing.papers[1].title == (
        "Goal-Conditioned Imitation Learning using Score-based Diffusion Policies"
    )


def test_blank_and_no_blank_bodies_give_the_same_papers() -> None:
    body = "\n".join(f"Title {i}\n{ABSTRACT}{i}" for i in range(3))
    spaced = "\n\n".join(f"Title {i}\n\n{ABSTRACT}{i}" for i in range(3))
    assert parse_snapshot(body.encode(), "a").papers == parse_snapshot(spaced.encode(), "b").papers


def test_listing_without_any_header_is_accepted() -> None:
    listing = parse_snapshot(f"Only Title\n{ABSTRACT}\n".encode(), "plain.txt")
    assert [p.title for p in listing.papers] == ["Only Title"]


def test_crlf_line_endings_and_bom_are_accepted() -> None:
    data = ("\ufeffTitle A\r\n" + ABSTRACT + "\r\n").encode()
    assert parse_snapshot(data, "x").papers[0].title == "Title A"


def test_same_paper_twice_in_one_listing_counts_once_at_its_best_rank() -> None:
    data = f"Paper A\n{ABSTRACT}\nPaper B\n{ABSTRACT}\nPAPER  a\n{ABSTRACT}\n".encode()
    listing = parse_snapshot(data, "x")
    assert [(p.title, p.rank) for p in listing.papers] == [("Paper A", 1), ("Paper B", 2)]
    assert listing.papers[0].key == paper_key("paper a")


def _error(data: bytes) -> ListingError:
    with pytest.raises(ListingError) as info:
        parse_snapshot(data, "bad.txt")
    return info.value


def test_title_without_abstract_names_the_line() -> None:
    data = f"Title A\n{ABSTRACT}\nTitle B\nTitle C\n{ABSTRACT}\n".encode()
    error = _error(data)
    assert error.line == 3
    assert str(error).startswith("listing 'bad.txt': line 3: title 'Title B' has no abstract")


def test_title_at_end_of_file_without_abstract() -> None:
    error = _error(f"Title A\n{ABSTRACT}\nDangling\n".encode())
    assert error.line == 3
    assert "has no abstract (file ends)" in str(error)


def test_abstract_without_title_is_refused() -> None:
    error = _error(f"{ABSTRACT * 3}\nTitle\n".encode())
    assert error.line == 1
    assert "expected a title" in str(error)


def test_binary_junk_is_refused_with_its_line() -> None:
    error = _error(b"Title\n" + ABSTRACT.encode() + b"\n\xff\xfe\x00garbage")
    assert error.line == 3
    assert "binary data" in str(error)
    error = _error(b"Title\n\x89PNG\xff\xd8 not text")
    assert error.line == 2
    assert "not UTF-8" in str(error)


@pytest.mark.parametrize("data", [b"", b"   \n\n\t\n"])
def test_empty_file_is_refused(data: bytes) -> None:
    assert "empty listing" in str(_error(data))


def test_header_only_is_refused_as_empty() -> None:
    data = b"new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nMar 11\n"
    assert "empty listing: no papers found" in str(_error(data))


def test_ten_megabyte_line_is_refused_without_reading_it_as_a_title() -> None:
    error = _error(b"Title\n" + b"x" * 10_000_000 + b"\n")
    assert error.line == 2
    assert "10,000,000 characters long" in str(error)
