"""Transport lines of an m-section: ICE (RFC 8839), DTLS (RFC 8842, RFC 8122), RTCP mux.

Every m-section the SFU writes carries the full set of transport attributes (even where
BUNDLE would allow leaving them out and even in rejected sections), because some WebRTC stacks
(aiortc) check them on every section. They all describe the one bundled transport.
"""

from __future__ import annotations

from incamera.media.api import (
    DtlsFingerprint,
    DtlsParameters,
    DtlsRole,
    IceCandidate,
    IceParameters,
    TransportInfo,
)

from .attributes import Candidate, Fingerprint, Setup
from .errors import NegotiationError
from .model import Connection, MediaDescription, SessionDescription

DISCARD_PORT = 9  # RFC 8839 §4.2.1.1: port 9 with address 0.0.0.0 when no default exists


def default_address(transport: TransportInfo) -> tuple[Connection, int]:
    """The ``c=`` line and ``m=`` port: the first (highest priority) candidate, else 0.0.0.0:9."""
    if not transport.ice_candidates:
        return Connection(), DISCARD_PORT
    best = max(transport.ice_candidates, key=lambda c: c.priority)
    return Connection.for_address(best.ip), best.port


def candidate_value(candidate: IceCandidate) -> str:
    extensions: tuple[tuple[str, str], ...] = ()
    if candidate.protocol.lower() == "tcp":
        extensions = (("tcptype", "passive"),)  # RFC 6544: an ICE-lite server only accepts
    return str(
        Candidate(
            foundation=candidate.foundation,
            component=1,
            transport=candidate.protocol.lower(),
            priority=candidate.priority,
            address=candidate.ip,
            port=candidate.port,
            type=candidate.type,
            extensions=extensions,
        )
    )


def write_ice_dtls(media: MediaDescription, transport: TransportInfo, setup: Setup) -> None:
    media.add("ice-ufrag", transport.ice_parameters.username_fragment)
    media.add("ice-pwd", transport.ice_parameters.password)
    for fp in transport.dtls_parameters.fingerprints:
        media.add("fingerprint", Fingerprint(fp.algorithm.lower(), fp.value.upper()))
    media.add("setup", setup)


def write_candidates(media: MediaDescription, transport: TransportInfo) -> None:
    for candidate in transport.ice_candidates:
        media.add("candidate", candidate_value(candidate))
    media.add("end-of-candidates")


def remote_ice(session: SessionDescription, media: MediaDescription) -> IceParameters:
    """The peer's ICE credentials for a bundled m-section (media level, else session level)."""
    ufrag = media.ice_ufrag or session.ice_ufrag
    pwd = media.ice_pwd or session.ice_pwd
    if not ufrag or not pwd:
        raise NegotiationError(f"mid {media.mid}: no a=ice-ufrag / a=ice-pwd")
    return IceParameters(ufrag, pwd, ice_lite=session.ice_lite)


def remote_fingerprints(
    session: SessionDescription, media: MediaDescription
) -> tuple[DtlsFingerprint, ...]:
    fingerprints = media.fingerprints() or session.fingerprints()
    if not fingerprints:
        raise NegotiationError(f"mid {media.mid}: no a=fingerprint")
    return tuple(DtlsFingerprint(f.algorithm, f.value) for f in fingerprints)


def remote_setup(session: SessionDescription, media: MediaDescription) -> Setup | None:
    return media.setup or session.setup


def client_dtls(
    session: SessionDescription, media: MediaDescription, allowed: tuple[Setup, ...]
) -> DtlsParameters:
    """The peer's DTLS parameters; the peer must be able to take the DTLS client role."""
    setup = remote_setup(session, media)
    if setup not in allowed:
        raise NegotiationError(
            f"mid {media.mid}: a=setup:{setup} but the SFU is always the DTLS server"
        )
    return DtlsParameters(DtlsRole.CLIENT, remote_fingerprints(session, media))
