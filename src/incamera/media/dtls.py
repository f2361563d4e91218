"""DTLS 1.2 endpoint for DTLS-SRTP (RFC 6347, RFC 5764, RFC 8827 section 6.5).

:class:`DtlsEndpoint` is a sans-I/O state machine around an OpenSSL DTLS connection on
memory BIOs: the caller feeds it received datagrams and sends the datagrams it returns, and
calls :meth:`DtlsEndpoint.handle_timeout` when :meth:`DtlsEndpoint.next_timeout` says so, so
that lost handshake flights are retransmitted (RFC 6347 section 4.2.4).

The peer is authenticated by the fingerprint of its certificate as signalled in SDP
(RFC 8122, RFC 5763 section 5), not by a certificate chain. Once connected the endpoint
exports SRTP master keys and salts (RFC 5764 section 4.2) for :class:`~.srtp.SrtpSession`.

Nothing fed to the endpoint makes it raise: datagrams that are not well-formed DTLS records
are counted and dropped; a handshake that fails moves the endpoint to ``FAILED``, an alert or
close_notify on an established association to ``CLOSED``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

from cryptography import x509
from OpenSSL import SSL, crypto

from .api import DtlsFingerprint, DtlsRole
from .certificate import FINGERPRINT_ALGORITHMS, Certificate, certificate_fingerprint
from .dtls_record import parse_records, split_records
from .errors import MediaError, ParseError
from .srtp import DEFAULT_SRTP_PROFILES, SrtpKeys, SrtpProfile

DTLS1_2_VERSION = 0xFEFD
DEFAULT_MTU = 1200
SRTP_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"

# AEAD suites with forward secrecy first; the RSA ones only matter when we are the client of
# a peer with an RSA certificate. CBC suites are kept last for older stacks.
CIPHER_LIST = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
    )
)

_READ_SIZE = 65536


class DtlsState(StrEnum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(slots=True)
class DtlsCounters:
    """What happened to the datagrams fed to one endpoint (for the worker's statistics)."""

    datagrams_received: int = 0
    datagrams_malformed: int = 0  # not a sequence of well-formed DTLS records: dropped
    datagrams_ignored: int = 0  # arrived after the endpoint failed or closed
    datagrams_sent: int = 0
    retransmissions: int = 0  # handshake flights resent on timeout
    application_data_ignored: int = 0  # DTLS application data (no data channels here)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def fingerprint_matches(
    certificate: x509.Certificate, fingerprints: Iterable[DtlsFingerprint]
) -> bool:
    """Whether the certificate matches one of the fingerprints (RFC 8122 section 5).

    Fingerprints with an unknown hash function are skipped; hex digits compare without
    regard to case.
    """
    for expected in fingerprints:
        if expected.algorithm.lower() not in FINGERPRINT_ALGORITHMS:
            continue
        actual = certificate_fingerprint(certificate, expected.algorithm)
        if actual.value == expected.value.strip().upper():
            return True
    return False


def _verify_callback(
    connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    """Accept any chain (self-signed is the rule in WebRTC) but check the leaf's fingerprint
    when the remote fingerprints are already known, so that a mismatch aborts the handshake
    with a bad_certificate alert."""
    endpoint = connection.get_app_data()
    if depth != 0 or not isinstance(endpoint, DtlsEndpoint):
        return True
    return endpoint._accepts_peer_certificate(cert.to_cryptography())


@functools.lru_cache(maxsize=32)
def _context(certificate: Certificate, profiles: tuple[SrtpProfile, ...]) -> SSL.Context:
    """One OpenSSL context per certificate and profile list, shared by its connections."""
    context = SSL.Context(SSL.DTLS_METHOD)
    context.set_min_proto_version(DTLS1_2_VERSION)
    context.set_max_proto_version(DTLS1_2_VERSION)
    context.set_options(SSL.OP_NO_QUERY_MTU | SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION)
    context.use_certificate(certificate.x509)
    context.use_privatekey(certificate.private_key)
    context.check_privatekey()
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_callback)
    context.set_cipher_list(CIPHER_LIST.encode())
    context.set_tlsext_use_srtp(b":".join(profile.value.encode() for profile in profiles))
    return context


def _describe(error: SSL.Error) -> str:
    """OpenSSL's reasons from an error queue, e.g. 'tlsv1 alert bad certificate'."""
    reasons = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else ():
        if isinstance(entry, tuple) and entry:
            reasons.append(str(entry[-1]))
    return "; ".join(reasons) or str(error) or type(error).__name__


class DtlsEndpoint:
    """One side of a DTLS-SRTP association, driven by the caller's datagrams and timer.

    ``remote_fingerprints`` come from the peer's SDP; they may also be given later with
    :meth:`set_remote_fingerprints`. If the handshake completes before they are known the
    endpoint stays ``CONNECTING`` until they are, then checks them.
    """

    def __init__(
        self,
        certificate: Certificate,
        role: DtlsRole,
        remote_fingerprints: Sequence[DtlsFingerprint] | None = None,
        *,
        srtp_profiles: Sequence[SrtpProfile] = DEFAULT_SRTP_PROFILES,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        if role not in (DtlsRole.CLIENT, DtlsRole.SERVER):
            raise ValueError(f"a DTLS endpoint is a client or a server, not {role!r}")
        if not srtp_profiles:
            raise ValueError("at least one SRTP profile is needed")
        self.role = role
        self.mtu = mtu
        self.certificate = certificate
        self.state = DtlsState.NEW
        self.failure_reason = ""
        self.counters = DtlsCounters()
        self._remote_fingerprints: tuple[DtlsFingerprint, ...] | None = None
        self._verify_failure = ""
        self._handshake_complete = False
        self._srtp_keys: SrtpKeys | None = None
        self._peer_certificate: x509.Certificate | None = None
        if remote_fingerprints is not None:
            self.set_remote_fingerprints(remote_fingerprints)

        self._connection = SSL.Connection(_context(certificate, tuple(srtp_profiles)), None)
        self._connection.set_app_data(self)
        self._connection.set_ciphertext_mtu(mtu)
        if role is DtlsRole.CLIENT:
            self._connection.set_connect_state()
        else:
            self._connection.set_accept_state()

    # -- public API ------------------------------------------------------------------------

    @property
    def remote_fingerprints(self) -> tuple[DtlsFingerprint, ...] | None:
        return self._remote_fingerprints

    @property
    def peer_certificate(self) -> x509.Certificate | None:
        """The peer's certificate once the handshake has completed."""
        return self._peer_certificate

    def set_remote_fingerprints(self, fingerprints: Sequence[DtlsFingerprint]) -> list[bytes]:
        """Set the fingerprints the peer's certificate must match.

        Returns datagrams to send: if the handshake had already completed the check happens
        now, and a mismatch closes the association. Setting them after the endpoint is
        connected, failed or closed is an error.
        """
        if self.state in (DtlsState.CONNECTED, DtlsState.FAILED, DtlsState.CLOSED):
            raise MediaError(f"remote fingerprints set too late (state {self.state})")
        self._remote_fingerprints = tuple(fingerprints)
        if self._handshake_complete:
            self._authenticate()
            return self._flush()
        return []

    def start(self) -> list[bytes]:
        """Begin the handshake: a client returns its ClientHello, a server waits for one."""
        if self.state is DtlsState.NEW:
            self.state = DtlsState.CONNECTING
            if self.role is DtlsRole.CLIENT:
                self._handshake()
        return self._flush()

    def feed(self, datagram: bytes) -> list[bytes]:
        """Process one received datagram; returns the datagrams to send in answer."""
        self.counters.datagrams_received += 1
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            self.counters.datagrams_ignored += 1
            return []
        try:
            parse_records(datagram)
        except ParseError:
            self.counters.datagrams_malformed += 1
            return []
        if self.state is DtlsState.NEW:
            self.state = DtlsState.CONNECTING
        self._connection.bio_write(datagram)
        if self._handshake_complete:
            self._read_established()
        else:
            self._handshake()
        return self._flush()

    def next_timeout(self) -> float | None:
        """Seconds until :meth:`handle_timeout` is due, or None when no timer runs.

        OpenSSL keeps this timer on its own clock: call ``handle_timeout`` once that many
        seconds have passed (an early call does nothing).
        """
        if self.state not in (DtlsState.CONNECTING, DtlsState.CONNECTED):
            return None
        return self._connection.DTLSv1_get_timeout()

    def handle_timeout(self) -> list[bytes]:
        """Retransmit the last handshake flight if its timer has expired.

        After too many retransmissions OpenSSL gives up and the endpoint fails.
        """
        if self.state not in (DtlsState.CONNECTING, DtlsState.CONNECTED):
            return []
        try:
            if self._connection.DTLSv1_handle_timeout():
                self.counters.retransmissions += 1
        except SSL.Error as exc:
            self._fail(f"handshake timed out: {_describe(exc)}")
        return self._flush()

    def close(self) -> list[bytes]:
        """Send close_notify (if a handshake has begun) and move to ``CLOSED``."""
        if self.state in (DtlsState.CONNECTING, DtlsState.CONNECTED):
            self._shutdown()
        if self.state is not DtlsState.FAILED:
            self.state = DtlsState.CLOSED
        self._srtp_keys = None
        return self._flush()

    @property
    def srtp_profile(self) -> SrtpProfile | None:
        return self._srtp_keys.profile if self._srtp_keys is not None else None

    def srtp_keys(self) -> SrtpKeys:
        """The SRTP keys of the association; only once ``CONNECTED``."""
        if self.state is not DtlsState.CONNECTED or self._srtp_keys is None:
            raise MediaError(f"no SRTP keys: DTLS is {self.state}")
        return self._srtp_keys

    # -- internals -------------------------------------------------------------------------

    def _accepts_peer_certificate(self, certificate: x509.Certificate) -> bool:
        """Called by OpenSSL's verification of the peer's leaf certificate."""
        if self._remote_fingerprints is None:
            return True  # checked once they are known
        if fingerprint_matches(certificate, self._remote_fingerprints):
            return True
        self._verify_failure = "remote certificate fingerprint mismatch"
        return False

    def _handshake(self) -> None:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            self._fail(self._verify_failure or f"handshake failed: {_describe(exc)}")
            return
        self._handshake_complete = True
        self._peer_certificate = self._connection.get_peer_certificate(as_cryptography=True)
        if self._remote_fingerprints is not None:
            self._authenticate()
        if self.state is DtlsState.CONNECTING or self.state is DtlsState.CONNECTED:
            self._read_established()  # records that followed the last flight

    def _authenticate(self) -> None:
        """Check the peer certificate against the remote fingerprints, then export keys."""
        assert self._remote_fingerprints is not None
        certificate = self._peer_certificate
        if certificate is None:
            self._fail("the peer sent no certificate")
            self._shutdown()
            return
        if not fingerprint_matches(certificate, self._remote_fingerprints):
            self._fail("remote certificate fingerprint mismatch")
            self._shutdown()
            return
        name = self._connection.get_selected_srtp_profile().decode("ascii", "replace")
        try:
            profile = SrtpProfile(name)
        except ValueError:
            self._fail(f"no common SRTP profile (selected {name!r})")
            self._shutdown()
            return
        self._srtp_keys = self._export_keys(profile)
        self.state = DtlsState.CONNECTED

    def _export_keys(self, profile: SrtpProfile) -> SrtpKeys:
        """RFC 5764 section 4.2: client key | server key | client salt | server salt."""
        key_length, salt_length = profile.key_length, profile.salt_length
        material = self._connection.export_keying_material(
            SRTP_EXPORTER_LABEL, 2 * (key_length + salt_length)
        )
        client_key = material[:key_length]
        server_key = material[key_length : 2 * key_length]
        client_salt = material[2 * key_length : 2 * key_length + salt_length]
        server_salt = material[2 * key_length + salt_length :]
        client, server = client_key + client_salt, server_key + server_salt
        if self.role is DtlsRole.CLIENT:
            return SrtpKeys(profile, local_key_salt=client, remote_key_salt=server)
        return SrtpKeys(profile, local_key_salt=server, remote_key_salt=client)

    def _read_established(self) -> None:
        """Drain records after the handshake: alerts, retransmissions, application data."""
        while True:
            try:
                self._connection.recv(_READ_SIZE)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self._shutdown()  # answer close_notify with ours (RFC 5246 7.2.1)
                self._closed_by_peer("close_notify received")
                return
            except SSL.Error as exc:
                self._closed_by_peer(f"fatal alert or error: {_describe(exc)}")
                return
            self.counters.application_data_ignored += 1

    def _closed_by_peer(self, reason: str) -> None:
        self._srtp_keys = None
        if self.state is DtlsState.CONNECTED:
            self.state = DtlsState.CLOSED
            self.failure_reason = reason
        else:
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        self.state = DtlsState.FAILED
        self.failure_reason = reason
        self._srtp_keys = None

    def _shutdown(self) -> None:
        with contextlib.suppress(SSL.Error):
            self._connection.shutdown()

    def _flush(self) -> list[bytes]:
        """Take what OpenSSL wrote and pack its records into datagrams of at most ``mtu``.

        A memory BIO is a byte stream that loses OpenSSL's datagram boundaries, so they are
        rebuilt from the record headers (RFC 6347 4.1.1 allows several records per datagram;
        OpenSSL keeps each record within the MTU).
        """
        chunks = []
        while True:
            try:
                chunks.append(self._connection.bio_read(_READ_SIZE))
            except SSL.WantReadError:
                break
        data = b"".join(chunks)
        if not data:
            return []
        try:
            records = split_records(data)
        except ParseError:  # not expected from OpenSSL: send it as it is
            records = [data]
        datagrams: list[bytes] = []
        current = b""
        for record in records:
            if current and len(current) + len(record) > self.mtu:
                datagrams.append(current)
                current = b""
            current += record
        datagrams.append(current)
        self.counters.datagrams_sent += len(datagrams)
        return datagrams
