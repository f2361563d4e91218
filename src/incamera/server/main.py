"""``incamera serve``: read the configuration, bind the port, run uvicorn (uvloop).

The options are generated from ``incamera.config.Settings``, so every setting has a flag,
and the help names its TOML key and environment variable. SIGINT and SIGTERM shut down
gracefully (connections drained, start-up steps undone) and exit with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from typing import Any, get_args

import structlog
import uvicorn

from incamera.config import (
    CONFIG_ENV_VAR,
    ConfigError,
    SettingInfo,
    Settings,
    is_loopback_host,
    iter_settings,
    load_settings,
)
from incamera.identity.secret_box import SecretBox, SecretKeyError

from .app import create_app
from .logs import configure_logging

log = structlog.get_logger(__name__)

EXIT_CONFIG = 2
EXIT_RUNTIME = 1

_EPILOG = f"""\
Every option can also be set in a TOML file (--config PATH or ${CONFIG_ENV_VAR}) and by an
environment variable; the help of each option names both. Priority, lowest to highest:
built-in defaults < TOML file < environment < command line. The configuration reference
is docs/operations.md.
"""


def _help(setting: SettingInfo, note: str = "") -> str:
    field = setting.field
    shown = ""
    has_default = field.default_factory is None and field.default is not None
    if has_default and "default" not in setting.description:
        shown = f" (default: {field.default})"
    return f"{setting.description}{shown}{note} [TOML: {setting.toml}; env: {setting.env}]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="incamera serve",
        description="Run the incamera server: web app, API, signalling and media workers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"TOML configuration file [env: {CONFIG_ENV_VAR}]",
    )
    groups: dict[str, Any] = {}
    for setting in iter_settings():
        group_name = setting.path[0] if len(setting.path) > 1 else ""
        if group_name not in groups:
            title = f"[{group_name}] settings" if group_name else "settings"
            groups[group_name] = parser.add_argument_group(title)
        group = groups[group_name]
        kwargs: dict[str, Any] = {"dest": setting.dotted, "help": _help(setting)}
        annotation = setting.field.annotation
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif setting.path[-1] in LIST_SETTINGS:
            kwargs.update(action="append", metavar=LIST_SETTINGS[setting.path[-1]])
            kwargs["help"] = _help(setting, "; repeat the option or separate with commas")
        elif get_args(annotation) and all(isinstance(a, str) for a in get_args(annotation)):
            kwargs["choices"] = list(get_args(annotation))
        else:
            kwargs["metavar"] = setting.path[-1].upper()
        group.add_argument(setting.flag, **kwargs)
    return parser


# Settings that are lists: the flag may be repeated or take comma-separated values.
LIST_SETTINGS = {"announced_ips": "IP", "allowed_remote_networks": "CIDR"}


def _overrides(options: dict[str, Any]) -> dict[str, Any]:
    """``{"media.port_min": "1"}`` -> ``{"media": {"port_min": "1"}}``."""
    nested: dict[str, Any] = {}
    for dotted, value in options.items():
        *parents, leaf = dotted.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        if leaf in LIST_SETTINGS:
            value = [ip.strip() for item in value for ip in item.split(",") if ip.strip()]
        target[leaf] = value
    return nested


def parse_settings(argv: Sequence[str]) -> Settings:
    """Settings from the command line plus the other sources. Raises ``ConfigError``;
    ``--help`` exits through argparse."""
    options = vars(build_parser().parse_args(list(argv)))
    config_file = options.pop("config", None)
    return load_settings(config_file, _overrides(options))


def _check_tls(settings: Settings) -> None:
    if not settings.tls_enabled:
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use TLS certificate {settings.tls_cert} with key {settings.tls_key}: {exc}"
        ) from None


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (bound before start-up, so a busy port fails fast)."""
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
    )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _check_secret_key(settings: Settings) -> None:
    """The key that seals second-factor seeds (created on first start): a key file others
    can read, or one of the wrong size, is refused before anything starts."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    SecretBox.from_file(settings.secret_key_path)


async def _serve(server: uvicorn.Server, sock: socket.socket, base_url: str) -> None:
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        print(f"incamera is running at {base_url}", flush=True)
    await task


def main(argv: list[str]) -> int:
    try:
        settings = parse_settings(argv)
        _check_tls(settings)
        _check_secret_key(settings)
    except (ConfigError, SecretKeyError) as exc:
        print(f"incamera serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    configure_logging(settings.log_level, settings.log_json)
    try:
        sock = bind_socket(settings.bind_host, settings.bind_port)
    except OSError as exc:
        print(
            f"incamera serve: cannot listen on {settings.bind_host} port {settings.bind_port}: "
            f"{exc.strerror or exc} (choose another with --bind-host/--bind-port)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    if settings.bind_port == 0:
        settings = settings.model_copy(update={"bind_port": sock.getsockname()[1]})
    if settings.public_url is None and not is_loopback_host(settings.bind_host):
        log.warning("public_url is not set: join links will use " + settings.base_url)

    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        ws="websockets-sansio",  # the websockets library; its legacy protocol is deprecated
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)

    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; with these handlers in
    # place that ends here, with exit status 0, instead of in KeyboardInterrupt or death
    # by signal.
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda number, _frame: received.append(number))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve(server, sock, settings.base_url))
    except SystemExit as exc:  # uvicorn exits this way when start-up fails
        code = exc.code if isinstance(exc.code, int) else EXIT_RUNTIME
        return code or EXIT_RUNTIME
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if received:
        log.info("stopped", signal=signal.Signals(received[0]).name)
    return 0
