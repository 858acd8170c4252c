"""Claimed parts: composers on several machines share the due subscribers (PostgreSQL).

The subscribers are split into PARTS parts by id; a composer holds a part
while it composes it (storage.part_claim, a session advisory lock), so
composers take disjoint parts, and a part whose holder died is composed by
whoever waits for it.
"""

from __future__ import annotations

import random
from collections.abc import Generator

from notifier.models import Shard
from notifier.storage.protocols import DigestStore

# Enough parts that two machines of two processes each share the work evenly.
PARTS = 64
# Claiming costs a few queries per part; below this many active subscribers a
# run is short, and a second composer only meets digests already stored.
CLAIM_FROM = 2_000


def worth_claiming(storage: DigestStore) -> bool:
    """Tell whether composers should claim parts: PostgreSQL, and enough subscribers."""
    return storage.claims_parts and (
        sum(count for _, count in storage.schedule_groups(None)) >= CLAIM_FROM
    )


def claimed_parts(storage: DigestStore, share: Shard) -> Generator[tuple[Shard, bool]]:
    """Yield the parts of the subscribers this composer claimed, holding each while used.

    share (k, n) is this composer's share of the parts (those equal to k
    modulo n: processes of one machine split them so). First each part of the
    share that no other composer holds (with True); then, waiting for their
    holders, the parts that were busy (with False: composed by a composer on
    another machine, or, if it died, left for this one to finish). So when
    this ends, every part of the share has been composed by someone.
    """
    k, n = share
    mine = [part for part in range(PARTS) if part % n == k]
    if not mine:  # more composing processes than parts
        return
    # Composers on other machines start elsewhere, so they rarely meet.
    start = random.randrange(len(mine))
    busy = []
    for part in mine[start:] + mine[:start]:
        with storage.part_claim(part) as held:
            if held:
                yield (part, PARTS), True
            else:
                busy.append(part)
    for part in busy:
        with storage.part_claim(part, wait=True):
            yield (part, PARTS), False
