"""The protocol's message schemas: valid messages parse and round-trip, anything else raises
``BadMessage`` with a reason (and never any other exception)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incamera.signalling import messages as m
from incamera.signalling.errors import BadMessage

VALID_CLIENT = [
    {"type": "hello", "versions": [1], "name": "Ann"},
    {"type": "hello", "versions": [2, 1], "name": "Bo", "resume": "tok", "rid": 1},
    {"type": "leave"},
    {"type": "ping", "rid": 7},
    {"type": "publish", "sdp": "v=0\r\n", "sources": {"0": "mic", "1": "camera"}, "rid": 2},
    {"type": "subscribe_answer", "sdp": "v=0\r\n"},
    {"type": "restart_ice", "rid": 3},
    {"type": "layer", "mid": "2", "width": 320, "height": 180},
    {"type": "layer", "mid": "2", "width": 0, "height": 0},
    {"type": "mute", "source": "mic", "muted": True},
    {"type": "chat", "text": "hallo\nwelt"},
    {"type": "hand", "raised": False},
]

INVALID_CLIENT = [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ("[]", ""),
    ("42", ""),
    ("{}", "no 'type'"),
    ('{"type": "nope"}', "unknown message type"),
    ('{"type": "hello", "versions": [], "name": "A"}', "versions"),
    ('{"type": "hello", "versions": ["1"], "name": "A"}', "versions"),
    ('{"type": "hello", "versions": [true], "name": "A"}', "versions"),
    ('{"type": "hello", "versions": [1], "name": ""}', "name"),
    ('{"type": "hello", "versions": [1], "name": "   "}', "name"),
    ('{"type": "hello", "versions": [1], "name": "a\\u0000b"}', "name"),
    ('{"type": "hello", "versions": [1], "name": "' + "x" * 65 + '"}', "name"),
    ('{"type": "ping", "extra": 1}', "extra"),
    ('{"type": "chat", "text": ""}', "text"),
    ('{"type": "chat", "text": "' + "x" * 2001 + '"}', "text"),
    ('{"type": "mute", "source": "screen", "muted": true}', "source"),
    ('{"type": "layer", "mid": "0", "width": -1, "height": 0}', "width"),
    ('{"type": "publish", "sdp": "x", "sources": {"0": "webcam"}}', "sources"),
    ('{"type": "ping", "rid": -1}', "rid"),
    ('{"type": "ping", "rid": 1.5}', "rid"),
    ("[" * 5000 + "]" * 5000, ""),
]


@pytest.mark.parametrize("data", VALID_CLIENT, ids=lambda d: d["type"])
def test_valid_client_messages_parse_and_round_trip(data: dict[str, Any]) -> None:
    message = m.parse_client_message(json.dumps(data))
    assert message.type == data["type"]
    again = m.parse_client_message(m.encode(message))
    assert again == message


@pytest.mark.parametrize(("text", "reason"), INVALID_CLIENT)
def test_invalid_client_messages_get_a_reason(text: str, reason: str) -> None:
    with pytest.raises(BadMessage) as caught:
        m.parse_client_message(text)
    assert caught.value.code == "bad_message"
    assert caught.value.reason
    assert reason in caught.value.reason


def test_rid_of_a_bad_request_is_kept() -> None:
    with pytest.raises(BadMessage) as caught:
        m.parse_client_message('{"type": "chat", "text": "", "rid": 12}')
    assert caught.value.rid == 12


def test_overlong_and_binary_input() -> None:
    with pytest.raises(BadMessage, match="longer"):
        m.parse_client_message(" " * (m.MAX_MESSAGE_CHARS + 1))
    with pytest.raises(BadMessage, match="UTF-8"):
        m.parse_client_message(b"\xff\xfe")
    assert m.parse_client_message(b'{"type":"ping"}') == m.Ping()


def test_hello_name_is_trimmed() -> None:
    hello = m.parse_client_message('{"type":"hello","versions":[1],"name":"  Ann Lee "}')
    assert hello.name == "Ann Lee"


def test_server_messages_round_trip_with_wire_names() -> None:
    chat = m.ChatMessage(seq=3, sender="p1", name="Ann", text="hi", ts=1.5)
    samples: list[m.Message] = [
        m.Welcome(
            version=1,
            participant=m.Participant(id="p1", name="Ann"),
            resume_token="t",
            resumed=False,
            participants=[m.Participant(id="p2", name="Bo", reconnecting=True)],
            chat=[chat],
        ),
        m.Error(code="bad_message", reason="x"),
        m.Error(rid=4, code="rate_limited", reason="slow down"),
        m.Reply(rid=1),
        m.Reply(rid=2, sdp="v=0"),
        m.Pong(),
        m.Subscribe(sdp="v=0", tracks={"0": m.TrackInfo(participant="p2", source="camera")}),
        m.ParticipantJoined(participant=m.Participant(id="p2", name="Bo")),
        m.ParticipantLeft(id="p2"),
        m.ParticipantUpdated(participant=m.Participant(id="p2", name="Bo", audio_muted=True)),
        m.ActiveSpeaker(id=None),
        m.ActiveSpeaker(id="p2"),
        m.ConnectionQuality(id="p2", quality="poor"),
        m.ChatPosted(message=chat),
    ]
    for message in samples:
        text = m.encode(message)
        assert m.parse_server_message(text) == message
    wire = json.loads(m.encode(m.ChatPosted(message=chat)))
    assert wire == {
        "type": "chat",
        "message": {"seq": 3, "from": "p1", "name": "Ann", "text": "hi", "ts": 1.5},
    }
    assert json.loads(m.encode(m.Reply(rid=1))) == {"type": "reply", "rid": 1, "ok": True}
    assert json.loads(m.encode(m.Error(code="internal", reason="r"))) == {
        "type": "error",
        "code": "internal",
        "reason": "r",
    }
    assert json.loads(m.encode(m.ActiveSpeaker(id=None))) == {"type": "active_speaker", "id": None}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
message_types = st.sampled_from(
    [d["type"] for d in VALID_CLIENT] + ["welcome", "subscribe", "reply", ""]
)


@st.composite
def message_like(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped like messages: a real type, real and made-up fields, any values."""
    data = draw(st.dictionaries(st.sampled_from(sorted(_FIELDS)), json_values, max_size=5))
    data["type"] = draw(message_types)
    return data


_FIELDS = {
    "rid", "versions", "name", "resume", "sdp", "sources", "mid", "width", "height",
    "source", "muted", "text", "raised", "junk",
}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_text_raises_only_bad_message(text: str | bytes) -> None:
    try:
        m.parse_client_message(text)
    except BadMessage as error:
        assert error.reason


@settings(max_examples=400, deadline=None)
@given(json_values | message_like())
def test_arbitrary_json_raises_only_bad_message(value: Any) -> None:
    try:
        message = m.parse_client_message(json.dumps(value))
    except BadMessage as error:
        assert error.reason
    else:
        assert m.parse_client_message(m.encode(message)) == message
