"""Configuration: one TOML file, every key overridable by RESET_MAILBOT_<SECTION>__<KEY>.

Each section is its own pydantic-settings class and is validated only when a command asks for it,
so `check` works with a file holding just [mailbox], [dns] and [rules]. Unknown sections and
keys are errors (a typo must not silently fall back to a default). Environment variables win
over the file. Secrets can come from the environment or from a `*_file` key naming a file whose
content is the secret. Relative paths are resolved against the directory of the config file.
Every problem becomes a ConfigError with one line naming the key or the file.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from reset_mailbot.domain.addresses import is_loopback

ENV_PREFIX = "RESET_MAILBOT_"
CONFIG_ENV = "RESET_MAILBOT_CONFIG"
DEFAULT_CONFIG = Path("reset-mailbot.toml")


class ConfigError(Exception):
    """A configuration problem, phrased as one line for the operator."""


class _Section(BaseSettings):
    """Base of every section: env overrides file, unknown keys forbidden."""

    section: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def _section_config(name: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=f"{ENV_PREFIX}{name.upper()}__",
        extra="forbid",
        case_sensitive=False,
        validate_default=True,
    )


def _read_secret(path: Path | None, key: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {key} {path}: {exc.strerror or exc}") from exc


Security = Literal["ssl", "starttls", "none"]


class MailboxSettings(_Section):
    section: ClassVar[str] = "mailbox"
    model_config = _section_config("mailbox")

    address: str = "support@forus.io"
    host: str = "localhost"
    port: int = Field(993, ge=1, le=65535)
    security: Security = "ssl"
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    inbox: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    poll_interval_seconds: float = Field(30.0, gt=0)
    idle: bool = True
    max_message_bytes: int = Field(25 * 1024 * 1024, gt=0)
    auth: Literal["password", "oauth2"] = "password"  # oauth2: see [oauth2]
    batch_size: int = Field(50, ge=1, le=1000)

    @model_validator(mode="after")
    def _checks(self) -> MailboxSettings:
        if self.password is None and self.password_file is not None:
            self.password = _read_secret(self.password_file, "password_file")
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError("security = \"none\" is only allowed for a loopback host")
        return self


class OAuth2Settings(_Section):
    """The OAuth 2.0 client the support mailbox logs in with (`[mailbox] auth = "oauth2"`).

    `microsoft`: an Entra ID app registration (tenant_id, client_id, client secret), tokens
    from msal, scope https://outlook.office365.com/.default by default. `generic`: RFC 6749
    client credentials at `token_url`, for any provider that issues tokens to a confidential
    client. `google`: a service account with domain-wide delegation (service_account_file)
    acting as the support mailbox, scope https://mail.google.com/."""

    section: ClassVar[str] = "oauth2"
    model_config = _section_config("oauth2")

    provider: Literal["generic", "microsoft", "google"] = "generic"
    token_url: str | None = None  # generic
    tenant_id: str | None = None  # microsoft: the directory (tenant) id
    authority_host: str = "https://login.microsoftonline.com"  # microsoft: national clouds
    service_account_file: Path | None = None  # google: the key file (JSON) of the account
    client_certificate_file: Path | None = None  # microsoft: certificate + key (PEM), no secret
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_file: Path | None = None
    scope: str | None = None
    sasl: Literal["xoauth2", "oauthbearer"] = "xoauth2"
    timeout_seconds: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _checks(self) -> OAuth2Settings:
        if self.client_secret is None and self.client_secret_file is not None:
            self.client_secret = _read_secret(self.client_secret_file, "client_secret_file")
        return self

    def require(self) -> OAuth2Settings:
        """The settings a login needs, or ValueError naming the missing one."""
        if self.provider == "google":
            if self.service_account_file is None:
                raise ValueError("[oauth2] service_account_file is needed for auth = "
                                 "\"oauth2\" (provider google)")
            return self
        needed = ("tenant_id" if self.provider == "microsoft" else "token_url", "client_id")
        if not (self.provider == "microsoft" and self.client_certificate_file is not None):
            needed = (*needed, "client_secret")
        for key in needed:
            if not getattr(self, key):
                raise ValueError(f"[oauth2] {key} is needed for auth = \"oauth2\" "
                                 f"(provider {self.provider})")
        if self.provider == "microsoft":
            if not self.authority_host.startswith("https://"):
                raise ValueError("[oauth2] authority_host must be https://")
            return self
        url = urlsplit(str(self.token_url))
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.hostname or "")):
            raise ValueError("[oauth2] token_url must be https:// (plain http only on loopback)")
        return self


class DnsSettings(_Section):
    section: ClassVar[str] = "dns"
    model_config = _section_config("dns")

    nameservers: list[str] = Field(default_factory=list)
    port: int = Field(53, ge=1, le=65535)
    timeout_seconds: float = Field(5.0, gt=0, le=60)

    @field_validator("nameservers")
    @classmethod
    def _ips(cls, value: list[str]) -> list[str]:
        for server in value:
            try:
                ipaddress.ip_address(server)
            except ValueError as exc:
                raise ValueError(f"{server!r} is not an IP address") from exc
        return value


class RulesSettings(_Section):
    section: ClassVar[str] = "rules"
    model_config = _section_config("rules")

    dir: Path | None = None  # None: the rules shipped with the package
    municipalities: Path | None = None  # None: <dir>/municipalities.yaml


class SmtpSettings(_Section):
    section: ClassVar[str] = "smtp"
    model_config = _section_config("smtp")

    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Security = "starttls"
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(20, ge=1)
    # oauth2: AUTH with a token of [oauth2] for `username` (default: [mailbox] address)
    auth: Literal["password", "oauth2"] = "password"

    @model_validator(mode="after")
    def _checks(self) -> SmtpSettings:
        if self.password is None and self.password_file is not None:
            self.password = _read_secret(self.password_file, "password_file")
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError("security = \"none\" is only allowed for a loopback host")
        return self


class DatabaseSettings(_Section):
    section: ClassVar[str] = "database"
    model_config = _section_config("database")

    url: str | None = None  # None: SQLite file in data_dir
    url_file: Path | None = None
    data_dir: Path = Path("var")
    auto_upgrade: bool = False

    @model_validator(mode="after")
    def _checks(self) -> DatabaseSettings:
        if self.url is None and self.url_file is not None:
            self.url = _read_secret(self.url_file, "url_file")
        return self

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        return f"sqlite:///{(self.data_dir / 'reset-mailbot.sqlite3').resolve()}"


class ExecutorSettings(_Section):
    section: ClassVar[str] = "executor"
    model_config = _section_config("executor")

    kind: Literal["http", "forus-db", "manual"] = "manual"
    url: str | None = None
    url_file: Path | None = None
    token: str | None = None
    token_file: Path | None = None
    timeout_seconds: float = Field(30.0, gt=0)
    revoke_sessions: bool = True
    require_approval: bool = False
    max_attempts: int = Field(10, ge=1)
    # Protects Forus by intent: however large the backlog, never more calls per second than
    # this (after a burst of at most `concurrency`), and at most `concurrency` at once.
    max_calls_per_second: float = Field(20.0, gt=0, le=1000)
    concurrency: int = Field(4, ge=1, le=32)
    # beyond these, a complete request waits for approval even with the gate off (rate_limited)
    max_resets_per_municipality_per_day: int = Field(10, ge=0)
    max_resets_per_account_per_30_days: int = Field(2, ge=0)
    # accounts on these domains (and on municipal domains and the support address's domain)
    # are never reset automatically (staff_account): a staff login is worth more to an attacker
    staff_domains: list[str] = Field(default_factory=list)

    @field_validator("staff_domains")
    @classmethod
    def _lower_domains(cls, value: list[str]) -> list[str]:
        return [d.strip().lower().lstrip("@").rstrip(".") for d in value if d.strip()]

    @model_validator(mode="after")
    def _checks(self) -> ExecutorSettings:
        if self.url is None and self.url_file is not None:
            self.url = _read_secret(self.url_file, "url_file")
        if self.token is None and self.token_file is not None:
            self.token = _read_secret(self.token_file, "token_file")
        if self.kind in {"http", "forus-db"} and not self.url:
            raise ValueError(f"kind = \"{self.kind}\" needs url (or url_file)")
        return self


class RepliesSettings(_Section):
    section: ClassVar[str] = "replies"
    model_config = _section_config("replies")

    # replies caused by inbound mail (incomplete, rejected) per sender per hour; beyond it we
    # log `rate_limited` and stay silent, so a loop with a broken auto-responder stays short
    max_per_sender_per_hour: int = Field(5, ge=1)
    # how municipal staff reach Forus support, after "via" in every reply ("Je bereikt het
    # supportteam van Forus via ..."); empty: the [mailbox] address
    support_contact: str = Field("", max_length=300)


class PolicySettings(_Section):
    """Decision policy knobs that are not rule data (policy clarifications v2)."""

    section: ClassVar[str] = "policy"
    model_config = _section_config("policy")

    # a request whose signed date (signed Date header, else DKIM t=) is older is not executed;
    # the reply asks for a fresh request (a replayed old message must not reset anything)
    max_request_age_days: int = Field(14, ge=1, le=3650)


class SlaSettings(_Section):
    section: ClassVar[str] = "sla"
    model_config = _section_config("sla")

    working_days: int = Field(2, ge=1, le=30)
    timezone: str = "Europe/Amsterdam"
    warn_hours: float = Field(8.0, ge=0)
    notify_address: str | None = None
    notice_language: Literal["nl", "en"] = "en"  # of the internal notice to notify_address

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """An IANA zone the deadlines can be computed in, checked when the file is read (a
        misspelt one used to surface as a traceback in the first deadline computation)."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. "
                             "'Europe/Amsterdam')") from None
        return value


class MetricsSettings(_Section):
    section: ClassVar[str] = "metrics"
    model_config = _section_config("metrics")

    listen: str | None = "127.0.0.1:9464"


class HaSettings(_Section):
    """Several daemons on one PostgreSQL database (issue #15; adapters/db/instances.py)."""

    section: ClassVar[str] = "ha"
    model_config = _section_config("ha")

    # a standby takes the mailbox over within this many seconds of the leader dying or hanging
    failover_seconds: float = Field(15.0, ge=3, le=600)
    # a claimed reset or reply whose instance stopped heart-beating this long is taken over
    claim_timeout_seconds: float = Field(30.0, ge=5, le=3600)
    # default: "<host>:<pid>:<random>"; set it to name instances in logs and `doctor`
    instance_id: str | None = Field(None, min_length=1, max_length=200)


class ConsoleSettings(_Section):
    """The support console in the browser (issue #17; console/).

    Who may log in and what they may do is configured here, not in the identity provider's
    defaults: `roles` names people (their e-mail address, lower case) and `role_groups` names
    groups from the `groups_claim` (OIDC) or `trusted_groups_header` (proxy). Roles grow:
    viewer < operator < approver.
    """

    section: ClassVar[str] = "console"
    model_config = _section_config("console")

    listen: str = "127.0.0.1:8080"
    # the address people type (behind a proxy: the proxy's); the OIDC redirect URI is
    # <public_url>/auth/callback. Default: http://<listen>
    public_url: str | None = None
    auth: Literal["oidc", "trusted_header"] = "oidc"
    # `run` serves the console too (one process to operate); `reset-mailbot console` alone
    # serves it without the daemon
    with_daemon: bool = False
    session_secret: str | None = None
    session_secret_file: Path | None = None
    session_hours: float = Field(10.0, gt=0, le=24 * 7)
    roles: dict[str, Literal["viewer", "operator", "approver"]] = Field(default_factory=dict)
    role_groups: dict[str, Literal["viewer", "operator", "approver"]] = Field(
        default_factory=dict)
    # oidc: Microsoft Entra ID https://login.microsoftonline.com/<tenant>/v2.0, Google
    # https://accounts.google.com; the discovery document is read from <issuer>/.well-known/...
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_client_secret_file: Path | None = None
    oidc_scopes: str = "openid email profile"
    groups_claim: str = "groups"
    # trusted_header: only these proxy addresses may assert who is logged in
    trusted_proxies: list[str] = Field(default_factory=list)
    trusted_user_header: str = "X-Forwarded-Email"
    trusted_groups_header: str | None = "X-Forwarded-Groups"
    page_size: int = Field(100, ge=10, le=1000)

    @field_validator("roles", "role_groups")
    @classmethod
    def _lower_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return {" ".join(k.split()).lower(): v for k, v in value.items()}

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _checks(self) -> ConsoleSettings:
        if self.session_secret is None and self.session_secret_file is not None:
            self.session_secret = _read_secret(self.session_secret_file, "session_secret_file")
        if self.oidc_client_secret is None and self.oidc_client_secret_file is not None:
            self.oidc_client_secret = _read_secret(self.oidc_client_secret_file,
                                                   "oidc_client_secret_file")
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"[console] listen {self.listen!r}: write host:port")
        if self.public_url is not None:
            url = urlsplit(self.public_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError("[console] public_url must be an http(s):// URL")
            if url.scheme == "http" and not is_loopback(url.hostname):
                raise ValueError("[console] public_url must be https:// (plain http only on "
                                 "loopback): the session cookie is secure")
        return self

    def require(self) -> ConsoleSettings:
        """What serving the console (not in demo mode) needs, or ValueError naming it."""
        if not self.session_secret or len(self.session_secret) < 32:
            raise ValueError("[console] session_secret_file: a secret of 32 or more characters "
                             "is needed (e.g. `openssl rand -hex 32`)")
        if self.auth == "oidc":
            for key in ("oidc_issuer", "oidc_client_id", "oidc_client_secret"):
                if not getattr(self, key):
                    raise ValueError(f"[console] {key} is needed for auth = \"oidc\"")
            url = urlsplit(str(self.oidc_issuer))
            if url.scheme != "https" and not (url.scheme == "http"
                                              and is_loopback(url.hostname or "")):
                raise ValueError("[console] oidc_issuer must be https:// (plain http only on "
                                 "loopback)")
        elif not self.trusted_proxies:
            raise ValueError("[console] trusted_proxies is needed for auth = "
                             "\"trusted_header\": only they may say who is logged in")
        if not self.roles and not self.role_groups:
            raise ValueError("[console] roles or role_groups: nobody may log in without a role")
        return self

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.listen}").rstrip("/")


class RetentionSettings(_Section):
    section: ClassVar[str] = "retention"
    model_config = _section_config("retention")

    raw_message_days: int = Field(30, ge=1)
    request_days: int = Field(365, ge=1)


class LogSettings(_Section):
    section: ClassVar[str] = "log"
    model_config = _section_config("log")

    level: Literal["debug", "info", "warning", "error"] = "info"


SECTIONS: dict[str, type[_Section]] = {
    cls.section: cls
    for cls in (
        MailboxSettings,
        OAuth2Settings,
        DnsSettings,
        RulesSettings,
        SmtpSettings,
        DatabaseSettings,
        ExecutorSettings,
        RepliesSettings,
        PolicySettings,
        SlaSettings,
        MetricsSettings,
        HaSettings,
        ConsoleSettings,
        RetentionSettings,
        LogSettings,
    )
}

S = TypeVar("S", bound=_Section)

_PATH_KEYS = {"password_file", "url_file", "token_file", "client_secret_file",
              "service_account_file", "client_certificate_file", "dir",
              "session_secret_file", "oidc_client_secret_file",
              "municipalities", "data_dir"}


def _env_problem(exc: SettingsError, section: str) -> str:
    """One line for an environment value that does not parse: which variable, what form."""
    text = str(exc)
    field = text.split('field "', 1)[1].split('"', 1)[0] if 'field "' in text else ""
    env = f"{ENV_PREFIX}{section.upper()}__{field.upper()}" if field else "the environment"
    return (f"env {env} does not parse: lists and tables are written as JSON, "
            f"e.g. {env}='[\"127.0.0.1\"]'")


class Config:
    """The loaded file; sections are validated on first use."""

    def __init__(self, data: dict[str, Any], path: Path | None) -> None:
        self.data = data
        self.path = path
        self.base_dir = path.parent if path else Path.cwd()
        self._cache: dict[str, _Section] = {}
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{self._where()}: unknown section [{unknown[0]}]")
        for name, value in data.items():
            if not isinstance(value, dict):
                raise ConfigError(f"{self._where()}: [{name}] must be a table")
            # every command checks every key's name, not only the sections it uses: a typo in
            # [smtp] must not wait for the first reply to be found
            known = SECTIONS[name].model_fields
            for key in value:
                if key not in known:
                    close = difflib.get_close_matches(key, list(known), n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    raise ConfigError(f"{self._where()}: [{name}] {key}: unknown key{hint}")

    def _where(self) -> str:
        return str(self.path) if self.path else "configuration"

    def _resolve_paths(self, values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        for key in _PATH_KEYS & set(out):
            if isinstance(out[key], str):
                candidate = Path(out[key]).expanduser()
                out[key] = candidate if candidate.is_absolute() else self.base_dir / candidate
        return out

    def get(self, cls: type[S]) -> S:
        name = cls.section
        if name not in self._cache:
            values = self._resolve_paths(self.data.get(name, {}))
            try:
                section = cls(**values)
            except SettingsError as exc:  # an environment value pydantic-settings cannot parse
                raise ConfigError(f"{self._where()}: [{name}]: {_env_problem(exc, name)}") from exc
            except ValidationError as exc:
                error = exc.errors()[0]
                key = ".".join(str(p) for p in error["loc"]) if error["loc"] else ""
                env = f"{ENV_PREFIX}{name.upper()}__{key.upper()}" if key else ""
                where = f"[{name}] {key}".strip() if key else f"[{name}]"
                hint = f" (or env {env})" if env and key in cls.model_fields else ""
                msg = error["msg"].removeprefix("Value error, ")
                raise ConfigError(f"{self._where()}: {where}{hint}: {msg}") from exc
            # relative paths given through the environment resolve against the working dir
            self._cache[name] = section
        return self._cache[name]  # type: ignore[return-value]

    @property
    def mailbox(self) -> MailboxSettings:
        return self.get(MailboxSettings)

    @property
    def dns(self) -> DnsSettings:
        return self.get(DnsSettings)

    @property
    def rules(self) -> RulesSettings:
        return self.get(RulesSettings)

    @property
    def policy(self) -> PolicySettings:
        return self.get(PolicySettings)


def config_path(explicit: Path | None) -> tuple[Path | None, bool]:
    """Where the config comes from, and whether the operator named it (then it must exist)."""
    if explicit is not None:
        return explicit, True
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env), True
    return DEFAULT_CONFIG, False


def load_config(explicit: Path | None = None) -> Config:
    path, required = config_path(explicit)
    if path is None or (not required and not path.exists()):
        return Config({}, None)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except PermissionError as exc:
        raise ConfigError(f"{path}: config file not readable (permission denied)") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a config file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return Config(data, path)
