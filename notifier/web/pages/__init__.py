"""The pages people see: subscribe, confirm, preferences, unsubscribe; feeds and OPML.

Nothing here changes state on a GET: link scanners fetch every link in an
email, so the links in emails (/confirm, /unsubscribe) show a page whose
button POSTs.

kit.py holds what every page shares (rendering, CSRF, signed links); signup.py,
preview.py, preferences.py (with examples.py and channels.py for its other
forms), unsubscribe.py, feedback.py, citations.py, digests.py (a digest as a
page) and files.py (feeds, static files) hold the routes.
"""

from __future__ import annotations

from fastapi import APIRouter

from notifier.web.context import WebContext
from notifier.web.pages.channels import add_channel_routes
from notifier.web.pages.citations import add_citation_routes
from notifier.web.pages.digests import add_digest_routes
from notifier.web.pages.examples import add_example_routes
from notifier.web.pages.feedback import add_feedback_routes
from notifier.web.pages.files import add_feed_routes
from notifier.web.pages.kit import PageKit
from notifier.web.pages.preferences import add_preference_routes
from notifier.web.pages.preview import add_preview_routes
from notifier.web.pages.signup import add_confirm_routes, add_subscribe_routes
from notifier.web.pages.unsubscribe import add_unsubscribe_routes


def pages_router(context: WebContext) -> APIRouter:
    """Return the routes of the public pages and feeds."""
    router = APIRouter(include_in_schema=False)
    kit = PageKit(context)
    add_subscribe_routes(router, kit)
    add_preview_routes(router, kit)
    add_confirm_routes(router, kit)
    add_preference_routes(router, kit)
    add_unsubscribe_routes(router, kit)
    add_feedback_routes(router, kit)
    add_example_routes(router, kit)
    add_channel_routes(router, kit)
    add_citation_routes(router, kit)
    add_digest_routes(router, kit)
    add_feed_routes(router, kit)
    return router
