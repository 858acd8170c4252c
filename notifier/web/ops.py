"""What operators and their monitoring read: /healthz and /metrics (Prometheus text format)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from notifier.errors import NotifierError
from notifier.models import DigestStatus
from notifier.storage.protocols import ReportStore
from notifier.web.context import WebContext

# A scrape every 15 s must not count a large digests table each time.
METRICS_TTL = 30.0


def ops_router(context: WebContext) -> APIRouter:
    """Return /healthz and /metrics."""
    router = APIRouter(include_in_schema=False)
    storage = context.storage
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StorageCollector(storage))

    @router.api_route("/healthz", methods=["GET", "HEAD"])
    def healthz() -> JSONResponse:
        """Answer 200 when the database answers and its schema is current, else 503."""
        try:
            revision = storage.schema_revision()
        except NotifierError as e:
            return JSONResponse({"status": "unhealthy", "error": str(e)}, status_code=503)
        head = storage.head_revision()
        if revision != head:
            return JSONResponse(
                {
                    "status": "unhealthy",
                    "error": f"database schema is at {revision}, not {head}: "
                    "run notifier db upgrade",
                },
                status_code=503,
            )
        return JSONResponse({"status": "ok", "schema": revision})

    refused = _metrics_refusal(context)

    @router.get("/metrics")
    def metrics(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Response:
        """Return the counters in Prometheus' text format (to the admin token's holder)."""
        if (answer := refused(credentials)) is not None:
            return answer
        try:
            data = generate_latest(registry)
        except NotifierError as e:
            return Response(f"# database unavailable: {e}\n", status_code=503)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return router


_BEARER = HTTPBearer(auto_error=False)


def _metrics_refusal(
    context: WebContext,
) -> Callable[[HTTPAuthorizationCredentials | None], Response | None]:
    """Return the check /metrics makes: None to answer, else the refusal to send."""
    settings = context.settings
    token = settings.admin_token

    def refused(credentials: HTTPAuthorizationCredentials | None) -> Response | None:
        if settings.metrics_public:
            return None
        if token is None:
            return PlainTextResponse(
                "/metrics needs the admin token: set NOTIFIER_ADMIN_TOKEN "
                "(or metrics_public = true to open it to anyone)\n",
                status_code=403,
            )
        given = credentials.credentials.strip().encode() if credentials else b""
        if credentials is None or not hmac.compare_digest(given, token.get_secret_value().encode()):
            return PlainTextResponse(
                "missing or wrong bearer token\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    return refused


class StorageCollector(Collector):
    """Read notifier's counters from the database (cached METRICS_TTL seconds)."""

    def __init__(self, storage: ReportStore) -> None:
        self.storage = storage
        self._cached: tuple[float, list[Any]] | None = None

    def collect(self) -> Any:
        """Yield the metric families, from the cache when it is fresh."""
        now = time.monotonic()
        if self._cached is None or self._cached[0] < now - METRICS_TTL:
            self._cached = (now, list(self._families()))
        yield from self._cached[1]

    def _families(self) -> Any:
        """Build every metric family from one read of the counts."""
        figures = self.storage.metrics_figures()
        papers = CounterMetricFamily("notifier_papers_ingested", "Distinct papers ingested.")
        papers.add_metric([], figures.papers)
        yield papers
        composed = CounterMetricFamily(
            "notifier_digests_composed", "Digests composed (with papers, or an empty-period note)."
        )
        composed.add_metric([], figures.composed)
        yield composed
        sent = CounterMetricFamily("notifier_digests_sent", "Digests accepted by the mail server.")
        sent.add_metric([], figures.digests.get(DigestStatus.SENT, 0))
        yield sent
        failed = CounterMetricFamily("notifier_digests_failed", "Digests that failed for good.")
        failed.add_metric([], figures.digests.get(DigestStatus.FAILED, 0))
        yield failed
        by_status = GaugeMetricFamily(
            "notifier_digests", "Digests by delivery status.", labels=["status"]
        )
        for status, count in sorted(figures.digests.items()):
            by_status.add_metric([status], count)
        yield by_status
        subscribers = GaugeMetricFamily(
            "notifier_subscribers", "Subscribers by status.", labels=["status"]
        )
        for status, count in sorted(figures.subscribers.items()):
            subscribers.add_metric([status], count)
        yield subscribers
        ordered = sorted(figures.latencies)
        latency = GaugeMetricFamily(
            "notifier_send_latency_seconds",
            "From a digest being composed to the mail server accepting it: quantiles over "
            "the digests sent in the last hour.",
            labels=["quantile"],
        )
        for q in (0.5, 0.9, 0.99):
            if ordered:
                at = min(len(ordered) - 1, int(q * len(ordered)))
                latency.add_metric([str(q)], ordered[at])
        yield latency
        window = GaugeMetricFamily(
            "notifier_send_latency_digests", "How many digests the latency quantiles cover."
        )
        window.add_metric([], len(ordered))
        yield window
