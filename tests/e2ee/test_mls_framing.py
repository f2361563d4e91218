"""MLS clear framing (RFC 9420 §6, §2.1.2): fields, limits, round trips with the test-side
encoder, and arbitrary bytes never raising anything but ParseError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.e2ee.mls_framing import (
    MAX_MESSAGE_BYTES,
    ContentType,
    MlsFraming,
    SenderType,
    WireFormat,
    check_ratchet_tree,
    read_varint,
)
from incamera.media.errors import ParseError
from support import mls_fake as fake

GROUP = bytes(range(16))


def test_rfc_varint_examples() -> None:
    # RFC 9420 §2.1.2
    assert read_varint(bytes.fromhex("9d7f3e7d")) == (494878333, 4)
    assert read_varint(bytes.fromhex("7bbd")) == (15293, 2)
    assert read_varint(bytes.fromhex("25")) == (37, 1)


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("c000000000000001"),  # the 8-byte form is invalid
        bytes.fromhex("4025"),  # 37 in two bytes: not minimal
        bytes.fromhex("80003bbd"),  # 15293 in four bytes: not minimal
        bytes.fromhex("40"),  # truncated
        b"",
    ],
)
def test_bad_varints(data: bytes) -> None:
    with pytest.raises(ParseError):
        read_varint(data)


@given(st.integers(min_value=0, max_value=2**30 - 1))
def test_varint_round_trip(n: int) -> None:
    encoded = fake.varint(n)
    assert read_varint(encoded) == (n, len(encoded))


def test_public_commit() -> None:
    data = fake.public_message(GROUP, 7, leaf_index=3, authenticated_data=b"ad")
    framing = MlsFraming.parse(data)
    assert framing.wire_format is WireFormat.PUBLIC_MESSAGE
    assert framing.version == 1
    assert framing.group_id == GROUP and framing.epoch == 7
    assert framing.sender_type is SenderType.MEMBER and framing.sender_index == 3
    assert framing.authenticated_data == b"ad"
    assert framing.content_type is ContentType.COMMIT
    assert bytes(framing) == data


def test_public_message_from_a_new_member_has_no_index() -> None:
    data = fake.public_message(GROUP, 0, sender_type=4)
    framing = MlsFraming.parse(data)
    assert framing.sender_type is SenderType.NEW_MEMBER_COMMIT
    assert framing.sender_index is None


def test_private_application_message() -> None:
    data = fake.private_message(GROUP, 2**64 - 1)
    framing = MlsFraming.parse(data)
    assert framing.wire_format is WireFormat.PRIVATE_MESSAGE
    assert framing.epoch == 2**64 - 1
    assert framing.content_type is ContentType.APPLICATION
    assert framing.sender_type is None
    with pytest.raises(ParseError, match="stray"):
        MlsFraming.parse(data + b"\x00")


def test_key_package() -> None:
    key = bytes(range(32))
    ident = fake.identity("abc", "Ann")
    framing = MlsFraming.parse(fake.key_package(key, ident))
    assert framing.wire_format is WireFormat.KEY_PACKAGE
    assert framing.cipher_suite == 1
    assert framing.signature_key == key
    assert framing.identity == ident and framing.credential_type == 1
    assert framing.group_id is None and framing.epoch is None


def test_key_package_refusals() -> None:
    key = bytes(32)
    with pytest.raises(ParseError, match="version"):
        MlsFraming.parse(fake.key_package(key, version=2))
    with pytest.raises(ParseError, match="version"):
        MlsFraming.parse(fake.key_package(key, wire_version=0))
    with pytest.raises(ParseError, match="credential"):
        MlsFraming.parse(fake.key_package(key, credential_type=7))
    with pytest.raises(ParseError, match="source"):
        MlsFraming.parse(fake.key_package(key, source=2))
    with pytest.raises(ParseError):
        MlsFraming.parse(fake.key_package(key)[:-1])


def test_welcome_and_group_info() -> None:
    welcome = MlsFraming.parse(fake.welcome(suite=3))
    assert welcome.wire_format is WireFormat.WELCOME and welcome.cipher_suite == 3
    info = MlsFraming.parse(fake.group_info(GROUP, 4))
    assert info.wire_format is WireFormat.GROUP_INFO
    assert (info.group_id, info.epoch, info.cipher_suite) == (GROUP, 4, 1)


def test_unknown_values_are_refused() -> None:
    commit = bytearray(fake.commit(GROUP, 1))
    for offset, value, match in [
        (1, 2, "version"),  # version 2
        (3, 6, "wire format"),
        (3, 0, "wire format"),
    ]:
        bad = bytearray(commit)
        bad[offset] = value
        with pytest.raises(ParseError, match=match):
            MlsFraming.parse(bytes(bad))
    with pytest.raises(ParseError, match="sender type"):
        MlsFraming.parse(fake.public_message(GROUP, 1, sender_type=9))
    with pytest.raises(ParseError, match="content type"):
        MlsFraming.parse(fake.public_message(GROUP, 1, content_type=0))
    with pytest.raises(ParseError, match="content type"):
        MlsFraming.parse(fake.private_message(GROUP, 1, content_type=4))


def test_size_cap() -> None:
    big = fake.private_message(GROUP, 1, ciphertext=bytes(MAX_MESSAGE_BYTES))
    with pytest.raises(ParseError, match="larger"):
        MlsFraming.parse(big)
    fits = fake.private_message(GROUP, 1, ciphertext=bytes(MAX_MESSAGE_BYTES - 100))
    assert MlsFraming.parse(fits).epoch == 1


def test_ratchet_tree() -> None:
    check_ratchet_tree(fake.ratchet_tree(3))
    for bad in [b"", b"\x00", fake.ratchet_tree() + b"\x00", b"\x05abc"]:
        with pytest.raises(ParseError):
            check_ratchet_tree(bad)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        framing = MlsFraming.parse(data)
    except ParseError:
        return
    assert bytes(framing) == data


@given(st.binary(max_size=64))
def test_arbitrary_ratchet_trees(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        check_ratchet_tree(data)


@given(
    st.sampled_from(list(WireFormat)),
    st.binary(min_size=0, max_size=40),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.binary(max_size=100),
    st.data(),
)
def test_mutated_messages_parse_or_raise_parse_error(
    wire_format: WireFormat,
    group_id: bytes,
    epoch: int,
    index: int,
    aad: bytes,
    data: st.DataObject,
) -> None:
    match wire_format:
        case WireFormat.PUBLIC_MESSAGE:
            message = fake.public_message(group_id, epoch, leaf_index=index, authenticated_data=aad)
        case WireFormat.PRIVATE_MESSAGE:
            message = fake.private_message(group_id, epoch, authenticated_data=aad)
        case WireFormat.WELCOME:
            message = fake.welcome()
        case WireFormat.GROUP_INFO:
            message = fake.group_info(group_id, epoch, signer=index)
        case WireFormat.KEY_PACKAGE:
            message = fake.key_package(aad, group_id)
    framing = MlsFraming.parse(message)  # the well-formed message round trips
    assert framing.wire_format is wire_format and bytes(framing) == message
    if wire_format in (WireFormat.PUBLIC_MESSAGE, WireFormat.PRIVATE_MESSAGE):
        assert (framing.group_id, framing.epoch, framing.authenticated_data) == (
            group_id,
            epoch,
            aad,
        )
    if wire_format is WireFormat.KEY_PACKAGE:
        assert (framing.signature_key, framing.identity) == (aad, group_id)
    # then a mutation: truncate, flip a byte, or append
    mutated = bytearray(message)
    position = data.draw(st.integers(min_value=0, max_value=len(message) - 1))
    choice = data.draw(st.sampled_from(["cut", "flip", "append"]))
    if choice == "cut":
        mutated = mutated[:position]
    elif choice == "flip":
        mutated[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    else:
        mutated += data.draw(st.binary(min_size=1, max_size=8))
    with contextlib.suppress(ParseError):
        MlsFraming.parse(bytes(mutated))


def test_not_bytes() -> None:
    with pytest.raises(ParseError):
        MlsFraming.parse("text")  # type: ignore[arg-type]
