"""``incamera bench forward``: the command's report, the synthetic peer against a real
worker (ICE, DTLS, SRTP, PLI answered, payload forwarded intact), and the VP8 source."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from incamera.bench import forward
from incamera.bench.peer import (
    PeerState,
    SyntheticPeer,
    connect_peers_async,
)
from incamera.bench.vp8_source import HEADER_SIZE, Vp8Source, vp8_parameters
from incamera.media import rtcp
from incamera.media.api import DtlsParameters, IceParameters, TransportInfo
from incamera.media.certificate import Certificate
from incamera.media.codecs.vp8 import is_keyframe, keyframe_size, read_picture_id
from incamera.media.worker import Worker

REQUIRED_FIELDS = {
    "pps_per_core",
    "fanout",
    "p50_latency_ms",
    "p99_latency_ms",
    "loss",
    "forwarded_pps",
    "worker_cpu_percent",
    "srtp_profile",
    "packet_size",
    "publishers",
    "seconds",
}
FORWARDED_HEADER = 12 + 8  # the router's one-byte extension block with transport-cc


# -- the command -------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [None, "python"])
def test_bench_forward_json_report(capsys: pytest.CaptureFixture[str], kernel: str | None) -> None:
    affinity = os.sched_getaffinity(0)
    environment = dict(os.environ)
    argv = ["--json", "--seconds", "2", "--fanout", "3", "--rate", "500"]
    code = forward.main(argv + (["--kernel", kernel] if kernel else []))
    assert os.sched_getaffinity(0) == affinity  # pinning for the run is undone
    assert dict(os.environ) == environment  # and the worker's kernel choice
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert result.keys() >= REQUIRED_FIELDS
    assert result["fanout_kernel"] == (kernel or "c")
    assert result["fanout"] == 3 and result["publishers"] == 1
    assert result["packet_size"] == 1200
    assert result["srtp_profile"] == "SRTP_AEAD_AES_128_GCM"
    assert result["loss"] < 0.05
    assert result["pps_per_core"] > 0
    assert result["packets_sent"] > 0
    assert result["packets_expected"] == 3 * result["packets_sent"]
    assert 0 <= result["p50_latency_ms"] <= result["p99_latency_ms"]
    # Sampled SRTP unprotects at the subscribers all authenticate, and the worker saw no
    # bad packet from the publishers.
    assert result["sampled_unprotects"] > 0
    assert result["sample_auth_failures"] == 0
    assert result["sample_other_failures"] == 0
    assert result["worker"]["srtp_auth_failures"] == 0
    assert result["worker"]["internal_errors"] == 0
    assert result["worker"]["rtp_sent"] >= result["packets_delivered"] * 0.95


def test_bench_forward_readable_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = forward.main(["--seconds", "0.5", "--fanout", "2", "--publishers", "2", "--rate", "200"])
    out = capsys.readouterr().out
    assert code == 0
    assert "2 publisher(s) x fan-out 2" in out
    assert "packets per CPU-second" in out
    assert "0 auth failures" in out


@pytest.mark.parametrize(
    "argv",
    [["--size", "5000"], ["--fanout", "0"], ["--rate", "0"], ["--seconds", "-1"]],
)
def test_bench_forward_rejects_bad_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        forward.parse_args(argv)
    assert raised.value.code == 2


def test_default_rate_offers_the_goal() -> None:
    options = forward.parse_args(["--fanout", "10", "--publishers", "2"])
    assert options.effective_rate * 2 * 10 == forward.GOAL_PPS
    assert forward.parse_args(["--rate", "123"]).effective_rate == 123


# -- the synthetic peer against a worker in this process ----------------------------------


@pytest.fixture
async def worker():
    w = Worker(0, "127.0.0.1", 0)
    await w.start()
    yield w
    await w.close()


def _receive(peer: SyntheticPeer) -> list[bytes]:
    return peer.receive_all(time.monotonic())


async def _wait_for(
    peer: SyntheticPeer, predicate, timeout: float = 10.0, each=None
) -> list[bytes]:
    """Collect ``peer``'s media datagrams until ``predicate(new datagram)`` holds for
    one; each datagram is looked at once (SRTP rejects a replayed one). ``each()`` is
    called every 10 ms meanwhile."""
    collected: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"{peer.name}: condition not met in {timeout} s"
        if each is not None:
            each()
        await asyncio.sleep(0.01)
        for datagram in _receive(peer):
            collected.append(datagram)
            if predicate(datagram):
                return collected


def _is_pli(srtp_session, datagram: bytes) -> bool:
    if not 191 < datagram[1] < 224:
        return False
    packets = rtcp.parse_compound(srtp_session.unprotect_rtcp(datagram))
    return any(isinstance(p, rtcp.PictureLossIndication) for p in packets)


async def test_peer_publishes_and_subscribes_through_a_worker(worker: Worker) -> None:
    router_id = worker.create_router()
    pub_info = worker.create_transport(router_id)
    pub = SyntheticPeer(pub_info, name="pub")
    worker.connect_transport(pub_info.id, pub.dtls_parameters, pub.ufrag)
    ssrc = 0x1234
    producer_id = worker.produce(pub_info.id, vp8_parameters(ssrc))
    sub_info = worker.create_transport(router_id)
    sub = SyntheticPeer(sub_info, name="sub")
    worker.connect_transport(sub_info.id, sub.dtls_parameters, sub.ufrag)
    consumer = worker.consume(sub_info.id, producer_id, mid="0")
    try:
        await connect_peers_async([pub, sub], timeout=10)
        assert pub.state is PeerState.CONNECTED and sub.state is PeerState.CONNECTED
        assert pub.srtp is not None and sub.srtp is not None
        assert pub.stun_responses >= 1
        assert worker.transports[pub_info.id].selected_address == pub.local_addr

        # Inter frames first: the consumer waits for a key frame and asks for one (PLI,
        # at most one per 300 ms, so keep sending until it comes).
        source = Vp8Source(ssrc, 600)
        source.keyframe_due = False
        pli_srtp = pub.srtp

        def send_inter_frame() -> None:
            pub.sock.send(pli_srtp.protect(source.next_packet(1000 + source.packets)))

        await _wait_for(pub, lambda datagram: _is_pli(pli_srtp, datagram), each=send_inter_frame)
        # Nothing forwarded before the key frame (RTCP reports from the SFU may come).
        assert [d for d in _receive(sub) if not 191 < d[1] < 224] == []

        # The key frame and what follows reach the subscriber, SRTP-protected for it.
        source.request_keyframe()
        sent = [source.next_packet(90000 + i) for i in range(10)]
        for packet in sent:
            pub.sock.send(pub.srtp.protect(packet))
        rtp_packets: list[bytes] = []

        def forwarded_ten(datagram: bytes) -> bool:
            if not 191 < datagram[1] < 224:  # RTP, not the SFU's sender reports
                assert sub.srtp is not None
                rtp_packets.append(sub.srtp.unprotect(datagram))
            return len(rtp_packets) >= 10

        await _wait_for(sub, forwarded_ten)
        assert len(rtp_packets) == 10
        expected_ssrc = consumer.rtp_parameters.encodings[0].ssrc
        for original, forwarded in zip(sent, rtp_packets, strict=True):
            assert int.from_bytes(forwarded[8:12], "big") == expected_ssrc
            assert forwarded[4:8] == original[4:8]  # first segment: timestamp kept
            assert forwarded[1] & 0x7F == 96
            # Payload intact except the VP8 picture id (rewritten per consumer).
            assert forwarded[FORWARDED_HEADER:][:2] == original[HEADER_SIZE:][:2]
            assert forwarded[FORWARDED_HEADER + 4 :] == original[HEADER_SIZE + 4 :]
        assert is_keyframe(rtp_packets[0][FORWARDED_HEADER:])
        assert not is_keyframe(rtp_packets[1][FORWARDED_HEADER:])
        assert worker.counters.srtp_auth_failures == 0
    finally:
        pub.close()
        sub.close()


async def test_peer_fails_on_a_wrong_server_fingerprint(worker: Worker) -> None:
    router_id = worker.create_router()
    info = worker.create_transport(router_id)
    other = Certificate.generate().fingerprint()
    forged = TransportInfo(
        info.id,
        info.ice_parameters,
        info.ice_candidates,
        DtlsParameters(info.dtls_parameters.role, (other,)),
    )
    peer = SyntheticPeer(forged, name="forged")
    worker.connect_transport(info.id, peer.dtls_parameters, peer.ufrag)
    try:
        with pytest.raises(ConnectionError, match="DTLS"):
            await connect_peers_async([peer], timeout=10)
        assert peer.srtp is None
    finally:
        peer.close()


async def test_peer_fails_on_a_wrong_ice_password(worker: Worker) -> None:
    router_id = worker.create_router()
    info = worker.create_transport(router_id)
    wrong = TransportInfo(
        info.id,
        IceParameters(info.ice_parameters.username_fragment, "x" * 24),
        info.ice_candidates,
        info.dtls_parameters,
    )
    peer = SyntheticPeer(wrong, name="wrong-password")
    worker.connect_transport(info.id, peer.dtls_parameters, peer.ufrag)
    try:
        with pytest.raises(ConnectionError, match="ICE check rejected"):
            await connect_peers_async([peer], timeout=10)
        assert worker.counters.ice_rejected >= 1
        assert worker.transports[info.id].selected_address is None
    finally:
        peer.close()


# -- the VP8 source ---------------------------------------------------------------------------


def test_vp8_source_packets() -> None:
    source = Vp8Source(0xABCD, 1200)
    key = source.next_packet(0x1_0000_0005)  # wrapped to 32 bits
    inter = source.next_packet(7)
    assert len(key) == len(inter) == 1200
    assert key[0] == 0x80 and key[1] == 0x80 | 96  # V=2, marker, PT 96
    assert int.from_bytes(key[8:12], "big") == 0xABCD
    assert int.from_bytes(key[4:8], "big") == 5
    assert (int.from_bytes(inter[2:4], "big") - int.from_bytes(key[2:4], "big")) & 0xFFFF == 1
    assert is_keyframe(key[HEADER_SIZE:]) and keyframe_size(key[HEADER_SIZE:]) == (640, 480)
    assert not is_keyframe(inter[HEADER_SIZE:])
    first, long_id, _ = read_picture_id(key, HEADER_SIZE)
    second, _, _ = read_picture_id(inter, HEADER_SIZE)
    assert long_id and first is not None and second == (first + 1) & 0x7FFF
    source.request_keyframe()
    assert is_keyframe(source.next_packet(8)[HEADER_SIZE:])
    assert source.keyframes == 2 and source.packets == 3
    with pytest.raises(ValueError):
        Vp8Source(1, 20)
