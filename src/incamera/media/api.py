"""The narrow, typed API between the control plane and the media plane.

Everything here is a plain dataclass so it can be sent to a worker process (pickled over a
pipe) or used in-process. Commands go control plane -> worker; events come back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .rtp_parameters import RtpParameters


@dataclass(frozen=True, slots=True)
class IceParameters:
    username_fragment: str
    password: str
    ice_lite: bool = True


@dataclass(frozen=True, slots=True)
class IceCandidate:
    foundation: str
    priority: int
    ip: str
    port: int
    protocol: str = "udp"
    type: str = "host"


@dataclass(frozen=True, slots=True)
class DtlsFingerprint:
    algorithm: str  # "sha-256" (RFC 8122 hash function name)
    value: str  # upper-case hex pairs separated by ":"


class DtlsRole(StrEnum):
    AUTO = "auto"
    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class DtlsParameters:
    role: DtlsRole
    fingerprints: tuple[DtlsFingerprint, ...]


@dataclass(frozen=True, slots=True)
class TransportInfo:
    """What a client needs to reach a transport: returned by ``create_transport``.

    The SFU is ICE-lite and always the DTLS server (it answers ``a=setup:passive`` and
    offers ``a=setup:actpass``, which browsers answer with ``active``).
    """

    id: str
    ice_parameters: IceParameters
    ice_candidates: tuple[IceCandidate, ...]
    dtls_parameters: DtlsParameters


class TransportState(StrEnum):
    NEW = "new"
    CONNECTING = "connecting"  # ICE nominated, DTLS handshaking
    CONNECTED = "connected"  # DTLS done, SRTP keys installed
    DISCONNECTED = "disconnected"  # consent lost (RFC 7675) or DTLS closed
    FAILED = "failed"  # DTLS failure (e.g. fingerprint mismatch)
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    id: str
    producer_id: str
    rtp_parameters: RtpParameters  # router payload types, the consumer's own SSRC / RTX SSRC


@dataclass(frozen=True, slots=True)
class TransportStateChanged:
    transport_id: str
    state: TransportState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ActiveSpeaker:
    router_id: str
    producer_id: str | None  # None when nobody speaks
    level_dbov: int = 127


@dataclass(frozen=True, slots=True)
class ConsumerLayersChanged:
    consumer_id: str
    spatial_layer: int | None  # None while paused / nothing fits


@dataclass(frozen=True, slots=True)
class WorkerStats:
    worker_id: int
    counters: dict[str, int] = field(default_factory=dict)
