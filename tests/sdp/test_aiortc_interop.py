"""aiortc as an independent WebRTC stack: it must accept the SFU's answers and offers.

No media flows here (nothing listens on the SFU's candidates); only the SDP exchange is
checked, which aiortc validates strictly (m-section order, mids, DTLS roles, codecs).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)

from incamera.media.api import DtlsRole
from incamera.media.rtp_parameters import MediaKind
from incamera.sdp import SubscribeSession, answer_publish, parse

from .helpers import consumer, transport_info

pytestmark = pytest.mark.interop


@pytest.fixture
async def pc() -> AsyncIterator[RTCPeerConnection]:
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        yield peer
    finally:
        await peer.close()


async def test_aiortc_accepts_the_publish_answer(pc: RTCPeerConnection) -> None:
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    pc.createDataChannel("chat")
    await pc.setLocalDescription(await pc.createOffer())
    offer_sdp = pc.localDescription.sdp

    result = answer_publish(offer_sdp, transport_info())
    await pc.setRemoteDescription(RTCSessionDescription(result.sdp, "answer"))

    assert pc.signalingState == "stable"
    assert [(t.mid, t.kind, t.currentDirection) for t in pc.getTransceivers()] == [
        ("0", "audio", "sendonly"),
        ("1", "video", "sendonly"),
    ]
    assert [p.mid for p in result.producers] == ["0", "1"]
    assert set(result.rejected) == {"2"}  # the data channel

    # aiortc offers sendrecv m-sections and signals its SSRCs with a=ssrc / FID groups
    offer = parse(offer_sdp)
    assert offer.media[0].direction is None or offer.media[0].direction.receives
    audio, video = result.producers
    assert audio.kind is MediaKind.AUDIO and audio.codecs[0].name == "opus"
    assert audio.encodings[0].ssrc == offer.media[0].ssrcs()[0].ssrc
    fid = offer.media[1].ssrc_groups()[0]
    assert (video.encodings[0].ssrc, video.encodings[0].rtx_ssrc) == fid.ssrcs
    assert video.codecs[0].name == "vp8" and video.codecs[0].rtx_payload_type is not None
    assert result.remote_ice.username_fragment == offer.media[0].ice_ufrag
    assert result.remote_dtls.role is DtlsRole.CLIENT
    assert {f.algorithm for f in result.remote_dtls.fingerprints} >= {"sha-256"}


async def _negotiate(session: SubscribeSession, pc: RTCPeerConnection) -> str:
    await pc.setRemoteDescription(RTCSessionDescription(session.offer(), "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    answer = pc.localDescription.sdp
    ice, dtls = session.apply_answer(answer)
    local = parse(answer).media[0]
    assert ice.username_fragment == local.ice_ufrag and ice.password == local.ice_pwd
    assert dtls.role is DtlsRole.CLIENT
    assert [f.value for f in dtls.fingerprints] == [f.value for f in local.fingerprints()]
    return answer


async def test_aiortc_subscriber_across_renegotiations(pc: RTCPeerConnection) -> None:
    tracks: list[tuple[str, str]] = []
    pc.on("track", lambda track: tracks.append((track.kind, track.id)))
    session = SubscribeSession(transport_info())

    mic = session.add(consumer(MediaKind.AUDIO, 1000), "alice", "alice-mic")
    cam = session.add(consumer(MediaKind.VIDEO, 2000), "alice", "alice-cam")
    assert (mic, cam) == ("0", "1")
    answer = await _negotiate(session, pc)
    assert tracks == [("audio", "alice-mic"), ("video", "alice-cam")]
    assert [(t.mid, t.currentDirection) for t in pc.getTransceivers()] == [
        ("0", "recvonly"),
        ("1", "recvonly"),
    ]
    assert "a=setup:active" in answer

    # a second publisher's camera (H264) joins
    bob = session.add(consumer(MediaKind.VIDEO, 3000, "h264"), "bob", "bob-cam")
    assert bob == "2"
    answer = await _negotiate(session, pc)
    assert tracks[-1] == ("video", "bob-cam")
    assert [t.mid for t in pc.getTransceivers()] == ["0", "1", "2"]
    h264 = parse(answer).media[2]
    assert h264.payload_types()[0] == 102
    assert h264.rtpmaps()[102].encoding_name == "H264"

    # alice's camera leaves: its section goes inactive with port 0
    session.remove(cam)
    await _negotiate(session, pc)
    assert [t.currentDirection for t in pc.getTransceivers()] == [
        "recvonly",
        "inactive",
        "recvonly",
    ]

    # carol's camera recycles the closed slot under a new mid, at the same position
    carol = session.add(consumer(MediaKind.VIDEO, 4000), "carol", "carol-cam")
    assert carol == "3"
    offer_mids = re.findall(r"a=mid:(\S+)", session.offer())
    assert offer_mids == ["0", "3", "2"]
    await _negotiate(session, pc)
    assert tracks[-1] == ("video", "carol-cam")
    assert session.mids == ["0", "3", "2"]
