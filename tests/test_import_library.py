"""Teaching interests by example papers: `subscriber import-library` and the admin API's
ratings routes, on a real database (SQLite and PostgreSQL) and over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from notifier import pipeline
from notifier.models import ExampleOrigin, Verdict
from notifier.storage import Storage
from notifier.storage.feedback import MAX_EXAMPLES
from notifier.storage.schema import interest_examples, muted_authors, papers
from tests.conftest import DATA, NOW, Cli, WebServer, seed_bytes

LIBRARY = DATA / "library"
TOKEN = "admin-token-0123456789-abcdef"
READER = "reader@example.org"
ZOTERO_BIB = [
    "Conservative Q-Learning for Offline Reinforcement Learning",
    "Mastering Atari, Go, chess and shogi by planning with a learned model",
    "Dream to Control: Learning Behaviors by Latent Imagination with Möbius world models",
]
MENDELEY_RIS = [
    "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
    "RT-2: Vision-Language-Action Models Transfer Web Knowledge to Robotic Control",
]
# The third item repeats the first's title in other case: one paper.
ZOTERO_JSON = [
    "Voyager: An Open-Ended Embodied Agent with Large Language Models",
    "Reflexion: Language Agents with Verbal Reinforcement Learning",
]
BAD_FILES = {
    "notes.txt": "library 'notes.txt': not a BibTeX, RIS or CSL-JSON export; export the "
    "collection from Zotero, Mendeley or Google Scholar in one of these formats",
    "broken.bib": "library 'broken.bib': a BibTeX entry at line 5 is not valid (an unclosed "
    "brace?); fix it and try again",
    "empty.ris": "library 'empty.ris': empty file; nothing to import",
}


def subscribe(run: Cli, email: str = READER) -> None:
    """Subscribe email with two interests, robots and llm, insisting it works."""
    result = run("subscribe", email, "--interest", "robots=robot*", "--interest", "llm=LLM")
    assert result.exit_code == 0, result.stderr


def titles(storage: Storage, email: str = READER) -> list[tuple[str, str]]:
    """Return the (interest, title) of a subscriber's examples, sorted."""
    subscriber = storage.subscriber_by_email(email)
    return sorted((e.interest, e.title) for e in storage.examples_of(subscriber.id))


def example_rows(storage: Storage, subscriber_id: int) -> tuple[int, int]:
    """Count a subscriber's example and muted author rows, whatever their interests."""
    with storage.engine.connect() as conn:
        examples = conn.execute(
            select(func.count())
            .select_from(interest_examples)
            .where(interest_examples.c.subscriber_id == subscriber_id)
        ).scalar_one()
        muted = conn.execute(
            select(func.count())
            .select_from(muted_authors)
            .where(muted_authors.c.subscriber_id == subscriber_id)
        ).scalar_one()
    return examples, muted


# -- the command ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [("zotero.bib", ZOTERO_BIB), ("mendeley.ris", MENDELEY_RIS), ("zotero.json", ZOTERO_JSON)],
)
def test_a_library_export_teaches_an_interest_once(
    run: Cli, storage: Storage, file_name: str, expected: list[str]
) -> None:
    subscribe(run)
    path = str(LIBRARY / file_name)

    first = run("subscriber", "import-library", READER, path, "--interest", "robots")
    assert first.exit_code == 0, first.stderr
    assert first.stdout == (
        f"imported {len(expected)} papers from {file_name} into {READER}'s interest 'robots'; "
        "they teach its next digest\n"
    )
    assert titles(storage) == sorted(("robots", t) for t in expected)
    subscriber = storage.subscriber_by_email(READER)
    stored = storage.examples_of(subscriber.id)
    assert {(e.verdict, e.origin, e.paper_id) for e in stored} == {
        (Verdict.MORE, ExampleOrigin.LIBRARY, None)
    }
    assert all(e.abstract for e in stored if e.title.startswith(("Conservative", "Voyager")))

    again = run("subscriber", "import-library", READER, path, "--interest", "robots")
    assert again.exit_code == 0, again.stderr
    assert again.stdout == (
        f"imported 0 papers from {file_name} into {READER}'s interest 'robots' "
        f"({len(expected)} already there)\n"
    )
    assert len(storage.examples_of(subscriber.id)) == len(expected)


def test_papers_already_there_are_counted_and_the_rest_added(run: Cli, storage: Storage) -> None:
    subscribe(run)
    bib = str(LIBRARY / "zotero.bib")
    ris = str(LIBRARY / "mendeley.ris")
    assert run("subscriber", "import-library", READER, ris, "--interest", "llm").exit_code == 0
    # Another interest's papers do not count as already there; the interest's name
    # is found whatever its case.
    first = run("subscriber", "import-library", READER, bib, "--interest", "LLM")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith("imported 3 papers from zotero.bib")
    assert titles(storage) == sorted([("llm", t) for t in ZOTERO_BIB + MENDELEY_RIS])


@pytest.mark.parametrize("file_name", sorted(BAD_FILES))
def test_a_file_that_cannot_be_read_is_one_line_and_imports_nothing(
    run: Cli, storage: Storage, file_name: str
) -> None:
    subscribe(run)
    path = str(LIBRARY / file_name)
    result = run("subscriber", "import-library", READER, path, "--interest", "robots")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"notifier: error: {BAD_FILES[file_name]}\n"
    assert titles(storage) == []


def test_a_library_beyond_what_an_interest_holds_imports_nothing(
    run: Cli, storage: Storage, tmp_path: Path
) -> None:
    subscribe(run)
    bib = str(LIBRARY / "zotero.bib")
    assert run("subscriber", "import-library", READER, bib, "--interest", "robots").exit_code == 0
    many = tmp_path / "many.bib"
    many.write_text(
        "".join(f"@article{{p{k},\n  title = {{Paper number {k}}},\n}}\n" for k in range(2_000))
    )
    result = run("subscriber", "import-library", READER, str(many), "--interest", "robots")
    assert result.exit_code == 1
    assert result.stderr == (
        f"notifier: error: library 'many.bib': the interest would hold 2003 example papers; "
        f"at most {MAX_EXAMPLES:,} can teach one interest: remove some first; "
        "nothing was imported\n"
    )
    assert titles(storage) == sorted(("robots", t) for t in ZOTERO_BIB)


def test_an_unknown_address_or_interest_is_one_line(run: Cli, storage: Storage) -> None:
    subscribe(run)
    bib = str(LIBRARY / "zotero.bib")

    nobody = run("subscriber", "import-library", "nobody@example.org", bib, "--interest", "rl")
    assert nobody.exit_code == 1
    assert nobody.stderr == "notifier: error: no subscriber with email nobody@example.org\n"

    not_an_address = run("subscriber", "import-library", "nobody", bib, "--interest", "rl")
    assert not_an_address.stderr == "notifier: error: no subscriber with email nobody\n"

    no_interest = run("subscriber", "import-library", READER, bib, "--interest", "rl")
    assert no_interest.exit_code == 1
    assert no_interest.stderr == (
        f"notifier: error: subscriber {READER} has no interest named 'rl' "
        "(their interests: robots, llm)\n"
    )
    assert titles(storage) == []


def test_a_missing_file_is_refused_before_anything_is_opened(run: Cli) -> None:
    result = run(
        "subscriber", "import-library", READER, str(LIBRARY / "nope.bib"), "--interest", "rl"
    )
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# -- the admin API ------------------------------------------------------------------------


@pytest.fixture
def admin(serve_web: Callable[..., WebServer]) -> Iterator[tuple[WebServer, httpx.Client]]:
    """Start the app with an admin token and yield it with a client that sends the token."""
    server = serve_web(admin_token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30) as http:
        yield server, http


def create(http: httpx.Client, email: str, *names: str) -> int:
    """Create a subscriber with interests of these names; return their id."""
    interests = [{"name": name, "query": "robot*"} for name in names or ("robots", "llm")]
    response = http.post("/subscribers", json={"email": email, "interests": interests})
    assert response.status_code == 201, response.text
    created: int = response.json()["id"]
    return created


def upload(file_name: str, content: str | None = None) -> dict[str, str]:
    """Return the JSON body importing a shipped export (or content under file_name)."""
    text = (LIBRARY / file_name).read_text() if content is None else content
    return {"file_name": file_name, "content": text}


def library_url(subscriber_id: int, interest: str) -> str:
    """Return the path importing into one of a subscriber's interests."""
    return f"/subscribers/{subscriber_id}/interests/{quote(interest, safe='')}/library"


def test_ratings_are_listed_imported_and_removed(
    admin: tuple[WebServer, httpx.Client],
) -> None:
    server, http = admin
    storage = server.storage
    reader = create(http, READER)
    pipeline.ingest(storage, "day1", seed_bytes(0), NOW - timedelta(hours=1))
    with storage.engine.connect() as conn:
        paper_id, paper_title = conn.execute(
            select(papers.c.id, papers.c.title).order_by(papers.c.id).limit(1)
        ).one()
    subscriber = storage.subscriber_by_id(reader)
    assert subscriber is not None
    robots, llm = (i.interest_id for i in subscriber.interests)
    assert robots is not None and llm is not None
    assert storage.rate(reader, llm, paper_id, Verdict.LESS, NOW) is not None
    storage.mute_author(reader, "Ada Lovelace", NOW)

    imported = http.post(library_url(reader, "robots"), json=upload("zotero.bib"))
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"imported": 3}
    again = http.post(library_url(reader, "robots"), json=upload("zotero.bib"))
    assert again.json() == {"imported": 0}

    listed = http.get(f"/subscribers/{reader}/ratings")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert set(body) == {"examples", "muted_authors"}
    examples = body["examples"]
    assert {e["title"]: (e["interest"], e["verdict"], e["origin"]) for e in examples} == {
        **dict.fromkeys(ZOTERO_BIB, ("robots", "more", "library")),
        paper_title: ("llm", "less", "rating"),
    }
    for example in examples:
        assert set(example) == {
            "id",
            "interest",
            "interest_id",
            "verdict",
            "origin",
            "title",
            "paper_id",
            "created_at",
        }
        rated = example["origin"] == "rating"
        assert example["paper_id"] == (paper_id if rated else None)
        assert example["interest_id"] == (llm if rated else robots)
    assert [(m["name"], m["created_at"]) for m in body["muted_authors"]] == [
        ("Ada Lovelace", "2026-03-11T08:00:00Z")
    ]

    dropped = next(e for e in examples if e["title"] == ZOTERO_BIB[0])
    gone = http.delete(f"/subscribers/{reader}/ratings/{dropped['id']}")
    assert gone.status_code == 204
    assert gone.content == b""
    assert ("robots", ZOTERO_BIB[0]) not in titles(storage)
    assert len(storage.examples_of(reader)) == 3
    twice = http.delete(f"/subscribers/{reader}/ratings/{dropped['id']}")
    assert twice.status_code == 404
    assert twice.json() == {
        "detail": f"subscriber {reader} has no example paper with id {dropped['id']}"
    }
    # Dropped, the paper can be imported again.
    assert http.post(library_url(reader, "robots"), json=upload("zotero.bib")).json() == {
        "imported": 1
    }


def test_another_subscribers_example_is_not_found_and_stays(
    admin: tuple[WebServer, httpx.Client],
) -> None:
    server, http = admin
    ada = create(http, "ada@example.org")
    eve = create(http, "eve@example.org")
    assert http.post(library_url(ada, "robots"), json=upload("mendeley.ris")).status_code == 200
    [first, _] = http.get(f"/subscribers/{ada}/ratings").json()["examples"]

    response = http.delete(f"/subscribers/{eve}/ratings/{first['id']}")
    assert response.status_code == 404
    assert response.json() == {
        "detail": f"subscriber {eve} has no example paper with id {first['id']}"
    }
    assert len(server.storage.examples_of(ada)) == 2
    assert http.get(f"/subscribers/{eve}/ratings").json() == {"examples": [], "muted_authors": []}


def test_an_unknown_subscriber_or_interest_is_a_404(
    admin: tuple[WebServer, httpx.Client],
) -> None:
    server, http = admin
    reader = create(http, READER)
    nobody = reader + 1000
    for response in (
        http.get(f"/subscribers/{nobody}/ratings"),
        http.delete(f"/subscribers/{nobody}/ratings/1"),
        http.post(library_url(nobody, "robots"), json=upload("zotero.bib")),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": f"there is no subscriber with id {nobody}"}

    unknown = http.post(library_url(reader, "rl"), json=upload("zotero.bib"))
    assert unknown.status_code == 404
    assert unknown.json() == {
        "detail": f"subscriber {READER} has no interest named 'rl' (their interests: robots, llm)"
    }
    assert server.storage.examples_of(reader) == []


@pytest.mark.parametrize("file_name", sorted(BAD_FILES))
def test_a_file_that_cannot_be_read_is_a_422_naming_it(
    admin: tuple[WebServer, httpx.Client], file_name: str
) -> None:
    server, http = admin
    reader = create(http, READER)
    response = http.post(library_url(reader, "robots"), json=upload(file_name))
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"type": "invalid", "loc": ["body", "content"], "msg": BAD_FILES[file_name]}]
    }
    assert server.storage.examples_of(reader) == []


def test_an_interest_named_with_a_slash_takes_an_import(
    admin: tuple[WebServer, httpx.Client],
) -> None:
    server, http = admin
    reader = create(http, READER, "ML/AI", "robots")
    response = http.post(library_url(reader, "ml/ai"), json=upload("zotero.json"))
    assert response.status_code == 200, response.text
    assert titles(server.storage) == sorted(("ML/AI", t) for t in ZOTERO_JSON)


def test_an_export_up_to_5_mib_is_taken_and_a_larger_body_refused(
    admin: tuple[WebServer, httpx.Client],
) -> None:
    server, http = admin
    reader = create(http, READER)
    # Far over the 64 KiB of a form: 1,500 papers with a long abstract each.
    abstract = "We study robots that learn to grasp. " * 40
    big = "".join(
        f"@article{{p{k},\n  title = {{Robot paper {k}}},\n  abstract = {{{abstract}}}\n}}\n"
        for k in range(1_500)
    )
    assert 2 * 1024 * 1024 < len(big) < 5 * 1024 * 1024
    taken = http.post(library_url(reader, "robots"), json=upload("big.bib", big))
    assert taken.status_code == 200, taken.text[:500]
    assert taken.json() == {"imported": 1_500}

    over_field = http.post(
        library_url(reader, "llm"), json=upload("huge.bib", "x" * (5 * 1024 * 1024 + 1))
    )
    assert over_field.status_code == 422
    [problem] = over_field.json()["detail"]
    assert problem["loc"] == ["body", "content"]
    over_body = http.post(
        library_url(reader, "llm"), json=upload("huge.bib", "x" * (6 * 1024 * 1024))
    )
    assert over_body.status_code == 413
    assert over_body.text == "Request too large: at most 6144 KiB, please.\n"
    # Other routes keep their limits.
    other = http.put(f"/subscribers/{reader}/interests", content=b"[" + b" " * 70_000 + b"]")
    assert other.status_code == 413
    assert len(server.storage.examples_of(reader)) == 1_500


def test_the_routes_need_the_admin_token(admin: tuple[WebServer, httpx.Client]) -> None:
    server, http = admin
    reader = create(http, READER)
    assert http.post(library_url(reader, "robots"), json=upload("zotero.bib")).status_code == 200
    [example, *_] = http.get(f"/subscribers/{reader}/ratings").json()["examples"]
    with httpx.Client(base_url=http.base_url, headers={"Authorization": "Bearer nope"}) as eve:
        for response in (
            eve.get(f"/subscribers/{reader}/ratings"),
            eve.delete(f"/subscribers/{reader}/ratings/{example['id']}"),
            eve.post(library_url(reader, "llm"), json=upload("mendeley.ris")),
        ):
            assert response.status_code == 401
            assert response.json() == {"detail": "missing or wrong bearer token"}
    assert titles(server.storage) == sorted(("robots", t) for t in ZOTERO_BIB)


def test_deleting_a_subscriber_deletes_their_examples_and_muted_authors(
    admin: tuple[WebServer, httpx.Client],
) -> None:
    server, http = admin
    storage = server.storage
    gone, stays = create(http, READER), create(http, "ada@example.org")
    for subscriber_id in (gone, stays):
        response = http.post(library_url(subscriber_id, "robots"), json=upload("zotero.bib"))
        assert response.status_code == 200, response.text
        storage.mute_author(subscriber_id, "Ada Lovelace", NOW)
    assert example_rows(storage, gone) == (3, 1)

    assert http.delete(f"/subscribers/{gone}").status_code == 204
    assert storage.examples_of(gone) == []
    assert storage.muted_authors_of(gone) == []
    assert example_rows(storage, gone) == (0, 0)  # the rows, not only their join
    assert example_rows(storage, stays) == (3, 1)
    assert http.get(f"/subscribers/{gone}/ratings").status_code == 404


def test_the_spec_describes_the_new_routes(admin: tuple[WebServer, httpx.Client]) -> None:
    server, _ = admin
    spec: dict[str, Any] = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    paths = spec["paths"]
    ratings = "/api/v1/subscribers/{subscriber_id}/ratings"
    assert set(paths[ratings]) == {"get"}
    assert set(paths[f"{ratings}/{{example_id}}"]) == {"delete"}
    importing = "/api/v1/subscribers/{subscriber_id}/interests/{name}/library"
    assert set(paths[importing]) == {"post"}
    assert {"400", "413"} <= set(paths[importing]["post"]["responses"])
    for path in (ratings, f"{ratings}/{{example_id}}", importing):
        for operation in paths[path].values():
            assert {"401", "403", "404", "422"} <= set(operation["responses"]), path
            assert operation["security"] == [{"HTTPBearer": []}]
            assert operation["operationId"].isidentifier()
    schemas = spec["components"]["schemas"]
    assert schemas["LibraryUpload"]["properties"]["content"]["maxLength"] == 5 * 1024 * 1024
    assert set(schemas["RatingsOut"]["properties"]) == {"examples", "muted_authors"}
