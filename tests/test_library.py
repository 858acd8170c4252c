"""Library exports (BibTeX, RIS, CSL-JSON) read into titles and abstracts, or refused whole."""

from __future__ import annotations

import orjson
import pytest

from notifier.errors import LibraryError
from notifier.library import read_library
from tests.conftest import DATA

LIBRARY = DATA / "library"


def titles(name: str) -> list[str]:
    """Return the titles read from a shipped export."""
    return [e.title for e in read_library((LIBRARY / name).read_bytes(), name)]


def test_each_format_gives_its_titles_and_abstracts_with_latex_decoded() -> None:
    assert titles("zotero.bib") == [
        "Conservative Q-Learning for Offline Reinforcement Learning",
        "Mastering Atari, Go, chess and shogi by planning with a learned model",
        "Dream to Control: Learning Behaviors by Latent Imagination with Möbius world models",
    ]
    assert titles("mendeley.ris")[1].startswith("RT-2: Vision-Language-Action Models")
    # The third CSL-JSON item repeats the first title in lower case: kept once.
    assert titles("zotero.json") == [
        "Voyager: An Open-Ended Embodied Agent with Large Language Models",
        "Reflexion: Language Agents with Verbal Reinforcement Learning",
    ]
    [first, *_] = read_library((LIBRARY / "zotero.bib").read_bytes(), "zotero.bib")
    assert first.abstract.startswith("Effectively leveraging large, previously collected")
    assert read_library((LIBRARY / "zotero.bib").read_bytes(), "zotero.bib")[2].abstract == ""


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("broken.bib", (LIBRARY / "broken.bib").read_bytes(), "is not valid"),
        ("empty.ris", (LIBRARY / "empty.ris").read_bytes(), "empty file; nothing to import"),
        ("notes.txt", (LIBRARY / "notes.txt").read_bytes(), "not a BibTeX, RIS or CSL-JSON"),
        ("x.json", b"[1, 2", "not valid JSON"),
        ("x.json", b"42", "must be a list of items"),
        ("x.json", b'["a", "b"]', "item 1 is not a CSL-JSON object"),
        ("x.json", b'[{"title": 3}]', "no entry has a title"),
        ("x", b"\x00" * 1000, "not a BibTeX, RIS or CSL-JSON"),
        ("x", bytes(range(256)) * 40, "not a BibTeX, RIS or CSL-JSON"),
        ("big.json", b" " * (10 * 1024 * 1024 + 1), "over 10 MiB"),
        (
            "many.json",
            orjson.dumps([{"title": f"Paper {i}"} for i in range(2001)]),
            "at most 2,000",
        ),
    ],
)
def test_bad_exports_are_refused_whole_with_one_line_naming_the_file(
    name: str, data: bytes, says: str
) -> None:
    with pytest.raises(LibraryError) as refused:
        read_library(data, name)
    message = str(refused.value)
    assert message.startswith(f"library '{name}': ") and says in message
    assert "\n" not in message
