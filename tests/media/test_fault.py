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

from incamera.media import stun
from incamera.media.api import TransportState
from incamera.media.dtls import DtlsState
from incamera.media.worker import Worker
from support.browser import BrowserPeer, PeerGroup, PeerStats
from support.sfu import Conference, Participant, running_worker

pytestmark = pytest.mark.browser

Address = tuple[str, int]
PER_KIND = 500  # datagrams of each malformed kind fired from the socket
BATCH = 50

FUZZ_SETTINGS = settings(
    max_examples=1500,
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
    short = st.builds(
        bytes.__add__, st.integers(0x80, 0xBF).map(lambda b: bytes([b])), st.binary(max_size=12)
    )
    return full | short


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

        fire()

    await assert_undisturbed(session, addresses)
    assert delta(worker, before, "srtp_auth_failures") > 0
    assert delta(worker, before, "datagrams_unknown_source") > 0
    assert delta(worker, before, "ice_rejected") + delta(worker, before, "stun_malformed") > 0
    dtls_after = {t: worker.transports[t].dtls.counters.datagrams_malformed for t in addresses}
    assert sum(dtls_after.values()) > sum(dtls_before.values())
