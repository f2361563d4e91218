"""Transport-wide congestion control feedback to a publisher, read off the wire.

A publisher's congestion controller (GoogCC in Chromium) only uses feedback whose media SSRC
is one of its own senders, and it reads every transport-wide sequence number the feedback
leaves out as lost. A synthetic publisher (real ICE, DTLS-SRTP) sends VP8-shaped packets with
the transport-cc extension, some on an SSRC no stream is bound to (like Chromium's probe
padding on a simulcast RTX SSRC), and decrypts the feedback the worker returns.
"""

from __future__ import annotations

import asyncio
import struct

from incamera.bench.peer import SyntheticPeer, connect_peers_async
from incamera.media import rtcp
from incamera.media.rtp_parameters import (
    Encoding,
    ExtensionUri,
    HeaderExtension,
    MediaKind,
    RtpCodec,
    RtpParameters,
)
from support.sfu import running_worker

TWCC_ID = 5
CAMERA_SSRC = 0x0CA3E7A0
PROBE_SSRC = 0x0BADBEEF  # declared nowhere: the worker cannot bind it to a stream


def vp8_with_twcc(ssrc: int) -> RtpParameters:
    codec = RtpCodec("video/VP8", 96, 90000, rtcp_feedback=("transport-cc",))
    return RtpParameters(
        mid="0",
        kind=MediaKind.VIDEO,
        codecs=(codec,),
        header_extensions=(HeaderExtension(ExtensionUri.TRANSPORT_CC, TWCC_ID),),
        encodings=(Encoding(ssrc=ssrc),),
        cname="feedback-test",
    )


def packet(ssrc: int, seq: int, transport_seq: int) -> bytes:
    """RTP with a one-byte-header transport-cc extension (RFC 8285) and a VP8 payload."""
    header = struct.pack("!BBHII", 0x90, 96, seq, seq * 3000, ssrc)
    extension = b"\xbe\xde\x00\x01" + bytes([(TWCC_ID << 4) | 1]) + transport_seq.to_bytes(2, "big")
    return header + extension + b"\x00" + b"\x10" + bytes(100)


async def test_feedback_names_the_publishers_ssrc_and_covers_unbound_ssrcs() -> None:
    async with running_worker() as worker:
        router_id = worker.create_router()
        info = worker.create_transport(router_id)
        peer = SyntheticPeer(info, name="publisher")
        try:
            worker.connect_transport(info.id, peer.dtls_parameters, peer.ufrag)
            await connect_peers_async([peer], timeout=10)
            assert peer.srtp is not None
            worker.produce(info.id, vp8_with_twcc(CAMERA_SSRC))

            # Transport-wide numbers 0..59; every fifth packet on the unbound SSRC.
            for transport_seq in range(60):
                ssrc = PROBE_SSRC if transport_seq % 5 == 4 else CAMERA_SSRC
                peer.sock.send(peer.srtp.protect(packet(ssrc, transport_seq, transport_seq)))
                await asyncio.sleep(0.002)

            feedback: list[rtcp.TransportCcFeedback] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            reported: dict[int, int | None] = {}
            while loop.time() < deadline and len(reported) < 60:
                await asyncio.sleep(0.05)
                for datagram in peer.receive_all(loop.time()):
                    if 191 < datagram[1] < 224:
                        plain = peer.srtp.unprotect_rtcp(datagram)
                        for item in rtcp.parse_compound(plain):
                            if isinstance(item, rtcp.TransportCcFeedback):
                                feedback.append(item)
                                reported.update(item.packets)
        finally:
            peer.close()

    assert feedback
    assert {f.media_ssrc for f in feedback} == {CAMERA_SSRC}
    assert sorted(reported) == list(range(60))
    assert all(arrival is not None for arrival in reported.values()), reported
    assert worker.counters.rtp_unknown_ssrc == 12
