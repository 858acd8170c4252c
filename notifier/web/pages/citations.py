"""A digest's papers as BibTeX or RIS, behind the signed link in the digest's footer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from notifier.citations import bibtex, digest_citation, ris
from notifier.tokens import Purpose, TokenError
from notifier.web.pages.kit import PRIVATE, PageKit

# What each suffix serves: its writer and media type.
FORMATS = {
    "bib": (bibtex, "application/x-bibtex; charset=utf-8"),
    "ris": (ris, "application/x-research-info-systems; charset=utf-8"),
}


def add_citation_routes(router: APIRouter, kit: PageKit) -> None:
    """Add /citations/<token>.bib and .ris: a digest's papers for a reference manager."""
    storage = kit.storage

    # A GET changes nothing, so a mail scanner's visit is harmless; HEAD for link checkers.
    @router.api_route("/citations/{name}", methods=["GET", "HEAD"], response_model=None)
    def citations(request: Request, name: str) -> Response:
        token, _, suffix = name.rpartition(".")
        if suffix not in FORMATS:
            return Response("No such file.\n", status_code=404, media_type="text/plain")
        try:
            key, message_id = kit.tokens.read_digest(Purpose.CITE, token, kit.link_age)
        except TokenError as e:
            return kit.refused(request, str(e))
        subscriber = storage.subscriber_by_manage_key(key)
        found = storage.digest_content(message_id=message_id)
        if subscriber is None or found is None or found[0] != subscriber.id:
            return kit.refused(request, "this link is not valid")
        _, content, composed = found
        write, media_type = FORMATS[suffix]
        papers = [paper for section in content.sections for paper in section.papers]
        attachment = f'attachment; filename="notifier-{_safe(content.period)}.{suffix}"'
        return Response(
            write([digest_citation(paper, composed) for paper in papers]),
            media_type=media_type,
            headers={**PRIVATE, "Content-Disposition": attachment},
        )


def _safe(period: str) -> str:
    """Return a digest's period as a file name may hold it."""
    return "".join(c if c.isalnum() or c == "-" else "-" for c in period)
