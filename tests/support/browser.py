"""Headless Chromium participants for real media tests.

``launch_chromium()`` starts Debian's Chromium through Playwright with the flag set measured in
``/work/shared/notes/webrtc-facts.md`` and serves ``tests/support/static/`` from a small HTTP
server on 127.0.0.1 (a secure context, so getUserMedia works without TLS). Each
``BrowserPeer`` is one page in its own browser context, holding the two peer connections the
SFU uses: a SEND pc (the page offers) and a RECV pc (the server offers, the page answers).

The Python test plays the signalling server: ``publish`` hands the page's offer to an async
callable and applies whatever answer it returns; ``subscribe_offer`` applies a server offer
and returns the page's answer. Signalling is non-trickle: every SDP handed out carries all
candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from incamera.bench.chromium import CHROMIUM_FLAGS, find_chromium

STATIC_DIR = Path(__file__).parent / "static"


# Lifts Chromium's resolution-based cap on the number of simulcast layers.
NO_SIMULCAST_LAYER_LIMIT = "WebRTC-LegacySimulcastLayerLimit/Disabled/"

Signal = Callable[[str], Awaitable[str]]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Static file server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".json": "application/json",
        ".wasm": "application/wasm",
        "": "application/octet-stream",
    }

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticServer:
    """Serves a directory over HTTP on 127.0.0.1:<ephemeral> from a daemon thread."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="static-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Stats


def _int(row: dict[str, Any], key: str) -> int:
    value = row.get(key)
    return int(value) if isinstance(value, int | float) else 0


@dataclass(frozen=True)
class InboundRtp:
    """One ``inbound-rtp`` entry of the RECV pc (one received track)."""

    kind: str
    mid: str | None
    track_identifier: str | None
    frames_decoded: int
    frame_width: int
    frame_height: int
    packets_received: int
    packets_lost: int
    nack_count: int
    pli_count: int
    bytes_received: int
    retransmitted_packets_received: int | None
    mime_type: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> InboundRtp:
        rtx = row.get("retransmittedPacketsReceived")
        return cls(
            kind=str(row.get("kind", "")),
            mid=row.get("mid"),
            track_identifier=row.get("trackIdentifier"),
            frames_decoded=_int(row, "framesDecoded"),
            frame_width=_int(row, "frameWidth"),
            frame_height=_int(row, "frameHeight"),
            packets_received=_int(row, "packetsReceived"),
            packets_lost=_int(row, "packetsLost"),
            nack_count=_int(row, "nackCount"),
            pli_count=_int(row, "pliCount"),
            bytes_received=_int(row, "bytesReceived"),
            retransmitted_packets_received=int(rtx) if isinstance(rtx, int | float) else None,
            mime_type=row.get("mimeType"),
            raw=row,
        )


@dataclass(frozen=True)
class OutboundRtp:
    """One ``outbound-rtp`` entry of the SEND pc (one track, or one simulcast layer)."""

    kind: str
    mid: str | None
    rid: str | None
    bytes_sent: int
    packets_sent: int
    frame_width: int
    frame_height: int
    frames_encoded: int
    retransmitted_packets_sent: int
    nack_count: int
    pli_count: int
    mime_type: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboundRtp:
        return cls(
            kind=str(row.get("kind", "")),
            mid=row.get("mid"),
            rid=row.get("rid"),
            bytes_sent=_int(row, "bytesSent"),
            packets_sent=_int(row, "packetsSent"),
            frame_width=_int(row, "frameWidth"),
            frame_height=_int(row, "frameHeight"),
            frames_encoded=_int(row, "framesEncoded"),
            retransmitted_packets_sent=_int(row, "retransmittedPacketsSent"),
            nack_count=_int(row, "nackCount"),
            pli_count=_int(row, "pliCount"),
            mime_type=row.get("mimeType"),
            raw=row,
        )


@dataclass(frozen=True)
class PeerStats:
    inbound: list[InboundRtp]
    outbound: list[OutboundRtp]

    def inbound_video(self) -> list[InboundRtp]:
        return [s for s in self.inbound if s.kind == "video"]

    def inbound_audio(self) -> list[InboundRtp]:
        return [s for s in self.inbound if s.kind == "audio"]

    def outbound_video(self) -> list[OutboundRtp]:
        return [s for s in self.outbound if s.kind == "video"]

    def outbound_layer(self, rid: str) -> OutboundRtp | None:
        return next((s for s in self.outbound if s.rid == rid), None)


# ---------------------------------------------------------------------------------------------
# Playwright in its own thread
#
# Playwright objects belong to the event loop that created them, while pytest-asyncio gives
# every test a fresh loop. To share one Chromium across a whole session, Playwright runs in a
# dedicated thread with its own loop; every call hops there and back, so a test's coroutines
# (and the signalling callables it passes) stay on the test's own loop.


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="playwright", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Run ``coro`` on the Playwright loop; await the result from any other loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call_sync(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the Playwright loop and block this thread for the result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


# ---------------------------------------------------------------------------------------------
# Peers


class BrowserPeer:
    """One Chromium page with a SEND and a RECV peer connection (see ``peer.js``).

    Every method may be awaited from any event loop.
    """

    def __init__(self, name: str, thread: _LoopThread, context: Any, page: Any) -> None:
        self.name = name
        self._thread = thread
        self._context = context
        # Bound to the Playwright thread's loop: never touch it from a test's loop; use
        # ``evaluate`` instead.
        self._page = page
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))

    async def evaluate(self, script: str, arg: Any = None) -> Any:
        """Run ``page.evaluate(script, arg)`` in the page (escape hatch for ad-hoc checks)."""
        return await self._thread.call(self._page.evaluate(script, arg))

    async def _call(self, function: str, *args: Any) -> Any:
        return await self.evaluate(f"(args) => window.incamera.{function}(...args)", list(args))

    async def publish(
        self,
        signal: Signal,
        *,
        video: bool = True,
        audio: bool = True,
        simulcast: bool = False,
        width: int = 640,
        height: int = 480,
        video_codec: str | None = None,
        source: Literal["camera", "screen"] = "camera",
        maintain_resolution: bool = True,
    ) -> None:
        """Offer sendonly tracks on the SEND pc and apply the answer ``signal`` returns.

        The first call creates the SEND pc; later calls add more tracks (e.g. a screen
        share) to it and renegotiate.

        ``signal`` is an async callable ``offer_sdp -> answer_sdp`` (the test's stand-in for
        the signalling server). ``simulcast`` asks for three layers with rids q (1/4),
        h (1/2) and f (full); ``video_codec`` (e.g. ``"video/H264"``) restricts the offer to
        that codec plus rtx/red/ulpfec; ``source="screen"`` uses getDisplayMedia.
        ``maintain_resolution`` sets the video track's contentHint to "detail", so under CPU
        or bandwidth pressure the encoder drops frames rather than resolution.
        """
        opts = {
            "video": video,
            "audio": audio,
            "simulcast": simulcast,
            "width": width,
            "height": height,
            "videoCodec": video_codec,
            "source": source,
            "maintainResolution": maintain_resolution,
        }
        offer = await self._call("createPublishOffer", opts)
        answer = await signal(offer)
        await self._call("applyPublishAnswer", answer)

    async def subscribe_offer(self, offer_sdp: str) -> str:
        """Apply a server offer to the RECV pc and return the answer (repeatable)."""
        return str(await self._call("answerOffer", offer_sdp))

    async def stats(self) -> PeerStats:
        raw = await self._call("stats")
        return PeerStats(
            inbound=[InboundRtp.from_row(r) for r in raw["inbound"]],
            outbound=[OutboundRtp.from_row(r) for r in raw["outbound"]],
        )

    async def connection_states(self) -> dict[str, dict[str, str] | None]:
        """``{"send": {...} | None, "recv": {...} | None}`` with each pc's
        connectionState, iceConnectionState and signalingState (None: pc not created)."""
        result: dict[str, dict[str, str] | None] = await self._call("connectionStates")
        return result

    async def remote_element_count(self) -> int:
        """Number of <video>/<audio> elements currently rendering received tracks."""
        return int(await self._call("remoteElementCount"))

    async def wait_for(
        self,
        predicate: Callable[[PeerStats], bool],
        timeout: float = 15.0,
        interval: float = 0.2,
    ) -> PeerStats:
        """Poll ``stats()`` until ``predicate`` holds; raise ``TimeoutError`` at the deadline.

        The deadline only bounds the wait: tests assert on the stats, never on time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            stats = await self.stats()
            if predicate(stats):
                return stats
            if loop.time() >= deadline:
                states = await self.connection_states()
                raise TimeoutError(
                    f"{self.name}: condition not met within {timeout}s; last stats {stats}; "
                    f"states {states}; console {self.console[-20:]}"
                )
            await asyncio.sleep(interval)

    async def _close_in_thread(self) -> None:
        with contextlib.suppress(Exception):
            await self._page.evaluate("() => window.incamera.close()")
        with contextlib.suppress(Exception):
            await self._context.close()

    async def close(self) -> None:
        await self._thread.call(self._close_in_thread())


class PeerGroup:
    """Peers made for one test; ``close()`` closes them all."""

    def __init__(self, harness: ChromiumHarness) -> None:
        self._harness = harness
        self._peers: list[BrowserPeer] = []

    async def new_peer(self, name: str | None = None) -> BrowserPeer:
        peer = await self._harness.new_peer(name)
        self._peers.append(peer)
        return peer

    async def close(self) -> None:
        peers, self._peers = self._peers, []
        for peer in peers:
            await peer.close()


class ChromiumHarness:
    """A running headless Chromium plus the static server; makes ``BrowserPeer`` pages.

    ``start()``/``stop()`` are synchronous so a session-scoped pytest fixture can own it;
    ``launch_chromium()`` wraps them as an async context manager.
    """

    def __init__(
        self,
        *,
        field_trials: str | None = None,
        extra_args: tuple[str, ...] = (),
        executable: str | None = None,
    ) -> None:
        found = executable or find_chromium()
        if found is None:
            raise FileNotFoundError("no chromium binary found (apt-get install chromium)")
        self.executable = found
        self.args = [*CHROMIUM_FLAGS, *extra_args]
        if field_trials:
            self.args.append(f"--force-fieldtrials={field_trials}")
        self.server = StaticServer()
        self._thread: _LoopThread | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self._count = 0

    def start(self, timeout: float = 60.0) -> None:
        self.server.start()
        self._thread = _LoopThread()
        try:
            self._thread.call_sync(self._launch(), timeout)
        except BaseException:
            self.stop()
            raise

    async def _launch(self) -> None:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=self.executable, args=self.args, headless=True
        )

    async def _shutdown(self) -> None:
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await self._browser.close()
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()

    def stop(self) -> None:
        if self._thread is not None:
            with contextlib.suppress(Exception):
                self._thread.call_sync(self._shutdown(), timeout=30)
            self._thread.stop()
            self._thread = None
        self.server.stop()

    async def _open_page(self, name: str) -> BrowserPeer:
        assert self._thread is not None
        context = await self._browser.new_context()
        page = await context.new_page()
        peer = BrowserPeer(name, self._thread, context, page)
        await page.goto(f"{self.server.base_url}/peer.html")
        await page.wait_for_function("window.incameraReady === true", timeout=10_000)
        return peer

    async def new_peer(self, name: str | None = None) -> BrowserPeer:
        """Open a fresh page (own browser context) on peer.html."""
        if self._thread is None:
            raise RuntimeError("ChromiumHarness is not started")
        self._count += 1
        return await self._thread.call(self._open_page(name or f"peer{self._count}"))

    def group(self) -> PeerGroup:
        return PeerGroup(self)


@contextlib.asynccontextmanager
async def launch_chromium(
    *,
    field_trials: str | None = None,
    extra_args: tuple[str, ...] = (),
    executable: str | None = None,
) -> AsyncIterator[ChromiumHarness]:
    """Launch headless Chromium and the static server; close both on exit.

    ``field_trials`` becomes ``--force-fieldtrials=...`` (e.g. ``NO_SIMULCAST_LAYER_LIMIT``).
    Raises ``FileNotFoundError`` if no Chromium binary exists.
    """
    harness = ChromiumHarness(
        field_trials=field_trials, extra_args=extra_args, executable=executable
    )
    await asyncio.to_thread(harness.start)
    try:
        yield harness
    finally:
        await asyncio.to_thread(harness.stop)
