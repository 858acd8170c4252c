"""Teaching an interest from the email: signed paper links, ratings, muted authors."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import httpx
import rispy
from bibtexparser.entrypoint import parse_string
from bibtexparser.middlewares import LatexDecodingMiddleware

from notifier import pipeline
from notifier.app import make_renderer, make_transport
from notifier.feedback import example_terms
from notifier.match import compile_interest, default_params, score
from notifier.models import Interest, Verdict
from notifier.paper_index import IndexedPaper, PaperIndex
from notifier.settings import load_settings
from notifier.tokens import LinkTokens, PaperLink, Purpose
from tests.conftest import DATA, NOW, SmtpServer, WebServer, seed_bytes
from tests.test_web import SECRET, csrf_of, heading, with_signature_changed

ABOUT = "reinforcement learning agents, robots and language models"


def digest_for(web: WebServer, smtp: SmtpServer, email: str, now: datetime) -> EmailMessage:
    """Compose and send what is due at now; return the newest message to email."""
    settings = load_settings(**web.settings.model_dump(exclude={"smtp_url"}), smtp_url=smtp.url)
    pipeline.compose_digests(web.storage, settings, now)
    renderer = make_renderer(settings)
    asyncio.run(pipeline.send_pending(web.storage, renderer, make_transport(settings), lambda: now))
    mine = [r.message for r in smtp.handler.received if email in str(r.message["To"])]
    assert mine, f"no digest reached {email}"
    return mine[-1]


def text_of(message: EmailMessage) -> str:
    """Return a message's plain-text part."""
    plain = message.get_body(("plain",))
    assert plain is not None
    return str(plain.get_content())


def titles_of(message: EmailMessage) -> list[str]:
    """Return the paper titles of a digest, in order."""
    return re.findall(r"^\* (.+)$", text_of(message), re.M)


def links_of(message: EmailMessage, kind: str) -> list[str]:
    """Return a digest's links of one kind (more, less, mute), one per paper, in order."""
    return re.findall(rf"https?://\S+/{kind}/\S+", text_of(message))


def click(client: httpx.Client, link: str, **fields: str) -> httpx.Response:
    """Open a paper link as its reader does: the page, then its button."""
    path = urlsplit(link).path
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf": csrf_of(page.text), **fields})


def subscribe(web: WebServer, email: str) -> int:
    """Store an active subscriber with one described interest; return its id."""
    subscriber, _ = web.storage.save_subscriber(
        email, None, [Interest("agents", about=ABOUT, sensitivity="broad")], NOW - timedelta(days=3)
    )
    return subscriber.id


ARXIV_API = (DATA / "sources" / "arxiv_api.xml").read_text()


def first_digest(
    web: WebServer, smtp: SmtpServer, email: str, listing: str | None = None
) -> tuple[int, EmailMessage]:
    """Subscribe email, take in a listing (a seed snapshot, or arXiv API XML), send the digest.

    Returns the subscriber's id and their first digest.
    """
    subscriber = subscribe(web, email)
    before = NOW - timedelta(hours=1)
    if listing is None:
        pipeline.ingest(web.storage, "day0", seed_bytes(0), before)
    else:
        pipeline.ingest(web.storage, "api", listing.encode(), before, "arxiv-api")
    return subscriber, digest_for(web, smtp, email, NOW)


def test_a_rating_through_the_digest_link_changes_the_next_digest(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web()
    rater = subscribe(web, "ada@example.org")
    subscribe(web, "bob@example.org")  # the same interest, never rates: the control
    pipeline.ingest(web.storage, "day0", seed_bytes(0), NOW - timedelta(hours=1))
    first = digest_for(web, smtp_server, "ada@example.org", NOW)
    titles, more, less = titles_of(first), links_of(first, "more"), links_of(first, "less")
    assert len(titles) == len(more) == len(less) >= 4
    html = first.get_body(("html",))
    assert html is not None and html.get_content().count('href="' + more[0].split("/more/")[0]) > 0

    with httpx.Client(base_url=web.url) as client:
        done = click(client, more[0])
        assert heading(done) == "Marked: more like this"
        click(client, more[1])
        assert heading(click(client, less[2])) == "Marked: not for me"
    examples = web.storage.examples_of(rater)
    assert [(e.title, e.verdict) for e in examples] == [
        (titles[2], Verdict.LESS),
        (titles[1], Verdict.MORE),
        (titles[0], Verdict.MORE),
    ] or sorted((e.title, e.verdict) for e in examples) == sorted(
        [(titles[0], Verdict.MORE), (titles[1], Verdict.MORE), (titles[2], Verdict.LESS)]
    )

    later = NOW + timedelta(days=1)
    pipeline.ingest(web.storage, "day1", seed_bytes(1), later - timedelta(hours=1))
    taught = digest_for(web, smtp_server, "ada@example.org", later)
    control = digest_for(web, smtp_server, "bob@example.org", later)
    assert "(tuned by 3 papers you rated or imported)" in text_of(taught)
    assert "tuned by" not in text_of(control)
    assert "like papers you marked: “" in text_of(taught)  # the reason says what it learned
    assert titles_of(taught) != titles_of(control)
    # Nothing reaches a subscriber twice, rated or not.
    assert not set(titles_of(taught)) & set(titles)


def test_a_mail_scanner_opening_every_link_records_nothing(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web()
    rater, message = first_digest(web, smtp_server, "ada@example.org")
    for kind in ("more", "less", "mute"):
        for link in links_of(message, kind):
            response = httpx.get(link)
            assert response.status_code == 200
            assert "<form" in response.text
            # A scanner that also HEADs or POSTs without the page's cookie changes nothing.
            assert httpx.post(link, data={"csrf": "x"}).status_code == 403
    assert web.storage.examples_of(rater) == []
    assert web.storage.muted_authors_of(rater) == []


def test_a_second_click_undoes_or_changes_the_rating(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web()
    rater, message = first_digest(web, smtp_server, "ada@example.org")
    more, less = links_of(message, "more")[0], links_of(message, "less")[0]
    with httpx.Client(base_url=web.url) as client:
        click(client, more)
        assert [e.verdict for e in web.storage.examples_of(rater)] == [Verdict.MORE]
        changed = click(client, less)
        assert "this changes that" not in changed.text  # the page after the change
        assert [e.verdict for e in web.storage.examples_of(rater)] == [Verdict.LESS]
        page = client.get(urlsplit(less).path)
        assert heading(page) == "Marked: not for me" and "Undo" in page.text
        undone = client.post(urlsplit(less).path, data={"csrf": csrf_of(page.text), "undo": "1"})
        assert heading(undone) == "Fewer papers like this?"
    assert web.storage.examples_of(rater) == []


def test_forged_expired_and_borrowed_links_change_nothing(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web()
    ada = subscribe(web, "ada@example.org")
    bob = subscribe(web, "bob@example.org")
    pipeline.ingest(web.storage, "day0", seed_bytes(0), NOW - timedelta(hours=1))
    message = digest_for(web, smtp_server, "ada@example.org", NOW)
    good = urlsplit(links_of(message, "more")[0]).path.rsplit("/", 1)[1]
    ada_key = web.storage.subscriber_by_id(ada).manage_token  # type: ignore[union-attr]
    bob_key = web.storage.subscriber_by_id(bob).manage_token  # type: ignore[union-attr]
    paper_id = web.storage.latest_papers(1)[0].id
    old = LinkTokens(SECRET, clock=lambda: time.time() - 91 * 86400)
    # Bob's key in Ada's signed token: the signature no longer matches.
    borrowed = good.replace(ada_key, bob_key, 1)
    bad = {
        "/more/" + with_signature_changed(good): "This link does not work",
        "/more/" + old.make_paper(Purpose.MORE, PaperLink(ada_key, paper_id, "agents")): (
            "This link does not work"
        ),
        "/more/" + borrowed: "This link does not work",
        "/less/" + good: "This link does not work",  # a "more" token at "not for me"
        "/mute/" + good: "This link does not work",
        "/more/" + LinkTokens(SECRET).make(Purpose.UNSUBSCRIBE, ada_key): "This link does not work",
        "/more/not-a-token": "This link does not work",
    }
    with httpx.Client(base_url=web.url) as client:
        front = client.get(f"/more/{good}")  # a real page, for a valid CSRF cookie and token
        csrf = csrf_of(front.text)
        for path, expected in bad.items():
            assert heading(client.get(path)) == expected, path
            response = client.post(path, data={"csrf": csrf})
            assert response.status_code in (400, 404), path
    assert web.storage.examples_of(ada) == [] and web.storage.examples_of(bob) == []


def test_muting_an_author_leaves_their_papers_out_of_later_digests(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web()
    rater, message = first_digest(web, smtp_server, "ada@example.org", ARXIV_API)
    mute = links_of(message, "mute")[0]
    with httpx.Client(base_url=web.url) as client:
        page = client.get(urlsplit(mute).path)
        authors = re.findall(r'name="author" value="([^"]+)"', page.text)
        assert authors
        done = client.post(
            urlsplit(mute).path, data={"csrf": csrf_of(page.text), "author": authors[0]}
        )
        assert f"{authors[0]} (muted)" in done.text
        forged = client.post(
            urlsplit(mute).path, data={"csrf": csrf_of(page.text), "author": "Someone Else"}
        )
        assert forged.status_code == 400
    assert [m.name for m in web.storage.muted_authors_of(rater)] == [authors[0]]
    # The same papers again under new ids and titles: all new, the muted author's among them.
    again = re.sub(r"arxiv\.org/abs/2\d(\d\d)\.", r"arxiv.org/abs/25\1.", ARXIV_API)
    again = again.replace("<title>", "<title>Revisited: ")
    later = NOW + timedelta(days=1)
    pipeline.ingest(web.storage, "api", again.encode(), later - timedelta(hours=1), "arxiv-api")
    titles = titles_of(digest_for(web, smtp_server, "ada@example.org", later))
    assert titles and all(t.startswith("Revisited: ") for t in titles)
    by_muted = [p.title for p in web.storage.latest_papers(100) if authors[0] in p.authors]
    assert len(by_muted) == 2 and not set(by_muted) & set(titles)


def test_examples_raise_the_papers_that_share_their_words() -> None:
    papers = [
        IndexedPaper(1, "Offline reinforcement learning with conservative critics", "D4RL."),
        IndexedPaper(2, "Conservative Q-learning for offline data", "Offline D4RL benchmarks."),
        IndexedPaper(3, "Language models that plan", "Reasoning with chains of thought."),
        IndexedPaper(4, "Planning with language models", "Chain of thought prompting."),
    ]
    index = PaperIndex(papers)
    interest = compile_interest("rl", None, "learning agents")
    params = default_params("lexical")
    before = score(index, interest, params)[1]
    learned = example_terms(
        interest.about,
        [("Conservative offline critics on D4RL", True), ("Chain of thought", False)],
    )
    taught = score(index, replace(interest, learned=learned, examples=2), params)[1]
    assert taught[1] - before[1] > 0.05 and taught[0] - before[0] > 0.05
    assert taught[2] < before[2] and taught[3] < before[3]  # "chain of thought" rejected

    # "Not for me" alone lowers what it rejected and lifts nothing.
    rejected = example_terms(interest.about, [("Planning with language models", False)])
    alone = score(index, replace(interest, learned=rejected, examples=1), params)[1]
    assert alone[3] < before[3] and all(alone <= before + 1e-12)


def test_the_preferences_page_lists_what_was_taught_and_takes_it_back(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web()
    rater, message = first_digest(web, smtp_server, "ada@example.org", ARXIV_API)
    rated = titles_of(message)[0]
    manage = urlsplit(re.findall(r"https?://\S+/manage/\S+", text_of(message))[0]).path
    with httpx.Client(base_url=web.url) as client:
        click(client, links_of(message, "less")[0])
        mute = urlsplit(links_of(message, "mute")[0]).path
        author = re.findall(r'name="author" value="([^"]+)"', client.get(mute).text)[0]
        click(client, mute, author=author)
        page = client.get(manage)
        assert rated in page.text and "not for me" in page.text and author in page.text

        # A library export through the page's upload: its papers become examples.
        bib = (DATA / "library" / "zotero.bib").read_bytes()
        uploaded = client.post(
            f"{manage}/library",
            data={"csrf": csrf_of(page.text), "interest": "agents"},
            files={"library": ("zotero.bib", bib, "application/x-bibtex")},
            follow_redirects=True,
        )
        assert "Imported 3 papers." in uploaded.text
        assert "Conservative Q-Learning for Offline Reinforcement Learning" in uploaded.text
        broken = client.post(
            f"{manage}/library",
            data={"csrf": csrf_of(uploaded.text), "interest": "agents"},
            files={"library": ("broken.bib", (DATA / "library" / "broken.bib").read_bytes())},
        )
        assert broken.status_code == 400 and heading(broken) == "Nothing was imported"
        assert "Library &#39;broken.bib&#39;: a BibTeX entry at line 5" in broken.text
        assert len(web.storage.examples_of(rater)) == 4

        # Each can be removed from the page; the author unmuted.
        for example in web.storage.examples_of(rater):
            page = client.get(manage)
            client.post(
                f"{manage}/examples", data={"csrf": csrf_of(page.text), "example": str(example.id)}
            )
        page = client.get(manage)
        client.post(f"{manage}/authors", data={"csrf": csrf_of(page.text), "author": author})
    assert web.storage.examples_of(rater) == []
    assert web.storage.muted_authors_of(rater) == []


def test_another_subscribers_examples_cannot_be_removed_from_my_page(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web()
    ada, bob = subscribe(web, "ada@example.org"), subscribe(web, "bob@example.org")
    pipeline.ingest(web.storage, "day0", seed_bytes(0), NOW - timedelta(hours=1))
    message = digest_for(web, smtp_server, "bob@example.org", NOW)
    with httpx.Client(base_url=web.url) as client:
        click(client, links_of(message, "more")[0])
    [bobs] = web.storage.examples_of(bob)
    ada_key = web.storage.subscriber_by_id(ada).manage_token  # type: ignore[union-attr]
    manage = f"/manage/{LinkTokens(SECRET).make(Purpose.MANAGE, ada_key)}"
    with httpx.Client(base_url=web.url) as client:
        page = client.get(manage)
        client.post(
            f"{manage}/examples", data={"csrf": csrf_of(page.text), "example": str(bobs.id)}
        )
    assert web.storage.examples_of(bob) == [bobs]


def test_a_digest_offers_its_own_papers_as_bibtex_and_ris(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web()
    _, message = first_digest(web, smtp_server, "ada@example.org", ARXIV_API)
    subscribe(web, "bob@example.org")
    text = text_of(message)
    bib_link = re.findall(r"These papers as BibTeX: (\S+)", text)[0]
    ris_link = re.findall(r"These papers as RIS: (\S+)", text)[0]
    html = message.get_body(("html",))
    assert html is not None and f'href="{bib_link}"' in html.get_content()

    bib = httpx.get(bib_link)
    assert bib.status_code == 200
    assert bib.headers["content-type"] == "application/x-bibtex; charset=utf-8"
    assert bib.headers["content-disposition"].startswith('attachment; filename="notifier-')
    entries = parse_string(bib.text).entries
    decoded = parse_string(bib.text, append_middleware=[LatexDecodingMiddleware()]).entries
    assert [" ".join(e["title"].split()) for e in decoded] == titles_of(message)
    arxiv = [e for e in entries if "eprint" in e.fields_dict]
    assert arxiv and all(e["archivePrefix"] == "arXiv" for e in arxiv)
    records = rispy.loads(httpx.get(ris_link).text)
    assert [r["title"] for r in records] == titles_of(message)

    # The link is the subscriber's own: forged, or another's key in it, refused.
    token = urlsplit(bib_link).path.removeprefix("/citations/").removesuffix(".bib")
    bob_key = web.storage.subscriber_by_email("bob@example.org").manage_token
    ada_key = web.storage.subscriber_by_email("ada@example.org").manage_token
    for bad in (with_signature_changed(token), token.replace(ada_key, bob_key, 1)):
        refused = httpx.get(f"{web.url}/citations/{bad}.bib")
        assert refused.status_code in (400, 404) and "@misc" not in refused.text
    message_id = str(message["Message-ID"])
    borrowed = LinkTokens(SECRET).make_digest(Purpose.CITE, bob_key, message_id)
    assert httpx.get(f"{web.url}/citations/{borrowed}.bib").status_code == 404
