"""Sending as the settings configure it: from this process, or from N worker processes.

send.py is the delivery run itself. Sender is the one place that wires it to
a renderer, connections, rate, retry policy and journal; send_from_settings
builds one from Settings. send_in_processes supervises `notifier send
--workers N`: it starts the processes, forwards SIGTERM / SIGINT to them and
adds up what they report.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from multiprocessing.context import ForkContext, SpawnContext
from pathlib import Path
from typing import Any

from notifier import clock
from notifier.app import (
    make_outbox,
    make_rate_limit,
    make_renderer,
    make_transports,
    open_storage,
)
from notifier.delivery import Transport
from notifier.delivery.limits import RateLimit
from notifier.errors import NotifierError
from notifier.models import ComposeResult, DigestStatus
from notifier.pipeline.compose import preview_digests
from notifier.pipeline.send import RetryPolicy, SendReport, deliver, worker_name
from notifier.render.email import EmailRenderer
from notifier.settings import Settings, load_settings
from notifier.storage import Storage


@dataclass(frozen=True)
class Sender:
    """Delivery as configured: the renderer, connections, rate, retries and journal to use."""

    settings: Settings
    storage: Storage
    renderer: EmailRenderer
    # Called once per run: each run opens its own connections.
    transports: Callable[[], Sequence[Transport]]
    # Shared by every run of one sender, so an hourly rate holds across runs.
    limit: RateLimit | None
    clock: Callable[[], datetime]

    async def send(
        self,
        stop: asyncio.Event | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> SendReport:
        """Deliver every due digest from this process (see deliver); setting stop ends early."""
        return await deliver(
            self.storage,
            self.renderer,
            self.transports(),
            worker=worker_name(),
            clock=self.clock,
            policy=RetryPolicy.from_settings(self.settings),
            limit=self.limit,
            stop=stop,
            on_progress=on_progress,
            journal_dir=self.settings.journal_dir,
        )

    def send_until_signalled(self, on_progress: Callable[[int], None] | None = None) -> SendReport:
        """Deliver due digests from this process, stopping cleanly on SIGTERM / SIGINT."""

        async def run() -> SendReport:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            return await self.send(stop, on_progress)

        return asyncio.run(run())

    def backlog(self) -> int:
        """Return how many digests wait to be sent (pending, or of unknown outcome)."""
        counts = self.storage.digest_counts()
        return sum(
            n
            for status, n in counts.items()
            if status in (DigestStatus.PENDING, DigestStatus.UNKNOWN)
        )


def send_from_settings(
    settings: Settings, storage: Storage, clock: Callable[[], datetime]
) -> Sender:
    """Return the sender the settings configure: their templates, SMTP server and rates."""
    return Sender(
        settings,
        storage,
        make_renderer(settings),
        partial(make_transports, settings),
        make_rate_limit(settings),
        clock,
    )


def preview_from_settings(
    settings: Settings, storage: Storage, now: datetime
) -> tuple[list[ComposeResult], int]:
    """Compose the due digests without recording them; write them to the outbox as dry-run_*.

    Returns what composing did per subscriber, and how many previews were written.
    """
    renderer = make_renderer(settings)
    outbox = make_outbox(settings, prefix="dry-run_")
    composed = asyncio.run(preview_digests(storage, settings, renderer, outbox, now))
    return composed, sum(1 for c in composed if c.content and not c.content.is_empty)


def _worker_process(config_file: Path | None, results: Any) -> None:
    """Run one sending process (the target of send_in_processes); always report back."""
    storage = None
    try:
        settings = load_settings(config_file)
        storage = open_storage(settings)
        report = send_from_settings(settings, storage, clock.now).send_until_signalled()
        # Only what the parent prints: counts, and the (few) addresses with a problem.
        results.put(
            (
                "ok",
                (
                    report.recorded,
                    report.failed,
                    report.deferred,
                    report.unknown,
                    report.unconfirmed,
                    report.suspended,
                    report.recovered,
                    report.taken_over,
                ),
            )
        )
    except NotifierError as e:
        results.put(("error", str(e)))
    except Exception as e:  # the parent must hear of it, or it would wait forever
        results.put(("error", f"sending process {os.getpid()} failed: {type(e).__name__}: {e}"))
    finally:
        if storage is not None:
            storage.close()


def _worker_starter() -> ForkContext | SpawnContext:
    """Return how to start worker processes: fork when it is safe here, else spawn.

    A forked worker starts at once with every module this process imported; a
    spawned one imports them again (about a second of CPU per worker). Fork is
    safe only in a process with no other thread (a lock held by another thread
    would stay held in the child for ever) and where the platform has it.
    """
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def send_in_processes(config_file: Path | None, workers: int) -> SendReport:
    """Send from workers processes, each reading config_file; return what they did together.

    Raises NotifierError with the first process's error when any failed or died.
    """
    starter = _worker_starter()
    results = starter.Queue()
    processes = [
        starter.Process(target=_worker_process, args=(config_file, results), daemon=False)
        for _ in range(workers)
    ]
    sys.stdout.flush()  # a forked child would print what is still buffered a second time
    sys.stderr.flush()
    for process in processes:
        process.start()

    def forward(signum: int, _frame: Any) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    total = SendReport()
    errors = []
    pending = len(processes)
    while pending:
        try:
            kind, value = results.get(timeout=1.0)
        except queue.Empty:
            # A process killed from outside (SIGKILL, out of memory) reports nothing.
            dead = [p for p in processes if p.exitcode is not None]
            if len(dead) >= len(processes) and results.empty():
                errors += [f"sending process {p.pid} died (exit code {p.exitcode})" for p in dead]
                break
            continue
        pending -= 1
        if kind == "error":
            errors.append(value)
            continue
        recorded, failed, deferred, unknown, unconfirmed, suspended, recovered, lost = value
        total.recorded += recorded
        total.taken_over += lost
        total.unconfirmed += unconfirmed
        total.recovered += recovered
        total.failed += failed
        total.deferred += deferred
        total.unknown += unknown
        total.suspended += suspended
    for process in processes:
        process.join()
    if errors:
        raise NotifierError(errors[0])
    return total
