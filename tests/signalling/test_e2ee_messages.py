"""The E2EE message schemas: base64url fields (no padding, size-capped), the MLS messages
in both directions, ``welcome.e2ee`` and ``participant.device_key``."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.signalling import messages as m
from incamera.signalling.errors import BadMessage

B = "AAEC"  # bytes 00 01 02

VALID = [
    {"type": "mls_key_package", "key_package": B, "device_key": "q83v", "rid": 1},
    {"type": "mls_create", "group_info": B, "ratchet_tree": "AA"},
    {
        "type": "mls_commit",
        "commit": B,
        "welcome": None,
        "group_info": B,
        "ratchet_tree": B,
        "added": [],
        "removed": ["x"],
    },
    {"type": "mls_commit", "commit": B, "welcome": "-_8", "group_info": B, "ratchet_tree": B},
    {"type": "mls_message", "message": B},
    {"type": "key_frame", "mid": "3"},
    {"type": "hello", "versions": [1], "name": "Bot", "test_skip_mls": True},
]

INVALID = [
    ('{"type":"mls_message","message":"AAE="}', "message"),  # padding
    ('{"type":"mls_message","message":"AA+/"}', "message"),  # standard alphabet
    ('{"type":"mls_message","message":"AAECA"}', "message"),  # impossible length
    ('{"type":"mls_message","message":""}', "message"),
    ('{"type":"mls_message","message":5}', "message"),
    ('{"type":"mls_key_package","key_package":"AA","device_key":"' + "A" * 400 + '"}', "device"),
    ('{"type":"mls_create","group_info":"AA"}', "ratchet_tree"),
    ('{"type":"mls_commit","commit":"AA","group_info":"AA","ratchet_tree":"AA","added":[1]}', ""),
    ('{"type":"key_frame"}', "mid"),
    ('{"type":"hello","versions":[1],"name":"A","test_skip_mls":"yes"}', "test_skip_mls"),
]


@pytest.mark.parametrize("data", VALID, ids=lambda d: d["type"])
def test_valid_messages_parse_and_round_trip(data: dict[str, Any]) -> None:
    message = m.parse_client_message(json.dumps(data))
    assert message.type == data["type"]
    again = m.parse_client_message(m.encode(message))
    assert again == message


@pytest.mark.parametrize(("text", "where"), INVALID)
def test_invalid_messages_are_bad_messages(text: str, where: str) -> None:
    with pytest.raises(BadMessage) as caught:
        m.parse_client_message(text)
    assert where in caught.value.reason


def test_mls_fields_are_capped() -> None:
    limit = m.b64_length(m.MAX_MLS_BYTES)
    assert limit == len(m.b64encode(bytes(m.MAX_MLS_BYTES)))
    text = json.dumps({"type": "mls_message", "message": "A" * (limit + 3)})
    with pytest.raises(BadMessage):
        m.parse_client_message(text)


@given(st.binary(max_size=200))
def test_base64url_round_trip(data: bytes) -> None:
    text = m.b64encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert m.b64decode(text) == data


@given(st.text(max_size=20))
def test_b64decode_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        m.b64decode(text)


def test_server_messages_parse() -> None:
    texts = [
        {
            "type": "mls_task",
            "create": False,
            "add": [{"participant": "p", "key_package": B}],
            "remove": ["q"],
            "update": False,
            "epoch": 4,
        },
        {"type": "mls_commit", "epoch": 4, "commit": B, "from": "p"},
        {"type": "mls_welcome", "epoch": 5, "welcome": B, "ratchet_tree": B},
        {"type": "mls_message", "from": "p", "message": B},
    ]
    for data in texts:
        message = m.parse_server_message(json.dumps(data))
        assert json.loads(m.encode(message)) == data
    posted = m.MlsCommitPosted(epoch=1, commit=B, sender="p")
    assert json.loads(m.encode(posted))["from"] == "p"


def test_welcome_carries_e2ee_or_null() -> None:
    me = m.Participant(id="p", name="Ann", device_key="q83v")
    base = {
        "version": 1,
        "participant": me,
        "resume_token": "t",
        "resumed": False,
        "participants": [],
        "chat": [],
    }
    plain = json.loads(m.encode(m.Welcome(**base)))
    assert plain["e2ee"] is None
    e2ee = m.E2eeInfo(group_id="AAEC", epoch=None)
    data = json.loads(m.encode(m.Welcome(**base, e2ee=e2ee)))
    assert data["e2ee"] == {"group_id": "AAEC", "epoch": None}
    assert data["participant"]["device_key"] == "q83v"
    assert m.parse_server_message(json.dumps(data)).e2ee == e2ee
