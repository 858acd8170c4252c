"""What every page handler shares: rendering, the CSRF cookie and token, signed links."""

from __future__ import annotations

import functools
import hmac
import re
import secrets
import zoneinfo
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from notifier.models import Subscriber
from notifier.tokens import Purpose, TokenError
from notifier.web.context import WebContext
from notifier.web.forms import InterestRow

CSRF_COOKIE = "notifier_csrf"
HONEYPOT = "website"  # hidden from people by CSS; bots fill every field
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Pages holding a personal token must never be cached or indexed.
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


class PageKit:
    """What every page handler shares: rendering, CSRF checks and reading signed links."""

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.settings = context.settings
        self.storage = context.storage
        self.tokens = context.tokens
        self.secure_cookie = self.settings.base_url.startswith("https://")
        self.link_age = timedelta(days=self.settings.link_days).total_seconds()
        self.confirm_age = timedelta(hours=self.settings.confirm_hours).total_seconds()

    def page(
        self,
        request: Request,
        template: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """Render a page; forms on it get a CSRF token bound to the visitor's cookie."""
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = cookie is None or not _TOKEN.fullmatch(cookie)
        if fresh:
            cookie = secrets.token_urlsafe(24)
        assert cookie is not None
        html = self.context.env.get_template(f"web/{template}").render(
            csrf=self.tokens.make(Purpose.CSRF, cookie),
            zones=_zone_names(),
            honeypot=HONEYPOT,
            base_url=self.settings.base_url,
            **values,
        )
        response = HTMLResponse(html, status_code=status, headers=headers)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                cookie,
                httponly=True,
                samesite="strict",
                secure=self.secure_cookie,
                max_age=86400,
            )
        return response

    def message(
        self, request: Request, title: str, text: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        """Render the one-message page (done, expired, not valid...)."""
        return self.page(
            request, "message.html.j2", status, headers=PRIVATE, title=title, text=text, **values
        )

    def csrf_ok(self, request: Request, form: FormData) -> bool:
        """Tell whether a form post carries the token of this visitor's cookie, from our origin."""
        origin = request.headers.get("origin")
        if (
            origin
            and origin != "null"
            and not _same_origin(origin, self.settings.base_url, request)
        ):
            return False
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = str(form.get("csrf", ""))
        try:
            signed = self.tokens.read(Purpose.CSRF, sent, max_age=86400)
        except TokenError:
            return False
        return bool(cookie) and hmac.compare_digest(signed.encode(), cookie.encode())

    def expired_form(self, request: Request) -> HTMLResponse:
        """Answer a form post whose CSRF token does not check out."""
        return self.message(
            request,
            "Please try again",
            "This form is too old or came from another site. Reload the page and send it again.",
            status=403,
        )

    def subscriber_for(self, purpose: Purpose, token: str, max_age: float) -> Subscriber | str:
        """Return the subscriber a signed link names, or why the link is refused."""
        try:
            key = self.tokens.read(purpose, token, max_age)
        except TokenError as e:
            return str(e)
        found = self.storage.subscriber_by_manage_key(key)
        return found if found is not None else "this link is not valid"

    def refused(self, request: Request, why: str) -> HTMLResponse:
        """Answer a link that is forged, expired or for another purpose."""
        return self.message(
            request,
            "This link does not work",
            f"Sorry: {why}. Use the link in your most recent email, or sign up again "
            "to get a fresh one.",
            status=400 if "expired" in why else 404,
            link="/",
            link_text="Go to the sign-up page",
        )

    def manage_url(self, subscriber: Subscriber) -> str:
        """Return a fresh preferences link for subscriber."""
        return f"/manage/{self.tokens.make(Purpose.MANAGE, subscriber.manage_token)}"


@functools.cache
def _zone_names() -> list[str]:
    """Return the IANA time zone names offered as suggestions in the forms."""
    return sorted(zoneinfo.available_timezones())


def padded(rows: list[InterestRow], rows_shown: int) -> list[InterestRow]:
    """Return the filled rows, in order, then blank ones: at least one, rows_shown in all."""
    filled = [r for r in rows if not r.blank]
    return filled + [InterestRow()] * max(1, rows_shown - len(filled))


def _same_origin(origin: str, base_url: str, request: Request) -> bool:
    """Tell whether an Origin header is our public address or the address asked for."""
    asked = f"{request.url.scheme}://{request.headers.get('host', '')}"
    ours = urlsplit(base_url)
    return origin in (f"{ours.scheme}://{ours.netloc}", asked)
