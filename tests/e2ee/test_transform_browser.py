"""The E2EE transform worker in headless Chromium: a camera and a microphone sent from one
peer connection to another in the same page, encrypted by one worker and decrypted by
another, through RTCRtpScriptTransform and through the legacy createEncodedStreams path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from incamera.bench.chromium import CHROMIUM_FLAGS, find_chromium
from support.browser import StaticServer

pytestmark = pytest.mark.browser

WEB_DIR = Path(__file__).resolve().parents[2] / "src" / "incamera" / "web"

SETUP = """
async ({ legacy, aliceSecret, bobSecret }) => {
  const worker = (name) => {
    const w = new Worker('/e2ee/transform-worker.js', { type: 'module', name });
    w.messages = [];
    w.onmessage = (event) => w.messages.push(event.data);
    return w;
  };
  const alice = worker('alice');
  const bob = worker('bob');
  const config = legacy ? { encodedInsertableStreams: true } : {};
  const pc1 = new RTCPeerConnection(config);
  const pc2 = new RTCPeerConnection(config);
  pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
  pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
  const attach = (w, endpoint, options) => {
    if (legacy) {
      const { readable, writable } = endpoint.createEncodedStreams();
      w.postMessage({ type: 'stream', readable, writable, options }, [readable, writable]);
    } else {
      endpoint.transform = new RTCRtpScriptTransform(w, options);
    }
  };
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  for (const track of stream.getTracks()) {
    const transceiver = pc1.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    if (track.kind === 'video') {
      const { codecs } = RTCRtpSender.getCapabilities('video');
      transceiver.setCodecPreferences(codecs.filter((c) => c.mimeType === 'video/VP8'));
    }
    const context = track.kind === 'audio' ? 0 : 1;
    attach(alice, transceiver.sender, { role: 'send', kind: track.kind, context, mid: track.kind });
  }
  await pc1.setLocalDescription();
  await pc2.setRemoteDescription(pc1.localDescription);
  for (const transceiver of pc2.getTransceivers()) {
    const kind = transceiver.receiver.track.kind;
    attach(bob, transceiver.receiver, { role: 'recv', kind, context: null, mid: transceiver.mid });
  }
  await pc2.setLocalDescription();
  await pc1.setRemoteDescription(pc2.localDescription);
  alice.postMessage({ type: 'epoch', epoch: 0, secret: new Uint8Array(aliceSecret), leaf: 1 });
  if (bobSecret) {
    bob.postMessage({ type: 'epoch', epoch: 0, secret: new Uint8Array(bobSecret), leaf: 2 });
  }

  const ask = (w) => new Promise((resolve) => {
    const before = w.messages.length;
    w.postMessage({ type: 'stats' });
    const poll = () => {
      const reply = w.messages.slice(before).find((m) => m.type === 'stats');
      if (reply) resolve(reply.transforms); else setTimeout(poll, 20);
    };
    poll();
  });
  window.e2ee = {
    alice, bob, pc1, pc2,
    async state() {
      let framesDecoded = 0;
      (await pc2.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') framesDecoded += r.framesDecoded ?? 0;
      });
      const sum = (transforms, role, key) => Object.values(transforms)
        .filter((t) => t.role === role).reduce((n, t) => n + t[key], 0);
      const a = await ask(alice);
      const b = await ask(bob);
      return {
        framesDecoded,
        encrypted: sum(a, 'send', 'encrypted'),
        decrypted: sum(b, 'recv', 'decrypted'),
        droppedNoKey: sum(b, 'recv', 'dropped_no_key'),
        failedAuth: sum(b, 'recv', 'failed_auth'),
        recvKinds: Object.values(b).map((t) => t.kind).sort(),
        keyframes: bob.messages.filter((m) => m.type === 'keyframe').map((m) => m.mid),
        errors: [...alice.messages, ...bob.messages].filter((m) => m.type === 'error'),
      };
    },
    install(secret) {
      bob.postMessage({ type: 'epoch', epoch: 0, secret: new Uint8Array(secret), leaf: 2 });
    },
  };
  return true;
}
"""

SECRET = list(range(32))
OTHER = list(range(1, 33))


@pytest_asyncio.fixture
async def page() -> AsyncIterator[Any]:
    pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium binary (/usr/lib/chromium/chromium or /usr/bin/chromium)")
    from playwright.async_api import async_playwright

    server = StaticServer(WEB_DIR)
    server.start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=list(CHROMIUM_FLAGS), headless=True
            )
            try:
                page = await browser.new_page()
                # Any same-origin document will do: the directory listing of e2ee/.
                await page.goto(f"{server.base_url}/e2ee/")
                yield page
            finally:
                await browser.close()
    finally:
        server.stop()


async def wait_state(page: Any, condition: str) -> dict[str, Any]:
    await page.wait_for_function(
        f"window.e2ee.state().then((s) => {{ window.lastState = s; return {condition}; }})",
        polling=250,
        timeout=30_000,
    )
    return await page.evaluate("window.lastState")


@pytest.mark.parametrize("legacy", [False, True], ids=["script-transform", "legacy-streams"])
async def test_encrypted_media_decodes_on_the_other_side(page: Any, legacy: bool) -> None:
    await page.evaluate(SETUP, {"legacy": legacy, "aliceSecret": SECRET, "bobSecret": SECRET})
    state = await wait_state(
        page, "s.framesDecoded >= 10 && s.decrypted >= 50 && s.recvKinds.length === 2"
    )
    assert state["failedAuth"] == 0
    assert state["errors"] == []
    assert state["encrypted"] > 0
    assert state["recvKinds"] == ["audio", "video"]


async def test_wrong_key_decodes_nothing(page: Any) -> None:
    await page.evaluate(SETUP, {"legacy": False, "aliceSecret": SECRET, "bobSecret": OTHER})
    state = await wait_state(page, "s.encrypted >= 50 && s.failedAuth >= 50")
    assert state["decrypted"] == 0
    assert state["framesDecoded"] == 0


async def test_late_key_asks_for_a_key_frame_and_video_starts(page: Any) -> None:
    await page.evaluate(SETUP, {"legacy": False, "aliceSecret": SECRET, "bobSecret": None})
    state = await wait_state(page, "s.encrypted >= 20 && s.droppedNoKey >= 20")
    assert state["decrypted"] == 0
    await page.evaluate("(secret) => window.e2ee.install(secret)", SECRET)
    state = await wait_state(page, "s.framesDecoded >= 5 && s.keyframes.length >= 1")
    assert state["failedAuth"] == 0
