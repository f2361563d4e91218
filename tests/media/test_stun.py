"""STUN (RFC 8489) against the RFC 5769 test vectors, plus property tests."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media import stun
from incamera.media.errors import ParseError


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# RFC 5769 (Copyright (c) 2010 IETF Trust and the document authors), §2.1-2.4. The padding of
# SOFTWARE and USERNAME in §2.1-2.3 is 0x20 in the RFC on purpose.
SAMPLE_REQUEST = _hex("""
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf
""")
SAMPLE_IPV4_RESPONSE = _hex("""
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96
""")
SAMPLE_IPV6_RESPONSE = _hex("""
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c
""")
SAMPLE_LONG_TERM_REQUEST = _hex("""
    00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
    00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
    00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
""")
PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TRANSACTION_ID = _hex("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")


def _without_auth(message: stun.StunMessage) -> list[tuple[int, bytes]]:
    return [
        (t, v) for t, v in message.attributes if t not in (stun.MESSAGE_INTEGRITY, stun.FINGERPRINT)
    ]


def test_rfc5769_sample_request() -> None:
    message = stun.StunMessage.parse(SAMPLE_REQUEST)
    assert message.message_type == stun.BINDING_REQUEST
    assert message.method == 1
    assert message.message_class == stun.CLASS_REQUEST
    assert message.transaction_id == TRANSACTION_ID
    assert message.software() == "STUN test client"
    assert message.username() == "evtj:h6vY"
    assert message.priority() == 0x6E0001FF
    assert message.ice_controlled() == 0x932FF9B151263B36
    assert message.ice_controlling() is None
    assert not message.use_candidate()
    assert stun.verify_message_integrity(SAMPLE_REQUEST, PASSWORD)
    assert not stun.verify_message_integrity(SAMPLE_REQUEST, b"wrong password")
    assert stun.verify_fingerprint(SAMPLE_REQUEST)
    rebuilt = stun.build(
        message.message_type,
        message.transaction_id,
        _without_auth(message),
        PASSWORD,
        True,
        pad_byte=0x20,
    )
    assert rebuilt == SAMPLE_REQUEST


@pytest.mark.parametrize(
    ("vector", "address"),
    [
        (SAMPLE_IPV4_RESPONSE, ("192.0.2.1", 32853)),
        (SAMPLE_IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_rfc5769_sample_responses(vector: bytes, address: tuple[str, int]) -> None:
    message = stun.StunMessage.parse(vector)
    assert message.message_type == stun.BINDING_SUCCESS
    assert message.message_class == stun.CLASS_SUCCESS
    assert message.software() == "test vector"
    assert message.xor_mapped_address() == address
    assert stun.verify_message_integrity(vector, PASSWORD)
    assert stun.verify_fingerprint(vector)
    rebuilt = stun.build(
        stun.BINDING_SUCCESS,
        TRANSACTION_ID,
        [
            (stun.SOFTWARE, b"test vector"),
            (stun.XOR_MAPPED_ADDRESS, stun.encode_xor_address(*address, TRANSACTION_ID)),
        ],
        PASSWORD,
        True,
        pad_byte=0x20,
    )
    assert rebuilt == vector


def test_rfc5769_long_term_request() -> None:
    """§2.4: the long-term key is MD5(username ":" realm ":" SASLprep(password))."""
    message = stun.StunMessage.parse(SAMPLE_LONG_TERM_REQUEST)
    username = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert message.username() == username
    assert message.get(stun.REALM) == b"example.org"
    assert message.get(stun.NONCE) == b"f//499k954d6OL34oL9FSTvy64sA"
    key = hashlib.md5(f"{username}:example.org:TheMatrIX".encode()).digest()
    assert stun.verify_message_integrity(SAMPLE_LONG_TERM_REQUEST, key)
    assert not stun.verify_fingerprint(SAMPLE_LONG_TERM_REQUEST)  # it has none
    rebuilt = stun.build(
        message.message_type, message.transaction_id, _without_auth(message), key, False
    )
    assert rebuilt == SAMPLE_LONG_TERM_REQUEST


def test_tampering_breaks_integrity_and_fingerprint() -> None:
    tampered = bytearray(SAMPLE_REQUEST)
    tampered[30] ^= 0x01  # inside SOFTWARE
    assert not stun.verify_message_integrity(bytes(tampered), PASSWORD)
    assert not stun.verify_fingerprint(bytes(tampered))


def test_attributes_after_integrity_are_ignored() -> None:
    """An attacker appending USE-CANDIDATE after MESSAGE-INTEGRITY must gain nothing:
    integrity still verifies (its length is adjusted) but the getter ignores it."""
    signed = stun.build(
        stun.BINDING_REQUEST, TRANSACTION_ID, [(stun.USERNAME, b"a:b")], PASSWORD, False
    )
    message = stun.StunMessage.parse(signed)
    message.attributes.append((stun.USE_CANDIDATE, b""))
    appended = bytes(message)
    assert stun.verify_message_integrity(appended, PASSWORD)
    reparsed = stun.StunMessage.parse(appended)
    assert reparsed.attributes[-1] == (stun.USE_CANDIDATE, b"")
    assert not reparsed.use_candidate()
    assert reparsed.username() == "a:b"


def test_fingerprint_must_be_last() -> None:
    message = stun.StunMessage.parse(stun.build(stun.BINDING_REQUEST, TRANSACTION_ID, [], None))
    message.attributes.append((stun.SOFTWARE, b"x"))
    assert not stun.verify_fingerprint(bytes(message))


def test_binding_success_and_error() -> None:
    request = stun.StunMessage.parse(SAMPLE_REQUEST)
    key = b"local-password"
    success = stun.binding_success(request, ("127.0.0.1", 5000), key)
    parsed = stun.StunMessage.parse(success)
    assert parsed.message_type == stun.BINDING_SUCCESS
    assert parsed.transaction_id == request.transaction_id
    assert parsed.xor_mapped_address() == ("127.0.0.1", 5000)
    assert [t for t, _ in parsed.attributes][-2:] == [stun.MESSAGE_INTEGRITY, stun.FINGERPRINT]
    assert stun.verify_message_integrity(success, key)
    assert stun.verify_fingerprint(success)

    error = stun.binding_error(request, 487, "Role Conflict", key)
    parsed = stun.StunMessage.parse(error)
    assert parsed.message_type == stun.BINDING_ERROR
    assert parsed.message_class == stun.CLASS_ERROR
    assert parsed.error_code() == (487, "Role Conflict")
    assert stun.verify_message_integrity(error, key)
    assert stun.verify_fingerprint(error)
    unauthenticated = stun.binding_error(request, 401, "Unauthorized")
    assert not stun.verify_message_integrity(unauthenticated, key)
    assert stun.verify_fingerprint(unauthenticated)
    with pytest.raises(ValueError):
        stun.encode_error_code(200, "OK")


def test_is_stun() -> None:
    assert stun.is_stun(SAMPLE_REQUEST)
    assert stun.is_stun(SAMPLE_IPV6_RESPONSE)
    assert not stun.is_stun(SAMPLE_REQUEST[:19])
    assert not stun.is_stun(b"\x80" + SAMPLE_REQUEST[1:])  # an RTP first byte
    assert not stun.is_stun(SAMPLE_REQUEST[:4] + b"\x00\x00\x00\x00" + SAMPLE_REQUEST[8:])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        SAMPLE_REQUEST[:19],
        b"\xc0" + SAMPLE_REQUEST[1:],  # top bits set
        SAMPLE_REQUEST[:4] + b"\x21\x12\xa4\x43" + SAMPLE_REQUEST[8:],  # cookie
        SAMPLE_REQUEST[:-1],  # length mismatch
        SAMPLE_REQUEST + b"\x00\x00\x00\x00",  # trailing bytes
        SAMPLE_REQUEST[:2] + b"\x00\x02" + SAMPLE_REQUEST[4:22],  # not a multiple of 4
        SAMPLE_REQUEST[:2] + b"\x00\x04" + SAMPLE_REQUEST[4:20] + b"\x80\x22\x00\x01",
    ],
)
def test_malformed_messages_raise_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        stun.StunMessage.parse(data)
    assert not stun.verify_message_integrity(data, PASSWORD)
    assert not stun.verify_fingerprint(data)


def test_bad_attribute_values_raise_parse_error() -> None:
    message = stun.StunMessage(
        stun.BINDING_REQUEST,
        TRANSACTION_ID,
        [
            (stun.PRIORITY, b"\x00\x01"),
            (stun.USERNAME, b"\xff\xfe"),
            (stun.XOR_MAPPED_ADDRESS, b"\x00\x03\x00\x00\x01\x02\x03\x04"),
            (stun.ERROR_CODE, b"\x00"),
        ],
    )
    for getter in (
        message.priority,
        message.username,
        message.xor_mapped_address,
        message.error_code,
    ):
        with pytest.raises(ParseError):
            getter()


# -- properties ---------------------------------------------------------------------------

transaction_ids = st.binary(min_size=12, max_size=12)
attributes = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=8)


@given(st.integers(0, 0x3FFF), transaction_ids, attributes)
def test_round_trip(message_type: int, transaction_id: bytes, attrs: list) -> None:
    message = stun.StunMessage(message_type, transaction_id, attrs)
    data = bytes(message)
    assert stun.is_stun(data) == (message_type < 0x0400)  # RFC 7983: first byte 0..3
    assert stun.StunMessage.parse(data) == message


@given(st.binary(max_size=120))
def test_arbitrary_bytes_parse_or_raise(data: bytes) -> None:
    try:
        message = stun.StunMessage.parse(data)
    except ParseError:
        pass
    else:
        again = bytes(message)  # padding bytes come back as zeros
        assert len(again) == len(data)
        assert stun.StunMessage.parse(again) == message
    assert stun.verify_fingerprint(data) in (True, False)
    assert stun.verify_message_integrity(data, b"k") in (True, False)


@given(st.binary(min_size=4, max_size=200).map(lambda b: b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b))
def test_cookie_prefixed_bytes_parse_or_raise(data: bytes) -> None:
    """Same, but past the cookie check, so the attribute walk is exercised."""
    data = data[:2] + max(len(data) - 20, 0).to_bytes(2, "big") + data[4:]
    try:
        message = stun.StunMessage.parse(data)
    except ParseError:
        return
    for getter in (message.username, message.priority, message.xor_mapped_address):
        with contextlib.suppress(ParseError):
            getter()


@given(
    st.integers(0, 0x3FFF),
    transaction_ids,
    attributes,
    st.binary(min_size=1, max_size=32),
    st.data(),
)
def test_built_messages_verify_and_tampering_is_detected(
    message_type: int, transaction_id: bytes, attrs: list, key: bytes, data: st.DataObject
) -> None:
    attrs = [(t, v) for t, v in attrs if t not in (stun.MESSAGE_INTEGRITY, stun.FINGERPRINT)]
    raw = stun.build(message_type, transaction_id, attrs, key, True)
    assert stun.verify_message_integrity(raw, key)
    assert stun.verify_fingerprint(raw)
    assert not stun.verify_message_integrity(raw, key + b"x")
    position = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(raw)
    tampered[position] ^= 1 << bit
    assert not stun.verify_fingerprint(bytes(tampered))
    if position < len(raw) - 8:  # anything the HMAC covers
        assert not stun.verify_message_integrity(bytes(tampered), key)


@given(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(lambda a: str(ipaddress.IPv6Address(a))),
    ),
    st.integers(0, 0xFFFF),
    transaction_ids,
)
def test_xor_address_round_trip(ip: str, port: int, transaction_id: bytes) -> None:
    value = stun.encode_xor_address(ip, port, transaction_id)
    assert stun.decode_xor_address(value, transaction_id) == (ip, port)
    assert stun.decode_address(stun.encode_address(ip, port)) == (ip, port)
