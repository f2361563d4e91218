"""A tiny test-side encoder of MLS framing (RFC 9420 §6, §2.1.2): well-formed MLSMessage
bytes with made-up cryptographic content, for tests of the delivery service. Written
independently of ``incamera.e2ee.mls_framing`` (which only parses)."""

from __future__ import annotations

import json
import os
import struct

MLS10 = 1
SUITE = 1  # MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519


def varint(n: int) -> bytes:
    if n < 0x40:
        return bytes([n])
    if n < 0x4000:
        return struct.pack("!H", 0x4000 | n)
    if n < 0x40000000:
        return struct.pack("!I", 0x80000000 | n)
    raise ValueError("too long for an MLS vector")


def vec(data: bytes) -> bytes:
    return varint(len(data)) + data


def u16(n: int) -> bytes:
    return struct.pack("!H", n)


def identity(participant_id: str, name: str) -> bytes:
    """The agreed BasicCredential identity (canonical JSON: v, id, name)."""
    return json.dumps(
        {"v": 1, "id": participant_id, "name": name}, separators=(",", ":"), ensure_ascii=False
    ).encode()


def key_package(
    signature_key: bytes,
    identity: bytes = b"{}",
    *,
    suite: int = SUITE,
    version: int = MLS10,
    wire_version: int = MLS10,
    credential_type: int = 1,
    source: int = 1,
) -> bytes:
    leaf = (
        vec(os.urandom(32))  # encryption_key
        + vec(signature_key)
        + u16(credential_type)
        + vec(identity)
        + vec(u16(1))  # capabilities.versions
        + vec(u16(1))  # cipher_suites
        + vec(b"")  # extensions
        + vec(b"")  # proposals
        + vec(u16(1))  # credentials
        + bytes([source])
        + struct.pack("!QQ", 0, 2**63)  # lifetime
        + vec(b"")  # extensions
        + vec(os.urandom(64))  # signature
    )
    body = u16(version) + u16(suite) + vec(os.urandom(32)) + leaf + vec(b"") + vec(os.urandom(64))
    return u16(wire_version) + u16(5) + body


def public_message(
    group_id: bytes,
    epoch: int,
    *,
    content_type: int = 3,
    sender_type: int = 1,
    leaf_index: int = 0,
    authenticated_data: bytes = b"",
    body: bytes | None = None,
) -> bytes:
    sender = bytes([sender_type])
    if sender_type in (1, 2):
        sender += struct.pack("!I", leaf_index)
    content = body if body is not None else os.urandom(48)
    return (
        u16(MLS10)
        + u16(1)
        + vec(group_id)
        + struct.pack("!Q", epoch)
        + sender
        + vec(authenticated_data)
        + bytes([content_type])
        + content
    )


def private_message(
    group_id: bytes,
    epoch: int,
    *,
    content_type: int = 1,
    authenticated_data: bytes = b"",
    ciphertext: bytes | None = None,
) -> bytes:
    return (
        u16(MLS10)
        + u16(2)
        + vec(group_id)
        + struct.pack("!Q", epoch)
        + bytes([content_type])
        + vec(authenticated_data)
        + vec(os.urandom(28))
        + vec(ciphertext if ciphertext is not None else os.urandom(40))
    )


def commit(group_id: bytes, epoch: int, *, leaf_index: int = 0) -> bytes:
    return public_message(group_id, epoch, content_type=3, leaf_index=leaf_index)


def welcome(*, suite: int = SUITE, secrets: bytes | None = None) -> bytes:
    return (
        u16(MLS10)
        + u16(3)
        + u16(suite)
        + vec(secrets if secrets is not None else os.urandom(90))
        + vec(os.urandom(120))
    )


def group_info(group_id: bytes, epoch: int, *, suite: int = SUITE, signer: int = 0) -> bytes:
    context = (
        u16(MLS10)
        + u16(suite)
        + vec(group_id)
        + struct.pack("!Q", epoch)
        + vec(os.urandom(32))  # tree_hash
        + vec(os.urandom(32))  # confirmed_transcript_hash
        + vec(b"")  # extensions
    )
    return (
        u16(MLS10)
        + u16(4)
        + context
        + vec(b"")  # extensions
        + vec(os.urandom(32))  # confirmation_tag
        + struct.pack("!I", signer)
        + vec(os.urandom(64))
    )


def ratchet_tree(nodes: int = 1) -> bytes:
    return vec(b"".join(b"\x01" + os.urandom(60) for _ in range(nodes)))
