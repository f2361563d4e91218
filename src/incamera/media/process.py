"""Running a Worker in its own process, and the typed client the control plane uses.

The parent and the worker process talk over a ``multiprocessing`` pipe: requests are
``(request_id, command, args, kwargs)``, replies ``(request_id, ok, value)``, and events
``(None, True, event)``. Only the commands in ``COMMANDS`` can be called. Everything that
crosses the pipe is a dataclass from ``api.py``/``rtp_parameters.py`` or a plain value.
The pipe carries pickles; both ends are our own processes, never the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .api import ConsumerInfo, DtlsParameters, TransportInfo, WorkerStats
from .errors import MediaError
from .rtp_parameters import RtpParameters

COMMANDS = frozenset(
    {
        "create_router",
        "close_router",
        "create_transport",
        "connect_transport",
        "close_transport",
        "restart_ice",
        "produce",
        "close_producer",
        "pause_producer",
        "consume",
        "close_consumer",
        "pause_consumer",
        "set_preferred_layer",
        "set_max_size",
        "request_keyframe",
        "stats",
        "consumer_stats",
        "cpu_seconds",
    }
)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker_id: int
    listen_ip: str
    port: int
    announced_ips: tuple[str, ...] = ()
    allowed_remote_networks: tuple[str, ...] = ()
    tap_path: str | None = None  # test-only: media/tap.py


def _worker_main(conn: multiprocessing.connection.Connection, config: WorkerConfig) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(_serve(conn, config))


async def _serve(conn: multiprocessing.connection.Connection, config: WorkerConfig) -> None:
    import time

    from .worker import Worker

    loop = asyncio.get_running_loop()
    stopped = loop.create_future()

    def emit(event: object) -> None:
        with contextlib.suppress(OSError, ValueError):
            conn.send((None, True, event))

    worker = Worker(
        config.worker_id,
        config.listen_ip,
        config.port,
        config.announced_ips,
        emit,
        allowed_remote_networks=config.allowed_remote_networks,
        tap_path=config.tap_path,
    )
    await worker.start()
    extra: dict[str, Callable[..., Any]] = {"cpu_seconds": time.process_time}

    def on_readable() -> None:
        try:
            while conn.poll():
                request_id, command, args, kwargs = conn.recv()
                try:
                    if command not in COMMANDS:
                        raise MediaError(f"unknown command {command!r}")
                    function = extra.get(command) or getattr(worker, command)
                    conn.send((request_id, True, function(*args, **kwargs)))
                except Exception as exc:  # reported to the caller, never fatal here
                    conn.send((request_id, False, f"{type(exc).__name__}: {exc}"))
        except (EOFError, OSError):
            if not stopped.done():
                stopped.set_result(None)

    loop.add_reader(conn.fileno(), on_readable)
    conn.send((None, True, ("ready", worker.port)))
    await stopped
    loop.remove_reader(conn.fileno())
    await worker.close()


class WorkerClient:
    """The control plane's handle on one worker process (async, typed)."""

    def __init__(
        self, config: WorkerConfig, on_event: Callable[[int, object], None] | None = None
    ) -> None:
        self.config = config
        self.port = config.port
        self._on_event = on_event or (lambda worker_id, event: None)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._conn: multiprocessing.connection.Connection | None = None
        self.process: multiprocessing.process.BaseProcess | None = None
        self._ready: asyncio.Future[int] | None = None
        self.exited: asyncio.Future[int | None] | None = None

    @property
    def worker_id(self) -> int:
        return self.config.worker_id

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        self._conn = parent
        self._ready = loop.create_future()
        self.exited = loop.create_future()
        self.process = context.Process(
            target=_worker_main,
            args=(child, self.config),
            name=f"incamera-media-{self.config.worker_id}",
            daemon=True,
        )
        self.process.start()
        child.close()
        loop.add_reader(parent.fileno(), self._on_readable)
        loop.add_reader(self.process.sentinel, self._on_exit)
        self.port = await asyncio.wait_for(self._ready, timeout)

    def _on_readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                request_id, ok, value = conn.recv()
                if request_id is None:
                    if isinstance(value, tuple) and value and value[0] == "ready":
                        if self._ready is not None and not self._ready.done():
                            self._ready.set_result(value[1])
                    else:
                        self._on_event(self.worker_id, value)
                    continue
                future = self._pending.pop(request_id, None)
                if future is not None and not future.done():
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(MediaError(value))
        except (EOFError, OSError):
            self._detach()

    def _on_exit(self) -> None:
        self._detach()
        if self.exited is not None and not self.exited.done():
            code = self.process.exitcode if self.process is not None else None
            self.exited.set_result(code)

    def _detach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        if self.process is not None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(self.process.sentinel)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(MediaError("the media worker exited"))
        self._pending.clear()

    async def _call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        if self._conn is None:
            raise MediaError("the media worker is not running")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._conn.send((request_id, command, args, kwargs))
        return await future

    async def stop(self, timeout: float = 5.0) -> None:
        process = self.process
        self._detach()
        if process is not None and process.is_alive():
            process.join(0)
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)  # type: ignore[arg-type]
            for _ in range(int(timeout / 0.05)):
                if not process.is_alive():
                    break
                await asyncio.sleep(0.05)
            if process.is_alive():
                process.kill()
            process.join(1)

    # -- the typed command API (see worker.Worker for the semantics) -----------------------

    async def create_router(self, router_id: str | None = None) -> str:
        result: str = await self._call("create_router", router_id)
        return result

    async def close_router(self, router_id: str) -> None:
        await self._call("close_router", router_id)

    async def create_transport(
        self, router_id: str, transport_id: str | None = None
    ) -> TransportInfo:
        result: TransportInfo = await self._call("create_transport", router_id, transport_id)
        return result

    async def connect_transport(
        self, transport_id: str, dtls_parameters: DtlsParameters, remote_ufrag: str | None = None
    ) -> None:
        await self._call("connect_transport", transport_id, dtls_parameters, remote_ufrag)

    async def restart_ice(self, transport_id: str) -> TransportInfo:
        result: TransportInfo = await self._call("restart_ice", transport_id)
        return result

    async def close_transport(self, transport_id: str) -> None:
        await self._call("close_transport", transport_id)

    async def produce(
        self, transport_id: str, rtp_parameters: RtpParameters, producer_id: str | None = None
    ) -> str:
        result: str = await self._call("produce", transport_id, rtp_parameters, producer_id)
        return result

    async def close_producer(self, producer_id: str) -> None:
        await self._call("close_producer", producer_id)

    async def pause_producer(self, producer_id: str, paused: bool = True) -> None:
        await self._call("pause_producer", producer_id, paused)

    async def consume(
        self,
        transport_id: str,
        producer_id: str,
        mid: str = "",
        consumer_id: str | None = None,
        paused: bool = False,
    ) -> ConsumerInfo:
        result: ConsumerInfo = await self._call(
            "consume", transport_id, producer_id, mid, consumer_id, paused
        )
        return result

    async def close_consumer(self, consumer_id: str) -> None:
        await self._call("close_consumer", consumer_id)

    async def pause_consumer(self, consumer_id: str, paused: bool = True) -> None:
        await self._call("pause_consumer", consumer_id, paused)

    async def set_preferred_layer(self, consumer_id: str, spatial_layer: int) -> None:
        await self._call("set_preferred_layer", consumer_id, spatial_layer)

    async def set_max_size(self, consumer_id: str, width: int, height: int) -> int:
        result: int = await self._call("set_max_size", consumer_id, width, height)
        return result

    async def request_keyframe(self, consumer_id: str) -> None:
        await self._call("request_keyframe", consumer_id)

    async def stats(self) -> WorkerStats:
        result: WorkerStats = await self._call("stats")
        return result

    async def consumer_stats(self, consumer_id: str) -> dict[str, int | None]:
        result: dict[str, int | None] = await self._call("consumer_stats", consumer_id)
        return result

    async def cpu_seconds(self) -> float:
        """CPU time the worker process has used (user + system)."""
        result: float = await self._call("cpu_seconds")
        return result
