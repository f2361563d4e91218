"""Session descriptions: parse and serialise SDP text (RFC 8866).

``parse`` accepts CRLF or bare LF line ends and rejects anything that is not SDP with
:class:`SdpError`. ``str()`` writes CRLF line ends. Attributes are kept as an ordered list of
``(name, value)`` pairs (``value`` None for property attributes such as ``a=rtcp-mux``), so
attributes this module does not understand survive a round trip; typed views read the ones
WebRTC uses (see :mod:`incamera.sdp.attributes`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .attributes import (
    Candidate,
    Direction,
    ExtMap,
    Fingerprint,
    Fmtp,
    Group,
    Msid,
    Rid,
    RtcpFb,
    RtpMap,
    Setup,
    Simulcast,
    SsrcAttribute,
    SsrcGroup,
    check_token,
    fields,
    parse_int,
)
from .errors import SdpError

T = TypeVar("T")
Attribute = tuple[str, str | None]

_FORBIDDEN = re.compile(r"[\x00\r]")
_DIRECTIONS = frozenset(d.value for d in Direction)


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (§5.2)."""

    username: str = "-"
    session_id: int = 0
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    @classmethod
    def parse(cls, value: str) -> Origin:
        parts = fields(value)
        if len(parts) != 6:
            raise SdpError(f"o=: expected 6 fields in {value!r}")
        return cls(
            parts[0],
            parse_int(parts[1], "o= sess-id"),
            parse_int(parts[2], "o= sess-version"),
            check_token(parts[3], "o= nettype"),
            check_token(parts[4], "o= addrtype"),
            parts[5],
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (§5.7)."""

    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = fields(value)
        if len(parts) != 3:
            raise SdpError(f"c=: expected 3 fields in {value!r}")
        return cls(
            check_token(parts[0], "c= nettype"), check_token(parts[1], "c= addrtype"), parts[2]
        )

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls("IN", "IP6" if ":" in address else "IP4", address)

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (§5.8)."""

    type: str
    value: int

    @classmethod
    def parse(cls, value: str) -> Bandwidth:
        kind, sep, number = value.partition(":")
        if not sep:
            raise SdpError(f"b=: malformed {value!r}")
        return cls(check_token(kind, "b= bwtype"), parse_int(number, "b= bandwidth"))

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start> <stop>`` and its ``r=`` repeat lines (§5.9, §5.10)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Timing:
        parts = fields(value)
        if len(parts) != 2:
            raise SdpError(f"t=: expected 2 fields in {value!r}")
        return cls(parse_int(parts[0], "t= start"), parse_int(parts[1], "t= stop"))


class _Attributes:
    """Attribute access shared by the session level and media sections."""

    attributes: list[Attribute]

    def get(self, name: str) -> str | None:
        """The value of the first ``a=name``; ``""`` for a property attribute, None if absent."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None

    def get_all(self, name: str) -> list[str]:
        return ["" if v is None else v for k, v in self.attributes if k == name]

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.attributes)

    def add(self, name: str, value: object = None) -> None:
        self.attributes.append((name, None if value is None else str(value)))

    def _typed(self, name: str, parser: Callable[[str], T]) -> list[T]:
        return [parser(v) for v in self.get_all(name)]

    def _single(self, name: str, parser: Callable[[str], T]) -> T | None:
        values = self.get_all(name)
        if len(values) > 1:
            raise SdpError(f"a={name} appears {len(values)} times")
        return parser(values[0]) if values else None

    # ICE (RFC 8839 section 5)
    @property
    def ice_ufrag(self) -> str | None:
        return self._single("ice-ufrag", lambda v: v.strip(" "))

    @property
    def ice_pwd(self) -> str | None:
        return self._single("ice-pwd", lambda v: v.strip(" "))

    @property
    def ice_options(self) -> list[str]:
        return [opt for value in self.get_all("ice-options") for opt in fields(value)]

    @property
    def ice_lite(self) -> bool:
        return self.has("ice-lite")

    def candidates(self) -> list[Candidate]:
        return self._typed("candidate", Candidate.parse)

    # DTLS (RFC 8122, RFC 8842)
    def fingerprints(self) -> list[Fingerprint]:
        return self._typed("fingerprint", Fingerprint.parse)

    @property
    def setup(self) -> Setup | None:
        return self._single("setup", Setup.parse)

    # RTP header extensions (RFC 8285)
    def extmaps(self) -> list[ExtMap]:
        return self._typed("extmap", ExtMap.parse)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute present here, or None (RFC 8866 §6.7: default sendrecv)."""
        found = [Direction(k) for k, _ in self.attributes if k in _DIRECTIONS]
        if len(found) > 1:
            raise SdpError("more than one direction attribute")
        return found[0] if found else None


@dataclass(eq=True, slots=True)
class MediaDescription(_Attributes):
    """One ``m=`` section (RFC 8866 §5.14) with its lines."""

    kind: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    @classmethod
    def parse_m_line(cls, value: str) -> MediaDescription:
        parts = fields(value)
        if len(parts) < 4:
            raise SdpError(f"m=: expected at least 4 fields in {value!r}")
        port_text, slash, count_text = parts[1].partition("/")
        return cls(
            kind=check_token(parts[0], "m= media"),
            port=parse_int(port_text, "m= port", 0, 65535),
            port_count=parse_int(count_text, "m= port count", 1) if slash else None,
            proto=parts[2],
            formats=[check_token(f, "m= fmt") for f in parts[3:]],
        )

    # RTP maps (RFC 8866 §6.6, §6.15; RFC 4585)
    def rtpmaps(self) -> dict[int, RtpMap]:
        return {m.payload_type: m for m in self._typed("rtpmap", RtpMap.parse)}

    def fmtps(self) -> dict[int, Fmtp]:
        return {f.payload_type: f for f in self._typed("fmtp", Fmtp.parse)}

    def rtcp_fbs(self) -> list[RtcpFb]:
        return self._typed("rtcp-fb", RtcpFb.parse)

    def payload_types(self) -> list[int]:
        return [parse_int(f, "m= payload type", 0, 127) for f in self.formats]

    # Identification (RFC 8843 §14, RFC 8830, RFC 5576, RFC 8851, RFC 8853)
    @property
    def mid(self) -> str | None:
        return self._single("mid", lambda v: check_token(v.strip(" "), "a=mid"))

    @property
    def msid(self) -> Msid | None:
        values = self._typed("msid", Msid.parse)
        return values[0] if values else None

    def ssrcs(self) -> list[SsrcAttribute]:
        return self._typed("ssrc", SsrcAttribute.parse)

    def ssrc_groups(self) -> list[SsrcGroup]:
        return self._typed("ssrc-group", SsrcGroup.parse)

    def rids(self) -> list[Rid]:
        return self._typed("rid", Rid.parse)

    @property
    def simulcast(self) -> Simulcast | None:
        return self._single("simulcast", Simulcast.parse)

    @property
    def rejected(self) -> bool:
        return self.port == 0

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={self.kind} {port} {self.proto} {' '.join(self.formats)}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(_attribute_line(a) for a in self.attributes)
        return out


@dataclass(eq=True, slots=True)
class SessionDescription(_Attributes):
    """A whole session description (RFC 8866 §5): session-level lines, then media sections."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timing: list[Timing] = field(default_factory=lambda: [Timing()])
    time_zones: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def groups(self) -> list[Group]:
        return self._typed("group", Group.parse)

    def bundle_group(self) -> Group | None:
        """The first BUNDLE group (RFC 8843); WebRTC endpoints use at most one."""
        return next((g for g in self.groups() if g.semantics == "BUNDLE"), None)

    def media_by_mid(self, mid: str) -> MediaDescription | None:
        return next((m for m in self.media if m.mid == mid), None)

    def __str__(self) -> str:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        for t in self.timing:
            out.append(f"t={t.start} {t.stop}")
            out.extend(f"r={r}" for r in t.repeats)
        if self.time_zones is not None:
            out.append(f"z={self.time_zones}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(_attribute_line(a) for a in self.attributes)
        for media in self.media:
            out.extend(media.lines())
        return "\r\n".join(out) + "\r\n"


def _attribute_line(attribute: Attribute) -> str:
    name, value = attribute
    return f"a={name}" if value is None else f"a={name}:{value}"


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    check_token(name, "a= attribute name")
    return (name, rest if sep else None)


def _split_lines(text: str) -> list[tuple[str, str]]:
    lines = []
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            continue
        if _FORBIDDEN.search(line):
            raise SdpError("NUL or CR inside a line")
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"not an SDP line: {line[:40]!r}")
        lines.append((line[0], line[2:]))
    return lines


def _once(current: T | None, new: T, what: str) -> T:
    if current is not None:
        raise SdpError(f"{what} appears more than once")
    return new


def parse(text: str) -> SessionDescription:
    """Parse SDP text. Raises :class:`SdpError` (and nothing else) on malformed input."""
    if not isinstance(text, str):
        raise SdpError("SDP must be text")
    lines = _split_lines(text)
    if len(lines) < 3 or [t for t, _ in lines[:3]] != ["v", "o", "s"]:
        raise SdpError("SDP must start with v=, o= and s= lines")
    if lines[0][1] != "0":
        raise SdpError(f"unsupported SDP version {lines[0][1]!r}")
    session = SessionDescription(
        origin=Origin.parse(lines[1][1]), session_name=lines[2][1], timing=[]
    )
    media: MediaDescription | None = None
    for kind, value in lines[3:]:
        if kind == "m":
            media = MediaDescription.parse_m_line(value)
            session.media.append(media)
        elif kind == "a":
            (media or session).attributes.append(_parse_attribute(value))
        elif kind == "c":
            target = media or session
            target.connection = _once(target.connection, Connection.parse(value), "c=")
        elif kind == "b":
            (media or session).bandwidths.append(Bandwidth.parse(value))
        elif kind == "i":
            target = media or session
            target.information = _once(target.information, value, "i=")
        elif kind == "k":
            target = media or session
            target.key = _once(target.key, value, "k=")
        elif media is not None:
            raise SdpError(f"{kind}= not allowed in a media section")
        elif kind == "t":
            session.timing.append(Timing.parse(value))
        elif kind == "r":
            if not session.timing:
                raise SdpError("r= before any t=")
            last = session.timing[-1]
            session.timing[-1] = Timing(last.start, last.stop, (*last.repeats, value))
        elif kind == "u":
            session.uri = _once(session.uri, value, "u=")
        elif kind == "e":
            session.emails.append(value)
        elif kind == "p":
            session.phones.append(value)
        elif kind == "z":
            session.time_zones = _once(session.time_zones, value, "z=")
        else:
            raise SdpError(f"unexpected line type {kind!r}")
    if not session.timing:
        raise SdpError("no t= line")
    return session
