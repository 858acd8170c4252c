"""Interests are embedded when they are written, so the cycle finds their vectors stored."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from notifier.embedding import MODEL_ID
from notifier.storage import Storage
from tests.conftest import Cli, WebServer

TOKEN = "admin-token-0123456789-abcdef"


def stored_vectors(storage: Storage, email: str) -> int:
    """Return how many of a subscriber's interests have stored embeddings."""
    subscriber = storage.subscriber_by_email(email)
    ids = [i.interest_id for i in subscriber.interests if i.interest_id is not None]
    return len(storage.interest_vectors(ids, MODEL_ID))


def test_interests_saved_from_the_cli_are_embedded_at_once(run: Cli) -> None:
    run.env["NOTIFIER_MATCHING"] = "hybrid"
    saved = run(
        "subscribe",
        "a@example.org",
        "--about",
        "arms=robot arms that grasp cups",
        "--interest",
        'rl="reinforcement learning"',
    )
    assert saved.exit_code == 0, saved.stderr
    storage = Storage(run.env["NOTIFIER_DATABASE_URL"])
    try:
        assert stored_vectors(storage, "a@example.org") == 2
        changed = run("subscriber", "edit", "a@example.org", "--about", "vision=image segmentation")
        assert changed.exit_code == 0, changed.stderr
        assert stored_vectors(storage, "a@example.org") == 3
    finally:
        storage.close()


def test_a_lexical_service_embeds_nothing(run: Cli) -> None:
    run.env["NOTIFIER_MATCHING"] = "lexical"
    assert run("subscribe", "a@example.org", "--about", "arms=robot arms").exit_code == 0
    storage = Storage(run.env["NOTIFIER_DATABASE_URL"])
    try:
        assert stored_vectors(storage, "a@example.org") == 0
    finally:
        storage.close()


def test_interests_created_through_the_api_are_embedded_in_the_background(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web(admin_token=TOKEN, matching="hybrid")
    web.context.prepare_matching()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"email": "b@example.org", "interests": [{"name": "arms", "about": "robot arms"}]}
    with httpx.Client(base_url=f"{web.url}/api/v1", headers=headers, timeout=30) as http:
        assert http.post("/subscribers", json=body).status_code == 201
    deadline = time.monotonic() + 30
    while stored_vectors(web.storage, "b@example.org") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_vectors(web.storage, "b@example.org") == 1
