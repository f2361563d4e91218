"""Error types of the media plane."""


class ParseError(ValueError):
    """Malformed network input (RTP, RTCP, STUN, DTLS records, codec payload headers).

    Every parser of network input raises this and only this for bad data, so the worker
    can count and drop a bad datagram without ever crashing.
    """


class MediaError(Exception):
    """A media-plane operation could not be carried out (unknown id, bad parameters)."""
