"""Second-factor seeds sealed at rest (identity/secret_box.py): the box, its key file, and
the accounts that use it (sealed on enrolment, old clear seeds sealed, a wrong key said
clearly)."""

from __future__ import annotations

import base64
import os
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.identity import totp
from incamera.identity.accounts import AccountError, Accounts
from incamera.identity.passwords import PasswordHashing
from incamera.identity.secret_box import (
    KEY_BYTES,
    SealedSecretError,
    SecretBox,
    SecretKeyError,
)
from incamera.store import Database
from incamera.store.accounts import AccountStore

BOX = SecretBox(bytes(range(KEY_BYTES)))


@given(plain=st.binary(max_size=64), row=st.text(max_size=40))
def test_sealed_values_open_only_for_their_row_and_key(plain: bytes, row: str):
    sealed = BOX.seal(plain, row)
    assert BOX.open(sealed, row) == plain
    assert BOX.seal(plain, row) != sealed  # a fresh nonce each time
    with pytest.raises(SealedSecretError):
        BOX.open(sealed, row + "x")  # another account's row
    with pytest.raises(SealedSecretError):
        SecretBox(bytes(KEY_BYTES)).open(sealed, row)  # another key
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(SealedSecretError):
            BOX.open(bytes(tampered), row)


@given(junk=st.binary(max_size=40))
def test_anything_else_is_refused_with_a_typed_error(junk: bytes):
    with pytest.raises(SealedSecretError):
        BOX.open(junk, "row")


def test_the_key_file_is_created_private_and_reused(tmp_path: Path):
    path = tmp_path / "secret.key"
    first = SecretBox.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == KEY_BYTES
    sealed = first.seal(b"seed", "a1")
    assert SecretBox.from_file(path).open(sealed, "a1") == b"seed"
    assert repr(first) == "SecretBox()"  # never the key


def test_a_key_file_others_can_read_or_of_the_wrong_size_is_refused(tmp_path: Path):
    path = tmp_path / "secret.key"
    SecretBox.from_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(SecretKeyError, match="accessible to other users"):
        SecretBox.from_file(path)
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(SecretKeyError, match="must hold 32 bytes"):
        SecretBox.from_file(path)
    with pytest.raises(SecretKeyError, match="cannot create"):
        SecretBox.from_file(tmp_path / "missing" / "secret.key")


def _accounts(tmp_path: Path, key: bytes) -> Accounts:
    database = Database(f"sqlite:///{tmp_path / 'incamera.db'}")
    database.upgrade()
    return Accounts(AccountStore(database), PasswordHashing(), SecretBox(key))


def test_seeds_are_sealed_on_enrolment_and_old_clear_ones_at_start(tmp_path: Path):
    accounts = _accounts(tmp_path, bytes(range(KEY_BYTES)))
    alice = accounts.create("alice", "Alice", "correct horse battery")
    bob = accounts.create("bob", "Bob", "correct horse battery")
    seed = totp.new_secret()
    now = time.time()
    accounts.confirm_totp(alice.id, seed, totp.code_at(seed, now - 30))
    stored = accounts.get(alice.id).totp_secret
    assert stored is not None and seed not in stored
    assert accounts.check_totp(alice.id, totp.code_at(seed, now)).id == alice.id

    # Bob's seed as an earlier version stored it: in clear. It still works, and the next
    # start seals it.
    old_seed = totp.new_secret()
    accounts.store.update(bob.id, totp_secret=old_seed, totp_last_step=None)
    assert accounts.check_totp(bob.id, totp.code_at(old_seed, now - 30)).id == bob.id
    assert accounts.seal_stored_seeds() == 1
    assert accounts.seal_stored_seeds() == 0
    sealed = accounts.get(bob.id).totp_secret
    assert sealed is not None and old_seed not in sealed
    assert accounts.check_totp(bob.id, totp.code_at(old_seed, now)).id == bob.id

    # With another key file the seeds cannot be read: a clear refusal, not a wrong code.
    other = _accounts(tmp_path, bytes(KEY_BYTES))
    with pytest.raises(AccountError, match="cannot be checked"):
        other.check_totp(alice.id, totp.code_at(seed, now + 30))


def test_a_pending_enrolment_is_sealed_for_its_account(tmp_path: Path):
    accounts = _accounts(tmp_path, bytes(range(KEY_BYTES)))
    alice = accounts.create("alice", "Alice", "correct horse battery")
    bob = accounts.create("bob", "Bob", "correct horse battery")
    seed = totp.new_secret()
    token = accounts.enrolment_token(alice.id, seed)
    assert base64.b64encode(seed).decode() not in token
    assert accounts.enrolment_secret(alice.id, token) == seed
    assert accounts.enrolment_secret(bob.id, token) is None  # not another account's
    assert accounts.enrolment_secret(alice.id, "not base64!") is None
