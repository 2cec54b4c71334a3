"""`--web.config.file`: TLS and basic auth for the exporter's own endpoints.

The file format is the Prometheus exporter-toolkit's, so one file serves every exporter on a
host: `tls_server_config` (cert, key, optional client CA and client auth type, versions) and
`basic_auth_users` (user: bcrypt hash). Passwords are only ever compared against hashes, and
neither hashes nor passwords are logged or shown anywhere.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
}
_TOP_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}


class WebConfigError(ValueError):
    def __init__(self, file: str, key_path: str, problem: str) -> None:
        super().__init__(f"{file}: {key_path}: {problem}")


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self.min_version]
        if self.max_version:
            context.maximum_version = TLS_VERSIONS[self.max_version]
        context.load_cert_chain(self.cert_file, self.key_file)
        context.verify_mode = CLIENT_AUTH_TYPES[self.client_auth_type]
        if self.client_ca_file:
            context.load_verify_locations(self.client_ca_file)
        return context


@dataclass(frozen=True)
class WebConfig:
    source: str
    tls: TLSServerConfig | None = None
    users: tuple[tuple[str, bytes], ...] = ()  # user, bcrypt hash
    _verified: dict[tuple[str, bytes], bool] = field(
        default_factory=dict, compare=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def auth_required(self) -> bool:
        return bool(self.users)

    def check_authorization(self, header: str | None) -> bool:
        """Check an `Authorization: Basic ...` header; bcrypt results are cached per password.

        bcrypt is deliberately slow; a scrape every few seconds must not pay it each time. The
        cache key is a SHA-256 of the password, never the password itself.
        """
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        hashed = dict(self.users).get(user)
        if hashed is None:
            # Spend comparable time on unknown users, so they cannot be told apart by timing.
            bcrypt.checkpw(password.encode(), _dummy_hash())
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        with self._lock:
            cached = self._verified.get(key)
        if cached is None:
            cached = bcrypt.checkpw(password.encode(), hashed)
            with self._lock:
                if len(self._verified) > 1024:
                    self._verified.clear()
                self._verified[key] = cached
        return cached


@functools.cache
def _dummy_hash() -> bytes:
    return bcrypt.hashpw(b"origin-tls-exporter", bcrypt.gensalt(rounds=10))


def load_web_config(path: str | Path) -> WebConfig:
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise WebConfigError(source, "(file)", f"cannot read: {exc.strerror or exc}") from None
    try:
        data: Any = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise WebConfigError(source, "(file)", f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise WebConfigError(source, "(top level)", "must be a mapping")
    for key in data:
        if key not in _TOP_KEYS:
            raise WebConfigError(source, str(key), "unknown key")
    base = Path(path).resolve().parent
    tls = _tls(source, base, data.get("tls_server_config"))
    users = _users(source, data.get("basic_auth_users"))
    config = WebConfig(source, tls, users)
    if tls is not None:
        try:
            tls.context()
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise WebConfigError(source, "tls_server_config", f"cannot load: {exc}") from None
    return config


def _path(source: str, base: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(source, f"tls_server_config.{key}", "must be a file path")
    resolved = (base / value).resolve()
    if not resolved.is_file():
        raise WebConfigError(source, f"tls_server_config.{key}", f"no such file: {resolved}")
    return str(resolved)


def _tls(source: str, base: Path, data: Any) -> TLSServerConfig | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise WebConfigError(source, "tls_server_config", "must be a mapping")
    for key in data:
        if key not in _TLS_KEYS:
            raise WebConfigError(source, f"tls_server_config.{key}", "unknown key")
    unsupported = {"cipher_suites", "curve_preferences", "client_allowed_sans"} & set(data)
    if unsupported:
        key = sorted(unsupported)[0]
        raise WebConfigError(source, f"tls_server_config.{key}", "not supported by this exporter")
    for required in ("cert_file", "key_file"):
        if required not in data:
            raise WebConfigError(source, f"tls_server_config.{required}", "required")
    auth_type = data.get("client_auth_type", "NoClientCert")
    if auth_type not in CLIENT_AUTH_TYPES:
        raise WebConfigError(
            source,
            "tls_server_config.client_auth_type",
            f"must be one of {', '.join(CLIENT_AUTH_TYPES)}, got {auth_type!r}",
        )
    for key in ("min_version", "max_version"):
        if key in data and data[key] not in TLS_VERSIONS:
            raise WebConfigError(
                source,
                f"tls_server_config.{key}",
                f"must be one of {', '.join(TLS_VERSIONS)}, got {data[key]!r}",
            )
    client_ca = data.get("client_ca_file")
    if auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not client_ca:
        raise WebConfigError(
            source, "tls_server_config.client_ca_file", f"required for {auth_type}"
        )
    return TLSServerConfig(
        cert_file=_path(source, base, "cert_file", data["cert_file"]),
        key_file=_path(source, base, "key_file", data["key_file"]),
        client_ca_file=_path(source, base, "client_ca_file", client_ca) if client_ca else None,
        client_auth_type=auth_type,
        min_version=data.get("min_version", "TLS12"),
        max_version=data.get("max_version"),
    )


def _users(source: str, data: Any) -> tuple[tuple[str, bytes], ...]:
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise WebConfigError(source, "basic_auth_users", "must be a mapping of user: bcrypt hash")
    users = []
    for user, hashed in data.items():
        path = f"basic_auth_users.{user}"
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError(source, path, "user names must be non-empty, without ':'")
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            # Never echo the value: it may be a password pasted by mistake.
            raise WebConfigError(source, path, "must be a bcrypt hash ($2y$...)")
        users.append((user, hashed.encode()))
    return tuple(sorted(users))
