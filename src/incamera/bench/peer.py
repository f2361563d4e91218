"""A synthetic WebRTC peer of one SFU transport, for benchmarks and tests.

It does what a browser does on the wire, and nothing more: ICE as the controlling agent
against the SFU's ICE-lite transport (RFC 8445 section 7.2.4: Binding requests with USERNAME
``"<server ufrag>:<peer ufrag>"``, PRIORITY, ICE-CONTROLLING and USE-CANDIDATE, signed with
MESSAGE-INTEGRITY keyed with the *server's* password, then FINGERPRINT), a DTLS client
handshake checked against the server's SDP fingerprint (RFC 5763), SRTP keys from it
(RFC 5764), and consent refreshes every few seconds (RFC 7675).

The peer owns one non-blocking UDP socket connected to the server's candidate, so the kernel
drops anything not from the SFU. It does not interpret media: :meth:`SyntheticPeer.handle`
consumes STUN and DTLS and hands back RTP/RTCP datagrams to the caller, which sends and
receives media through :attr:`SyntheticPeer.sock` and :attr:`SyntheticPeer.srtp` itself (the
benchmark's hot loop must not pay for a method call per packet).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import select
import socket
import time
from enum import StrEnum

from incamera.media import stun
from incamera.media.api import DtlsParameters, DtlsRole, TransportInfo
from incamera.media.certificate import Certificate
from incamera.media.dtls import DtlsEndpoint, DtlsState
from incamera.media.errors import ParseError
from incamera.media.ice import random_ice_string
from incamera.media.srtp import SrtpSession

Address = tuple[str, int]

CHECK_RETRANSMIT = 0.05  # seconds between unanswered connectivity checks during setup
CONSENT_INTERVAL = 5.0  # RFC 7675 section 5.1: about every 5 s (the SFU drops after 30 s)
SOCKET_BUFFER = 4 * 1024 * 1024
# A host candidate's priority for the peer's own (reflexive-less) address (RFC 8445 5.1.2.1).
PEER_PRIORITY = (110 << 24) | (65535 << 8) | 255


class PeerState(StrEnum):
    NEW = "new"
    CHECKING = "checking"  # connectivity checks sent, no success response yet
    HANDSHAKING = "handshaking"  # ICE nominated, DTLS running
    CONNECTED = "connected"  # SRTP keys installed
    FAILED = "failed"


class SyntheticPeer:
    """ICE controlling agent + DTLS client + SRTP session for one SFU transport."""

    def __init__(
        self,
        server: TransportInfo,
        *,
        certificate: Certificate | None = None,
        local_ip: str = "127.0.0.1",
        name: str = "peer",
    ) -> None:
        if not server.ice_candidates:
            raise ValueError("the server transport has no ICE candidate")
        candidate = server.ice_candidates[0]
        self.name = name
        self.server = server
        self.server_addr: Address = (candidate.ip, candidate.port)
        self._server_key = server.ice_parameters.password.encode()
        self._username = f"{server.ice_parameters.username_fragment}:".encode()
        self.ufrag = random_ice_string(8)
        self.password = random_ice_string(24)
        self._username += self.ufrag.encode()
        self._tie_breaker = secrets.randbits(64).to_bytes(8, "big")
        self.certificate = certificate or Certificate.generate()
        self.dtls = DtlsEndpoint(
            self.certificate, DtlsRole.CLIENT, server.dtls_parameters.fingerprints
        )
        self.srtp: SrtpSession | None = None
        self.state = PeerState.NEW
        self.failure_reason = ""
        family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        self.sock.bind((local_ip, 0))
        self.sock.connect(self.server_addr)
        self.sock.setblocking(False)
        self.local_addr: Address = self.sock.getsockname()[:2]
        self._transactions: dict[bytes, float] = {}
        self._next_check = 0.0
        # what arrived that was not media
        self.stun_responses = 0
        self.stun_errors = 0
        self.dtls_datagrams = 0

    # -- signalling ------------------------------------------------------------------------

    @property
    def dtls_parameters(self) -> DtlsParameters:
        """What the control plane passes to ``connect_transport`` for this peer."""
        return DtlsParameters(DtlsRole.CLIENT, (self.certificate.fingerprint("sha-256"),))

    @property
    def connected(self) -> bool:
        return self.state is PeerState.CONNECTED

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- ICE -------------------------------------------------------------------------------

    def binding_request(self) -> tuple[bytes, bytes]:
        """A nominating connectivity check (RFC 8445 7.2.4, 8.1.1 aggressive nomination):
        returns ``(transaction id, datagram)``."""
        transaction_id = secrets.token_bytes(12)
        attributes = [
            (stun.USERNAME, self._username),
            (stun.PRIORITY, PEER_PRIORITY.to_bytes(4, "big")),
            (stun.ICE_CONTROLLING, self._tie_breaker),
            (stun.USE_CANDIDATE, b""),
        ]
        datagram = stun.build(
            stun.BINDING_REQUEST, transaction_id, attributes, integrity_key=self._server_key
        )
        return transaction_id, datagram

    def send_check(self, now: float) -> None:
        transaction_id, datagram = self.binding_request()
        self._transactions[transaction_id] = now
        if len(self._transactions) > 64:  # unanswered checks: keep only recent ones
            for old in list(itertools.islice(self._transactions, 32)):
                del self._transactions[old]
        self._send(datagram)
        interval = CONSENT_INTERVAL if self.state is PeerState.CONNECTED else CHECK_RETRANSMIT
        self._next_check = now + interval

    def _on_stun(self, data: bytes) -> None:
        try:
            message = stun.StunMessage.parse(data)
        except ParseError:
            self.stun_errors += 1
            return
        if self._transactions.pop(message.transaction_id, None) is None:
            return  # not an answer to one of our checks
        if message.message_type != stun.BINDING_SUCCESS or not stun.verify_message_integrity(
            data, self._server_key
        ):
            self.stun_errors += 1
            if self.state is PeerState.CHECKING and message.message_type == stun.BINDING_ERROR:
                code = message.error_code()
                self._fail(f"ICE check rejected: {code}")
            return
        self.stun_responses += 1
        if self.state is PeerState.CHECKING:
            self.state = PeerState.HANDSHAKING
            self._send_all(self.dtls.start())

    # -- DTLS ------------------------------------------------------------------------------

    def _on_dtls(self, data: bytes) -> None:
        self.dtls_datagrams += 1
        self._send_all(self.dtls.feed(data))
        self._check_dtls()

    def _check_dtls(self) -> None:
        if self.state is not PeerState.HANDSHAKING:
            return
        if self.dtls.state is DtlsState.CONNECTED:
            self.srtp = SrtpSession(self.dtls.srtp_keys())
            self.state = PeerState.CONNECTED
        elif self.dtls.state in (DtlsState.FAILED, DtlsState.CLOSED):
            self._fail(f"DTLS {self.dtls.state}: {self.dtls.failure_reason}")

    # -- driving ---------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Send the first connectivity check."""
        if self.state is PeerState.NEW:
            self.state = PeerState.CHECKING
            self.send_check(now)

    def handle(self, data: bytes, now: float) -> bytes | None:
        """One datagram from the SFU: STUN and DTLS are consumed (None is returned), RTP and
        RTCP (still SRTP-protected) are returned for the caller (RFC 7983 demultiplexing)."""
        if not data:
            return None
        first = data[0]
        if 127 < first < 192:
            return data
        if first < 4:
            self._on_stun(data)
        elif 19 < first < 64:
            self._on_dtls(data)
        return None

    def poll(self, now: float) -> None:
        """Run the timers: unanswered checks, consent refreshes, DTLS retransmissions."""
        if self.state in (PeerState.NEW, PeerState.FAILED):
            return
        if now >= self._next_check:
            self.send_check(now)
        if self.state is PeerState.HANDSHAKING:
            timeout = self.dtls.next_timeout()
            if timeout is not None and timeout <= 0:
                self._send_all(self.dtls.handle_timeout())
                self._check_dtls()

    def next_deadline(self) -> float:
        """Monotonic time at which :meth:`poll` next has something to do (approximate)."""
        deadline = self._next_check
        if self.state is PeerState.HANDSHAKING:
            timeout = self.dtls.next_timeout()
            if timeout is not None:
                deadline = min(deadline, time.monotonic() + timeout)
        return deadline

    def receive_all(self, now: float) -> list[bytes]:
        """Drain the socket through :meth:`handle`; returns the media datagrams."""
        media: list[bytes] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return media
            except ConnectionRefusedError:  # ICMP port unreachable: the SFU is not up yet
                continue
            packet = self.handle(data, now)
            if packet is not None:
                media.append(packet)

    def close(self) -> None:
        if self.dtls.state in (DtlsState.CONNECTING, DtlsState.CONNECTED):
            self._send_all(self.dtls.close())
        self.sock.close()

    def _send(self, datagram: bytes) -> None:
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError, InterruptedError):
            self.sock.send(datagram)

    def _send_all(self, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            self._send(datagram)

    def _fail(self, reason: str) -> None:
        self.state = PeerState.FAILED
        self.failure_reason = reason


def connect_peers(
    peers: list[SyntheticPeer], timeout: float = 20.0
) -> dict[SyntheticPeer, list[bytes]]:
    """Run ICE and DTLS for all ``peers`` at once until every one is connected.

    Returns the media datagrams that arrived meanwhile, per peer. Raises ``TimeoutError``
    after ``timeout`` seconds, and ``ConnectionError`` if a peer fails.
    """
    media: dict[SyntheticPeer, list[bytes]] = {peer: [] for peer in peers}
    by_fd = {peer.fileno(): peer for peer in peers}
    now = time.monotonic()
    deadline = now + timeout
    for peer in peers:
        peer.start(now)
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    while True:
        pending = [p for p in peers if not p.connected]
        failed = [p for p in pending if p.state is PeerState.FAILED]
        if failed:
            raise ConnectionError(f"{failed[0].name}: {failed[0].failure_reason}")
        if not pending:
            return media
        now = time.monotonic()
        if now > deadline:
            states = ", ".join(f"{p.name}={p.state}" for p in pending[:5])
            raise TimeoutError(f"{len(pending)} peers not connected after {timeout} s: {states}")
        wait = min(p.next_deadline() for p in pending) - now
        for fd, _ in poller.poll(max(0, min(wait, 0.05)) * 1000):
            peer = by_fd[fd]
            media[peer].extend(peer.receive_all(time.monotonic()))
        now = time.monotonic()
        for peer in pending:
            peer.poll(now)


async def connect_peers_async(
    peers: list[SyntheticPeer], timeout: float = 20.0, interval: float = 0.005
) -> dict[SyntheticPeer, list[bytes]]:
    """:func:`connect_peers` for a caller whose event loop must keep running meanwhile
    (e.g. a test with the SFU worker in the same process): polls every ``interval``."""
    media: dict[SyntheticPeer, list[bytes]] = {peer: [] for peer in peers}
    now = time.monotonic()
    deadline = now + timeout
    for peer in peers:
        peer.start(now)
    while True:
        now = time.monotonic()
        for peer in peers:
            media[peer].extend(peer.receive_all(now))
            peer.poll(now)
        failed = [p for p in peers if p.state is PeerState.FAILED]
        if failed:
            raise ConnectionError(f"{failed[0].name}: {failed[0].failure_reason}")
        pending = [p for p in peers if not p.connected]
        if not pending:
            return media
        if now > deadline:
            states = ", ".join(f"{p.name}={p.state}" for p in pending[:5])
            raise TimeoutError(f"{len(pending)} peers not connected after {timeout} s: {states}")
        await asyncio.sleep(interval)
