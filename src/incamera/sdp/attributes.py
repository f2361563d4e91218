"""Typed values of the SDP attributes WebRTC uses.

Each class parses the value part of one ``a=<name>:<value>`` line (``parse``) and writes it
back (``__str__``). Malformed values raise :class:`SdpError` and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .errors import SdpError

_DIGITS = re.compile(r"[0-9]+")
# RFC 8866 section 9: token = 1*(token-char)
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
# RFC 8851 section 10: rid-id = 1*(alpha-numeric / "-" / "_")
_RID_ID = re.compile(r"[A-Za-z0-9_\-]+")


def fields(value: str) -> list[str]:
    """Split on (runs of) spaces, the SDP field separator."""
    return [f for f in value.split(" ") if f]


def parse_int(text: str, what: str, lo: int = 0, hi: int | None = None) -> int:
    if not _DIGITS.fullmatch(text):
        raise SdpError(f"{what}: not a decimal number: {text!r}")
    number = int(text)
    if number < lo or (hi is not None and number > hi):
        raise SdpError(f"{what}: {number} out of range")
    return number


def check_token(text: str, what: str) -> str:
    if not _TOKEN.fullmatch(text):
        raise SdpError(f"{what}: not a token: {text!r}")
    return text


def _split_once(value: str, what: str) -> tuple[str, str]:
    head, sep, rest = value.partition(" ")
    if not sep or not rest.strip(" "):
        raise SdpError(f"{what}: missing fields in {value!r}")
    return head, rest.strip(" ")


class Direction(StrEnum):
    """RFC 8866 section 6.7 media direction attributes."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)


class Setup(StrEnum):
    """RFC 4145 section 4 / RFC 8842 ``a=setup`` roles."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"

    @classmethod
    def parse(cls, value: str) -> Setup:
        try:
            return cls(value.strip(" "))
        except ValueError:
            raise SdpError(f"a=setup: unknown role {value!r}") from None


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 8866 section 6.6)."""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        pt, rest = _split_once(value, "a=rtpmap")
        parts = rest.split("/")
        if len(parts) not in (2, 3):
            raise SdpError(f"a=rtpmap: bad encoding {rest!r}")
        channels = parse_int(parts[2], "a=rtpmap channels", 1) if len(parts) == 3 else None
        return cls(
            parse_int(pt, "a=rtpmap payload type", 0, 127),
            check_token(parts[0], "a=rtpmap encoding name"),
            parse_int(parts[1], "a=rtpmap clock rate", 1),
            channels,
        )

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


@dataclass(frozen=True, slots=True)
class Fmtp:
    """``a=fmtp:<pt> <format parameters>`` (RFC 8866 section 6.15).

    The parameters are kept as written; ``parameters`` reads the usual ``k=v;k=v`` form
    (RFC 4855) and ignores items that are not of that form (e.g. RED's ``111/111``).
    """

    payload_type: int
    params: str

    @classmethod
    def parse(cls, value: str) -> Fmtp:
        pt, rest = _split_once(value, "a=fmtp")
        return cls(parse_int(pt, "a=fmtp payload type", 0, 127), rest)

    @staticmethod
    def format(payload_type: int, parameters: dict[str, str]) -> Fmtp:
        return Fmtp(payload_type, ";".join(f"{k}={v}" for k, v in parameters.items()))

    @property
    def parameters(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for item in self.params.split(";"):
            key, sep, val = item.partition("=")
            if sep and key.strip():
                result[key.strip().lower()] = val.strip()
        return result

    def __str__(self) -> str:
        return f"{self.payload_type} {self.params}"


@dataclass(frozen=True, slots=True)
class RtcpFb:
    """``a=rtcp-fb:<pt|*> <type> [<subtype>]`` (RFC 4585 section 4.2); ``payload_type``
    None stands for ``*`` (all formats)."""

    payload_type: int | None
    feedback: str  # e.g. "nack", "nack pli", "ccm fir", "transport-cc"

    @classmethod
    def parse(cls, value: str) -> RtcpFb:
        pt, rest = _split_once(value, "a=rtcp-fb")
        feedback = " ".join(fields(rest))
        if pt == "*":
            return cls(None, feedback)
        return cls(parse_int(pt, "a=rtcp-fb payload type", 0, 127), feedback)

    def __str__(self) -> str:
        pt = "*" if self.payload_type is None else str(self.payload_type)
        return f"{pt} {self.feedback}"


@dataclass(frozen=True, slots=True)
class ExtMap:
    """``a=extmap:<id>[/<direction>] <uri> [<attributes>]`` (RFC 8285 section 8)."""

    id: int
    uri: str
    direction: Direction | None = None
    attributes: str | None = None

    @classmethod
    def parse(cls, value: str) -> ExtMap:
        parts = fields(value)
        if len(parts) < 2:
            raise SdpError(f"a=extmap: missing fields in {value!r}")
        id_text, slash, dir_text = parts[0].partition("/")
        direction = None
        if slash:
            try:
                direction = Direction(dir_text)
            except ValueError:
                raise SdpError(f"a=extmap: bad direction {dir_text!r}") from None
        attributes = " ".join(parts[2:]) or None
        return cls(parse_int(id_text, "a=extmap id", 1, 4351), parts[1], direction, attributes)

    def __str__(self) -> str:
        head = str(self.id) if self.direction is None else f"{self.id}/{self.direction}"
        tail = f" {self.attributes}" if self.attributes else ""
        return f"{head} {self.uri}{tail}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """``a=candidate:...`` (RFC 8839 section 5.1)."""

    foundation: str
    component: int
    transport: str  # "udp" / "tcp" (lower-cased)
    priority: int
    address: str
    port: int
    type: str  # host / srflx / prflx / relay
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()  # e.g. (("tcptype", "passive"),)

    @classmethod
    def parse(cls, value: str) -> Candidate:
        parts = fields(value)
        if len(parts) < 8 or parts[6] != "typ" or len(parts) % 2:
            raise SdpError(f"a=candidate: malformed {value!r}")
        related_address = related_port = None
        extensions: list[tuple[str, str]] = []
        for key, val in zip(parts[8::2], parts[9::2], strict=True):
            if key == "raddr":
                related_address = val
            elif key == "rport":
                related_port = parse_int(val, "a=candidate rport", 0, 65535)
            else:
                extensions.append((key, val))
        return cls(
            foundation=parts[0],
            component=parse_int(parts[1], "a=candidate component", 1, 256),
            transport=parts[2].lower(),
            priority=parse_int(parts[3], "a=candidate priority", 0, 2**32 - 1),
            address=parts[4],
            port=parse_int(parts[5], "a=candidate port", 0, 65535),
            type=check_token(parts[7], "a=candidate type"),
            related_address=related_address,
            related_port=related_port,
            extensions=tuple(extensions),
        )

    def __str__(self) -> str:
        text = (
            f"{self.foundation} {self.component} {self.transport} {self.priority} "
            f"{self.address} {self.port} typ {self.type}"
        )
        if self.related_address is not None:
            text += f" raddr {self.related_address}"
        if self.related_port is not None:
            text += f" rport {self.related_port}"
        for key, val in self.extensions:
            text += f" {key} {val}"
        return text


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``a=fingerprint:<hash function> <hex pairs>`` (RFC 8122 section 5)."""

    algorithm: str
    value: str

    @classmethod
    def parse(cls, value: str) -> Fingerprint:
        algorithm, rest = _split_once(value, "a=fingerprint")
        if not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*", rest):
            raise SdpError(f"a=fingerprint: bad value {rest!r}")
        return cls(check_token(algorithm, "a=fingerprint hash").lower(), rest.upper())

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value}"


@dataclass(frozen=True, slots=True)
class Msid:
    """``a=msid:<stream id> [<track id>]`` (RFC 8830 section 2)."""

    stream_id: str
    track_id: str | None = None

    @classmethod
    def parse(cls, value: str) -> Msid:
        parts = fields(value)
        if len(parts) not in (1, 2):
            raise SdpError(f"a=msid: malformed {value!r}")
        return cls(parts[0], parts[1] if len(parts) == 2 else None)

    def __str__(self) -> str:
        return self.stream_id if self.track_id is None else f"{self.stream_id} {self.track_id}"


@dataclass(frozen=True, slots=True)
class SsrcAttribute:
    """``a=ssrc:<ssrc> <attribute>[:<value>]`` (RFC 5576 section 4.1)."""

    ssrc: int
    attribute: str
    value: str | None = None

    @classmethod
    def parse(cls, value: str) -> SsrcAttribute:
        ssrc, rest = _split_once(value, "a=ssrc")
        name, sep, val = rest.partition(":")
        return cls(
            parse_int(ssrc, "a=ssrc id", 0, 2**32 - 1),
            check_token(name, "a=ssrc attribute"),
            val if sep else None,
        )

    def __str__(self) -> str:
        tail = "" if self.value is None else f":{self.value}"
        return f"{self.ssrc} {self.attribute}{tail}"


@dataclass(frozen=True, slots=True)
class SsrcGroup:
    """``a=ssrc-group:<semantics> <ssrc>...`` (RFC 5576 section 4.2), e.g. FID (RFC 4588)
    pairs a stream with its retransmission stream, SIM lists simulcast layers."""

    semantics: str
    ssrcs: tuple[int, ...]

    @classmethod
    def parse(cls, value: str) -> SsrcGroup:
        parts = fields(value)
        if not parts:
            raise SdpError("a=ssrc-group: empty")
        ssrcs = tuple(parse_int(p, "a=ssrc-group ssrc", 0, 2**32 - 1) for p in parts[1:])
        return cls(check_token(parts[0], "a=ssrc-group semantics"), ssrcs)

    def __str__(self) -> str:
        return " ".join([self.semantics, *map(str, self.ssrcs)])


class RidDirection(StrEnum):
    SEND = "send"
    RECV = "recv"


@dataclass(frozen=True, slots=True)
class Rid:
    """``a=rid:<rid-id> <send|recv> [<restrictions>]`` (RFC 8851 section 10)."""

    id: str
    direction: RidDirection
    restrictions: str | None = None

    @classmethod
    def parse(cls, value: str) -> Rid:
        parts = fields(value)
        if len(parts) not in (2, 3) or not _RID_ID.fullmatch(parts[0]):
            raise SdpError(f"a=rid: malformed {value!r}")
        try:
            direction = RidDirection(parts[1])
        except ValueError:
            raise SdpError(f"a=rid: bad direction {parts[1]!r}") from None
        return cls(parts[0], direction, parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        tail = "" if self.restrictions is None else f" {self.restrictions}"
        return f"{self.id} {self.direction}{tail}"


@dataclass(frozen=True, slots=True)
class SimulcastStream:
    """One simulcast stream: its alternative rids, first preferred (RFC 8853 section 5.1);
    each alternative is ``(rid, paused)``."""

    alternatives: tuple[tuple[str, bool], ...]

    @property
    def rid(self) -> str:
        return self.alternatives[0][0]

    @property
    def paused(self) -> bool:
        return self.alternatives[0][1]

    @classmethod
    def parse(cls, text: str) -> SimulcastStream:
        alternatives = []
        for item in text.split(","):
            paused = item.startswith("~")
            rid = item[1:] if paused else item
            if not _RID_ID.fullmatch(rid):
                raise SdpError(f"a=simulcast: bad rid {item!r}")
            alternatives.append((rid, paused))
        return cls(tuple(alternatives))

    def __str__(self) -> str:
        return ",".join(("~" if paused else "") + rid for rid, paused in self.alternatives)


@dataclass(frozen=True, slots=True)
class Simulcast:
    """``a=simulcast:send <streams> [recv <streams>]`` (RFC 8853 section 5.1); streams are
    separated by ``;``, listed as the sender orders them."""

    send: tuple[SimulcastStream, ...] = ()
    recv: tuple[SimulcastStream, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Simulcast:
        parts = fields(value)
        if len(parts) not in (2, 4):
            raise SdpError(f"a=simulcast: malformed {value!r}")
        lists: dict[str, tuple[SimulcastStream, ...]] = {}
        for direction, streams in zip(parts[::2], parts[1::2], strict=True):
            if direction not in ("send", "recv") or direction in lists:
                raise SdpError(f"a=simulcast: bad direction {direction!r}")
            lists[direction] = tuple(SimulcastStream.parse(s) for s in streams.split(";"))
        return cls(lists.get("send", ()), lists.get("recv", ()))

    def __str__(self) -> str:
        out = []
        if self.send:
            out.append("send " + ";".join(map(str, self.send)))
        if self.recv:
            out.append("recv " + ";".join(map(str, self.recv)))
        return " ".join(out)


@dataclass(frozen=True, slots=True)
class Group:
    """``a=group:<semantics> <mid>...`` (RFC 5888 section 5), e.g. BUNDLE (RFC 8843)."""

    semantics: str
    mids: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> Group:
        parts = fields(value)
        if not parts:
            raise SdpError("a=group: empty")
        return cls(check_token(parts[0], "a=group semantics"), tuple(parts[1:]))

    def __str__(self) -> str:
        return " ".join([self.semantics, *self.mids])
