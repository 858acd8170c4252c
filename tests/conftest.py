"""Shared fixtures: real SQLite and PostgreSQL storage, a real SMTP server, the CLI."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session
from click.testing import CliRunner, Result

from notifier.cli import cli
from notifier.settings import Settings, load_settings
from notifier.storage import Storage
from tests.matrix_server import matrix_server  # noqa: F401
from tests.webhook_server import webhook_server  # noqa: F401

SEEDS = Path(__file__).resolve().parent.parent / "notifier" / "demo" / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))
DATA = Path(__file__).resolve().parent / "data"
PG_URL = os.environ.get("NOTIFIER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
# When the subscribers of most tests signed up: the day before, so the slot NOW falls
# in comes after it and their digest is due (a first digest never predates a sign-up).
JOINED = NOW - timedelta(days=1)


def _pg_available() -> bool:
    try:
        engine = sqlalchemy.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    available = _pg_available()
    if not available and os.environ.get("NOTIFIER_TEST_REQUIRE_PG"):
        pytest.fail(f"PostgreSQL is required but not reachable at {PG_URL}")
    return available


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """Yield a URL to a fresh, empty PostgreSQL schema, dropped afterwards."""
    if not pg_available:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return a database URL for each real backend: SQLite in tmp_path, a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'notifier.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


PG_SECRET_KEY = "pg-test-secret-key-0123456789"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Return settings whose state lives in tmp_path, on each backend."""
    (tmp_path / "state").mkdir(exist_ok=True)
    # PostgreSQL deployments set the link-signing key (notifier never invents one there).
    key: dict[str, Any] = (
        {"secret_key": PG_SECRET_KEY} if database_url.startswith("postgresql") else {}
    )
    return load_settings(
        state_dir=tmp_path / "state",
        database_url=database_url,
        sender_address="digests@notifier.test.example",
        base_url="https://papers.example.org",
        **key,
    )


@pytest.fixture
def storage(settings: Settings) -> Iterator[Storage]:
    """Yield migrated storage on each backend."""
    store = Storage(settings.database)
    store.migrate()
    yield store
    store.close()


def seed_bytes(index: int) -> bytes:
    """Return the bytes of one bundled seed snapshot."""
    return SEED_FILES[index].read_bytes()


# -- SMTP -------------------------------------------------------------------


@dataclass
class Received:
    """One message the test SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return parse_message(self.data)


def parse_message(data: bytes) -> EmailMessage:
    """Return message bytes parsed the way a mail client would (local line ends)."""
    msg = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that stores messages and can refuse chosen recipients.

    It offers PIPELINING, as the servers digests go to do (aiosmtpd reads pipelined
    commands either way but does not say so), so the sender's usual path is the
    one tested; pipelining=False tests the one-command-at-a-time path.
    """

    pipelining: bool = True
    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply at RCPT
    data_reply: dict[str, str] = field(default_factory=dict)  # address -> reply at DATA
    drop_after_data: set[str] = field(default_factory=set)  # keep it, then hang up
    stall: dict[str, float] = field(default_factory=dict)  # address -> seconds before replying

    async def handle_EHLO(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: SMTPProtocol, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        recipient = envelope.rcpt_tos[0]
        if recipient in self.data_reply:
            return self.data_reply[recipient]
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        if recipient in self.drop_after_data:
            # The message is in, but the client never hears so: the "unknown" case.
            assert server.transport is not None
            server.transport.close()
        if recipient in self.stall:
            await asyncio.sleep(self.stall[recipient])
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


class PortZeroController(Controller):
    """A Controller bound to port 0: learn the real port before the readiness probe."""

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Run a real aiosmtpd server on a port the OS picks, for one test."""
    handler = RecordingHandler()
    controller = PortZeroController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield SmtpServer(handler, controller.port)
    finally:
        controller.stop()


# -- CLI --------------------------------------------------------------------


@dataclass
class Cli:
    """Run notifier commands against one state directory and database."""

    env: dict[str, str]

    def __call__(self, *args: str, input: bytes | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, list(args), env=self.env, input=input, catch_exceptions=False)

    def subscribe_earlier(self, *args: str, days: int = 2) -> Result:
        """Run `subscribe` as if days ago: a first digest is due only at a slot after it."""
        result = self("subscribe", *args)
        if result.exit_code == 0:
            back_date_subscribers(self.env["NOTIFIER_DATABASE_URL"], days)
        return result


def back_date_subscribers(database_url: str, days: int = 2, before: datetime | None = None) -> None:
    """Move every sign-up back by days (from now, or from before), so the slot a test
    composes at comes after it and their digest is due.
    """
    from notifier.storage.schema import subscribers

    then = (before or datetime.now(UTC)) - timedelta(days=days)
    confirmed = subscribers.c.confirmed_at
    storage = Storage(database_url)
    with storage.engine.begin() as conn:
        conn.execute(
            sqlalchemy.update(subscribers)
            .where(subscribers.c.created_at > then)
            .values(
                created_at=then,
                confirmed_at=sqlalchemy.case((confirmed.is_(None), None), else_=then),
            )
        )
    storage.close()


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Return a CLI runner bound to tmp_path/state and each database backend."""
    monkeypatch.chdir(tmp_path)  # no stray ./notifier.toml is read
    env = {
        "NOTIFIER_STATE_DIR": str(tmp_path / "state"),
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_SENDER_ADDRESS": "digests@notifier.test.example",
        "NOTIFIER_BASE_URL": "https://papers.example.org",
        "NOTIFIER_SMTP_URL": "",
        "NOTIFIER_CONFIG": "",
        # Retries come due at once and sends are not paced, so a test can run twice.
        "NOTIFIER_RETRY_BASE": "0.001",
        "NOTIFIER_SEND_RATE": "0",
    }
    if database_url.startswith("postgresql"):
        env["NOTIFIER_SECRET_KEY"] = PG_SECRET_KEY
    return Cli(env)


# -- web ----------------------------------------------------------------------


@dataclass
class WebServer:
    """notifier serve's app on a real port: its address, settings, storage and context."""

    url: str
    settings: Settings
    storage: Storage
    context: Any  # notifier.web.context.WebContext


@pytest.fixture
def serve_web(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., WebServer]]:
    """Return a function that starts the web app under uvicorn on a port the OS picks.

    Keyword arguments override settings (smtp_url, admin_token, ...); the
    base_url is the server's own address, so links in emails lead to it.
    lifespan=True runs the app's startup as `notifier serve` does (it starts
    preparing the matching model); by default a test starts nothing it did
    not ask for.
    """
    import socket
    import threading

    import uvicorn

    from notifier.server import make_web_context
    from notifier.web import create_app

    monkeypatch.chdir(tmp_path)
    started: list[tuple[uvicorn.Server, threading.Thread, Storage]] = []

    def start(*, lifespan: bool = False, **overrides: Any) -> WebServer:
        # IPPROTO_TCP given, asyncio recognises a TCP socket and turns Nagle off;
        # without it every request on a kept-alive connection waits ~40 ms.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        options: dict[str, Any] = {
            "state_dir": tmp_path / "state",
            "database_url": database_url,
            "sender_address": "digests@notifier.test.example",
            "base_url": url,
            "matching": "lexical",
            "secret_key": "test-secret-key-0123456789",
            **overrides,
        }
        settings = load_settings(**options)
        store = Storage(settings.database)
        store.migrate()
        context = make_web_context(settings, store)
        config = uvicorn.Config(
            create_app(context),
            log_config=None,
            access_log=False,
            lifespan="on" if lifespan else "off",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.025)
        started.append((server, thread, store))
        return WebServer(url, settings, store, context)

    yield start
    for server, thread, store in started:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
