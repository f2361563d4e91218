"""``GET /metrics``: the server's figures in the Prometheus text format, for operators.

Off until ``[metrics] token`` is set; a scraper then sends ``Authorization: Bearer
<token>`` (a reverse proxy in front of the server makes every client look local, so the
address alone cannot be the check). Each scrape asks every media worker for its counters
(at most ``WORKER_TIMEOUT`` seconds each; a worker that does not answer shows as down).
Nothing personal is exported: counts only, no meeting ids, names or addresses.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from incamera import __version__
from incamera.media import fanout_kernel
from incamera.media.errors import MediaError
from incamera.media.process import WorkerClient
from incamera.signalling.conferences import Conferences

from .context import ServerContext

log = structlog.get_logger(__name__)

WORKER_TIMEOUT = 2.0
NO_STORE = {"cache-control": "no-store"}
# Worker figures that are levels, not running totals (media/worker.py: stats).
WORKER_GAUGES = {"load_percent"}


@dataclass
class Snapshot:
    """What one scrape exports, gathered before it is rendered."""

    ready: bool
    conferences: int
    participants: int
    waiting: int
    workers: dict[int, dict[str, int] | None] = field(default_factory=dict)  # None: down


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        info = GaugeMetricFamily(
            "incamera_info",
            "the server's version and media forwarding kernel",
            labels=["version", "fanout_kernel"],
        )
        info.add_metric([__version__, fanout_kernel.choice()], 1)
        yield info
        yield GaugeMetricFamily("incamera_ready", "1 once start-up finished", value=int(s.ready))
        yield GaugeMetricFamily(
            "incamera_conferences", "meetings with a live conference", value=s.conferences
        )
        yield GaugeMetricFamily(
            "incamera_participants", "participants in live conferences", value=s.participants
        )
        yield GaugeMetricFamily(
            "incamera_lobby_waiting", "people waiting in a lobby", value=s.waiting
        )
        up = GaugeMetricFamily(
            "incamera_media_worker_up", "1 if the worker answered", labels=["worker"]
        )
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for worker_id, counters in sorted(s.workers.items()):
            label = [str(worker_id)]
            up.add_metric(label, 0 if counters is None else 1)
            for name, value in sorted((counters or {}).items()):
                family = families.get(name)
                if family is None:
                    help_text = f"media worker counter {name} (media/counters.py)"
                    if name in WORKER_GAUGES:
                        family = GaugeMetricFamily(
                            f"incamera_media_{name}", help_text, labels=["worker"]
                        )
                    else:
                        family = CounterMetricFamily(
                            f"incamera_media_{name}", help_text, labels=["worker"]
                        )
                    families[name] = family
                family.add_metric(label, value)
        yield up
        yield from families.values()


async def _worker_counters(context: ServerContext) -> dict[int, dict[str, int] | None]:
    supervisor = context.media
    if supervisor is None:
        return {}
    workers = dict(supervisor.workers)

    async def one(client: WorkerClient) -> dict[str, int] | None:
        try:
            stats = await asyncio.wait_for(client.stats(), WORKER_TIMEOUT)
        except (TimeoutError, MediaError, ConnectionError, EOFError, OSError):
            return None
        return dict(stats.counters)

    answers = await asyncio.gather(*(one(client) for client in workers.values()))
    return dict(zip(workers, answers, strict=True))


async def metrics(request: Request) -> Response:
    context = ServerContext.of(request.app)
    token = context.settings.metrics.token
    if token is None:
        return PlainTextResponse("Not Found", status_code=404)
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return PlainTextResponse(
            "Unauthorized", status_code=401, headers={"www-authenticate": "Bearer"}
        )
    conferences: Conferences = request.app.state.conferences
    live, participants, waiting = conferences.census()
    snapshot = Snapshot(
        ready=context.ready,
        conferences=live,
        participants=participants,
        waiting=waiting,
        workers=await _worker_counters(context),
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)


routes = [Route("/metrics", metrics, methods=["GET"])]
