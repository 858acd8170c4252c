"""The listing parsers against realistic upstream documents (tests/data/sources/).

Each fixture follows the real format of its source: the Hugging Face daily papers API
and papers pages, the arXiv query API, the rss.arxiv.org listing feeds (RSS 2.0 and
Atom) and ordinary lab-blog feeds. Bad input must be refused whole, with a message that
names the source.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.errors import ListingError
from notifier.ingest import guess_kind, parse_listing
from notifier.ingest.feed import html_entities_as_references
from notifier.models import Announce, Listing, PaperData
from notifier.papers import clean_text, html_to_text, paper_key, strip_markup

SOURCES = Path(__file__).resolve().parent / "data" / "sources"

HF_API_URL = "https://huggingface.co/api/daily_papers?date=2024-08-23"
HF_DAY_URL = "https://huggingface.co/papers/date/2025-03-11"
HF_TRENDING_URL = "https://huggingface.co/papers/trending"
ARXIV_API_URL = (
    "http://export.arxiv.org/api/query?id_list=2206.06921,2409.11074,2408.12528,hep-th/9901001"
)
ARXIV_RSS_URL = "https://rss.arxiv.org/rss/cs.LG"
ARXIV_ATOM_URL = "https://rss.arxiv.org/atom/cs.RO"
BLOG_RSS_URL = "https://rll.example.edu/blog/feed.xml"
BLOG_ATOM_URL = "https://embodied.example.org/atom.xml"

HF_EMPTY = "Hugging Face listed no papers (a weekend, a holiday, or a day not yet published)"
ARXIV_EMPTY = "arXiv announced nothing (no announcements on weekends and holidays)"

TACDIFF = "TacDiff: Diffusion Policies with Tactile Sensing for Contact-Rich Manipulation"
MOE = "Scaling Laws for Sparse Mixture-of-Experts Code Language Models"
SIM_REAL = 'Look Before You Leap: "Sim & Real" Co-Training for Quadruped Parkour'


def source(name: str) -> bytes:
    """Return the bytes of one fixture document."""
    return (SOURCES / name).read_bytes()


def parse(kind: str, name: str, where: str, content_type: str | None = None) -> Listing:
    """Parse one fixture document as the given kind of listing."""
    return parse_listing(kind, source(name), where, content_type)


def refused(kind: str, data: bytes, where: str, content_type: str | None = None) -> ListingError:
    """Return the ListingError parsing data raises, checking that it names the source."""
    with pytest.raises(ListingError) as caught:
        parse_listing(kind, data, where, content_type)
    error = caught.value
    assert error.source == where
    assert str(error).startswith(f"listing '{where}': ")
    return error


def by_key(listing: Listing) -> dict[str, PaperData]:
    """Return the papers of a listing by key."""
    return {paper.key: paper for paper in listing.papers}


# ---------------------------------------------------------------- Hugging Face API


def test_hf_api_daily_papers() -> None:
    listing = parse("hf-api", "hf_daily_papers.json", HF_API_URL)

    assert listing.source == HF_API_URL
    assert listing.label is None
    assert listing.empty_reason is None
    # Six items: one withdrawn paper is skipped and a second listing of TacDiff is dropped.
    assert [p.key for p in listing.papers] == [
        "arxiv:2408.12528",
        "arxiv:2408.12637",
        "arxiv:2408.12590",
        "arxiv:2408.11796",
    ]
    assert [p.rank for p in listing.papers] == [1, 2, 3, 4]
    assert [p.title for p in listing.papers] == [
        TACDIFF,
        MOE,
        "DriveLAT: Minute-Long Driving World Models with Latent Action Tokens",
        "Self-Correcting Reward Models for Robot Learning from Human Preferences",
    ]

    tacdiff = listing.papers[0]
    assert tacdiff.arxiv_id == "2408.12528"
    assert tacdiff.version is None
    assert tacdiff.url == "https://huggingface.co/papers/2408.12528"
    assert tacdiff.authors == ("Mei Lin Zhou", "Daniel Okafor", "Sofia Andersson", "Pieter Abeele")
    assert tacdiff.announce is Announce.NEW
    # The paper's publishedAt (arXiv) is the paper date, not the item's (Daily Papers) one.
    assert tacdiff.published_at == datetime(2024, 8, 22, 16, 20, 1, tzinfo=UTC)
    assert tacdiff.abstract.startswith(
        "Diffusion policies learn visuomotor skills from a few dozen demonstrations, but they "
        "rely on vision alone and fail when contact matters. We present TacDiff, a diffusion "
        "policy conditioned on"
    )
    assert dict(tacdiff.meta) == {
        "upvotes": 48,
        "comments": 3,
        "github": "https://github.com/tacdiff/tacdiff",
        "github_stars": 212,
        "ai_summary": (
            "TacDiff conditions a diffusion policy on fingertip tactile images and doubles "
            "success on contact-rich tasks from 50 demonstrations."
        ),
        "project_page": "https://tacdiff.github.io",
        "hf_url": "https://huggingface.co/papers/2408.12528",
        "listed_at": "2024-08-23T00:41:09.401Z",
    }
    # The API gives upvotes as 48.0; a count is an int.
    assert type(tacdiff.meta["upvotes"]) is int

    # Empty optional fields (ai_summary "", ai_keywords []) are left out; zero comments stay.
    moe = listing.papers[1]
    assert dict(moe.meta) == {
        "upvotes": 31,
        "comments": 0,
        "hf_url": "https://huggingface.co/papers/2408.12637",
        "listed_at": "2024-08-23T01:12:57.941Z",
    }
    assert moe.authors == ("Rahul Venkataraman", "Chloé Martin", "Hao Wu")

    drive = listing.papers[2]
    assert drive.meta["project_page"] == "https://drivelat.github.io/"
    assert drive.published_at == datetime(2024, 8, 22, 14, 47, 30, tzinfo=UTC)


def test_hf_api_skips_withdrawn_and_keeps_the_first_of_duplicates() -> None:
    raw = json.loads(source("hf_daily_papers.json"))
    ids = [item["paper"]["id"] for item in raw]
    assert ids.count("2408.12528") == 2
    assert "2408.11039" in ids
    assert raw[2]["paper"]["withdrawnAt"]

    papers = by_key(parse("hf-api", "hf_daily_papers.json", HF_API_URL))

    assert "arxiv:2408.11039" not in papers
    first = papers["arxiv:2408.12528"]
    assert first.rank == 1
    assert first.meta["upvotes"] == 48  # the later duplicate says 50
    assert first.meta["comments"] == 3
    assert first.meta["listed_at"] == "2024-08-23T00:41:09.401Z"


def test_hf_api_page_past_the_end_is_an_empty_listing() -> None:
    listing = parse("hf-api", "hf_daily_empty.json", HF_API_URL)

    assert listing.papers == ()
    assert listing.empty_reason == HF_EMPTY


def test_hf_api_keeps_latex_and_folds_hard_wraps_in_summaries() -> None:
    moe = by_key(parse("hf-api", "hf_daily_papers.json", HF_API_URL))["arxiv:2408.12637"]

    assert "\n" not in moe.abstract
    assert "  " not in moe.abstract
    assert (
        "the loss follows $L(N, E) \\propto N^{-\\alpha} E^{-\\beta}$ with "
        "$\\alpha \\approx 0.076$, and that extra experts help only while $E<64$ and the "
        "routing cost stays below the per-expert gain (a<b). We release"
    ) in moe.abstract


# ---------------------------------------------------------------- Hugging Face pages


def test_hf_page_reads_the_embedded_json() -> None:
    raw = source("hf_papers_page.html")
    # The fixture really is attribute-escaped, as the live page is.
    assert b"\\&quot;Sim &amp; Real\\&quot;" in raw
    assert b"every k&lt;n past" in raw

    listing = parse("hf-page", "hf_papers_page.html", HF_DAY_URL)

    assert listing.label == "2025-03-11"
    assert listing.empty_reason is None
    assert [(p.key, p.title) for p in listing.papers] == [
        ("arxiv:2503.07465", SIM_REAL),
        (
            "arxiv:2503.07536",
            "Fold the Thought: Learned Memory Compression for Long-Context Reasoning",
        ),
        (
            "arxiv:2503.06680",
            "Static Patches Need No Tokens: Caching Visual Tokens in Vision-Language-Action Models",
        ),
    ]
    first, second, third = listing.papers
    # The JSON, not the visible markup, was read: it alone has authors, dates and counts.
    assert first.authors == ("Yuki Sato", "Hannah Brooks", "Ivan Petrov")
    assert first.published_at == datetime(2025, 3, 10, 15, 44, 9, tzinfo=UTC)
    assert first.url == "https://huggingface.co/papers/2503.07465"
    assert first.meta["upvotes"] == 57
    assert first.meta["comments"] == 4
    assert first.meta["listed_at"] == "2025-03-11T01:02:33.114Z"
    assert "folds every k<n past reasoning steps into a single summary token" in second.abstract
    assert third.meta["comments"] == 0


def test_hf_page_falls_back_to_article_markup() -> None:
    assert b"data-props" not in source("hf_papers_markup.html")

    listing = parse("hf-page", "hf_papers_markup.html", HF_TRENDING_URL)

    assert listing.label is None
    assert listing.empty_reason is None
    assert [(p.rank, p.key, p.title) for p in listing.papers] == [
        (
            1,
            "arxiv:2502.13923",
            "Lumen-S Technical Report: Small Language Models with Long Context",
        ),
        # The template wraps long titles over several indented lines.
        (2, "arxiv:2503.01743", "Humanoid Locomotion as Next Token Prediction at Scale"),
        (
            3,
            "arxiv:2502.18449",
            "Grasp Anything Twice: Regrasping from Failure with Vision-Language Feedback",
        ),
    ]
    first = listing.papers[0]
    assert first.url == "https://huggingface.co/papers/2502.13923"
    assert first.abstract == (
        "We present a family of compact language models with 128K-token context that match "
        "larger models on long-document QA & retrieval benchmarks."
    )
    assert first.authors == ()
    assert dict(first.meta) == {}


def test_hf_page_of_an_empty_day_is_not_an_error() -> None:
    listing = parse(
        "hf-page", "hf_papers_empty_day.html", "https://huggingface.co/papers/date/2025-03-09"
    )

    assert listing.papers == ()
    assert listing.label == "2025-03-09"
    assert listing.empty_reason == HF_EMPTY


def test_hf_page_without_papers_is_refused() -> None:
    where = "https://huggingface.co/papers/date/2025-03-12"
    error = refused("hf-page", source("error_page.html"), where)

    assert error.reason == (
        "no papers found: the page has neither the embedded paper list (data-props) nor "
        "paper articles; has the page layout changed?"
    )


# ---------------------------------------------------------------- arXiv API


def test_arxiv_api_entries() -> None:
    listing = parse("arxiv-api", "arxiv_api.xml", ARXIV_API_URL)

    assert listing.empty_reason is None
    assert [(p.rank, p.key, p.version) for p in listing.papers] == [
        (1, "arxiv:2206.06921", 3),
        (2, "arxiv:2409.11074", 1),
        (3, "arxiv:2408.12528", 1),
        (4, "arxiv:hep-th/9901001", 2),
    ]
    offline, walk, _tacdiff, holo = listing.papers
    # Hard-wrapped title: the newline and the indentation fold to one space.
    assert offline.title == (
        "Provably Efficient Offline Reinforcement Learning with $\\alpha$-Divergence "
        "Regularisation in $\\mathbb{R}^d$"
    )
    assert offline.arxiv_id == "2206.06921"
    assert offline.url == "https://arxiv.org/abs/2206.06921"
    assert offline.authors == ("Emma Lindqvist", "Kenji Watanabe", "Olumide Adeyemi")
    # <published> is the date of v1, not <updated>.
    assert offline.published_at == datetime(2022, 6, 14, 15, 35, 19, tzinfo=UTC)
    assert offline.announce is Announce.NEW
    assert dict(offline.meta) == {
        "primary_category": "cs.LG",
        "categories": ["cs.LG", "stat.ML", "I.2.6"],
        "comment": "Accepted at KDD 2023; 28 pages, 6 figures",
        "journal_ref": (
            "Proceedings of the 29th ACM SIGKDD Conference on Knowledge Discovery and Data "
            "Mining (2023) 1187-1198"
        ),
        "doi": "10.1145/3580305.3599402",
    }
    assert offline.abstract == (
        "Offline reinforcement learning must stay close to the behaviour policy that collected "
        "the data. We regularise the learned policy with an $\\alpha$-divergence to the "
        "behaviour policy and show that, for linear MDPs with features in $\\mathbb{R}^d$, the "
        "suboptimality of the resulting algorithm is $\\tilde{O}(d H^2 / \\sqrt{N})$ whenever "
        "$0<\\alpha<1$, where $N$ is the number of trajectories. The bound is tight up to "
        "logarithmic factors. Experiments on D4RL locomotion tasks show that tuning $\\alpha$ "
        "trades off conservatism and return."
    )

    assert walk.title == (
        "Learning to Walk on Granular Media: Terrain-Adaptive Locomotion for Legged Robots on "
        "Sand and Gravel"
    )
    assert walk.authors == ("Ana Sofía Gutiérrez", "Marcus Hale")
    assert dict(walk.meta) == {
        "primary_category": "cs.RO",
        "categories": ["cs.RO", "cs.LG"],
        "comment": "Project page: https://granular-walk.github.io",
    }

    # An old-style identifier keeps its archive prefix.
    assert holo.arxiv_id == "hep-th/9901001"
    assert holo.url == "https://arxiv.org/abs/hep-th/9901001"
    assert holo.title == (
        "Holographic Renormalization Group Flows and Boundary Conditions in AdS$_5$"
    )
    assert holo.published_at == datetime(1999, 1, 4, 18, 31, 7, tzinfo=UTC)
    assert holo.meta["journal_ref"] == "Nucl.Phys. B556 (1999) 89-114"


def test_arxiv_api_error_entry_is_refused() -> None:
    where = "http://export.arxiv.org/api/query?id_list=1234.12345"
    error = refused("arxiv-api", source("arxiv_api_error.xml"), where)

    assert str(error) == (
        f"listing '{where}': the arXiv API reported an error: incorrect id format for 1234.12345"
    )


def test_arxiv_api_query_without_results_is_an_empty_listing() -> None:
    listing = parse("arxiv-api", "arxiv_api_no_results.xml", ARXIV_API_URL)

    assert listing.papers == ()
    assert listing.empty_reason == "the query matched no papers"


def test_arxiv_api_empty_page_of_a_nonempty_result_is_refused() -> None:
    where = "http://export.arxiv.org/api/query?search_query=cat:cs.RO&start=0&max_results=50"
    error = refused("arxiv-api", source("arxiv_api_empty_page.xml"), where)

    assert "empty page" in error.reason
    assert error.reason == (
        "the API returned an empty page although it reports 250 results (a known arXiv "
        "glitch); try again later"
    )


def test_arxiv_api_page_past_the_last_result_is_empty_not_an_error() -> None:
    data = source("arxiv_api_empty_page.xml").replace(
        b'1.1/">0</opensearch:startIndex>', b'1.1/">300</opensearch:startIndex>'
    )
    assert b">300</opensearch:startIndex>" in data

    listing = parse_listing("arxiv-api", data, ARXIV_API_URL, None)

    assert listing.papers == ()
    assert listing.empty_reason is not None


@pytest.mark.parametrize("kind", ["arxiv-api", "arxiv-rss"])
@pytest.mark.parametrize("body", [b"Rate exceeded.", b"Rate exceeded.\n"])
def test_arxiv_throttling_is_reported(kind: str, body: bytes) -> None:
    error = refused(kind, body, ARXIV_API_URL, "text/plain")

    assert error.reason == "arXiv is throttling requests ('Rate exceeded.'); poll less often"


# ---------------------------------------------------------------- arXiv listing feeds


def test_arxiv_rss_listing() -> None:
    listing = parse("arxiv-rss", "arxiv_listing.rss", ARXIV_RSS_URL)

    assert listing.label == "Fri, 23 Aug 2024 00:00:00 -0400"
    assert listing.empty_reason is None
    assert [(p.key, p.version, p.announce) for p in listing.papers] == [
        ("arxiv:2408.12637", 1, Announce.NEW),
        ("arxiv:2408.12601", 1, Announce.NEW),
        ("arxiv:2408.12528", 1, Announce.CROSS),
        ("arxiv:2405.04517", 2, Announce.REPLACE),
        ("arxiv:2203.01250", 3, Announce.REPLACE_CROSS),
    ]
    assert [p.announce.is_update for p in listing.papers] == [False, False, False, True, True]
    assert [p.meta["announced"] for p in listing.papers] == [
        "new",
        "new",
        "cross",
        "replace",
        "replace-cross",
    ]
    assert [p.authors for p in listing.papers] == [
        ("Rahul Venkataraman", "Chloé Martin", "Hao Wu"),
        ("Ines Carvalho", "Thomas Müller"),
        ("Mei Lin Zhou", "Daniel Okafor", "Sofia Andersson", "Pieter Abeele"),
        ("Sara Kowalski", "Benjamin Osei", "Yifan Li", "Rachel Goldberg"),
        ("A. One", "B. Two", "C. Three"),
    ]
    for paper in listing.papers:
        assert paper.url == f"https://arxiv.org/abs/{paper.arxiv_id}"
        assert paper.published_at == datetime(2024, 8, 23, 4, 0, tzinfo=UTC)
        assert "Announce Type" not in paper.abstract
        assert not paper.abstract.startswith(("arXiv:", "Abstract:"))

    moe, _conformal, tacdiff, _bandit, fields = listing.papers
    assert moe.title == MOE
    assert moe.meta["categories"] == ["cs.LG", "cs.CL", "cs.SE"]
    assert moe.abstract.endswith(
        "the loss follows $L(N, E) \\propto N^{-\\alpha} E^{-\\beta}$ with "
        "$\\alpha \\approx 0.076$, and that extra experts help only while $E<64$."
    )
    assert tacdiff.title == TACDIFF
    assert fields.title == "Equivariant Neural Fields for Articulated Object Reconstruction"
    assert fields.abstract == (
        "We reconstruct articulated objects such as drawers, laptops and scissors from a "
        "handful of RGB-D views. An $SE(3)$-equivariant neural field factorises each object "
        "into rigid parts and joint parameters, so that a part seen in one configuration "
        "generalises to all others. On the Shape2Motion benchmark our joint-axis error is 3.1 "
        "degrees, compared with 9.8 degrees for the best non-equivariant baseline."
    )
    assert fields.meta["categories"] == ["cs.CV", "cs.LG", "cs.RO"]


def test_arxiv_atom_listing() -> None:
    listing = parse("arxiv-rss", "arxiv_listing.atom", ARXIV_ATOM_URL)

    assert listing.label == "2024-05-02T00:00:00-04:00"
    assert listing.empty_reason is None
    assert [(p.key, p.version, p.announce, p.title) for p in listing.papers] == [
        (
            "arxiv:2405.00001",
            1,
            Announce.NEW,
            "One-Shot Imitation of Bimanual Cloth Folding from Human Video",
        ),
        (
            "arxiv:2405.00417",
            1,
            Announce.CROSS,
            "Safe Reinforcement Learning for Drone Racing with Control Barrier Functions",
        ),
        (
            "arxiv:2403.15210",
            2,
            Announce.REPLACE,
            "Language-Conditioned Navigation in Unmapped Buildings",
        ),
    ]
    folding, drones, navigation = listing.papers
    assert folding.authors == ("Elif Demir", "Samuel Adebayo", "Julia Novak")
    assert drones.authors == ("Matteo Bianchi", "Laura Svensson")
    assert navigation.authors == ("Hyun-woo Kim",)
    assert folding.published_at == datetime(2024, 5, 2, 4, 0, tzinfo=UTC)
    assert drones.meta["categories"] == ["cs.LG", "cs.RO", "eess.SY"]
    assert navigation.abstract == (
        'A mobile robot told to "find the printer room on the third floor" must explore a '
        "building it has never mapped. We combine a vision-language model that scores frontiers "
        "with a topological memory of visited places, and reach the goal in 71% of 120 "
        "real-world trials across four buildings."
    )
    assert navigation.announce.is_update


def test_arxiv_weekend_listing_is_empty_not_an_error() -> None:
    listing = parse("arxiv-rss", "arxiv_listing_weekend.rss", ARXIV_RSS_URL)

    assert listing.papers == ()
    assert listing.label == "Sat, 24 Aug 2024 00:00:00 -0400"
    assert listing.empty_reason == ARXIV_EMPTY


def test_arxiv_announce_type_is_read_from_the_description_without_the_element() -> None:
    data = re.sub(
        rb"\s*<arxiv:announce_type>[^<]*</arxiv:announce_type>", b"", source("arxiv_listing.rss")
    )
    assert b"announce_type" not in data

    listing = parse_listing("arxiv-rss", data, ARXIV_RSS_URL, None)

    assert [p.announce for p in listing.papers] == [
        Announce.NEW,
        Announce.NEW,
        Announce.CROSS,
        Announce.REPLACE,
        Announce.REPLACE_CROSS,
    ]
    assert listing.papers[4].abstract.startswith("We reconstruct articulated objects")


def test_arxiv_listing_unknown_announce_type_is_refused() -> None:
    data = source("arxiv_listing.rss").replace(
        b"<arxiv:announce_type>cross</arxiv:announce_type>",
        b"<arxiv:announce_type>withdrawn</arxiv:announce_type>",
    )
    error = refused("arxiv-rss", data, ARXIV_RSS_URL)

    assert error.reason == "item 3 (oai:arXiv.org:2408.12528v1): unknown announce type 'withdrawn'"


def test_arxiv_listing_unknown_announce_type_in_the_description_is_refused() -> None:
    data = source("arxiv_listing.atom")
    data = re.sub(rb"\s*<arxiv:announce_type>[^<]*</arxiv:announce_type>", b"", data)
    data = data.replace(b"Announce Type: replace", b"Announce Type: repost")

    error = refused("arxiv-rss", data, ARXIV_ATOM_URL)

    assert error.reason == "item 3 (oai:arXiv.org:2403.15210v2): unknown announce type 'repost'"


# ---------------------------------------------------------------- other feeds


def test_blog_rss_feed() -> None:
    listing = parse("feed", "blog.rss", BLOG_RSS_URL)

    assert listing.label == "Robot Learning Lab – Blog"
    assert listing.empty_reason is None
    assert [p.title for p in listing.papers] == [
        "FoldNet: 12,000 cloth-folding demonstrations, now open",
        "Our paper on world models for manipulation is on arXiv",
        "Lab retreat 2023: photos",
    ]
    release, paper, photos = listing.papers
    assert release.key == paper_key("FoldNet: 12,000 cloth-folding demonstrations, now open")
    assert release.key.startswith("title:")
    assert release.arxiv_id is None
    assert release.url == "https://rll.example.edu/blog/2024/01/foldnet-release/"
    assert release.authors == ("Maya Okonkwo",)
    assert release.published_at == datetime(2024, 1, 16, 9, 30, tzinfo=UTC)
    assert dict(release.meta) == {"categories": ["datasets", "manipulation"]}
    # Tags and the script go; entities are decoded once (&amp;amp; -> &amp;), &nbsp; is a space.
    assert release.abstract == (
        "Today we release FoldNet, a dataset of 12,000 teleoperated cloth-folding "
        "demonstrations recorded on two bimanual arms. Questions? Join our Q&A on Friday. Our "
        "R&amp;D partners are listed on the project page. Licence: CC BY 4.0."
    )

    # An entry linking to arXiv is keyed by its arXiv id.
    assert paper.key == "arxiv:2401.00001"
    assert paper.arxiv_id == "2401.00001"
    assert paper.url == "https://arxiv.org/abs/2401.00001"
    assert paper.abstract == (
        "We show that a video world model trained on play data lets a robot plan multi-step "
        "manipulation without task labels."
    )

    # No description at all: still a paper, with an empty abstract.
    assert photos.abstract == ""
    assert photos.published_at == datetime(2023, 12, 15, 17, 45, tzinfo=UTC)


def test_blog_atom_feed() -> None:
    listing = parse("feed", "blog.atom", BLOG_ATOM_URL)

    assert listing.label == "Embodied AI Group"
    assert listing.empty_reason is None
    assert [(p.rank, p.title) for p in listing.papers] == [
        # title type="html": the markup goes.
        (1, "Introducing RoboTrace: debugging policies with attention maps"),
        (2, "Shared Autonomy for Assistive Feeding"),
        (3, "Group photo, winter 2024"),
    ]
    tool, feeding, photo = listing.papers
    assert tool.authors == ("Lucía Romero",)
    assert tool.published_at == datetime(2024, 2, 20, 9, 15, tzinfo=UTC)
    assert tool.url == "https://embodied.example.org/posts/robotrace/"

    assert feeding.key == "arxiv:2402.03300"
    assert feeding.url == "https://arxiv.org/abs/2402.03300v2"
    assert feeding.authors == ("Priyanka Rao", "Tobias Keller")
    assert feeding.abstract == (
        "A robot arm that shares control with the user while bringing food to the mouth: "
        "fewer than 2 interventions per meal in a study with 14 participants."
    )

    # Neither summary nor content; no <published>, so <updated> dates it.
    assert photo.abstract == ""
    assert photo.published_at == datetime(2024, 1, 31, 15, 0, tzinfo=UTC)


CONTENT_ONLY_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
  <channel>
    <title>Robot Learning Lab</title>
    <link>https://rll.example.edu/</link>
    <description>News from the Robot Learning Lab</description>
    <item>
      <title>RoboTrace is out</title>
      <link>https://rll.example.edu/blog/robotrace/</link>
      <content:encoded><![CDATA[<p>RoboTrace overlays the attention of a visuomotor
policy on the camera stream, so you can see <em>why</em> a grasp failed.</p>
<p>It works with any PyTorch policy &amp; needs no retraining.</p>]]></content:encoded>
    </item>
  </channel>
</rss>
"""


@pytest.mark.parametrize(
    "data",
    [source("blog.atom"), CONTENT_ONLY_RSS],
    ids=["atom-content-html", "rss-content-encoded"],
)
def test_feed_entry_with_only_html_content_becomes_plain_text(data: bytes) -> None:
    listing = parse_listing("feed", data, BLOG_ATOM_URL, None)

    assert listing.papers[0].abstract == (
        "RoboTrace overlays the attention of a visuomotor policy on the camera stream, so you "
        "can see why a grasp failed. It works with any PyTorch policy & needs no retraining."
    )


def test_feed_entries_without_a_title_are_skipped_and_counted() -> None:
    data = source("blog.rss").replace(
        b"<title>Lab retreat 2023: photos</title>", b"<title>  <![CDATA[<b></b>]]> </title>"
    )
    data = data.replace(
        b"<title>FoldNet: 12,000 cloth-folding demonstrations, now open</title>", b""
    )
    listing = parse_listing("feed", data, BLOG_RSS_URL, None)

    assert [(p.rank, p.title) for p in listing.papers] == [
        (2, "Our paper on world models for manipulation is on arXiv")
    ]
    assert listing.skipped == 2
    assert listing.empty_reason is None


def test_a_feed_whose_entries_all_lack_a_title_is_empty() -> None:
    data = re.sub(rb"<title[^>]*>[^<]*</title>", b"", source("blog.atom"))
    listing = parse_listing("feed", data, BLOG_ATOM_URL, None)

    assert (listing.papers, listing.skipped) == ((), 3)
    assert listing.empty_reason == "none of its 3 entries has a title"


def test_html_named_entities_in_a_feed_are_read_as_html_reads_them() -> None:
    data = source("blog.atom").replace(
        b"<title>Shared Autonomy for Assistive Feeding</title>",
        b"<title>Shared Autonom&iacute;a&nbsp;for Assistive Feeding &ndash; &amp;c</title>",
    )
    data = data.replace(b"<name>Priyanka Rao</name>", b"<name>Priyanka R&aacute;o</name>")
    listing = parse_listing("feed", data, BLOG_ATOM_URL, None)

    assert [p.title for p in listing.papers][1] == "Shared Autonomía for Assistive Feeding – &c"
    assert listing.papers[1].authors == ("Priyanka Ráo", "Tobias Keller")


def test_html_entities_become_references_outside_cdata_and_declarations() -> None:
    data = (
        b'<!DOCTYPE rss [<!ENTITY eacute "e">]><rss><title>caf&eacute; &aacute; &amp;aacute; '
        b"&AElig; &nosuch;</title><description><![CDATA[&aacute;]]> &nbsp;</description></rss>"
    )
    assert html_entities_as_references(data) == (
        b'<!DOCTYPE rss [<!ENTITY eacute "e">]><rss><title>caf&eacute; &#225; &amp;aacute; '
        b"&#198; &nosuch;</title><description><![CDATA[&aacute;]]> &#160;</description></rss>"
    )


@pytest.mark.parametrize("declaration", [b'<?xml version="1.0" encoding="utf-8"?>\n', b""])
def test_an_entity_neither_xml_nor_html_defines_is_named_with_its_line(declaration: bytes) -> None:
    body = source("blog.atom").split(b"\n", 1)[1]
    data = declaration + body.replace(b"<title>Shared", b"<title>&aacute; &robot; Shared")
    line = (declaration + body).split(b"<title>Shared")[0].count(b"\n") + 1

    error = refused("feed", data, BLOG_ATOM_URL)

    assert error.reason == (
        "not a well-formed feed: &robot; is an entity neither XML nor HTML defines "
        "(undefined entity at column 19)"
    )
    assert error.line == line


# ---------------------------------------------------------------- identity across sources


def test_the_same_paper_has_the_same_key_in_every_source() -> None:
    hf = by_key(parse("hf-api", "hf_daily_papers.json", HF_API_URL))
    rss = by_key(parse("arxiv-rss", "arxiv_listing.rss", ARXIV_RSS_URL))
    api = by_key(parse("arxiv-api", "arxiv_api.xml", ARXIV_API_URL))

    assert hf.keys() & rss.keys() == {"arxiv:2408.12528", "arxiv:2408.12637"}
    assert hf.keys() & api.keys() == {"arxiv:2408.12528"}
    # Hugging Face gives the id without a version, the listings with one (v1).
    assert hf["arxiv:2408.12528"].version is None
    assert rss["arxiv:2408.12528"].version == 1
    assert api["arxiv:2408.12528"].version == 1
    assert hf["arxiv:2408.12528"].arxiv_id == rss["arxiv:2408.12528"].arxiv_id == "2408.12528"
    assert hf["arxiv:2408.12528"].title == rss["arxiv:2408.12528"].title == TACDIFF
    assert api["arxiv:2408.12528"].title == TACDIFF  # once its hard wrap is folded
    assert hf["arxiv:2408.12637"].title == rss["arxiv:2408.12637"].title == MOE


# ---------------------------------------------------------------- text cleaning


@pytest.mark.parametrize(
    ("fragment", "text"),
    [
        ("<p>Our R&amp;amp;D partners</p>", "Our R&amp;D partners"),
        ("Q&amp;A with <a href='https://example.org/'>the authors</a>", "Q&A with the authors"),
        ("<p>one</p><p>two</p>", "one two"),
        ("safe <script>alert('x')</script>text", "safe text"),
        ("<em>$\\alpha$-divergence</em> for a&lt;b", "$\\alpha$-divergence for a<b"),
        ("CC&nbsp;BY <!-- tracking -->4.0", "CC BY 4.0"),
    ],
)
def test_html_to_text_removes_tags_and_decodes_entities_once(fragment: str, text: str) -> None:
    assert html_to_text(fragment) == text


@pytest.mark.parametrize(
    "latex",
    [
        "$\\alpha$-divergence in $\\mathbb{R}^d$",
        "whenever a<b holds",
        "$0<\\alpha<1$ and $E<64$",
        "$\\sum_{i<j} x_i x_j$",
    ],
)
def test_strip_markup_keeps_latex_and_angle_brackets(latex: str) -> None:
    assert strip_markup(latex) == latex


def test_clean_text_folds_hard_wraps() -> None:
    assert clean_text("Provably Efficient Offline RL with\n  $\\alpha$-Divergence\n") == (
        "Provably Efficient Offline RL with $\\alpha$-Divergence"
    )


@pytest.mark.parametrize("kind", ["arxiv-api", "arxiv-rss"])
def test_arxiv_abstract_with_p_less_than_is_kept_verbatim(kind: str) -> None:
    abstract = "We prove the estimate for all $1<p \\le 2$ and show that it fails for every $p>2$."
    if kind == "arxiv-api":
        data = source("arxiv_api.xml").replace(
            b"We study renormalization group flows",
            abstract.replace("<", "&lt;").replace(">", "&gt;").encode()
            + b" We study renormalization group flows",
        )
    else:
        data = source("arxiv_listing.rss").replace(
            b"Abstract: We reconstruct articulated objects",
            b"Abstract: "
            + abstract.replace("<", "&lt;").replace(">", "&gt;").encode()
            + b" We reconstruct articulated objects",
        )

    listing = parse_listing(kind, data, ARXIV_API_URL, None)

    assert listing.papers[-1].abstract.startswith(abstract + " We")


# ---------------------------------------------------------------- bad input


def test_html_error_page_given_to_hf_api_is_refused() -> None:
    error = refused("hf-api", source("error_page.html"), HF_API_URL)

    assert error.reason == "expected JSON but got an HTML page (an error page?)"


def test_json_served_as_html_is_refused() -> None:
    error = refused(
        "hf-api", source("hf_daily_papers.json"), HF_API_URL, "text/html; charset=utf-8"
    )

    assert error.reason == "expected JSON but got an HTML page (an error page?)"


def test_truncated_json_is_refused_with_its_position() -> None:
    data = source("hf_daily_papers.json")
    error = refused("hf-api", data[: len(data) // 2], HF_API_URL)

    assert error.reason == (
        "invalid JSON at line 171 column 18: Unterminated string starting at (truncated?)"
    )


def test_api_error_object_is_refused() -> None:
    error = refused("hf-api", b'{"error":"Invalid date"}', HF_API_URL)

    assert error.reason == "the API answered with an error: Invalid date"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # A gzip body nobody decompressed.
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xed\x9dmo\xdb", "not UTF-8 text (byte 1)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (byte 0)"),
        (
            '[{"paper": {"id": "2408.12528", "title": "Café"}}]'.encode("latin-1"),
            "not UTF-8 text (byte 45)",
        ),
    ],
    ids=["gzip", "png", "latin-1"],
)
def test_binary_junk_given_to_hf_api_is_refused(data: bytes, reason: str) -> None:
    assert refused("hf-api", data, HF_API_URL).reason == reason


def test_huge_title_is_refused_whole() -> None:
    items = json.loads(source("hf_daily_papers.json"))[:2]
    items[1]["title"] = items[1]["paper"]["title"] = "A" * 10_000_000
    data = json.dumps(items).encode()
    assert len(data) > 10_000_000

    error = refused("hf-api", data, HF_API_URL)

    assert error.reason == (
        "item 2 (2408.12637): the title is 10,000,000 characters long (limit 1,000)"
    )
    assert len(str(error)) < 200  # the title itself is not echoed


@pytest.mark.parametrize(
    ("kind", "name", "where", "reason", "line"),
    [
        (
            "arxiv-api",
            "arxiv_api.xml",
            ARXIV_API_URL,
            "not well-formed XML (truncated?): Premature end of data in tag summary line 51",
            51,
        ),
        (
            "arxiv-rss",
            "arxiv_listing.rss",
            ARXIV_RSS_URL,
            "not well-formed XML (truncated?): Premature end of data in tag title line 45",
            45,
        ),
        (
            "arxiv-rss",
            "arxiv_listing.atom",
            ARXIV_ATOM_URL,
            "not well-formed XML (truncated?): StartTag: invalid element name",
            27,
        ),
        (
            "feed",
            "blog.rss",
            BLOG_RSS_URL,
            "not a well-formed feed: unclosed CDATA section at column 89 (truncated?)",
            20,
        ),
        (
            "feed",
            "blog.atom",
            BLOG_ATOM_URL,
            "not a well-formed feed: no element found at column 139 (truncated?)",
            18,
        ),
    ],
)
def test_truncated_xml_is_refused(kind: str, name: str, where: str, reason: str, line: int) -> None:
    data = source(name)
    error = refused(kind, data[: len(data) // 2], where)

    assert "well-formed" in error.reason
    assert error.reason == reason
    assert error.line == line
    assert str(error).startswith(f"listing '{where}': line {line}: not ")


@pytest.mark.parametrize("kind", ["arxiv-api", "arxiv-rss"])
def test_html_error_page_given_to_arxiv_is_refused(kind: str) -> None:
    error = refused(kind, source("error_page.html"), ARXIV_RSS_URL)

    assert error.reason == "expected an XML feed but got an HTML page (an error page?)"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (source("error_page.html"), None),
        (b"<html><head><title>Just a moment...</title></head><body></body></html>", None),
        (source("blog.rss"), "text/html; charset=UTF-8"),
    ],
    ids=["doctype", "html", "content-type"],
)
def test_html_page_given_to_feed_is_refused(data: bytes, content_type: str | None) -> None:
    error = refused("feed", data, BLOG_RSS_URL, content_type)

    assert error.reason == "expected an RSS or Atom feed but got an HTML page"


def test_arxiv_api_given_a_listing_feed_is_refused() -> None:
    error = refused("arxiv-api", source("arxiv_listing.rss"), ARXIV_API_URL)

    assert error.reason == "expected an Atom feed from the arXiv API, got <rss>"


@pytest.mark.parametrize("kind", ["hf-page", "arxiv-api", "arxiv-rss", "feed"])
def test_empty_response_is_refused(kind: str) -> None:
    error = refused(kind, b" \r\n", "https://example.org/listing")

    assert error.reason.startswith("empty response: no ")


# ---------------------------------------------------------------- guess_kind


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("https://huggingface.co/api/daily_papers?date=2025-03-11", "hf-api"),
        ("https://huggingface.co/api/daily_papers?p=1&limit=50", "hf-api"),
        ("https://huggingface.co/papers/trending", "hf-page"),
        ("https://huggingface.co/papers/date/2025-03-11", "hf-page"),
        ("https://huggingface.co/papers/week/2025-W11", "hf-page"),
        ("https://huggingface.co/papers/month/2025-03", "hf-page"),
        (
            "http://export.arxiv.org/api/query?search_query=cat:cs.LG&start=0&max_results=50",
            "arxiv-api",
        ),
        ("https://rss.arxiv.org/rss/cs.LG", "arxiv-rss"),
        ("https://rss.arxiv.org/atom/cs.RO", "arxiv-rss"),
        ("http://arxiv.org/rss/cs.LG", "arxiv-rss"),
        ("https://example.org/blog/feed.xml", "feed"),
        ("https://embodied.example.org/atom.xml", "feed"),
        ("https://rll.example.edu/blog/feed", "feed"),
        ("state/listings/2025-03-11.txt", "snapshot"),
        ("/var/lib/notifier/listings/hf-2025-03-11.txt", "snapshot"),
        ("-", "snapshot"),
    ],
)
def test_guess_kind(location: str, kind: str) -> None:
    assert guess_kind(location) == kind


def test_guess_kind_of_an_unknown_url_asks_for_kind() -> None:
    with pytest.raises(ListingError) as caught:
        guess_kind("https://example.org/unknown")

    assert str(caught.value) == (
        "listing 'https://example.org/unknown': cannot tell what kind of listing this URL is; "
        "pass --kind (snapshot, hf-api, hf-page, arxiv-api, arxiv-rss, feed)"
    )


@pytest.mark.parametrize(
    "url",
    ["https://blog.example.org/feed/", "https://lab.example.org/news/feed.xml?format=rss"],
)
def test_guess_kind_reads_feed_urls_with_trailing_slash_or_query(url: str) -> None:
    assert guess_kind(url) == "feed"
