"""The same papers from a snapshot, the HF API and arXiv RSS are one paper each."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import text

from notifier import pipeline
from notifier.ingest.snapshot import parse_snapshot
from notifier.models import Interest
from notifier.settings import Settings
from notifier.storage import Storage
from tests.conftest import JOINED, NOW, parse_message, seed_bytes

IDS = ("2303.04137", "2403.01234", "2310.09876")


def seed_papers() -> list[tuple[str, str]]:
    """Return (title, abstract) of the first three papers of seed 0."""
    listing = parse_snapshot(seed_bytes(0), "seed")
    return [(p.title, p.abstract) for p in listing.papers[:3]]


def hf_json(papers: list[tuple[str, str]]) -> bytes:
    items = [
        {
            "paper": {
                "id": arxiv_id,
                # HF's own spacing and case of the title; the same paper.
                "title": title.upper(),
                "summary": abstract,
                "upvotes": 40 - i,
                "authors": [{"name": "A. Author"}],
            },
            "title": title.upper(),
            "numComments": i,
        }
        for i, (arxiv_id, (title, abstract)) in enumerate(zip(IDS, papers, strict=True))
    ]
    return json.dumps(items).encode()


def arxiv_rss(papers: list[tuple[str, str]], extra_replace: str | None = None) -> bytes:
    items = []
    for i, (arxiv_id, (title, abstract)) in enumerate(zip(IDS, papers, strict=True)):
        kind = "replace" if i == 0 else "new"
        version = 2 if i == 0 else 1
        items.append(
            f"""<item><title>{title}</title><link>https://arxiv.org/abs/{arxiv_id}</link>
<description>arXiv:{arxiv_id}v{version} Announce Type: {kind}
Abstract: {abstract}</description>
<guid isPermaLink="false">oai:arXiv.org:{arxiv_id}v{version}</guid>
<arxiv:announce_type>{kind}</arxiv:announce_type>
<dc:creator>A. Author, B. Author and C. Author</dc:creator></item>"""
        )
    if extra_replace:
        items.append(
            f"""<item><title>A Paper We Never Saw</title>
<link>https://arxiv.org/abs/{extra_replace}</link>
<description>arXiv:{extra_replace}v4 Announce Type: replace-cross
Abstract: An updated version of a paper this service never listed before today.</description>
<guid isPermaLink="false">oai:arXiv.org:{extra_replace}v4</guid>
<arxiv:announce_type>replace-cross</arxiv:announce_type></item>"""
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:arxiv="http://arxiv.org/schemas/atom"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>cs.LG updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link>
<description>cs.LG updates</description>{"".join(items)}</channel></rss>""".encode()


def paper_rows(storage: Storage) -> list[tuple[str, str | None, int | None]]:
    with storage.engine.connect() as conn:
        rows = conn.execute(text("SELECT key, arxiv_id, version FROM papers ORDER BY id")).all()
    return [(r[0], r[1], r[2]) for r in rows]


def test_snapshot_then_hf_then_arxiv_give_one_paper_each(storage: Storage) -> None:
    papers = seed_papers()
    snapshot = "".join(f"{t}\n{a}\n" for t, a in papers).encode()
    first = pipeline.ingest(storage, "snapshot", snapshot, NOW)
    hf = pipeline.ingest(storage, "hf", hf_json(papers), NOW + timedelta(hours=1), "hf-api")
    rss = pipeline.ingest(
        storage, "arxiv", arxiv_rss(papers, "2201.00042"), NOW + timedelta(hours=2), "arxiv-rss"
    )
    assert (first.new, hf.new, rss.new) == (3, 0, 0)
    assert hf.updated == 3  # each learnt its arXiv id
    assert (rss.updated, rss.seen, rss.skipped) == (1, 2, 1)  # v2 of the first; one unknown replace
    assert paper_rows(storage) == [
        ("arxiv:2303.04137", "2303.04137", 2),
        ("arxiv:2403.01234", "2403.01234", 1),
        ("arxiv:2310.09876", "2310.09876", 1),
    ]
    # Metadata from every source sticks to the one paper.
    newest = {p.arxiv_id: p for p in storage.latest_papers(10)}
    assert newest["2403.01234"].meta["upvotes"] == 39
    assert newest["2403.01234"].authors == ("A. Author", "B. Author", "C. Author")
    # The snapshot seen again still finds them by title.
    again = pipeline.ingest(storage, "snapshot", snapshot, NOW + timedelta(hours=3))
    assert (again.new, again.seen) == (0, 3)


def test_arxiv_first_then_title_only_snapshot_is_not_a_new_paper(storage: Storage) -> None:
    papers = seed_papers()
    pipeline.ingest(storage, "arxiv", arxiv_rss(papers), NOW, "arxiv-rss")
    assert [k for k, _, _ in paper_rows(storage)] == ["arxiv:2403.01234", "arxiv:2310.09876"]
    snapshot = "".join(f"{t}\n{a}\n" for t, a in papers).encode()
    summary = pipeline.ingest(storage, "snapshot", snapshot, NOW + timedelta(hours=1))
    # The replace-announced first paper was skipped by arXiv, so the snapshot brings it;
    # the other two are found by title under their arXiv ids.
    assert (summary.new, summary.seen) == (1, 2)
    assert len(paper_rows(storage)) == 3


def test_no_subscriber_gets_a_paper_twice_across_sources(
    storage: Storage, settings: Settings
) -> None:
    papers = seed_papers()
    storage.save_subscriber(
        "ada@example.org", None, [Interest("everything", "the OR a OR of")], JOINED
    )
    snapshot = "".join(f"{t}\n{a}\n" for t, a in papers).encode()
    offered: list[int] = []
    steps = [
        ("snapshot", snapshot, "snapshot"),
        ("hf", hf_json(papers), "hf-api"),
        ("arxiv", arxiv_rss(papers), "arxiv-rss"),
    ]
    for day, (source, data, kind) in enumerate(steps):
        now = NOW + timedelta(days=day)
        pipeline.ingest(storage, source, data, now - timedelta(hours=1), kind)
        [composed] = pipeline.compose_digests(storage, settings, now)
        if composed.content is not None:
            offered += [p.paper_id for p in composed.content.papers]
    assert len(offered) == len(set(offered)) == 3


def test_digest_shows_authors_upvotes_links_and_summary_from_the_source(
    storage: Storage, settings: Settings
) -> None:
    from notifier.app import make_renderer

    item = {
        "paper": {
            "id": "2409.00001",
            "title": "Robots that learn from videos",
            "summary": "We train robots from human videos and evaluate on ten household tasks.",
            "authors": [{"name": f"{c}. Author"} for c in "ABCDE"],
            "upvotes": 42.0,
            "githubRepo": "https://github.com/lab/robots",
            "projectPage": "https://lab.example.org/robots",
            "ai_summary": "Robots learn chores by watching people.",
        },
        "title": "Robots that learn from videos",
    }
    pipeline.ingest(storage, "hf", json.dumps([item]).encode(), NOW, "hf-api")
    subscriber, _ = storage.save_subscriber(
        "a@example.org", None, [Interest("r", "robots")], JOINED
    )
    [composed] = pipeline.compose_digests(storage, settings, NOW + timedelta(hours=1), record=False)
    assert composed.content is not None
    message = parse_message(
        make_renderer(settings).render(composed.content, subscriber, "<m@x>", NOW).data
    )
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    text_body = plain.get_content()
    assert "  A. Author, B. Author, C. Author, D. Author et al.\n" in text_body
    assert (
        "  42 upvotes\n"
        "  arXiv: https://arxiv.org/abs/2409.00001 · PDF: https://arxiv.org/pdf/2409.00001\n"
        "  Code: https://github.com/lab/robots\n"
        "  Project page: https://lab.example.org/robots\n"
    ) in text_body
    assert "  TL;DR: Robots learn chores by watching people.\n" in text_body
    html_body = html.get_content()
    for link in (
        "https://arxiv.org/abs/2409.00001",
        "https://arxiv.org/pdf/2409.00001",
        "https://github.com/lab/robots",
        "https://lab.example.org/robots",
    ):
        assert f'<a href="{link}"' in html_body
    assert "42 upvotes" in html_body and "Robots learn chores by watching people." in html_body

    # The feeds carry the same links after each paper's text.
    pipeline.build_feeds(storage, settings, NOW + timedelta(hours=1))
    atom = (settings.feeds_dir / "all.atom").read_text()
    assert (
        '&lt;a href="https://arxiv.org/abs/2409.00001"&gt;arXiv&lt;/a&gt; · '
        '&lt;a href="https://arxiv.org/pdf/2409.00001"&gt;PDF&lt;/a&gt; · '
        '&lt;a href="https://github.com/lab/robots"&gt;Code&lt;/a&gt; · '
        '&lt;a href="https://lab.example.org/robots"&gt;Project page&lt;/a&gt;'
    ) in atom


def test_a_count_beyond_64_bits_from_a_source_is_stored_and_read_back(storage: Storage) -> None:
    # orjson, which writes the JSON columns, refuses integers beyond 64 bits; the json
    # module takes over for such a document instead of the ingest failing.
    item = {"paper": {"id": "2409.00002", "title": "Big", "summary": "S.", "upvotes": 1e30}}
    summary = pipeline.ingest(storage, "hf", json.dumps([item]).encode(), NOW, "hf-api")
    assert summary.new == 1
    [paper] = storage.latest_papers(1)
    assert paper.meta["upvotes"] == int(1e30)
