"""``incamera admin``: accounts created and reset on the command line work for sign-in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from incamera.identity.accounts import Accounts, BadCredentials
from incamera.identity.passwords import PasswordHashing
from incamera.identity.secret_box import SecretBox
from incamera.server import admin
from incamera.store import Database
from incamera.store.accounts import AccountStore


def run(tmp_path: Path, *args: str, stdin: str = "") -> int:
    import sys

    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return admin.main(["--data-dir", str(tmp_path / "data"), *args])
    finally:
        sys.stdin = saved


def accounts(tmp_path: Path) -> Accounts:
    database = Database(f"sqlite:///{tmp_path / 'data' / 'incamera.db'}")
    box = SecretBox.from_file(tmp_path / "data" / "secret.key")
    return Accounts(AccountStore(database), PasswordHashing(), box)


def test_create_reset_disable(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert (
        run(
            tmp_path,
            "create-user",
            "Carol",
            "--display-name",
            "Carol C",
            "--password-stdin",
            stdin="first password\n",
        )
        == 0
    )
    assert accounts(tmp_path).check_password("carol", "first password").account.display_name == (
        "Carol C"
    )
    assert (
        run(
            tmp_path,
            "create-user",
            "carol",
            "--display-name",
            "X",
            "--password-stdin",
            stdin="another password\n",
        )
        == 1
    )
    assert "taken" in capsys.readouterr().err

    assert run(tmp_path, "reset-password", "carol", "--temporary") == 0
    temporary = capsys.readouterr().out.rsplit(": ", 1)[1].strip()
    checked = accounts(tmp_path).check_password("carol", temporary)
    assert checked.must_change_password
    with pytest.raises(BadCredentials):
        accounts(tmp_path).check_password("carol", "first password")

    assert run(tmp_path, "reset-password", "carol") == 0
    link = capsys.readouterr().out.splitlines()[-1]
    assert link.startswith("http://localhost:8080/signin/reset?token=")

    assert run(tmp_path, "disable-user", "carol") == 0
    assert run(tmp_path, "reset-password", "nobody") == 1
    assert "no account" in capsys.readouterr().err
