"""Send: claim due digests, send them over SMTP lanes, record what happened to each."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from notifier.delivery import Transport
from notifier.delivery.journal import SentJournal
from notifier.delivery.journal import recover as recover_journals
from notifier.delivery.limits import RateLimit
from notifier.errors import (
    DeliveryUnknown,
    RecipientRejected,
    ServerUnavailable,
    StorageError,
    TemporaryDeliveryError,
)
from notifier.models import OutgoingMessage, StoredDigest
from notifier.render.email import EmailRenderer
from notifier.settings import Settings
from notifier.storage.protocols import SendStore

log = logging.getLogger("notifier.pipeline")


@dataclass
class SendReport:
    """What a send run did."""

    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    # Unknown until the deadline, then given up: they may have arrived.
    unconfirmed: list[tuple[str, str]] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    recovered: int = 0  # marks applied from the journals of senders that died
    # Digests recorded as sent: the count to report. A message another worker took
    # over is never sent, and were it sent its mark would not count.
    recorded: int = 0
    taken_over: int = 0  # claimed, then lost to another worker before going out


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again, when to give up, and how long a claim lasts."""

    base: float = 60.0
    cap: float = 3600.0
    deadline: timedelta = timedelta(days=3)
    lease: timedelta = timedelta(minutes=5)
    bounce_limit: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """Return the policy the settings describe."""
        return cls(
            settings.retry_base,
            settings.retry_max,
            settings.retry_deadline,
            timedelta(seconds=settings.lease_seconds),
            settings.hard_bounce_limit,
        )

    def next_attempt(self, attempts: int, now: datetime) -> datetime:
        """Return when to try again: exponential backoff with jitter, capped."""
        wait = min(self.cap, self.base * 2 ** max(attempts - 1, 0))
        return now + timedelta(seconds=wait * random.uniform(0.5, 1.5))


class _Leases:
    """Keep a worker's leases on a claimed batch alive, and say which it still holds."""

    def __init__(
        self,
        storage: SendStore,
        worker: str,
        clock: Callable[[], datetime],
        lease: timedelta,
        claimed: Sequence[StoredDigest],
    ) -> None:
        self._storage, self._worker, self._clock, self._lease = storage, worker, clock, lease
        now = clock()
        self._until = {d.id: now + lease for d in claimed}  # as last claimed or renewed

    def done(self, digest_id: int) -> None:
        """Stop renewing a digest whose outcome is recorded (or being recorded)."""
        self._until.pop(digest_id, None)

    async def holds(self, digest_id: int) -> bool:
        """Return whether the digest may go on the wire now: a third of its lease is
        left, renewing it first when it is not.
        """
        until = self._until.get(digest_id)
        if until is None:
            return False
        if until - self._clock() >= self._lease / 3:
            return True
        await self._renew([digest_id])
        return digest_id in self._until

    @contextlib.asynccontextmanager
    async def renewed(self) -> AsyncIterator[None]:
        """Renew every lease still needed each third of a lease while the block runs."""

        async def keep_renewing() -> None:
            while True:
                await asyncio.sleep(self._lease.total_seconds() / 3)
                try:
                    await self._renew(list(self._until))
                except StorageError as e:
                    # Not fatal here: a digest whose lease runs short is renewed again
                    # right before it is sent (holds), and is not sent if that fails.
                    log.warning("could not renew leases: %s", e)

        renewing = asyncio.get_running_loop().create_task(keep_renewing())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, ids: list[int]) -> None:
        """Extend the leases on ids; forget those another worker took over."""
        if not ids:
            return
        now = self._clock()
        held = await asyncio.to_thread(
            self._storage.renew_leases, self._worker, ids, now, self._lease
        )
        for digest_id in ids:
            if digest_id in held:
                self._until[digest_id] = now + self._lease
            else:
                self._until.pop(digest_id, None)


class _Marks:
    """Record accepted messages as sent on a worker thread, in group commits.

    A commit takes every mark waiting when it starts, in one transaction; marks
    that arrive meanwhile wait for the next one. Without a journal nothing waits
    for a count or a timer, so an accepted message is recorded within about one
    commit while the connections go on sending. With one (delivery/journal.py),
    each mark is on disk already, so marks gather until `group` are waiting or
    `hold` seconds have passed: a transaction for dozens of messages, not one
    (docs/design.md, Sending).
    """

    def __init__(
        self,
        storage: SendStore,
        worker: str,
        clock: Callable[[], datetime],
        on_error: Callable[[Exception], None],
        *,
        hold: float = 0.0,
        group: int = 1,
    ) -> None:
        self._storage, self._worker, self._clock = storage, worker, clock
        self._on_error = on_error
        self._hold, self._group = hold, group
        self._waiting: list[tuple[int, str]] = []
        self._done: asyncio.Future[bool] | None = None  # settles when _waiting is committed
        self._committer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set: stop gathering, commit now
        self.failed = False
        self.recorded = 0  # digests the database marked sent (held by this worker)

    def add(self, digest_id: int, reply: str) -> asyncio.Future[bool]:
        """Queue a mark; return a future: True once it is committed, False if it never will be."""
        loop = asyncio.get_running_loop()
        if self.failed:
            never: asyncio.Future[bool] = loop.create_future()
            never.set_result(False)
            return never
        if self._done is None:
            self._done = loop.create_future()
        done = self._done
        self._waiting.append((digest_id, reply))
        if len(self._waiting) >= self._group:
            self._wake.set()
        if self._committer is None:
            self._committer = loop.create_task(self._commit())
        return done

    async def flush(self) -> None:
        """Return once every queued mark is committed, or has failed (on_error was called)."""
        while self._committer is not None:
            self._wake.set()
            # Shielded: a cancelled caller must not cancel the commit that records it.
            await asyncio.shield(self._committer)

    async def _commit(self) -> None:
        """Commit the waiting marks, group after group, until none is waiting."""
        try:
            while self._waiting:
                if self._hold and not self._wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._hold)
                self._wake.clear()
                group, done = self._waiting, self._done
                self._waiting, self._done = [], None
                assert done is not None
                try:
                    self.recorded += await asyncio.to_thread(
                        self._storage.finish_sent, self._worker, group, self._clock()
                    )
                except Exception as e:
                    self._fail(e, done)
                    return
                done.set_result(True)
        finally:
            self._committer = None

    def _fail(self, error: Exception, done: asyncio.Future[bool]) -> None:
        """Settle every waiting mark as never recorded and report why, once."""
        self.failed = True
        for pending in (done, self._done):
            if pending is not None:
                pending.set_result(False)
        self._waiting, self._done = [], None
        self._on_error(error)


# With a journal, marks are committed when this many are waiting, or after this long.
JOURNAL_GROUP = 64
JOURNAL_HOLD = 0.05


@dataclass
class _Delivery:
    """One worker's delivery run: claims, lanes, and the outcome of every message."""

    storage: SendStore
    renderer: EmailRenderer
    worker: str
    clock: Callable[[], datetime]
    policy: RetryPolicy
    limit: RateLimit | None
    stop: asyncio.Event
    on_progress: Callable[[int], None] | None
    journal: SentJournal | None = None
    report: SendReport = field(default_factory=SendReport)
    fatal: list[BaseException] = field(default_factory=list)
    marks: _Marks = field(init=False)
    # Set when the run fails. Not stop itself: that event is the caller's (the
    # daemon's, across runs), and a failed run must not stop the daemon.
    halted: bool = False

    def __post_init__(self) -> None:
        if self.journal is None:
            self.marks = _Marks(self.storage, self.worker, self.clock, self._marks_failed)
        else:
            self.marks = _Marks(
                self.storage,
                self.worker,
                self.clock,
                self._marks_failed,
                hold=JOURNAL_HOLD,
                group=JOURNAL_GROUP,
            )

    def _marks_failed(self, error: Exception) -> None:
        """Stop the run because accepted messages cannot be marked sent, saying what follows."""
        if self.journal is None:
            later = "they stay claimed and go out again (same Message-ID) once their lease expires"
        else:
            later = f"they are kept in {self.journal.path} and the next send records them"
        self._abort(StorageError(f"cannot record accepted messages as sent: {error}; {later}"))

    def _abort(self, error: BaseException) -> None:
        """Stop the run: lanes finish the message they are on, then error is raised."""
        self.fatal.append(error)
        self.halted = True

    def _stopping(self) -> bool:
        """Return whether to take no more messages: stop was set, or the run failed."""
        return self.halted or self.stop.is_set()

    async def run(self, transports: Sequence[Transport], batch: int) -> SendReport:
        """Claim and send batches until nothing is due or stop is set."""
        started = self.clock()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for transport in transports:
                    # A dead server fails here, before anything is claimed.
                    await stack.enter_async_context(transport)
                batch = self._claim_size(batch, len(transports))
                while not self._stopping():
                    claimed = self.storage.claim_digests(
                        self.worker, batch, self.clock(), self.policy.lease, due_by=started
                    )
                    if not claimed:
                        break
                    await self._drain(transports, claimed)
        finally:
            # A run ends only once every message the server accepted is recorded as
            # sent; the journal goes once the database has all of it.
            await self.marks.flush()
            self.report.recorded = self.marks.recorded
            if self.journal is not None:
                self.journal.close(delete=not self.marks.failed)
        if self.fatal:
            raise self.fatal[0]
        return self.report

    def _claim_size(self, batch: int, lanes: int) -> int:
        """Return how many digests to claim at once: no more than half a lease's worth
        at the configured rate, so leases are rarely in need of renewal.
        """
        rate = self.limit.per_second if self.limit is not None else None
        if rate is None:
            return batch
        within = int(rate * self.policy.lease.total_seconds() / 2)
        return max(lanes, min(batch, within))

    async def _drain(self, transports: Sequence[Transport], claimed: list[StoredDigest]) -> None:
        """Send a claimed batch, one lane per transport; give back what was never sent.

        Leases are renewed every third of a lease while the batch is sent, and a
        digest goes on the wire only while its lease has a third of its length
        left; a digest another worker took over is never sent.
        """
        queue = collections.deque(claimed)
        tried: set[int] = set()
        leases = _Leases(self.storage, self.worker, self.clock, self.policy.lease, claimed)

        def rendered(digest: StoredDigest) -> OutgoingMessage:
            """Return digest as the message to send now."""
            return self.renderer.render(
                digest.content, digest.subscriber, digest.message_id, self.clock()
            )

        def render_next() -> tuple[StoredDigest, OutgoingMessage] | None:
            """Take the next digest and render it, or leave it queued if that fails:
            its error is then raised in its turn, after the message before it went out.
            """
            digest = queue.popleft()
            try:
                return digest, rendered(digest)
            except Exception:
                queue.appendleft(digest)
                return None

        async def lane(transport: Transport) -> None:
            marked: asyncio.Future[bool] | None = None  # this lane's last mark
            # The lane's next message, rendered before this one is sent, so its
            # envelope can go out with this one's data (delivery/smtp.py). Until its
            # own send it is not tried: a lane that stops gives it back.
            upcoming: tuple[StoredDigest, OutgoingMessage] | None = None
            try:
                while not self._stopping():
                    if upcoming is not None:
                        (digest, message), upcoming = upcoming, None
                    elif queue:
                        digest = queue.popleft()
                        message = rendered(digest)
                    else:
                        break
                    if queue:
                        upcoming = render_next()
                    gate = await self._gate(digest.id, marked, leases)
                    if gate == "stop":
                        return  # not on the wire yet: given back below
                    if gate == "skip":
                        continue  # another worker holds it now: never sent here
                    tried.add(digest.id)
                    following = upcoming[1] if upcoming is not None else None
                    marked = await self._send(transport, digest, message, following)
                    leases.done(digest.id)
            except BaseException:
                self.halted = True  # the other lanes finish the message they are on
                raise

        try:
            # Every lane ends before the leases are given back.
            async with leases.renewed():
                outcomes = await asyncio.gather(
                    *(lane(t) for t in transports), return_exceptions=True
                )
        finally:
            if self.journal is None:
                # Marks first: a lease is given back only once every message the
                # server accepted is recorded as sent.
                await self.marks.flush()
            unsent = [d.id for d in claimed if d.id not in tried]
            self.storage.release_leases(self.worker, unsent)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _gate(
        self, digest_id: int, marked: asyncio.Future[bool] | None, leases: _Leases
    ) -> str:
        """Wait until a lane's next message may go on the wire; return send, skip or stop."""
        if self.limit is not None:
            await self.limit.wait()
        # Without a journal a lane sends again only once its last mark is committed
        # (which rendering the next message overlapped), so a killed sender has at
        # most one accepted but unrecorded message per connection. With one, that
        # message is in the journal already.
        if marked is not None and self.journal is None and not await marked:
            return "stop"  # marks cannot be recorded: the run stops
        if self._stopping():
            return "stop"
        # Checked after the rate limit's wait, right before the wire.
        if not await leases.holds(digest_id):
            self.report.taken_over += 1
            return "skip"
        return "send"

    async def _send(
        self,
        transport: Transport,
        digest: StoredDigest,
        message: OutgoingMessage,
        following: OutgoingMessage | None,
    ) -> asyncio.Future[bool] | None:
        """Send one digest (following: the lane's next message) and record what happened
        to it; return its mark if it was accepted.
        """
        storage, report, email = self.storage, self.report, digest.subscriber.email
        marked = None
        try:
            reply = await transport.send(message, following)
        except RecipientRejected as e:
            bounced = storage.finish_failed(
                self.worker, digest.id, str(e), True, self.policy.bounce_limit
            )
            report.failed.append((email, str(e)))
            if bounced:
                report.suspended.append(email)
        except DeliveryUnknown as e:
            now = self.clock()
            if now - digest.created_at > self.policy.deadline:
                self._give_up_unconfirmed(digest, str(e))
            else:
                later = self.policy.next_attempt(digest.attempts, now)
                storage.finish_retry(self.worker, digest.id, str(e), later, unknown=True, now=now)
                report.unknown.append((email, str(e)))
        except TemporaryDeliveryError as e:
            self._retry_or_give_up(digest, str(e))
        except ServerUnavailable as e:
            storage.finish_retry(self.worker, digest.id, str(e), self.clock(), unknown=False)
            self._abort(e)
        else:
            # One mark per accepted message: a sender killed between the server's
            # "250" and the record resends only those messages (same Message-ID).
            # The journal line is the record when there is one; the database's mark
            # follows in a group commit off the event loop (_Marks), which skips the
            # disk flush (storage.finish_sent).
            if self.journal is not None:
                try:
                    self.journal.record(digest.id, reply, self.clock())
                except StorageError as e:
                    self._abort(e)
            marked = self.marks.add(digest.id, reply)
            report.sent.append(email)
        if self.on_progress is not None:
            self.on_progress(1)
        return marked

    def _give_up_unconfirmed(self, digest: StoredDigest, error: str) -> None:
        """End the retries of a digest that may have arrived, saying so (never "failed")."""
        gave_up = f"outcome unknown, gave up after {digest.attempts} tries: {error}"
        self.storage.finish_unconfirmed(self.worker, digest.id, gave_up, self.clock())
        self.report.unconfirmed.append((digest.subscriber.email, gave_up))

    def _retry_or_give_up(self, digest: StoredDigest, error: str) -> None:
        """Schedule another attempt, or end the digest once the deadline has passed:
        unconfirmed when an earlier attempt may have arrived, else failed.
        """
        now, email = self.clock(), digest.subscriber.email
        if now - digest.created_at > self.policy.deadline:
            if digest.unknown_since is not None:
                self._give_up_unconfirmed(digest, error)
                return
            gave_up = f"gave up after {digest.attempts} attempts: {error}"
            self.storage.finish_failed(
                self.worker, digest.id, gave_up, False, self.policy.bounce_limit
            )
            self.report.failed.append((email, gave_up))
            return
        later = self.policy.next_attempt(digest.attempts, now)
        self.storage.finish_retry(self.worker, digest.id, error, later, unknown=False)
        self.report.deferred.append((email, error))


async def deliver(
    storage: SendStore,
    renderer: EmailRenderer,
    transports: Sequence[Transport],
    *,
    worker: str,
    clock: Callable[[], datetime],
    policy: RetryPolicy | None = None,
    limit: RateLimit | None = None,
    stop: asyncio.Event | None = None,
    batch: int = 100,
    on_progress: Callable[[int], None] | None = None,
    journal_dir: Path | None = None,
) -> SendReport:
    """Claim due digests and send them over the transports (one lane each) until none is left.

    A digest is marked sent only after the server accepted it, on a worker
    thread (every mark waiting in one transaction), and before the run ends;
    marks that cannot be committed stop the run with StorageError, those
    messages still claimed. With journal_dir each accepted message is first
    written to this run's journal there, marks are committed in groups, and
    the journals of runs that died are applied before anything is claimed
    (delivery/journal.py). A refused recipient (5xx)
    fails that digest and counts a hard bounce; 4xx and lost connections are
    retried with backoff until the deadline; a connection lost after the data
    went out makes the digest "unknown", retried with the same Message-ID. An
    unreachable server stops the run (ServerUnavailable) with everything not
    accepted still due. Setting stop finishes the messages in flight and gives
    the rest back.
    """
    recovered = 0
    journal = None
    if journal_dir is not None:
        recovered = recover_journals(journal_dir, storage.recover_sent)
        journal = SentJournal(journal_dir, worker)
    run = _Delivery(
        storage,
        renderer,
        worker,
        clock,
        policy or RetryPolicy(),
        limit,
        stop or asyncio.Event(),
        on_progress,
        journal,
    )
    run.report.recovered = recovered
    return await run.run(transports, batch)


async def send_pending(
    storage: SendStore,
    renderer: EmailRenderer,
    transport: Transport,
    clock: Callable[[], datetime],
    on_progress: Callable[[int, int], None] | None = None,
) -> SendReport:
    """Send every due digest over one transport (the demo, tests and small runs)."""
    done = 0

    def progress(step: int) -> None:
        nonlocal done
        done += step
        if on_progress is not None:
            on_progress(done, 0)

    return await deliver(
        storage, renderer, [transport], worker=worker_name(), clock=clock, on_progress=progress
    )


def worker_name() -> str:
    """Return a name that is unique to this sending process and run."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def describe_report(report: SendReport) -> str:
    """Return a send report as "sent 3, failed 0, deferred 0, unknown 0": digests, each once."""
    counts = (report.recorded, len(report.failed), len(report.deferred), len(report.unknown))
    described = "sent {}, failed {}, deferred {}, unknown {}".format(*counts)
    if report.unconfirmed:
        described += f", given up unconfirmed {len(report.unconfirmed)}"
    if report.taken_over:
        described += f" ({report.taken_over} whose lease ran out: left to the next sender)"
    if report.recovered:
        described += f" ({report.recovered} sent by a stopped sender recorded from its journal)"
    return described


def report_json(report: SendReport) -> dict[str, int]:
    """Return a send report's totals as JSON-ready data (`send --json`): digests, each once."""
    return {
        "sent": report.recorded,
        "failed": len(report.failed),
        "deferred": len(report.deferred),
        "unknown": len(report.unknown),
        "unconfirmed": len(report.unconfirmed),
        "recovered": report.recovered,
    }
