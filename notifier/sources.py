"""Source health: which configured sources are due, and one report row per source."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from notifier.models import SourceState
from notifier.settings import Settings, SourceConfig


def due_sources(
    sources: Sequence[SourceConfig], health: Sequence[SourceState], now: datetime
) -> list[SourceConfig]:
    """Return the enabled sources whose poll interval has passed since they were last checked."""
    checked = {h.name: h.last_checked_at for h in health}
    return [
        s
        for s in sources
        if s.enabled and ((last := checked.get(s.name)) is None or now - last >= s.every)
    ]


def source_report(
    settings: Settings, health: Sequence[SourceState], now: datetime
) -> list[dict[str, Any]]:
    """Return one row per source (configured first, then ad hoc) with its health."""
    known = {h.name: h for h in health}
    configured = {s.name: s for s in settings.sources}
    due = {s.name for s in due_sources(settings.sources, health, now)}
    rows = []
    for name in [*configured, *sorted(set(known) - set(configured))]:
        state, config = known.get(name), configured.get(name)
        failures = state.consecutive_failures if state else 0
        rows.append(
            {
                "name": name,
                "kind": config.kind if config else state.kind if state else "",
                "url": config.url if config else state.url if state else "",
                "every": str(config.every) if config else None,
                "due": name in due,
                "last_checked_at": state.last_checked_at if state else None,
                "last_status": state.last_status if state else None,
                "last_papers": state.last_papers if state else None,
                "last_error": state.last_error if state else None,
                "consecutive_failures": failures,
                "failing": failures >= settings.failure_alert_after,
            }
        )
    return rows
