"""argon2id password hashes: parameters, wrong passwords, rehash when parameters change."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters
from argon2.profiles import RFC_9106_LOW_MEMORY

from incamera.identity.passwords import (
    MAX_LENGTH,
    PasswordHashing,
    PasswordRejected,
    check_new_password,
)

CHEAP = {"time_cost": 1, "memory_cost_kib": 8 * 1024, "parallelism": 1}


def test_default_hash_is_argon2id_with_rfc_9106_parameters():
    hashing = PasswordHashing()
    stored = hashing.hash("a long enough password")
    assert stored.startswith("$argon2id$v=19$")
    params = extract_parameters(stored)
    assert params.time_cost == RFC_9106_LOW_MEMORY.time_cost == 3
    assert params.memory_cost == RFC_9106_LOW_MEMORY.memory_cost == 64 * 1024
    assert params.parallelism == 4 and params.hash_len == 32 and params.salt_len == 16
    assert hashing.verify(stored, "a long enough password").ok


def test_wrong_password_missing_hash_and_garbage_are_refused():
    hashing = PasswordHashing(**CHEAP)
    stored = hashing.hash("the right password")
    assert not hashing.verify(stored, "the wrong password").ok
    assert not hashing.verify(stored, "the right password ").ok
    assert not hashing.verify(None, "the right password").ok
    assert not hashing.verify("not a hash", "the right password").ok
    assert not hashing.verify(stored, "x" * (MAX_LENGTH + 1)).ok


def test_same_password_gets_different_salts():
    hashing = PasswordHashing(**CHEAP)
    assert hashing.hash("same password here") != hashing.hash("same password here")


def test_changed_parameters_ask_for_a_rehash():
    old = PasswordHashing(**CHEAP)
    stored = old.hash("an old password")
    new = PasswordHashing(time_cost=2, memory_cost_kib=8 * 1024, parallelism=1)
    result = new.verify(stored, "an old password")
    assert result.ok and result.needs_rehash
    assert not old.verify(stored, "an old password").needs_rehash


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short", "at least 10"), (" " * 12, "blank"), ("x" * (MAX_LENGTH + 1), "at most")],
)
def test_new_password_policy(password: str, reason: str):
    with pytest.raises(PasswordRejected, match=reason):
        check_new_password(password)
