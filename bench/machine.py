"""How much of the CPU the hypervisor took while a figure was measured (Linux /proc/stat).

On a shared virtual machine the host can run other guests on "our" cores: that
time is counted as steal. A figure taken while steal was high says more about
the neighbours than about the code, so the benchmarks print it beside each one.

    before = cpu_ticks()
    ...  # the measured work
    print(steal_share(before, cpu_ticks()))  # "12 %", or "n/a" off Linux
"""

from __future__ import annotations

from pathlib import Path

_STAT = Path("/proc/stat")
_STEAL = 7  # the eighth number on the "cpu" line: user nice system idle iowait irq softirq steal


def cpu_ticks() -> tuple[int, int] | None:
    """Return (steal, total) clock ticks of all CPUs since boot, or None without /proc/stat."""
    try:
        first = _STAT.read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(n) for n in first[1:9]]  # guest time is counted in user already
    return ticks[_STEAL], sum(ticks)


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> str:
    """Return the share of CPU time stolen between two cpu_ticks() readings, as "12 %"."""
    if before is None or after is None or after[1] <= before[1]:
        return "n/a"
    return f"{100 * (after[0] - before[0]) / (after[1] - before[1]):.0f} %"
