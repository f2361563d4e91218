"""Error types of the SDP layer."""

from __future__ import annotations

from incamera.media.errors import ParseError


class SdpError(ParseError):
    """Malformed SDP text or a malformed attribute value (RFC 8866 grammar).

    A subclass of :class:`incamera.media.errors.ParseError` (itself a ``ValueError``), so
    code that handles any malformed network input with one ``except`` also catches this.
    """


class NegotiationError(SdpError):
    """Well-formed SDP that cannot be negotiated: no BUNDLE, no ICE credentials, a DTLS role
    the SFU cannot take, or an answer that does not match the offer it answers."""


class SdpStateError(RuntimeError):
    """An SDP session object was used out of order (no offer pending, nothing to offer,
    unknown mid). A programming error of the caller, not bad input from the network."""
