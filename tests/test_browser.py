"""The web pages in a real browser (Debian's chromium through Playwright) against the real app.

One person's whole journey: the subscribe form with its live preview, the
confirmation email at a real SMTP server, preferences, a digest, unsubscribing
from the digest's link, and silence after. Plus what a person sees when they
type something wrong, and that the bot trap stays out of their way.

The browser is /usr/bin/chromium (`apt-get install chromium`), never
Playwright's own download. Without it the module is skipped, unless
NOTIFIER_TEST_REQUIRE_BROWSER is set (CI), when a missing browser fails.

The scheduled job's part (ingest, compose, send) is called through notifier.pipeline
with an explicit time, so "the next day" needs no waiting.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pytest

from notifier import pipeline
from notifier.app import make_renderer, make_transport
from notifier.models import Interest, Subscriber
from notifier.storage import Storage
from tests.conftest import SmtpServer, WebServer, back_date_subscribers, seed_bytes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRED = bool(os.environ.get("NOTIFIER_TEST_REQUIRE_BROWSER"))

try:
    from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    if REQUIRED:
        raise
    pytest.skip(
        "the playwright package is not installed (pip install -e '.[dev]')",
        allow_module_level=True,
    )

if not CHROMIUM.exists() and not REQUIRED:
    pytest.skip(
        f"no browser at {CHROMIUM}: `apt-get install chromium` (or `make browser`) "
        "to run the browser tests",
        allow_module_level=True,
    )

if TYPE_CHECKING:
    from playwright.sync_api import Locator

T = TypeVar("T")

# A paper of the first seed listing that the interests typed below match.
WORLD_MODELS = "Facing Off World Model Backbones: RNNs, Transformers, and S4"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"NOTIFIER_TEST_REQUIRE_BROWSER is set but there is no browser at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile in Berlin that can reach only the local test servers."""
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB")
    context.set_default_timeout(10_000)

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    context.route("**/*", local_only)
    yield context.new_page()
    context.close()


# -- helpers ------------------------------------------------------------------


def in_thread(call: Callable[..., T], *args: Any) -> T:
    """Run call on another thread: Playwright's sync API keeps its event loop running on
    this one, so asyncio.run (the sending) cannot start here."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call, *args).result(timeout=120)


def wait_for_mail(smtp: SmtpServer, count: int, seconds: float = 10) -> list[EmailMessage]:
    """Wait until the SMTP server holds count messages; return them all."""
    deadline = time.monotonic() + seconds
    while len(smtp.handler.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [r.message for r in smtp.handler.received]


def open_email(page: Page, message: EmailMessage) -> None:
    """Show an email's HTML part as a mail client would: on its own, not under the site's CSP."""
    body = message.get_body(("html",))
    assert body is not None, "the email has no HTML part"
    page.goto("about:blank")
    page.set_content(body.get_content())


def ingest(server: WebServer, seed: int, now: datetime) -> None:
    """Take in one bundled listing snapshot, as the scheduled job does."""
    storage = Storage(server.settings.database)
    try:
        pipeline.ingest(storage, f"seed-{seed}", seed_bytes(seed), now)
    finally:
        storage.close()


def compose_and_send(server: WebServer, now: datetime) -> None:
    """Compose every digest due at now and send them to the SMTP server, as the job does."""
    storage = Storage(server.settings.database)
    try:
        pipeline.compose_due(storage, server.settings, now)
        sending = pipeline.send_pending(
            storage, make_renderer(server.settings), make_transport(server.settings), lambda: now
        )
        in_thread(asyncio.run, sending)
    finally:
        storage.close()


def subscriber(server: WebServer, email: str) -> Subscriber:
    return server.storage.subscriber_by_email(email)


def interest_field(page: Page, row: int, label: str) -> Locator:
    return page.locator(".interest").nth(row).get_by_label(label)


# -- the journey --------------------------------------------------------------


def test_subscribe_confirm_edit_receive_and_unsubscribe(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer, page: Page
) -> None:
    server = serve_web(smtp_url=smtp_server.url)
    now = datetime.now(UTC)
    ingest(server, 0, now - timedelta(minutes=5))

    # The form: the time zone comes from the browser; the preview follows the typing.
    page.goto(f"{server.url}/")
    expect(page.get_by_role("heading", name="New papers on what you care about")).to_be_visible()
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    expect(page.locator("#preview-status")).to_have_text("Type an interest to see a preview.")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Name (optional)").first.fill("Ada")
    interest_field(page, 0, "Name").fill("World models")
    interest_field(page, 0, "Described in plain words").fill(
        "world models that let reinforcement learning agents learn in imagination"
    )
    preview = page.locator("#preview-list")
    expect(preview).to_contain_text(WORLD_MODELS)
    expect(page.locator("#preview-status")).to_contain_text("Among the last")
    expect(preview).to_contain_text("papers match")
    # Daily at midnight in their zone: today's digest is already due when the job runs.
    page.get_by_label("How often").select_option(label="Every day")
    page.get_by_label("At", exact=True).fill("00:00")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    # Exactly one email: the confirmation, to the address typed.
    [confirmation] = wait_for_mail(smtp_server, 1)
    assert confirmation["To"] == "Ada <ada@example.org>"
    assert confirmation["Subject"] == "Confirm your notifier subscription"
    assert subscriber(server, "ada@example.org").status == "pending"

    # The email's button opens a page saying what it activates; its button confirms.
    open_email(page, confirmation)
    page.get_by_role("link", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="Confirm your subscription?")).to_be_visible()
    expect(page.locator(".chosen")).to_contain_text("World models")
    assert subscriber(server, "ada@example.org").status == "pending"
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    page.get_by_role("link", name="Open my preferences").click()

    # Preferences: rename and redescribe the interest, save, and it stays after a reload.
    expect(page.get_by_role("heading", name="Your preferences")).to_be_visible()
    expect(page.locator(".who")).to_contain_text("ada@example.org · next digest")
    expect(interest_field(page, 0, "Name")).to_have_value("World models")
    expect(page.get_by_text("None yet.")).to_be_visible()  # no digests so far
    interest_field(page, 0, "Name").fill("Model-based RL")
    interest_field(page, 0, "Described in plain words").fill(
        "model-based reinforcement learning with learned world models"
    )
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    page.reload()
    expect(interest_field(page, 0, "Name")).to_have_value("Model-based RL")
    expect(interest_field(page, 0, "Described in plain words")).to_have_value(
        "model-based reinforcement learning with learned world models"
    )
    manage_url = page.url

    # A day later the job runs (the first digest is due at the first send time after
    # signing up): one digest arrives, for the edited interest, with one-click unsubscribe.
    back_date_subscribers(server.settings.database)
    compose_and_send(server, now)
    mail = wait_for_mail(smtp_server, 2)
    assert len(mail) == 2
    digest = mail[1]
    assert digest["To"] == "Ada <ada@example.org>"
    assert "Model-based RL" in digest["Subject"]
    assert digest["List-Unsubscribe"].startswith(f"<{server.url}/unsubscribe/")
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    open_email(page, digest)
    expect(page.get_by_role("heading", name="New papers for you")).to_be_visible()
    expect(page.get_by_role("heading", name="Model-based RL")).to_be_visible()
    expect(page.get_by_role("link", name=WORLD_MODELS)).to_be_visible()

    # The preferences page lists the digest.
    page.goto(manage_url)
    expect(page.locator("table.history tbody tr")).to_have_count(1)
    expect(page.locator("table.history tbody tr").first).to_contain_text("sent")

    # Unsubscribe from the digest's link: opening it changes nothing, the button does.
    open_email(page, digest)
    page.get_by_role("link", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="Unsubscribe?")).to_be_visible()
    expect(page.get_by_text("Stop all notifier digests to ada@example.org.")).to_be_visible()
    assert subscriber(server, "ada@example.org").status == "active"
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    expect(page.get_by_text("No more digests will be sent to ada@example.org.")).to_be_visible()
    assert subscriber(server, "ada@example.org").status == "unsubscribed"

    # The next day brings new papers. Someone still subscribed to the same interest
    # gets a digest; Ada gets nothing.
    tomorrow = now + timedelta(days=1)
    ingest(server, 1, tomorrow - timedelta(hours=1))
    server.storage.save_subscriber(
        "bob@example.org",
        None,
        [Interest("Model-based RL", about="model-based reinforcement learning with world models")],
        now,
        schedule={"cadence": "daily", "send_time": "00:00", "timezone": "Europe/Berlin"},
    )
    compose_and_send(server, tomorrow)
    wait_for_mail(smtp_server, 3)
    time.sleep(0.3)  # anything else would have arrived by now
    assert [m["To"] for m in wait_for_mail(smtp_server, 3)] == [
        "Ada <ada@example.org>",
        "Ada <ada@example.org>",
        "bob@example.org",
    ]


def test_the_preview_says_it_is_preparing_until_the_model_is_ready(
    serve_web: Callable[..., WebServer], page: Page
) -> None:
    server = serve_web()
    ingest(server, 0, datetime.now(UTC) - timedelta(minutes=5))
    prepared = threading.Event()
    build = server.context.matching_factory

    def slow_model() -> Any:  # the first start on a loaded machine takes half a minute
        prepared.wait(60)
        return build()

    server.context.matching_factory = slow_model
    page.goto(f"{server.url}/")
    interest_field(page, 0, "Described in plain words").fill(
        "world models that let reinforcement learning agents learn in imagination"
    )
    status = page.locator("#preview-status")
    expect(status).to_have_text(
        "Preparing the matching model (the first time on this server takes up to half a minute)…"
    )
    prepared.set()
    # The page asks again by itself and shows the papers.
    expect(page.locator("#preview-list")).to_contain_text(WORLD_MODELS)
    expect(status).to_contain_text("Among the last")


# -- mistakes and bots ----------------------------------------------------------


def test_bad_input_is_explained_on_the_page_and_nothing_is_stored(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer, page: Page
) -> None:
    server = serve_web(smtp_url=smtp_server.url)
    page.goto(f"{server.url}/")
    page.get_by_label("Email").fill("ada at example dot org")
    interest_field(page, 0, "Described in plain words").fill("world models")
    page.get_by_label("Time zone").fill("Mars/Olympus_Mons")
    page.get_by_role("button", name="Subscribe").click()

    alerts = page.get_by_role("alert")
    expect(alerts.filter(has_text="that is not a valid email address")).to_be_visible()
    expect(alerts.filter(has_text="unknown time zone 'Mars/Olympus_Mons'")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    # What was typed is still there to correct.
    expect(page.get_by_label("Email")).to_have_value("ada at example dot org")
    expect(interest_field(page, 0, "Described in plain words")).to_have_value("world models")
    expect(page.get_by_role("heading", name="Check your inbox")).to_have_count(0)

    # Fixing only the email still leaves the time zone to fix.
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_role("button", name="Subscribe").click()
    expect(alerts.filter(has_text="unknown time zone")).to_be_visible()
    expect(alerts.filter(has_text="valid email address")).to_have_count(0)

    time.sleep(0.3)
    assert server.storage.subscribers() == []
    assert smtp_server.handler.received == []


def test_the_bot_trap_is_out_of_a_persons_way(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer, page: Page
) -> None:
    server = serve_web(smtp_url=smtp_server.url)
    page.goto(f"{server.url}/")
    trap = page.locator("input[name=website]")
    expect(trap).to_have_count(1)

    # Not on screen, not announced by a screen reader, not reached with the Tab key.
    box = trap.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0
    expect(page.get_by_role("textbox", name="Leave this empty")).to_have_count(0)
    focused = []
    for _ in range(8):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.name || document.activeElement.href"))
    assert "website" not in focused
    assert "email" in focused

    # A bot that fills every field is told to check its inbox, and nothing happens.
    page.get_by_label("Email").fill("bot@example.org")
    interest_field(page, 0, "Described in plain words").fill("world models")
    trap.fill("http://spam.example", force=True)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    time.sleep(0.5)
    assert server.storage.subscribers() == []
    assert smtp_server.handler.received == []


def test_a_reader_rates_papers_and_mutes_an_author_from_the_digest(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer, page: Page
) -> None:
    server = serve_web(smtp_url=smtp_server.url)
    now = datetime.now(UTC)
    listing = (Path(__file__).parent / "data" / "sources" / "arxiv_api.xml").read_bytes()
    pipeline.ingest(server.storage, "api", listing, now - timedelta(minutes=5), "arxiv-api")
    server.storage.save_subscriber(
        "ada@example.org",
        "Ada",
        [
            Interest(
                "Robot learning", about="reinforcement learning for robots", sensitivity="broad"
            )
        ],
        now - timedelta(days=2),
        schedule={"cadence": "daily", "send_time": "00:00", "timezone": "Europe/Berlin"},
    )
    compose_and_send(server, now)
    [digest] = wait_for_mail(smtp_server, 1)
    ada = subscriber(server, "ada@example.org")

    # Opening "More like this" asks first; the button records it, the page says so.
    open_email(page, digest)
    first_title = page.locator(".paper .title").first.inner_text()
    page.get_by_role("link", name="More like this").first.click()
    expect(page.get_by_role("heading", name="More papers like this?")).to_be_visible()
    expect(page.get_by_text(first_title)).to_be_visible()
    assert server.storage.examples_of(ada.id) == []
    page.get_by_role("button", name="Yes, more like this").click()
    expect(page.get_by_role("heading", name="Marked: more like this")).to_be_visible()
    [example] = server.storage.examples_of(ada.id)
    assert (example.title, example.verdict) == (first_title, "more")

    # Changed my mind: "Not for me" on the same paper replaces it; Undo removes it.
    open_email(page, digest)
    page.get_by_role("link", name="Not for me").first.click()
    expect(page.get_by_text("this changes that")).to_be_visible()
    page.get_by_role("button", name="Yes, not for me").click()
    expect(page.get_by_role("heading", name="Marked: not for me")).to_be_visible()
    assert [e.verdict for e in server.storage.examples_of(ada.id)] == ["less"]
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_role("heading", name="Fewer papers like this?")).to_be_visible()
    assert server.storage.examples_of(ada.id) == []

    # Mute an author: the page lists the paper's authors, each with its button.
    open_email(page, digest)
    page.get_by_role("link", name="Mute an author").first.click()
    expect(page.get_by_role("heading", name="Mute an author?")).to_be_visible()
    first_author = page.locator("ul.authors li").first
    name = first_author.inner_text().removesuffix("Mute").strip()
    first_author.get_by_role("button", name="Mute").click()
    expect(page.get_by_text(f"{name} (muted)")).to_be_visible()
    assert [m.name for m in server.storage.muted_authors_of(ada.id)] == [name]
