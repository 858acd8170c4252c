"""A paper's feedback links in digests and private feeds: signed per purpose, paper, interest."""

from __future__ import annotations

from dataclasses import dataclass

from notifier.tokens import LinkTokens, PaperLink, Purpose


@dataclass(frozen=True, slots=True)
class PaperLinks:
    """A paper's "more like this", "not for me" and "mute an author" links."""

    more: str
    less: str
    mute: str | None  # None when the paper names no authors


def paper_links(  # noqa: PLR0917
    tokens: LinkTokens,
    base_url: str,
    manage_key: str,
    paper_id: int,
    interest: str,
    has_authors: bool,
    at: float | None = None,
) -> PaperLinks:
    """Return a paper's feedback links for one subscriber and interest, dated at (default now)."""
    link = PaperLink(manage_key, paper_id, interest)
    return PaperLinks(
        more=f"{base_url}/more/{tokens.make_paper(Purpose.MORE, link, at)}",
        less=f"{base_url}/less/{tokens.make_paper(Purpose.LESS, link, at)}",
        mute=f"{base_url}/mute/{tokens.make_paper(Purpose.MUTE, link, at)}"
        if has_authors
        else None,
    )
