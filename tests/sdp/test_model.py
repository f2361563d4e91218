"""SDP text model (RFC 8866): parse, serialise, typed views; fuzzed with hypothesis."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incamera.media.errors import ParseError
from incamera.sdp.attributes import Direction, RidDirection, Setup
from incamera.sdp.errors import SdpError
from incamera.sdp.model import Connection, MediaDescription, Origin, SessionDescription, parse

from .helpers import chromium_offer

MINIMAL = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def test_chromium_offer_round_trips_byte_for_byte() -> None:
    text = chromium_offer()
    assert str(parse(text)) == text


def test_lf_line_ends_are_accepted_and_written_back_as_crlf() -> None:
    session = parse(MINIMAL.replace("\r\n", "\n") + "a=ice-lite\n")
    assert str(session) == MINIMAL + "a=ice-lite\r\n"


def test_session_fields() -> None:
    session = parse(chromium_offer())
    assert session.version == 0
    assert session.origin.username == "-"
    assert session.origin.session_version == 2
    assert session.session_name == "-"
    assert session.bundle_group() is not None
    assert session.bundle_group().mids == ("0", "1", "2", "3")
    assert session.has("extmap-allow-mixed")
    assert [m.kind for m in session.media] == ["audio", "video", "video", "application"]


def test_typed_views_on_the_chromium_offer() -> None:
    session = parse(chromium_offer())
    audio, camera, screen, data = session.media
    assert audio.mid == "0" and camera.mid == "1" and data.mid == "3"
    assert audio.direction is Direction.SENDONLY
    assert data.direction is None
    assert audio.setup is Setup.ACTPASS
    assert audio.ice_ufrag and audio.ice_pwd and "trickle" in audio.ice_options
    assert audio.fingerprints()[0].algorithm == "sha-256"
    assert audio.rtpmaps()[111].encoding_name == "opus"
    assert audio.rtpmaps()[111].channels == 2
    assert audio.fmtps()[111].parameters == {"minptime": "10", "useinbandfec": "1"}
    assert audio.fmtps()[63].parameters == {}  # RED's "111/111" is not key=value
    assert any(fb.payload_type == 111 and fb.feedback == "transport-cc" for fb in audio.rtcp_fbs())
    assert any(a.attribute == "cname" for a in audio.ssrcs())
    assert camera.msid is not None and camera.msid.track_id
    assert [r.id for r in camera.rids()] == ["q", "h", "f"]
    assert all(r.direction is RidDirection.SEND for r in camera.rids())
    assert camera.simulcast is not None
    assert [s.rid for s in camera.simulcast.send] == ["q", "h", "f"]
    assert {e.uri for e in camera.extmaps()} >= {
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "urn:ietf:params:rtp-hdrext:sdes:mid",
    }
    assert screen.ssrc_groups()[0].semantics == "FID"
    assert len(screen.ssrc_groups()[0].ssrcs) == 2
    assert data.formats == ["webrtc-datachannel"]
    host = next(c for c in audio.candidates() if c.address == "127.0.0.1" and c.transport == "udp")
    assert host.type == "host" and host.component == 1


def test_attribute_access() -> None:
    session = parse(MINIMAL + "a=foo\r\na=bar:\r\na=baz:1 2\r\na=baz:3\r\n")
    assert session.get("foo") == ""
    assert session.get("bar") == ""
    assert session.get("baz") == "1 2"
    assert session.get_all("baz") == ["1 2", "3"]
    assert session.get("nope") is None
    # property attribute vs empty value survive a round trip
    assert ("foo", None) in session.attributes and ("bar", "") in session.attributes
    assert parse(str(session)) == session


def test_build_and_serialise() -> None:
    media = MediaDescription("audio", 9, "UDP/TLS/RTP/SAVPF", ["111"], connection=Connection())
    media.add("mid", "0")
    media.add("rtcp-mux")
    session = SessionDescription(origin=Origin("-", 42, 1), media=[media])
    text = str(session)
    assert text == (
        "v=0\r\no=- 42 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtcp-mux\r\n"
    )
    assert parse(text) == session


def test_optional_lines_round_trip() -> None:
    text = (
        "v=0\r\no=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\r\ns=Call\r\n"
        "i=A call\r\nu=https://example.invalid/\r\ne=j@example.invalid\r\np=+1 555\r\n"
        "c=IN IP4 203.0.113.1\r\nb=AS:128\r\nt=0 0\r\nr=604800 3600 0 90000\r\n"
        "z=2882844526 -1h\r\nk=prompt\r\na=recvonly\r\n"
        "m=audio 49170/2 RTP/AVP 0\r\ni=voice\r\nc=IN IP4 203.0.113.2\r\nb=TIAS:64000\r\n"
        "k=prompt\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    session = parse(text)
    assert str(session) == text
    assert session.media[0].port_count == 2
    assert session.timing[0].repeats == ("604800 3600 0 90000",)
    assert session.direction is Direction.RECVONLY


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "o=- 1 2 IN IP4 0.0.0.0\r\nv=0\r\ns=-\r\nt=0 0\r\n",  # wrong order
        "v=1\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",  # version
        "v=0\r\no=- 1 2 IN IP4\r\ns=-\r\nt=0 0\r\n",  # short origin
        "v=0\r\no=- x 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",  # sess-id not a number
        "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\n",  # no t=
        MINIMAL + "m=audio 9 UDP/TLS/RTP/SAVPF\r\n",  # no formats
        MINIMAL + "m=audio 70000 RTP/AVP 0\r\n",  # port range
        MINIMAL + "m=audio 9 RTP/AVP 0\r\nt=0 0\r\n",  # t= inside media
        MINIMAL + "x=1\r\n",  # unknown type letter
        MINIMAL + "a=\r\n",  # empty attribute name
        MINIMAL + "a=bad name:1\r\n",  # space in attribute name
        MINIMAL + "a=x:1\ry\r\n",  # CR inside a line
        MINIMAL + "a=x:\x00\r\n",  # NUL
        MINIMAL + " a=x\r\n",  # leading space
        MINIMAL + "c=IN IP4 0.0.0.0\r\nc=IN IP4 0.0.0.0\r\n",  # two c= lines
        MINIMAL + "b=AS\r\n",
    ],
)
def test_malformed_sdp_raises_sdp_error(text: str) -> None:
    with pytest.raises(SdpError):
        parse(text)


def test_sdp_error_is_the_media_parse_error_and_a_value_error() -> None:
    assert issubclass(SdpError, ParseError)
    assert issubclass(SdpError, ValueError)


@pytest.mark.parametrize(
    ("attribute", "view"),
    [
        ("a=rtpmap:96 VP8", lambda m: m.rtpmaps()),
        ("a=rtpmap:200 VP8/90000", lambda m: m.rtpmaps()),
        ("a=fmtp:x apt=96", lambda m: m.fmtps()),
        ("a=rtcp-fb:96", lambda m: m.rtcp_fbs()),
        ("a=extmap:0 urn:x", lambda m: m.extmaps()),
        ("a=extmap:1/sideways urn:x", lambda m: m.extmaps()),
        ("a=candidate:1 1 udp 5 127.0.0.1 9 host", lambda m: m.candidates()),
        ("a=candidate:1 1 udp 5 127.0.0.1 99999 typ host", lambda m: m.candidates()),
        ("a=fingerprint:sha-256 XYZ", lambda m: m.fingerprints()),
        ("a=setup:sideways", lambda m: m.setup),
        ("a=mid:0\r\na=mid:1", lambda m: m.mid),
        ("a=ssrc:abc cname:x", lambda m: m.ssrcs()),
        ("a=ssrc:4294967296 cname:x", lambda m: m.ssrcs()),
        ("a=ssrc-group:FID 1 x", lambda m: m.ssrc_groups()),
        ("a=rid:q sideways", lambda m: m.rids()),
        ("a=rid:q! send", lambda m: m.rids()),
        ("a=simulcast:send", lambda m: m.simulcast),
        ("a=simulcast:send q;;f", lambda m: m.simulcast),
        ("a=simulcast:sideways q", lambda m: m.simulcast),
        ("a=simulcast:send q send h", lambda m: m.simulcast),
        ("a=msid:a b c", lambda m: m.msid),
        ("a=sendonly\r\na=recvonly", lambda m: m.direction),
    ],
)
def test_malformed_attribute_values_raise_sdp_error(attribute: str, view) -> None:
    media = parse(MINIMAL + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + attribute + "\r\n").media[0]
    with pytest.raises(SdpError):
        view(media)


# -- property tests -------------------------------------------------------------------------

LINE_TYPES = "vosicbtrzkamuep"
_value = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_line = st.builds(lambda t, v: f"{t}={v}", st.sampled_from(LINE_TYPES), _value)
_attr_names = st.sampled_from(
    [
        "rtpmap", "fmtp", "rtcp-fb", "extmap", "candidate", "fingerprint", "setup", "mid",
        "msid", "ssrc", "ssrc-group", "rid", "simulcast", "group", "ice-ufrag", "ice-pwd",
        "ice-options", "sendonly", "recvonly", "inactive", "sendrecv",
    ]
)  # fmt: skip
_attr_value = st.text(alphabet="0123456789 abcdefqhfx:/;,~=*-.ABF", max_size=40)
_attr_line = st.builds(
    lambda n, v: f"a={n}" if v is None else f"a={n}:{v}", _attr_names, st.none() | _attr_value
)
_sdpish = st.builds(
    lambda head, body: head + "\r\n".join(body),
    st.sampled_from(["", MINIMAL, MINIMAL + "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"]),
    st.lists(_line | _attr_line | st.sampled_from(["m=audio 9 RTP/AVP 0", "c=IN IP4 ::1"])),
)


def _exercise_views(session: SessionDescription) -> None:
    for part in (session, *session.media):
        for view in (
            lambda p: p.ice_ufrag,
            lambda p: p.ice_pwd,
            lambda p: p.ice_options,
            lambda p: p.candidates(),
            lambda p: p.fingerprints(),
            lambda p: p.setup,
            lambda p: p.extmaps(),
            lambda p: p.direction,
        ):
            with contextlib.suppress(SdpError):
                view(part)
    for media in session.media:
        for view in (
            MediaDescription.rtpmaps,
            MediaDescription.fmtps,
            MediaDescription.rtcp_fbs,
            MediaDescription.payload_types,
            MediaDescription.ssrcs,
            MediaDescription.ssrc_groups,
            MediaDescription.rids,
            lambda m: m.mid,
            lambda m: m.msid,
            lambda m: m.simulcast,
        ):
            try:
                values = view(media)
            except SdpError:
                continue
            # typed values write back what they read
            items = values.values() if isinstance(values, dict) else values
            if isinstance(items, (list, type({}.values()))):
                for item in items:
                    if hasattr(type(item), "parse"):
                        assert type(item).parse(str(item)) == item
    with contextlib.suppress(SdpError):
        session.groups()


@settings(deadline=None, max_examples=400)
@given(st.one_of(st.text(max_size=200), _sdpish))
def test_arbitrary_text_raises_sdp_error_or_parses(text: str) -> None:
    try:
        session = parse(text)
    except SdpError:
        return
    assert parse(str(session)) == session
    _exercise_views(session)


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decoded_raise_sdp_error_or_parse(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        session = parse(MINIMAL + text)
    except SdpError:
        return
    assert parse(str(session)) == session
