"""SubscribeSession: the SFU's offers on a recv transport and the answers it accepts."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incamera.media.api import DtlsRole
from incamera.media.capabilities import ROUTER_CODECS
from incamera.media.rtp_parameters import ExtensionUri, MediaKind
from incamera.sdp import NegotiationError, SdpError, SdpStateError, SubscribeSession, parse
from incamera.sdp.attributes import Direction, Setup

from .helpers import FINGERPRINT, consumer, transport_info


def _session(*kinds: MediaKind) -> SubscribeSession:
    session = SubscribeSession(transport_info(), cname="sub")
    for i, kind in enumerate(kinds):
        session.add(consumer(kind, 1000 * (i + 1)), f"stream{i}", f"track{i}")
    return session


def answer_for(offer_text: str, setup: str = "active", rejected: set[str] = frozenset()) -> str:
    """A hand-written answer, as a browser would give it, to one of our offers."""
    offer = parse(offer_text)
    live = [m.mid for m in offer.media if m.port != 0 and m.mid not in rejected]
    out = ["v=0", "o=- 5 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    if live:
        out.append("a=group:BUNDLE " + " ".join(live))
    for media in offer.media:
        port = 9 if media.mid in live else 0
        out += [
            f"m={media.kind} {port} {media.proto} {' '.join(media.formats)}",
            "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:brws",
            "a=ice-pwd:browserpassword012345678",
            f"a=fingerprint:sha-256 {FINGERPRINT}",
            f"a=setup:{setup}",
            f"a=mid:{media.mid}",
            "a=recvonly" if media.mid in live else "a=inactive",
            "a=rtcp-mux",
        ]
    return "\r\n".join(out) + "\r\n"


def test_offer_contents() -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    offer = parse(session.offer())
    assert offer.ice_lite
    assert offer.bundle_group().mids == ("0", "1")
    audio, video = offer.media
    for media, ssrc, track in ((audio, 1000, "track0"), (video, 2000, "track1")):
        assert media.port == 40000 and media.proto == "UDP/TLS/RTP/SAVPF"
        assert media.setup is Setup.ACTPASS
        assert media.direction is Direction.SENDONLY
        assert media.ice_ufrag == "sfuUfrag1" and media.fingerprints()[0].value == FINGERPRINT
        assert media.has("rtcp-mux") and media.has("end-of-candidates")
        assert len(media.candidates()) == 2
        assert media.msid.track_id == track
        cnames = {a.ssrc: a.value for a in media.ssrcs() if a.attribute == "cname"}
        assert cnames[ssrc] == "sfu-cname"  # the consumer's own cname wins over the session's
        uris = {e.uri for e in media.extmaps()}
        assert ExtensionUri.RID not in uris and ExtensionUri.REPAIRED_RID not in uris
        assert ExtensionUri.MID in uris
    assert audio.payload_types() == [111]
    assert audio.rtpmaps()[111].channels == 2
    assert audio.fmtps()[111].parameters == {"minptime": "10", "useinbandfec": "1"}
    vp8 = next(c for c in ROUTER_CODECS if c.name == "vp8")
    assert video.payload_types() == [vp8.payload_type, vp8.rtx_payload_type]
    assert video.fmtps()[vp8.rtx_payload_type].parameters == {"apt": str(vp8.payload_type)}
    assert {f.feedback for f in video.rtcp_fbs()} == set(vp8.rtcp_feedback)
    assert [(g.semantics, g.ssrcs) for g in video.ssrc_groups()] == [("FID", (2000, 2001))]
    assert ExtensionUri.AUDIO_LEVEL not in {e.uri for e in video.extmaps()}
    ids = {e.uri: e.id for m in offer.media for e in m.extmaps()}
    for media in offer.media:  # one id per URI across the bundle
        assert all(ids[e.uri] == e.id for e in media.extmaps())


def test_consumer_without_cname_gets_the_session_cname() -> None:
    session = SubscribeSession(transport_info(), cname="sub")
    session.add(replace(consumer(MediaKind.AUDIO, 5), cname=""), "s", "t")
    media = parse(session.offer()).media[0]
    assert [a.value for a in media.ssrcs() if a.attribute == "cname"] == ["sub"]


def test_apply_answer_returns_client_ice_and_dtls() -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    ice, dtls = session.apply_answer(answer_for(session.offer()))
    assert (ice.username_fragment, ice.password) == ("brws", "browserpassword012345678")
    assert ice.ice_lite is False
    assert dtls.role is DtlsRole.CLIENT
    assert [f.value for f in dtls.fingerprints] == [FINGERPRINT]


def test_mids_are_assigned_in_order_and_never_reused() -> None:
    session = _session()
    mids = [session.add(consumer(MediaKind.VIDEO, 10 * i), "s", f"t{i}") for i in range(3)]
    assert mids == ["0", "1", "2"]
    session.apply_answer(answer_for(session.offer()))
    session.remove("1")
    session.apply_answer(answer_for(session.offer()))
    assert session.add(consumer(MediaKind.VIDEO, 99), "s", "t9") == "3"


def test_consumer_params_get_the_assigned_mid() -> None:
    session = _session(MediaKind.VIDEO)
    assert session.consumer("0").mid == "0"
    assert session.mids == ["0"]


def test_removed_section_is_offered_with_port_zero() -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    session.apply_answer(answer_for(session.offer()))
    session.remove("0")
    offer = parse(session.offer())
    assert [m.mid for m in offer.media] == ["0", "1"]
    assert offer.media[0].port == 0 and offer.media[0].direction is Direction.INACTIVE
    assert offer.media[0].msid is None and offer.media[0].ssrcs() == []
    assert offer.bundle_group().mids == ("1",)
    assert session.mids == ["1"]


def test_slot_is_recycled_only_after_an_answer_and_only_for_the_same_kind() -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    session.apply_answer(answer_for(session.offer()))
    session.remove("1")
    # closed but not yet negotiated: a new video consumer is appended
    assert session.add(consumer(MediaKind.VIDEO, 50), "s", "a") == "2"
    offer = session.offer()
    assert re.findall(r"a=mid:(\S+)", offer) == ["0", "1", "2"]
    session.apply_answer(answer_for(offer))
    # now slot 1 (video) may be recycled, by video only
    assert session.add(consumer(MediaKind.AUDIO, 60), "s", "b") == "3"
    assert session.add(consumer(MediaKind.VIDEO, 70), "s", "c") == "4"
    offer = session.offer()
    assert re.findall(r"a=mid:(\S+)", offer) == ["0", "4", "2", "3"]
    assert parse(offer).bundle_group().mids == ("0", "4", "2", "3")
    session.apply_answer(answer_for(offer))


def test_removing_a_never_offered_consumer_forgets_it() -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    session.apply_answer(answer_for(session.offer()))
    session.remove("1")
    session.apply_answer(answer_for(session.offer()))
    recycled = session.add(consumer(MediaKind.VIDEO, 80), "s", "r")
    appended = session.add(consumer(MediaKind.AUDIO, 90), "s", "x")
    session.remove(recycled)  # the closed slot "1" comes back
    session.remove(appended)  # dropped entirely
    offer = parse(session.offer())
    assert [(m.mid, m.port == 0) for m in offer.media] == [("0", False), ("1", True)]


def test_session_version_increases_and_session_id_is_stable() -> None:
    session = _session(MediaKind.AUDIO)
    first, second = parse(session.offer()).origin, parse(session.offer()).origin
    assert first.session_id == second.session_id
    assert second.session_version == first.session_version + 1


def test_state_errors() -> None:
    session = _session()
    with pytest.raises(SdpStateError):
        session.offer()  # nothing was ever added
    session.add(consumer(MediaKind.AUDIO, 1), "s", "t")
    with pytest.raises(SdpStateError):
        session.apply_answer(answer_for("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"))
    with pytest.raises(SdpStateError):
        session.remove("7")
    with pytest.raises(SdpStateError):
        session.consumer("7")


def test_apply_answer_needs_a_pending_offer() -> None:
    session = _session(MediaKind.AUDIO)
    offer = session.offer()
    session.apply_answer(answer_for(offer))
    with pytest.raises(SdpStateError):
        session.apply_answer(answer_for(offer))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda a: a.replace("a=mid:1", "a=mid:9"),  # other mids
        lambda a: a.split("m=video")[0],  # missing section
        lambda a: a.replace("a=group:BUNDLE 0 1\r\n", ""),  # no BUNDLE
        lambda a: a.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 7"),  # unknown mid
        lambda a: a.replace("a=setup:active", "a=setup:passive"),  # SFU is DTLS server
        lambda a: a.replace("a=recvonly", "a=inactive"),  # not receiving
        lambda a: a.replace("a=ice-pwd:browserpassword012345678\r\n", ""),
    ],
)
def test_mismatched_answers_raise_negotiation_error(spoil) -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    offer = session.offer()
    with pytest.raises(NegotiationError):
        session.apply_answer(spoil(answer_for(offer)))
    session.apply_answer(answer_for(offer))  # the offer is still pending after a bad answer


def test_rejected_live_section_raises() -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    with pytest.raises(NegotiationError, match="rejected mid 1"):
        session.apply_answer(answer_for(session.offer(), rejected={"1"}))


def test_garbage_answer_raises_sdp_error() -> None:
    session = _session(MediaKind.AUDIO)
    session.offer()
    with pytest.raises(SdpError):
        session.apply_answer("not sdp")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda p: replace(p, codecs=()),
        lambda p: replace(p, codecs=(replace(p.codecs[0], payload_type=100),)),  # not router PT
        lambda p: replace(p, codecs=(replace(p.codecs[0], rtx_payload_type=120),)),
        lambda p: replace(p, encodings=()),
        lambda p: replace(p, encodings=(replace(p.encodings[0], ssrc=None),)),
        lambda p: replace(p, encodings=p.encodings * 2),
        lambda p: replace(p, kind=MediaKind.AUDIO),
        lambda p: replace(
            p,
            header_extensions=(replace(p.header_extensions[0], id=p.header_extensions[0].id + 5),),
        ),
    ],
)
def test_bad_consumer_parameters_are_refused(spoil) -> None:
    session = _session()
    with pytest.raises(ValueError):
        session.add(spoil(consumer(MediaKind.VIDEO, 1)), "s", "t")


def test_closing_every_consumer_keeps_the_transport_and_allows_recycling() -> None:
    session = _session(MediaKind.AUDIO)
    first = session.apply_answer(answer_for(session.offer()))
    session.remove("0")
    offer = parse(session.offer())
    assert offer.bundle_group() is None and offer.media[0].port == 0
    assert session.apply_answer(answer_for(str(offer))) == first
    assert session.add(consumer(MediaKind.AUDIO, 7), "s", "t") == "1"
    assert re.findall(r"a=mid:(\S+)", session.offer()) == ["1"]


def test_closed_mids_left_in_the_answer_bundle_are_tolerated() -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    session.apply_answer(answer_for(session.offer()))
    session.remove("0")
    answer = answer_for(session.offer()).replace("a=group:BUNDLE 1", "a=group:BUNDLE 0 1")
    ice, _ = session.apply_answer(answer)  # the ICE comes from the live section "1"
    assert ice.username_fragment == "brws"


_GOOD = answer_for(_session(MediaKind.AUDIO, MediaKind.VIDEO).offer())
_GOOD_LINES = _GOOD.split("\r\n")


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, len(_GOOD_LINES) - 1), max_size=5),
    st.lists(st.tuples(st.integers(0, len(_GOOD_LINES) - 1), st.text(max_size=15)), max_size=3),
)
def test_damaged_answers_raise_sdp_error_or_apply(drop, edits) -> None:
    session = _session(MediaKind.AUDIO, MediaKind.VIDEO)
    session.offer()
    lines = list(_GOOD_LINES)
    for index, text in edits:
        lines[index] = lines[index][: len(lines[index]) // 2] + text
    lines = [line for i, line in enumerate(lines) if i not in set(drop)]
    try:
        ice, dtls = session.apply_answer("\r\n".join(lines))
    except SdpError:
        with pytest.raises(SdpError):  # still pending: the good answer applies afterwards
            session.apply_answer("garbage")
        session.apply_answer(_GOOD)
        return
    assert ice.username_fragment and ice.password
    assert dtls.role is DtlsRole.CLIENT and dtls.fingerprints
