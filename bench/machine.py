"""How much of the CPU the hypervisor took while a figure was measured (Linux /proc/stat).

On a shared virtual machine the host can run other guests on "our" cores: that
time is counted as steal. A figure taken while steal was high says more about
the neighbours than about the code, so the benchmarks print it beside each one.

    before = cpu_ticks()
    ...  # the measured work
    print(steal_share(before, cpu_ticks()))  # "12 %", or "n/a" off Linux
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from pathlib import Path

_STAT = Path("/proc/stat")
# The numbers on the "cpu" line: user nice system idle iowait irq softirq steal.
_IDLE, _IOWAIT, _STEAL = 3, 4, 7

Ticks = tuple[int, int, int]  # steal, idle (iowait included), total


def cpu_ticks() -> Ticks | None:
    """Return (steal, idle, total) clock ticks of all CPUs since boot, or None without /proc/stat.

    Idle counts iowait too: a core waiting for the disk is a core the work left unused.
    """
    try:
        first = _STAT.read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(n) for n in first[1:9]]  # guest time is counted in user already
    return ticks[_STEAL], ticks[_IDLE] + ticks[_IOWAIT], sum(ticks)


def steal_share(before: Ticks | None, after: Ticks | None) -> str:
    """Return the share of CPU time stolen between two cpu_ticks() readings, as "12 %"."""
    return _share(before, after, 0)


def idle_share(before: Ticks | None, after: Ticks | None) -> str:
    """Return the share of CPU time left idle between two cpu_ticks() readings, as "12 %"."""
    return _share(before, after, 1)


def cpu_shares(before: Ticks | None, after: Ticks | None) -> str:
    """Return the steal and idle shares between two cpu_ticks() readings, as one phrase."""
    return f"steal {steal_share(before, after)}, idle {idle_share(before, after)}"


def _share(before: Ticks | None, after: Ticks | None, kind: int) -> str:
    """Return the share of one kind of ticks between two readings, or "n/a"."""
    if before is None or after is None or after[2] <= before[2]:
        return "n/a"
    return f"{100 * (after[kind] - before[kind]) / (after[2] - before[2]):.0f} %"


def cpu_by_program() -> dict[int, tuple[str, float]]:
    """Return each running process's name and the CPU seconds it has used, by pid.

    A process's figure includes its reaped children (cutime), so the backends a
    PostgreSQL server forked and the workers of `notifier send` count for their
    program after they exit. Empty off Linux.
    """
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    used: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it exited meanwhile: its parent's cutime has it
        # python3 and python are one program: a child's time moves to its parent's.
        name = text[text.index("(") + 1 : text.rindex(")")].rstrip("0123456789.")
        fields = text[text.rindex(")") + 2 :].split()
        # utime stime cutime cstime: the 14th-17th fields, 12th-15th after the name.
        seconds = sum(int(n) for n in fields[11:15]) / ticks_per_second
        used[int(stat.parent.name)] = (name, seconds)
    return used


def program_shares(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], top: int = 4
) -> str:
    """Return the CPU seconds the busiest programs used between two cpu_by_program() readings."""
    spent: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        spent[name] = spent.get(name, 0.0) + seconds - before.get(pid, (name, 0.0))[1]
    for pid, (name, seconds) in before.items():
        if pid not in after:
            # Its parent's cutime now holds its whole life: take off what came before.
            spent[name] = spent.get(name, 0.0) - seconds
    busiest = sorted(spent.items(), key=lambda item: -item[1])[:top]
    shown = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in busiest if seconds >= 0.5)
    return shown or "under 0.5 s for every program"


class PeakRss:
    """The peak RSS of the largest process among this one and its descendants, over a stage.

    On entry this process's high-water mark is reset (/proc/self/clear_refs),
    so what an earlier stage or the set-up used does not count; a thread reads
    the high-water mark (VmHWM) of every descendant every interval seconds, so
    a child that grows in its last interval before exiting is missed by that
    much. Off Linux, mib is the process's peak since it started.

        with PeakRss() as peak:
            ...  # the measured work
        print(f"{peak.mib:.0f} MiB")
    """

    def __init__(self, interval: float = 0.2) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._children_kib = 0
        self.mib = 0.0

    def __enter__(self) -> PeakRss:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        own = _high_water_kib(os.getpid())
        if own is None:
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.mib = max(own, self._children_kib) / 1024

    def _sample(self) -> None:
        while True:
            for pid in _descendants(os.getpid()):
                self._children_kib = max(self._children_kib, _high_water_kib(pid) or 0)
            if self._stop.wait(self._interval):
                return


def _descendants(root: int) -> list[int]:
    """Return the pids of every running descendant of root (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parent = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _high_water_kib(pid: int) -> int | None:
    """Return a process's peak RSS so far (VmHWM) in KiB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
