#!/usr/bin/env python3
"""Full-page screenshots of the web pages and of the emails, at desktop and phone widths.

    make screenshots
    .venv/bin/python tools/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

Starts `notifier serve`'s app under uvicorn on a free port with SQLite in a
temporary directory, fills it with the demo (the bundled listings as five days,
three subscribers and their digests, written to the outbox), then drives
Debian's chromium through Playwright: it signs up, makes mistakes, confirms,
opens preferences and unsubscribes like a person would, saving each page as
<out>/<page>-<desktop|phone>.png and a README.md listing them. Nothing leaves
the machine: the browser may only reach the local server.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from notifier import clock, demo
from notifier.app import make_outbox, make_renderer
from notifier.models import ChannelKind
from notifier.server import make_web_context
from notifier.settings import Settings, load_settings
from notifier.storage import Storage
from notifier.tokens import Purpose
from notifier.web import create_app
from notifier.web.context import WebContext

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@dataclass(frozen=True)
class Width:
    name: str
    width: int
    height: int
    mobile: bool


WIDTHS = (Width("desktop", 1280, 800, False), Width("phone", 390, 844, True))

# page name -> what it shows, in the order they are taken (for the README).
SHOTS = {
    "subscribe": "the sign-up form, two interests typed, the live preview filled in",
    "subscribe-errors": "the sign-up form sent with a bad address, query and time zone",
    "check-inbox": "after signing up",
    "confirmation-email": "the confirmation email (its HTML part)",
    "confirm": "the page the confirmation link opens: what it activates, one button",
    "confirmed": "after pressing it",
    "preferences": "a demo subscriber's preferences: a Slack channel (URL masked, with Send a "
    "test message), their digest history",
    "digest-page": 'the page a chat message\'s "and N more" opens: the whole digest, no '
    "preferences or rating links",
    "saved": "the new subscriber's preferences after moving the send time and saving",
    "digest-email": "a digest email (its HTML part), each paper with its feedback links",
    "rate": 'the page a paper\'s "More like this" link opens: the paper, one button',
    "rated": "after pressing it: what was recorded, and Undo",
    "unsubscribe": "the page an email's unsubscribe link opens: one button",
    "unsubscribed": "after pressing it",
    "bad-link": "a confirmation link that is not valid",
}


@dataclass
class Server:
    url: str
    settings: Settings
    storage: Storage
    context: WebContext


@contextmanager
def serve(state: Path) -> Iterator[Server]:
    """Run the web app on a port the OS picks, the way the tests' serve_web fixture does."""
    state.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = load_settings(
        state_dir=state,
        database_url=f"sqlite:///{state / 'notifier.db'}",
        sender_address="digests@papers.example.org",
        base_url=url,
        secret_key="screenshots-secret-key-0123456789",
    )
    storage = Storage(settings.database)
    storage.migrate()
    context = make_web_context(settings, storage)
    config = uvicorn.Config(create_app(context), log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.025)
    else:
        sys.exit("screenshots: the web app did not start")
    try:
        yield Server(url, settings, storage, context)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        storage.close()


def fill_demo(server: Server) -> None:
    """The bundled listings as five days ending now, three subscribers, their digests."""
    settings, storage = server.settings, server.storage
    outbox = make_outbox(settings)
    asyncio.run(demo.run_demo(storage, settings, make_renderer(settings), outbox, clock.now()))


def show_email(page: Page, eml: Path) -> None:
    """Show an .eml's HTML part as a mail client would: on its own, not under the site's CSP."""
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("html",))
    assert body is not None, f"{eml} has no HTML part"
    page.goto("about:blank")
    page.set_content(body.get_content())


def wait_for(find: Callable[[], list[Path]], what: str) -> Path:
    for _ in range(200):
        found = find()
        if found:
            return found[-1]
        time.sleep(0.05)
    sys.exit(f"screenshots: {what} never appeared")


class Shooter:
    """Saves full-page PNGs and says when a page is wider than the screen."""

    def __init__(self, out: Path, width: Width) -> None:
        self.out = out
        self.width = width
        self.problems: list[str] = []

    def __call__(self, page: Page, name: str) -> None:
        assert name in SHOTS, name
        page.wait_for_load_state("networkidle")
        page.evaluate("document.activeElement && document.activeElement.blur()")
        wide = page.evaluate("document.documentElement.scrollWidth")
        if wide > self.width.width:
            self.problems.append(
                f"{name}-{self.width.name}: the page is {wide}px wide on a "
                f"{self.width.width}px screen"
            )
        page.screenshot(path=self.out / f"{name}-{self.width.name}.png", full_page=True)


def new_page(browser: Browser, width: Width) -> Page:
    """A fresh profile in Berlin at one width that can reach only the local server."""
    context = browser.new_context(
        viewport={"width": width.width, "height": width.height},
        device_scale_factor=1,
        is_mobile=width.mobile,
        has_touch=width.mobile,
        timezone_id="Europe/Berlin",
        locale="en-GB",
    )
    context.set_default_timeout(15_000)

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    context.route("**/*", local_only)
    return context.new_page()


@dataclass
class Tour:
    """One person's visit at one width, a screenshot at each step."""

    page: Page
    server: Server
    shoot: Shooter
    email: str

    def run(self) -> None:
        self.mistakes()
        self.sign_up()
        self.confirm()
        leave = self.save_preferences()
        self.demo_subscriber()
        self.rate()
        self.unsubscribe(leave)
        self.page.goto(f"{self.server.url}/confirm/{'x' * 40}")
        self.shoot(self.page, "bad-link")

    def mistakes(self) -> None:
        """The form sent with three problems: the address, a query, the time zone."""
        page = self.page
        page.goto(f"{self.server.url}/")
        page.get_by_label("Email").fill("marie@")
        first = page.locator(".interest").nth(0)
        first.get_by_label("Name").fill("Robot learning")
        first.get_by_label("Words that must appear").fill('"imitation learning OR robot*')
        page.get_by_label("Time zone").fill("Europe/Berln")
        page.get_by_role("button", name="Subscribe").click()
        expect(page.get_by_role("alert").first).to_be_visible()
        self.shoot(page, "subscribe-errors")

    def sign_up(self) -> None:
        """The form as meant, with the preview of what it would have sent."""
        page = self.page
        page.goto(f"{self.server.url}/")
        page.get_by_label("Email").fill(self.email)
        page.get_by_label("Name (optional)").first.fill("Marie")
        rows = page.locator(".interest")
        rows.nth(0).get_by_label("Name").fill("Robot learning")
        rows.nth(0).get_by_label("Described in plain words").fill(
            "robots learning manipulation skills from demonstrations"
        )
        rows.nth(1).get_by_label("Name").fill("Diffusion")
        rows.nth(1).get_by_label("Described in plain words").fill("diffusion models for images")
        rows.nth(1).get_by_label("Words that must appear").fill("diffusion -robot")
        page.get_by_label("At", exact=True).fill("07:30")
        expect(page.locator("#preview-list li").first).to_be_visible()
        expect(page.locator("#preview-list")).to_contain_text("match")
        self.shoot(page, "subscribe")
        page.get_by_role("button", name="Subscribe").click()
        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        self.shoot(page, "check-inbox")

    def confirm(self) -> None:
        """The confirmation email (in the outbox: no mail server is set) and its link."""
        page = self.page
        stem = self.email.replace("@", "_")
        outbox = self.server.settings.outbox_dir
        notice = wait_for(lambda: sorted(outbox.glob(f"*{stem}_notice.*.eml")), "the notice")
        show_email(page, notice)
        self.shoot(page, "confirmation-email")
        page.get_by_role("link", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", name="Confirm your subscription?")).to_be_visible()
        self.shoot(page, "confirm")
        page.get_by_role("button", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
        self.shoot(page, "confirmed")

    def save_preferences(self) -> str:
        """Move the send time an hour later and save; return the unsubscribe link."""
        page = self.page
        page.get_by_role("link", name="Open my preferences").click()
        page.get_by_label("At", exact=True).fill("08:30")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        expect(page.locator("#preview-list li").first).to_be_visible()
        self.shoot(page, "saved")
        leave = page.get_by_role("link", name="Unsubscribe from everything").get_attribute("href")
        assert leave is not None
        return leave

    def demo_subscriber(self) -> None:
        """A demo subscriber five digests in: preferences, and the latest digest."""
        page, server = self.page, self.server
        ada = server.storage.subscriber_by_email("ada@example.org")
        if not server.storage.channels_of(subscriber_id=ada.id):
            server.storage.add_channel(
                ChannelKind.SLACK,
                "Lab #papers channel",
                "https://hooks.slack.com/services/T0000000/B0000000/demoDemoDemo0000",
                server.context.clock(),
                subscriber_id=ada.id,
            )
        token = server.context.tokens.make(Purpose.MANAGE, ada.manage_token)
        page.goto(f"{server.url}/manage/{token}")
        expect(page.locator("#preview-list li").first).to_be_visible()
        self.shoot(page, "preferences")
        # The page a chat message's "and N more" opens: the latest digest whole.
        latest = max(d.id for d in server.storage.digest_page(0, 100) if d.subscriber_id == ada.id)
        message_id = server.storage.digest_message_id(latest)
        assert message_id is not None
        view = server.context.tokens.make_message(Purpose.VIEW, message_id, time.time())
        page.goto(f"{server.url}/digest/{view}")
        self.shoot(page, "digest-page")
        digests = server.settings.outbox_dir.glob("ada_example.org_*.digest.*.eml")
        show_email(page, max(digests, key=lambda p: p.name.rpartition(".digest.")[2]))
        self.shoot(page, "digest-email")

    def rate(self) -> None:
        """The shown digest's first "More like this" link, its button, then Undo (state kept)."""
        page = self.page
        more = page.get_by_role("link", name="More like this").first.get_attribute("href")
        assert more is not None
        page.goto(f"{self.server.url}{urlsplit(more).path}")
        expect(page.get_by_role("heading", name="More papers like this?")).to_be_visible()
        self.shoot(page, "rate")
        page.get_by_role("button", name="Yes, more like this").click()
        expect(page.get_by_role("heading", name="Marked: more like this")).to_be_visible()
        self.shoot(page, "rated")
        page.get_by_role("button", name="Undo").click()
        expect(page.get_by_role("heading", name="More papers like this?")).to_be_visible()

    def unsubscribe(self, leave: str) -> None:
        """The unsubscribe link, then its button (the new subscriber: the demo one stays)."""
        page = self.page
        page.goto(f"{self.server.url}{leave}")
        expect(page.get_by_role("heading", name="Unsubscribe?")).to_be_visible()
        self.shoot(page, "unsubscribe")
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
        self.shoot(page, "unsubscribed")


def write_readme(out: Path) -> None:
    lines = [
        "# Screenshots",
        "",
        "Made by `make screenshots` (tools/screenshots.py): the app on SQLite with the demo data,",
        "driven by Debian's chromium. Each page at desktop (1280 px) and phone (390 px) width,",
        "full page.",
        "",
        "| Page | Desktop | Phone | Shows |",
        "| --- | --- | --- | --- |",
    ]
    for name, what in SHOTS.items():
        lines.append(
            f"| {name} | [desktop]({name}-desktop.png) | [phone]({name}-phone.png) | {what} |"
        )
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    args = parser.parse_args()
    if not args.chromium.exists():
        sys.exit(f"screenshots: no browser at {args.chromium}: `make browser` installs chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="notifier-screenshots-") as tmp,
        serve(Path(tmp) / "state") as server,
    ):
        print("screenshots: replaying the demo (five days of listings) ...", flush=True)
        fill_demo(server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(args.chromium), args=CHROMIUM_ARGS
            )
            emails = {"desktop": "marie@example.org", "phone": "emmy@example.org"}
            for width in WIDTHS:
                page = new_page(browser, width)
                shoot = Shooter(args.out, width)
                Tour(page, server, shoot, emails[width.name]).run()
                page.context.close()
                problems += shoot.problems
            browser.close()
    write_readme(args.out)
    print(f"screenshots: wrote {len(SHOTS) * len(WIDTHS)} PNGs and README.md to {args.out}")
    for problem in problems:
        print(f"screenshots: warning: {problem}", file=sys.stderr)


if __name__ == "__main__":
    main()
