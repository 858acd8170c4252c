"""Library exports (BibTeX, RIS, CSL-JSON) read into titles and abstracts, or refused whole.

The shipped exports (tests/data/library/) are written as Zotero, Mendeley and Google
Scholar write them; the inline ones add what those tools also write (Mendeley's
double-braced BibTeX titles, Scholar's one-line fields, CSL-JSON rich text). Whatever
the bytes, the answer is entries or one LibraryError line naming the file.
"""

from __future__ import annotations

import logging
import random

import orjson
import pytest

from notifier.errors import LibraryError
from notifier.library import LibraryEntry, read_library
from tests.conftest import DATA

LIBRARY = DATA / "library"

ZOTERO_BIB = (
    LibraryEntry(
        "Conservative Q-Learning for Offline Reinforcement Learning",
        "Effectively leveraging large, previously collected datasets in reinforcement "
        "learning (RL) is a key challenge for large-scale real-world applications. Offline "
        "RL algorithms promise to learn effective policies from previously-collected, "
        "static datasets without further interaction.",
    ),
    LibraryEntry(
        "Mastering Atari, Go, chess and shogi by planning with a learned model",
        "Constructing agents with planning capabilities has long been one of the main "
        "challenges in the pursuit of artificial intelligence. Here we present the MuZero "
        "algorithm, which, by combining a tree-based search with a learned model, achieves "
        "superhuman performance.",
    ),
    # {M}{\"o}bius decoded; Zotero wrote no abstract for this one.
    LibraryEntry(
        "Dream to Control: Learning Behaviors by Latent Imagination with Möbius world models", ""
    ),
)
MENDELEY_RIS = (
    LibraryEntry(
        "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
        "This paper introduces Diffusion Policy, a new way of generating robot behavior by "
        "representing a visuomotor policy as a conditional denoising diffusion process.",
    ),
    # T1 and N2, as Mendeley writes a conference paper's title and abstract.
    LibraryEntry(
        "RT-2: Vision-Language-Action Models Transfer Web Knowledge to Robotic Control",
        "We study how vision-language models trained on Internet-scale data can be "
        "incorporated directly into end-to-end robotic control.",
    ),
)
ZOTERO_JSON = (
    LibraryEntry(
        "Voyager: An Open-Ended Embodied Agent with Large Language Models",
        "We introduce Voyager, the first LLM-powered embodied lifelong learning agent in "
        "Minecraft that continuously explores the world, acquires diverse skills, and makes "
        "novel discoveries without human intervention.",
    ),
    LibraryEntry(
        "Reflexion: Language Agents with Verbal Reinforcement Learning",
        "Large language models are increasingly used to interact with external environments "
        "as goal-driven agents.",
    ),
)
SHIPPED = {"zotero.bib": ZOTERO_BIB, "mendeley.ris": MENDELEY_RIS, "zotero.json": ZOTERO_JSON}

# Mendeley's BibTeX: double-braced titles, tab-less fields, an abstract with escapes.
MENDELEY_BIB = rb"""@article{Levine2016,
abstract = {Policy search methods can allow robots to learn control policies for a wide
range of tasks, but practical applications of policy search often require hand-engineered
components for perception, state estimation, and low-level control. We achieve a 50\%
higher success rate \& fewer failures.},
archivePrefix = {arXiv},
arxivId = {1504.00702},
author = {Levine, Sergey and Finn, Chelsea and Darrell, Trevor and Abbeel, Pieter},
journal = {Journal of Machine Learning Research},
title = {{End-to-End Training of Deep Visuomotor Policies}},
year = {2016}
}
@inproceedings{Haarnoja2018,
author = {Haarnoja, Tuomas and Zhou, Aurick and Abbeel, Pieter and Levine, Sergey},
title = {{Soft Actor-Critic: Off-Policy Maximum Entropy Deep Reinforcement Learning with a
Stochastic Actor}},
year = {2018}
}
"""
# Google Scholar's "Cite > BibTeX": one entry a snippet, pasted one after another.
SCHOLAR_BIB = rb"""@inproceedings{vaswani2017attention,
  title={Attention is all you need},
  author={Vaswani, Ashish and Shazeer, Noam and Kaiser, {\L}ukasz and Polosukhin, Illia},
  booktitle={Advances in neural information processing systems},
  volume={30},
  year={2017}
}
@inproceedings{peng2018sim,
  title={Sim-to-real transfer of robotic control with dynamics randomization},
  author={Peng, Xue Bin and Andrychowicz, Marcin and Zaremba, Wojciech and Abbeel, Pieter},
  booktitle={2018 IEEE international conference on robotics and automation (ICRA)},
  pages={3803--3810},
  year={2018},
  organization={IEEE}
}
@inproceedings{vaswani2017attention,
  title={Attention Is All You Need!},
  author={Vaswani, Ashish},
  year={2017}
}
"""


def read(name: str) -> tuple[LibraryEntry, ...]:
    """Return the entries read from a shipped export."""
    return read_library((LIBRARY / name).read_bytes(), name)


def refusal(data: bytes, name: str) -> str:
    """Return the one line a bad export is refused with, insisting it names the file."""
    with pytest.raises(LibraryError) as refused:
        read_library(data, name)
    message = str(refused.value)
    assert message.startswith(f"library '{name}': ")
    assert "\n" not in message and "\r" not in message
    return message


# -- what each tool writes -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_format_gives_its_titles_and_abstracts_with_latex_decoded(name: str) -> None:
    assert read(name) == SHIPPED[name]


def test_the_shipped_titles_are_those_a_user_exported() -> None:
    assert [e.title for e in read("zotero.bib")] == [e.title for e in ZOTERO_BIB]
    # The third CSL-JSON item repeats the first title in lower case: kept once.
    assert [e.title for e in read("zotero.json")] == [e.title for e in ZOTERO_JSON]
    assert read("mendeley.ris")[1].title.startswith("RT-2: Vision-Language-Action Models")


@pytest.mark.parametrize("name", ["export", "export.txt", "My Library.dat"])
def test_the_format_is_found_from_the_content_when_the_name_does_not_tell(name: str) -> None:
    for shipped, expected in SHIPPED.items():
        assert read_library((LIBRARY / shipped).read_bytes(), name) == expected


def test_content_wins_over_a_wrong_extension() -> None:
    assert read_library((LIBRARY / "mendeley.ris").read_bytes(), "mendeley.bib") == MENDELEY_RIS
    assert read_library((LIBRARY / "zotero.bib").read_bytes(), "zotero.json") == ZOTERO_BIB


def test_mendeley_bibtex_double_braces_and_escapes_are_decoded() -> None:
    assert read_library(MENDELEY_BIB, "library.bib") == (
        LibraryEntry(
            "End-to-End Training of Deep Visuomotor Policies",
            "Policy search methods can allow robots to learn control policies for a wide "
            "range of tasks, but practical applications of policy search often require "
            "hand-engineered components for perception, state estimation, and low-level "
            "control. We achieve a 50% higher success rate & fewer failures.",
        ),
        LibraryEntry(
            "Soft Actor-Critic: Off-Policy Maximum Entropy Deep Reinforcement Learning with "
            "a Stochastic Actor",
            "",
        ),
    )


def test_latex_accents_dashes_and_markup_become_text_and_math_is_kept() -> None:
    bib = rb"""@article{muller_2021,
	Title = {{Sim-to-Real} Transfer for {M}{\"u}ller's Quadruped -- a {$\epsilon$-greedy} Study},
	ABSTRACT = {Falls drop by 12% with bare signs & by 50\% with escaped ones.
	Over   several
	lines, with \emph{emphasis}, na{\"i}ve {\'E}cole accents and 10~ms.},
}
@misc{input_2021,
	title = {Reading \input{/etc/passwd} nothing},
}
"""
    assert read_library(bib, "refs.bib") == (
        LibraryEntry(
            "Sim-to-Real Transfer for Müller's Quadruped – a $\\epsilon$-greedy Study",
            "Falls drop by 12% with bare signs & by 50% with escaped ones. Over several "
            "lines, with emphasis, naïve École accents and 10 ms.",
        ),
        # pylatexenc reads no file unless told a directory to read from.
        LibraryEntry("Reading nothing", ""),
    )


def test_scholar_snippets_pasted_together_keep_each_paper_once() -> None:
    # The third snippet repeats the first's key and, but for case and "!", its title.
    assert [e.title for e in read_library(SCHOLAR_BIB, "scholar.bib")] == [
        "Attention is all you need",
        "Sim-to-real transfer of robotic control with dynamics randomization",
    ]


def test_ris_with_crlf_continuation_lines_and_notes_is_read() -> None:
    ris = (
        b"Provider: Mendeley\r\n\r\n"
        b"TY  - JOUR\r\nAU  - Kalashnikov, Dmitry\r\n"
        b"TI  - QT-Opt: Scalable Deep Reinforcement Learning for\r\n"
        b"Vision-Based Robotic Manipulation\r\n"
        b"AB  - In this paper, we study the problem of learning vision-based dynamic\r\n"
        b"manipulation skills.\r\nN1  - a note\r\nKW  - robotics\r\nER  - \r\n\r\n"
        b"TY  - GEN\r\nAB  - An entry with an abstract but no title.\r\nER  - \r\n"
    )
    assert read_library(ris, "export.ris") == (
        LibraryEntry(
            "QT-Opt: Scalable Deep Reinforcement Learning for Vision-Based Robotic Manipulation",
            "In this paper, we study the problem of learning vision-based dynamic "
            "manipulation skills.",
        ),
    )


def test_csl_json_as_one_item_or_an_items_object_and_with_rich_text() -> None:
    item = {
        "id": "http://zotero.org/users/1/items/D",
        "type": "article-journal",
        "title": 'Learning <i>in situ</i>: <span class="nocase">iLQR</span> for '
        "H<sub>2</sub> robots",
        "abstract": "A   study\nof robots.",
        "author": [{"family": "Todorov", "given": "Emanuel"}],
        "issued": {"date-parts": [[2012]]},
    }
    expected = (LibraryEntry("Learning in situ: iLQR for H2 robots", "A study of robots."),)
    assert read_library(orjson.dumps(item), "one.json") == expected
    assert read_library(orjson.dumps({"items": [item]}), "items.json") == expected
    # An abstract that is not text is no abstract; an item without a title is skipped.
    untidy = [{"title": "A title", "abstract": 5}, {"abstract": "no title"}, {"title": None}]
    assert read_library(orjson.dumps(untidy), "untidy.json") == (LibraryEntry("A title", ""),)


def test_files_other_tools_write_decode() -> None:
    title = "Caf\u00e9 \u201crobots\u201d"
    cp1252 = f"@article{{k, title = {{{title}}}}}".encode("cp1252")
    assert read_library(cp1252, "windows.bib") == (LibraryEntry(title, ""),)
    utf16 = f"TY  - JOUR\r\nTI  - {title}\r\nER  - \r\n".encode("utf-16")
    assert read_library(utf16, "endnote.ris") == (LibraryEntry(title, ""),)
    bom = b"\xef\xbb\xbf" + orjson.dumps([{"title": title}])
    assert read_library(bom, "bom.json") == (LibraryEntry(title, ""),)


def test_long_titles_and_abstracts_are_cut_and_a_huge_field_is_quick() -> None:
    words = "grasp " * 400_000  # 2.4 MB in one field on one line
    bib = f"@article{{k, title = {{{words}}}, abstract = {{{words}}}}}".encode()
    [entry] = read_library(bib, "long.bib")
    assert entry.title == ("grasp " * 84)[:500].rstrip()
    assert entry.abstract == ("grasp " * 834)[:5000]


def test_the_parsers_own_warnings_do_not_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    # bibtexparser logs each block it cannot parse; without a handler configured
    # (the CLI), logging would print that to stderr beside the one-line error.
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LibraryError):
        read("broken.bib")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- what is refused, and how it is said ------------------------------------------------


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
    assert says in refusal(data, name)


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        (
            "broken.bib",
            (LIBRARY / "broken.bib").read_bytes(),
            "a BibTeX entry at line 5 is not valid (an unclosed brace?); fix it and try again",
        ),
        (
            "notes.txt",
            (LIBRARY / "notes.txt").read_bytes(),
            "not a BibTeX, RIS or CSL-JSON export; export the collection from Zotero, "
            "Mendeley or Google Scholar in one of these formats",
        ),
        ("empty.ris", (LIBRARY / "empty.ris").read_bytes(), "empty file; nothing to import"),
        (
            "notes.bib",
            b"My reading list: robots.\n",
            "not a BibTeX, RIS or CSL-JSON export; "
            "export the collection from Zotero, Mendeley or Google Scholar in one of these formats",
        ),
        (
            "refs.json",
            b'[\n  {"title": "A"},\n    }\n]',
            "not valid JSON at line 3 column 5 (unexpected character, expected a JSON value); "
            "export the collection again as CSL JSON",
        ),
        (
            "refs.json",
            b"42",
            "a CSL-JSON export must be a list of items, not a number; "
            "export the collection again as CSL JSON",
        ),
        (
            "refs.json",
            b'[{"title": "A"}, "B"]',
            "item 2 is not a CSL-JSON object but a string; export the collection again as CSL JSON",
        ),
        ("x.bib", b"@misc{k, note = {no title}}", "no entry has a title; nothing to import"),
        ("x.json", b"[]", "no entry has a title; nothing to import"),
        (
            "x.bib",
            b"@article{k, title = {One}, title = {Two}}",
            "a BibTeX entry at line 1 is not valid (it has more than one title field); "
            "fix it and try again",
        ),
        (
            "x.bib",
            b"@article{k title = {One}}",
            "a BibTeX entry at line 1 is not valid (Expected comma after entry key, but found "
            "=); fix it and try again",
        ),
        (
            "x.bib",
            b"@article{k, title = {" + b"{" * 3000 + b"}" * 3000 + b"}}",
            "a BibTeX entry at line 1 is not valid (its LaTeX could not be decoded); "
            "fix it and try again",
        ),
        (
            "x.ris",
            b"TY  - JOUR\nTI  - A\nER  - \n" * 3 + b"TY  - JOUR\nTI  - D\n",
            "could not read entry 4 at line 10 (no ER line ends it); fix it and try again",
        ),
        (
            "x.ris",
            b"TY  - JOUR\nTI  - A\nTY  - JOUR\nTI  - B\nER  - \n",
            "could not read entry 1 at line 1 (no ER line ends it before line 3); "
            "fix it and try again",
        ),
        (
            "big.bib",
            b"%" * (10 * 1024 * 1024 + 1),
            "the file is over 10 MiB; split it and import the parts one at a time",
        ),
    ],
)
def test_each_refusal_says_what_is_wrong_and_what_to_do(name: str, data: bytes, line: str) -> None:
    assert refusal(data, name) == f"library '{name}': {line}"


def test_a_bad_entry_after_good_ones_refuses_the_whole_file() -> None:
    good = b"@article{good, title = {A good entry}}\n" * 3
    message = refusal(good + b"@article{bad,\n title = {Unclosed,\n}\n" + good, "refs.bib")
    assert message.startswith("library 'refs.bib': a BibTeX entry at line 4 is not valid")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("many.json", orjson.dumps([{"title": f"Paper {i}"} for i in range(2001)])),
        (
            "many.bib",
            b"".join(b"@article{p%d, title = {Paper %d}}\n" % (i, i) for i in range(2001)),
        ),
        ("many.ris", b"".join(b"TY  - JOUR\nTI  - Paper %d\nER  - \n" % i for i in range(2001))),
    ],
)
def test_more_than_2000_papers_are_refused_whole(name: str, data: bytes) -> None:
    assert refusal(data, name) == (
        f"library '{name}': has 2,001 entries; at most 2,000 can be imported at once: "
        "split the file"
    )


def test_2000_papers_and_their_repeats_are_taken() -> None:
    papers = [{"title": f"Paper {i}"} for i in range(2000)]
    assert len(read_library(orjson.dumps(papers + papers), "twice.json")) == 2000


def test_a_flood_of_tiny_entries_is_refused_before_parsing_each() -> None:
    flood = b"@a{k, title={t}}\n" * 200_000
    assert refusal(flood, "flood.bib") == (
        "library 'flood.bib': has 200,000 entries; at most 2,000 can be imported at once: "
        "split the file"
    )


# -- whatever the bytes ----------------------------------------------------------------


def garbage() -> list[tuple[str, bytes]]:
    """Return hostile inputs: random bytes, cut and corrupted exports, odd shapes."""
    rng = random.Random(20260311)
    cases: list[tuple[str, bytes]] = [
        ("x.bib", bytes(rng.getrandbits(8) for _ in range(4096))) for _ in range(5)
    ]
    cases += [("x", bytes(rng.getrandbits(8) for _ in range(512))) for _ in range(5)]
    cases += [
        ("zeros.ris", b"\x00" * 1000),
        ("line.bib", b"a" * 3_000_000),
        ("line.json", b"[" + b" " * 3_000_000),
        ("deep.json", b"[" * 5000 + b"]" * 5000),
        ("number.json", b"3.14"),
        ("strings.json", b'["Attention is all you need"]'),
        ("null.json", b"null"),
        ("object.json", b'{"collection": "robots"}'),
        ("items.json", b'{"items": 3}'),
        ("titles.json", b'[{"title": ["a"]}, {"title": {"x": 1}}, {"title": 3}]'),
        ("at.bib", b"@" * 10_000),
        ("open.bib", b"@article{" * 1000),
        ("braces.bib", b"{" * 100_000),
        ("tags.ris", b"TY  - \n" * 1000),
        ("er.ris", b"ER  - \nTI  - x\n"),
        ("text.ris", "TY  - JOUR\nTI  - \udcff\nER  - \n".encode("utf-8", "surrogatepass")),
    ]
    for shipped in sorted(SHIPPED):
        data = (LIBRARY / shipped).read_bytes()
        cases += [(shipped, data[:cut]) for cut in range(0, len(data), 37)]
        for _ in range(20):
            flipped = bytearray(data)
            for _ in range(8):
                flipped[rng.randrange(len(flipped))] = rng.getrandbits(8)
            cases.append((shipped, bytes(flipped)))
    return cases


def test_any_bytes_give_entries_or_one_line_naming_the_file() -> None:
    for name, data in garbage():
        try:
            entries = read_library(data, name)
        except LibraryError as e:
            message = str(e)
            assert message.startswith(f"library '{name}': "), (name, data[:60], message)
            assert "\n" not in message, (name, data[:60], message)
        else:
            assert all(isinstance(e, LibraryEntry) and e.title for e in entries), name
            assert all(len(e.title) <= 500 and len(e.abstract) <= 5000 for e in entries)


def test_a_file_name_with_a_line_break_still_gives_one_line() -> None:
    with pytest.raises(LibraryError) as refused:
        read_library(b"", "evil\r\nname.bib")
    assert str(refused.value) == "library 'evil name.bib': empty file; nothing to import"
