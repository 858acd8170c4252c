from __future__ import annotations

import gc
import weakref

from notifier.memo import IdentityMemo


class Card:
    """A stand-in for a shared frozen object."""


def test_a_value_is_found_by_the_identity_it_was_put_under() -> None:
    memo: IdentityMemo[str] = IdentityMemo(10)
    card = Card()
    assert memo.get(id(card)) is None
    assert memo.put(id(card), card, "block") == "block"
    assert memo.get(id(card)) == "block"


def test_an_entry_keeps_its_object_alive_so_its_id_cannot_be_reused() -> None:
    memo: IdentityMemo[str] = IdentityMemo(10)
    card = Card()
    alive = weakref.ref(card)
    memo.put(id(card), card, "block")
    del card
    gc.collect()
    assert alive() is not None


def test_a_full_memo_starts_over_instead_of_growing() -> None:
    memo: IdentityMemo[int] = IdentityMemo(3)
    cards = [Card() for _ in range(4)]
    for number, card in enumerate(cards):
        memo.put(id(card), card, number)
    assert [memo.get(id(card)) for card in cards] == [None, None, None, 3]
