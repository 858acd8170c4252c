"""Build the bytes of a multipart/alternative email directly.

The email package's EmailMessage parses every header it is given through its
header registry and re-folds everything when flattened: about 2 ms a message,
more than rendering the digest. Digests have a fixed shape (a handful of
headers we write ourselves, a text and an HTML part), so they are assembled
here with the standard library's encoders and checked by parsing them back in
the tests.

A body can be given as Chunks: text already normalised to CRLF-ended UTF-8,
with the lengths of its first, last and longest lines. A digest's paper blocks
are turned into Chunks once per run and joined per message, so a 40 kB body
is not searched, encoded and scanned for long lines again for every subscriber.
"""

from __future__ import annotations

import binascii
import functools
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr

from notifier.errors import RenderError

CRLF = "\r\n"
MAX_LINE = 998  # octets per line, RFC 5322 2.1.1

# Display names and subjects longer than this are cut in headers (the body has
# them whole); RFC 2047 encoded words are folded at 76 columns either way.
HEADER_TEXT_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Chunk:
    """Part of a body as CRLF-ended UTF-8 bytes, and what joining needs to know of its lines.

    Lengths are in octets without the line end; a chunk without a line break is
    one partial line, whose length is head = tail = longest.
    """

    data: bytes
    head: int  # the first line
    tail: int  # the last line (after the last break)
    longest: int  # the longest line, first and last included
    breaks: bool  # whether data holds a line break


def chunk(text: str) -> Chunk:
    """Return text as a Chunk: line ends (CRLF, CR or LF) made CRLF, encoded as UTF-8."""
    if "\r" in text:  # rare: the QP encoder would pass a lone CR through raw
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.encode("utf-8")
    lines = data.split(b"\n")
    return Chunk(
        data.replace(b"\n", b"\r\n"),
        len(lines[0]),
        len(lines[-1]),
        max(map(len, lines)),
        len(lines) > 1,
    )


def joined(chunks: Iterable[Chunk]) -> Chunk:
    """Return the chunks one after the other, their line lengths combined without a scan."""
    data: list[bytes] = []
    head = tail = longest = 0
    breaks = False
    for part in chunks:
        data.append(part.data)
        if part.breaks:
            # The partial line so far ends at part's first break.
            longest = max(longest, tail + part.head, part.longest)
            if not breaks:
                head = tail + part.head
            tail = part.tail
            breaks = True
        else:
            tail += part.head
            longest = max(longest, tail)
            if not breaks:
                head = tail
    return Chunk(b"".join(data), head, tail, longest, breaks)


# Digests of the same interests share a subject, so a run encodes each one once.
@functools.lru_cache(maxsize=4096)
def header_text(value: str, name: str = "Subject") -> str:
    """Return free text as the value of header name: folded, RFC 2047-encoded when not ASCII."""
    value = _shorten(value)
    # Text shaped like an encoded word ("=?utf-8?q?...?=") is encoded itself, so a
    # client decodes it once, back to the literal text.
    lookalike = "=?" in value
    if value.isascii() and value.isprintable() and not lookalike:
        if len(name) + 2 + len(value) <= 78:
            return value  # what Header would return: one line, nothing to encode or fold
        if "  " not in value and value[:1] != " " and value[-1:] != " ":
            return _folded(value, 78 - len(name) - 2)
    charset = "us-ascii" if value.isascii() and not lookalike else "utf-8"
    return Header(value, charset, maxlinelen=78, header_name=name).encode(linesep=CRLF)


def _folded(value: str, first: int) -> str:
    """Return printable ASCII words folded at spaces into lines of at most 78 characters,
    the first one first characters long (email.header.Header folds alike at ten times the cost).
    """
    lines: list[str] = []
    line, room = "", first
    for word in value.split(" "):
        if not line:
            # A first word too long for the first line stays there: Header would start
            # the value with a line break, which parsers read back as a leading space.
            line = word
        elif len(line) + 1 + len(word) <= room:
            line += " " + word
        else:
            lines.append(line)
            line, room = " " + word, 78
    lines.append(line)
    return CRLF.join(lines)


def mailbox(name: str, address: str, header: str = "To") -> str:
    """Return 'Name <address>' with the name quoted or RFC 2047-encoded as needed."""
    name = _shorten(name)
    if not name:
        return address
    if name.isascii() and "=?" not in name:
        return formataddr((name, address))
    return _encoded(name, address, header)


def _encoded(name: str, address: str, header: str) -> str:
    """Return 'Name <address>' with the name RFC 2047-encoded in UTF-8.

    Also for ASCII text shaped like an encoded word: written as it is, mail clients
    decode it ("=?utf-8?q?Bcc=3A_...?=" shows as "Bcc: ...", even quoted); encoded,
    it is decoded once, back to the literal text.
    """
    encoded = Header(name, "utf-8", maxlinelen=78, header_name=header).encode(linesep=CRLF)
    return f"{encoded} <{address}>"


def build_message(
    headers: Sequence[tuple[str, str]], text: str | Chunk, html: str | Chunk
) -> bytes:
    """Return a complete multipart/alternative message (CRLF line ends, quoted-printable parts).

    Raises RenderError if a header value could end its line early: every
    caller's value is cleaned already, so this is a guard, not a filter.
    """
    boundary = f"=_{secrets.token_hex(12)}"  # "=_" cannot occur in quoted-printable text
    lines = []
    for name, value in headers:
        unfolded = value.replace(CRLF + " ", " ")
        if "\r" in unfolded or "\n" in unfolded:
            raise RenderError(f"header {name} would contain a line break; refusing to send it")
        lines.append(f"{name}: {value}")
    lines += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
    ]
    head = (CRLF.join(lines) + CRLF).encode("utf-8")
    return b"".join(
        (
            head,
            *_part(boundary, "text/plain", text),
            *_part(boundary, "text/html", html),
            f"--{boundary}--{CRLF}".encode("ascii"),
        )
    )


def _part(boundary: str, content_type: str, body: str | Chunk) -> tuple[bytes, bytes, bytes]:
    """Return one body part and its boundary, in pieces to join: 8bit when every line fits,
    else quoted-printable.
    """
    if isinstance(body, str):
        body = chunk(body)
    if body.longest <= MAX_LINE:
        encoding, payload = "8bit", body.data  # what the email package picks for such text
    else:
        lines = body.data.replace(b"\r\n", b"\n")
        encoding = "quoted-printable"
        payload = binascii.b2a_qp(lines, istext=True).replace(b"\n", b"\r\n")
    # The CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1), so one
    # is always added: a body that ends with a line break keeps it.
    return (
        (
            f"--{boundary}{CRLF}"
            f'Content-Type: {content_type}; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: {encoding}{CRLF}{CRLF}"
        ).encode("ascii"),
        payload,
        b"\r\n",
    )


def _shorten(value: str) -> str:
    """Return value cut to HEADER_TEXT_LIMIT characters, marked with an ellipsis."""
    if len(value) <= HEADER_TEXT_LIMIT:
        return value
    return value[: HEADER_TEXT_LIMIT - 1].rstrip() + "…"
