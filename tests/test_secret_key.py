"""The link-signing key kept in state_dir/secret.key: made once, shared by every process."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest

from notifier.app import secret_key
from notifier.errors import ConfigError
from notifier.settings import Settings


def _settings(state: Path) -> Settings:
    return Settings(state_dir=state)


def _key_after(barrier: Any, state: str, keys: Any) -> None:
    """Wait for the others, then read (or make) the key as a starting process does."""
    barrier.wait()
    try:
        keys.put(secret_key(_settings(Path(state))).decode())
    except ConfigError as e:
        keys.put(f"error: {e}")


def test_processes_starting_together_all_get_the_same_whole_key(tmp_path: Path) -> None:
    # `notifier send --workers N` starts N processes at once on a fresh state_dir.
    context = multiprocessing.get_context("fork")
    for round_ in range(30):
        state = tmp_path / f"round-{round_}"
        barrier = context.Barrier(6)
        keys = context.Queue()
        workers = [
            context.Process(target=_key_after, args=(barrier, str(state), keys)) for _ in range(6)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        seen = {keys.get(timeout=5) for _ in workers}
        assert len(seen) == 1, seen
        (key,) = seen
        assert len(key) == 64 and not key.startswith("error"), key
        assert (state / "secret.key").read_text() == key
        assert [p.name for p in state.iterdir()] == ["secret.key"]  # no temporary left


def test_the_key_file_is_private_and_kept_across_starts(tmp_path: Path) -> None:
    first = secret_key(_settings(tmp_path))
    assert secret_key(_settings(tmp_path)) == first
    mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
    assert mode == 0o600


def test_an_emptied_key_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("")
    with pytest.raises(ConfigError, match=r"secret.key' holds no usable key: delete it"):
        secret_key(_settings(tmp_path))


def test_with_postgresql_a_key_is_never_invented(tmp_path: Path) -> None:
    shared = Settings(
        state_dir=tmp_path, database_url="postgresql+psycopg://notifier@db.example.internal/n"
    )
    with pytest.raises(ConfigError, match="with PostgreSQL, set NOTIFIER_SECRET_KEY"):
        secret_key(shared)
    assert not (tmp_path / "secret.key").exists()
    # A key put in place by the operator (a shared volume) is used as it is.
    (tmp_path / "secret.key").write_text("k" * 32)
    assert secret_key(shared) == b"k" * 32
