"""Encryption at rest for the few secrets the server must read back (TOTP seeds).

Passwords, PINs, session ids and invitation tokens are stored as hashes; a TOTP seed
cannot be: the server computes codes from it. It is sealed with AES-256-GCM (NIST SP
800-38D, through ``cryptography``) under a key kept in a file apart from the database
(``[identity] secret_key_file``, by default ``<data_dir>/secret.key``, created with mode
0600 on first start), so a copy of the database alone (a backup, a dump handed to
support) does not carry usable second factors. The associated data binds each sealed
value to its row (the account id): a value copied to another account does not open.

Sealed form: one version byte (1), a 12-byte random nonce, the ciphertext and the 16-byte
tag.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
VERSION = 1


class SecretKeyError(Exception):
    """The key file is missing, unreadable, of the wrong size or too widely readable."""


class SealedSecretError(Exception):
    """A sealed value does not open with this key for this row (other key, tampered)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretKeyError(f"the secret key must be {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # never print the key
        return "SecretBox()"

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """The key in ``path``, created (random, mode 0600) when the file does not exist."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SecretKeyError(f"cannot create the secret key file {path}: {exc}") from exc
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(os.urandom(KEY_BYTES))
        try:
            mode = path.stat().st_mode
            key = path.read_bytes()
        except OSError as exc:
            raise SecretKeyError(f"cannot read the secret key file {path}: {exc}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretKeyError(
                f"the secret key file {path} is accessible to other users "
                f"(mode {stat.S_IMODE(mode):o}); make it 0600"
            )
        if len(key) != KEY_BYTES:
            raise SecretKeyError(f"the secret key file {path} must hold {KEY_BYTES} bytes")
        return cls(key)

    def seal(self, plain: bytes, row: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return bytes([VERSION]) + nonce + self._aead.encrypt(nonce, plain, row.encode())

    def open(self, sealed: bytes, row: str) -> bytes:
        if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES or sealed[0] != VERSION:
            raise SealedSecretError("not a sealed value")
        nonce = sealed[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + NONCE_BYTES :], row.encode())
        except InvalidTag:
            raise SealedSecretError("the value does not open with this key") from None
