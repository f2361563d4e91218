"""The Supervisor: starts one media worker process per core, restarts a crashed one, and
places routers (meetings) on workers.

A worker that dies loses its routers and transports (media state is per process); the
supervisor starts a replacement on the same UDP port and reports ``WorkerRestarted`` with
the router ids that were on it, so the control plane can re-create them and have clients
reconnect (ICE restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from .errors import MediaError
from .process import WorkerClient, WorkerConfig

RESTART_DELAY = 0.5  # seconds before a crashed worker is started again
MAX_RESTART_DELAY = 30.0


@dataclass(frozen=True, slots=True)
class WorkerRestarted:
    worker_id: int
    exit_code: int | None
    lost_routers: tuple[str, ...]


class Supervisor:
    def __init__(
        self,
        workers: int | None = None,
        listen_ip: str = "127.0.0.1",
        port_min: int = 40000,
        port_max: int = 40099,
        announced_ips: tuple[str, ...] = (),
        on_event: Callable[[int, object], None] | None = None,
        allowed_remote_networks: tuple[str, ...] = (),
        tap_path: str | None = None,
    ) -> None:
        count = workers or os.cpu_count() or 1
        if port_max - port_min + 1 < count:
            raise MediaError(
                f"the media port range {port_min}-{port_max} is smaller than {count} workers"
            )
        self._on_event = on_event or (lambda worker_id, event: None)
        self.configs = [
            WorkerConfig(
                i, listen_ip, port_min + i, announced_ips, allowed_remote_networks, tap_path
            )
            for i in range(count)
        ]
        self.workers: dict[int, WorkerClient] = {}
        self._routers: dict[str, int] = {}  # router id -> worker id
        self._watchers: set[asyncio.Task[None]] = set()
        self._closing = False
        self.restarts = 0

    async def start(self) -> None:
        await asyncio.gather(*(self._start_worker(config) for config in self.configs))

    async def _start_worker(self, config: WorkerConfig) -> None:
        client = WorkerClient(config, self._on_event)
        await client.start()
        self.workers[config.worker_id] = client
        task = asyncio.create_task(self._watch(client))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, client: WorkerClient) -> None:
        assert client.exited is not None
        code = await client.exited
        if self._closing:
            return
        lost = tuple(r for r, w in self._routers.items() if w == client.worker_id)
        for router_id in lost:
            del self._routers[router_id]
        self.restarts += 1
        delay = RESTART_DELAY
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._start_worker(client.config)
                break
            except (OSError, TimeoutError, MediaError):
                delay = min(delay * 2, MAX_RESTART_DELAY)
        self._on_event(client.worker_id, WorkerRestarted(client.worker_id, code, lost))

    async def stop(self) -> None:
        self._closing = True
        for task in list(self._watchers):
            task.cancel()
        for task in list(self._watchers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.workers.clear()

    async def create_router(self, router_id: str | None = None) -> tuple[str, WorkerClient]:
        """Place a new router on the worker hosting the fewest routers."""
        if not self.workers:
            raise MediaError("no media worker is running")
        load = {wid: 0 for wid in self.workers}
        for wid in self._routers.values():
            if wid in load:
                load[wid] += 1
        worker_id = min(load, key=lambda wid: (load[wid], wid))
        worker = self.workers[worker_id]
        router_id = await worker.create_router(router_id)
        self._routers[router_id] = worker_id
        return router_id, worker

    def worker_for(self, router_id: str) -> WorkerClient:
        try:
            return self.workers[self._routers[router_id]]
        except KeyError:
            raise MediaError(f"no router {router_id}") from None

    async def close_router(self, router_id: str) -> None:
        worker = self.worker_for(router_id)
        del self._routers[router_id]
        with contextlib.suppress(MediaError):
            await worker.close_router(router_id)
