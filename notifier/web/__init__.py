"""notifier serve: the sign-up, preferences and unsubscribe pages, feeds over HTTP,
the admin JSON API, /healthz and /metrics, as one ASGI app (FastAPI on uvicorn).

Handlers are thin: forms.py checks input, storage changes state, templates
under templates/web/ render pages. Handlers that touch the database are plain
functions, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

from fastapi import FastAPI

from notifier import __version__
from notifier.web.api import api_router
from notifier.web.context import WebContext
from notifier.web.feeds import CompressFeeds
from notifier.web.ops import ops_router
from notifier.web.pages import pages_router
from notifier.web.security import (
    AccessLog,
    ASGIApp,
    BodyLimit,
    Receive,
    Scope,
    SecurityHeaders,
    Send,
    SlashRedirect,
)

# The largest form is a few kilobytes; anything far bigger is a mistake or an attack.
MAX_BODY = 64 * 1024
# A bulk import of subscribers (POST /api/v1/subscribers/import) may carry more.
MAX_IMPORT_BODY = 8 * 1024 * 1024
# A reference library export teaching an interest (POST .../interests/{name}/library,
# or the preferences page's upload, POST /manage/{token}/library):
# up to 5 MiB of text, which JSON escaping makes a little longer.
MAX_LIBRARY_BODY = 6 * 1024 * 1024
# BodyLimit's larger paths are whole paths; these have an id, a name or a token in them.
_LIBRARY_PATH = re.compile(r"^(/api/v1/subscribers/[^/]+/interests/.+|/manage/[^/]+)/library$")


def _body_limit(app: ASGIApp) -> ASGIApp:
    """Return app behind BodyLimit, with the bigger limits of imports."""
    usual = BodyLimit(
        app, max_bytes=MAX_BODY, larger={"/api/v1/subscribers/import": MAX_IMPORT_BODY}
    )
    library = BodyLimit(app, max_bytes=MAX_LIBRARY_BODY)

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        chosen = library if _LIBRARY_PATH.match(scope.get("path", "")) else usual
        await chosen(scope, receive, send)

    return limited


def create_app(context: WebContext) -> FastAPI:
    """Build the ASGI app around a WebContext."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The matching model takes up to half a minute the first time.
        # Prepared in the background, so that sign-ups, confirmations, one-click
        # unsubscribes, feeds and /healthz answer at once (a start blocked that
        # long fails health checks); only the preview and the preferences
        # page's "why so few" need it, and the preview says it is preparing.
        context.start_preparing()
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="notifier admin API",
        version=__version__,
        description="Subscribers, their interests and digests, runs and sources. "
        "Every call needs `Authorization: Bearer <admin_token>`.",
        openapi_url="/api/v1/openapi.json",
        # The interactive docs load scripts from a CDN, which the CSP forbids.
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # SlashRedirect does it from base_url instead
    )
    app.state.context = context
    app.include_router(pages_router(context))
    app.include_router(ops_router(context))
    app.include_router(api_router(context), prefix="/api/v1")
    app.router.default = SlashRedirect(app.router, context.settings.base_url)
    https = context.settings.base_url.startswith("https://")
    app.add_middleware(SecurityHeaders, https=https)
    app.add_middleware(CompressFeeds)
    app.add_middleware(_body_limit)
    app.add_middleware(AccessLog)
    return app
