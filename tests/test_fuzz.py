"""Fuzz every listing kind: any mutation of a real sample gives papers or a ListingError.

Hypothesis mutates the samples of tests/data/sources/ and the bundled seed snapshots
both structurally (a JSON value, an XML element's text or a snapshot line replaced by
something strange) and as bytes (cut, spliced, repeated). Whatever comes out, a parser
either returns papers that storage can hold or raises the project's ListingError
naming the source in one line; never a RecursionError, ValueError or OverflowError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from lxml import html as lxml_html

from notifier.errors import ListingError
from notifier.ingest import parse_listing
from notifier.ingest.common import MAX_LABEL_CHARS
from notifier.models import Listing
from notifier.papers import MAX_ARXIV_VERSION, http_url
from tests.conftest import SEED_FILES

SOURCES = Path(__file__).resolve().parent / "data" / "sources"
SOURCE = "fuzzed"

SAMPLES: dict[str, list[str]] = {
    "hf-api": ["hf_daily_papers.json", "hf_daily_empty.json"],
    "hf-page": ["hf_papers_page.html", "hf_papers_markup.html", "hf_papers_empty_day.html"],
    "arxiv-api": ["arxiv_api.xml", "arxiv_api_empty_page.xml", "arxiv_api_no_results.xml"],
    "arxiv-rss": ["arxiv_listing.rss", "arxiv_listing.atom", "arxiv_listing_weekend.rss"],
    "feed": ["blog.rss", "blog.atom", "arxiv_listing.rss", "arxiv_api.xml"],
}
DEEP = 100_000

# Texts a source could put where a value belongs: hostile inputs and their kin.
STRANGE_TEXT = [
    "",
    " ",
    "²",
    "٣",
    "-1",
    "0",
    "9" * 5000,
    "1e999",
    "Infinity",
    "NaN",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
    "Mon, 01 Jan 0000 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 -2359",
    "Fri, 23 Aug 2024 00:00:00 -0000",
    "2409.00001v" + "9" * 5000,
    "2409.00001v12345678901234567890",
    "2409.00001v0",
    "hep-" + "t" * 49 + "/9901001",
    "http://arxiv.org/abs/2206.06921v9223372036854775808",
    "javascript:alert(1)",
    "//evil.example",
    "&aacute; &nbsp; &#0; &#xD800;",
    "<b>bold</b> <script>alert(1)</script>",
    "line\nbreak\r\nand\x0bvertical",
    "\x1f\x7f\u200b\u202e\ufeff",
    "x" * 30_000,
    "The Berkeley Artificial Intelligence Research Blog: all posts",
]
# Raw JSON tokens, some not JSON at all but accepted by Python's json module.
STRANGE_JSON = [
    "7",
    "-7",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" * 5000,
    str(2**63),
    "0.5",
    "true",
    "null",
    "[]",
    "{}",
    '{"name": 7}',
    "[7, null, {}]",
    "[" * DEEP + "]" * DEEP,
    '{"a":' * 2000 + "1" + "}" * 2000,
    *(json.dumps(t) for t in STRANGE_TEXT),
]
# Raw bytes spliced into a document.
STRANGE_BYTES = [
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]>",
    b"<!ENTITY x SYSTEM 'file:///etc/passwd'>",
    b"<a>" * 2000,
    b"</entry>",
    b"]]>",
    b"&aacute;",
    b"&",
    b"<",
    b"\r",
    "²".encode(),
]


def sample(name: str) -> bytes:
    """Return the bytes of one sample listing."""
    return (SOURCES / name).read_bytes()


def assert_storable(listing: Listing) -> None:
    """Check that storage can hold every value of a parsed listing."""
    assert listing.source == SOURCE
    assert listing.label is None or 0 < len(listing.label) <= MAX_LABEL_CHARS
    for paper in listing.papers:
        assert len(paper.key) <= 64
        assert paper.title
        assert paper.arxiv_id is None or len(paper.arxiv_id) <= 40
        assert paper.version is None or 1 <= paper.version <= MAX_ARXIV_VERSION
        assert paper.published_at is None or paper.published_at.tzinfo is UTC
        assert all(isinstance(a, str) for a in paper.authors)
        # Links are absolute http(s) URLs or absent.
        for link in (paper.url, paper.meta.get("github"), paper.meta.get("project_page")):
            assert link is None or http_url(link) == link
        # PostgreSQL's JSON refuses NaN and Infinity.
        json.dumps(dict(paper.meta), allow_nan=False)
        for value in paper.meta.values():
            assert not isinstance(value, float) or math.isfinite(value)


def check(kind: str, data: bytes) -> None:
    """Parse data as kind: papers storage can hold, or one clear ListingError."""
    try:
        listing = parse_listing(kind, data, SOURCE, None)
    except ListingError as e:
        message = str(e)
        assert e.source == SOURCE
        assert message.startswith(f"listing '{SOURCE}': ")
        assert "\n" not in message
        assert len(message) < 1_000, message[:300]
        return
    assert_storable(listing)


# -- mutations ---------------------------------------------------------------


def mutate_bytes(data: bytes, draw: st.DataObject) -> bytes:
    """Cut, splice, repeat or flip bytes of data."""
    size = len(data)
    at = draw.draw(st.integers(0, size), label="at")
    end = draw.draw(st.integers(at, min(size, at + 400)), label="end")
    operation = draw.draw(st.sampled_from(["cut", "delete", "insert", "repeat", "flip"]))
    if operation == "cut":
        return data[:at]
    if operation == "delete":
        return data[:at] + data[end:]
    if operation == "insert":
        return data[:at] + draw.draw(st.sampled_from(STRANGE_BYTES)) + data[at:]
    if operation == "repeat":
        return data[:end] + data[at:end] * draw.draw(st.integers(1, 50)) + data[end:]
    if at == size:
        return data
    return data[:at] + bytes([data[at] ^ draw.draw(st.integers(1, 255))]) + data[at + 1 :]


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the path of every node of a JSON document."""
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _nodes(child, (*path, index))
    return found


def mutate_json_text(text: str, draw: st.DataObject) -> str:
    """Replace one value of a JSON document with a strange raw token."""
    document = json.loads(text)
    paths = [p for p in _nodes(document) if p]
    if not paths:
        return draw.draw(st.sampled_from(STRANGE_JSON))
    path = draw.draw(st.sampled_from(paths))
    marker = "\x00MARK\x00"
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = marker
    return json.dumps(document).replace(
        json.dumps(marker), draw.draw(st.sampled_from(STRANGE_JSON))
    )


def mutate_json(data: bytes, draw: st.DataObject) -> bytes:
    """Replace one value of a JSON listing."""
    return mutate_json_text(data.decode(), draw).encode()


def mutate_xml(data: bytes, draw: st.DataObject) -> bytes:
    """Replace an element's text or an attribute, or drop or repeat an element."""
    root = etree.fromstring(data)
    elements = list(root.iter(etree.Element))
    element = draw.draw(st.sampled_from(elements))
    text = draw.draw(st.sampled_from(STRANGE_TEXT)).replace("\x1f\x7f", "").replace("\x0b", "")
    text = "".join(c for c in text if c in "\t\n\r" or c >= " ")  # what XML can carry
    operation = draw.draw(st.sampled_from(["text", "attribute", "drop", "repeat"]))
    parent = element.getparent()
    if operation == "text" or parent is None:
        element.text = text
    elif operation == "attribute":
        name = draw.draw(st.sampled_from([*element.attrib.keys(), "href", "term"]))
        element.set(name, text)
    elif operation == "drop":
        parent.remove(element)
    else:
        for _ in range(draw.draw(st.integers(1, 5))):
            parent.append(etree.fromstring(etree.tostring(element)))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def mutate_hf_page(data: bytes, draw: st.DataObject) -> bytes:
    """Replace one value of the page's embedded paper list (data-props), else its markup."""
    document = lxml_html.fromstring(data)
    elements = cast(list[Any], document.xpath("//*[@data-props]"))
    holders = [e for e in elements if "apers" in e.get("data-props")]
    if not holders:
        articles = cast(list[Any], document.xpath("//article//*"))
        if articles:
            target = draw.draw(st.sampled_from(articles))
            target.text = draw.draw(st.sampled_from(STRANGE_TEXT))
        return bytes(lxml_html.tostring(document))
    holder = draw.draw(st.sampled_from(holders))
    holder.set("data-props", mutate_json_text(holder.get("data-props"), draw))
    return bytes(lxml_html.tostring(document))


def mutate_lines(data: bytes, draw: st.DataObject) -> bytes:
    """Replace, drop or repeat a line of a snapshot."""
    lines = data.decode("utf-8").split("\n")
    at = draw.draw(st.integers(0, len(lines) - 1))
    operation = draw.draw(st.sampled_from(["replace", "drop", "repeat"]))
    if operation == "replace":
        lines[at] = draw.draw(st.sampled_from(STRANGE_TEXT))
    elif operation == "drop":
        del lines[at]
    else:
        lines.insert(at, lines[at])
    return "\n".join(lines).encode("utf-8", "surrogatepass")


STRUCTURAL: dict[str, Callable[[bytes, st.DataObject], bytes]] = {
    "hf-api": mutate_json,
    "hf-page": mutate_hf_page,
    "arxiv-api": mutate_xml,
    "arxiv-rss": mutate_xml,
    "feed": mutate_xml,
    "snapshot": mutate_lines,
}


def mutated(kind: str, data: bytes, draw: st.DataObject) -> bytes:
    """Apply one to three mutations: structural while the document still parses, else bytes."""
    for _ in range(draw.draw(st.integers(1, 3), label="mutations")):
        if draw.draw(st.booleans(), label="structural"):
            try:
                data = STRUCTURAL[kind](data, draw)
                continue
            except (ValueError, RecursionError, etree.LxmlError):
                pass  # an earlier mutation broke the document: mutate its bytes
        data = mutate_bytes(data, draw)
    return data


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@FUZZ
@given(draw=st.data())
def test_fuzzed_samples_give_papers_or_a_listing_error(kind: str, draw: st.DataObject) -> None:
    data = sample(draw.draw(st.sampled_from(SAMPLES[kind]), label="sample"))
    check(kind, mutated(kind, data, draw))


@FUZZ
@given(draw=st.data())
def test_fuzzed_seed_snapshots_give_papers_or_a_listing_error(draw: st.DataObject) -> None:
    data = draw.draw(st.sampled_from(SEED_FILES), label="seed").read_bytes()
    check("snapshot", mutated("snapshot", data, draw))


# -- hostile inputs seen in real listings, one by one ------------------------------------------


def hf_api_with(field: str, raw: str, *, in_paper: bool = True) -> bytes:
    """Return the HF API sample with one field of its first item set to a raw JSON token."""
    items = json.loads(sample("hf_daily_papers.json"))
    target = items[0]["paper"] if in_paper else items[0]
    target[field] = "\x00MARK\x00"
    return json.dumps(items).replace(json.dumps("\x00MARK\x00"), raw).encode()


def refused(kind: str, data: bytes) -> str:
    """Return the message of the ListingError parsing data raises."""
    with pytest.raises(ListingError) as caught:
        parse_listing(kind, data, SOURCE, None)
    assert caught.value.source == SOURCE
    return str(caught.value)


def test_json_nested_a_hundred_thousand_deep_is_refused() -> None:
    message = refused("hf-api", ("[" * DEEP + "]" * DEEP).encode())
    assert message == f"listing '{SOURCE}': invalid JSON: arrays or objects nested too deeply"
    deep_item = hf_api_with("authors", "[" * DEEP + "]" * DEEP)
    assert "nested too deeply" in refused("hf-api", deep_item)


def test_deep_json_in_a_page_is_not_taken_for_the_paper_list() -> None:
    deep = b"[" * DEEP + b"]" * DEEP
    page = sample("hf_papers_page.html").replace(
        b"dailyPapers&quot;:[", b"dailyPapers&quot;:[" + deep + b",", 1
    )
    assert deep in page
    listing = parse_listing("hf-page", page, SOURCE, None)
    # The embedded list cannot be read, so the page's visible markup gives titles alone.
    assert listing.papers
    assert all(p.abstract == "" for p in listing.papers)


@pytest.mark.parametrize("upvotes", ["Infinity", "-Infinity", "NaN", "1e999", "9" * 5000, "-3"])
def test_an_absurd_upvote_count_is_dropped_and_the_paper_kept(upvotes: str) -> None:
    listing = parse_listing("hf-api", hf_api_with("upvotes", upvotes), SOURCE, None)
    assert_storable(listing)
    assert "upvotes" not in listing.papers[0].meta
    assert listing.papers[1].meta["upvotes"] > 0


def test_a_five_thousand_digit_id_is_refused_naming_the_id() -> None:
    message = refused("hf-api", hf_api_with("id", "1" * 5000))
    assert message.endswith("item 1: the paper id is not an id (float)")


@pytest.mark.parametrize(
    ("field", "raw", "said"),
    [
        ("authors", "7", "item 1 (2408.12528): 'authors' is not a list"),
        ("authors", '{"name": "A"}', "item 1 (2408.12528): 'authors' is not a list"),
        ("summary", "[1, 2]", "item 1 (2408.12528): the summary is not text"),
        ("id", '{"x": 1}', "item 1: the paper id is not an id (dict)"),
        ("id", json.dumps("9" * 200), "item 1: the paper id is not an id (99999"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_naming_it(field: str, raw: str, said: str) -> None:
    assert said in refused("hf-api", hf_api_with(field, raw))


@pytest.mark.parametrize("value", ["7", '{"url": "https://github.com/x/y"}', '["x"]', "NaN"])
@pytest.mark.parametrize(
    ("field", "extra"),
    [("githubRepo", "github"), ("ai_summary", "ai_summary"), ("projectPage", "project_page")],
)
def test_extras_that_are_not_text_are_dropped(value: str, field: str, extra: str) -> None:
    listing = parse_listing("hf-api", hf_api_with(field, value), SOURCE, None)
    assert_storable(listing)
    assert extra not in listing.papers[0].meta


def test_a_superscript_total_is_no_count() -> None:
    data = sample("arxiv_api_empty_page.xml")
    assert b'1.1/">250</opensearch:totalResults>' in data
    data = data.replace(b'1.1/">250</', '1.1/">²</'.encode())
    listing = parse_listing("arxiv-api", data, SOURCE, None)
    assert listing.papers == ()
    assert listing.empty_reason == "the query matched no papers"


def test_a_version_of_five_thousand_nines_is_refused_naming_it() -> None:
    data = sample("arxiv_listing.atom")
    assert b"<id>oai:arXiv.org:2405.00001v1</id>" in data
    data = data.replace(b"2405.00001v1", b"2405.00001v" + b"9" * 5000)
    message = refused("arxiv-rss", data)
    assert message.endswith(
        "item 1 (oai:arXiv.org:2405.00001v" + "9" * 34 + "…): "
        "the id's version v99999999… (5,000 digits) is not between 1 and 9,999"
    )


def test_an_atom_entry_published_in_year_zero_keeps_the_paper_undated() -> None:
    data = sample("blog.atom").replace(
        b"<published>2024-02-20T10:15:00+01:00</published>",
        b"<published>0000-01-01T00:00:00Z</published>",
    )
    data = data.replace(
        b"<updated>2024-02-20T10:15:00+01:00</updated>",
        b"<updated>0000-01-01T00:00:00Z</updated>",
        1,
    )
    listing = parse_listing("feed", data, SOURCE, None)
    assert_storable(listing)
    assert len(listing.papers) == 3


def test_an_encoding_declared_with_a_nul_is_refused() -> None:
    data = sample("blog.atom").replace(b'encoding="utf-8"', b'encoding="utf\x00-8"')
    assert refused("feed", data).endswith("not a readable feed: embedded null character")


def test_a_feed_whose_bytes_name_a_file_is_not_read_from_that_file(tmp_path: Path) -> None:
    # feedparser.parse(bytes) opens bytes that name a file: a response must stay a response.
    local = tmp_path / "local.atom"
    local.write_bytes(sample("blog.atom"))
    message = refused("feed", str(local).encode())
    assert "not a well-formed feed" in message or "not an RSS or Atom feed" in message
