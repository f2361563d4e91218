"""The key frame detector dispatcher."""

from __future__ import annotations

import pytest

from incamera.media.codecs import av1, h264, keyframe_detector, vp8, vp9


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vp8", vp8.is_keyframe),
        ("VP8", vp8.is_keyframe),
        ("video/VP8", vp8.is_keyframe),
        ("vp9", vp9.is_keyframe),
        ("H264", h264.is_keyframe),
        ("video/h264", h264.is_keyframe),
        ("AV1", av1.is_keyframe),
    ],
)
def test_video_codecs_have_a_detector(name: str, expected: object) -> None:
    assert keyframe_detector(name) is expected


@pytest.mark.parametrize("name", ["opus", "audio/opus", "G722", "rtx", "red", ""])
def test_audio_and_unknown_codecs_have_none(name: str) -> None:
    assert keyframe_detector(name) is None


def test_detectors_work_on_payloads() -> None:
    vp8_key = b"\x10" + bytes.fromhex("5003009d012a4001f000")
    detector = keyframe_detector("vp8")
    assert detector is not None and detector(vp8_key)
    h264_detector = keyframe_detector("h264")
    assert h264_detector is not None and not h264_detector(vp8_key[:1] + b"\x00")
