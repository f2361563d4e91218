"""answer_publish: a client's offer on its send transport -> an answer and producers."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incamera.media.api import DtlsRole
from incamera.media.capabilities import router_codec_for
from incamera.media.rtp_parameters import ExtensionUri, MediaKind
from incamera.sdp import NegotiationError, SdpError, answer_publish, parse
from incamera.sdp.attributes import Direction, RidDirection, Setup

from .helpers import FINGERPRINT, chromium_offer, transport_info

KNOWN_URIS = {u.value for u in ExtensionUri}


@pytest.fixture
def chromium_answer():
    return answer_publish(chromium_offer(), transport_info(), session_id=77)


def test_remote_ice_and_dtls_come_from_the_offer(chromium_answer) -> None:
    offer = parse(chromium_offer())
    first = offer.media[0]
    assert chromium_answer.remote_ice.username_fragment == first.ice_ufrag
    assert chromium_answer.remote_ice.password == first.ice_pwd
    assert chromium_answer.remote_ice.ice_lite is False
    assert chromium_answer.remote_dtls.role is DtlsRole.CLIENT
    assert [f.value for f in chromium_answer.remote_dtls.fingerprints] == [
        f.value for f in first.fingerprints()
    ]


def test_session_level_of_the_answer(chromium_answer) -> None:
    answer = parse(chromium_answer.sdp)
    assert answer.origin.session_id == 77
    assert answer.ice_lite
    assert answer.bundle_group().mids == ("0", "1", "2")
    assert answer.has("extmap-allow-mixed")
    assert chromium_answer.sdp.endswith("\r\n") and "\n" not in chromium_answer.sdp.replace(
        "\r\n", ""
    )


def test_every_accepted_section_carries_the_sfu_transport(chromium_answer) -> None:
    answer = parse(chromium_answer.sdp)
    for media in answer.media[:3]:
        assert media.port == 40000
        assert media.connection.address == "127.0.0.1"
        assert media.ice_ufrag == "sfuUfrag1"
        assert media.ice_pwd == "sfuPassword0123456789abcd"
        assert [f.value for f in media.fingerprints()] == [FINGERPRINT]
        assert media.setup is Setup.PASSIVE
        assert media.direction is Direction.RECVONLY
        assert media.has("rtcp-mux") and media.has("end-of-candidates")
        assert [(c.address, c.port, c.type, c.transport) for c in media.candidates()] == [
            ("127.0.0.1", 40000, "host", "udp"),
            ("::1", 40000, "host", "udp"),
        ]


def test_data_channel_is_rejected(chromium_answer) -> None:
    data = parse(chromium_answer.sdp).media[3]
    assert data.kind == "application" and data.port == 0 and data.mid == "3"
    assert set(chromium_answer.rejected) == {"3"}


def test_audio_producer(chromium_answer) -> None:
    audio = chromium_answer.producers[0]
    assert audio.mid == "0" and audio.kind is MediaKind.AUDIO
    assert [(c.mime_type, c.payload_type, c.channels) for c in audio.codecs] == [
        ("audio/opus", 111, 2)
    ]
    assert audio.codecs[0].rtcp_feedback == ("transport-cc",)
    assert audio.codecs[0].parameters == {"minptime": "10", "useinbandfec": "1"}
    offer_audio = parse(chromium_offer()).media[0]
    ssrc = offer_audio.ssrcs()[0]
    assert audio.encodings[0].ssrc == ssrc.ssrc and audio.encodings[0].rid is None
    assert audio.cname == next(a.value for a in offer_audio.ssrcs() if a.attribute == "cname")
    assert audio.extension_id(ExtensionUri.AUDIO_LEVEL) == 1
    assert audio.extension_id(ExtensionUri.MID) == 4
    assert audio.extension_id(ExtensionUri.RID) is None


def test_camera_producer_has_three_rid_layers_lowest_first(chromium_answer) -> None:
    camera = chromium_answer.producers[1]
    assert camera.mid == "1" and camera.kind is MediaKind.VIDEO
    assert [(e.rid, e.scale_resolution_down_by, e.ssrc) for e in camera.encodings] == [
        ("q", 4.0, None),
        ("h", 2.0, None),
        ("f", 1.0, None),
    ]
    assert camera.extension_id(ExtensionUri.RID) == 10
    assert camera.extension_id(ExtensionUri.REPAIRED_RID) == 11
    assert camera.extension_id(ExtensionUri.TRANSPORT_CC) == 3
    assert {e.uri for e in camera.header_extensions} <= KNOWN_URIS
    assert camera.cname  # taken from the audio section's SSRC lines


def test_camera_codecs_are_the_forwardable_ones_in_offer_order(chromium_answer) -> None:
    camera = chromium_answer.producers[1]
    assert [(c.mime_type, c.payload_type, c.rtx_payload_type) for c in camera.codecs] == [
        ("video/VP8", 96, 97),
        ("video/H264", 102, 103),
        ("video/H264", 108, 109),
        ("video/H264", 116, 117),
        ("video/AV1", 45, 46),
        ("video/VP9", 98, 99),
    ]
    for codec in camera.codecs:
        router = router_codec_for(codec)
        assert router is not None
        assert set(codec.rtcp_feedback) <= set(router.rtcp_feedback)
        assert "nack pli" in codec.rtcp_feedback
        assert codec.parameters.get("packetization-mode", "1") == "1"
        assert codec.parameters.get("profile-id", "0") == "0"


def test_screen_producer_uses_signalled_ssrcs(chromium_answer) -> None:
    screen = chromium_answer.producers[2]
    group = parse(chromium_offer()).media[2].ssrc_groups()[0]
    assert len(screen.encodings) == 1
    assert (screen.encodings[0].ssrc, screen.encodings[0].rtx_ssrc) == group.ssrcs


def test_answer_codec_lines_mirror_the_producer(chromium_answer) -> None:
    answer = parse(chromium_answer.sdp)
    for media, producer in zip(answer.media, chromium_answer.producers, strict=False):
        rtpmaps = media.rtpmaps()
        fmtps = media.fmtps()
        expected = []
        for codec in producer.codecs:
            expected.append(codec.payload_type)
            assert rtpmaps[codec.payload_type].encoding_name.lower() == codec.name
            fbs = [f.feedback for f in media.rtcp_fbs() if f.payload_type == codec.payload_type]
            assert tuple(fbs) == codec.rtcp_feedback
            if codec.rtx_payload_type is not None:
                expected.append(codec.rtx_payload_type)
                assert rtpmaps[codec.rtx_payload_type].encoding_name == "rtx"
                assert fmtps[codec.rtx_payload_type].parameters == {"apt": str(codec.payload_type)}
        assert media.payload_types() == expected
        assert [(e.id, e.uri) for e in media.extmaps()] == [
            (h.id, h.uri) for h in producer.header_extensions
        ]


def test_answer_mirrors_simulcast_with_recv_rids(chromium_answer) -> None:
    camera = parse(chromium_answer.sdp).media[1]
    assert [(r.id, r.direction) for r in camera.rids()] == [
        ("q", RidDirection.RECV),
        ("h", RidDirection.RECV),
        ("f", RidDirection.RECV),
    ]
    assert str(camera.simulcast) == "recv q;h;f"
    screen = parse(chromium_answer.sdp).media[2]
    assert screen.rids() == [] and screen.simulcast is None


def _camera_with_rids(rids: list[str], simulcast: str) -> str:
    text = chromium_offer()
    text = re.sub(r"a=rid:\w+ send\r\n", "", text)
    lines = "".join(f"a=rid:{r} send\r\n" for r in rids)
    return text.replace("a=simulcast:send q;h;f\r\n", f"{lines}a=simulcast:send {simulcast}\r\n")


@pytest.mark.parametrize(
    ("rids", "simulcast", "expected"),
    [
        (["0", "1", "2"], "0;1;2", [("0", 4.0), ("1", 2.0), ("2", 1.0)]),
        (["f", "h", "q"], "f;h;q", [("q", 4.0), ("h", 2.0), ("f", 1.0)]),
        (["lo", "hi"], "lo;hi", [("lo", 2.0), ("hi", 1.0)]),
        (["q", "h", "f"], "q;~h;f", [("q", 4.0), ("h", 2.0), ("f", 1.0)]),
    ],
)
def test_rid_names_and_order(rids, simulcast, expected) -> None:
    result = answer_publish(_camera_with_rids(rids, simulcast), transport_info())
    camera = result.producers[1]
    assert [(e.rid, e.scale_resolution_down_by) for e in camera.encodings] == expected
    answered = parse(result.sdp).media[1]
    assert str(answered.simulcast) == f"recv {simulcast}"
    assert [r.id for r in answered.rids()] == rids


def test_simulcast_naming_an_undeclared_rid_rejects_the_section() -> None:
    text = chromium_offer().replace("a=simulcast:send q;h;f", "a=simulcast:send q;h;x")
    result = answer_publish(text, transport_info())
    assert "1" in result.rejected and "rid" in result.rejected["1"]
    assert [p.mid for p in result.producers] == ["0", "2"]
    assert parse(result.sdp).media[1].port == 0
    assert parse(result.sdp).bundle_group().mids == ("0", "2")


def test_legacy_sim_group_gives_ssrc_layers() -> None:
    text = re.sub(r"a=(rid|simulcast):[^\r]*\r\n", "", chromium_offer())
    legacy = (
        "a=ssrc-group:SIM 11 12 13\r\na=ssrc-group:FID 11 21\r\na=ssrc-group:FID 12 22\r\n"
        "a=ssrc-group:FID 13 23\r\n"
        + "".join(f"a=ssrc:{s} cname:legacy\r\n" for s in (11, 21, 12, 22, 13, 23))
    )
    marker = "a=rtpmap:120 ulpfec/90000\r\n"
    index = text.index(marker) + len(marker)  # end of the camera section's codec lines
    text = text[:index] + legacy + text[index:]
    camera = answer_publish(text, transport_info()).producers[1]
    assert [(e.ssrc, e.rtx_ssrc, e.scale_resolution_down_by) for e in camera.encodings] == [
        (11, 21, 4.0),
        (12, 22, 2.0),
        (13, 23, 1.0),
    ]
    assert camera.cname == "legacy"


def test_sendrecv_is_answered_recvonly_and_recvonly_inactive() -> None:
    text = chromium_offer()
    sections = text.split("m=")
    sections[1] = sections[1].replace("a=sendonly", "a=sendrecv")
    sections[3] = sections[3].replace("a=sendonly", "a=recvonly")
    result = answer_publish("m=".join(sections), transport_info())
    answer = parse(result.sdp)
    assert answer.media[0].direction is Direction.RECVONLY
    assert answer.media[2].direction is Direction.INACTIVE
    assert answer.media[2].port != 0  # kept in the bundle, just not producing
    assert [p.mid for p in result.producers] == ["0", "1"]


def test_port_zero_in_the_offer_is_rejected() -> None:
    text = chromium_offer()
    port = parse(text).media[2].port
    text = text.replace(f"m=video {port} ", "m=video 0 ")
    result = answer_publish(text, transport_info())
    assert "2" in result.rejected and [p.mid for p in result.producers] == ["0", "1"]


def _minimal_offer(audio_codecs: str = "111", extra: str = "", session: str = "") -> str:
    rtpmaps = {
        "111": "a=rtpmap:111 opus/48000/2\r\n",
        "0": "a=rtpmap:0 PCMU/8000\r\n",
    }
    return (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE a\r\n" + session
        + f"m=audio 9 UDP/TLS/RTP/SAVPF {audio_codecs}\r\nc=IN IP4 0.0.0.0\r\n"
        "a=mid:a\r\na=ice-ufrag:cli\r\na=ice-pwd:clientpassword0123456789\r\n"
        f"a=fingerprint:sha-256 {FINGERPRINT}\r\na=setup:actpass\r\na=sendonly\r\n"
        "a=rtcp-mux\r\n" + "".join(rtpmaps[pt] for pt in audio_codecs.split()) + extra
    )  # fmt: skip


def test_minimal_offer_and_mid_only_identification() -> None:
    result = answer_publish(_minimal_offer(), transport_info())
    (producer,) = result.producers
    assert producer.mid == "a" and producer.encodings[0].ssrc is None
    assert producer.cname == ""


def test_codecs_that_cannot_be_forwarded_reject_the_section() -> None:
    result = answer_publish(_minimal_offer("0"), transport_info())
    assert result.producers == [] and "a" in result.rejected
    assert parse(result.sdp).media[0].port == 0
    assert parse(result.sdp).bundle_group() is None


def test_feedback_and_extensions_are_filtered() -> None:
    extra = (
        "a=rtcp-fb:111 nack\r\na=rtcp-fb:* transport-cc\r\na=rtcp-fb:111 rrtr\r\n"
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
        "a=extmap:5 urn:example:unknown\r\n"
        "a=extmap:6/recvonly urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    )
    result = answer_publish(_minimal_offer(extra=extra), transport_info())
    (producer,) = result.producers
    assert producer.codecs[0].rtcp_feedback == ("transport-cc",)
    assert [(h.uri, h.id) for h in producer.header_extensions] == [(ExtensionUri.AUDIO_LEVEL, 1)]


def test_session_level_transport_attributes_are_used() -> None:
    text = _minimal_offer().replace("a=ice-ufrag:cli\r\na=ice-pwd:clientpassword0123456789\r\n", "")
    text = text.replace("a=group:BUNDLE a\r\n", "a=group:BUNDLE a\r\na=ice-ufrag:sess\r\n"
                        "a=ice-pwd:sessionpassword012345678\r\n")  # fmt: skip
    result = answer_publish(text, transport_info())
    assert result.remote_ice.username_fragment == "sess"


def test_no_rtcp_mux_rejects_the_section() -> None:
    result = answer_publish(_minimal_offer().replace("a=rtcp-mux\r\n", ""), transport_info())
    assert "a" in result.rejected and result.producers == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda t: t.replace("a=group:BUNDLE a\r\n", ""), NegotiationError),
        (lambda t: t.replace("a=setup:actpass", "a=setup:passive"), NegotiationError),
        (lambda t: t.replace("a=ice-pwd:clientpassword0123456789\r\n", ""), NegotiationError),
        (lambda t: t.replace(f"a=fingerprint:sha-256 {FINGERPRINT}\r\n", ""), NegotiationError),
        (lambda t: t.replace("a=group:BUNDLE a", "a=group:BUNDLE zz"), NegotiationError),
        (lambda t: t + "a=mid:b\r\n", SdpError),
        (lambda t: t.replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus"), SdpError),
        (lambda t: "garbage" + t, SdpError),
    ],
)
def test_unanswerable_offers(change, error) -> None:
    with pytest.raises(error):
        answer_publish(change(_minimal_offer()), transport_info())


def test_active_offerer_is_accepted_as_dtls_client() -> None:
    text = _minimal_offer().replace("a=setup:actpass", "a=setup:active")
    result = answer_publish(text, transport_info())
    assert result.remote_dtls.role is DtlsRole.CLIENT


def test_no_candidates_gives_discard_address() -> None:
    info = transport_info()
    bare = type(info)(info.id, info.ice_parameters, (), info.dtls_parameters)
    media = parse(answer_publish(_minimal_offer(), bare).sdp).media[0]
    assert media.port == 9 and media.connection.address == "0.0.0.0"
    assert media.candidates() == [] and media.has("end-of-candidates")


_offer_lines = chromium_offer().split("\r\n")


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, len(_offer_lines) - 1), max_size=6),
    st.lists(st.tuples(st.integers(0, len(_offer_lines) - 1), st.text(max_size=20)), max_size=3),
)
def test_damaged_offers_raise_sdp_error_or_give_a_parsable_answer(drop, replace) -> None:
    lines = list(_offer_lines)
    for index, text in replace:
        lines[index] = lines[index][: len(lines[index]) // 2] + text
    lines = [line for i, line in enumerate(lines) if i not in set(drop)]
    try:
        result = answer_publish("\r\n".join(lines), transport_info())
    except SdpError:
        return
    answer = parse(result.sdp)
    assert len(answer.media) == len(parse("\r\n".join(lines)).media)
    group = answer.bundle_group()
    assert {p.mid for p in result.producers} <= set(group.mids if group else ())


def test_bundle_only_sections_with_port_zero_are_accepted() -> None:
    """Firefox's first offer gives every section but the first port 0 and a=bundle-only
    (RFC 8843 sections 6 and 7.2): that is not a rejection."""
    offer = parse(chromium_offer())
    for media in offer.media[1:]:
        if media.kind in ("audio", "video"):
            media.port = 0
            media.add("bundle-only")
    result = answer_publish(str(offer), transport_info())
    kinds = sorted(p.kind for p in result.producers)
    assert kinds.count(MediaKind.VIDEO) == 2 and kinds.count(MediaKind.AUDIO) == 1
    answer = parse(result.sdp)
    accepted = [m for m in answer.media if m.kind in ("audio", "video")]
    assert all(m.port != 0 for m in accepted)
