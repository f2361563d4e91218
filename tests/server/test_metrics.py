"""``GET /metrics``: off without a token, bearer token checked, Prometheus text with the
server's and every media worker's figures (a real server with a real worker)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from incamera.config import Settings

from .conftest import RunningServer

TOKEN = "scrape-me-if-you-can-0123"


@pytest.fixture
def settings(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    token = getattr(request, "param", TOKEN)  # parametrize(..., indirect=True) for another
    return make_settings(metrics={"token": token} if token else {})


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_need_the_token_and_show_server_and_worker_figures(server: RunningServer):
    client = server.client
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"

    created = await client.post("/api/meetings")
    assert created.status_code == 201
    page = await client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain; version=")
    assert page.headers["cache-control"] == "no-store"
    samples = _samples(page.text)
    info = {labels: value for (name, labels), value in samples.items() if name == "incamera_info"}
    assert list(info.values()) == [1.0]
    assert dict(next(iter(info)))["fanout_kernel"] == "c"
    assert samples[("incamera_ready", ())] == 1.0
    assert samples[("incamera_conferences", ())] == 0.0  # created, nobody joined yet
    assert samples[("incamera_participants", ())] == 0.0
    worker = (("worker", "0"),)
    assert samples[("incamera_media_worker_up", worker)] == 1.0
    assert ("incamera_media_rtp_sent_total", worker) in samples
    assert ("incamera_media_srtp_auth_failures_total", worker) in samples
    assert 0 <= samples[("incamera_media_load_percent", worker)] <= 100
    # Nothing personal or identifying: no meeting id anywhere.
    assert created.json()["id"] not in page.text


@pytest.mark.parametrize("settings", [None], indirect=True)
async def test_metrics_are_off_without_a_token(server: RunningServer) -> None:
    refused = await server.client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 404
