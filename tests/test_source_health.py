"""Source health: empty listings are quiet, repeated failures are flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier import pipeline
from notifier.app import make_fetcher
from notifier.errors import ListingError
from notifier.ingest import PARSERS
from notifier.models import Listing
from notifier.settings import Settings, SourceConfig, load_settings
from notifier.storage import Storage
from tests.conftest import NOW, Cli, SmtpServer

GOOD = b'[{"paper": {"id": "2409.00001", "title": "Robots", "summary": "Robots learn."}}]'


def test_empty_listing_is_recorded_with_its_reason_and_does_not_alarm(
    storage: Storage, settings: Settings, tmp_path: Path
) -> None:
    listing = tmp_path / "daily.json"
    source = SourceConfig(name="hf", kind="hf-api", url=str(listing))
    fetcher = make_fetcher(settings)
    listing.write_bytes(b"[not json")
    for hour in range(2):
        with pytest.raises(ListingError):
            pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=hour))
    assert storage.source_state("hf").consecutive_failures == 2  # type: ignore[union-attr]

    listing.write_bytes(b"[]")
    summary = pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=3))
    assert (summary.status, summary.papers) == ("empty", 0)
    assert summary.reason == (
        "Hugging Face listed no papers (a weekend, a holiday, or a day not yet published)"
    )
    state = storage.source_state("hf")
    assert state is not None
    assert (state.last_status, state.consecutive_failures, state.last_error) == ("empty", 0, None)
    [latest, *_] = storage.ingest_runs()
    assert (latest.status, latest.reason) == ("empty", summary.reason)

    listing.write_bytes(GOOD)
    ok = pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=4))
    assert (ok.status, ok.new) == ("ok", 1)
    fetcher.close()


def test_repeated_failures_flag_the_source_until_it_recovers(run: Cli, tmp_path: Path) -> None:
    listing = tmp_path / "daily.json"
    listing.write_bytes(b"<!DOCTYPE html><html><body>Bad gateway</body></html>")
    (tmp_path / "notifier.toml").write_text(
        f'failure_alert_after = 2\n[[sources]]\nname = "hf"\nkind = "hf-api"\nurl = "{listing}"\n'
    )
    for _ in range(2):
        result = run("ingest", "--all")
        assert result.exit_code == 1
        assert result.stderr == (
            "notifier: error: listing 'hf': expected JSON but got an HTML page (an error page?)\n"
        )
    sources = run("sources").stdout.splitlines()
    assert sources[0] == f"hf [hf-api] FAILING: {listing}"
    assert "2 failure(s) in a row" in sources[1]
    assert "source FAILING: hf: 2 failures in a row" in run("status").stdout

    listing.write_bytes(b"[]")
    quiet = run("ingest", "--all")
    assert quiet.exit_code == 0
    assert quiet.stdout.startswith("hf: empty: Hugging Face listed no papers")
    assert "FAILING" not in run("sources").stdout
    status = run("status").stdout
    assert "FAILING" not in status
    assert "empty  hf: Hugging Face listed no papers" in status


def test_due_sources_follow_each_poll_interval(settings: Settings) -> None:
    hourly = SourceConfig(name="a", kind="feed", url="https://x.example/feed", every="1h")
    daily = SourceConfig(name="b", kind="feed", url="https://x.example/b", every="1d")
    off = SourceConfig(name="c", kind="feed", url="https://x.example/c", enabled=False)
    configured = load_settings(state_dir=settings.state_dir, sources=[hourly, daily, off]).sources
    from notifier.models import SourceState

    health = [
        SourceState("a", "feed", "u", last_checked_at=NOW - timedelta(minutes=61)),
        SourceState("b", "feed", "u", last_checked_at=NOW - timedelta(hours=2)),
    ]
    assert [s.name for s in pipeline.due_sources(configured, health, NOW)] == ["a"]
    assert [s.name for s in pipeline.due_sources(configured, [], NOW)] == ["a", "b"]


def test_one_source_that_raises_anything_fails_alone_and_the_cycle_goes_on(
    run: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    # A source that fails: once it stopped run-once before any later source, digest
    # or job record were made.
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'[{"paper": {"id": "2409.00002", "title": "T", "summary": ')
    good = tmp_path / "good.json"
    good.write_bytes(GOOD)
    (tmp_path / "notifier.toml").write_text(
        "failure_alert_after = 1\n"
        f'[[sources]]\nname = "bad"\nkind = "hf-api"\nurl = "{bad}"\n'
        f'[[sources]]\nname = "good"\nkind = "hf-api"\nurl = "{good}"\n'
    )
    run.env.update({"NOTIFIER_SMTP_URL": smtp_server.url, "NOTIFIER_MATCHING": "lexical"})
    run.subscribe_earlier("ada@example.org", "--interest", "r=robots")
    result = run("run-once")
    assert result.exit_code == 1
    assert "notifier: error: listing 'bad': " in result.stderr
    assert "good: 1 papers, 1 new" in result.stdout  # the later source was polled
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [["ada@example.org"]]
    sources = run("sources").stdout
    assert f"bad [hf-api] FAILING: {bad}" in sources
    assert "1 failure(s) in a row" in sources
    status = run("status").stdout
    assert "run-once: failed" in status and "still running" not in status


def test_health_is_unhealthy_after_a_job_that_never_finished(run: Cli, storage: Storage) -> None:
    storage.start_job("run-once", "worker-1", datetime.now(UTC) - timedelta(hours=2))
    result = run("health", "--max-age", "1h")
    assert result.exit_code == 1
    assert "unhealthy: run-once started 120 min ago on worker-1 and has not finished" in (
        result.stderr
    )


def test_a_parser_that_raises_its_own_exception_fails_only_its_source(
    storage: Storage, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A parser with a bug of its own (it raised OverflowError on "upvotes": 1e999):
    # a fake parser stands in for it, as no bundled parser raises anything but
    # ListingError any more (tests/test_fuzz.py).
    real = PARSERS["hf-api"]

    def buggy(data: bytes, source: str, content_type: str | None) -> Listing:
        if b"BOOM" in data:
            raise OverflowError("int too large to convert to float")
        return real(data, source, content_type)

    monkeypatch.setitem(PARSERS, "hf-api", buggy)
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_bytes(b"BOOM")
    good.write_bytes(GOOD)
    configured = settings.model_copy(
        update={
            "sources": [
                SourceConfig(name="bad", kind="hf-api", url=str(bad)),
                SourceConfig(name="good", kind="hf-api", url=str(good)),
            ]
        }
    )
    fetcher = make_fetcher(configured)
    summaries, errors = pipeline.ingest_due(storage, fetcher, configured, NOW)
    fetcher.close()
    assert [s.source for s in summaries] == ["good"]
    assert errors == [
        "listing 'bad': could not be read (OverflowError: int too large to convert to float); "
        "it is kept for `notifier replay` once the parser is fixed"
    ]
    state = storage.source_state("bad")
    assert state is not None and (state.last_status, state.consecutive_failures) == ("failed", 1)
    failed = next(run for run in storage.ingest_runs() if run.source == "bad")
    assert failed.status == "failed"
    assert "OverflowError" in (failed.error or "")
