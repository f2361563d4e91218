"""``incamera admin``: account administration on the server's own database.

    incamera admin create-user NAME --display-name "Full Name" [--admin] [--password-stdin]
    incamera admin reset-password NAME [--temporary]
    incamera admin disable-user NAME | enable-user NAME | reset-totp NAME

It reads the same configuration as ``incamera serve`` (``--config``, ``INCAMERA_*``, and
``--data-dir``/``--database-url``), migrates the database if needed, and never prints a
password unless it made one (``--temporary``). Resetting, disabling or removing a second
factor ends every session of the account.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from typing import Any

from incamera.config import ConfigError, load_settings
from incamera.identity.accounts import AccountError, Accounts, NoSuchAccount
from incamera.identity.passwords import PasswordHashing, PasswordRejected
from incamera.identity.secret_box import SecretBox, SecretKeyError
from incamera.identity.sessions import Sessions
from incamera.store import Database, DatabaseUnavailable
from incamera.store.accounts import AccountRecord, AccountStore, UsernameTaken
from incamera.store.sessions import SessionStore

EXIT_USAGE = 2
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incamera admin", description=__doc__.split("\n")[0])
    parser.add_argument("--config", metavar="PATH", help="TOML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", help="as for incamera serve")
    parser.add_argument("--database-url", metavar="URL", help="as for incamera serve")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create a local account")
    create.add_argument("username")
    create.add_argument("--display-name", required=True)
    create.add_argument("--admin", action="store_true", help="an administrator account")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    reset = commands.add_parser("reset-password", help="a reset link, or a temporary password")
    reset.add_argument("username")
    reset.add_argument(
        "--temporary",
        action="store_true",
        help="set and print a temporary password that must be changed at sign-in",
    )
    for name, help_ in (
        ("disable-user", "refuse sign-in and end the account's sessions"),
        ("enable-user", "allow sign-in again"),
        ("reset-totp", "remove the second factor (lost authenticator app)"),
    ):
        commands.add_parser(name, help=help_).add_argument("username", help=ACCOUNT_HELP)
    delete = commands.add_parser(
        "delete-user",
        help="erase an account and what is stored with it (right to erasure, GDPR Art. 17)",
    )
    delete.add_argument("username", help=ACCOUNT_HELP)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    commands.add_parser("list-users", help="list the accounts")
    return parser


ACCOUNT_HELP = "the username, or the account id (list-users) for single sign-on accounts"


def _account(accounts: Accounts, name_or_id: str) -> AccountRecord:
    try:
        return accounts.by_username(name_or_id)
    except AccountError:
        pass
    try:
        return accounts.get(name_or_id)
    except AccountError:
        raise NoSuchAccount(f"no account with the username or id {name_or_id!r}") from None


def _list(accounts: Accounts) -> None:
    rows = [("id", "username", "display name", "kind", "admin", "2fa", "state")]
    for a in accounts.store.all():
        rows.append(
            (
                a.id,
                a.username or "-",
                a.display_name,
                "local" if a.password_hash is not None else "sso",
                "yes" if a.is_admin else "no",
                "yes" if a.has_totp else "no",
                "disabled" if a.is_disabled else "active",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise PasswordRejected("the two passwords differ")
    return first


def run(options: argparse.Namespace, accounts: Accounts, sessions: Sessions) -> int:
    command = options.command
    if command == "create-user":
        password = _read_password(options.password_stdin)
        record = accounts.create(
            options.username, options.display_name, password, is_admin=options.admin
        )
        print(f"created account {record.username} ({record.display_name})")
        return 0
    if command == "list-users":
        _list(accounts)
        return 0
    account = _account(accounts, options.username)
    label = account.username or account.id
    if command == "delete-user":
        if not options.yes:
            typed = input(f"Erase the account {label} ({account.display_name})? Type its name: ")
            if typed.strip() != label:
                print("not deleted", file=sys.stderr)
                return EXIT_FAILED
        sessions.end_all_for(account.id)
        accounts.delete(account.id)
        print(f"deleted account {label}")
        return 0
    if command == "reset-password":
        secret = accounts.admin_reset(account.id, "temporary" if options.temporary else "token")
        sessions.end_all_for(account.id)
        if options.temporary:
            print(f"temporary password for {account.username} (must be changed): {secret}")
        else:
            base = load_base_url(options)
            print(f"one-time reset link for {account.username} (valid 24 hours):")
            print(f"{base}/signin/reset?token={secret}")
        return 0
    if command in ("disable-user", "enable-user"):
        accounts.set_disabled(account.id, command == "disable-user")
        if command == "disable-user":
            sessions.end_all_for(account.id)
        print(f"{command.split('-')[0]}d account {account.username}")
        return 0
    if command == "reset-totp":
        accounts.remove_totp(account.id)
        sessions.end_all_for(account.id)
        print(f"removed the second factor of {account.username}")
        return 0
    raise AssertionError(command)


def _overrides(options: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if options.data_dir:
        overrides["data_dir"] = options.data_dir
    if options.database_url:
        overrides["database_url"] = options.database_url
    return overrides


def load_base_url(options: argparse.Namespace) -> str:
    return load_settings(options.config, _overrides(options)).base_url


def main(argv: Sequence[str]) -> int:
    options = build_parser().parse_args(list(argv))
    try:
        settings = load_settings(options.config, _overrides(options))
    except ConfigError as exc:
        print(f"incamera admin: {exc}", file=sys.stderr)
        return EXIT_USAGE
    database = Database(settings.db_url)
    try:
        database.upgrade()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        box = SecretBox.from_file(settings.secret_key_path)
        accounts = Accounts(AccountStore(database), PasswordHashing(), box)
        sessions = Sessions(SessionStore(database))
        return run(options, accounts, sessions)
    except (
        AccountError,
        PasswordRejected,
        UsernameTaken,
        DatabaseUnavailable,
        SecretKeyError,
    ) as exc:
        print(f"incamera admin: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        database.close()
