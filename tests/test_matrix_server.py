"""The real Synapse of tests/matrix_server.py: users, rooms, and idempotent sends."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx

from tests.matrix_server import MatrixServer, bearer


def send(server: MatrixServer, token: str, room_id: str, txn_id: str, body: str) -> httpx.Response:
    """Send a text message with the client-server API, as the Matrix channel does."""
    path = (
        f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}"
        f"/send/m.room.message/{quote(txn_id, safe='')}"
    )
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    return httpx.put(f"{server.base_url}{path}", headers=bearer(token), json=content, timeout=30)


def test_a_repeated_txn_id_posts_the_message_once(matrix_server: MatrixServer) -> None:
    # Fresh names: the one server serves the whole session.
    suffix = uuid.uuid4().hex[:8]
    alice, alice_token = matrix_server.register(f"alice-{suffix}")
    bob, bob_token = matrix_server.register(f"bob-{suffix}")
    assert alice == f"@alice-{suffix}:localhost"
    assert bob == f"@bob-{suffix}:localhost"
    room_id = matrix_server.create_room(alice_token, "digests")
    matrix_server.join(bob_token, room_id)

    txn_id = f"digest-{uuid.uuid4().hex}"
    first = send(matrix_server, alice_token, room_id, txn_id, "Your digest")
    assert first.status_code == 200, first.text
    # The retry after a crash: the same txnId from the same device, here even with a
    # different body, is answered with the first event and posts nothing new.
    again = send(matrix_server, alice_token, room_id, txn_id, "Your digest (retried)")
    assert again.status_code == 200, again.text
    assert again.json()["event_id"] == first.json()["event_id"]

    # A new txnId is a new message, whatever its body.
    other = send(matrix_server, alice_token, room_id, f"digest-{uuid.uuid4().hex}", "Your digest")
    assert other.status_code == 200, other.text
    assert other.json()["event_id"] != first.json()["event_id"]

    seen = matrix_server.messages(bob_token, room_id)
    assert [(event["event_id"], event["sender"], event["content"]["body"]) for event in seen] == [
        (first.json()["event_id"], alice, "Your digest"),
        (other.json()["event_id"], alice, "Your digest"),
    ]


def test_messages_need_a_valid_access_token(matrix_server: MatrixServer) -> None:
    user, token = matrix_server.register(f"carol-{uuid.uuid4().hex[:8]}")
    room_id = matrix_server.create_room(token, "private digests")
    refused = send(matrix_server, "not-a-token", room_id, uuid.uuid4().hex, "hello")
    assert refused.status_code == 401
    assert refused.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert matrix_server.messages(token, room_id) == []
    assert user.startswith("@carol-")
