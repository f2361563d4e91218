"""Worker-wide counters: what arrived, what was dropped and why (exported as stats)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Counters:
    datagrams_received: int = 0
    datagrams_unknown_source: int = 0  # RTP/DTLS from an address no transport owns
    datagrams_unclassified: int = 0  # first byte in none of the RFC 7983 ranges
    source_refused: int = 0  # ICE check from outside the allowed remote networks
    stun_malformed: int = 0
    ice_rejected: int = 0  # failed authentication or unknown ufrag
    dtls_malformed: int = 0
    rtp_received: int = 0
    rtp_malformed: int = 0
    rtp_unknown_ssrc: int = 0
    rtp_sent: int = 0
    rtcp_received: int = 0
    rtcp_malformed: int = 0
    rtcp_sent: int = 0
    srtp_auth_failures: int = 0
    srtp_replays: int = 0
    srtp_other_errors: int = 0
    srtp_before_keys: int = 0
    nacks_received: int = 0
    nacks_sent: int = 0
    plis_received: int = 0
    plis_sent: int = 0
    retransmissions_sent: int = 0
    send_errors: int = 0
    internal_errors: int = 0  # a bug caught at the datagram boundary; the worker survives
    overload_shed_steps: int = 0

    def count_srtp_error(self, reason: str) -> None:
        if reason == "auth":
            self.srtp_auth_failures += 1
        elif reason == "replay":
            self.srtp_replays += 1
        else:
            self.srtp_other_errors += 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
