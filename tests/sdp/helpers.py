"""Shared test data for the SDP tests."""

from __future__ import annotations

from pathlib import Path

from incamera.media.api import (
    DtlsFingerprint,
    DtlsParameters,
    DtlsRole,
    IceCandidate,
    IceParameters,
    TransportInfo,
)
from incamera.media.capabilities import ROUTER_CODECS
from incamera.media.rtp_parameters import Encoding, MediaKind, RtpCodec, RtpParameters
from incamera.sdp.subscribe import consumer_extensions

FIXTURES = Path(__file__).with_name("fixtures")
FINGERPRINT = ":".join(f"{b:02X}" for b in range(7, 7 + 32))


def chromium_offer() -> str:
    return (FIXTURES / "chromium_simulcast_offer.sdp").read_bytes().decode()


def transport_info(port: int = 40000) -> TransportInfo:
    return TransportInfo(
        id="t1",
        ice_parameters=IceParameters("sfuUfrag1", "sfuPassword0123456789abcd"),
        ice_candidates=(
            IceCandidate("1", 2130706431, "127.0.0.1", port),
            IceCandidate("2", 2130706175, "::1", port),
        ),
        dtls_parameters=DtlsParameters(DtlsRole.SERVER, (DtlsFingerprint("sha-256", FINGERPRINT),)),
    )


def router_codec(name: str) -> RtpCodec:
    return next(c for c in ROUTER_CODECS if c.name == name)


def consumer(kind: MediaKind, ssrc: int, codec: str | None = None) -> RtpParameters:
    """Consumer parameters as the SFU would hand them over: router PTs, own SSRC / RTX SSRC."""
    rtp_codec = router_codec(codec or ("opus" if kind is MediaKind.AUDIO else "vp8"))
    rtx = ssrc + 1 if rtp_codec.rtx_payload_type is not None else None
    return RtpParameters(
        mid="",
        kind=kind,
        codecs=(rtp_codec,),
        header_extensions=consumer_extensions(kind),
        encodings=(Encoding(ssrc=ssrc, rtx_ssrc=rtx),),
        cname="sfu-cname",
    )
