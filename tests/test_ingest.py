"""Ingest and diff against stored state, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from notifier import pipeline
from notifier.errors import ListingError
from notifier.ingest.fetch import Fetcher
from notifier.ingest.snapshot import parse_snapshot
from notifier.settings import SourceConfig
from notifier.storage import Storage
from tests.conftest import NOW, SEED_FILES, Cli, seed_bytes

SOURCES = Path(__file__).resolve().parent / "data" / "sources"
ABSTRACT = "A careful study of something that matters, with results and a long explanation. " * 2


def stored_titles(storage: Storage) -> set[tuple[str, str]]:
    with storage.engine.connect() as conn:
        return {(r.key, r.title) for r in conn.execute(text("SELECT key, title FROM papers"))}


def test_each_ingest_reports_papers_new_and_seen(storage: Storage) -> None:
    summaries = [
        pipeline.ingest(storage, f.name, f.read_bytes(), NOW + timedelta(days=i))
        for i, f in enumerate(SEED_FILES)
    ]
    assert [(s.papers, s.new, s.seen) for s in summaries] == [
        (72, 72, 0),
        (102, 87, 15),
        (71, 51, 20),
        (187, 165, 22),
        (64, 36, 28),
    ]
    assert storage.count_papers() == 411


def test_ingesting_the_same_file_twice_gives_nothing_new(storage: Storage) -> None:
    first = pipeline.ingest(storage, "a", seed_bytes(0), NOW)
    second = pipeline.ingest(storage, "a", seed_bytes(0), NOW + timedelta(hours=1))
    assert (first.new, second.new, second.seen, second.updated) == (72, 0, 72, 0)
    assert storage.count_papers() == 72


def test_ingest_order_does_not_change_the_final_set(storage: Storage, tmp_path: Path) -> None:
    for i, f in enumerate(SEED_FILES):
        pipeline.ingest(storage, f.name, f.read_bytes(), NOW + timedelta(days=i))
    other = Storage(f"sqlite:///{tmp_path / 'reverse.db'}")
    other.migrate()
    for i, f in enumerate(reversed(SEED_FILES)):
        pipeline.ingest(other, f.name, f.read_bytes(), NOW + timedelta(days=i))
    assert stored_titles(storage) == stored_titles(other)
    assert len(stored_titles(other)) == 411
    other.close()


def test_every_sighting_is_kept(storage: Storage) -> None:
    pipeline.ingest(storage, "day1", seed_bytes(0), NOW)
    pipeline.ingest(storage, "day1-again", seed_bytes(0), NOW + timedelta(hours=1))
    with storage.engine.connect() as conn:
        sightings = conn.execute(text("SELECT count(*) FROM sightings")).scalar_one()
    assert sightings == 144


def test_changed_abstract_is_an_update_not_a_new_paper(storage: Storage) -> None:
    pipeline.ingest(storage, "v1", f"A Paper\n{ABSTRACT}\n".encode(), NOW)
    again = pipeline.ingest(storage, "v2", f"A Paper\n{ABSTRACT} Revised.\n".encode(), NOW)
    assert (again.new, again.updated) == (0, 1)
    [paper] = storage.latest_papers(10)
    assert paper.abstract.endswith("Revised.")
    assert paper.first_seen_at == NOW


def test_title_keyed_paper_is_merged_when_an_arxiv_id_appears(storage: Storage) -> None:
    pipeline.ingest(storage, "snapshot", f"Deep Nets\n{ABSTRACT}\n".encode(), NOW)
    [before] = storage.latest_papers(10)
    api = json.dumps(
        [{"paper": {"id": "2409.00001", "title": "Deep  nets", "summary": ABSTRACT}}]
    ).encode()
    summary = pipeline.ingest(storage, "hf", api, NOW + timedelta(days=1), "hf-api")
    assert (summary.new, summary.updated) == (0, 1)
    [after] = storage.latest_papers(10)
    assert after.id == before.id
    assert after.guid == before.guid  # feed identity survives the merge
    assert after.key == "arxiv:2409.00001"
    assert after.url == "https://arxiv.org/abs/2409.00001"
    # The snapshot, seen again, still finds the paper by its title.
    again = pipeline.ingest(storage, "snapshot", f"Deep Nets\n{ABSTRACT}\n".encode(), NOW)
    assert (again.new, again.seen) == (0, 1)
    assert storage.count_papers() == 1


@pytest.mark.parametrize(
    "data",
    [
        f"Good Paper\n{ABSTRACT}\nTitle Without Abstract\nNext Title\n{ABSTRACT}\n".encode(),
        b"\x00\x01\x02 binary junk",
        b"",
    ],
    ids=["title-without-abstract", "binary", "empty"],
)
def test_malformed_listing_is_refused_whole_and_recorded_failed(
    storage: Storage, data: bytes
) -> None:
    with pytest.raises(ListingError) as info:
        pipeline.ingest(storage, "broken.txt", data, NOW)
    assert str(info.value).startswith("listing 'broken.txt': ")
    assert storage.count_papers() == 0
    [run] = storage.ingest_runs()
    assert (run.source, run.status, run.papers) == ("broken.txt", "failed", 0)
    assert run.error == str(info.value)


def test_cli_ingest_json_prints_one_object_per_listing(run: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(f"Title\n{ABSTRACT}\nLonely title\n")
    result = run("ingest", "--json", str(SEED_FILES[0]), str(SEED_FILES[0]), str(bad))
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {
        "source": str(SEED_FILES[0]),
        "papers": 72,
        "new": 72,
        "seen": 0,
        "updated": 0,
        "skipped": 0,
        "status": "ok",
        "run": 1,
    }
    assert (lines[1]["new"], lines[1]["seen"]) == (0, 72)
    assert lines[2] == {
        "source": str(bad),
        "error": f"listing '{bad}': line 3: title 'Lonely title' has no abstract (file ends)",
    }


def test_cli_ingest_a_directory_and_stdin(run: Cli) -> None:
    result = run("ingest", str(SEED_FILES[0].parent))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[3].endswith(
        "003_558e1e3b1f18bc49.txt: 187 papers, 165 new, 22 seen before"
    )
    again = run("ingest", "-", input=seed_bytes(4))
    assert again.output == "stdin: 64 papers, 0 new, 64 seen before\n"


def test_cli_missing_file_is_one_line(run: Cli, tmp_path: Path) -> None:
    result = run("ingest", str(tmp_path / "nope.txt"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"notifier: error: listing '{tmp_path / 'nope.txt'}': cannot read the file: "
        "No such file or directory\n"
    )


def over_the_cap(name: str) -> str:
    """Return the line refusing a listing over a max_listing_bytes of 2,000."""
    return (
        f"listing '{name}': larger than max_listing_bytes (2,000 bytes); refused "
        "(raise NOTIFIER_MAX_LISTING_BYTES to read it)"
    )


def test_cli_refuses_files_and_stdin_over_max_listing_bytes(run: Cli, tmp_path: Path) -> None:
    run.env["NOTIFIER_MAX_LISTING_BYTES"] = "2000"
    folder = tmp_path / "listings"
    folder.mkdir()
    big = folder / "a-big.txt"
    big.write_bytes(seed_bytes(0))
    assert big.stat().st_size > 2000
    (folder / "b-small.txt").write_text(f"A small listing of one paper\n{ABSTRACT}\n")

    result = run("ingest", str(folder))
    assert result.exit_code == 1
    assert result.stderr == f"notifier: error: {over_the_cap(str(big))}\n"
    assert result.stdout.endswith("b-small.txt: 1 papers, 1 new, 0 seen before\n")

    piped = run("ingest", "-", input=seed_bytes(1))
    assert piped.exit_code == 1
    assert piped.stderr == f"notifier: error: {over_the_cap('stdin')}\n"
    status = run("status").output
    assert "papers: 1," in status
    assert (
        sum("failed" in line and "max_listing_bytes" in line for line in status.splitlines()) == 2
    )


def test_a_configured_file_source_over_max_listing_bytes_fails_its_run(
    storage: Storage, tmp_path: Path
) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(seed_bytes(0))
    fetcher = Fetcher(user_agent="notifier-test", max_bytes=2000)
    source = SourceConfig(name="local", kind="snapshot", url=str(path))
    try:
        with pytest.raises(ListingError) as caught:
            pipeline.ingest_source(storage, fetcher, source, NOW)
    finally:
        fetcher.close()
    assert str(caught.value) == over_the_cap("local").replace("'local'", f"'{path}'")
    state = storage.source_state("local")
    assert state is not None
    assert (state.last_status, state.last_error) == ("failed", str(caught.value))
    assert storage.count_papers() == 0


def test_an_untitled_feed_entry_is_skipped_and_counted_in_the_run(
    run: Cli, storage: Storage, tmp_path: Path
) -> None:
    feed = tmp_path / "blog.atom"
    data = (SOURCES / "blog.atom").read_bytes()
    feed.write_bytes(data.replace(b"<title>Group photo, winter 2024</title>", b"<title/>"))

    result = run("ingest", "--kind", "feed", str(feed))
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(f"{feed}: 3 papers, 2 new, 0 seen before, 1 skipped\n")
    [ingest_run] = storage.ingest_runs()
    assert (ingest_run.status, ingest_run.papers, ingest_run.new, ingest_run.skipped) == (
        "ok",
        3,
        2,
        1,
    )


def test_parse_is_pure_and_does_not_depend_on_storage() -> None:
    assert len(parse_snapshot(seed_bytes(2), "x").papers) == 71
