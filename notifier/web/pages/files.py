"""The feeds, public and private, in Atom and RSS, and the static files (CSS, JavaScript)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from notifier.render import default_templates_dir
from notifier.web.feeds import CONTENT_TYPES, PrivateFeeds, not_modified, read_feed
from notifier.web.pages.kit import PageKit

_FEED_NAME = re.compile(r"^(all|topics/[a-z0-9][a-z0-9-]{0,63}|subscribers/[A-Za-z0-9_-]{16,64})$")
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


def add_feed_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the feeds and the static files."""
    settings = kit.settings
    private_feeds = PrivateFeeds(kit.context)

    # HEAD as well: feed readers and link checkers ask it (the server sends no body).
    @router.api_route("/feeds/{name:path}", methods=["GET", "HEAD"], response_model=None)
    def feed(request: Request, name: str) -> Response:
        stem, dot, suffix = name.rpartition(".")
        if not dot or not _FEED_NAME.fullmatch(stem):
            return Response("No such feed.\n", status_code=404, media_type="text/plain")
        if stem.startswith("subscribers/") and f".{suffix}" in CONTENT_TYPES:
            private_feeds.refresh(stem.removeprefix("subscribers/"))
        document = read_feed(settings.feeds_dir / f"{stem}.{suffix}")
        if document is None:
            return Response("No such feed.\n", status_code=404, media_type="text/plain")
        headers = document.headers()
        if stem.startswith("subscribers/"):
            headers.update({"X-Robots-Tag": "noindex", "Cache-Control": "private, max-age=300"})
        if not_modified(
            document,
            request.headers.get("if-none-match"),
            request.headers.get("if-modified-since"),
        ):
            # A 304 has no body for the gzip middleware to mark; say it varies all the same.
            return Response(status_code=304, headers={**headers, "Vary": "Accept-Encoding"})
        # The bytes the ETag was made from, not a reopened file: a rebuild may
        # replace the file at any moment.
        return Response(document.data, media_type=document.content_type, headers=headers)

    static_dir = (settings.templates_dir or default_templates_dir()) / "web" / "static"
    fallback_dir = default_templates_dir() / "web" / "static"

    @router.api_route("/static/{name}", methods=["GET", "HEAD"])
    def static(name: str) -> Response:
        if name not in _STATIC:
            return Response("Not found.\n", status_code=404, media_type="text/plain")
        path = static_dir / name if (static_dir / name).is_file() else fallback_dir / name
        return Response(
            path.read_bytes(),
            media_type=_STATIC[name],
            headers={"Cache-Control": "public, max-age=3600"},
        )
