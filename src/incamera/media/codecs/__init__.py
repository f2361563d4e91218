"""Codec payload descriptors: what the SFU reads (and patches) without decoding media.

The SFU forwards end-to-end encrypted media; SFrame leaves the codec payload descriptor
and a few header bytes in clear precisely so that these modules can detect key frames
(to switch simulcast layers and start consumers cleanly) and rewrite picture ids.
"""

from __future__ import annotations

from collections.abc import Callable

from incamera.media.codecs import av1, h264, vp8, vp9

KeyframeDetector = Callable[[bytes], bool]

_DETECTORS: dict[str, KeyframeDetector] = {
    "vp8": vp8.is_keyframe,
    "vp9": vp9.is_keyframe,
    "h264": h264.is_keyframe,
    "av1": av1.is_keyframe,
}


def keyframe_detector(codec_name: str) -> KeyframeDetector | None:
    """The key frame test for a codec, by name (``"VP8"``) or MIME type (``"video/VP8"``).

    Returns None for codecs without key frames (audio such as Opus) or unknown ones. The
    returned callable takes an RTP payload and raises ParseError when it is malformed.
    """
    name = codec_name.rsplit("/", 1)[-1].strip().lower()
    return _DETECTORS.get(name)


__all__ = ["KeyframeDetector", "keyframe_detector"]
