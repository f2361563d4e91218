"""Key frame detection on real RTP payloads produced by aiortc's encoders (libvpx, x264).

An independent check of the bit layouts: aiortc packetizes real encoder output, and the
first frame, and any frame we force, must be reported as a key frame, the others not.
"""

from __future__ import annotations

import fractions
import itertools

import av
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from incamera.media.codecs import h264, keyframe_detector, vp8
from incamera.media.codecs.vp8 import Vp8Descriptor, Vp8Rewriter

pytestmark = pytest.mark.interop

FORCED = 4  # index of the frame encoded with force_keyframe=True


def _frame(index: int) -> av.VideoFrame:
    frame = av.VideoFrame(width=320, height=240, format="yuv420p")
    for plane_no, plane in enumerate(frame.planes):
        # A moving gradient so that delta frames have something to code.
        row = bytes((x + 3 * index + 40 * plane_no) % 256 for x in range(plane.line_size))
        plane.update(row * (plane.buffer_size // plane.line_size))
    frame.pts = index * 3000
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def _encode(mime_type: str, count: int = 7) -> list[list[bytes]]:
    encoder = get_encoder(
        RTCRtpCodecParameters(mimeType=mime_type, clockRate=90000, payloadType=96)
    )
    frames = []
    for i in range(count):
        payloads, _ = encoder.encode(_frame(i), force_keyframe=i == FORCED)
        frames.append(payloads)
    return frames


def test_vp8_key_frames_from_libvpx() -> None:
    frames = _encode("video/VP8")
    detector = keyframe_detector("video/VP8")
    assert detector is not None
    for index, payloads in enumerate(frames):
        flags = [detector(p) for p in payloads]
        if index in (0, FORCED):
            assert flags[0], f"frame {index} should start with a key frame packet"
            assert not any(flags[1:])
        else:
            assert not any(flags), f"frame {index} is a delta frame"
        for payload in payloads:
            # SFrame leaves the descriptor plus 10 bytes (key) / 3 bytes (delta) in clear:
            # detection must work on that prefix alone.
            size = vp8.descriptor_size(payload)
            clear = 10 if index in (0, FORCED) else 3
            assert detector(payload[: size + clear]) == detector(payload)


def test_vp8_picture_ids_from_libvpx_and_rewriting_them() -> None:
    frames = _encode("video/VP8")
    ids = [Vp8Descriptor.parse(payloads[0]).picture_id for payloads in frames]
    assert all(i is not None for i in ids)
    steps = [((b or 0) - (a or 0)) % (1 << 15) for a, b in itertools.pairwise(ids)]
    assert steps == [1] * (len(ids) - 1)
    # Pretend frames 0..3 came from one layer and a switch happened at the forced key
    # frame of another layer whose ids are far away.
    rewriter = Vp8Rewriter()
    out_ids = []
    for index, payloads in enumerate(frames):
        for n, payload in enumerate(payloads):
            buf = bytearray(payload)
            if index >= FORCED:
                shifted = ((ids[index] or 0) + 20000) % (1 << 15)
                vp8.rewrite_picture_id(buf, 0, shifted, None)
            key = vp8.is_keyframe(buf)
            rewriter.rewrite_packet(buf, 0, keyframe=key, switched=n == 0 and index in (0, FORCED))
            if n == 0:
                out_ids.append(Vp8Descriptor.parse(buf).picture_id)
            # The frame data after the descriptor is untouched.
            size = vp8.descriptor_size(payload)
            assert buf[size:] == payload[size:]
    assert out_ids == ids


def test_h264_key_frames_from_x264() -> None:
    frames = _encode("video/H264")
    detector = keyframe_detector("h264")
    assert detector is not None
    for index, payloads in enumerate(frames):
        types = {t for p in payloads for t in h264.nal_types(p)}
        flags = [detector(p) for p in payloads]
        if index in (0, FORCED):
            assert {h264.NAL_SPS, h264.NAL_IDR} <= types
            assert flags[0]
        else:
            assert h264.NAL_IDR not in types and h264.NAL_SPS not in types
            assert not any(flags)
        # aiortc packetizes as browsers do: single NAL units, STAP-A and FU-A only.
        assert {p[0] & 0x1F for p in payloads} <= set(range(1, 24)) | {24, 28}
