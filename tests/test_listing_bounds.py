"""Values a source supplies that the database could not hold: bounded or refused at parse time.

Each listing is a real sample from tests/data/sources/ with one value made absurd, and
is ingested into SQLite and PostgreSQL: it ends in stored papers or a ListingError that
names the field, never a database error.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from notifier import pipeline
from notifier.errors import ListingError
from notifier.ingest.common import MAX_LABEL_CHARS
from notifier.storage import Storage
from notifier.storage.schema import ingest_runs, papers
from tests.conftest import NOW

SOURCES = Path(__file__).resolve().parent / "data" / "sources"
BAIR = "The Berkeley Artificial Intelligence Research Blog: all posts"


def sample(name: str) -> str:
    """Return one sample listing as text."""
    return (SOURCES / name).read_text(encoding="utf-8")


def last_label(storage: Storage) -> str | None:
    """Return the label of the newest ingest run."""
    with storage.engine.connect() as conn:
        label = conn.execute(
            select(ingest_runs.c.label).order_by(ingest_runs.c.id.desc()).limit(1)
        ).scalar_one()
    return None if label is None else str(label)


def stored_versions(storage: Storage) -> dict[str, int | None]:
    """Return the stored version of each paper by arXiv id."""
    with storage.engine.connect() as conn:
        rows = conn.execute(select(papers.c.arxiv_id, papers.c.version)).all()
    return {r.arxiv_id: r.version for r in rows if r.arxiv_id}


def refused(storage: Storage, kind: str, data: str) -> str:
    """Return the message of the ListingError ingesting data raises; nothing is stored."""
    with pytest.raises(ListingError) as caught:
        pipeline.ingest(storage, "bad", data.encode(), NOW, kind)
    assert stored_versions(storage) == {}
    assert storage.ingest_runs()[0].status == "failed"
    return str(caught.value)


def test_label_limit_is_the_column_size() -> None:
    assert ingest_runs.c.label.type.length == MAX_LABEL_CHARS  # type: ignore[attr-defined]


def test_a_long_feed_title_is_shortened_to_fit_the_run_label(storage: Storage) -> None:
    data = sample("blog.atom").replace("<title>Embodied AI Group</title>", f"<title>{BAIR}</title>")
    summary = pipeline.ingest(storage, "bair", data.encode(), NOW, "feed")
    assert summary.papers == 3
    label = last_label(storage)
    assert label is not None
    assert len(label) == MAX_LABEL_CHARS
    assert label.startswith("The Berkeley Artificial Intelligence")
    assert label.endswith("…")


def test_a_long_arxiv_pubdate_is_shortened(storage: Storage) -> None:
    long_date = "Fri, 23 Aug 2024 00:00:00 -0400 " + "(Eastern Daylight Time) " * 5
    data = sample("arxiv_listing.rss").replace(
        "<pubDate>Fri, 23 Aug 2024 00:00:00 -0400</pubDate>", f"<pubDate>{long_date}</pubDate>"
    )
    assert pipeline.ingest(storage, "cs.LG", data.encode(), NOW, "arxiv-rss").new > 0
    label = last_label(storage)
    assert label is not None
    assert label.startswith("Fri, 23 Aug 2024")
    assert len(label) <= MAX_LABEL_CHARS


@pytest.mark.parametrize(
    ("date_string", "expected"),
    [
        ("2025-03-11 " + "x" * 200, "2025-03-11 " + "x" * 28 + "…"),
        ({"day": "2025-03-11"}, None),
        (20250311, None),
        (["2025-03-11"], None),
    ],
)
def test_an_hf_date_string_that_is_long_or_not_text(
    storage: Storage, date_string: object, expected: str | None
) -> None:
    encoded = html.escape(json.dumps(date_string), quote=True)
    data = sample("hf_papers_page.html").replace(
        "dateString&quot;:&quot;2025-03-11&quot;", f"dateString&quot;:{encoded}"
    )
    summary = pipeline.ingest(storage, "hf-day", data.encode(), NOW, "hf-page")
    assert summary.papers > 0
    assert last_label(storage) == expected


@pytest.mark.parametrize(
    ("version", "shown"),
    [
        ("12345678901234567890", "v12345678901234567890"),  # PostgreSQL: integer out of range
        (str(2**63), "v9223372036854775808"),  # SQLite: Python int too large to convert
        ("9" * 5000, "(5,000 digits)"),  # int(): exceeds the limit of 4,300 digits
        ("0", "v0"),
    ],
)
def test_an_absurd_arxiv_version_is_refused_naming_it(
    storage: Storage, version: str, shown: str
) -> None:
    data = sample("arxiv_api.xml").replace(
        "<id>http://arxiv.org/abs/2206.06921v3</id>",
        f"<id>http://arxiv.org/abs/2206.06921v{version}</id>",
    )
    message = refused(storage, "arxiv-api", data)
    assert "entry 1 (http://arxiv.org/abs/2206.06921v" in message
    assert "the id's version" in message
    assert shown in message
    assert "is not between 1 and 9,999" in message
    assert len(message) < 300


def test_an_absurd_version_in_an_arxiv_listing_item_is_refused(storage: Storage) -> None:
    data = sample("arxiv_listing.rss").replace(
        "oai:arXiv.org:2408.12637v1", "oai:arXiv.org:2408.12637v99999999999"
    )
    message = refused(storage, "arxiv-rss", data)
    assert "item 1 (oai:arXiv.org:2408.12637v99999999999): the id's version" in message


def test_a_sixty_character_old_style_id_is_refused(storage: Storage) -> None:
    long_id = "hep-" + "t" * 49 + "/9901001"
    assert len(long_id) == 61
    data = sample("arxiv_api.xml").replace(
        "<id>http://arxiv.org/abs/2206.06921v3</id>", f"<id>http://arxiv.org/abs/{long_id}</id>"
    )
    message = refused(storage, "arxiv-api", data)
    assert "entry 1 (" in message
    assert "the id is not an arXiv id" in message
    assert long_id not in message  # quoted shortened


def test_a_long_old_style_id_elsewhere_keeps_the_paper_by_title(storage: Storage) -> None:
    long_id = "hep-" + "t" * 49 + "/9901001"
    data = sample("blog.atom").replace(
        "https://arxiv.org/abs/2402.03300v2", f"https://arxiv.org/abs/{long_id}"
    )
    summary = pipeline.ingest(storage, "blog", data.encode(), NOW, "feed")
    assert summary.new == 3
    assert "2402.03300" not in stored_versions(storage)


def test_dates_outside_what_utc_can_hold_are_dropped(storage: Storage) -> None:
    data = sample("blog.atom").replace(
        "<published>2024-02-20T10:15:00+01:00</published>",
        "<published>0001-01-01T00:00:00+01:00</published>",
    )
    api = sample("arxiv_api.xml").replace(
        "<published>2022-06-14T15:35:19Z</published>",
        "<published>0001-01-01T00:30:00+05:00</published>",
    )
    assert pipeline.ingest(storage, "blog", data.encode(), NOW, "feed").new == 3
    assert pipeline.ingest(storage, "api", api.encode(), NOW, "arxiv-api").new == 4
    with storage.engine.connect() as conn:
        dates = conn.execute(select(papers.c.published_at)).scalars().all()
    assert all(d is None or d.year > 1 for d in dates)
