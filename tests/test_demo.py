"""`notifier demo`: five days of listings, three subscribers, digests and feeds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import feedparser

from tests.conftest import Cli


def digest_titles(eml: Path) -> list[str]:
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    plain = msg.get_body(("plain",))
    assert plain is not None
    return re.findall(r"^\* (.+)$", plain.get_content(), re.M)


def test_demo_replays_five_days_and_never_repeats_a_paper(run: Cli, tmp_path: Path) -> None:
    result = run("demo")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("preparing the matching model")
    counts = [
        re.search(r": (\d+) papers, (\d+) new, (\d+) seen before", line) for line in lines[1:6]
    ]
    assert [tuple(map(int, m.groups())) for m in counts if m] == [
        (72, 72, 0),
        (102, 87, 15),
        (71, 51, 20),
        (187, 165, 22),
        (64, 36, 28),
    ]
    state = tmp_path / "state"
    assert f"digests written to {state / 'outbox'}/" in result.stdout

    per_subscriber: dict[str, list[str]] = defaultdict(list)
    emls = sorted((state / "outbox").glob("*.eml"))
    assert len(emls) == 15  # three subscribers, each matched something every day
    for eml in emls:
        titles = digest_titles(eml)
        assert 0 < len(titles) <= 30
        assert len(titles) == len(set(titles)), f"{eml.name} lists a paper twice"
        per_subscriber[eml.name.split("_")[0]].extend(titles)
    assert sorted(per_subscriber) == ["ada", "alan", "grace"]
    for name, titles in per_subscriber.items():
        assert len(titles) == len(set(titles)), f"{name} got a paper in two digests"

    feeds = state / "feeds"
    assert len(list((feeds / "subscribers").glob("*.atom"))) == 3
    parsed = feedparser.parse((feeds / "all.atom").read_bytes())
    assert parsed.bozo == 0
    assert len(parsed.entries) == 50


def test_demo_refuses_to_overwrite_unless_reset(run: Cli) -> None:
    assert run("demo").exit_code == 0
    again = run("demo")
    assert again.exit_code == 1
    assert again.stderr.endswith(
        "already holds data; run `notifier demo --reset` to start over (deletes it)\n"
    )
    reset = run("demo", "--reset")
    assert reset.exit_code == 0
    assert "72 papers, 72 new, 0 seen before" in reset.stdout.splitlines()[1]
    status = run("status").stdout
    assert "papers: 411, subscribers: 3" in status
    assert "digests: 15 sent" in status


def test_demo_prints_each_step_as_it_happens(run: Cli, tmp_path: Path) -> None:
    env = {**os.environ, **run.env}
    notifier = Path(sys.executable).parent / "notifier"
    demo = subprocess.Popen([str(notifier), "demo"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None
        first = demo.stdout.readline()
        # Printed before the model is prepared and the days are replayed, not at the end.
        assert first.startswith("preparing the matching model"), first
        day = demo.stdout.readline()
        assert re.search(r": 72 papers, 72 new, 0 seen before", day), day
        assert demo.poll() is None  # four more days to go
    finally:
        demo.wait(120)
    assert demo.returncode == 0
