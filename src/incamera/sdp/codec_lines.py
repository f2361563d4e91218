"""Codec lines of an RTP m-section: rtpmap, fmtp, rtcp-fb and RTX pairing.

RFC 8866 §6.6 (rtpmap), §6.15 (fmtp), RFC 4585 §4.2 (rtcp-fb), RFC 4588 §8 (rtx ``apt``).
"""

from __future__ import annotations

from incamera.media.capabilities import router_codec_for
from incamera.media.rtp_parameters import MediaKind, RtpCodec

from .attributes import Fmtp, RtcpFb, RtpMap
from .errors import SdpError
from .model import MediaDescription

RTX_PARAMS = "apt"


def offered_codecs(media: MediaDescription) -> list[RtpCodec]:
    """The codecs of an m-section the router can forward, in the section's order of
    preference, with the section's payload types. RTX codecs are folded into the codec
    they repair (``rtx_payload_type``); rtcp-fb is cut down to what the router supports."""
    kind = MediaKind(media.kind)
    rtpmaps = media.rtpmaps()
    fmtps = media.fmtps()
    feedback = media.rtcp_fbs()
    rtx_for: dict[int, int] = {}
    for pt, rtpmap in rtpmaps.items():
        if rtpmap.encoding_name.lower() == "rtx" and pt in fmtps:
            apt = fmtps[pt].parameters.get(RTX_PARAMS, "")
            if apt.isdigit():
                rtx_for.setdefault(int(apt), pt)
    codecs: list[RtpCodec] = []
    for pt in dict.fromkeys(media.payload_types()):
        rtpmap = rtpmaps.get(pt)
        if rtpmap is None:
            continue
        codec = RtpCodec(
            mime_type=f"{kind}/{rtpmap.encoding_name}",
            payload_type=pt,
            clock_rate=rtpmap.clock_rate,
            channels=rtpmap.channels or 1,
            parameters=fmtps[pt].parameters if pt in fmtps else {},
        )
        router = router_codec_for(codec)
        if router is None:
            continue
        offered_fb = [fb.feedback for fb in feedback if fb.payload_type in (pt, None)]
        supported = tuple(dict.fromkeys(fb for fb in offered_fb if fb in router.rtcp_feedback))
        rtx = rtx_for.get(pt) if router.rtx_payload_type is not None else None
        codecs.append(
            RtpCodec(
                codec.mime_type,
                pt,
                codec.clock_rate,
                codec.channels,
                codec.parameters,
                supported,
                rtx,
            )
        )
    return codecs


def write_codecs(
    media: MediaDescription, codecs: list[RtpCodec], fmtp_text: dict[int, str] | None = None
) -> None:
    """Set the m= format list and write rtpmap / rtcp-fb / fmtp lines for ``codecs`` and their
    RTX companions. ``fmtp_text`` overrides the fmtp parameters of a payload type verbatim."""
    if not codecs:
        raise SdpError("an RTP m-section needs at least one codec")
    formats: list[str] = []
    for codec in codecs:
        formats.append(str(codec.payload_type))
        channels = codec.channels if codec.kind is MediaKind.AUDIO and codec.channels > 1 else None
        name = codec.mime_type.split("/", 1)[1]
        media.add("rtpmap", RtpMap(codec.payload_type, name, codec.clock_rate, channels))
        for fb in codec.rtcp_feedback:
            media.add("rtcp-fb", RtcpFb(codec.payload_type, fb))
        text = (fmtp_text or {}).get(codec.payload_type)
        if text:
            media.add("fmtp", Fmtp(codec.payload_type, text))
        elif codec.parameters:
            media.add("fmtp", Fmtp.format(codec.payload_type, codec.parameters))
        if codec.rtx_payload_type is not None:
            formats.append(str(codec.rtx_payload_type))
            media.add("rtpmap", RtpMap(codec.rtx_payload_type, "rtx", codec.clock_rate))
            media.add("fmtp", Fmtp(codec.rtx_payload_type, f"{RTX_PARAMS}={codec.payload_type}"))
    media.formats = formats
