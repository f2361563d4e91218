"""SRTP/SRTCP protection with keys from a DTLS-SRTP handshake (RFC 3711, RFC 5764, RFC 7714).

:class:`SrtpSession` wraps two libsrtp sessions (through pylibsrtp): an outbound one keyed
with our own master key and salt, an inbound one keyed with the peer's. Each accepts any
SSRC, so streams need not be declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pylibsrtp
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _lib

# Largest protected packet: an Ethernet MTU, trailer included (as pylibsrtp's own limit).
_BUFFER_SIZE = 1500
_TRAILER = pylibsrtp.SRTP_MAX_TRAILER_LEN
# The longest trailer our policies append: the 16-byte GCM tag (HMAC-SHA1-80's is 10; no
# MKI is ever configured, which is what SRTP_MAX_TRAILER_LEN leaves room for).
SRTP_TRAILER = 16


class SrtpProfile(StrEnum):
    """DTLS-SRTP protection profiles the SFU negotiates, by their OpenSSL names.

    RFC 5764 section 4.1.2 and RFC 7714 section 14.2 (the registry names differ:
    ``SRTP_AES128_CM_HMAC_SHA1_80`` (0x0001) and ``SRTP_AEAD_AES_128_GCM`` (0x0007)).
    """

    AEAD_AES_128_GCM = "SRTP_AEAD_AES_128_GCM"
    AES128_CM_SHA1_80 = "SRTP_AES128_CM_SHA1_80"

    @property
    def key_length(self) -> int:
        """Master key length in bytes."""
        return 16

    @property
    def salt_length(self) -> int:
        """Master salt length in bytes (RFC 7714 section 12: 12 for GCM; RFC 3711: 14)."""
        return 12 if self is SrtpProfile.AEAD_AES_128_GCM else 14


# Preferred first: GCM is faster in libsrtp and its tag authenticates more cheaply.
DEFAULT_SRTP_PROFILES: tuple[SrtpProfile, ...] = (
    SrtpProfile.AEAD_AES_128_GCM,
    SrtpProfile.AES128_CM_SHA1_80,
)

_LIBSRTP_PROFILES = {
    SrtpProfile.AEAD_AES_128_GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    SrtpProfile.AES128_CM_SHA1_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
}

# libsrtp's replay window, in packets (libsrtp accepts 64..32768). Video bursts after a key
# frame plus NACK retransmissions arrive well out of order; 1024 absorbs that.
REPLAY_WINDOW = 1024
# On the way out the window only bounds how late a packet may still be sent on its SSRC (a
# publisher's repaired packet forwarded after newer ones): libsrtp shifts the whole window
# on every protect, ~1.5 % of a worker's time at 1024. 256 packets is a quarter of a second
# of a 10 Mbit/s stream; a repair later than that reaches the subscriber through its own
# NACK and our RTX from the cache instead.
OUTBOUND_REPLAY_WINDOW = 256


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """Keying material exported by a DTLS-SRTP handshake (RFC 5764 section 4.2).

    ``local_key_salt`` is our own master key followed by our master salt; we protect with it
    and the peer unprotects with it (it is the peer's ``remote_key_salt``).
    """

    profile: SrtpProfile
    local_key_salt: bytes
    remote_key_salt: bytes

    def __post_init__(self) -> None:
        expected = self.profile.key_length + self.profile.salt_length
        if len(self.local_key_salt) != expected or len(self.remote_key_salt) != expected:
            raise ValueError(f"{self.profile} keys must be {expected} bytes (key + salt)")

    def __repr__(self) -> str:  # never print key material into logs
        return f"SrtpKeys(profile={self.profile!s})"


class SrtpError(Exception):
    """A packet could not be protected or unprotected.

    ``reason`` is a short stable word for counters: ``"auth"`` (authentication failure),
    ``"replay"`` (replayed or too old), ``"malformed"`` (too short, too long, not a packet)
    or ``"other"``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# libsrtp's messages (as pylibsrtp words them) for input that is not a usable packet:
# "unsupported parameter" is its answer to a truncated or invalid header.
_MALFORMED_MESSAGES = (
    "unsupported parameter",
    "unable to perform desired validation",
    "parsing",
    "too long",
    "as much data",
)


def _classify(message: str) -> str:
    if "authentication" in message:
        return "auth"
    if "replay" in message or "too old" in message:
        return "replay"
    if any(word in message for word in _MALFORMED_MESSAGES):
        return "malformed"
    return "other"


def _error(operation: str, rc: int) -> SrtpError:
    errors = pylibsrtp.ERRORS  # a list indexed by libsrtp's srtp_err_status_t
    message = errors[rc] if 0 <= rc < len(errors) else f"libsrtp error {rc}"
    return SrtpError(_classify(str(message)), f"{operation}: {message}")


# The raw libsrtp call, for the worker's send kernel (transport.py), which protects a send
# slot in place with ``SrtpSession.out_context`` and ``out_length``; a non-zero result is a
# libsrtp error status, turned into an exception by :func:`protect_error`.
srtp_protect_raw = _lib.srtp_protect


def protect_error(rc: int) -> SrtpError:
    return _error("protect", rc)


def _protect_address() -> int | None:
    """srtp_protect's address, for the C fan-out kernel (fanout_kernel.py), when it has the
    libsrtp 2 signature that kernel calls; None otherwise (the kernel is then not used)."""
    function = _ffi.addressof(_lib, "srtp_protect")
    if _ffi.typeof(function).cname != "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)":
        return None
    return int(_ffi.cast("uintptr_t", function))


PROTECT_ADDRESS = _protect_address()


def buffer_pointer(address: int) -> object:
    """A pointer to raw memory at ``address`` for :meth:`SrtpSession.protect_into`.

    The memory (the worker's send slots) must outlive the pointer. A raw address is used
    rather than ``ffi.from_buffer``: a buffer export held by a cffi object inside a
    reference cycle crashed the garbage collector at exit.
    """
    return _ffi.cast("char *", address)


def _policy(profile: SrtpProfile, key_salt: bytes, ssrc_type: int, window: int) -> pylibsrtp.Policy:
    policy = pylibsrtp.Policy(
        key=key_salt, ssrc_type=ssrc_type, srtp_profile=_LIBSRTP_PROFILES[profile]
    )
    policy.allow_repeat_tx = True
    policy.window_size = window
    return policy


class SrtpSession:
    """Both directions of SRTP and SRTCP for one DTLS-SRTP association."""

    def __init__(self, keys: SrtpKeys) -> None:
        self.profile = keys.profile
        self._outbound = pylibsrtp.Session(
            _policy(
                keys.profile,
                keys.local_key_salt,
                pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                OUTBOUND_REPLAY_WINDOW,
            )
        )
        self._inbound = pylibsrtp.Session(
            _policy(
                keys.profile, keys.remote_key_salt, pylibsrtp.Policy.SSRC_ANY_INBOUND, REPLAY_WINDOW
            )
        )

        # The forwarding hot path (``protect``) calls libsrtp through pylibsrtp's compiled
        # binding on a preallocated buffer: pylibsrtp's ``Session.protect`` copies the packet
        # twice and allocates per call, which cost more than the AES-GCM itself (~2.5 µs of
        # ~4 µs per packet measured). Only this one call takes the direct path.
        self._out_ctx = self._outbound._srtp[0]
        self._out_buf = _ffi.new("char[]", _BUFFER_SIZE)
        self._out_view = _ffi.buffer(self._out_buf)
        self._out_len = _ffi.new("int *")
        self.out_context = self._out_ctx  # for srtp_protect_raw (see above)
        self.out_length = self._out_len
        self._in_ctx = self._inbound._srtp[0]
        self._in_buf = _ffi.new("char[]", _BUFFER_SIZE)
        self._in_view = _ffi.buffer(self._in_buf)
        self._in_len = _ffi.new("int *")

    @staticmethod
    def address_of(pointer: object) -> int:
        """The address a cffi pointer (``out_context``, ``out_length``) holds."""
        return int(_ffi.cast("uintptr_t", pointer))

    def protect_into(self, buffer: object, length: int) -> int:
        """Protect the RTP packet at the start of ``buffer`` (a pointer from
        :func:`buffer_pointer`, with room for the SRTP trailer) in place; returns its new
        length. The worker's send slots are protected this way, without a copy."""
        if length > _BUFFER_SIZE - _TRAILER or length < 12:
            raise SrtpError("malformed", f"protect: a packet of {length} bytes")
        size = self._out_len
        size[0] = length
        rc = _lib.srtp_protect(self._out_ctx, buffer, size)
        if rc:
            raise _error("protect", rc)
        return int(size[0])

    def protect(self, rtp: bytes | bytearray) -> bytes:
        """RTP -> SRTP with our key."""
        n = len(rtp)
        if n > _BUFFER_SIZE - _TRAILER or n < 12:
            raise SrtpError("malformed", f"protect: a packet of {n} bytes")
        self._out_view[0:n] = rtp
        length = self._out_len
        length[0] = n
        rc = _lib.srtp_protect(self._out_ctx, self._out_buf, length)
        if rc:
            raise _error("protect", rc)
        return self._out_view[0 : length[0]]

    def unprotect(self, srtp: bytes) -> bytes:
        """SRTP -> RTP with the peer's key; raises :class:`SrtpError` on any failure."""
        n = len(srtp)
        if n > _BUFFER_SIZE or n < 12:
            raise SrtpError("malformed", f"unprotect: a packet of {n} bytes")
        self._in_view[0:n] = srtp
        length = self._in_len
        length[0] = n
        rc = _lib.srtp_unprotect(self._in_ctx, self._in_buf, length)
        if rc:
            raise _error("unprotect", rc)
        return self._in_view[0 : length[0]]

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """RTCP -> SRTCP with our key."""
        try:
            return self._outbound.protect_rtcp(rtcp)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(_classify(str(exc)), f"protect_rtcp: {exc}") from None

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """SRTCP -> RTCP with the peer's key; raises :class:`SrtpError` on any failure."""
        try:
            return self._inbound.unprotect_rtcp(srtcp)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(_classify(str(exc)), f"unprotect_rtcp: {exc}") from None
