"""Importing subscribers in bulk: all or none, and embedded after, never inside the cycle."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier import pipeline
from notifier.embedding import MODEL_ID
from notifier.models import Interest
from notifier.pipeline import compose, cycle
from notifier.settings import Settings, load_settings
from notifier.storage import Storage
from tests.conftest import JOINED, NOW, Cli, WebServer, seed_bytes


def line(email: str, *interests: dict[str, str], name: str | None = None) -> str:
    """Return one import line."""
    data: dict[str, Any] = {"email": email, "interests": list(interests)}
    if name is not None:
        data["name"] = name
    return json.dumps(data)


ROBOTS = {"name": "Robots", "query": "robot*", "about": "robot arms that grasp and place"}
LANGUAGE = {"name": "Language", "about": "large language models that reason step by step"}


def write(tmp_path: Path, *lines: str) -> str:
    """Write an import file; return its path."""
    path = tmp_path / "people.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_an_import_adds_everyone_listed_and_leaves_present_subscribers_alone(
    run: Cli, tmp_path: Path
) -> None:
    assert run("subscribe", "ada@example.org", "--interest", "old=quantum").exit_code == 0
    path = write(
        tmp_path,
        line("ada@example.org", LANGUAGE),
        line("grace@example.org", ROBOTS, LANGUAGE, name="Grace Hopper"),
        "",
        line("alan@example.org", {"query": '"graph neural networks"'}),
    )
    result = run("subscriber", "import", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "imported 2 subscriber(s); 1 already subscribed, left as they were"
    )
    listed = {
        s["email"]: s for s in map(json.loads, run("subscribers", "--json").stdout.split("\n")[:-1])
    }
    assert listed["grace@example.org"]["name"] == "Grace Hopper"
    assert [i["name"] for i in listed["grace@example.org"]["interests"]] == ["Robots", "Language"]
    assert listed["alan@example.org"]["interests"][0]["query"] == '"graph neural networks"'
    assert [i["name"] for i in listed["ada@example.org"]["interests"]] == ["old"]


@pytest.mark.parametrize(
    ("second", "error"),
    [
        (line("bad@example.org", {"query": "robot AND ("}), "line 2: "),
        (line("not an address", ROBOTS), "line 2: 'not an address' is not a valid email address"),
        (line("ada@example.org", ROBOTS), "line 2: ada@example.org is listed twice"),
        ('{"email": "x@example.org", "interest": []}', "line 2: unknown field(s) interest"),
        ("{not json", "line 2: not JSON"),
        (line("empty@example.org"), "line 2: describe at least one interest"),
    ],
)
def test_a_bad_line_imports_nothing_and_names_the_line(
    run: Cli, tmp_path: Path, second: str, error: str
) -> None:
    path = write(tmp_path, line("ada@example.org", ROBOTS), second)
    result = run("subscriber", "import", path)
    assert result.exit_code == 1
    [message] = result.stderr.splitlines()
    assert message.startswith(f"notifier: error: {path}: {error}"), message
    assert message.endswith("; nothing was imported")
    assert run("subscribers").stdout == ""


def test_an_empty_or_missing_file_says_so(run: Cli, tmp_path: Path) -> None:
    empty = write(tmp_path, "")
    result = run("subscriber", "import", empty)
    assert result.exit_code == 1
    assert "lists no subscribers" in result.stderr
    missing = run("subscriber", "import", str(tmp_path / "nowhere.jsonl"))
    assert missing.exit_code != 0
    assert "nowhere.jsonl" in missing.stderr


def test_imported_interests_wait_for_embed_and_status_says_how_many(
    run: Cli, tmp_path: Path
) -> None:
    run.env["NOTIFIER_MATCHING"] = "hybrid"
    path = write(
        tmp_path,
        line("grace@example.org", ROBOTS, LANGUAGE),
        line("alan@example.org", {"query": "transformer*"}),
    )
    imported = run("subscriber", "import", path)
    assert imported.exit_code == 0, imported.stderr
    assert "3 interest(s) wait for their embeddings" in imported.stdout
    assert "interests waiting for their embeddings: 3" in run("status").stdout
    embedded = run("embed")
    assert embedded.exit_code == 0, embedded.stderr
    assert "embedded 3 of 3 interests" in embedded.stderr
    assert "waiting for their embeddings" not in run("status").stdout
    assert run("embed").stdout.strip() == "every interest has its embeddings"


def _hybrid(tmp_path: Path, database_url: str) -> Settings:
    (tmp_path / "state").mkdir(exist_ok=True)
    return load_settings(
        state_dir=tmp_path / "state",
        database_url=database_url,
        sender_address="digests@notifier.test.example",
        secret_key="test-link-key-0123456789abcdef",
        matching="hybrid",
    )


def test_composing_embeds_only_a_few_interests_itself(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _hybrid(tmp_path, database_url)
    storage = Storage(settings.database)
    storage.migrate()
    pipeline.ingest(storage, "day0", seed_bytes(0), NOW - timedelta(hours=1))
    about = ["robot arms that grasp", "language models that reason", "protein structure"]
    storage.add_subscribers(
        [(f"r{n}@example.org", None, [Interest("x", about=about[n % 3])]) for n in range(6)],
        JOINED,
    )
    monkeypatch.setattr(compose, "EMBED_IN_COMPOSE", 2)
    outcomes = pipeline.compose_due(storage, settings, NOW)
    # Every digest is composed; the interests it did not embed matched by their words.
    assert outcomes["created"] + outcomes["empty"] == 6
    assert storage.count_interests_to_embed(MODEL_ID) == 4
    # The two with the description it could not embed were matched by their
    # words; they are decided on the whole window again once embedded.
    changed = [i.changed_at for s in storage.subscribers() for i in s.interests]
    assert changed.count(NOW) == 2
    monkeypatch.setattr(cycle, "EMBED_PER_RUN", 3)
    work = cycle.Cycle(settings, storage, fetcher=None, clock=lambda: NOW)  # type: ignore[arg-type]
    assert work.embed_pending() == 3
    assert storage.count_interests_to_embed(MODEL_ID) == 1
    storage.close()


TOKEN = "admin-token-0123456789-abcdef"


def test_the_api_imports_all_or_none_and_embeds_in_the_background(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web(admin_token=TOKEN, matching="hybrid")
    web.context.prepare_matching()
    people = [
        {"email": "grace@example.org", "name": "Grace", "interests": [ROBOTS, LANGUAGE]},
        {"email": "alan@example.org", "interests": [{"name": "tf", "query": "transformer*"}]},
    ]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"{web.url}/api/v1", headers=headers, timeout=30) as http:
        bad = http.post(
            "/subscribers/import",
            json={"subscribers": [*people, {"email": "x@example.org", "interests": []}]},
        )
        assert bad.status_code == 422
        assert http.get("/subscribers").json()["items"] == []
        twice = http.post("/subscribers/import", json={"subscribers": [people[0], people[0]]})
        assert twice.status_code == 400
        assert "listed twice" in twice.text
        done = http.post("/subscribers/import", json={"subscribers": people})
        assert done.status_code == 202, done.text
        assert done.json()["created"] == 2
        assert done.json()["already_subscribed"] == 0
        assert done.json()["interests_to_embed"] == 3
        again = http.post("/subscribers/import", json={"subscribers": people[:1]})
        assert again.json()["created"] == 0 and again.json()["already_subscribed"] == 1
        names = [s["email"] for s in http.get("/subscribers").json()["items"]]
        assert names == ["grace@example.org", "alan@example.org"]
    deadline = time.monotonic() + 60
    while web.storage.count_interests_to_embed(MODEL_ID) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert web.storage.count_interests_to_embed(MODEL_ID) == 0
