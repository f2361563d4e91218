"""aiortc as an independent WebRTC participant for interop tests.

``AiortcPeer`` follows the SFU's two-pc model, like ``BrowserPeer``: a SEND pc that offers
sendonly synthetic audio/video and applies the server's answer, and a RECV pc that answers
server offers (repeatably) and decodes whatever arrives, counting frames per track.

Loopback candidates: aioice's ``get_host_addresses`` deliberately skips 127.0.0.1, so on its
own aiortc offers only the machine's LAN addresses, which loopback-only tests must not use.
``use_loopback_candidates()`` replaces that module-level function (aiortc looks it up at
gather time) with one returning only ``127.0.0.1``. This is process-wide and is meant for
test clients only: the SFU does its own ICE and never imports aioice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError

Signal = Callable[[str], Awaitable[str]]
VideoCodec = Literal["vp8", "h264"]

WIDTH = 640
HEIGHT = 480
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.020
TONE_HZ = 400  # 48000 / 400 = 120 samples: a 20 ms frame holds exactly 8 periods


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def use_loopback_candidates() -> None:
    """Make aioice gather host candidates on 127.0.0.1 only (idempotent, process-wide)."""
    aioice.ice.get_host_addresses = _loopback_host_addresses  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# Synthetic sources


class MovingBarsTrack(VideoStreamTrack):
    """640x480 I420 frames at 30 fps whose luma gradient scrolls a few pixels per frame."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma, cb, cr = frame.planes
        shift = 4 * self._index
        row = bytes((x + shift) & 0xFF for x in range(self.width))
        luma.update(_plane(row, luma.line_size, self.height))
        chroma_w, chroma_h = (self.width + 1) // 2, (self.height + 1) // 2
        cb.update(_plane(bytes([(self._index * 3) & 0xFF]) * chroma_w, cb.line_size, chroma_h))
        cr.update(_plane(bytes([128]) * chroma_w, cr.line_size, chroma_h))
        frame.pts = pts
        frame.time_base = time_base
        self._index += 1
        return frame


def _plane(row: bytes, line_size: int, rows: int) -> bytes:
    return (row + bytes(line_size - len(row))) * rows


def _tone_frame_bytes() -> bytes:
    samples = int(AUDIO_RATE * AUDIO_PTIME)
    values = (int(8000 * math.sin(2 * math.pi * TONE_HZ * i / AUDIO_RATE)) for i in range(samples))
    return struct.pack(f"<{samples}h", *values)


class ToneTrack(MediaStreamTrack):
    """A 400 Hz tone, 48 kHz mono s16, in 20 ms frames paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._samples = int(AUDIO_RATE * AUDIO_PTIME)
        self._payload = _tone_frame_bytes()
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._samples
            delay = self._start + self._pts / AUDIO_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(self._payload)
        frame.pts = self._pts
        frame.sample_rate = AUDIO_RATE
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


# ---------------------------------------------------------------------------------------------
# Peer


@dataclass
class ReceivedTrack:
    """What the RECV pc decoded from one remote track."""

    kind: str
    frames: int = 0
    width: int = 0
    height: int = 0
    ended: bool = False


def _codec_preferences(codec: VideoCodec) -> list[Any]:
    wanted = {"vp8": "video/VP8", "h264": "video/H264"}[codec]
    codecs = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for c in codecs if c.mimeType.lower() == wanted.lower()]
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
    return chosen + rtx


class AiortcPeer:
    """An aiortc participant with a SEND pc (client offers) and a RECV pc (server offers)."""

    def __init__(self, name: str = "aiortc") -> None:
        use_loopback_candidates()
        self.name = name
        self.send_pc: RTCPeerConnection | None = None
        self.recv_pc: RTCPeerConnection | None = None
        self.received: dict[str, ReceivedTrack] = {}
        self.sources: list[MediaStreamTrack] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _new_pc() -> RTCPeerConnection:
        # max-bundle: the SFU bundles everything on one transport; with aiortc's default
        # ("balanced") a re-offer adding two video sections left the second unconnected.
        return RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )

    async def publish(
        self, signal: Signal, *, video: VideoCodec | None = "vp8", audio: bool = True
    ) -> None:
        """Offer sendonly tracks (synthetic video in ``video`` codec, tone audio) on the
        SEND pc, pass the offer to ``signal`` and apply the answer it returns."""
        if self.send_pc is not None:
            raise RuntimeError("already publishing")
        pc = self.send_pc = self._new_pc()
        if audio:
            tone = ToneTrack()
            self.sources.append(tone)
            pc.addTransceiver(tone, direction="sendonly")
        if video is not None:
            bars = MovingBarsTrack()
            self.sources.append(bars)
            transceiver = pc.addTransceiver(bars, direction="sendonly")
            transceiver.setCodecPreferences(_codec_preferences(video))
        # aiortc gathers all candidates inside setLocalDescription: the SDP is complete.
        await pc.setLocalDescription(await pc.createOffer())
        answer = await signal(pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def _recv_pc(self) -> RTCPeerConnection:
        if self.recv_pc is None:
            pc = self.recv_pc = self._new_pc()

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                task = asyncio.create_task(self._consume(track))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        return self.recv_pc

    async def subscribe_offer(self, offer_sdp: str) -> str:
        """Apply a server offer to the RECV pc and return the answer (repeatable)."""
        pc = self._recv_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def _consume(self, track: MediaStreamTrack) -> None:
        entry = self.received.setdefault(track.id, ReceivedTrack(kind=track.kind))
        try:
            while True:
                frame = await track.recv()
                entry.frames += 1
                if isinstance(frame, av.VideoFrame):
                    entry.width = frame.width
                    entry.height = frame.height
        except MediaStreamError:
            entry.ended = True

    def connection_states(self) -> dict[str, dict[str, str] | None]:
        """Same shape as ``BrowserPeer.connection_states``."""

        def state(pc: RTCPeerConnection | None) -> dict[str, str] | None:
            if pc is None:
                return None
            return {
                "connectionState": pc.connectionState,
                "iceConnectionState": pc.iceConnectionState,
                "signalingState": pc.signalingState,
            }

        return {"send": state(self.send_pc), "recv": state(self.recv_pc)}

    def video_tracks(self) -> list[ReceivedTrack]:
        return [t for t in self.received.values() if t.kind == "video"]

    async def wait_for(
        self,
        predicate: Callable[[AiortcPeer], bool],
        timeout: float = 15.0,
        interval: float = 0.1,
    ) -> None:
        """Poll ``predicate(self)`` until it holds; raise ``TimeoutError`` at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"{self.name}: condition not met within {timeout}s; received "
                    f"{self.received}; states {self.connection_states()}"
                )
            await asyncio.sleep(interval)

    async def close(self) -> None:
        for pc in (self.send_pc, self.recv_pc):
            if pc is not None:
                await pc.close()
        for source in self.sources:
            source.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
