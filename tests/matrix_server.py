"""A real Matrix homeserver (Synapse) for the tests, run from its own virtualenv.

Synapse pins its own dependencies, so it lives in .venv-synapse (`make
.venv-synapse/.installed`), never in the project's venv; the tests talk to it over
HTTP only. NOTIFIER_SYNAPSE_PYTHON names another interpreter that has Synapse.
Without one the tests that need it are skipped, unless NOTIFIER_TEST_REQUIRE_SYNAPSE
is set (CI), when a missing Synapse fails.

One server runs for the whole session: register users with fresh names.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
SERVER_NAME = "localhost"
INSTALL = "make .venv-synapse/.installed"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# Every limiter a test could hit: a test sends bursts no real client would.
UNLIMITED = {"per_second": 10_000, "burst_count": 10_000}


def synapse_python() -> Path:
    """Return the interpreter meant to run Synapse, which may not exist."""
    configured = os.environ.get("NOTIFIER_SYNAPSE_PYTHON")
    return Path(configured) if configured else REPO / ".venv-synapse" / "bin" / "python"


def has_synapse(python: Path) -> bool:
    """Tell whether python exists and can import Synapse."""
    if not python.exists():
        return False
    # find_spec only looks the package up: importing Synapse would take a second.
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('synapse') is None)"
    return subprocess.run([str(python), "-c", probe], check=False).returncode == 0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(directory: Path, port: int, shared_secret: str) -> Path:
    """Write homeserver.yaml and its log config into directory and return its path."""
    log_config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(directory / "homeserver.log"),
                "formatter": "plain",
            }
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }
    config = {
        "server_name": SERVER_NAME,
        "pid_file": str(directory / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                # client only: no federation resource, so no server-to-server API.
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "log_config": str(directory / "log.config"),
        "media_store_path": str(directory / "media_store"),
        "signing_key_path": str(directory / f"{SERVER_NAME}.signing.key"),
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "report_stats": False,
        "enable_metrics": False,
        # No outbound traffic: no key server to ask, no other server to talk to.
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "presence": {"enabled": False},
        "rc_message": UNLIMITED,
        "rc_registration": UNLIMITED,
        "rc_login": {"address": UNLIMITED, "account": UNLIMITED, "failed_attempts": UNLIMITED},
        "rc_joins": {"local": UNLIMITED, "remote": UNLIMITED},
        "rc_joins_per_room": UNLIMITED,
        "rc_invites": {"per_room": UNLIMITED, "per_user": UNLIMITED, "per_issuer": UNLIMITED},
        "rc_room_creation": UNLIMITED,
        "rc_admin_redaction": UNLIMITED,
        "rc_presence": {"per_user": UNLIMITED},
        "rc_profile": UNLIMITED,
    }
    # JSON is YAML, so the project's venv needs no YAML library to write these.
    (directory / "log.config").write_text(json.dumps(log_config, indent=2))
    path = directory / "homeserver.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a file, or a note that it is missing."""
    if not path.exists():
        return f"({path.name}: no such file)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class MatrixServer:
    """A running Synapse: its address, and helpers that call its real HTTP API."""

    base_url: str
    directory: Path
    shared_secret: str
    process: subprocess.Popen[bytes]
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url, timeout=30)

    def logs(self) -> str:
        """Return the tail of Synapse's console output and of its log file."""
        console = tail(self.directory / "console.log")
        log = tail(self.directory / "homeserver.log")
        return f"--- console.log ---\n{console}\n--- homeserver.log ---\n{log}"

    def register(self, username: str) -> tuple[str, str]:
        """Register a user through the shared-secret admin API; return (user_id, token)."""
        url = "/_synapse/admin/v1/register"
        nonce_response = self.http.get(url)
        nonce_response.raise_for_status()
        nonce: str = nonce_response.json()["nonce"]
        password = secrets.token_urlsafe(16)
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, username, password):
            mac.update(part.encode())
            mac.update(b"\x00")
        mac.update(b"notadmin")
        body = {"nonce": nonce, "username": username, "password": password}
        response = self.http.post(url, json={**body, "mac": mac.hexdigest()})
        response.raise_for_status()
        registered = response.json()
        return registered["user_id"], registered["access_token"]

    def create_room(self, access_token: str, name: str) -> str:
        """Create a public room, so others can join it by ID, and return its ID."""
        response = self.http.post(
            "/_matrix/client/v3/createRoom",
            headers=bearer(access_token),
            json={"name": name, "preset": "public_chat"},
        )
        response.raise_for_status()
        room_id: str = response.json()["room_id"]
        return room_id

    def join(self, access_token: str, room_id_or_alias: str) -> None:
        """Join a room by its ID or alias."""
        response = self.http.post(
            f"/_matrix/client/v3/join/{quote(room_id_or_alias, safe='')}",
            headers=bearer(access_token),
            json={},
        )
        response.raise_for_status()

    def messages(self, access_token: str, room_id: str) -> list[dict[str, Any]]:
        """Return the room's m.room.message events, oldest first (the last 100 events)."""
        response = self.http.get(
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages",
            headers=bearer(access_token),
            params={"dir": "b", "limit": 100},
        )
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["chunk"]
        return [event for event in reversed(events) if event["type"] == "m.room.message"]

    def stop(self) -> None:
        """Stop Synapse: SIGTERM, then SIGKILL if it has not exited within 10 s."""
        self.http.close()
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def bearer(access_token: str) -> dict[str, str]:
    """Return the Authorization header for an access token."""
    return {"Authorization": f"Bearer {access_token}"}


def start_synapse(python: Path, directory: Path) -> MatrixServer:
    """Start Synapse with a fresh config and database in directory; return once it answers."""
    port = free_port()
    shared_secret = secrets.token_hex(32)
    config = write_config(directory, port, shared_secret)
    # Started this way, Synapse writes the missing signing key and goes on to serve: a
    # separate --generate-keys run first would pay its ~2.5 s import twice. (Naming the
    # mode, --generate-missing-and-run, fails in 1.163: the second parse rejects it.)
    homeserver = [str(python), "-m", "synapse.app.homeserver", "--config-path", str(config)]
    with (directory / "console.log").open("ab") as out:
        process = subprocess.Popen(homeserver, stdout=out, stderr=out, cwd=directory)
    server = MatrixServer(f"http://127.0.0.1:{port}", directory, shared_secret, process)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(
                f"Synapse exited with {process.returncode} while starting\n{server.logs()}"
            )
        try:
            if server.http.get("/_matrix/client/versions", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"Synapse did not answer at {server.base_url} within {START_TIMEOUT:.0f} s\n"
                f"{server.logs()}"
            )
        time.sleep(0.1)


@pytest.fixture(scope="session")
def matrix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatrixServer]:
    """Run a real Synapse on a free 127.0.0.1 port for the whole session."""
    python = synapse_python()
    if not has_synapse(python):
        message = f"Synapse is not installed at {python}: `{INSTALL}` installs it"
        if os.environ.get("NOTIFIER_TEST_REQUIRE_SYNAPSE"):
            pytest.fail(f"NOTIFIER_TEST_REQUIRE_SYNAPSE is set but {message}")
        pytest.skip(message)
    server = start_synapse(python, tmp_path_factory.mktemp("synapse"))
    try:
        yield server
    finally:
        server.stop()
