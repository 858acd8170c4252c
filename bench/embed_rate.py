"""Embedding a day's papers: N synthetic papers' title + abstract through the model, one process.

Each run is a fresh child process (no memo, no stored vectors) that loads the
model, then embeds every paper of a synthetic listing (synthetic.py; realistic
papers by default, --papers-from shared-topics for the earlier listing, whose
abstracts are as long) as composing does for new papers. Printed per run: the
load time (with a quantized model already in the cache directory, reading it
back), the wall and CPU seconds of the embedding and papers per second. With
--reference DIR (another checkout, e.g. a `git worktree` of main) the runs
alternate between that code and this one, and the medians and their ratio are
printed.

Run: .venv/bin/python bench/embed_rate.py [--papers 500] [--runs 3] [--reference /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from synthetic import MODES, REALISTIC

HERE = Path(__file__).resolve().parent.parent

# Run in a child process with the code under test first on sys.path.
CHILD = """
import json, sys, time
sys.path.insert(1, sys.argv[2])
from synthetic import listing
from notifier.embedding import shared_embedder
from notifier.ingest.snapshot import parse_snapshot
from notifier.papers import embedding_input
papers = parse_snapshot(listing(int(sys.argv[1]), seed=1, mode=sys.argv[3]), "bench").papers
texts = [embedding_input(p.title, p.abstract) for p in papers]
started = time.perf_counter()
embedder = shared_embedder("hybrid")
embedder.embed(["warm-up"])
loaded = time.perf_counter() - started
started, cpu = time.perf_counter(), time.process_time()
vectors = embedder.embed(texts)
print(json.dumps({"load": loaded, "wall": time.perf_counter() - started,
                  "cpu": time.process_time() - cpu, "count": len(vectors)}))
"""


def timed(code: Path, papers: int, mode: str) -> dict[str, float]:
    """Run the child against the checkout code; return its timings."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(papers), str(HERE / "bench"), mode],
        env=os.environ | {"PYTHONPATH": str(code)},
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    """Time the embedding runs (alternating with --reference) and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reference", type=Path, help="another checkout to compare against")
    parser.add_argument(
        "--papers-from",
        choices=MODES,
        default=REALISTIC,
        help="the synthetic listing: realistic or shared-topics (default realistic)",
    )
    args = parser.parse_args()
    codes = {"this": HERE}
    if args.reference is not None:
        codes = {"reference": args.reference.resolve(), **codes}
    walls: dict[str, list[float]] = {name: [] for name in codes}
    cpus: dict[str, list[float]] = {name: [] for name in codes}
    # A warm-up: the quantized model built into the cache if it is not there.
    timed(HERE, 1, args.papers_from)
    for run in range(args.runs):
        for name, code in codes.items():
            result = timed(code, args.papers, args.papers_from)
            walls[name].append(result["wall"])
            cpus[name].append(result["cpu"])
            print(
                f"run {run + 1} {name:<9} load {result['load']:5.2f} s   embed "
                f"{result['wall']:5.2f} s wall, {result['cpu']:5.2f} s CPU   "
                f"{result['count'] / result['wall']:6.1f} papers/s"
            )
    for name in codes:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        rate = args.papers / wall
        print(f"{name:<9} median {wall:.2f} s wall, {cpu:.2f} s CPU, {rate:.1f} papers/s")
    if args.reference is not None:
        ratio = statistics.median(walls["reference"]) / statistics.median(walls["this"])
        cpu_ratio = statistics.median(cpus["reference"]) / statistics.median(cpus["this"])
        print(f"this is {ratio:.2f}x the reference's speed, with {1 / cpu_ratio:.2f}x its CPU")


if __name__ == "__main__":
    main()
