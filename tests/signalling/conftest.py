"""Fixtures for the signalling tests: a real server (uvicorn on an ephemeral port, one media
worker on a free UDP port) and a helper that creates meetings on it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from starlette.applications import Starlette

from incamera.config import ENV_PREFIX, load_settings
from incamera.server.app import create_app
from support.aiortc_peer import AiortcPeer
from support.ports import free_udp_port_range


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@dataclass
class LiveServer:
    app: Starlette
    port: int
    http: httpx.AsyncClient

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def new_meeting(self, *, e2ee: bool = True) -> str:
        """Create a meeting; returns its link on this server (``http://127.0.0.1:P/m/<id>``).

        ``e2ee=False``: a meeting without end-to-end encryption (the test servers allow it),
        where the plain ``chat`` message works.
        """
        response = await self.http.post("/api/meetings", json={"e2ee": e2ee})
        assert response.status_code == 201, response.text
        return f"{self.base}/m/{response.json()['id']}"


async def serve(app: Starlette) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


@pytest_asyncio.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async for server in _live_server(tmp_path, hooks=False):
        yield server


@pytest_asyncio.fixture
async def hooks_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """``live_server`` with ``testing.hooks`` on (``hello.test_skip_mls`` accepted)."""
    async for server in _live_server(tmp_path, hooks=True):
        yield server


async def _live_server(tmp_path: Path, *, hooks: bool) -> AsyncIterator[LiveServer]:
    base = free_udp_port_range(1)
    overrides: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "media": {"workers": 1, "port_min": base, "port_max": base},
        "e2ee": {"allow_unencrypted": True},
        "testing": {"hooks": hooks},
    }
    app = create_app(load_settings(None, overrides))
    server, task, port = await serve(app)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        try:
            yield LiveServer(app, port, http)
        finally:
            server.should_exit = True
            await task


class BundledAiortcPeer(AiortcPeer):
    """``AiortcPeer`` with ``bundlePolicy=max-bundle``, like browsers talking to an SFU.

    With aiortc's default ("balanced"), a remote offer that brings two video m-sections at
    once leaves the second one on its own, never started transport (aiortc marks it bundled
    to the first video transceiver's transport before applying the BUNDLE group), so that
    track never decodes. One transport for everything avoids that.
    """

    @staticmethod
    def _new_pc() -> RTCPeerConnection:
        return RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )


@pytest_asyncio.fixture
async def peers() -> AsyncIterator[Callable[[str], AiortcPeer]]:
    """A factory of :class:`BundledAiortcPeer`, all closed after the test."""
    made: list[AiortcPeer] = []

    def make(name: str) -> AiortcPeer:
        peer = BundledAiortcPeer(name)
        made.append(peer)
        return peer

    try:
        yield make
    finally:
        for peer in made:
            await peer.close()
