"""Canonical identity and text normalisation (DESIGN.md invariant 2)."""

from __future__ import annotations

import pytest

from notifier.papers import clean_text, normalise_arxiv_id, normalise_title, paper_key, paper_url


def test_clean_text_folds_whitespace_and_drops_control_characters() -> None:
    assert clean_text("  A\tstudy\r\nof\x00 things\x1b[31m \x7f ") == "A study of things [31m"


def test_title_key_ignores_case_punctuation_spacing_and_compatibility_forms() -> None:
    a = paper_key("Attention Is All You Need!")
    assert a == paper_key("attention  is all you need")
    assert a == paper_key("ATTENTION—IS—ALL—YOU—NEED")
    assert a == paper_key("Ａｔｔｅｎｔｉｏｎ is all you need")  # full-width letters (NFKC)
    assert a != paper_key("Attention Is Not All You Need")
    assert a.startswith("title:")


def test_normalise_title() -> None:
    assert normalise_title("Ｄeep  RL: a Survey.") == "deep rl a survey"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2409.00001", "2409.00001"),
        ("2409.00001v3", "2409.00001"),
        ("arXiv:2409.00001v2", "2409.00001"),
        ("https://arxiv.org/abs/2409.00001v1", "2409.00001"),
        ("http://arxiv.org/pdf/2409.00001v1.pdf", "2409.00001"),
        ("0704.0001", "0704.0001"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("hep-th/9901001v2", "hep-th/9901001"),
        ("math.GT/0309136", "math.gt/0309136"),
        ("not an id", None),
        ("2409.1", None),
    ],
)
def test_arxiv_ids_are_folded_to_bare_ids(raw: str, expected: str | None) -> None:
    assert normalise_arxiv_id(raw) == expected


def test_key_prefers_arxiv_id() -> None:
    assert paper_key("Any title", "2409.00001") == "arxiv:2409.00001"


def test_paper_url() -> None:
    assert paper_url("T", "2409.00001") == "https://arxiv.org/abs/2409.00001"
    assert paper_url("A & B") == "https://arxiv.org/search/?searchtype=title&query=A+%26+B"
