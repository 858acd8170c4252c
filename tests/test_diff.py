"""The pure diff: identity across sources, updates, and what is not news."""

from __future__ import annotations

from notifier.diff import decide
from notifier.models import Announce, ChangeKind, Listing, PaperChange, PaperData, StoredPaper
from notifier.papers import paper_key, title_hash

ABSTRACT = "A long enough abstract about robots that learn from watching people do chores."


def listed(title: str, arxiv_id: str | None = None, **fields: object) -> PaperData:
    defaults: dict[str, object] = {"abstract": ABSTRACT, "rank": 1}
    defaults.update(fields)
    return PaperData(paper_key(title, arxiv_id), title, arxiv_id=arxiv_id, **defaults)  # type: ignore[arg-type]


def stored(pid: int, title: str, arxiv_id: str | None = None, **fields: object) -> StoredPaper:
    defaults: dict[str, object] = {"abstract": ABSTRACT}
    defaults.update(fields)
    return StoredPaper(
        pid,
        paper_key(title, arxiv_id),
        title,
        arxiv_id=arxiv_id,
        title_key=title_hash(title),
        **defaults,  # type: ignore[arg-type]
    )


def one(known: list[StoredPaper], paper: PaperData) -> PaperChange:
    by_key = {s.key: s for s in known}
    by_title: dict[str, list[StoredPaper]] = {}
    for s in known:
        by_title.setdefault(s.title_key, []).append(s)
    [change] = decide(by_key, by_title, Listing("src", (paper,)))
    return change


def test_unknown_paper_is_new_and_unknown_replacement_is_skipped() -> None:
    assert one([], listed("Fresh", "2401.00001")).kind is ChangeKind.NEW
    replaced = listed("Fresh", "2401.00001", announce=Announce.REPLACE, version=3)
    assert one([], replaced).kind is ChangeKind.SKIPPED
    cross = listed("Fresh", "2401.00001", announce=Announce.CROSS)
    assert one([], cross).kind is ChangeKind.NEW


def test_title_known_paper_gaining_an_arxiv_id_is_merged() -> None:
    change = one([stored(7, "Deep Nets")], listed("DEEP nets!", "2401.00001"))
    assert (change.kind, change.stored_id) == (ChangeKind.UPDATED, 7)
    assert change.updates["key"] == "arxiv:2401.00001"
    assert "title" not in change.updates  # same title, other spelling: keep ours


def test_same_title_with_another_arxiv_id_is_another_paper() -> None:
    change = one([stored(7, "Survey", "2301.00001")], listed("Survey", "2401.00002"))
    assert change.kind is ChangeKind.NEW


def test_title_only_listing_finds_an_arxiv_keyed_paper() -> None:
    change = one([stored(7, "Deep Nets", "2401.00001")], listed("deep nets"))
    assert (change.kind, change.stored_id) == (ChangeKind.SEEN, 7)


def test_new_version_is_an_update_not_a_new_paper() -> None:
    known = stored(7, "T", "2401.00001", version=1)
    change = one([known], listed("T", "2401.00001", version=2, abstract=ABSTRACT + " v2"))
    assert change.kind is ChangeKind.UPDATED
    assert change.updates["version"] == 2
    assert change.updates["abstract"].endswith(" v2")


def test_fresher_metadata_is_stored_quietly() -> None:
    known = stored(7, "T", "2401.00001", meta={"upvotes": 3, "github": "g"})
    change = one([known], listed("T", "2401.00001", meta={"upvotes": 9}, version=1))
    assert change.kind is ChangeKind.SEEN
    assert change.updates == {"meta": {"upvotes": 9, "github": "g"}, "version": 1}


def test_sources_with_different_abstracts_do_not_overwrite_each_other_forever() -> None:
    truncated = ABSTRACT[:60]
    known = stored(7, "T", abstract=truncated)
    longer = one([known], listed("T", abstract=ABSTRACT))
    assert longer.updates["abstract"] == ABSTRACT
    back = one([stored(7, "T", abstract=ABSTRACT)], listed("T", abstract=truncated))
    assert back.kind is ChangeKind.SEEN and "abstract" not in back.updates
    empty = one([known], listed("T", abstract=""))
    assert "abstract" not in empty.updates
