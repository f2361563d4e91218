"""SFrame (RFC 9605): every published test vector, properties of the header parser, the
AEADs and incamera's frame layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.e2ee.sframe import (
    SUITES,
    CipherSuite,
    SFrameContext,
    SFrameDecryptError,
    SFrameHeader,
    StreamContext,
    UnknownKidError,
    aead_decrypt,
    aead_encrypt,
    clear_prefix_length,
    derive_key_salt,
    frame_nonce,
    mls_base_key_length,
    mls_kid,
    overhead,
    protect_frame,
    sframe_labels,
    sframe_secret,
    split_mls_kid,
    unprotect_frame,
)
from incamera.media.errors import ParseError

VECTORS: dict[str, list[dict[str, Any]]] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "sframe-rfc9605-test-vectors.json").read_text()
)

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
suites = st.sampled_from(list(CipherSuite))


def h(value: str) -> bytes:
    return bytes.fromhex(value)


# --- the RFC 9605 test vectors (Appendix C) --------------------------------------------


def test_vector_file_has_all_sections() -> None:
    assert len(VECTORS["header"]) > 200
    assert {v["cipher_suite"] for v in VECTORS["aes_ctr_hmac"]} == {1, 2, 3}
    assert {v["cipher_suite"] for v in VECTORS["sframe"]} == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("vector", VECTORS["header"], ids=lambda v: v["encoded"])
def test_header_vectors(vector: dict[str, Any]) -> None:
    header = SFrameHeader(vector["kid"], vector["ctr"])
    encoded = h(vector["encoded"])
    assert bytes(header) == encoded
    assert len(header) == len(encoded)
    assert SFrameHeader.parse(encoded) == header
    assert SFrameHeader.parse(encoded + b"\xff\x00") == header


@pytest.mark.parametrize("vector", VECTORS["aes_ctr_hmac"], ids=lambda v: str(v["cipher_suite"]))
def test_aes_ctr_hmac_vectors(vector: dict[str, Any]) -> None:
    suite = CipherSuite(vector["cipher_suite"])
    key, nonce, aad, pt, ct = (h(vector[k]) for k in ("key", "nonce", "aad", "pt", "ct"))
    params = SUITES[suite]
    assert key[: params.nka] == h(vector["enc_key"])
    assert key[params.nka :] == h(vector["auth_key"])
    assert aead_encrypt(suite, key, nonce, aad, pt) == ct
    assert aead_decrypt(suite, key, nonce, aad, ct) == pt
    with pytest.raises(SFrameDecryptError):
        aead_decrypt(suite, key, nonce, aad + b"x", ct)


@pytest.mark.parametrize("vector", VECTORS["sframe"], ids=lambda v: str(v["cipher_suite"]))
def test_sframe_vectors(vector: dict[str, Any]) -> None:
    suite = CipherSuite(vector["cipher_suite"])
    kid, ctr = vector["kid"], vector["ctr"]
    base_key, metadata, pt, ct = (h(vector[k]) for k in ("base_key", "metadata", "pt", "ct"))

    assert sframe_labels(suite, kid) == (
        h(vector["sframe_key_label"]),
        h(vector["sframe_salt_label"]),
    )
    assert sframe_secret(suite, base_key) == h(vector["sframe_secret"])
    key, salt = derive_key_salt(suite, base_key, kid)
    assert key == h(vector["sframe_key"])
    assert salt == h(vector["sframe_salt"])
    assert frame_nonce(salt, ctr) == h(vector["nonce"])
    assert bytes(SFrameHeader(kid, ctr)) + metadata == h(vector["aad"])

    sender = SFrameContext(suite)
    sender.add_send_key(kid, base_key)
    assert sender.encrypt(kid, ctr, metadata, pt) == ct
    assert sender.next_counter(kid) == ctr + 1

    receiver = SFrameContext(suite)
    receiver.add_receive_key(kid, base_key)
    assert receiver.decrypt(metadata, ct) == pt
    with pytest.raises(SFrameDecryptError):
        receiver.decrypt(metadata[:-1], ct)


# --- header parser properties -----------------------------------------------------------


@given(kid=u64, ctr=u64, tail=st.binary(max_size=8))
def test_header_round_trip(kid: int, ctr: int, tail: bytes) -> None:
    header = SFrameHeader(kid, ctr)
    encoded = bytes(header)
    assert 1 <= len(encoded) == len(header) <= 17
    assert SFrameHeader.parse(encoded + tail) == header


@given(st.binary(max_size=24))
def test_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        header = SFrameHeader.parse(data)
    except ParseError:
        return
    assert bytes(header) == data[: len(header)]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",  # extended KID, its byte missing
        b"\x08",  # extended CTR, its byte missing
        b"\xf0" + bytes(7),  # 8-byte KID, 7 bytes present
        b"\x80\x05",  # KID 5 in an extended field: not minimal
        b"\x90\x00\x09",  # KID 9 in two bytes: not minimal
        b"\x09\x00\xff",  # CTR 255 in two bytes: not minimal
    ],
)
def test_malformed_headers_raise_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        SFrameHeader.parse(data)


@pytest.mark.parametrize("kid,ctr", [(-1, 0), (0, -1), (1 << 64, 0), (0, 1 << 64)])
def test_header_values_are_64_bit(kid: int, ctr: int) -> None:
    with pytest.raises(ValueError):
        SFrameHeader(kid, ctr)


# --- encryption and decryption ----------------------------------------------------------


def pair(suite: CipherSuite, kid: int, base_key: bytes) -> tuple[SFrameContext, SFrameContext]:
    sender, receiver = SFrameContext(suite), SFrameContext(suite)
    sender.add_send_key(kid, base_key)
    receiver.add_receive_key(kid, base_key)
    return sender, receiver


@given(
    suite=suites,
    kid=u64,
    ctr=st.integers(min_value=0, max_value=(1 << 64) - 2),
    base_key=st.binary(min_size=16, max_size=64),
    metadata=st.binary(max_size=20),
    plaintext=st.binary(max_size=300),
)
def test_encrypt_decrypt_round_trip(
    suite: CipherSuite, kid: int, ctr: int, base_key: bytes, metadata: bytes, plaintext: bytes
) -> None:
    sender, receiver = pair(suite, kid, base_key)
    ciphertext = sender.encrypt(kid, ctr, metadata, plaintext)
    assert len(ciphertext) == len(plaintext) + overhead(kid, ctr, suite)
    assert receiver.decrypt(metadata, ciphertext) == plaintext


@given(
    suite=suites,
    plaintext=st.binary(max_size=64),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_changed_byte_is_rejected(
    suite: CipherSuite, plaintext: bytes, position: int, flip: int
) -> None:
    kid = mls_kid(StreamContext.CAMERA, 3, 7)
    sender, receiver = pair(suite, kid, bytes(range(16)))
    metadata = b"\x10\x02\x00"
    ciphertext = bytearray(sender.encrypt(kid, 1000, metadata, plaintext))
    ciphertext[position % len(ciphertext)] ^= flip
    with pytest.raises((ParseError, SFrameDecryptError)):
        receiver.decrypt(metadata, bytes(ciphertext))
    # and changed metadata, with the ciphertext intact:
    intact = sender.encrypt(kid, None, metadata, plaintext)
    changed = bytearray(metadata)
    changed[position % len(changed)] ^= flip
    with pytest.raises(SFrameDecryptError):
        receiver.decrypt(bytes(changed), intact)


def test_truncated_ciphertext_is_rejected() -> None:
    sender, receiver = pair(CipherSuite.AES_128_GCM_SHA256_128, 9, bytes(16))
    ciphertext = sender.encrypt(9, None, b"", b"hello")
    for end in range(len(ciphertext)):
        with pytest.raises((ParseError, SFrameDecryptError)):
            receiver.decrypt(b"", ciphertext[:end])


def test_counters_move_forward_only() -> None:
    sender = SFrameContext()
    sender.add_send_key(17, bytes(16))
    first = SFrameHeader.parse(sender.encrypt(17, None, b"", b"a"))
    second = SFrameHeader.parse(sender.encrypt(17, None, b"", b"b"))
    assert (first.ctr, second.ctr) == (0, 1)
    sender.encrypt(17, 10, b"", b"c")
    with pytest.raises(ValueError):
        sender.encrypt(17, 10, b"", b"d")
    # removing and re-adding the key keeps the counter (no nonce is used twice)
    sender.remove_key(17)
    sender.add_send_key(17, bytes(16))
    assert SFrameHeader.parse(sender.encrypt(17, None, b"", b"e")).ctr == 11


def test_keys_are_for_sending_or_receiving_never_both() -> None:
    context = SFrameContext()
    context.add_send_key(5, bytes(16))
    with pytest.raises(ValueError):
        context.add_receive_key(5, bytes(16))
    ciphertext = context.encrypt(5, None, b"", b"x")
    with pytest.raises(UnknownKidError) as raised:
        context.decrypt(b"", ciphertext)  # a send key does not decrypt
    assert raised.value.kid == 5
    with pytest.raises(KeyError):
        SFrameContext().encrypt(5, None, b"", b"x")


def test_wrong_key_is_an_authentication_failure() -> None:
    sender, _ = pair(CipherSuite.AES_128_GCM_SHA256_128, 8, bytes(16))
    _, receiver = pair(CipherSuite.AES_128_GCM_SHA256_128, 8, bytes(15) + b"\x01")
    with pytest.raises(SFrameDecryptError):
        receiver.decrypt(b"", sender.encrypt(8, None, b"", b"frame"))


# --- MLS key scheme (RFC 9605 §5.2 with E=4, S=16) --------------------------------------


def test_mls_kid_layout() -> None:
    assert mls_kid(0, 0, 0) == 0
    assert mls_kid(StreamContext.CAMERA, 2, 5) == (1 << 20) | (2 << 4) | 5
    assert mls_kid(StreamContext.SCREEN_AUDIO, 0xFFFF, 17) == (3 << 20) | (0xFFFF << 4) | 1
    assert split_mls_kid(mls_kid(2, 300, 31)) == (2, 300, 15)
    assert mls_base_key_length() == 16
    for bad in [(-1, 0, 0), (0, 1 << 16, 0), (0, 0, -1), (1 << 44, 0, 0)]:
        with pytest.raises(ValueError):
            mls_kid(*bad)


@given(
    context=st.integers(min_value=0, max_value=(1 << 44) - 1),
    leaf=st.integers(min_value=0, max_value=0xFFFF),
    epoch=st.integers(min_value=0, max_value=1 << 40),
)
def test_mls_kid_round_trip(context: int, leaf: int, epoch: int) -> None:
    kid = mls_kid(context, leaf, epoch)
    assert kid <= (1 << 64) - 1
    assert split_mls_kid(kid) == (context, leaf, epoch % 16)


# --- incamera frame layout ---------------------------------------------------------------

VP8_KEY = bytes([0x50, 0x42, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + b"key frame body"
VP8_DELTA = bytes([0x31, 0x05, 0x00]) + b"delta frame body"
OPUS = bytes([0x78]) + b"opus body"


@pytest.mark.parametrize(
    "codec,frame,prefix",
    [
        ("video/VP8", VP8_KEY, 10),
        ("VP8", VP8_DELTA, 3),
        ("audio/opus", OPUS, 1),
        ("video/VP9", VP8_KEY, 0),
        ("video/AV1", VP8_KEY, 0),
        ("vp8", VP8_KEY[:4], 4),  # shorter than its prefix: all prefix
        ("opus", b"", 0),
    ],
)
def test_protect_frame_keeps_the_codec_prefix_clear(codec: str, frame: bytes, prefix: int) -> None:
    assert clear_prefix_length(codec, None, frame) == prefix
    kid = mls_kid(StreamContext.MICROPHONE, 1, 1)
    sender, receiver = pair(CipherSuite.AES_128_GCM_SHA256_128, kid, bytes(16))
    protected = protect_frame(sender, kid, codec, frame)
    assert protected[:prefix] == frame[:prefix]
    header = SFrameHeader.parse(protected[prefix:])
    assert header.kid == kid
    assert len(protected) == len(frame) + len(header) + 16
    assert unprotect_frame(receiver, codec, protected) == frame


def test_explicit_key_frame_flag() -> None:
    assert clear_prefix_length("vp8", True, VP8_DELTA) == 10
    assert clear_prefix_length("vp8", False, VP8_KEY) == 3
    with pytest.raises(ValueError):
        clear_prefix_length("video/H264", None, VP8_KEY)


@pytest.mark.parametrize("codec,frame", [("vp8", VP8_KEY), ("vp8", VP8_DELTA), ("opus", OPUS)])
def test_changed_clear_prefix_is_rejected(codec: str, frame: bytes) -> None:
    kid = mls_kid(StreamContext.CAMERA, 1, 1)
    sender, receiver = pair(CipherSuite.AES_128_GCM_SHA256_128, kid, bytes(16))
    protected = bytearray(protect_frame(sender, kid, codec, frame))
    protected[1 if codec == "vp8" else 0] ^= 0x40
    with pytest.raises((ParseError, SFrameDecryptError)):
        unprotect_frame(receiver, codec, bytes(protected))


@given(
    codec=st.sampled_from(["vp8", "opus", "vp9", "av1"]),
    frame=st.binary(max_size=40),
    suite=suites,
    ctr=st.integers(min_value=0, max_value=(1 << 64) - 1),
)
def test_frame_round_trip(codec: str, frame: bytes, suite: CipherSuite, ctr: int) -> None:
    kid = mls_kid(StreamContext.SCREEN_VIDEO, 12, 3)
    sender, receiver = pair(suite, kid, bytes(range(32)))
    protected = protect_frame(sender, kid, codec, frame, ctr)
    assert unprotect_frame(receiver, codec, protected) == frame


def test_overhead_figures() -> None:
    # One-byte KIDs and short counters: what a frame grows by with suite 0x0004.
    camera_leaf_1 = mls_kid(StreamContext.CAMERA, 1, 0)  # 0x100010: 3 KID bytes
    assert overhead(mls_kid(0, 0, 5), 5) == 1 + 16
    assert overhead(mls_kid(0, 1, 5), 200) == 1 + 1 + 1 + 16
    assert overhead(camera_leaf_1, 70_000) == 1 + 3 + 3 + 16
