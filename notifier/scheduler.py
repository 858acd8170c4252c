"""notifier run: the long-running service. APScheduler decides when; our tables decide what.

APScheduler keeps no state here (a memory job store): which sources are due
comes from their last check, which digests are due from each subscriber's
clock and the digests already stored, what to send from the digest rows. A
restart therefore loses nothing and repeats nothing. Only one daemon acts at a
time: it holds a leader lock (a PostgreSQL advisory lock, or a lock file next to
an SQLite database); a second one waits as a hot standby and takes over when
the first dies, because the lock dies with its holder's connection or process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

import notifier.clock
from notifier import pipeline
from notifier.app import make_rate_limit, make_renderer, make_transports
from notifier.delivery import Transport
from notifier.delivery.limits import RateLimit
from notifier.errors import NotifierError
from notifier.ingest.fetch import Fetcher
from notifier.models import JobStatus
from notifier.pipeline.cycle import Cycle, JobRecorder, failure_detail, job_host
from notifier.pipeline.senders import Sender
from notifier.render.email import EmailRenderer
from notifier.settings import Settings, SourceConfig
from notifier.storage import Storage
from notifier.storage.leader import LeaderLock, leader_lock

log = logging.getLogger("notifier.run")
NOTHING_TO_SEND = "nothing to send"
NOTHING_TO_EMBED = "nothing to embed"
NOTHING_TO_POST = "nothing to post"
IDLE = frozenset({NOTHING_TO_SEND, NOTHING_TO_EMBED, NOTHING_TO_POST})


@dataclass
class Daemon:
    """One `notifier run` process: wait for the leader lock, then run the jobs until stopped."""

    settings: Settings
    storage: Storage
    fetcher: Fetcher
    renderer: EmailRenderer
    transports: Callable[[], list[Transport]]
    limit: RateLimit | None = None
    clock: Callable[[], datetime] = notifier.clock.now
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    host: str = field(default_factory=job_host)
    _running: set[asyncio.Task[Any]] = field(default_factory=set)
    _scheduler: AsyncIOScheduler | None = None
    # The steps its jobs run: the same as run-once's, each on its own interval.
    cycle: Cycle = field(init=False)

    def __post_init__(self) -> None:
        sender = Sender(
            self.settings, self.storage, self.renderer, self.transports, self.limit, self.clock
        )
        self.cycle = Cycle(self.settings, self.storage, self.fetcher, self.clock, sender)

    async def serve(self) -> None:
        """Wait to lead, run the jobs, and on stop finish what is running and let go."""
        lock = leader_lock(self.storage, self.settings.state_dir)
        if not await self._lead(lock):
            log.info("stopped while on standby")
            return
        try:
            scheduler = self._scheduler = self._schedule()
            scheduler.start()
            log.info(
                "leader on %s: %d source job(s), compose every %s, send every %s",
                self.host,
                len(self.settings.sources),
                self.settings.compose_every,
                self.settings.send_every,
            )
            lost = False
            while not self.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.settings.standby_poll)
                if not self.stop.is_set() and not lock.held():
                    # Another daemon may lead now: acting on would make two leaders.
                    log.error("lost the leader lock (database connection gone); stopping")
                    lost = True
                    self.stop.set()
            log.info("stopping: no new jobs; finishing %d running", len(self._running))
            scheduler.pause()
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            scheduler.shutdown(wait=False)
        finally:
            lock.release()
        if lost:
            raise NotifierError(
                "lost the leader lock (its database connection died); stopped so that the "
                "service manager restarts notifier run, which then waits as a standby"
            )
        log.info("stopped cleanly")

    async def _lead(self, lock: LeaderLock) -> bool:
        """Wait until this process holds the leader lock; return False if stopped first."""
        announced = False
        while not self.stop.is_set():
            if await asyncio.to_thread(lock.try_acquire):
                return True
            if not announced:
                log.info("standby: another `notifier run` is the leader; waiting to take over")
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.settings.standby_poll)
        return False

    def _schedule(self) -> AsyncIOScheduler:
        """Return a scheduler with one job per source, plus compose, send and feeds."""
        settings, now = self.settings, self.clock()
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                # Late runs still run (the default grace of 1 s silently drops them,
                # agronholm/apscheduler#182); a backlog of missed runs runs once.
                "misfire_grace_time": max(1, int(settings.misfire_grace.total_seconds())),
                "coalesce": True,
                "max_instances": 1,
            },
        )
        checked = {h.name: h.last_checked_at for h in self.storage.sources_health()}
        for source in (s for s in settings.sources if s.enabled):
            last = checked.get(source.name)
            first = now if last is None else max(now, last + source.every)
            scheduler.add_job(
                self._job,
                IntervalTrigger(seconds=source.every.total_seconds(), start_date=first),
                args=(f"ingest:{source.name}", self._ingest, source),
                id=f"ingest:{source.name}",
                next_run_time=first,
            )
        for name, every, work in (
            ("compose", settings.compose_every, self._compose),
            ("send", settings.send_every, self._send),
            ("post", settings.send_every, self._post),
        ):
            scheduler.add_job(
                self._job,
                IntervalTrigger(seconds=every.total_seconds()),
                args=(name, work),
                id=name,
                next_run_time=now,
            )
        # Half a period after composing, so the two do not share the cores.
        embed_at = now + settings.compose_every / 2
        scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=settings.compose_every.total_seconds(), start_date=embed_at),
            args=("embed", self._embed),
            id="embed",
            next_run_time=embed_at,
        )
        scheduler.add_job(self._job, args=("feeds", self._feeds), id="feeds", next_run_time=now)
        return scheduler

    async def _job(self, name: str, work: Callable[..., Awaitable[str]], *args: Any) -> None:
        """Run one job, record it for `notifier status`, and log its health line."""
        if self.stop.is_set():
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await self._run_and_record(name, work, *args)
        finally:
            # Only once the run is recorded: on stop, serve() waits for every job in
            # _running before the loop ends, so none is cancelled while recording
            # (a run left "running" in job_runs, and a traceback after "stopped").
            self._running.discard(task)

    async def _run_and_record(
        self, name: str, work: Callable[..., Awaitable[str]], *args: Any
    ) -> None:
        """Record the start of a job, run it, record how it ended and log it."""
        started = time.perf_counter()
        job = await asyncio.to_thread(JobRecorder.start, self.storage, name, self.host, self.clock)
        status, detail = JobStatus.OK, ""
        try:
            detail = await work(*args)
        except Exception as e:  # a job must never take the daemon down; the next run retries
            status, detail = JobStatus.FAILED, failure_detail(e)
        with contextlib.suppress(NotifierError):
            await asyncio.to_thread(job.finish, status, detail)
        line = f"{name}: {status} in {time.perf_counter() - started:.1f} s: {detail}"
        if status != JobStatus.OK:
            log.error(line)
        elif detail in IDLE:
            log.debug(line)  # a send run with nothing to do, every minute: not news
        else:
            log.info(line)

    async def _ingest(self, source: SourceConfig) -> str:
        """Poll one source (its job runs on the source's interval); after news, rebuild feeds."""
        summary = await asyncio.to_thread(self.cycle.ingest_source, source)
        if (summary.new or summary.updated) and self._scheduler is not None:
            self._scheduler.add_job(
                self._job,
                args=("feeds", self._feeds),
                id="feeds",
                replace_existing=True,
                next_run_time=self.clock(),
            )
        return f"{summary.status}: {summary.papers} papers, {summary.new} new"

    async def _compose(self) -> str:
        """Compose the digests that are due; report outcomes and the health of the service."""
        outcomes = await asyncio.to_thread(self.cycle.compose, self.stop.is_set)
        waiting = await asyncio.to_thread(self.storage.waiting_digests)
        return f"{pipeline.describe_outcomes(outcomes)}; {waiting} digest(s) waiting to be sent"

    async def _embed(self) -> str:
        """Embed interests still without embeddings (a bulk import's), a bounded number per run."""
        done = await asyncio.to_thread(self.cycle.embed_pending)
        return f"embedded {done} interest(s)" if done else NOTHING_TO_EMBED

    async def _send(self) -> str:
        """Send what is due, if anything is (no connection is opened for nothing)."""
        if not await asyncio.to_thread(self.storage.waiting_digests):
            return NOTHING_TO_SEND
        report = await self.cycle.send(self.stop)
        return pipeline.describe_report(report)

    async def _post(self) -> str:
        """Post the digests that are due to their channels (Slack, Discord, Matrix, webhooks)."""
        report = await self.cycle.post(self.stop)
        if not (report.sent or report.retried or report.failed or report.unconfirmed):
            return NOTHING_TO_POST
        return report.describe()

    async def _feeds(self) -> str:
        """Rebuild every feed file."""
        written = await asyncio.to_thread(self.cycle.write_feeds)
        return f"wrote {len(written)} feed files"


def run_daemon(
    settings: Settings, storage: Storage, fetcher: Fetcher, clock: Callable[[], datetime]
) -> None:
    """Run `notifier run` until SIGTERM / SIGINT (see Daemon.serve)."""
    make_transports(settings)  # fail on missing SMTP configuration before starting

    async def serve() -> None:
        daemon = Daemon(
            settings,
            storage,
            fetcher,
            make_renderer(settings),
            partial(make_transports, settings),
            limit=make_rate_limit(settings),
            clock=clock,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop.set)
        await daemon.serve()

    asyncio.run(serve())
