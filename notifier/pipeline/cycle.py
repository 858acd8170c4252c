"""The cycle: ingest the due sources, compose the due digests, send, write the feeds.

`notifier run-once` takes the steps once, in that order, as one recorded job
(Cycle.run_once). `notifier run` (scheduler.py) runs each step as a job of its
own on its own interval: each source on its `every`, compose and send on
theirs, the feeds at start and after news. Both take the same steps and
record their runs in job_runs the same way (JobRecorder), for `notifier status`
and `notifier health`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from notifier.errors import NotifierError, ServerUnavailable
from notifier.ingest.fetch import Fetcher
from notifier.matching import embed_pending, matching_for
from notifier.models import IngestSummary, JobStatus
from notifier.pipeline.channels import PostReport, compose_topic_digests, post_channels
from notifier.pipeline.compose import compose_due, describe_outcomes
from notifier.pipeline.feeds import build_feeds
from notifier.pipeline.ingest import ingest_due, ingest_source
from notifier.pipeline.send import SendReport
from notifier.pipeline.senders import Sender, send_from_settings
from notifier.settings import Settings, SourceConfig
from notifier.storage import Storage


def job_host() -> str:
    """Return the host job_runs records for runs of this process: machine and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def failure_detail(error: BaseException) -> str:
    """Return the line job_runs records for a run that raised error."""
    if isinstance(error, NotifierError):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


@dataclass(frozen=True)
class JobRecorder:
    """One run of a job in job_runs: recorded as started when made, then finished once."""

    storage: Storage
    run_id: int
    clock: Callable[[], datetime]

    @classmethod
    def start(
        cls, storage: Storage, job: str, host: str, clock: Callable[[], datetime]
    ) -> JobRecorder:
        """Record that job starts now on host."""
        return cls(storage, storage.start_job(job, host, clock()), clock)

    def finish(self, status: JobStatus, detail: str) -> None:
        """Record how the run ended (ok or failed) with one line on what it did."""
        self.storage.finish_job(self.run_id, status, detail, self.clock())

    def failed(self, error: BaseException) -> None:
        """Record the run as failed by error, unless the database cannot take that either."""
        with contextlib.suppress(NotifierError):
            self.finish(JobStatus.FAILED, failure_detail(error))


class CycleListener(Protocol):
    """Hears what each step of Cycle.run_once did, as soon as it is done."""

    def ingested(self, summary: IngestSummary) -> None:
        """Hear of one source polled."""

    def composed(self, outcomes: Mapping[str, int]) -> None:
        """Hear how many digests of each outcome composing had."""

    def sent(self, report: SendReport) -> None:
        """Hear what sending did (not called when the mail server was unreachable)."""

    def posted(self, report: PostReport) -> None:
        """Hear what posting to channels did."""

    def wrote_feeds(self, written: Sequence[Path]) -> None:
        """Hear which feed files were written."""


# Interests the daemon's embed job embeds per run (about 25 s of the model):
# a bulk import is worked off between the other jobs, a run at a time.
EMBED_PER_RUN = 5_000


@dataclass
class Cycle:
    """The steps of the cycle and what they work with."""

    settings: Settings
    storage: Storage
    fetcher: Fetcher
    clock: Callable[[], datetime]
    # None: built from the settings when a send first needs it, so a bad mail
    # setting fails run-once's send step, after its ingest and compose ran.
    sender: Sender | None = None

    def ingest_due(self) -> tuple[list[IngestSummary], list[str]]:
        """Poll the due sources; return their summaries and one error per failing source."""
        return ingest_due(self.storage, self.fetcher, self.settings, self.clock())

    def ingest_source(self, source: SourceConfig) -> IngestSummary:
        """Poll one source; raise ListingError, recorded as its failed run, when it fails."""
        return ingest_source(self.storage, self.fetcher, source, self.clock())

    def compose(self, stopping: Callable[[], bool] = lambda: False) -> collections.Counter[str]:
        """Compose every digest that is due, the topics' too; return how many of each outcome."""
        outcomes = compose_due(self.storage, self.settings, self.clock(), None, stopping)
        topics = compose_topic_digests(
            self.storage, self.settings, self.clock(), matching_for(self.settings)
        )
        if topics:
            outcomes["topic digests"] = topics
        return outcomes

    def embed_pending(self) -> int:
        """Embed up to EMBED_PER_RUN interests that have no embeddings; return how many."""
        matching = matching_for(self.settings)
        return embed_pending(self.storage, matching, at_most=EMBED_PER_RUN)

    async def send(self, stop: asyncio.Event | None = None) -> SendReport:
        """Send every due digest; setting stop finishes the messages in flight and ends."""
        return await self._sender().send(stop)

    async def post(self, stop: asyncio.Event | None = None) -> PostReport:
        """Post every due digest to its channels; setting stop ends after the posts under way."""
        return await post_channels(self.storage, self.settings, self.clock, stop=stop)

    def write_feeds(self) -> list[Path]:
        """Write every feed file; return the files written."""
        return build_feeds(self.storage, self.settings, self.clock())

    def run_once(self, listener: CycleListener) -> list[str]:
        """Take every step once, in order, recorded as a "run-once" job; return the problems.

        A failing source, an unreachable mail server and a digest that failed
        for good are problems: the run is recorded as failed with them, and the
        other steps still run. Anything else raised is recorded, then raised.
        """
        job = JobRecorder.start(self.storage, "run-once", job_host(), self.clock)
        try:
            errors, detail = self._steps(listener)
            job.finish(JobStatus.FAILED if errors else JobStatus.OK, detail)
        except BaseException as e:
            # A cycle that dies is recorded as failed, never left "running".
            job.failed(e)
            raise
        return errors

    def _steps(self, listener: CycleListener) -> tuple[list[str], str]:
        """Take the steps in order; return the problems and the line job_runs records."""
        summaries, errors = self.ingest_due()
        for summary in summaries:
            listener.ingested(summary)
        outcomes = self.compose()
        listener.composed(outcomes)
        try:
            report = self._sender().send_until_signalled()
        except ServerUnavailable as e:
            errors.append(str(e))
        else:
            listener.sent(report)
            errors += [
                f"{email}: not delivered: {error}"
                for email, error in report.failed + report.unconfirmed
            ]
        posted = asyncio.run(self.post())
        listener.posted(posted)
        errors += [
            f"channel {label}: not posted: {error}"
            for label, error in posted.failed + posted.unconfirmed
        ]
        listener.wrote_feeds(self.write_feeds())
        return errors, "; ".join(errors) or f"composed {describe_outcomes(outcomes)}"

    def _sender(self) -> Sender:
        """Return the sender, building it from the settings on first use."""
        if self.sender is None:
            self.sender = send_from_settings(self.settings, self.storage, self.clock)
        return self.sender
