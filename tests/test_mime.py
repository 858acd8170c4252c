"""The hand-built message bytes read back, in a mail client's parser, as what was meant."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from notifier import pipeline
from notifier.app import make_renderer
from notifier.errors import RenderError
from notifier.models import DigestContent, DigestPaper, DigestSection, Interest, Subscriber
from notifier.render.mime import build_message, chunk, header_text, joined, mailbox
from notifier.settings import Settings
from notifier.storage import Storage
from tests.conftest import JOINED, NOW, parse_message, seed_bytes


def build(headers: list[tuple[str, str]], text: str = "hello\n", html: str = "<p>hi</p>") -> bytes:
    """Return a message with the given headers and bodies."""
    return build_message(headers, text, html)


def test_non_ascii_names_and_subjects_are_encoded_and_read_back() -> None:
    data = build(
        [
            ("From", mailbox("Zoë's Digest, Ltd.", "digest@example.org")),
            ("To", mailbox('Ada "the Count" Lovelace', "ada@example.org")),
            ("Subject", header_text("3 new papers on Übersetzung — 2026-11-22")),
        ]
    )
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    message = parse_message(data)
    assert str(message["Subject"]) == "3 new papers on Übersetzung — 2026-11-22"
    assert message["From"].addresses[0].display_name == "Zoë's Digest, Ltd."
    assert message["To"].addresses[0].display_name == 'Ada "the Count" Lovelace'
    assert [a.addr_spec for a in message["To"].addresses] == ["ada@example.org"]


def test_long_subject_is_folded_under_the_line_limit_and_shortened() -> None:
    subject = "robotics, " * 200
    data = build([("Subject", header_text(subject))])
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    shown = str(parse_message(data)["Subject"])
    assert shown.startswith("robotics, robotics,") and shown.endswith("…")
    assert len(shown) <= 200


def test_bodies_round_trip_and_lines_over_998_octets_switch_to_quoted_printable() -> None:
    text = "line one\nzweite Zeile: é\n"
    html = "<p>" + "x" * 5_000 + "</p>"
    message = parse_message(build([], text, html))
    plain, rich = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and rich is not None
    assert plain.get_content() == text
    assert plain["Content-Transfer-Encoding"] == "8bit"
    assert rich["Content-Transfer-Encoding"] == "quoted-printable"
    assert rich.get_content().strip() == html


def test_a_lone_carriage_return_in_a_body_becomes_a_line_break() -> None:
    data = build([], "before\rafter\n")
    assert b"\rafter" not in data.replace(b"\r\n", b"")
    plain = parse_message(data).get_body(("plain",))
    assert plain is not None and plain.get_content() == "before\nafter\n"


@pytest.mark.parametrize("value", ["a\r\nBcc: x@evil.example", "a\nB", "a\rB"])
def test_a_header_value_with_a_line_break_is_refused(value: str) -> None:
    with pytest.raises(RenderError, match="line break"):
        build([("Subject", value)])


def test_subscribers_sharing_a_paper_share_its_rendered_block(
    storage: Storage, settings: Settings
) -> None:
    pipeline.ingest(storage, "day1", seed_bytes(3), NOW - timedelta(hours=1))
    query = '"behavior cloning" OR imitat*'
    alice, _ = storage.save_subscriber("a@example.org", "Alice", [Interest("bc", query)], JOINED)
    bob, _ = storage.save_subscriber("b@example.org", "Bob", [Interest("imitation", query)], JOINED)
    carol, _ = storage.save_subscriber(
        "c@example.org", None, [Interest("bc", '"behavior cloning"')], JOINED
    )
    composed = {c.subscriber.email: c for c in pipeline.compose_digests(storage, settings, NOW)}
    renderer = make_renderer(settings)

    def html_of(email: str, subscriber_id: int) -> str:
        content = composed[email].content
        assert content is not None
        subscriber = next(s for s in (alice, bob, carol) if s.id == subscriber_id)
        part = parse_message(renderer.render(content, subscriber, "<m@x>", NOW).data).get_body(
            ("html",)
        )
        assert part is not None
        return str(part.get_content())

    a, b = html_of(alice.email, alice.id), html_of(bob.email, bob.id)
    c = html_of(carol.email, carol.id)
    first_title = a.split('class="title"', 1)[1].split("</a>", 1)[0]
    # Same paper, same highlighted terms: the same inlined block, styles included.
    assert first_title in b
    assert 'style="' in first_title
    assert "<!--notifier-" not in a + b + c
    # The parts around the blocks stay personal.
    assert "Hello Alice" in a and "Hello Bob" in b and "Hello" not in c.split("<h2", 1)[0]
    assert "cloning</mark>" in c.lower()


@pytest.mark.parametrize("length", [69, 70])
def test_a_plain_subject_is_kept_on_one_line_only_while_it_fits(length: int) -> None:
    subject = "papers " * ((length - 11) // 7) + "x" * ((length - 11) % 7) + " 2026-11-22"
    assert len(subject) == length
    data = build([("Subject", header_text(subject))])
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert (f"Subject: {subject}".encode() in head) is (length == 69)  # "Subject: " + 69 = 78
    assert str(parse_message(data)["Subject"]) == subject


def test_every_paper_shows_why_and_its_other_interests_in_both_parts(settings: Settings) -> None:
    def paper(paper_id: int, reason: str, also: tuple[str, ...] = ()) -> DigestPaper:
        return DigestPaper(
            paper_id=paper_id,
            guid=f"g{paper_id}",
            title=f"Paper number {paper_id}",
            abstract="An abstract.",
            url=f"https://example.org/{paper_id}",
            score=0.5,
            reason=reason,
            terms=(),
            also_matches=also,
        )

    content = DigestContent(
        subscriber_id=1,
        period="2026-11-22",
        sections=(
            DigestSection("robots", (paper(1, "“robots” in title", ("vision",)), paper(2, "r2"))),
            DigestSection("vision", (paper(3, "“vision” in abstract"),)),
        ),
    )
    reader = Subscriber(1, "r@example.org", "Reader", (), "feed", "manage", NOW)
    message = parse_message(make_renderer(settings).render(content, reader, "<m@x>", NOW).data)
    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert "3 new papers matching your interests (2026-11-22)" in text
    robots, vision = text.split("== robots ==")[1].split("== vision ==")
    assert robots.index("Paper number 1") < robots.index("Why: “robots” in title")
    assert robots.index("Why: “robots” in title") < robots.index("Also matches: vision")
    assert robots.index("Also matches: vision") < robots.index("Paper number 2")
    assert "Why: “vision” in abstract" in vision and "Also matches" not in vision
    assert html.count("Also matches: vision") == 1 and html.count("Why: ") == 3
    assert html.index("Why: “robots” in title") < html.index(">vision</h2>")
    assert 'class="why" style="' in html and "<!--notifier-" not in html


def test_joined_chunks_know_their_lines_as_if_the_text_had_been_scanned_whole() -> None:
    # The renderer joins cached paper blocks into each message without rescanning them;
    # a long line made across a seam must still switch the part to quoted-printable.
    rng = random.Random(5)
    # (A piece ending in a lone CR is left out: joined, it would meet the next one's LF.)
    alphabet = ["a", "é", "\n", "\r\n", "\ra", "x" * 400]
    for _ in range(2_000):
        pieces = ["".join(rng.choices(alphabet, k=rng.randint(0, 6))) for _ in range(4)]
        assert joined(map(chunk, pieces)) == chunk("".join(pieces)), pieces


def test_a_line_over_998_octets_made_of_two_pieces_is_sent_quoted_printable() -> None:
    text = joined([chunk("intro\n" + "a" * 600), chunk("b" * 600 + "\nend\n")])
    data = build_message([("Subject", "seam")], text, "<p>hi</p>")
    assert b"Content-Transfer-Encoding: quoted-printable" in data
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    plain = parse_message(data).get_body(("plain",))
    assert (
        plain is not None and plain.get_content() == "intro\n" + "a" * 600 + "b" * 600 + "\nend\n"
    )


def test_long_ascii_subjects_fold_at_spaces_and_read_back_whole() -> None:
    rng = random.Random(7)
    lengths = (1, 3, 8, 20, 60, 70, 77, 90)
    for _ in range(300):
        words = ["".join(rng.choices("abcXYZ019(),.:-'", k=rng.choice(lengths))) for _ in range(12)]
        subject = " ".join(words)[:199].strip()
        head = build([("Subject", header_text(subject))]).split(b"\r\n\r\n", 1)[0]
        assert str(parse_message(head + b"\r\n\r\n")["Subject"]) == subject
        for line in head.removeprefix(b"Subject: ").split(b"\r\n"):
            # A line is only longer than 78 octets when one word alone is.
            assert len(line) <= 78 or b" " not in line.strip(), line


@pytest.mark.parametrize(
    "name",
    [
        "=?utf-8?q?Bcc=3A_victim=40example.org?=",  # an encoded word a client would decode
        "Ada \u202egnp.exe",  # a right-to-left override reverses what follows
    ],
)
def test_a_hostile_display_name_reaches_to_and_subject_as_plain_text(
    settings: Settings, name: str
) -> None:
    paper = DigestPaper(1, "g1", "A paper", "An abstract.", "https://example.org/1", 0.5, "r", ())
    content = DigestContent(1, "2026-11-22", (DigestSection(name, (paper,)),))
    reader = Subscriber(1, "r@example.org", name, (), "feed", "manage", NOW)
    data = make_renderer(settings).render(content, reader, "<m@x>", NOW).data
    message = parse_message(data)
    [to] = message["To"].addresses
    assert to.addr_spec == "r@example.org"
    assert "\u202e" not in str(message["To"]) and "\u202e" not in str(message["Subject"])
    assert not str(message["To"]).startswith("Bcc") and "Bcc: " not in str(message["To"])
    assert "Bcc: " not in str(message["Subject"])
    assert "Bcc" not in message  # no header of that name, however the name was written
