"""Malformed datagrams do not disturb a running session.

A Chromium publisher and a Chromium subscriber run through the worker while the test:

1. fires a few thousand malformed datagrams at the worker's port from a plain UDP socket on
   127.0.0.1 (random bytes, truncated STUN, STUN with a valid ufrag but a bad
   MESSAGE-INTEGRITY, RTP/RTCP-looking garbage, DTLS record garbage);
2. feeds hypothesis-generated datagrams straight into ``Worker.datagram_received``, also
   "from" the session's real remote addresses (a socket cannot spoof those), which is how
   malformed SRTP/SRTCP/DTLS from a known peer reaches the transports;
3. connects a synthetic peer (a real ICE/DTLS-SRTP client) and sends hypothesis-generated,
   correctly encrypted but malformed RTP and RTCP: what an authenticated but hostile or
   buggy client can make the producer, consumer and RTCP paths see.

Each time the subscriber keeps decoding, the worker counts no internal error, every
transport stays connected on the same address, and the drop counters show the garbage was
seen and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incamera.bench.peer import SyntheticPeer, connect_peers_async
from incamera.media import stun
from incamera.media.api import TransportState
from incamera.media.dtls import DtlsState
from incamera.media.rtp_parameters import (
    Encoding,
    ExtensionUri,
    HeaderExtension,
    MediaKind,
    RtpCodec,
    RtpParameters,
)
from incamera.media.srtp import SrtpError
from incamera.media.worker import Worker
from support.browser import BrowserPeer, PeerGroup, PeerStats
from support.sfu import Conference, Participant, running_worker

pytestmark = pytest.mark.browser

Address = tuple[str, int]
PER_KIND = 500  # datagrams of each malformed kind fired from the socket
BATCH = 50

# Hypothesis runs block the event loop (the worker's and the session's): fuzz in rounds of
# this many examples and let the session run in between.
FUZZ_ROUNDS = 4
FUZZ_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    async with running_worker() as w:
        yield w


@dataclass
class Session:
    worker: Worker
    alice: Participant
    bob: Participant
    pub: BrowserPeer
    sub: BrowserPeer

    @property
    def transports(self) -> list[str]:
        ids = [self.alice.send_transport_id, self.bob.recv_transport_id]
        return [i for i in ids if i is not None]

    def addresses(self) -> dict[str, Address]:
        out: dict[str, Address] = {}
        for transport_id in self.transports:
            selected = self.worker.transports[transport_id].ice.selected
            assert selected is not None
            out[transport_id] = selected
        return out


def frames_decoded(stats: PeerStats) -> int:
    videos = stats.inbound_video()
    return videos[0].frames_decoded if videos else 0


async def start_session(worker: Worker, chromium: PeerGroup) -> Session:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub, sub = await chromium.new_peer("alice"), await chromium.new_peer("bob")
    await pub.publish(alice.answer_publish, audio=True, video=True)
    await bob.subscribe(sub.subscribe_offer, alice.producer_ids)
    await sub.wait_for(lambda s: frames_decoded(s) >= 10, timeout=20)
    return Session(worker, alice, bob, pub, sub)


async def assert_undisturbed(session: Session, addresses: dict[str, Address]) -> None:
    """Decoding goes on, and every transport is still connected where it was."""
    first = frames_decoded(await session.sub.stats())
    await session.sub.wait_for(lambda s: frames_decoded(s) >= first + 40, timeout=20)
    for transport_id, address in addresses.items():
        transport = session.worker.transports[transport_id]
        assert transport.state is TransportState.CONNECTED
        assert transport.dtls.state is DtlsState.CONNECTED
        assert transport.ice.selected == address
    assert session.worker.stats().counters["internal_errors"] == 0


def delta(worker: Worker, before: dict[str, int], name: str) -> int:
    return worker.stats().counters[name] - before[name]


@contextlib.contextmanager
def udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


# ---------------------------------------------------------------------------------------------
# 1. From a plain UDP socket


def binding_request(rng: random.Random, ufrag: str, remote_ufrag: str, key: bytes) -> bytes:
    attributes = [
        (stun.USERNAME, f"{ufrag}:{remote_ufrag}".encode()),
        (stun.PRIORITY, rng.randbytes(4)),
        (stun.ICE_CONTROLLING, rng.randbytes(8)),
        (stun.USE_CANDIDATE, b""),
    ]
    return stun.build(stun.BINDING_REQUEST, rng.randbytes(12), attributes, integrity_key=key)


def dtls_garbage(rng: random.Random) -> bytes:
    records = b""
    for _ in range(rng.randint(1, 3)):
        body = rng.randbytes(rng.randint(0, 200))
        length = rng.choice([len(body), rng.randint(0, 0xFFFF), len(body) + 1])
        content_type = rng.choice([22, 22, 20, 21, 23, rng.randint(20, 63)])
        header = struct.pack("!BHH6sH", content_type, 0xFEFD, rng.randint(0, 2), b"", length)
        records += header + body
    return records[: rng.randint(1, len(records))] if rng.random() < 0.3 else records


def malformed_datagrams(
    rng: random.Random, credentials: list[tuple[str, str]]
) -> dict[str, list[bytes]]:
    """``credentials``: (local ufrag, remote ufrag) of the session's transports."""
    kinds: dict[str, list[bytes]] = {k: [] for k in ("random", "truncated_stun", "bad_integrity")}
    kinds.update({k: [] for k in ("rtp", "rtcp", "dtls")})
    for _ in range(PER_KIND):
        ufrag, remote = rng.choice(credentials)
        kinds["random"].append(rng.randbytes(rng.randint(0, 1300)))
        full = binding_request(rng, ufrag, remote, rng.randbytes(24))
        kinds["truncated_stun"].append(full[: rng.randint(1, len(full) - 1)])
        kinds["bad_integrity"].append(binding_request(rng, ufrag, remote, rng.randbytes(24)))
        kinds["rtp"].append(
            bytes([rng.randint(0x80, 0xBF), rng.choice([96, 111, 0x80 | 96, 97])])
            + rng.randbytes(rng.randint(0, 1200))
        )
        kinds["rtcp"].append(
            bytes([rng.randint(0x80, 0xBF), rng.randint(200, 206)])
            + rng.randbytes(rng.randint(0, 300))
        )
        kinds["dtls"].append(dtls_garbage(rng))
    return kinds


async def test_malformed_datagrams_at_the_port_do_not_disturb_a_session(
    worker: Worker, chromium: PeerGroup
) -> None:
    session = await start_session(worker, chromium)
    addresses = session.addresses()
    credentials = []
    for transport_id in session.transports:
        ice = worker.transports[transport_id].ice
        assert ice.remote_ufrag is not None
        credentials.append((ice.ufrag, ice.remote_ufrag))
    kinds = malformed_datagrams(random.Random(2), credentials)
    datagrams = [d for batch in kinds.values() for d in batch]
    random.Random(3).shuffle(datagrams)
    before = worker.stats().counters

    responses: list[stun.StunMessage] = []
    with udp_socket() as sock:

        def drain() -> None:
            with contextlib.suppress(BlockingIOError):
                while True:
                    responses.append(stun.StunMessage.parse(sock.recv(2048)))

        for i in range(0, len(datagrams), BATCH):
            for datagram in datagrams[i : i + BATCH]:
                sock.sendto(datagram, worker.address)
            await asyncio.sleep(0.005)  # let the worker drain its socket
            drain()

        # Every malformed datagram is counted where it belongs (the kernel does not drop on
        # loopback at this pace; the deadline only bounds the wait).
        from_new_address = len(kinds["rtp"]) + len(kinds["rtcp"]) + len(kinds["dtls"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline and (
            delta(worker, before, "datagrams_unknown_source") < from_new_address
            or delta(worker, before, "ice_rejected") < PER_KIND
            or delta(worker, before, "stun_malformed") < PER_KIND
        ):
            await asyncio.sleep(0.05)
        assert delta(worker, before, "datagrams_unknown_source") >= from_new_address
        assert delta(worker, before, "ice_rejected") >= PER_KIND
        assert delta(worker, before, "stun_malformed") >= PER_KIND
        assert delta(worker, before, "datagrams_unclassified") > 0

        # The socket got 401s for the forged checks, never a success.
        drain()
        assert len(responses) >= PER_KIND
        assert {r.message_type for r in responses} == {stun.BINDING_ERROR}
        assert {code for r in responses if (code := r.error_code())} <= {
            (401, "Unauthorized"),
            (400, "Bad Request"),
        }

    await assert_undisturbed(session, addresses)
    # Nothing of it reached SRTP: the session's own packets all authenticated.
    assert delta(worker, before, "srtp_auth_failures") == 0


# ---------------------------------------------------------------------------------------------
# 2. Hypothesis datagrams into datagram_received, also from the session's real addresses

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def rtp_like(ssrcs: list[int]) -> st.SearchStrategy[bytes]:
    header = st.builds(
        lambda b0, b1, seq, ts, ssrc: struct.pack("!BBHII", b0, b1, seq, ts, ssrc),
        st.integers(0x80, 0xBF),
        u8,
        u16,
        u32,
        st.sampled_from(ssrcs) | u32,
    )
    full = st.builds(bytes.__add__, header, st.binary(max_size=300))
    # a plain 12-byte header and a payload long enough to carry an SRTP tag: only the
    # authentication check can reject these
    plain = st.builds(
        lambda b1, seq, ts, ssrc, payload: struct.pack("!BBHII", 0x80, b1, seq, ts, ssrc) + payload,
        st.integers(0, 127) | st.integers(200, 206),
        u16,
        u32,
        st.sampled_from(ssrcs) | u32,
        st.binary(min_size=24, max_size=300),
    )
    short = st.builds(
        bytes.__add__, st.integers(0x80, 0xBF).map(lambda b: bytes([b])), st.binary(max_size=12)
    )
    return plain | full | short


def dtls_like() -> st.SearchStrategy[bytes]:
    record = st.builds(
        lambda ct, version, epoch, seq, body, length: (
            struct.pack("!BHH6sH", ct, version, epoch, seq, len(body) if length is None else length)
            + body
        ),
        st.sampled_from([20, 21, 22, 23]) | st.integers(20, 63),
        st.sampled_from([0xFEFD, 0xFEFF]) | u16,
        st.integers(0, 3) | u16,
        st.binary(min_size=6, max_size=6),
        st.binary(max_size=200),
        st.none() | u16,
    )
    records = st.lists(record, min_size=1, max_size=3).map(b"".join)
    return records | st.builds(lambda b: bytes([22]) + b, st.binary(max_size=30))


def stun_like(credentials: list[str]) -> st.SearchStrategy[bytes]:
    username = st.sampled_from(credentials).map(str.encode) | st.binary(max_size=40)
    attribute = st.one_of(
        st.tuples(st.just(stun.USERNAME), username),
        st.tuples(
            st.sampled_from(
                [
                    stun.MESSAGE_INTEGRITY,
                    stun.FINGERPRINT,
                    stun.PRIORITY,
                    stun.USE_CANDIDATE,
                    stun.ICE_CONTROLLING,
                    stun.ICE_CONTROLLED,
                    stun.XOR_MAPPED_ADDRESS,
                    stun.ERROR_CODE,
                ]
            )
            | u16,
            st.binary(max_size=32),
        ),
    )

    def build(
        message_type: int,
        attributes: list[tuple[int, bytes]],
        key: bytes | None,
        fingerprint: bool,
        flip: tuple[int, int] | None,
    ) -> bytes:
        data = bytearray(
            stun.build(
                message_type, bytes(12), attributes, integrity_key=key, fingerprint=fingerprint
            )
        )
        if flip is not None:
            data[flip[0] % len(data)] = flip[1]
        return bytes(data)

    return st.builds(
        build,
        st.sampled_from([stun.BINDING_REQUEST, stun.BINDING_INDICATION, stun.BINDING_SUCCESS])
        | st.integers(0, 0x3FFF),
        st.lists(attribute, max_size=5),
        st.none() | st.binary(min_size=1, max_size=24),
        st.booleans(),
        st.none() | st.tuples(u16, u8),
    )


async def test_hypothesis_datagrams_from_known_and_unknown_addresses(
    worker: Worker, chromium: PeerGroup
) -> None:
    session = await start_session(worker, chromium)
    addresses = session.addresses()
    credentials = []
    ssrcs: list[int] = []
    for transport_id in session.transports:
        transport = worker.transports[transport_id]
        credentials.append(f"{transport.ice.ufrag}:{transport.ice.remote_ufrag}")
        for producer in transport.producers.values():
            ssrcs += [s for st_ in producer.streams for s in (st_.ssrc, st_.rtx_ssrc) if s]
        for consumer in transport.consumers.values():
            ssrcs += [s for s in (consumer.ssrc, consumer.rtx_ssrc) if s]
    dtls_before = {t: worker.transports[t].dtls.counters.datagrams_malformed for t in addresses}
    before = worker.stats().counters

    with udp_socket() as sink:  # where answers to the made-up address go
        stranger = sink.getsockname()
        datagram = st.one_of(
            rtp_like(ssrcs), dtls_like(), stun_like(credentials), st.binary(max_size=200)
        )
        source = st.sampled_from([*addresses.values(), stranger])

        @FUZZ_SETTINGS
        @given(data=datagram, addr=source)
        def fire(data: bytes, addr: Address) -> None:
            errors = worker.counters.internal_errors
            worker.datagram_received(data, addr)
            assert worker.counters.internal_errors == errors

        for _ in range(FUZZ_ROUNDS):
            fire()
            await asyncio.sleep(0.05)

    await assert_undisturbed(session, addresses)
    # SRTP/SRTCP garbage from the peers' own addresses failed authentication or was not even
    # a packet libsrtp could read; either way it was counted and dropped.
    srtp_drops = ("srtp_auth_failures", "srtp_replays", "srtp_other_errors")
    assert sum(delta(worker, before, name) for name in srtp_drops) > 0
    assert delta(worker, before, "srtp_auth_failures") > 0
    assert delta(worker, before, "datagrams_unknown_source") > 0
    assert delta(worker, before, "ice_rejected") + delta(worker, before, "stun_malformed") > 0
    dtls_after = {t: worker.transports[t].dtls.counters.datagrams_malformed for t in addresses}
    assert sum(dtls_after.values()) > sum(dtls_before.values())


# ---------------------------------------------------------------------------------------------
# 3. Malformed but authentic RTP/RTCP from a connected (synthetic) peer

MID, RID, RRID, TWCC, LEVEL = 1, 10, 11, 4, 2
AUDIO_SSRC, VIDEO_RTX_PT = 0x1A0D10, 97
# SSRCs the fuzz uses for the camera; the worker learns them from MID/RID (RFC 8852).
CAMERA_SSRCS = [0x5100, 0x5101, 0x5102, 0x5200, 0x5201, 0x5202]


def hostile_parameters() -> list[RtpParameters]:
    """A simulcast VP8 camera (rids only: SSRCs are learnt from MID/RID) and an Opus mic."""
    extensions = (
        HeaderExtension(ExtensionUri.MID, MID),
        HeaderExtension(ExtensionUri.RID, RID),
        HeaderExtension(ExtensionUri.REPAIRED_RID, RRID),
        HeaderExtension(ExtensionUri.TRANSPORT_CC, TWCC),
    )
    vp8 = RtpCodec(
        "video/VP8", 96, 90000, rtcp_feedback=("nack", "nack pli"), rtx_payload_type=VIDEO_RTX_PT
    )
    opus = RtpCodec("audio/opus", 111, 48000, 2)
    layers = tuple(
        Encoding(rid=r, scale_resolution_down_by=f) for r, f in (("q", 4.0), ("h", 2.0), ("f", 1.0))
    )
    return [
        RtpParameters("0", MediaKind.VIDEO, (vp8,), extensions, layers, "hostile"),
        RtpParameters(
            "1",
            MediaKind.AUDIO,
            (opus,),
            (*extensions[:1], HeaderExtension(ExtensionUri.AUDIO_LEVEL, LEVEL)),
            (Encoding(ssrc=AUDIO_SSRC),),
            "hostile",
        ),
    ]


EXTENSION_ELEMENT = st.one_of(
    st.tuples(
        st.just(MID), st.sampled_from([b"0", b"1", b"7"]) | st.binary(min_size=1, max_size=16)
    ),
    st.tuples(
        st.sampled_from([RID, RRID]),
        st.sampled_from([b"q", b"h", b"f"]) | st.binary(min_size=1, max_size=16),
    ),
    st.tuples(st.just(TWCC), st.binary(min_size=1, max_size=3)),
    st.tuples(st.just(LEVEL), st.binary(min_size=1, max_size=2)),
    st.tuples(st.integers(0, 15), st.binary(min_size=1, max_size=16)),
)


def extension_block(elements: list[tuple[int, bytes]], words: int | None = None) -> bytes:
    """An RFC 8285 one-byte extension block; ``words`` overrides its length field."""
    body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
    body += bytes(-len(body) % 4)
    count = len(body) // 4 if words is None else words
    return b"\xbe\xde" + count.to_bytes(2, "big") + body


def rtp_packet(
    pt: int,
    marker: bool,
    ts: int,
    ssrc: int,
    ext: bytes | None,
    csrcs: int,
    payload: bytes,
    padding: int | None,
) -> bytes:
    """An RTP packet with sequence number 0 (the test numbers packets per SSRC)."""
    b0 = 0x80 | (0x10 if ext is not None else 0) | (0x20 if padding is not None else 0) | csrcs
    head = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, 0, ts, ssrc)
    tail = b"" if padding is None else bytes([padding])
    return head + bytes(4 * csrcs) + (ext or b"") + payload + tail


# (ssrc, payload type, the extension elements that bind the SSRC to its stream)
HOSTILE_STREAMS = [
    (AUDIO_SSRC, 111, [(MID, b"1"), (LEVEL, b"\x10")]),
    *((CAMERA_SSRCS[i], 96, [(MID, b"0"), (RID, rid)]) for i, rid in enumerate((b"q", b"h", b"f"))),
    *(
        (CAMERA_SSRCS[3 + i], VIDEO_RTX_PT, [(MID, b"0"), (RRID, rid)])
        for i, rid in enumerate((b"q", b"h", b"f"))
    ),
]


def authentic_rtp(ssrcs: list[int]) -> st.SearchStrategy[bytes]:
    vp8_payload = st.one_of(
        st.binary(max_size=200),
        # a key frame start: descriptor, frame tag, start code, 14-bit sizes
        st.builds(
            lambda d, tag, size, rest: d + tag + b"\x9d\x01\x2a" + size + rest,
            st.binary(min_size=1, max_size=6),
            st.binary(min_size=3, max_size=3),
            st.binary(min_size=0, max_size=4),
            st.binary(max_size=64),
        ),
    )
    elements = st.lists(EXTENSION_ELEMENT, max_size=4)
    # Plausible packets of the hostile streams, with malformed details.
    plausible = st.builds(
        lambda stream, marker, ts, extra, payload, padding: rtp_packet(
            stream[1],
            marker,
            ts,
            stream[0],
            extension_block(stream[2] + extra),
            0,
            payload,
            padding,
        ),
        st.sampled_from(HOSTILE_STREAMS),
        st.booleans(),
        u32,
        st.lists(EXTENSION_ELEMENT, max_size=2),
        vp8_payload,
        st.none() | st.none() | u8,
    )
    anything = st.builds(
        rtp_packet,
        st.sampled_from([96, VIDEO_RTX_PT, 111]) | st.integers(0, 127),
        st.booleans(),
        u32,
        st.sampled_from(ssrcs) | u32,
        st.none() | st.builds(extension_block, elements, st.none() | u16),
        st.integers(0, 15) | st.just(0),
        vp8_payload,
        st.none() | u8,
    )
    return plausible | anything


def authentic_rtcp(ssrcs: list[int], consumer_ssrcs: list[int]) -> st.SearchStrategy[bytes]:
    ssrc = st.sampled_from(consumer_ssrcs) | st.sampled_from(ssrcs) | u32

    def packet(count: int, pt: int, body: bytes, length: int | None) -> bytes:
        words = (len(body) + 3) // 4
        body += bytes(4 * words - len(body))
        field = words if length is None else length
        return struct.pack("!BBH", 0x80 | count, pt, field) + body

    nack = st.builds(
        lambda s, m, fci: s + m + fci,
        ssrc.map(_u32),
        ssrc.map(_u32),
        st.lists(st.binary(min_size=4, max_size=4), max_size=8).map(b"".join),
    )
    pli = st.builds(lambda s, m: s + m, ssrc.map(_u32), ssrc.map(_u32))
    fir = st.builds(
        lambda s, m, fci: s + _u32(0) + fci,
        ssrc.map(_u32),
        ssrc.map(_u32),
        st.lists(st.builds(lambda t, n: _u32(t) + bytes([n, 0, 0, 0]), ssrc, u8), max_size=3).map(
            b"".join
        ),
    )
    remb = st.builds(
        lambda s, n, e, targets: s + _u32(0) + b"REMB" + bytes([n]) + e + targets,
        ssrc.map(_u32),
        u8,
        st.binary(min_size=3, max_size=3),
        st.lists(ssrc.map(_u32), max_size=3).map(b"".join),
    )
    report = st.builds(
        lambda s, blocks: s + blocks,
        ssrc.map(_u32),
        st.lists(
            st.builds(lambda t, rest: _u32(t) + rest, ssrc, st.binary(min_size=20, max_size=20)),
            max_size=3,
        ).map(b"".join),
    )
    sr = st.builds(
        lambda s, info, blocks: s + info + blocks,
        ssrc.map(_u32),
        st.binary(min_size=20, max_size=20),
        st.binary(max_size=48),
    )
    length = st.none() | st.integers(0, 0xFFFF)
    one = st.one_of(
        st.builds(packet, st.just(1) | st.integers(0, 31), st.just(205), nack, length),
        st.builds(
            packet,
            st.just(15) | st.integers(0, 31),
            st.just(205),
            st.builds(bytes.__add__, pli, st.binary(max_size=40)),
            length,
        ),
        st.builds(packet, st.just(1), st.just(206), pli, length),
        st.builds(packet, st.just(4), st.just(206), fir, length),
        st.builds(packet, st.just(15), st.just(206), remb, length),
        st.builds(packet, st.integers(0, 3), st.just(201), report, length),
        st.builds(packet, st.integers(0, 3), st.just(200), sr, length),
        st.builds(
            packet, st.integers(0, 31), st.integers(192, 223), st.binary(max_size=60), length
        ),
    )
    return one | st.lists(one, min_size=2, max_size=3).map(b"".join)


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


async def test_malformed_authentic_media_from_a_connected_peer(
    worker: Worker, chromium: PeerGroup
) -> None:
    session = await start_session(worker, chromium)
    addresses = session.addresses()
    info = worker.create_transport(session.alice.router_id)
    peer = SyntheticPeer(info, name="hostile")
    try:
        worker.connect_transport(info.id, peer.dtls_parameters, peer.ufrag)
        await connect_peers_async([peer], timeout=10)
        assert peer.srtp is not None
        srtp = peer.srtp
        producers = [worker.produce(info.id, p) for p in hostile_parameters()]
        # It also consumes its own camera and alice's, so its RTCP reaches consumers.
        alice_video = session.alice.producer_ids_of(MediaKind.VIDEO)[0]
        consumers = [worker.consume(info.id, p) for p in (producers[0], alice_video)]
        consumer_ssrcs = [
            s
            for c in consumers
            for s in (c.rtp_parameters.encodings[0].ssrc, c.rtp_parameters.encodings[0].rtx_ssrc)
            if s
        ]
        ssrcs = [AUDIO_SSRC, *CAMERA_SSRCS, *consumer_ssrcs]
        peer_address = worker.transports[info.id].ice.selected
        assert peer_address is not None
        before = worker.stats().counters
        sent = {"rtp": 0, "rtcp": 0}
        next_seq: dict[int, int] = {}

        @FUZZ_SETTINGS
        @given(
            rtp=authentic_rtp(ssrcs),
            rtcp=authentic_rtcp(ssrcs, consumer_ssrcs),
            send_rtcp=st.booleans(),
            jump=st.sampled_from([1, 1, 1, 1, 2, 3, 20, 300, 0x7FFF, 0xFFFF]),
        )
        def fire(rtp: bytes, rtcp: bytes, send_rtcp: bool, jump: int) -> None:
            if not send_rtcp:  # number each SSRC's packets, mostly in order, so SRTP takes them
                ssrc = int.from_bytes(rtp[8:12], "big")
                seq = next_seq[ssrc] = (next_seq.get(ssrc, 0) + jump) & 0xFFFF
                rtp = rtp[:2] + seq.to_bytes(2, "big") + rtp[4:]
            try:
                protected = srtp.protect_rtcp(rtcp) if send_rtcp else srtp.protect(rtp)
            except SrtpError:
                return  # libsrtp would not even encrypt it
            sent["rtcp" if send_rtcp else "rtp"] += 1
            errors = worker.counters.internal_errors
            worker.datagram_received(protected, peer_address)
            assert worker.counters.internal_errors == errors

        for _ in range(FUZZ_ROUNDS):
            fire()
            await asyncio.sleep(0.05)
        peer.receive_all(0.0)  # drop what the worker sent it meanwhile

        assert sent["rtp"] > 100 and sent["rtcp"] > 100
        assert delta(worker, before, "rtp_received") > 0
        assert delta(worker, before, "rtcp_received") > 0
        assert delta(worker, before, "rtcp_malformed") > 0
        assert worker.producers[producers[0]].packets_received > 0
        assert worker.transports[info.id].state is TransportState.CONNECTED
        await assert_undisturbed(session, addresses)
    finally:
        peer.close()
