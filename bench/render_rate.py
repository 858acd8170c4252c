"""The sender's CPU per digest, without the wire: claim (load) and render, one process, SQLite.

Composes N digests of about 20 papers once (synthetic data, see synthetic.py;
subscribers who write their own interests by default: a paper's block carries
the reason of the interest that matched it, so distinct interests render
distinct blocks; --subscribers-from shared-topics for the earlier figures,
where a thousand subscribers share each block; hybrid matching by default, as
the service's, whose reasons name the closest phrase of each description:
with --matching lexical a reason names only the words found, so interests
that found the same words in a paper share its whole block), then, in a fresh copy of that
database each run, claims every digest in batches of 100 as `notifier send`
does and renders each into the bytes that would go out. Prints milliseconds
per digest for the two phases. With --reference DIR (another checkout of
notifier, e.g. a `git worktree` of main) the runs alternate between that code
and this one, and the medians and their ratio are printed, so a noisy machine
affects both alike.

    .venv/bin/python bench/render_rate.py --digests 5000 --reference /tmp/base
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from checkouts import run_child
from synthetic import add_mode_option, embed_interests, listing, populate

from notifier import pipeline
from notifier.settings import load_settings
from notifier.storage import Storage

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
HERE = Path(__file__).resolve().parent.parent

# Run in a child process with the code under test first on sys.path.
CHILD = """
import json, sys, time
from datetime import datetime, timedelta
from notifier.app import make_renderer
from notifier.settings import load_settings
from notifier.storage import Storage
now = datetime.fromisoformat(sys.argv[1])
settings = load_settings(None)
storage = Storage(settings.database)
renderer = make_renderer(settings)
claim = render = 0.0
count = size = 0
while True:
    started = time.perf_counter()
    batch = storage.claim_digests("bench", 100, now, timedelta(minutes=5))
    claim += time.perf_counter() - started
    if not batch:
        break
    started = time.perf_counter()
    for digest in batch:
        size += len(renderer.render(digest.content, digest.subscriber, digest.message_id, now).data)
    render += time.perf_counter() - started
    count += len(batch)
print(json.dumps({"claim": claim, "render": render, "count": count, "size": size}))
"""


def environment(state: str, database: str, matching: str) -> dict[str, str]:
    """Return the environment of one run."""
    return os.environ | {
        "NOTIFIER_STATE_DIR": state,
        "NOTIFIER_DATABASE_URL": database,
        "NOTIFIER_MATCHING": matching,
        "NOTIFIER_MAX_PAPERS": "20",
        "NOTIFIER_SENDER_ADDRESS": "digests@bench.example.org",
    }


def main() -> None:
    """Prepare the digests, then time claim and render runs (alternating with --reference)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reference", type=Path, help="another checkout to compare against")
    parser.add_argument("--matching", default="hybrid", choices=("lexical", "semantic", "hybrid"))
    add_mode_option(parser)
    args = parser.parse_args()
    mode = args.subscribers_from

    with tempfile.TemporaryDirectory() as prepared:
        template = Path(prepared) / "bench.db"
        os.environ.update(environment(prepared, f"sqlite:///{template}", args.matching))
        settings = load_settings(None)
        storage = Storage(settings.database)
        storage.migrate()
        pipeline.ingest(storage, "bench", listing(500, mode=mode), NOW - timedelta(hours=1))
        populate(
            storage, args.digests, NOW - timedelta(days=1), mode=mode
        )  # joined before the slot
        matching = pipeline.matching_for(settings)
        embed_interests(storage, matching)
        outcomes = pipeline.compose_due(storage, settings, NOW, matching)
        storage.close()
        print(f"set-up: {outcomes['created']:,} digests composed ({mode}, {args.matching})")
        codes = {"this": HERE}
        if args.reference is not None:
            codes = {"reference": args.reference.resolve(), **codes}
        per_digest: dict[str, dict[str, list[float]]] = {
            name: {"claim": [], "render": []} for name in codes
        }
        for run in range(args.runs):
            for name, code in codes.items():
                result = run_child(
                    CHILD,
                    code,
                    template,
                    lambda state, url: environment(state, url, args.matching),
                    (NOW + timedelta(hours=1)).isoformat(),
                )
                count = result["count"]
                claim, render = (1000 * result[k] / count for k in ("claim", "render"))
                per_digest[name]["claim"].append(claim)
                per_digest[name]["render"].append(render)
                print(
                    f"run {run + 1} {name:<9} claim {claim:.3f} ms  render {render:.3f} ms  "
                    f"per digest ({int(count):,} digests, {result['size'] / count:,.0f} bytes each)"
                )
    medians = {
        name: {phase: statistics.median(values) for phase, values in phases.items()}
        for name, phases in per_digest.items()
    }
    for name, phase in medians.items():
        print(
            f"{name:<9} median claim {phase['claim']:.3f} ms  render {phase['render']:.3f} ms  "
            f"together {phase['claim'] + phase['render']:.3f} ms per digest"
        )
    if args.reference is not None:
        for phase in ("claim", "render"):
            ratio = medians["reference"][phase] / medians["this"][phase]
            print(f"{phase}: this is {ratio:.2f}x the reference's speed")


if __name__ == "__main__":
    main()
