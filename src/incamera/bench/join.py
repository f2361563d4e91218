"""``incamera bench join``: how long a person waits from opening a meeting link to seeing video.

The benchmark runs what a user meets, end to end on this machine:

1. ``incamera serve`` in a subprocess (its own data directory in a temporary folder, a free
   HTTP port, one media worker on a free UDP port), and a meeting created with
   ``POST /api/meetings``;
2. headless Chromium (Debian's, through Playwright, fake camera and microphone) with one
   participant who joins and publishes (camera with simulcast, microphone);
3. ``--joins`` times: a new page in a new browser context (a new person: empty cache; with
   ``--cache warm`` a new page in one shared context, a returning person) opens the
   meeting link with ``#name=...&autojoin=1``, which skips the pre-join screen, and the
   time is measured from the page's navigation start (``performance.timeOrigin``) to the
   first remote video frame it presents. The joiner then leaves (``window.incamera.leave()``)
   before the next one comes. ``--warmup`` joins before those are not counted.

The first frame is taken with ``requestVideoFrameCallback`` (``--method rvfc``, the default):
an init script, run before the page's own scripts, records the receive peer connection's
tracks and asks every ``<video>`` that gets a ``srcObject`` for its next frames; the first one
presented from a remote track gives the sample (``presentationTime``, relative to the time
origin). ``--method stats`` instead polls ``window.incamera.stats()`` in the page every
20 ms until a remote participant has ``videoFramesDecoded > 0``.

Besides the samples, the median time of each step of a join is reported (``phases_ms``),
all relative to navigation start: the page's ``DOMContentLoaded``, the first peer connection
created, the send peer connection connected (ICE and DTLS), the first remote video track
(the subscribe offer applied), the receive peer connection's ICE connected, then its DTLS
too (``recv_pc_connected``), and the first frame; also the steps the page marks itself
(``E2EE_PHASES``): the signalling ``welcome``, the ``subscribe`` offer received and
answered, and in an end-to-end encrypted meeting the MLS key package sent, the MLS Welcome
received, the first SFrame key installed and the first key frame request.

Output: a summary, or with ``--json`` one JSON object with ``p50_ms``, ``p90_ms``, ``joins``,
``samples_ms`` and the rest. Playwright (a test dependency) and Chromium must be installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from incamera.bench.chromium import CHROMIUM_FLAGS, find_chromium

GOAL_P50_MS = 1000.0
STARTUP_TIMEOUT = 60.0  # server start-up, publisher joined and publishing
JOIN_TIMEOUT = 30.0  # one join, link to first frame
STATS_POLL_MS = 20


# Runs in every joiner's page before its own scripts. Records, in window.__joinBench, the
# times (ms since the time origin) of the steps of a join and the first presented remote
# video frame. Remote tracks are those a peer connection's "track" event delivers.
INIT_SCRIPT = """
(() => {
  const bench = (window.__joinBench = { marks: {}, frame: null, statsFrame: null });
  const mark = (name) => {
    if (!(name in bench.marks)) bench.marks[name] = performance.now();
  };
  document.addEventListener("DOMContentLoaded", () => mark("dom_content_loaded"));
  const remote = new WeakSet();
  const Native = window.RTCPeerConnection;
  if (Native) {
    class Watched extends Native {
      constructor(...args) {
        super(...args);
        mark("first_pc_created");
        let receives = false;
        this.addEventListener("track", (event) => {
          receives = true;
          remote.add(event.track);
          mark("first_remote_track");
          if (event.track.kind === "video") mark("first_remote_video_track");
        });
        this.addEventListener("iceconnectionstatechange", () => {
          if (["connected", "completed"].includes(this.iceConnectionState)) {
            mark(receives ? "recv_ice_connected" : "send_ice_connected");
          }
        });
        this.addEventListener("connectionstatechange", () => {
          if (this.connectionState === "connected") {
            mark(receives ? "recv_pc_connected" : "send_pc_connected");
          }
        });
      }
    }
    window.RTCPeerConnection = Watched;
  }
  const watched = new WeakSet();
  const watch = (video) => {
    if (watched.has(video) || !video.requestVideoFrameCallback) return;
    watched.add(video);
    const onFrame = (now, meta) => {
      const stream = video.srcObject;
      const fromRemote =
        stream instanceof MediaStream && stream.getVideoTracks().some((t) => remote.has(t));
      if (fromRemote && bench.frame === null) {
        bench.frame = {
          presentation_ms: meta.presentationTime,
          callback_ms: now,
          width: meta.width,
          height: meta.height,
        };
        return;
      }
      if (bench.frame === null) video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  const srcObject = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, "srcObject");
  Object.defineProperty(HTMLMediaElement.prototype, "srcObject", {
    configurable: true,
    enumerable: srcObject.enumerable,
    get() {
      return srcObject.get.call(this);
    },
    set(value) {
      srcObject.set.call(this, value);
      if (this instanceof HTMLVideoElement && value) watch(this);
    },
  });
  if (POLL_STATS) {
    const timer = setInterval(async () => {
      const api = window.incamera;
      if (!api || typeof api.stats !== "function") return;
      const rows = await api.stats();
      if (rows.some((row) => row.videoFramesDecoded > 0) && bench.statsFrame === null) {
        bench.statsFrame = { decoded_ms: performance.now() };
        clearInterval(timer);
      }
    }, POLL_MS);
  }
})();
"""

# Read when the first remote frame is shown: a step that comes later (the joiner's own send
# connection may) is missing from that join's marks and from its median.
PHASES = (
    "dom_content_loaded",
    "first_pc_created",
    "send_pc_connected",
    "first_remote_video_track",
    "recv_ice_connected",
    "recv_pc_connected",
    "first_frame",
)
# The page's own User Timing marks (``performance.mark("incamera:<step>")``, the first of
# each), reported when present: the signalling ``welcome``, the MLS key package sent, the
# server's ``subscribe`` offer received and answered, the MLS Welcome received, the first
# epoch's SFrame key installed in the worker, the first key frame request after a key came.
E2EE_PHASES = (
    "welcome",
    "key_package_sent",
    "subscribe_offer",
    "subscribe_answer",
    "mls_welcome",
    "epoch_installed",
    "key_frame_request",
)
PAGE_MARKS = """() => Object.fromEntries(performance.getEntriesByType("mark")
  .filter((m) => m.name.startsWith("incamera:"))
  .map((m) => [m.name.slice(9), m.startTime]))"""


class BenchError(Exception):
    """The benchmark could not run (missing browser, server failed...); the message says why."""


@dataclass
class JoinSample:
    total_ms: float
    marks: dict[str, float] = field(default_factory=dict)
    width: int = 0
    height: int = 0


# ---------------------------------------------------------------------------------------------
# Statistics


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (``numpy.percentile``'s default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(samples: list[JoinSample]) -> dict[str, Any]:
    totals = [s.total_ms for s in samples]
    phases: dict[str, float] = {}
    for name in PHASES + E2EE_PHASES:
        values = [s.marks[name] for s in samples if name in s.marks]
        if values:
            phases[name] = round(statistics.median(values), 1)
    return {
        "p50_ms": round(percentile(totals, 0.5), 1),
        "p90_ms": round(percentile(totals, 0.9), 1),
        "min_ms": round(min(totals), 1),
        "max_ms": round(max(totals), 1),
        "mean_ms": round(statistics.fmean(totals), 1),
        "samples_ms": [round(t, 1) for t in totals],
        "phases_ms": dict(sorted(phases.items(), key=lambda item: item[1])),
        "frame_sizes": sorted({f"{s.width}x{s.height}" for s in samples}),
    }


# ---------------------------------------------------------------------------------------------
# Server


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``incamera serve`` in a subprocess on a free HTTP port, for the benchmark's length."""

    def __init__(self, data_dir: str, workers: int) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> None:
        port = free_udp_port()
        command = [
            sys.executable,
            "-m",
            "incamera.cli",
            "serve",
            "--bind-host",
            "127.0.0.1",
            "--bind-port",
            "0",
            "--data-dir",
            self.data_dir,
            "--media-workers",
            str(self.workers),
            "--media-listen-ip",
            "127.0.0.1",
            "--media-port-min",
            str(port),
            "--media-port-max",
            str(port + self.workers - 1),
            # Chromium also gathers candidates on the machine's other interfaces; the SFU
            # must only ever answer (and send to) loopback.
            "--media-allowed-remote-networks",
            "127.0.0.0/8,::1/128",
            "--log-level",
            "warning",
        ]
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("INCAMERA_")}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        prefix = "incamera is running at "
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise BenchError(f"incamera serve exited with status {self.process.wait()}")
            if line.startswith(prefix):
                self.base_url = line[len(prefix) :].strip()
                return
        raise BenchError("incamera serve did not start in time")

    def create_meeting(self) -> str:
        """A new meeting's join URL."""
        port = self.base_url.rsplit(":", 1)[1].rstrip("/")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/meetings",
            data=b"{}",
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        return str(body["join_url"])

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


# ---------------------------------------------------------------------------------------------
# Browser


def chromium_path(explicit: str | None) -> str:
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise BenchError(f"not an executable: {explicit}")
        return explicit
    found = find_chromium()
    if found is None:
        raise BenchError("no Chromium found (apt-get install chromium, or --chromium PATH)")
    return found


async def wait_until(page: Any, expression: str, timeout: float, what: str) -> Any:
    """Evaluate ``expression`` every 20 ms until it is truthy; returns its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if loop.time() >= deadline:
            raise BenchError(f"{what}: not reached within {timeout:.0f} s")
        await asyncio.sleep(STATS_POLL_MS / 1000)


def fragment(name: str) -> str:
    return f"#name={urllib.request.quote(name)}&autojoin=1"


async def start_publisher(browser: Any, join_url: str) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    await page.goto(join_url + fragment("Publisher"))
    await wait_until(
        page,
        "() => { const s = window.incamera && window.incamera.state();"
        " return s && s.joined && ['connected', 'completed'].includes(s.send); }",
        STARTUP_TIMEOUT,
        "the publisher joined and publishes",
    )
    return context


async def new_joiner_context(browser: Any, method: str) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    script = INIT_SCRIPT.replace("POLL_STATS", "true" if method == "stats" else "false")
    await context.add_init_script(script.replace("POLL_MS", str(STATS_POLL_MS)))
    return context


async def one_join(context: Any, join_url: str, name: str, method: str) -> JoinSample:
    """One join in a new page of ``context``; the page leaves and closes afterwards."""
    page = await context.new_page()
    try:
        await page.goto(join_url + fragment(name), wait_until="commit")
        key = "frame" if method == "rvfc" else "statsFrame"
        await wait_until(
            page,
            f"() => window.__joinBench && window.__joinBench.{key} !== null",
            JOIN_TIMEOUT,
            f"{name}: first remote video frame",
        )
        bench: dict[str, Any] = await page.evaluate("() => window.__joinBench")
        marks = {k: float(v) for k, v in bench["marks"].items()}
        page_marks: dict[str, Any] = await page.evaluate(PAGE_MARKS)
        marks.update((k, float(v)) for k, v in page_marks.items() if k in E2EE_PHASES)
        if method == "rvfc":
            frame = bench["frame"]
            total = float(frame["presentation_ms"])
            sample = JoinSample(total, marks, int(frame["width"]), int(frame["height"]))
        else:
            total = float(bench["statsFrame"]["decoded_ms"])
            sample = JoinSample(total, marks)
        sample.marks["first_frame"] = total
        with contextlib.suppress(Exception):
            await page.evaluate("() => window.incamera.leave()")
        return sample
    finally:
        await page.close()


async def measure(browser: Any, join_url: str, args: argparse.Namespace) -> list[JoinSample]:
    """``--warmup`` + ``--joins`` joins, one after the other; returns the measured ones.
    Cold cache: every join in a new browser context (a first visit); warm: one context."""
    shared = await new_joiner_context(browser, args.method) if args.cache == "warm" else None
    samples: list[JoinSample] = []
    try:
        for index in range(args.warmup + args.joins):
            context = shared or await new_joiner_context(browser, args.method)
            try:
                sample = await one_join(context, join_url, f"Joiner {index}", args.method)
            finally:
                if shared is None:
                    await context.close()
            if index >= args.warmup:
                samples.append(sample)
    finally:
        if shared is not None:
            await shared.close()
    return samples


async def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        raise BenchError("playwright is not installed (pip install -e '.[test]')") from exc
    executable = chromium_path(args.chromium)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="incamera-bench-join-") as data_dir:
        server = ServerProcess(data_dir, args.media_workers)
        try:
            await asyncio.to_thread(server.start)
            join_url = await asyncio.to_thread(server.create_meeting)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=executable, args=list(CHROMIUM_FLAGS), headless=True
                )
                try:
                    publisher = await start_publisher(browser, join_url)
                    samples = await measure(browser, join_url, args)
                    await publisher.close()
                    version = browser.version
                finally:
                    await browser.close()
        finally:
            await asyncio.to_thread(server.stop)
    result: dict[str, Any] = {
        "benchmark": "join",
        "joins": len(samples),
        "warmup": args.warmup,
        "method": args.method,
        "cache": args.cache,
        **summarise(samples),
        "goal_p50_ms": GOAL_P50_MS,
        "chromium": version,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1m_before": round(load_before, 2),
        },
    }
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="incamera bench join",
        description="Time from opening a meeting link (autojoin) to the first remote video "
        "frame, with headless Chromium against a real incamera serve.",
    )
    parser.add_argument("--joins", type=int, default=10, help="measured joins (default: 10)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="joins before those, not counted (default: 1)"
    )
    parser.add_argument(
        "--method",
        choices=("rvfc", "stats"),
        default="rvfc",
        help="first frame by requestVideoFrameCallback (default) or by polling "
        "window.incamera.stats() every 20 ms",
    )
    parser.add_argument(
        "--cache",
        choices=("cold", "warm"),
        default="cold",
        help="cold: every join in a new browser context, like a first visit (default); "
        "warm: new pages of one context, so the web app comes from the browser's cache",
    )
    parser.add_argument("--media-workers", type=int, default=1, help="default: 1")
    parser.add_argument("--chromium", help="Chromium binary (default: Debian's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.joins < 1:
        parser.error("--joins must be at least 1")
    if args.warmup < 0 or args.media_workers < 1:
        parser.error("--warmup must be >= 0 and --media-workers >= 1")
    return args


def report(result: dict[str, Any]) -> str:
    phases = ", ".join(f"{k} {v:.0f}" for k, v in result["phases_ms"].items())
    verdict = "meets" if result["p50_ms"] < result["goal_p50_ms"] else "misses"
    return "\n".join(
        [
            f"join to first remote video frame over {result['joins']} joins "
            f"({result['method']}, {result['cache']} cache, {result['warmup']} warm-up):",
            f"  p50 {result['p50_ms']:.0f} ms, p90 {result['p90_ms']:.0f} ms "
            f"(min {result['min_ms']:.0f}, max {result['max_ms']:.0f}); "
            f"{verdict} the goal of p50 < {result['goal_p50_ms']:.0f} ms",
            f"  median phases (ms since navigation start): {phases}",
            f"  samples: {', '.join(f'{s:.0f}' for s in result['samples_ms'])}",
            f"  Chromium {result['chromium']}, {result['machine']['cpus']} CPUs, load average "
            f"{result['machine']['load_average_1m_before']} before the run",
        ]
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except BenchError as exc:
        print(f"incamera bench join: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else report(result))
    return 0
