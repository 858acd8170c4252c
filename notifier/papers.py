"""Canonical paper identity and text normalisation (DESIGN.md invariant 2). Pure."""

from __future__ import annotations

import functools
import hashlib
import html
import re
import unicodedata
from collections.abc import Collection, Iterable
from urllib.parse import quote_plus, urlsplit

# Characters XML 1.0 forbids, plus C1 controls and Unicode non-characters: they
# break feeds (lxml refuses them) and can smuggle line breaks into headers.
# Control characters, lone surrogates, and the bidirectional embeddings, overrides and
# isolates (U+202A-202E, U+2066-2069) that make a name or title display in another
# order than it is written ("Trojan Source", CVE-2021-42574).
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]"
)
_WHITESPACE = re.compile(r"\s+")
_PUNCTUATION_OR_SPACE = re.compile(r"[\W_]+")
# ASCII digits only (\d also takes Arabic-Indic and other digits). An old-style
# archive name is a word or two ("solv-int", "math.GT"), so an id always fits
# papers.arxiv_id, VARCHAR(40).
_ARXIV_NEW = re.compile(r"^([0-9]{4}\.[0-9]{4,5})(?:v[0-9]+)?$")
_ARXIV_OLD = re.compile(
    r"^([a-z][a-z.-]{0,19}(?:\.[A-Z]{2})?/[0-9]{7})(?:v[0-9]+)?$", re.IGNORECASE | re.ASCII
)
_ARXIV_PREFIX = re.compile(
    r"^(?:arxiv:|oai:arxiv\.org:|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/)",
    re.IGNORECASE,
)
_VERSION = re.compile(r"v([0-9]+)(?:\.pdf)?$")
# papers.version is an INTEGER; real papers have a handful of versions.
MAX_ARXIV_VERSION = 9_999
# Only HTML's own tags with well-formed attributes are markup: LaTeX such as
# "$1<p \le 2$ ... $p>2$" or "$a<b$" must survive.
_ATTRIBUTES = r"""(?:\s+[\w:.-]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>=`]+))?)*\s*/?>"""
_TAG = re.compile(
    r"</?(?:a|abbr|b|big|blockquote|br|cite|code|dd|del|div|dl|dt|em|font|h[1-6]|hr|i|img|"
    r"ins|kbd|li|mark|ol|p|pre|q|s|small|span|strike|strong|sub|sup|table|tbody|td|th|thead|"
    r"tr|tt|u|ul|var)" + _ATTRIBUTES,
    re.IGNORECASE,
)
_BLOCK_TAG = re.compile(r"</?(?:br|p|div|li|tr|h[1-6]|blockquote)" + _ATTRIBUTES, re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# Whitespace, controls and what would end an attribute or a tag: never in a link
# we emit, even where a browser would forgive them.
_NOT_IN_LINKS = re.compile(r'[\x00-\x20\x7f-\x9f"<>\\`]')
MAX_URL_CHARS = 2_000
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.DOTALL | re.IGNORECASE)


def clean_text(text: str) -> str:
    """Return text with control characters removed and all whitespace folded to one space."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def normalise_title(title: str) -> str:
    """Return the comparison form of a title: NFKC, casefolded, punctuation and spaces folded."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return _PUNCTUATION_OR_SPACE.sub(" ", folded).strip()


def author_key(name: str) -> str:
    """Return the comparison form of an author's name, as muting compares them."""
    return normalise_title(name)[:200]


def by_any(authors: Iterable[str], keys: Collection[str]) -> bool:
    """Tell whether any of a paper's authors is among these author keys (muted authors)."""
    return bool(keys) and any(author_key(a) in keys for a in authors)


def strip_markup(text: str) -> str:
    """Return text without HTML tags and comments; LaTeX and other angle brackets are kept."""
    text = _SCRIPT.sub("", _COMMENT.sub("", text))
    text = _BLOCK_TAG.sub(" ", text)  # a line break or paragraph separates words
    return _TAG.sub("", text)


def html_to_text(fragment: str) -> str:
    """Return an HTML fragment as clean text: markup removed, entities decoded exactly once."""
    return clean_text(html.unescape(strip_markup(fragment)))


def http_url(value: object) -> str | None:
    """Return value if it is an absolute http(s) URL fit to be a link, else None.

    A listing's links end up as hrefs in emails, feeds and web pages: a
    javascript:, vbscript: or data: URL would run there, and a scheme-relative
    //host or a relative path would point somewhere no source meant.
    """
    if type(value) is not str:  # a subclass (Markup) could compare equal to a cached str
        return None if not isinstance(value, str) else _http_url(str(value))
    return _http_url(value)


# Every digest that shows a paper checks its links again (composing and sending).
@functools.lru_cache(maxsize=16_384)
def _http_url(value: str) -> str | None:
    """Return http_url(value) for a plain string, remembered for recent ones."""
    url = value.strip()
    if not url or len(url) > MAX_URL_CHARS or _NOT_IN_LINKS.search(url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # an unbalanced [ in the host
        return None
    return url if parts.scheme.lower() in ("http", "https") and host else None


def title_hash(title: str) -> str:
    """Return the hash of a normalised title: the identity of a paper known only by title."""
    return hashlib.sha256(normalise_title(title).encode()).hexdigest()[:20]


def arxiv_version(raw: str) -> int | None:
    """Return the version an arXiv id or URL carries (2409.00001v3 -> 3), if any.

    Raises ValueError saying what is wrong when the version is not one arXiv
    could have given (v0, twenty digits): storage could not hold it.
    """
    m = _VERSION.search(raw.strip())
    if not m:
        return None
    digits = m.group(1)
    # Compare the digits first: int() refuses more than 4,300 of them.
    if len(digits) > len(str(MAX_ARXIV_VERSION)) or not 1 <= int(digits) <= MAX_ARXIV_VERSION:
        shown = digits if len(digits) <= 12 else f"{digits[:8]}… ({len(digits):,} digits)"
        raise ValueError(f"version v{shown} is not between 1 and {MAX_ARXIV_VERSION:,}")
    return int(digits)


def normalise_arxiv_id(raw: str) -> str | None:
    """Return the bare arXiv id (no version, no prefix) or None when raw is not one."""
    candidate = _ARXIV_PREFIX.sub("", raw.strip()).removesuffix(".pdf")
    if m := _ARXIV_NEW.match(candidate):
        return m.group(1)
    if m := _ARXIV_OLD.match(candidate):
        return m.group(1).lower()
    return None


def arxiv_links(arxiv_id: str | None) -> tuple[str, str] | None:
    """Return a bare arXiv id's abstract page and PDF, or None when it is not one."""
    bare = normalise_arxiv_id(arxiv_id) if arxiv_id else None
    if bare is None:
        return None
    return f"https://arxiv.org/abs/{bare}", f"https://arxiv.org/pdf/{bare}"


def paper_key(title: str, arxiv_id: str | None = None) -> str:
    """Return the canonical key: the arXiv id when known, else a hash of the normalised title."""
    if arxiv_id:
        return f"arxiv:{arxiv_id}"
    return f"title:{title_hash(title)}"


def embedding_input(title: str, abstract: str) -> str:
    """Return the text a paper is embedded from: its title, then its abstract."""
    return f"{title}. {abstract}"


def paper_url(title: str, arxiv_id: str | None = None) -> str:
    """Return where a reader can find the paper: its arXiv page, else an arXiv title search."""
    if arxiv_id:
        return f"https://arxiv.org/abs/{arxiv_id}"
    return f"https://arxiv.org/search/?searchtype=title&query={quote_plus(title)}"
