"""Headless Chromium must accept the SFU's publish answers and subscribe offers.

SDP only: Chromium applies the descriptions (which checks them fully) but no media flows,
so no server is needed. The page is served by Playwright's request interception on
``http://localhost`` (a secure context, so getUserMedia works), never from the network.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

from incamera.bench.chromium import CHROMIUM_FLAGS, find_chromium
from incamera.media.rtp_parameters import MediaKind
from incamera.sdp import SubscribeSession, answer_publish, parse

from .helpers import consumer, transport_info

pytestmark = pytest.mark.browser

CHROMIUM = find_chromium() or "/usr/lib/chromium/chromium"
# The shared flag set, plus picking the screen without a prompt for getDisplayMedia.
FLAGS = [*CHROMIUM_FLAGS, "--auto-select-desktop-capture-source=Entire screen"]

PUBLISH_OFFER = """async () => {
  const pc = window.pc = new RTCPeerConnection({iceServers: [], bundlePolicy: 'max-bundle'});
  const cam = await navigator.mediaDevices.getUserMedia(
    {audio: true, video: {width: {exact: 1280}, height: {exact: 720}}});
  pc.addTransceiver(cam.getAudioTracks()[0], {direction: 'sendonly', streams: [cam]});
  pc.addTransceiver(cam.getVideoTracks()[0], {direction: 'sendonly', streams: [cam],
    sendEncodings: [{rid: 'q', scaleResolutionDownBy: 4}, {rid: 'h', scaleResolutionDownBy: 2},
                    {rid: 'f'}]});
  const screen = await navigator.mediaDevices.getDisplayMedia({video: true});
  pc.addTransceiver(screen.getVideoTracks()[0], {direction: 'sendonly', streams: [screen]});
  pc.createDataChannel('chat');
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;
}"""

APPLY_ANSWER = """async (sdp) => {
  await pc.setRemoteDescription({type: 'answer', sdp});
  return {
    signaling: pc.signalingState,
    transceivers: pc.getTransceivers().map(t => [t.mid, t.currentDirection]),
    rids: pc.getTransceivers()[1].sender.getParameters().encodings.map(e => e.rid),
    sctp: pc.sctp === null ? null : pc.sctp.state,
  };
}"""

SUBSCRIBER = """() => {
  window.pc = new RTCPeerConnection({iceServers: [], bundlePolicy: 'max-bundle'});
  window.tracks = [];
  pc.ontrack = e => tracks.push([e.transceiver.mid, e.track.kind, e.streams.map(s => s.id)]);
}"""

ANSWER_OFFER = """async (sdp) => {
  await pc.setRemoteDescription({type: 'offer', sdp});
  await pc.setLocalDescription(await pc.createAnswer());
  return {
    answer: pc.localDescription.sdp,
    tracks: tracks.splice(0),
    transceivers: pc.getTransceivers().map(t => [t.mid, t.currentDirection]),
  };
}"""


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        with tempfile.TemporaryDirectory() as profile:
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=FLAGS, headless=True
            )
            try:
                tab = await context.new_page()
                await tab.route(
                    "http://localhost/**",
                    lambda route: route.fulfill(body="<html></html>", content_type="text/html"),
                )
                await tab.goto("http://localhost/")
                yield tab
            finally:
                await context.close()


async def test_chromium_accepts_the_publish_answer(page: Any) -> None:
    offer = await page.evaluate(PUBLISH_OFFER)
    result = answer_publish(offer, transport_info())
    state = await page.evaluate(APPLY_ANSWER, result.sdp)

    assert state["signaling"] == "stable"
    assert state["transceivers"] == [["0", "sendonly"], ["1", "sendonly"], ["2", "sendonly"]]
    assert state["rids"] == ["q", "h", "f"]
    assert state["sctp"] is None  # the data channel m-section was rejected
    assert [p.mid for p in result.producers] == ["0", "1", "2"]
    camera = result.producers[1]
    assert [(e.rid, e.scale_resolution_down_by) for e in camera.encodings] == [
        ("q", 4.0),
        ("h", 2.0),
        ("f", 1.0),
    ]
    screen = result.producers[2]
    assert screen.encodings[0].ssrc is not None and screen.encodings[0].rtx_ssrc is not None


async def _negotiate(page: Any, session: SubscribeSession) -> dict[str, Any]:
    result = await page.evaluate(ANSWER_OFFER, session.offer())
    session.apply_answer(result["answer"])
    return result


async def test_chromium_subscriber_across_renegotiations(page: Any) -> None:
    await page.evaluate(SUBSCRIBER)
    session = SubscribeSession(transport_info())
    session.add(consumer(MediaKind.AUDIO, 1000), "alice", "alice-mic")
    cam = session.add(consumer(MediaKind.VIDEO, 2000, "vp8"), "alice", "alice-cam")

    first = await _negotiate(page, session)
    assert first["tracks"] == [["0", "audio", ["alice"]], ["1", "video", ["alice"]]]
    assert first["transceivers"] == [["0", "recvonly"], ["1", "recvonly"]]
    assert "a=setup:active" in first["answer"]

    session.add(consumer(MediaKind.VIDEO, 3000, "h264"), "bob", "bob-cam")
    second = await _negotiate(page, session)
    assert second["tracks"] == [["2", "video", ["bob"]]]
    h264 = parse(second["answer"]).media[2]
    assert h264.port != 0 and h264.payload_types()[0] == 102

    session.remove(cam)
    third = await _negotiate(page, session)
    # Chromium stops the transceiver and drops stopped ones from getTransceivers()
    assert [t for t in third["transceivers"] if t[0] == cam] in ([], [[cam, "stopped"]])
    assert ["2", "recvonly"] in third["transceivers"]
    assert parse(third["answer"]).media[1].port == 0

    carol = session.add(consumer(MediaKind.VIDEO, 4000, "vp9"), "carol", "carol-cam")
    offer_mids = re.findall(r"a=mid:(\S+)", session.offer())
    assert offer_mids == ["0", carol, "2"]
    fourth = await _negotiate(page, session)
    assert fourth["tracks"] == [[carol, "video", ["carol"]]]
    assert [m.mid for m in parse(fourth["answer"]).media] == ["0", carol, "2"]
    assert [t for t in fourth["transceivers"] if t[0] == carol] == [[carol, "recvonly"]]
