"""Pausing Python's cyclic garbage collector around bursts of allocation."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a block, restoring it after.

    Composing a batch of digests, or claiming one to send, allocates hundreds of
    thousands of small objects that live until the batch is done; every 700
    allocations set off a collection, and as they survive into older
    generations, full ones that walk every long-lived object of the process
    (modules, the paper index, caches): a quarter of composing's CPU and a
    sixth of a claim's (docs/benchmarks.md). These objects form no reference
    cycles, so reference counting frees them; anything a block leaves in a
    cycle is collected once the collector is back on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
