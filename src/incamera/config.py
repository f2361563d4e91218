"""Server configuration: one typed ``Settings`` model and where its values come from.

Sources, lowest to highest priority:

1. built-in defaults (the embedded, zero-setup configuration: localhost, SQLite in ``./data``);
2. a TOML file, named by ``--config PATH`` or the ``INCAMERA_CONFIG`` environment variable
   (top-level keys for the top-level settings, tables ``[media]`` and ``[meetings]``);
3. environment variables ``INCAMERA_<NAME>``, nested with ``__``
   (``INCAMERA_MEDIA__PORT_MIN=41000``);
4. command-line flags (``--bind-port 9000``, ``--media-port-min 41000``).

Every setting has a ``description``; ``incamera serve --help`` and ``docs/operations.md`` are
written from it, so a new field is documented by construction (a test checks both).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "INCAMERA_"
CONFIG_ENV_VAR = "INCAMERA_CONFIG"

# The TOML file for the Settings being built right now (set by load_settings). A context
# variable rather than a class attribute so two loads in one process cannot interfere.
_toml_file: ContextVar[Path | None] = ContextVar("incamera_toml_file", default=None)


class ConfigError(ValueError):
    """The configuration is unusable; ``str(error)`` tells the operator what to change."""


def _is_unspecified(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_unspecified


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1).

    Any other host name counts as non-loopback: we do not resolve names to decide security.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_ip(value: str, setting: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{setting}: {value!r} is not an IPv4 or IPv6 address") from None


def _split_list(value: Any) -> Any:
    """Accept a list, a JSON list or a comma-separated string (handy in env variables)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class MediaSettings(BaseModel):
    """The media plane: SFU worker processes, each with one UDP port (ICE-lite)."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="number of media worker processes (default: the number of CPU cores)",
    )
    listen_ip: str = Field(
        default="127.0.0.1",
        description="IP address the media workers' UDP sockets bind to; "
        "0.0.0.0 or :: for a real deployment",
    )
    port_min: int = Field(
        default=40000, ge=1, le=65535, description="lowest UDP port for media workers"
    )
    port_max: int = Field(
        default=40099,
        ge=1,
        le=65535,
        description="highest UDP port for media workers (one port per worker is used)",
    )
    announced_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="IP addresses put in ICE candidates, e.g. the public IP behind NAT "
        "(default: listen_ip; required when listen_ip is 0.0.0.0 or ::)",
    )

    allowed_remote_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="networks (CIDR) media peers may connect from, e.g. 10.0.0.0/8; "
        "checks from elsewhere get no answer (default: anywhere)",
    )

    @field_validator("allowed_remote_networks", mode="before")
    @classmethod
    def _networks_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("allowed_remote_networks")
    @classmethod
    def _networks_are_cidrs(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(
                    f"media.allowed_remote_networks: {net!r} is not a network"
                ) from None
        return value

    @field_validator("listen_ip")
    @classmethod
    def _listen_ip_is_ip(cls, value: str) -> str:
        return _check_ip(value, "media.listen_ip")

    @field_validator("announced_ips", mode="before")
    @classmethod
    def _announced_ips_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("announced_ips")
    @classmethod
    def _announced_ips_are_ips(cls, value: list[str]) -> list[str]:
        ips = [_check_ip(ip, "media.announced_ips") for ip in value]
        for ip in ips:
            if _is_unspecified(ip):
                raise ValueError(f"media.announced_ips: {ip} cannot be reached by clients")
        return ips

    @model_validator(mode="after")
    def _consistent(self) -> MediaSettings:
        if self.port_min > self.port_max:
            raise ValueError(
                f"media.port_min ({self.port_min}) is above media.port_max ({self.port_max})"
            )
        ports = self.port_max - self.port_min + 1
        if ports < self.workers:
            raise ValueError(
                f"media port range {self.port_min}-{self.port_max} has {ports} port(s) "
                f"but media.workers is {self.workers}: each worker needs one UDP port"
            )
        if not self.announced_ips:
            if _is_unspecified(self.listen_ip):
                raise ValueError(
                    f"media.listen_ip is {self.listen_ip} (all interfaces), so clients "
                    "cannot be told which address to send media to: set media.announced_ips "
                    "to the server's public IP address(es)"
                )
            self.announced_ips = [self.listen_ip]
        return self


class MeetingSettings(BaseModel):
    """Who may create meetings, how often, and when meetings close."""

    model_config = ConfigDict(extra="forbid")

    creators: Literal["anyone", "accounts"] = Field(
        default="anyone",
        description="who may create meetings: anyone who can open the server (the embedded "
        "default), or only signed-in accounts (guests still join by link)",
    )
    creations_per_hour: int = Field(
        default=60,
        ge=1,
        description="meetings one account, or one network address for people not signed "
        "in, may create per hour",
    )
    empty_grace_seconds: int = Field(
        default=300,
        ge=0,
        description="a meeting closes this many seconds after its last participant left",
    )
    unused_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="a meeting nobody has joined yet closes this many seconds after creation",
    )


class E2eeSettings(BaseModel):
    """End-to-end encryption policy (docs/operations.md, "End-to-end encryption")."""

    model_config = ConfigDict(extra="forbid")

    allow_unencrypted: bool = Field(
        default=False,
        description=(
            "administrator policy: allow creating meetings WITHOUT end-to-end encryption "
            "(for interop such as a recorder or a phone bridge); such meetings are marked "
            "as not end-to-end encrypted to everyone in them"
        ),
    )


class AccessSettings(BaseModel):
    """Rate limits of joining and PIN guessing (docs/operations.md, "Meeting access")."""

    model_config = ConfigDict(extra="forbid")

    joins_per_minute_per_source: int = Field(
        default=60, ge=1, description="join attempts per minute per meeting and network address"
    )
    joins_per_minute: int = Field(
        default=600, ge=1, description="join attempts per minute per meeting, all addresses"
    )
    pin_failures_per_source: int = Field(
        default=5,
        ge=1,
        description="wrong PINs per meeting and network address within "
        "pin_source_window_seconds; then even the right PIN is refused until the window passes",
    )
    pin_source_window_seconds: int = Field(
        default=600, ge=1, description="the window of pin_failures_per_source, in seconds"
    )
    pin_failures_per_meeting: int = Field(
        default=20,
        ge=1,
        description="wrong PINs per meeting, all addresses, within pin_meeting_window_seconds",
    )
    pin_meeting_window_seconds: int = Field(
        default=3600, ge=1, description="the window of pin_failures_per_meeting, in seconds"
    )


class AuditSettings(BaseModel):
    """The security audit log (docs/operations.md, "Audit log")."""

    model_config = ConfigDict(extra="forbid")

    retention_days: int = Field(
        default=30, ge=1, description="audit events older than this many days are deleted"
    )
    store_ip_addresses: bool = Field(
        default=False,
        description="store the client's network address with each audit event (personal "
        "data: check your data protection rules first)",
    )


class MetricsSettings(BaseModel):
    """``GET /metrics`` for Prometheus (docs/operations.md, "Metrics")."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(
        default=None,
        min_length=16,
        description="bearer token a scraper sends to read /metrics (Authorization: Bearer "
        "<token>, at least 16 characters); /metrics answers 404 while unset",
    )


class TestingSettings(BaseModel):
    """Hooks for the test suite only. Never enable them in production."""

    model_config = ConfigDict(extra="forbid")

    hooks: bool = Field(
        default=False,
        description=(
            "TESTS ONLY: accept test hooks (a participant kept outside the MLS group, the "
            "media tap); never set this in production"
        ),
    )
    media_tap_path: Path | None = Field(
        default=None,
        description=(
            "TESTS ONLY (needs testing.hooks): the media workers append every forwarded RTP "
            "packet (as received, after SRTP) to this file"
        ),
    )

    @model_validator(mode="after")
    def _tap_needs_hooks(self) -> TestingSettings:
        if self.media_tap_path is not None and not self.hooks:
            raise ValueError("testing.media_tap_path needs testing.hooks = true")
        return self


class IdentitySettings(BaseModel):
    """Accounts and sessions (docs/operations.md, "Accounts and sign-in")."""

    model_config = ConfigDict(extra="forbid")

    session_idle_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        description="a session ends after this many seconds without a request",
    )
    session_absolute_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="a session ends this many seconds after sign-in, however active",
    )
    cookie_name: str = Field(
        default="incamera_session",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="name of the session cookie; on https the __Host- prefix is added",
    )
    signin_attempts: int = Field(
        default=5,
        ge=1,
        description="failed sign-ins allowed per account and network address within "
        "signin_window_seconds before further attempts are refused",
    )
    signin_window_seconds: int = Field(
        default=900, ge=1, description="the window of signin_attempts, in seconds"
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="file with the key that seals second-factor (TOTP) seeds in the "
        "database; created with mode 0600 if missing (default: <data_dir>/secret.key)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> IdentitySettings:
        if self.session_idle_seconds > self.session_absolute_seconds:
            raise ValueError(
                "identity.session_idle_seconds is above identity.session_absolute_seconds"
            )
        return self


class OidcSettings(BaseModel):
    """Single sign-on with OpenID Connect; off unless ``issuer`` is set."""

    model_config = ConfigDict(extra="forbid")

    issuer: str | None = Field(
        default=None,
        description="issuer URL of the OpenID Connect provider, e.g. "
        "https://login.example.org/realms/staff (its /.well-known/openid-configuration is "
        "read); single sign-on is off when unset",
    )
    client_id: str | None = Field(
        default=None, description="client id registered for incamera at the provider"
    )
    client_secret: str | None = Field(
        default=None,
        description="client secret registered for incamera at the provider (prefer the "
        "environment variable or a TOML file readable only by the server)",
    )
    scopes: str = Field(
        default="openid profile email",
        description="scopes requested, separated by spaces (openid is always included)",
    )
    provider_name: str = Field(
        default="single sign-on",
        max_length=60,
        description='shown on the sign-in button: "Sign in with <provider_name>"',
    )
    end_provider_session: bool = Field(
        default=True,
        description="signing out of incamera also ends the session at the provider "
        "(RP-initiated logout) when the provider offers an end_session_endpoint; register "
        "<public_url>/ as the client's post-logout redirect URI",
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_shape(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        value = value.strip()  # kept exactly: id tokens must name the same issuer
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"oidc.issuer {value!r} must be an https:// URL")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                f"oidc.issuer {value!r}: plain http is allowed only on a loopback address "
                "(tests, development); use https"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"oidc.issuer {value!r} must not have a query or fragment")
        return value

    @model_validator(mode="after")
    def _complete(self) -> OidcSettings:
        if self.issuer is not None and not (self.client_id and self.client_secret):
            raise ValueError("oidc.issuer is set: oidc.client_id and oidc.client_secret are needed")
        return self

    @property
    def enabled(self) -> bool:
        return self.issuer is not None


LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """Everything ``incamera serve`` can be told. See the module docstring for the sources."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    bind_host: str = Field(default="127.0.0.1", description="address the HTTP(S) server listens on")
    bind_port: int = Field(
        default=8080, ge=0, le=65535, description="TCP port of the HTTP(S) server (0: any free)"
    )
    public_url: str | None = Field(
        default=None,
        description="URL people open, used in join links, e.g. https://meet.example.org "
        "(default: http://localhost:<bind_port>, https with TLS)",
    )
    tls_cert: Path | None = Field(
        default=None, description="PEM certificate chain file; HTTPS when set with tls_key"
    )
    tls_key: Path | None = Field(default=None, description="PEM private key file for tls_cert")
    allow_insecure_http: bool = Field(
        default=False,
        description="allow plain HTTP on a non-loopback bind_host (only behind a reverse "
        "proxy that terminates TLS)",
    )
    data_dir: Path = Field(
        default=Path("data"), description="directory for the database and other state (created)"
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/incamera "
        "(default: sqlite:///<data_dir>/incamera.db)",
    )
    log_level: LogLevel = Field(default="info", description="debug, info, warning or error")
    log_json: bool = Field(
        default=False, description="log one JSON object per line instead of console text"
    )
    media: MediaSettings = Field(default_factory=MediaSettings)  # type: ignore[arg-type]
    meetings: MeetingSettings = Field(default_factory=MeetingSettings)
    e2ee: E2eeSettings = Field(default_factory=E2eeSettings)
    testing: TestingSettings = Field(default_factory=TestingSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: CLI flags (passed as init kwargs) > environment > TOML.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _toml_file.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @field_validator("bind_host")
    @classmethod
    def _bind_host_not_empty(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("bind_host is empty")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"public_url {value!r} must be an http:// or https:// URL")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                f"public_url {value!r} must be an origin without a path: incamera is served "
                "from the root of its host"
            )
        return f"{parts.scheme}://{parts.netloc}"

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        insecure = not self.tls_enabled and not self.allow_insecure_http
        if insecure and not is_loopback_host(self.bind_host):
            raise ValueError(
                f"refusing to serve plain HTTP on {self.bind_host}, which is not a loopback "
                "address: browsers allow camera and microphone only on https:// origins "
                "(or localhost), and meeting links must not travel in clear. Set tls_cert "
                "and tls_key (--tls-cert/--tls-key, INCAMERA_TLS_CERT/INCAMERA_TLS_KEY), "
                "or, behind a reverse proxy that terminates TLS, allow_insecure_http = true."
            )
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'incamera.db'}"
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def base_url(self) -> str:
        """``public_url`` if set, else derived from the bind address and TLS (no trailing /)."""
        if self.public_url is not None:
            return self.public_url
        scheme = "https" if self.tls_enabled else "http"
        host = self.bind_host
        if is_loopback_host(host) or _is_wildcard(host):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.bind_port}"

    @property
    def secret_key_path(self) -> Path:
        """``identity.secret_key_file`` after defaults are applied."""
        return self.identity.secret_key_file or self.data_dir / "secret.key"

    @property
    def db_url(self) -> str:
        """``database_url`` after defaults are applied (never None once validated)."""
        assert self.database_url is not None
        return self.database_url


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def load_settings(
    config_file: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build ``Settings`` from defaults < TOML < environment < ``overrides`` (CLI flags).

    ``config_file`` falls back to ``$INCAMERA_CONFIG``. ``overrides`` uses the model's shape:
    ``{"bind_port": 9000, "media": {"workers": 2}}``. Raises ``ConfigError`` with a readable
    message for a missing file, bad TOML or invalid values.
    """
    import tomllib

    from pydantic import ValidationError

    path_text = config_file if config_file is not None else os.environ.get(CONFIG_ENV_VAR)
    path = Path(path_text).expanduser() if path_text else None
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist")
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None

    token = _toml_file.set(path)
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
    finally:
        _toml_file.reset(token)


def _format_validation_error(exc: Any) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling)"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


@dataclass(frozen=True)
class SettingInfo:
    """One leaf setting, for ``--help`` and the documentation."""

    path: tuple[str, ...]  # ("media", "port_min")
    field: FieldInfo

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def flag(self) -> str:
        return "--" + "-".join(self.path).replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + "__".join(part.upper() for part in self.path)

    @property
    def toml(self) -> str:
        if len(self.path) == 1:
            return self.path[0]
        return f"[{'.'.join(self.path[:-1])}] {self.path[-1]}"

    @property
    def description(self) -> str:
        return self.field.description or ""


def iter_settings(
    model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()
) -> Iterator[SettingInfo]:
    """Every leaf setting in declaration order (nested models are walked)."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from iter_settings(annotation, (*prefix, name))
        else:
            yield SettingInfo((*prefix, name), info)
