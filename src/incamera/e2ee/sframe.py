"""SFrame, RFC 9605: end-to-end encryption of media frames, and incamera's frame layout.

What is here, by RFC section:

* :class:`SFrameHeader` — the header (§4.3): a config byte ``X|K(3)|Y|C(3)`` then the KID
  and CTR as minimal big-endian integers when they do not fit in three bits.
* :class:`CipherSuite` and :data:`SUITES` — the five suites of §4.5 (constants in Table 1),
  with the AES-CTR + HMAC compound AEAD of §4.5.1 for 0x0001..0x0003.
* :func:`derive_key_salt` — key and salt from ``base_key`` and KID (§4.4.2).
* :class:`SFrameContext` — a key store with encryption (§4.4.3) and decryption (§4.4.4).
* MLS key scheme (§5.2): every epoch has one ``base_key = MLS-Exporter("SFrame 1.0 Base Key",
  "", AEAD.Nk)``; senders are told apart by their KID, ``(context << (S+E)) | (index << E) |
  (epoch mod 2^E)``, which incamera fixes at ``E = 4`` epoch bits and ``S = 16`` index bits.
* incamera's media-frame layout: ``clear_prefix || header || ciphertext || tag``, where the
  clear prefix is the few codec bytes a packetizer needs (VP8: 10 bytes of a key frame, 3 of a
  delta frame; Opus: 1; VP9 and AV1: none) and is authenticated as SFrame ``metadata``.

Malformed headers raise :class:`incamera.media.errors.ParseError`; a frame that does not
authenticate, or names a key we do not hold, raises :class:`SFrameDecryptError`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from incamera.media.errors import ParseError

Buffer = bytes | bytearray | memoryview

MAX_UINT64 = (1 << 64) - 1


class SFrameDecryptError(Exception):
    """An SFrame ciphertext could not be decrypted: it failed authentication, is too short
    to hold a tag, or names a KID we hold no receive key for (:class:`UnknownKidError`)."""


class UnknownKidError(SFrameDecryptError):
    """The SFrame header names a KID with no receive key (RFC 9605 §4.4.4 lets the caller
    keep the ciphertext and retry once that key arrives)."""

    def __init__(self, kid: int) -> None:
        super().__init__(f"no receive key for KID {kid}")
        self.kid = kid


# --- header (RFC 9605 §4.3) ---------------------------------------------------------------


def _minimal_length(value: int) -> int:
    return max(1, (value.bit_length() + 7) // 8)


def _read_field(data: Buffer, offset: int, extended: bool, bits: int, name: str) -> tuple[int, int]:
    """One of the two header values: in the config byte's three bits, or (extended) in the
    ``bits + 1`` bytes at ``offset``. Returns (value, offset after it)."""
    if not extended:
        return bits, offset
    length = bits + 1
    end = offset + length
    if len(data) < end:
        raise ParseError(f"SFrame header truncated in the {name}")
    value = int.from_bytes(data[offset:end], "big")
    if value < 8 or length != _minimal_length(value):
        raise ParseError(f"SFrame {name} is not minimally encoded")
    return value, end


@dataclass(frozen=True, slots=True)
class SFrameHeader:
    """The SFrame header (RFC 9605 §4.3): key id ``kid`` and counter ``ctr``, both 0..2^64-1.

    Config byte: X (bit 7) K (bits 6-4) Y (bit 3) C (bits 2-0). A value 0..7 sits in K or C
    with its flag clear; a larger one follows the config byte (KID first) in the fewest
    big-endian bytes, its flag set and K or C holding that byte count minus one. Parsing
    rejects non-minimal encodings, so ``bytes(SFrameHeader.parse(x)) == x[:len(header)]``.
    """

    kid: int
    ctr: int

    def __post_init__(self) -> None:
        for name, value in (("kid", self.kid), ("ctr", self.ctr)):
            if not 0 <= value <= MAX_UINT64:
                raise ValueError(f"SFrame {name} {value} is not a 64-bit unsigned integer")

    @classmethod
    def parse(cls, data: Buffer) -> SFrameHeader:
        """The header at the start of ``data`` (what follows it is the ciphertext and is
        ignored here; ``len(header)`` says where it starts)."""
        if not data:
            raise ParseError("SFrame header is empty")
        config = data[0]
        kid, offset = _read_field(data, 1, bool(config & 0x80), (config >> 4) & 0x07, "KID")
        ctr, _ = _read_field(data, offset, bool(config & 0x08), config & 0x07, "CTR")
        return cls(kid, ctr)

    def __len__(self) -> int:
        return (
            1
            + (_minimal_length(self.kid) if self.kid > 7 else 0)
            + (_minimal_length(self.ctr) if self.ctr > 7 else 0)
        )

    def __bytes__(self) -> bytes:
        config = 0
        tail = b""
        if self.kid > 7:
            length = _minimal_length(self.kid)
            config |= 0x80 | (length - 1) << 4
            tail += self.kid.to_bytes(length, "big")
        else:
            config |= self.kid << 4
        if self.ctr > 7:
            length = _minimal_length(self.ctr)
            config |= 0x08 | (length - 1)
            tail += self.ctr.to_bytes(length, "big")
        else:
            config |= self.ctr
        return bytes([config]) + tail


# --- cipher suites (RFC 9605 §4.5, Table 1) ------------------------------------------------


class CipherSuite(IntEnum):
    """SFrame cipher suite identifiers (RFC 9605 §8.1)."""

    AES_128_CTR_HMAC_SHA256_80 = 0x0001
    AES_128_CTR_HMAC_SHA256_64 = 0x0002
    AES_128_CTR_HMAC_SHA256_32 = 0x0003
    AES_128_GCM_SHA256_128 = 0x0004
    AES_256_GCM_SHA512_128 = 0x0005


@dataclass(frozen=True, slots=True)
class SuiteParams:
    """The constants of one suite (RFC 9605 §4.4): hash output ``nh``, AES key ``nka`` (the
    compound CTR+HMAC suites only, else 0), AEAD key ``nk``, nonce ``nn``, tag ``nt``."""

    nh: int
    nka: int
    nk: int
    nn: int
    nt: int
    hash_name: str

    @property
    def is_ctr_hmac(self) -> bool:
        return self.nka > 0

    def hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA256() if self.hash_name == "sha256" else hashes.SHA512()


SUITES: dict[CipherSuite, SuiteParams] = {
    CipherSuite.AES_128_CTR_HMAC_SHA256_80: SuiteParams(32, 16, 48, 12, 10, "sha256"),
    CipherSuite.AES_128_CTR_HMAC_SHA256_64: SuiteParams(32, 16, 48, 12, 8, "sha256"),
    CipherSuite.AES_128_CTR_HMAC_SHA256_32: SuiteParams(32, 16, 48, 12, 4, "sha256"),
    CipherSuite.AES_128_GCM_SHA256_128: SuiteParams(32, 0, 16, 12, 16, "sha256"),
    CipherSuite.AES_256_GCM_SHA512_128: SuiteParams(64, 0, 32, 12, 16, "sha512"),
}

DEFAULT_SUITE = CipherSuite.AES_128_GCM_SHA256_128


def _ctr_hmac_tag(
    params: SuiteParams, auth_key: bytes, nonce: bytes, aad: bytes, ct: bytes
) -> bytes:
    """RFC 9605 §4.5.1 ``compute_tag``: HMAC over the three lengths, nonce, AAD and
    ciphertext, truncated to Nt bytes."""
    lengths = b"".join(n.to_bytes(8, "big") for n in (len(aad), len(ct), params.nt))
    mac = hmac.new(auth_key, lengths + nonce + aad + ct, params.hash_name).digest()
    return mac[: params.nt]


def _aes_ctr(enc_key: bytes, nonce: bytes, data: bytes) -> bytes:
    # The initial counter block is the 12-byte nonce followed by four zero bytes (§4.5.1).
    cipher = Cipher(algorithms.AES(enc_key), modes.CTR(nonce + bytes(4))).encryptor()
    return cipher.update(data) + cipher.finalize()


def aead_encrypt(
    suite: CipherSuite, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes
) -> bytes:
    """``AEAD.Encrypt`` of the suite: ciphertext with the tag appended (RFC 9605 §4.4, §4.5.1)."""
    params = SUITES[suite]
    if params.is_ctr_hmac:
        enc_key, auth_key = key[: params.nka], key[params.nka :]
        ct = _aes_ctr(enc_key, nonce, plaintext)
        return ct + _ctr_hmac_tag(params, auth_key, nonce, aad, ct)
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_decrypt(
    suite: CipherSuite, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes
) -> bytes:
    """``AEAD.Decrypt`` of the suite; raises :class:`SFrameDecryptError` when the tag does
    not verify (checked before any decryption, in constant time)."""
    params = SUITES[suite]
    if len(ciphertext) < params.nt:
        raise SFrameDecryptError("ciphertext is shorter than the authentication tag")
    if params.is_ctr_hmac:
        enc_key, auth_key = key[: params.nka], key[params.nka :]
        inner, tag = ciphertext[: -params.nt], ciphertext[-params.nt :]
        if not hmac.compare_digest(tag, _ctr_hmac_tag(params, auth_key, nonce, aad, inner)):
            raise SFrameDecryptError("authentication failed")
        return _aes_ctr(enc_key, nonce, inner)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise SFrameDecryptError("authentication failed") from None


# --- key derivation (RFC 9605 §4.4.2) ------------------------------------------------------


def sframe_labels(suite: CipherSuite, kid: int) -> tuple[bytes, bytes]:
    """The HKDF-Expand ``info`` labels for the key and the salt: the ASCII label, the KID as
    8 big-endian bytes (not the header's compact form) and the suite as 2."""
    tail = kid.to_bytes(8, "big") + int(suite).to_bytes(2, "big")
    return b"SFrame 1.0 Secret key " + tail, b"SFrame 1.0 Secret salt " + tail


def sframe_secret(suite: CipherSuite, base_key: bytes) -> bytes:
    """``HKDF-Extract("", base_key)`` with the suite's hash (an empty HMAC key)."""
    return hmac.new(b"", base_key, SUITES[suite].hash_name).digest()


def _expand(suite: CipherSuite, prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(SUITES[suite].hash(), length, info).derive(prk)


def derive_key_salt(suite: CipherSuite, base_key: bytes, kid: int) -> tuple[bytes, bytes]:
    """``(sframe_key, sframe_salt)`` for ``kid`` from ``base_key`` (RFC 9605 §4.4.2):
    Nk bytes of key and Nn bytes of salt, expanded from ``HKDF-Extract("", base_key)``."""
    params = SUITES[suite]
    prk = sframe_secret(suite, base_key)
    key_label, salt_label = sframe_labels(suite, kid)
    return _expand(suite, prk, key_label, params.nk), _expand(suite, prk, salt_label, params.nn)


def frame_nonce(salt: bytes, ctr: int) -> bytes:
    """The AEAD nonce: the salt XOR the counter as a big-endian integer of the salt's length
    (RFC 9605 §4.4.3)."""
    value = int.from_bytes(salt, "big") ^ ctr
    return value.to_bytes(len(salt), "big")


# --- the context: keys by KID, encrypt and decrypt (RFC 9605 §4.4.1, §4.4.3, §4.4.4) ------


@dataclass(frozen=True, slots=True)
class _Key:
    key: bytes
    salt: bytes
    send: bool


class SFrameContext:
    """SFrame keys by KID with the RFC's encrypt and decrypt.

    Each KID's ``base_key`` is either a send key or a receive key, never both (§4.4.1). Send
    counters start at 0 and only move forward; they are kept for the life of the context,
    even across :meth:`remove_key` and a re-added key, so no (key, nonce) pair is used twice.
    """

    def __init__(self, suite: CipherSuite = DEFAULT_SUITE) -> None:
        self.suite = CipherSuite(suite)
        self._keys: dict[int, _Key] = {}
        self._next_ctr: dict[int, int] = {}

    @property
    def tag_length(self) -> int:
        return SUITES[self.suite].nt

    def _add(self, kid: int, base_key: bytes, send: bool) -> None:
        SFrameHeader(kid, 0)  # range check
        current = self._keys.get(kid)
        if current is not None and current.send != send:
            raise ValueError(f"KID {kid} is already a {'send' if current.send else 'receive'} key")
        key, salt = derive_key_salt(self.suite, bytes(base_key), kid)
        self._keys[kid] = _Key(key, salt, send)

    def add_send_key(self, kid: int, base_key: bytes) -> None:
        self._add(kid, base_key, send=True)

    def add_receive_key(self, kid: int, base_key: bytes) -> None:
        self._add(kid, base_key, send=False)

    def remove_key(self, kid: int) -> None:
        self._keys.pop(kid, None)

    def has_key(self, kid: int) -> bool:
        return kid in self._keys

    def next_counter(self, kid: int) -> int:
        return self._next_ctr.get(kid, 0)

    def encrypt(self, kid: int, ctr: int | None, metadata: Buffer, plaintext: Buffer) -> bytes:
        """``header || ciphertext || tag`` (§4.4.3). ``ctr`` None takes the KID's next
        counter; an explicit one must not be below it (a used counter would reuse a nonce)."""
        entry = self._keys.get(kid)
        if entry is None or not entry.send:
            raise KeyError(f"no send key for KID {kid}")
        next_ctr = self.next_counter(kid)
        if ctr is None:
            ctr = next_ctr
        elif ctr < next_ctr:
            raise ValueError(f"CTR {ctr} of KID {kid} was already used (next is {next_ctr})")
        header = bytes(SFrameHeader(kid, ctr))
        self._next_ctr[kid] = ctr + 1
        nonce = frame_nonce(entry.salt, ctr)
        return header + aead_encrypt(
            self.suite, entry.key, nonce, header + bytes(metadata), bytes(plaintext)
        )

    def decrypt(self, metadata: Buffer, ciphertext: Buffer) -> bytes:
        """The plaintext of an SFrame ciphertext (§4.4.4). Raises ``ParseError`` for a
        malformed header, :class:`UnknownKidError` when no receive key matches its KID and
        :class:`SFrameDecryptError` when it does not authenticate."""
        data = bytes(ciphertext)
        header = SFrameHeader.parse(data)
        entry = self._keys.get(header.kid)
        if entry is None or entry.send:
            raise UnknownKidError(header.kid)
        header_length = len(header)
        nonce = frame_nonce(entry.salt, header.ctr)
        aad = data[:header_length] + bytes(metadata)
        return aead_decrypt(self.suite, entry.key, nonce, aad, data[header_length:])


# --- MLS key scheme (RFC 9605 §5.2) --------------------------------------------------------

MLS_EXPORTER_LABEL = b"SFrame 1.0 Base Key"
MLS_EPOCH_BITS = 4  # E: receivers hold at most 16 epochs at once
MLS_INDEX_BITS = 16  # S: up to 65536 leaves
MLS_MAX_CONTEXT = (1 << (64 - MLS_EPOCH_BITS - MLS_INDEX_BITS)) - 1


class StreamContext(IntEnum):
    """The ``context`` bits of an incamera KID: which of a sender's streams a frame is."""

    MICROPHONE = 0
    CAMERA = 1
    SCREEN_VIDEO = 2
    SCREEN_AUDIO = 3


class MlsKid(NamedTuple):
    context: int
    leaf: int
    epoch_bits: int  # the epoch's low MLS_EPOCH_BITS bits


def mls_base_key_length(suite: CipherSuite = DEFAULT_SUITE) -> int:
    """How many bytes to export per epoch: ``AEAD.Nk`` of the suite (RFC 9605 §5.2)."""
    return SUITES[suite].nk


def mls_kid(context: int, leaf: int, epoch: int) -> int:
    """``KID = (context << 20) | (leaf << 4) | (epoch mod 16)`` (RFC 9605 §5.2, E=4, S=16)."""
    if not 0 <= context <= MLS_MAX_CONTEXT:
        raise ValueError(f"KID context {context} out of range")
    if not 0 <= leaf < 1 << MLS_INDEX_BITS:
        raise ValueError(f"leaf index {leaf} does not fit in {MLS_INDEX_BITS} bits")
    if epoch < 0:
        raise ValueError("negative epoch")
    epoch_bits = epoch & ((1 << MLS_EPOCH_BITS) - 1)
    return (context << (MLS_INDEX_BITS + MLS_EPOCH_BITS)) | (leaf << MLS_EPOCH_BITS) | epoch_bits


def split_mls_kid(kid: int) -> MlsKid:
    """The inverse of :func:`mls_kid` (the epoch comes back as its low four bits)."""
    if not 0 <= kid <= MAX_UINT64:
        raise ValueError(f"KID {kid} is not a 64-bit unsigned integer")
    return MlsKid(
        context=kid >> (MLS_INDEX_BITS + MLS_EPOCH_BITS),
        leaf=(kid >> MLS_EPOCH_BITS) & ((1 << MLS_INDEX_BITS) - 1),
        epoch_bits=kid & ((1 << MLS_EPOCH_BITS) - 1),
    )


# --- incamera media-frame layout ----------------------------------------------------------

# Bytes left in clear at the start of an encoded frame: (key frame, delta frame).
_CLEAR_PREFIX: dict[str, tuple[int, int]] = {
    "vp8": (10, 3),  # RFC 6386 §9.1: 3-byte frame tag, + 7 bytes (start code, size) on key frames
    "opus": (1, 1),  # RFC 6716 §3.1: the TOC byte
    "vp9": (0, 0),  # forwarded by the RTP payload descriptor alone
    "av1": (0, 0),  # ditto (dependency descriptor)
}


def codec_key(codec: str) -> str:
    """``"video/VP8"`` / ``"VP8"`` -> ``"vp8"``; raises ValueError for a codec incamera does
    not encrypt (H.264's packetizer parses the frame, so E2EE meetings do not offer it)."""
    name = codec.rsplit("/", 1)[-1].lower()
    if name not in _CLEAR_PREFIX:
        raise ValueError(f"codec {codec!r} is not supported with end-to-end encryption")
    return name


def vp8_is_key_frame(frame: Buffer) -> bool:
    """The VP8 frame tag's first bit is 0 on a key frame (RFC 6386 §9.1)."""
    return bool(frame) and frame[0] & 0x01 == 0


def clear_prefix_length(codec: str, is_key_frame: bool | None, frame: Buffer) -> int:
    """How many leading bytes of ``frame`` stay in clear. ``is_key_frame`` None reads it
    from the VP8 frame tag. A frame shorter than its prefix is all prefix."""
    key = codec_key(codec)
    if is_key_frame is None:
        is_key_frame = key != "vp8" or vp8_is_key_frame(frame)
    key_length, delta_length = _CLEAR_PREFIX[key]
    return min(key_length if is_key_frame else delta_length, len(frame))


def protect_frame(
    context: SFrameContext, kid: int, codec: str, frame: Buffer, ctr: int | None = None
) -> bytes:
    """``clear_prefix || header || ciphertext || tag``; the prefix is the SFrame metadata, so
    it is authenticated (AAD = header || prefix). For VP8 the prefix length follows the
    frame tag's key-frame bit, which the receiver reads from the same (clear) byte."""
    data = bytes(frame)
    prefix = data[: clear_prefix_length(codec, None, data)]
    return prefix + context.encrypt(kid, ctr, prefix, data[len(prefix) :])


def unprotect_frame(context: SFrameContext, codec: str, data: Buffer) -> bytes:
    """The frame :func:`protect_frame` made, ``prefix || plaintext``.

    Raises ``ParseError``, :class:`UnknownKidError` or :class:`SFrameDecryptError`. A frame
    shorter than its codec's prefix was sent as ``frame || header || tag``; when the usual
    split does not authenticate, the shorter splits whose lengths add up are tried too.
    """
    data = bytes(data)
    prefix_length = clear_prefix_length(codec, None, data)
    try:
        return _unprotect_at(context, data, prefix_length)
    except (ParseError, SFrameDecryptError) as error:
        first_error: Exception = error
    longest = max(_CLEAR_PREFIX[codec_key(codec)])
    for split in range(min(longest, len(data)) - 1, -1, -1):
        if split == prefix_length or not _is_empty_frame_at(context, data, split):
            continue
        try:
            return _unprotect_at(context, data, split)
        except (ParseError, SFrameDecryptError):
            continue
    raise first_error


def _unprotect_at(context: SFrameContext, data: bytes, split: int) -> bytes:
    prefix = data[:split]
    return prefix + context.decrypt(prefix, data[split:])


def _is_empty_frame_at(context: SFrameContext, data: bytes, split: int) -> bool:
    """Does ``data[split:]`` hold exactly a header and a tag (an empty ciphertext)?"""
    try:
        header = SFrameHeader.parse(data[split:])
    except ParseError:
        return False
    return split + len(header) + context.tag_length == len(data)


# The bytes SFrame adds to a frame of this suite with this header (for sizing figures).
def overhead(kid: int, ctr: int, suite: CipherSuite = DEFAULT_SUITE) -> int:
    return len(SFrameHeader(kid, ctr)) + SUITES[suite].nt


__all__ = [
    "DEFAULT_SUITE",
    "MLS_EXPORTER_LABEL",
    "SUITES",
    "CipherSuite",
    "MlsKid",
    "SFrameContext",
    "SFrameDecryptError",
    "SFrameHeader",
    "StreamContext",
    "SuiteParams",
    "UnknownKidError",
    "aead_decrypt",
    "aead_encrypt",
    "clear_prefix_length",
    "codec_key",
    "derive_key_salt",
    "frame_nonce",
    "mls_base_key_length",
    "mls_kid",
    "overhead",
    "protect_frame",
    "sframe_labels",
    "sframe_secret",
    "split_mls_kid",
    "unprotect_frame",
    "vp8_is_key_frame",
]
