"""RSS and Atom feeds as a feed reader sees them: files, contents, links and stability."""

from __future__ import annotations

import calendar
import html
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import orjson
import pytest
import rispy
from bibtexparser.entrypoint import parse_string
from bibtexparser.middlewares import LatexDecodingMiddleware
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from sqlalchemy import text

from notifier import pipeline
from notifier.citations import Citation, bibtex, ris, year_of
from notifier.models import IngestSummary, Interest, Subscriber
from notifier.render.feed import FeedItem, FeedMeta, build_feed
from notifier.settings import Settings, load_settings
from notifier.storage import Storage
from notifier.tokens import LinkTokens, Purpose
from tests.conftest import DATA, JOINED, NOW, SEED_FILES, seed_bytes

BASE = "https://papers.example.org"
FEED_ITEMS = 40
ATOM_NS = "{http://www.w3.org/2005/Atom}"
LAST_DAY = NOW + timedelta(days=len(SEED_FILES) - 1)

# Whole-word, case-insensitive patterns a reader would use to check each query by hand.
# What the interests' queries match: every inflection of their words (docs/matching.md).
ROBOT = re.compile(r"\brobot(?:s|ic|ics)?\b", re.IGNORECASE)
WORLD_MODEL = re.compile(r"\bworld[\s-]+model(?:s|ing|ling|ed)?\b", re.IGNORECASE)
DIFFUSION = re.compile(r"\bdiffus\w*", re.IGNORECASE)

WORLD_INTERESTS = [Interest("world-models", '"world model" OR "world models"')]
MIXED_INTERESTS = [Interest("robots", "robot OR robotic"), Interest("diffusion", "diffusion")]
PATTERNS = {"world-models": WORLD_MODEL, "robots": ROBOT, "diffusion": DIFFUSION}


SECRET = b"test-secret-key-0123456789"


@pytest.fixture
def feed_settings(settings: Settings) -> Settings:
    """Return settings on the same state and database, with one topic and a small feed cap."""
    return load_settings(
        state_dir=settings.state_dir,
        database_url=settings.database_url,
        topics=[{"name": "Robots", "slug": "robots", "query": "robot OR robotic"}],
        base_url=BASE,
        sender_address="digests@notifier.test.example",
        feed_items=FEED_ITEMS,
        secret_key=SECRET.decode(),  # signs the private feeds' rating links
    )


def ingest_seeds(storage: Storage, days: range) -> list[IngestSummary]:
    """Ingest the bundled seeds of the given days, one day apart."""
    return [
        pipeline.ingest(storage, SEED_FILES[i].name, seed_bytes(i), NOW + timedelta(days=i))
        for i in days
    ]


def add_subscribers(storage: Storage) -> tuple[Subscriber, Subscriber]:
    """Subscribe one reader of world models and one of robots and diffusion."""
    ada, _ = storage.save_subscriber("ada@example.org", "Ada", WORLD_INTERESTS, JOINED)
    bob, _ = storage.save_subscriber("bob@example.org", "Bob", MIXED_INTERESTS, JOINED)
    return ada, bob


def parse(path: Path) -> Any:
    """Parse a feed file as a reader would, insisting it is well formed."""
    feed = feedparser.parse(path.read_bytes())
    assert feed.bozo == 0, f"{path.name}: {feed.get('bozo_exception')}"
    return feed


def feed_files(root: Path) -> dict[str, bytes]:
    """Return every file under the feeds directory by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def xml_feeds(root: Path) -> list[str]:
    """Return the RSS and Atom files under the feeds directory (the others have their tests)."""
    return [name for name in feed_files(root) if name.endswith((".rss", ".atom"))]


def plain_summary(entry: Any) -> str:
    """Return an entry's summary as text (feedparser hands RSS descriptions over as HTML)."""
    summary: str = entry.summary
    detail = entry.get("summary_detail") or entry.content[0]  # Atom: <content>
    return html.unescape(summary) if detail.type == "text/html" else summary


def timestamp(entry: Any) -> int:
    """Return an entry's publication time as a Unix timestamp."""
    return calendar.timegm(entry.published_parsed)


def expected_names(subscribers: list[Subscriber]) -> set[str]:
    """Return the feed files a build should leave for these active subscribers."""
    stems = ["all", "topics/robots", *(f"subscribers/{s.feed_token}" for s in subscribers)]
    suffixes = (".rss", ".atom", ".json", ".bib", ".ris")
    return {f"{stem}{suffix}" for stem in stems for suffix in suffixes}


def test_build_writes_all_topic_and_private_feeds(
    storage: Storage, feed_settings: Settings
) -> None:
    ingest_seeds(storage, range(2))
    ada, bob = add_subscribers(storage)

    written = pipeline.build_feeds(storage, feed_settings, NOW + timedelta(days=1))

    root = feed_settings.feeds_dir
    assert set(feed_files(root)) == expected_names([ada, bob])  # no temp files left over
    assert sorted(written) == sorted(root / name for name in expected_names([ada, bob]))


def test_every_feed_parses_is_capped_and_newest_first(
    storage: Storage, feed_settings: Settings
) -> None:
    ingest_seeds(storage, range(2))
    add_subscribers(storage)
    pipeline.build_feeds(storage, feed_settings, NOW + timedelta(days=1))

    root = feed_settings.feeds_dir
    feeds = {name: parse(root / name) for name in xml_feeds(root)}
    assert len(feeds) == 8
    spans_days = False
    for name, feed in feeds.items():
        entries = feed.entries
        assert 0 < len(entries) <= FEED_ITEMS, name
        times = [timestamp(e) for e in entries]
        assert times == sorted(times, reverse=True), f"{name} is not newest first"
        assert len({e.id for e in entries}) == len(entries), f"{name} repeats an entry"
        spans_days = spans_days or len(set(times)) > 1
        # RSS and Atom of one feed list the same entries in the same order.
        twin = feeds[name.removesuffix(".rss") + ".atom" if name.endswith(".rss") else name]
        assert [e.id for e in entries] == [e.id for e in twin.entries], name
    assert spans_days  # some feed mixes both days, so the order check means something


def test_all_feed_holds_the_newest_papers(storage: Storage, feed_settings: Settings) -> None:
    summaries = ingest_seeds(storage, range(len(SEED_FILES)))
    pipeline.build_feeds(storage, feed_settings, LAST_DAY)

    new_last_day = summaries[-1].new
    assert 0 < new_last_day < FEED_ITEMS  # the cap reaches back into the day before
    last_lines = set(seed_bytes(len(SEED_FILES) - 1).decode().splitlines())
    older_lines = {
        line for i in range(len(SEED_FILES) - 1) for line in seed_bytes(i).decode().splitlines()
    }
    day = calendar.timegm(LAST_DAY.timetuple())
    for suffix in (".rss", ".atom"):
        entries = parse(feed_settings.feeds_dir / f"all{suffix}").entries
        assert len(entries) == FEED_ITEMS
        newest = entries[:new_last_day]
        # One ingest's papers share its instant; their dates are a second apart.
        assert all(day - FEED_ITEMS < timestamp(e) <= day for e in newest)
        # Exactly the papers the last listing introduced come first...
        titles = {e.title for e in newest}
        assert titles <= last_lines
        assert not titles & older_lines
        # ...then the previous day's papers fill the rest.
        assert all(
            day - 86400 - FEED_ITEMS < timestamp(e) <= day - 86400 for e in entries[new_last_day:]
        )


def is_ordered_subset(items: list[str], sequence: list[str]) -> bool:
    """Tell whether items appear in sequence, in the same order."""
    rest = iter(sequence)
    return all(item in rest for item in items)


def test_topic_feed_holds_the_newest_papers_matching_its_query(
    storage: Storage, feed_settings: Settings
) -> None:
    ingest_seeds(storage, range(len(SEED_FILES)))
    pipeline.build_feeds(storage, feed_settings, LAST_DAY)

    papers = storage.latest_papers(10_000)
    by_guid = {p.guid: p for p in papers}
    matching = [p.guid for p in papers if ROBOT.search(p.title) or ROBOT.search(p.abstract)]
    for suffix in (".rss", ".atom"):
        feed = parse(feed_settings.feeds_dir / f"topics/robots{suffix}")
        assert feed.feed.title == "notifier: Robots"
        ids = [e.id for e in feed.entries]
        # The query is a hard filter that delivers all it matches: the feed is the
        # newest of the papers the query lets through, up to its length.
        assert is_ordered_subset(ids, matching)
        assert len(ids) == min(len(matching), FEED_ITEMS)
        for entry in feed.entries:
            paper = by_guid[entry.id]
            assert entry.title == paper.title
            assert ROBOT.search(entry.title) or ROBOT.search(paper.abstract), entry.title


def test_private_feed_holds_matching_papers_and_says_why(
    storage: Storage, feed_settings: Settings
) -> None:
    ingest_seeds(storage, range(len(SEED_FILES)))
    ada, bob = add_subscribers(storage)
    pipeline.build_feeds(storage, feed_settings, LAST_DAY)

    papers = storage.latest_papers(10_000)
    by_guid = {p.guid: p for p in papers}
    for subscriber in (ada, bob):
        patterns = [PATTERNS[i.name] for i in subscriber.interests]
        matching = [
            p.guid
            for p in papers
            if any(rx.search(p.title) or rx.search(p.abstract) for rx in patterns)
        ]
        for suffix in (".rss", ".atom"):
            feed = parse(feed_settings.feeds_dir / f"subscribers/{subscriber.feed_token}{suffix}")
            assert feed.feed.title == f"notifier: papers for {subscriber.name}"
            ids = [e.id for e in feed.entries]
            assert is_ordered_subset(ids, matching)
            assert 0 < len(ids) <= FEED_ITEMS
            for entry in feed.entries:
                paper = by_guid[entry.id]
                summary = plain_summary(entry)
                why = re.match(r"Why: ([\w-]+): ", summary)
                assert why, summary[:80]
                named = why.group(1)
                assert named in {i.name for i in subscriber.interests}
                rx = PATTERNS[named]
                assert rx.search(paper.title) or rx.search(paper.abstract), entry.title
                # The reason and abstract, then the links to rate the paper for that interest.
                text, links = summary.split("<p>", 1)
                assert text.endswith(paper.abstract)
                rate = re.findall(r'<a href="[^"]+/(more|less)/([^"]+)">', links)
                assert [kind for kind, _ in rate] == ["more", "less"]
                # Dated by the week of the build (the tests' clock), not by the wall clock.
                link = LinkTokens(SECRET).read_paper(Purpose.MORE, rate[0][1], 10 * 365 * 86400)
                assert (link.key, link.paper_id, link.interest) == (
                    subscriber.manage_token,
                    paper.id,
                    named,
                )


def two_days_built(storage: Storage, feed_settings: Settings) -> Path:
    """Store two days of listings and two subscribers, build every feed; return their root."""
    ingest_seeds(storage, range(2))
    add_subscribers(storage)
    pipeline.build_feeds(storage, feed_settings, NOW + timedelta(days=1))
    return feed_settings.feeds_dir


def test_rebuild_without_new_data_is_byte_identical(
    storage: Storage, feed_settings: Settings
) -> None:
    root = two_days_built(storage, feed_settings)
    first = feed_files(root)
    pipeline.build_feeds(storage, feed_settings, NOW + timedelta(days=1) + timedelta(hours=6))

    assert feed_files(root) == first


def test_json_feeds_follow_the_specification_and_hold_what_atom_holds(
    storage: Storage, feed_settings: Settings
) -> None:
    root = two_days_built(storage, feed_settings)
    schema = orjson.loads((DATA / "jsonfeed-1.1.schema.json").read_bytes())
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    names = [n for n in feed_files(root) if n.endswith(".json")]
    assert len(names) == 4  # all, one topic, two subscribers
    for name in names:
        document = orjson.loads((root / name).read_bytes())
        assert not list(validator.iter_errors(document)), name
        assert document["feed_url"] == f"{BASE}/feeds/{name}"
        atom = parse(root / name.replace(".json", ".atom"))
        assert [(i["id"], i["title"]) for i in document["items"]] == [
            (e.id, e.title) for e in atom.entries
        ]
        assert [i["date_modified"] for i in document["items"]] == [
            e.updated.replace("+00:00", "Z") for e in atom.entries
        ]
        if name.startswith("subscribers/"):
            assert all("/more/" in i["content_html"] for i in document["items"])


def test_each_feed_offers_its_papers_to_reference_managers(
    storage: Storage, feed_settings: Settings
) -> None:
    root = two_days_built(storage, feed_settings)
    for name in (n for n in feed_files(root) if n.endswith(".atom")):
        atom = parse(root / name)
        titles = [" ".join(e.title.split()) for e in atom.entries]
        stem = name.removesuffix(".atom")
        # BibTeX: one entry per feed item, read back by the parser imports use.
        library = parse_string((root / f"{stem}.bib").read_text())
        assert not library.failed_blocks
        assert len({e.key for e in library.entries}) == len(library.entries) == len(titles)
        decoded = parse_string(
            (root / f"{stem}.bib").read_text(), append_middleware=[LatexDecodingMiddleware()]
        )

        # In LaTeX "--" is an en dash (and "---" an em dash): compare in those terms.
        def dashes(text: str) -> str:
            return " ".join(text.replace("\u2014", "---").replace("\u2013", "--").split())

        assert [dashes(e["title"]) for e in decoded.entries] == [dashes(t) for t in titles]
        # RIS: the same papers, as rispy (and reference managers) read them.
        records = rispy.loads((root / f"{stem}.ris").read_text())
        assert [" ".join(r["title"].split()) for r in records] == titles


def entries_of(root: Path) -> dict[str, list[tuple[str, str]]]:
    """Return (id, title) of every entry of every feed file, in feed order."""
    return {name: [(e.id, e.title) for e in parse(root / name).entries] for name in xml_feeds(root)}


def test_rebuild_after_new_listing_keeps_ids_titles_and_order(
    storage: Storage, feed_settings: Settings
) -> None:
    ingest_seeds(storage, range(len(SEED_FILES) - 1))
    add_subscribers(storage)
    root = feed_settings.feeds_dir
    pipeline.build_feeds(storage, feed_settings, LAST_DAY - timedelta(days=1))
    before = entries_of(root)

    ingest_seeds(storage, range(len(SEED_FILES) - 1, len(SEED_FILES)))
    pipeline.build_feeds(storage, feed_settings, LAST_DAY)
    after = entries_of(root)

    assert set(after) == set(before)
    assert after["all.rss"][0] not in before["all.rss"]  # the new listing did show up
    for name, old in before.items():
        new = after[name]
        old_titles, new_titles = dict(old), dict(new)
        kept = [guid for guid, _ in new if guid in old_titles]
        assert kept, f"{name}: nothing survived, the comparison would be empty"
        assert kept == [guid for guid, _ in old if guid in new_titles], f"{name}: order changed"
        for guid in kept:
            assert new_titles[guid] == old_titles[guid], f"{name}: {guid} changed title"


def test_channel_and_self_links(storage: Storage, feed_settings: Settings) -> None:
    ingest_seeds(storage, range(1))
    ada, _ = add_subscribers(storage)
    pipeline.build_feeds(storage, feed_settings, NOW)

    root = feed_settings.feeds_dir
    for stem in ("all", "topics/robots", f"subscribers/{ada.feed_token}"):
        channel = ET.parse(root / f"{stem}.rss").getroot().find("channel")
        assert channel is not None
        assert channel.findtext("link") == BASE
        rss_self = [
            link.get("href")
            for link in channel.findall(f"{ATOM_NS}link")
            if link.get("rel") == "self"
        ]
        assert rss_self == [f"{BASE}/feeds/{stem}.rss"]

        atom = ET.parse(root / f"{stem}.atom").getroot()
        links = {link.get("rel"): link.get("href") for link in atom.findall(f"{ATOM_NS}link")}
        assert links == {"self": f"{BASE}/feeds/{stem}.atom", "alternate": BASE}

        # A feed reader sees the same through feedparser.
        for suffix in (".rss", ".atom"):
            feed = parse(root / f"{stem}{suffix}").feed
            assert feed.link == BASE
            selfs = [link.href for link in feed.links if link.rel == "self"]
            assert len(selfs) == 1
            assert selfs[0].endswith(suffix)


def set_status(storage: Storage, email: str, status: str) -> None:
    """Change a subscriber's status behind the application's back."""
    with storage.engine.begin() as conn:
        conn.execute(
            text("UPDATE subscribers SET status = :status WHERE email = :email"),
            {"status": status, "email": email},
        )


def test_subscriber_who_left_loses_private_feed_on_rebuild(
    storage: Storage, feed_settings: Settings
) -> None:
    ingest_seeds(storage, range(2))
    ada, bob = add_subscribers(storage)
    root = feed_settings.feeds_dir
    pipeline.build_feeds(storage, feed_settings, NOW)
    assert set(feed_files(root)) == expected_names([ada, bob])

    set_status(storage, ada.email, "unsubscribed")
    written = pipeline.build_feeds(storage, feed_settings, NOW + timedelta(hours=1))

    assert set(feed_files(root)) == expected_names([bob])
    assert not (root / f"subscribers/{ada.feed_token}.rss").exists()
    assert not (root / f"subscribers/{ada.feed_token}.atom").exists()
    assert not any(ada.feed_token in str(p) for p in written)
    parse(root / f"subscribers/{bob.feed_token}.atom")


def test_feed_dates_are_the_papers_not_the_build_time(
    storage: Storage, feed_settings: Settings
) -> None:
    ingest_seeds(storage, range(1))
    pipeline.build_feeds(storage, feed_settings, NOW + timedelta(days=30))

    feed = parse(feed_settings.feeds_dir / "all.atom")
    assert feed.feed.updated_parsed is not None
    assert datetime.fromtimestamp(calendar.timegm(feed.feed.updated_parsed), UTC) == NOW


# -- the specifications: Atom (RFC 4287) and RSS 2.0 -----------------------------------

# RFC 3339 section 5.6 date-time, as RFC 4287 section 3.3 requires it.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# RFC 822 section 5 date-time (four-digit years), as RSS 2.0 requires for pubDate.
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} ([+-]\d{4}|GMT|UT)$"
)
MARKUP_TITLE = "<think> Tokens & R&D: Is 1 < 2? A &copy; Study"
MARKUP_ABSTRACT = "We show x < y & y > z; <b>not bold</b>, </s> ends, &amp; stays &amp;."


def rfc3339(text: str | None) -> datetime:
    """Return an RFC 3339 date-time, insisting it is one."""
    assert text is not None and RFC3339.match(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_atom(data: bytes) -> list[ET.Element]:
    """Check an Atom document against RFC 4287's rules for feeds and entries; return entries."""
    feed = ET.fromstring(data)
    assert feed.tag == f"{ATOM_NS}feed"
    for name in ("id", "title", "updated"):  # section 4.1.1: exactly one each
        assert len(feed.findall(f"{ATOM_NS}{name}")) == 1, name
    feed_updated = rfc3339(feed.findtext(f"{ATOM_NS}updated"))
    # An author on the feed, or on every entry (4.1.1); each has a name (3.2.1).
    authors = feed.findall(f"{ATOM_NS}author")
    assert all(a.findtext(f"{ATOM_NS}name") for a in authors)
    selfs = [link for link in feed.findall(f"{ATOM_NS}link") if link.get("rel") == "self"]
    assert len(selfs) == 1  # 4.1.1: SHOULD have one
    entries = feed.findall(f"{ATOM_NS}entry")
    ids, dates = [], []
    for entry in entries:
        for name in ("id", "title", "updated"):  # 4.1.2: exactly one each
            assert len(entry.findall(f"{ATOM_NS}{name}")) == 1, name
        assert authors or entry.findall(f"{ATOM_NS}author")
        updated = rfc3339(entry.findtext(f"{ATOM_NS}updated"))
        published = rfc3339(entry.findtext(f"{ATOM_NS}published"))
        assert published <= updated <= feed_updated
        content = entry.find(f"{ATOM_NS}content")
        links = entry.findall(f"{ATOM_NS}link")
        # 4.1.2: content, or a link rel="alternate" (a link without rel is one).
        assert content is not None or any(
            link.get("rel", "alternate") == "alternate" for link in links
        )
        if content is not None:
            assert content.get("type", "text") in ("text", "html")
        ids.append(entry.findtext(f"{ATOM_NS}id"))
        dates.append(updated)
    assert len(set(ids)) == len(ids)
    # Not a MUST of RFC 4287, but readers use it to tell entries' changes apart,
    # and the W3C validator warns: "Two entries with the same value for atom:updated".
    assert len(set(dates)) == len(dates)
    assert dates == sorted(dates, reverse=True)
    return entries


def check_rss(data: bytes) -> list[ET.Element]:
    """Check an RSS document against the RSS 2.0 specification; return its items."""
    rss = ET.fromstring(data)
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    [channel] = rss.findall("channel")
    for name in ("title", "link", "description"):  # required channel elements
        assert channel.findtext(name) is not None, name
    items = channel.findall("item")
    guids = []
    for item in items:
        # "All elements of an item are optional, however at least one of title or
        # description must be present."
        assert item.findtext("title") or item.findtext("description")
        date = item.findtext("pubDate")
        assert date is not None and RFC822.match(date), date
        assert parsedate_to_datetime(date).tzinfo is not None
        guid = item.find("guid")
        assert guid is not None and guid.get("isPermaLink") in ("true", "false")
        guids.append(guid.text)
    assert len(set(guids)) == len(guids)
    # The RSS Advisory Board's profile: "&" and "<" in plain text as hexadecimal
    # references, so that escaped characters are not taken for escaped markup.
    assert b"&amp;" not in data and b"&lt;" not in data
    return items


def test_every_feed_meets_the_atom_and_rss_specifications(
    storage: Storage, feed_settings: Settings
) -> None:
    ingest_seeds(storage, range(2))
    add_subscribers(storage)
    pipeline.build_feeds(storage, feed_settings, NOW + timedelta(days=1))

    root = feed_settings.feeds_dir
    atoms = sorted(root.rglob("*.atom"))
    assert len(atoms) == 4
    for path in atoms:
        entries = check_atom(path.read_bytes())
        assert entries, path.name
        author = ET.fromstring(path.read_bytes()).find(f"{ATOM_NS}author")
        assert author is not None and author.findtext(f"{ATOM_NS}name") == "notifier"
        # Each entry's own date: one ingest's papers no longer share one.
        assert len({e.findtext(f"{ATOM_NS}updated") for e in entries}) == len(entries)
    for path in sorted(root.rglob("*.rss")):
        assert check_rss(path.read_bytes()), path.name


def test_markup_characters_in_titles_and_abstracts_reach_readers_as_written() -> None:
    meta = FeedMeta(
        feed_id=f"{BASE}/feeds/all.atom",
        title="notifier: R&D <papers>",
        description="Q&A",
        link=BASE,
        self_base=f"{BASE}/feeds/all",
    )
    items = [
        FeedItem(
            guid=f"urn:notifier:title:{n}",
            title=MARKUP_TITLE,
            link=f"https://arxiv.org/search/?query={n}&searchtype=title",
            summary=MARKUP_ABSTRACT,
            published=NOW,
            updated=NOW,
        )
        for n in range(3)
    ]
    rss, atom = build_feed(meta, items, NOW)

    for item in check_rss(rss):
        assert item.findtext("title") == MARKUP_TITLE
        assert item.findtext("link") == item.findtext("link", "").replace("&#x26;", "&")
        # The description is HTML whose text is the abstract: no tag in it.
        description = item.findtext("description") or ""
        assert "<" not in description and html.unescape(description) == MARKUP_ABSTRACT
    for entry in check_atom(atom):
        assert entry.findtext(f"{ATOM_NS}title") == MARKUP_TITLE
        content = entry.find(f"{ATOM_NS}content")
        assert content is not None and content.get("type") == "html"
        assert html.unescape(content.text or "") == MARKUP_ABSTRACT
    for document in (rss, atom):
        feed = feedparser.parse(document)
        assert feed.bozo == 0
        assert [e.title for e in feed.entries] == [MARKUP_TITLE] * 3
        assert [plain_summary(e) for e in feed.entries] == [MARKUP_ABSTRACT] * 3
        # Tied dates become a second apart, newest first, each entry its own.
        assert [calendar.timegm(e.published_parsed) for e in feed.entries] == [
            calendar.timegm(NOW.timetuple()) - k for k in range(3)
        ]


def test_citations_stay_valid_bibtex_for_titles_that_break_naive_writers() -> None:
    hostile = [
        Citation("$k$-NN & Friends: 100% of $\\ell_2$ } bounds", ("Wei Li",), 2024, None),
        Citation("Deep nets", ("Wei Li",), 2024, "https://x.org/a_b{c}"),
        Citation("Deep nets", ("Wei Li",), 2024, None),
        Citation("DeepB nets", ("Wei Li", " "), 2024, None),
        Citation("The A", ("  ",), None, None, "hep-th/9901001"),
    ]
    written = bibtex(hostile)
    library = parse_string(written)
    assert not library.failed_blocks
    assert len({e.key for e in library.entries}) == 5  # distinct, though two share a base
    for entry in library.entries:  # BibTeX counts braces whatever escapes them
        for field in entry.fields:
            value = str(field.value)
            assert value.count("{") == value.count("}"), value
            assert not re.search(r"(?<!\\)[%&#]", value.replace("%7B", "").replace("%7D", ""))
    first = library.entries[0]["title"]
    # The formulas as written; "&", "%" and the lone brace between them encoded.
    assert first.startswith("$k$-NN {\\&} Friends: 100{\\%} of $\\ell_2$ ")
    assert "{\\textbraceright}" in first
    assert [r.get("authors") for r in rispy.loads(ris(hostile))][3:] == [["Wei Li"], None]
    assert year_of("hep-th/9901001", None) == 1999 and year_of("2401.00001v2", None) == 2024
