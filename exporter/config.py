"""The exporter's YAML configuration: parsing, validation and the resolved, immutable result.

Every problem is a `ConfigError` naming the file, the key path (`origins[2].port`,
`resolve["origin.example.com"]`) and what is wrong, so `validate` and a failed reload tell the
operator exactly what to fix. Validation stops at the first problem, looking at the top-level
keys, then defaults, resolve, dns, probe_allow, scheduler, metrics, origins and discovery, in
that order.
Every per-origin key is a field of `OriginSettings` or `_OriginIdentity` whose `Setting`
metadata drives its parsing, defaults, merging, `/config` and its part of `config/schema.json`
(see "origin settings" below); `config/example.yml` and docs/configuration.md document every
key.

Timeouts follow Prometheus' convention for `scrape_timeout`: a timeout set explicitly must not
exceed its interval, and an inherited one (the built-in 10s or `defaults.timeout`) is capped at
the origin's interval.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from .engine.catalogue import CLOUDFRONT_PROTOCOLS, Protocol
from .engine.target import (
    DEFAULT_CONNECTION_ATTEMPTS,
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_DNS_PORT,
    DEFAULT_DNS_TIMEOUT,
    DEFAULT_MAX_ADDRESSES,
    DEFAULT_ORIGIN_KEEPALIVE_TIMEOUT,
    DEFAULT_ORIGIN_READ_TIMEOUT,
    ClientCertificate,
    CloudFrontPolicy,
    ConfirmMode,
    DnsServer,
    IpAddressType,
    OriginRequest,
    ProbeOptions,
    ProbeTarget,
)

DEFAULT_SOURCE = "<default>"
DEFAULT_PORT = 443
DEFAULT_PROTOCOLS: tuple[Protocol, ...] = (Protocol.TLSv1, Protocol.TLSv1_1, Protocol.TLSv1_2)
"""The policy CloudFront's console proposes for a new custom origin."""
DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 8
DEFAULT_MAX_CONCURRENT_PROBES = 32
MIN_INTERVAL = 1.0
MAX_INTERVAL = 86_400.0
INTERVAL_RANGE = (MIN_INTERVAL, MAX_INTERVAL)
"""At least 1s (a probe is dozens of handshakes), at most a day (certificate expiry and chain
problems must show up before CloudFront's users see them)."""
TIMEOUT_RANGE = (0.1, 600.0)
"""Per connection: below 100ms even a loopback handshake of a busy origin times out; above 10m
a probe of one hung origin would hold its slot for hours."""
ORIGIN_READ_TIMEOUT_RANGE = (1.0, 120.0)  # CloudFront's OriginReadTimeout
CONNECTION_TIMEOUT_RANGE = (1.0, 10.0)  # CloudFront's ConnectionTimeout
ORIGIN_KEEPALIVE_TIMEOUT_RANGE = (1.0, 120.0)  # CloudFront's OriginKeepaliveTimeout
CONNECTION_ATTEMPTS_RANGE = (1, 3)  # CloudFront's ConnectionAttempts
MAX_ADDRESSES_RANGE = (1, 64)
DNS_TIMEOUT_RANGE = (0.1, 30.0)
MIN_DEADLINE = 30.0
DEADLINE_TIMEOUTS = 6
PORT_RANGE = (1, 65535)
MAX_CONNECTIONS_RANGE = (1, 64)
MAX_CONCURRENT_PROBES_RANGE = (1, 10000)

#: label names the exporter sets itself (and the ones CloudFront discovery will set)
RESERVED_LABELS = frozenset(
    {
        "origin",
        "host",
        "port",
        "sni",
        "distribution_id",
        "origin_id",
        "domain_name",
        "enabled",
        "aliases",
        "host_header_forwarded",
    }
)
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

TOP_LEVEL_KEYS = (
    "defaults",
    "resolve",
    "dns",
    "probe_allow",
    "scheduler",
    "metrics",
    "origins",
    "discovery",
)
DNS_KEYS = ("servers", "timeout")
REQUEST_KEYS = ("method", "path", "headers")
CERTIFICATE_KEYS = ("cert_file", "key_file")
SCHEDULER_KEYS = ("max_concurrent_probes",)
METRICS_KEYS = ("cipher_series",)
DISCOVERY_KEYS = ("cloudfront",)
CLOUDFRONT_DISCOVERY_KEYS = (
    "refresh_interval",
    "endpoint_url",
    "region",
    "distribution_ids",
    "tags",
    "client_certificates",
)
DEFAULT_REFRESH_INTERVAL = 300.0
MIN_REFRESH_INTERVAL = 10.0
REFRESH_INTERVAL_RANGE = (MIN_REFRESH_INTERVAL, 86_400.0)
"""A refresh reads every distribution (and, with `tags`, makes one ListTagsForResource call per
distribution): refreshing more often than every 10s would only burn CloudFront API quota."""
_DISTRIBUTION_ID = re.compile(r"[A-Z0-9]+\Z")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+\Z")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
"""An HTTP token (RFC 9110 section 5.6.2): methods and header field names."""
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")
"""One label of a host name: letters, digits, hyphens (not first or last) and, as in real
origin names, underscores."""
UNSETTABLE_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers CloudFront sets itself on the request to the origin."""
MAX_PEM_BYTES = 1 << 20

PROTOCOLS_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "string",
        "anyOf": [
            {"enum": [p.value for p in CLOUDFRONT_PROTOCOLS]},
            {"pattern": "^\\s*([Ss][Ss][Ll][Vv]3|[Tt][Ll][Ss][Vv]1(\\.[012])?)\\s*$"},
        ],
    },
}
LABELS_SCHEMA = {
    "type": ["object", "null"],
    "propertyNames": {
        "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$",
        "not": {"anyOf": [{"pattern": "^__"}, {"enum": sorted(RESERVED_LABELS)}]},
    },
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}


class ConfigError(ValueError):
    """A configuration problem: `str(error) == f"{file}: {key_path}: {problem}"`.

    For example `conf.yml: origins[2].port: must be between 1 and 65535, got 70000`. YAML
    syntax errors use `line L, column C` as the key path, problems with the file itself
    `(file)`, and a top level that is not a mapping `(top level)`.
    """

    def __init__(self, file: str, key_path: str, problem: str) -> None:
        super().__init__(f"{file}: {key_path}: {problem}")
        self.file = file
        self.key_path = key_path
        self.problem = problem


def probe_deadline(interval: float, timeout: float) -> float:
    """The bound on one whole probe: `min(interval, max(timeout * 6, 30s))`.

    A probe makes several sequential round trips (one ClientHello per protocol and cipher
    suite, then complete handshakes), each bounded by `timeout`; six of them, or 30 seconds if
    that is more, leave room for the whole scan, and the interval caps it so a probe never
    overlaps the next one of the same origin.
    """
    return min(interval, max(timeout * DEADLINE_TIMEOUTS, MIN_DEADLINE))


# --- origin settings: one field per key -------------------------------------------------------
#
# Every key an origin may set is a field of `OriginSettings` (shared with `defaults`) or of
# `_OriginIdentity` (per origin only), and its `Setting` metadata says how the key is parsed,
# shown in `/config`, described in config/schema.json and merged. ORIGIN_KEYS, DEFAULTS_KEYS, the
# parser, `config_dict`, the schema test, `check` and discovery all read these fields, so a key
# is added in one place and cannot drift between them.

SETTING = "setting"
"""The `dataclasses.field` metadata key holding a key's `Setting`."""

Parse = Callable[["_Parser", Any, str], Any]
"""(parser, raw YAML value, key path) -> the field's value; fails through `parser.fail`."""


def _same(value: Any) -> Any:
    return value


def _show_duration(value: float) -> str:
    return format_duration(value)


def _show_enum(value: StrEnum) -> str:
    return str(value)


def _show_protocols(value: tuple[Protocol, ...]) -> list[str]:
    return [str(p) for p in value]


def _show_pairs(value: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(value)


def _show_request(value: OriginRequest | None) -> Any:
    if value is None:
        return False
    return {"method": value.method, "path": value.path, "headers": dict(value.headers)}


def _show_certificate(value: ClientCertificate | None) -> Any:
    if value is None:
        return None
    return {"cert_file": value.cert_file, "key_file": value.key_file}


def _merge_pairs(
    inherited: tuple[tuple[str, str], ...], own: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """Labels: the inherited ones merged under the origin's own, sorted."""
    return tuple(sorted({**dict(inherited), **dict(own)}.items()))


@dataclass(frozen=True)
class Setting:
    """How one configuration key is read, shown and described; see the section comment."""

    parse: Parse
    schema: Mapping[str, Any]  # the value's JSON Schema, without description and default
    doc: str  # the schema's description
    show: Callable[[Any], Any] = _same  # the value as `/config` and the schema default show it
    per_origin_only: bool = False  # not allowed under `defaults`
    merge: Callable[[Any, Any], Any] | None = None  # (inherited, own) -> value; None: own wins


def setting(**spec: Any) -> dict[str, Setting]:
    """The `field(metadata=...)` of a configuration key (the field's name is the key)."""
    return {SETTING: Setting(**spec)}


def _duration_schema(bounds: tuple[float, float], whole: bool = False) -> dict[str, Any]:
    """Numbers are range-checked by the schema too; duration strings only by the exporter."""
    schema: dict[str, Any] = {"$ref": "#/$defs/duration", "minimum": bounds[0]}
    schema["maximum"] = bounds[1]
    if whole:
        schema["multipleOf"] = 1
    return schema


def _integer_schema(bounds: tuple[int, int]) -> dict[str, Any]:
    return {"type": "integer", "minimum": bounds[0], "maximum": bounds[1]}


def _enum_schema(kind: type[StrEnum]) -> dict[str, Any]:
    return {"enum": [member.value for member in kind]}


_NULLABLE_FILE = {"anyOf": [{"type": "string", "pattern": "\\S"}, {"type": "null"}]}
_REQUEST_SCHEMA = {
    "anyOf": [
        {"type": "boolean"},
        {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "method": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
                "path": {"type": "string", "pattern": "^/[^\\s]*$"},
                "headers": {
                    "type": ["object", "null"],
                    "propertyNames": {"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
                    "additionalProperties": {
                        "type": ["string", "number"],
                        "pattern": "^[^\\r\\n\\u0000]*$",
                    },
                },
            },
        },
    ]
}


@dataclass(frozen=True)
class OriginSettings:
    """Every key an origin shares with `defaults`, with its built-in default (the only one).

    As `OriginDefaults` this is the resolved `defaults` section: what an origin gets for every
    key it does not set; `/probe` uses it for ad-hoc targets allowed by `probe_allow`.
    """

    port: int = field(
        default=DEFAULT_PORT,
        metadata=setting(
            parse=lambda p, v, k: p.integer(v, k, PORT_RANGE),
            schema=_integer_schema(PORT_RANGE),
            doc="TCP port of the origin (CloudFront: HTTPSPort).",
        ),
    )
    protocols: tuple[Protocol, ...] = field(
        default=DEFAULT_PROTOCOLS,
        metadata=setting(
            parse=lambda p, v, k: p.protocols(v, k),
            schema=PROTOCOLS_SCHEMA,
            show=_show_protocols,
            doc="CloudFront OriginSslProtocols, any case (TLSv1.0 = TLSv1); duplicates removed. "
            "CloudFront never uses TLSv1.3 towards origins.",
        ),
    )  # oldest first, no duplicates
    interval: float = field(
        default=DEFAULT_INTERVAL,
        metadata=setting(
            parse=lambda p, v, k: p.duration(v, k, INTERVAL_RANGE),
            schema=_duration_schema(INTERVAL_RANGE),
            show=_show_duration,
            doc="How often the origin is probed; 1s to 1d.",
        ),
    )
    timeout: float = field(
        default=DEFAULT_TIMEOUT,
        metadata=setting(
            parse=lambda p, v, k: p.duration(v, k, TIMEOUT_RANGE),
            schema=_duration_schema(TIMEOUT_RANGE),
            show=_show_duration,
            doc="Per connection (connect plus the awaited answer); 100ms to 10m and at most the "
            "interval. When not set, the inherited timeout is capped at the interval. A whole "
            "probe is bounded by min(interval, max(6 * timeout, 30s)).",
        ),
    )
    ca_file: str | None = field(
        default=None,
        metadata=setting(
            parse=lambda p, v, k: p.ca_file(v, k),
            schema=_NULLABLE_FILE,
            doc="PEM roots to trust instead of Mozilla's; relative to the config file's directory; "
            "must be readable at load. null: Mozilla's roots (overrides defaults.ca_file).",
        ),
    )  # absolute path
    labels: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=setting(
            parse=lambda p, v, k: p.labels(v, k),
            schema=LABELS_SCHEMA,
            show=_show_pairs,
            merge=_merge_pairs,
            doc="Extra labels, exposed only on origin_tls_origin_info. Values: strings (numbers "
            "and booleans are converted).",
        ),
    )  # defaults' merged under the origin's own, sorted
    confirm: ConfirmMode = field(
        default=ConfirmMode.ALL,
        metadata=setting(
            parse=lambda p, v, k: p.choice(v, k, ConfirmMode),
            schema=_enum_schema(ConfirmMode),
            show=_show_enum,
            doc="all: a complete handshake for every suite the server accepts (exact matrix); "
            "negotiated: only for the suite CloudFront would negotiate (large fleets).",
        ),
    )
    max_connections: int = field(
        default=DEFAULT_MAX_CONNECTIONS,
        metadata=setting(
            parse=lambda p, v, k: p.integer(v, k, MAX_CONNECTIONS_RANGE),
            schema=_integer_schema(MAX_CONNECTIONS_RANGE),
            doc="Connections open at once to this origin.",
        ),
    )
    cloudfront_policy: CloudFrontPolicy = field(
        default=CloudFrontPolicy.UPSTREAM,
        metadata=setting(
            parse=lambda p, v, k: p.choice(v, k, CloudFrontPolicy),
            schema=_enum_schema(CloudFrontPolicy),
            show=_show_enum,
            doc="The s2n-tls policy generation CloudFront uses towards the origin.",
        ),
    )
    ip_address_type: IpAddressType = field(
        default=IpAddressType.IPV4,
        metadata=setting(
            parse=lambda p, v, k: p.choice(v, k, IpAddressType),
            schema=_enum_schema(IpAddressType),
            show=_show_enum,
            doc="CloudFront's IpAddressType: which of the name's addresses it connects to.",
        ),
    )
    max_addresses: int = field(
        default=DEFAULT_MAX_ADDRESSES,
        metadata=setting(
            parse=lambda p, v, k: p.integer(v, k, MAX_ADDRESSES_RANGE),
            schema=_integer_schema(MAX_ADDRESSES_RANGE),
            doc="How many of the name's addresses are probed.",
        ),
    )
    request: OriginRequest | None = field(
        default=OriginRequest(),
        metadata=setting(
            parse=lambda p, v, k: p.request(v, k),
            schema=_REQUEST_SCHEMA,
            show=_show_request,
            doc="The HTTP request sent after the handshake ({method, path, headers}; GET / by "
            "default); false: none. Method and header names are HTTP tokens, the path starts with "
            "/, no CR or LF anywhere.",
        ),
    )
    origin_read_timeout: float = field(
        default=DEFAULT_ORIGIN_READ_TIMEOUT,
        metadata=setting(
            parse=lambda p, v, k: p.cloudfront_seconds(v, k, ORIGIN_READ_TIMEOUT_RANGE),
            schema=_duration_schema(ORIGIN_READ_TIMEOUT_RANGE, whole=True),
            show=_show_duration,
            doc="CloudFront's OriginReadTimeout: how long it waits for the answer; 1s to 120s, "
            "whole seconds.",
        ),
    )
    connection_attempts: int = field(
        default=DEFAULT_CONNECTION_ATTEMPTS,
        metadata=setting(
            parse=lambda p, v, k: p.integer(v, k, CONNECTION_ATTEMPTS_RANGE),
            schema=_integer_schema(CONNECTION_ATTEMPTS_RANGE),
            doc="CloudFront's ConnectionAttempts: how often it tries to connect.",
        ),
    )
    connection_timeout: float = field(
        default=DEFAULT_CONNECTION_TIMEOUT,
        metadata=setting(
            parse=lambda p, v, k: p.cloudfront_seconds(v, k, CONNECTION_TIMEOUT_RANGE),
            schema=_duration_schema(CONNECTION_TIMEOUT_RANGE, whole=True),
            show=_show_duration,
            doc="CloudFront's ConnectionTimeout: the TCP connect; 1s to 10s, whole seconds.",
        ),
    )
    origin_keepalive_timeout: float = field(
        default=DEFAULT_ORIGIN_KEEPALIVE_TIMEOUT,
        metadata=setting(
            parse=lambda p, v, k: p.cloudfront_seconds(v, k, ORIGIN_KEEPALIVE_TIMEOUT_RANGE),
            schema=_duration_schema(ORIGIN_KEEPALIVE_TIMEOUT_RANGE, whole=True),
            show=_show_duration,
            doc="CloudFront's OriginKeepaliveTimeout: how long it keeps an idle connection; 1s to "
            "120s, whole seconds.",
        ),
    )
    client_certificate: ClientCertificate | None = field(
        default=None,
        metadata=setting(
            parse=lambda p, v, k: p.client_certificate(v, k),
            schema={"anyOf": [{"$ref": "#/$defs/certificate_files"}, {"type": "null"}]},
            show=_show_certificate,
            doc="The certificate CloudFront presents when the origin asks for one (origin mTLS): "
            "{cert_file, key_file}, both PEM, relative to the config file's directory, readable at "
            "load. null: none (overrides defaults.client_certificate).",
        ),
    )

    @property
    def deadline(self) -> float:
        """`min(interval, max(timeout * 6, 30s))`: see `probe_deadline`."""
        return probe_deadline(self.interval, self.timeout)

    def options(self) -> ProbeOptions:
        """Per-connection `timeout`; the whole probe bounded by `deadline` (see above)."""
        return ProbeOptions(
            timeout=self.timeout,
            deadline=self.deadline,
            max_connections=self.max_connections,
            confirm=self.confirm,
            connection_attempts=self.connection_attempts,
            connection_timeout=self.connection_timeout,
            origin_read_timeout=self.origin_read_timeout,
            origin_keepalive_timeout=self.origin_keepalive_timeout,
            ip_address_type=self.ip_address_type,
            max_addresses=self.max_addresses,
        )


OriginDefaults = OriginSettings
"""The resolved `defaults` section (the name callers know)."""


@dataclass(frozen=True)
class DnsConfig:
    """The top-level `dns` section: which resolvers probes ask; none means the system's."""

    servers: tuple[DnsServer, ...] = ()
    timeout: float = DEFAULT_DNS_TIMEOUT


@dataclass(frozen=True)
class _OriginIdentity:
    """The per-origin-only keys, first so `OriginConfig(name, host)` keeps working."""

    name: str = field(
        metadata=setting(
            parse=lambda p, v, k: p.string(v, k),
            schema={"type": "string", "pattern": "\\S"},
            per_origin_only=True,
            doc="The `origin` label value; unique. Default: HOST:PORT ([ADDRESS]:PORT for IPv6).",
        ),
    )  # the `origin` label value; default `host:port` (`[v6]:port`)
    host: str = field(
        metadata=setting(
            parse=lambda p, v, k: p.host(v, k),
            schema={"$ref": "#/$defs/host"},
            per_origin_only=True,
            doc="The origin domain name or IP address CloudFront connects to.",
        ),
    )  # IPv6 literals without brackets
    sni: str | None = field(
        default=None,
        metadata=setting(
            parse=lambda p, v, k: None if v is None else p.host(v, k, "a host name"),
            schema={"anyOf": [{"$ref": "#/$defs/host"}, {"type": "null"}]},
            per_origin_only=True,
            doc="The forwarded Host header CloudFront would send as SNI. Default: host.",
        ),
    )


@dataclass(frozen=True)
class OriginConfig(OriginSettings, _OriginIdentity):
    """One origin with every default applied: its identity, its settings, and what the
    configuration derives for it (`address` from `resolve`, `dns`, discovery's findings)."""

    address: str | None = None  # from `resolve` for this host, if any
    dns: DnsConfig = DnsConfig()
    client_certificate_missing: bool = False  # discovery: the origin wants a certificate we lack
    # discovery: the policies that could not be read, which make this probe's SNI a guess
    unread_policies: tuple[str, ...] = ()

    def target(self) -> ProbeTarget:
        return ProbeTarget(
            host=self.host,
            port=self.port,
            sni=self.sni,
            protocols=self.protocols,
            ca_file=self.ca_file,
            address=self.address,
            cloudfront_policy=self.cloudfront_policy,
            client_certificate=self.client_certificate,
            request=self.request,
        )

    def options(self) -> ProbeOptions:
        """The settings' options, plus the resolvers of the top-level `dns` section."""
        return replace(
            super().options(), dns_servers=self.dns.servers, dns_timeout=self.dns.timeout
        )


def origin_settings(kind: type[OriginSettings] = OriginConfig) -> tuple[tuple[str, Setting], ...]:
    """(key, Setting) for every configuration key of `kind`, in field order."""
    return tuple((f.name, f.metadata[SETTING]) for f in fields(kind) if SETTING in f.metadata)


ORIGIN_SETTINGS: Mapping[str, Setting] = MappingProxyType(dict(origin_settings()))
ORIGIN_KEYS = tuple(ORIGIN_SETTINGS)
PER_ORIGIN_ONLY_KEYS = tuple(k for k, s in ORIGIN_SETTINGS.items() if s.per_origin_only)
DEFAULTS_KEYS = tuple(k for k in ORIGIN_KEYS if k not in PER_ORIGIN_ONLY_KEYS)


def merge_settings(inherited: OriginSettings, own: Mapping[str, Any]) -> dict[str, Any]:
    """Every shared key's value: the parsed `own` one, else the inherited one.

    `labels` merge (see `Setting.merge`), and an inherited timeout is capped at the interval
    (Prometheus' `scrape_timeout` rule); an explicit one was checked against it by the parser.
    """
    merged: dict[str, Any] = {}
    for key in DEFAULTS_KEYS:
        spec, base = ORIGIN_SETTINGS[key], getattr(inherited, key)
        if key not in own:
            merged[key] = base
        else:
            merged[key] = spec.merge(base, own[key]) if spec.merge else own[key]
    if "timeout" not in own:
        merged["timeout"] = min(inherited.timeout, merged["interval"])
    return merged


def origin_config(
    defaults: OriginSettings,
    own: Mapping[str, Any],
    *,
    name: str,
    host: str,
    sni: str | None = None,
    address: str | None = None,
    dns: DnsConfig = DnsConfig(),
    client_certificate_missing: bool = False,
    unread_policies: tuple[str, ...] = (),
) -> OriginConfig:
    """The one way an `OriginConfig` is made from parsed settings: the configuration file,
    `check` and discovery all come here, so defaults apply the same everywhere."""
    return OriginConfig(
        name=name,
        host=host,
        sni=sni,
        address=address,
        dns=dns,
        client_certificate_missing=client_certificate_missing,
        unread_policies=unread_policies,
        **merge_settings(defaults, own),
    )


def settings_schema() -> dict[str, Any]:
    """What config/schema.json says about origins and defaults, generated from the fields:
    `$defs.origin.properties`, `properties.defaults.properties` and one `$defs` entry per
    shared key (tests compare it with the file)."""
    defs: dict[str, Any] = {}
    origin: dict[str, Any] = {}
    for item in fields(OriginConfig):
        if SETTING not in item.metadata:
            continue
        key, spec = item.name, item.metadata[SETTING]
        node: dict[str, Any] = {"description": spec.doc, **spec.schema}
        if item.default is not MISSING:
            node["default"] = spec.show(item.default)
        if spec.per_origin_only:
            origin[key] = node
        else:
            defs[key] = node
            origin[key] = {"$ref": f"#/$defs/{key}"}
    defaults = {key: {"$ref": f"#/$defs/{key}"} for key in DEFAULTS_KEYS}
    return {"origin": origin, "defaults": defaults, "defs": defs}


@dataclass(frozen=True)
class CloudFrontDiscoveryConfig:
    """`discovery.cloudfront`: which distributions to read, where, and how often.

    Credentials come from boto3's standard chain (environment, shared profile, web identity /
    IRSA, container or instance role); nothing secret is in the configuration.
    """

    refresh_interval: float = DEFAULT_REFRESH_INTERVAL
    endpoint_url: str | None = None  # another CloudFront API endpoint (tests, proxies)
    region: str | None = None  # signing region / partition; default: boto3's, else us-east-1
    distribution_ids: tuple[str, ...] = ()  # only these distributions; empty: every one
    tags: tuple[tuple[str, str], ...] = ()  # (key, value), sorted: a distribution needs all
    client_certificates: tuple[tuple[str, ClientCertificate], ...] = ()  # (name or glob, files)

    def certificate_for(self, distribution_id: str, origin_id: str) -> ClientCertificate | None:
        """The files for `<distribution-id>/<origin-id>`: an exact entry, else the first glob
        (`*`, `?`, `[...]`; case-sensitive like the ids) in file order."""
        name = f"{distribution_id}/{origin_id}"
        exact = dict(self.client_certificates).get(name)
        if exact is not None:
            return exact
        for pattern, files in self.client_certificates:
            if fnmatch.fnmatchcase(name, pattern):
                return files
        return None

    def same_source(self, other: CloudFrontDiscoveryConfig) -> bool:
        """True when only the refresh interval differs: the same distributions are meant."""
        return (self.endpoint_url, self.region, self.distribution_ids, self.tags) == (
            other.endpoint_url,
            other.region,
            other.distribution_ids,
            other.tags,
        )


@dataclass(frozen=True)
class DiscoveryConfig:
    """The `discovery` section: where origins come from besides `origins`."""

    cloudfront: CloudFrontDiscoveryConfig = field(default_factory=CloudFrontDiscoveryConfig)


@dataclass(frozen=True)
class ExporterConfig:
    source: str  # the file path; "<default>" for the built-in empty configuration
    origins: tuple[OriginConfig, ...] = ()
    resolve: tuple[tuple[str, str], ...] = ()  # (lower-case host, IP address), sorted
    dns: DnsConfig = DnsConfig()
    probe_allow: tuple[str, ...] = ()
    max_concurrent_probes: int = DEFAULT_MAX_CONCURRENT_PROBES
    cipher_series: bool = True
    defaults: OriginDefaults = field(default_factory=OriginDefaults)
    discovery: DiscoveryConfig | None = None  # None: only the origins listed in the file

    def origin(self, name: str) -> OriginConfig | None:
        return self._by_name.get(name)

    def address_for(self, host: str) -> str | None:
        """The `resolve` address for `host` (case-insensitive), if any."""
        return self._resolve_map.get(_host_key(host))

    def allows_probe(self, host: str, port: int) -> bool:
        """Whether `/probe` may probe `host:port`.

        True for a configured origin: its host (case-insensitive) and port, or its name given as
        `host` with port 443 (what parsing a bare name yields) or as `host:port`. Otherwise true
        when `HOST:PORT` (IPv6 in brackets, host lower-cased) matches a `probe_allow` pattern:
        case-insensitive globs where only `*` (any run of characters, dots and colons included)
        and `?` are special, so `[2001:db8::1]:443` is literal.
        """
        if not 0 < port < 65536 or not host:
            return False
        key = _host_key(host)
        if (key, port) in self._endpoints:
            return True
        if f"{host}:{port}" in self._by_name or (port == DEFAULT_PORT and host in self._by_name):
            return True
        text = f"{_bracketed(key)}:{port}"
        return any(pattern.fullmatch(text) for pattern in self._allow_patterns)

    @cached_property
    def _by_name(self) -> dict[str, OriginConfig]:
        return {origin.name: origin for origin in self.origins}

    @cached_property
    def _resolve_map(self) -> dict[str, str]:
        return dict(self.resolve)

    @cached_property
    def _endpoints(self) -> frozenset[tuple[str, int]]:
        return frozenset((_host_key(o.host), o.port) for o in self.origins)

    @cached_property
    def _allow_patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(_glob(pattern) for pattern in self.probe_allow)


def default_config() -> ExporterConfig:
    """The configuration without a file: no origins, `/probe` allows nothing, every default."""
    return ExporterConfig(source=DEFAULT_SOURCE)


def load_config(path: str | Path) -> ExporterConfig:
    """Read and validate a configuration file; relative `ca_file`s are resolved against its
    directory. Raises `ConfigError` for an unreadable file, YAML syntax (with line and column)
    and every validation problem."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source,
            "(file)",
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
        ) from None
    return parse_config(text, source, path.parent)


def parse_config(text: str, source: str, base_dir: Path | None = None) -> ExporterConfig:
    """Validate configuration text; `source` names it in errors, `base_dir` (default: the
    current directory) anchors relative `ca_file` paths."""
    document = _load_yaml(text, source)
    return _Parser(source, base_dir or Path.cwd()).config(document)


def parse_settings(
    raw: Mapping[str, Any], source: str, path: str, base_dir: Path | None = None
) -> dict[str, Any]:
    """Shared origin keys from plain data (discovery's CloudFront values) by the file's rules:
    the parsed value of each key present, or a `ConfigError` naming `source`, `path.key`."""
    parser = _Parser(source, base_dir or Path.cwd())
    parser.keys(raw, path, DEFAULTS_KEYS)
    return parser.settings(raw, path)


def parse_origin(
    raw: Mapping[str, Any],
    source: str,
    *,
    defaults: OriginSettings = OriginSettings(),
    address: Any = None,
    dns: Any = None,
    base_dir: Path | None = None,
) -> OriginConfig:
    """One origin from plain data (what `check` builds from its options) by the configuration
    file's rules, so the two cannot drift. Key paths: `origin.KEY`, `resolve`, `dns.servers[I]`.
    The origin is checked first, so a bad host is not reported as a bad address."""
    parser = _Parser(source, base_dir or Path.cwd())
    origin = parser.origin(dict(raw), "origin", defaults, {})
    found = None if address is None else parser.ip_address(address, "resolve")
    return replace(origin, address=found, dns=parser.dns(dns))


_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?"
    r"(?:([0-9]+)ms)?"
)
_DURATION_UNITS_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_BARE_SECONDS = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?")
_DURATION_HINT = "expected a number of seconds or a duration such as 500ms, 10s, 5m, 1h30m"


def parse_duration(text: str | int | float) -> float:
    """Seconds from a Prometheus duration (`500ms`, `10s`, `5m`, `1h30m`; units y w d h m s ms,
    each at most once, largest first, integers only) or a bare number of seconds.

    Raises ValueError for anything else and for durations that are not greater than 0.
    """
    value: float
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"{_DURATION_HINT}, got {_describe(text)}")
    if isinstance(text, str):
        stripped = text.strip()
        match = _DURATION.fullmatch(stripped)
        if _BARE_SECONDS.fullmatch(stripped):
            value = float(stripped)
        elif stripped and match:
            millis = sum(
                int(amount) * unit
                for amount, unit in zip(match.groups(), _DURATION_UNITS_MS, strict=True)
                if amount is not None
            )
            value = millis / 1000
        elif re.fullmatch(r"[0-9]*\.[0-9]+[a-z]+", stripped):
            raise ValueError(
                f"invalid duration {text!r}: units take whole numbers; write e.g. 1s500ms, "
                "or a bare number of seconds such as 1.5"
            )
        else:
            raise ValueError(f"invalid duration {text!r}: {_DURATION_HINT}")
    else:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number of seconds, got {text}")
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {text}")
    return value


def format_duration(seconds: float) -> str:
    """Prometheus-style text for `seconds`: `1h30m`, `10s`, `1s500ms`; `0.0005s` below 1ms."""
    millis = round(seconds * 1000)
    if seconds <= 0 or not math.isclose(millis, seconds * 1000, abs_tol=1e-6):
        return f"{seconds:g}s"
    parts = []
    for unit, size in zip(("y", "w", "d", "h", "m", "s", "ms"), _DURATION_UNITS_MS, strict=True):
        amount, millis = divmod(millis, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


# --- YAML -------------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_yaml_text(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            context = exc.context
            cmark = exc.context_mark
            if cmark is not None and mark is not None and cmark.line != mark.line:
                context += f" at line {cmark.line + 1}, column {cmark.column + 1}"
            problem = f"{problem} ({context})"
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        raise ConfigError(source, where, problem) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else "byte"
        raise ConfigError(
            source,
            f"line {line}, column {column}",
            f"unacceptable character {character}: {exc.reason}",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "(yaml)", str(exc)) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise ConfigError(source, "(yaml)", "collections nested too deeply") from None


# --- validation --------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _child(path: str, key: Any) -> str:
    """`path.key` for identifier keys, else `path["key"]` (JSON string) or `path[5]`."""
    if isinstance(key, str) and _IDENTIFIER.match(key):
        return f"{path}.{key}" if path else key
    shown = json.dumps(key, ensure_ascii=False) if isinstance(key, str) else _yaml_text(key)
    return f"{path}[{shown}]"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _yaml_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 80 else text[:76] + "...'"
    return str(value)


def _describe(value: Any) -> str:
    """`string 'x'`, `integer 5`, `boolean true`, `null`, `list`, `mapping`."""
    name = _type_name(value)
    if value is None or isinstance(value, list | dict):
        return name
    if isinstance(value, bool | int | float | str):
        return f"{name} {_yaml_text(value)}"
    return name


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _host_key(host: str) -> str:
    return host.strip().strip("[]").lower()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _display(host: str, port: int) -> str:
    return f"{_bracketed(host)}:{port}"


def _glob(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower()]
    return re.compile("".join(parts), re.DOTALL)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_SPKI = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
_E = TypeVar("_E", bound=StrEnum)


def _as_written(value: Any) -> str:
    """A duration as the user wrote it: `500ms`, `0.5`, `1e+21`."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _suggest(key: Any, allowed: Collection[str]) -> str:
    if isinstance(key, str):
        close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
        if close:
            return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; expected one of: {', '.join(allowed)}"


@dataclass
class _Parser:
    source: str
    base_dir: Path

    def fail(self, path: str, problem: str) -> NoReturn:
        raise ConfigError(self.source, path, problem)

    # --- shapes --------------------------------------------------------------------------

    def mapping(self, value: Any, path: str) -> dict[Any, Any]:
        """A mapping section; null (a key with everything below it commented out) is empty."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {_describe(value)}")
        return value

    def sequence(self, value: Any, path: str, example: str = "") -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"must be a list{example}, got {_describe(value)}")
        return value

    def keys(
        self,
        data: Mapping[Any, Any],
        path: str,
        allowed: Collection[str],
        special: Mapping[str, str] | None = None,
    ) -> None:
        for key in data:
            if isinstance(key, str) and key in allowed:
                continue
            if special and isinstance(key, str) and key in special:
                self.fail(_child(path, key), special[key])
            self.fail(_child(path, key), _suggest(key, allowed))

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_describe(value)}")
        if not value.strip():
            self.fail(path, "must not be empty")
        return value

    def integer(self, value: Any, path: str, bounds: tuple[int, int]) -> int:
        low, high = bounds
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, got {_describe(value)}")
        if not low <= value <= high:
            self.fail(path, f"must be between {low} and {high}, got {value}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"must be a boolean (true or false), got {_describe(value)}")
        return value

    def duration(self, value: Any, path: str, bounds: tuple[float, float]) -> float:
        """A duration within `bounds`; the error repeats the value as written."""
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(path, str(exc))
        low, high = bounds
        if seconds < low:
            self.fail(path, f"must be at least {format_duration(low)}, got {_as_written(value)}")
        if seconds > high:
            self.fail(path, f"must be at most {format_duration(high)}, got {_as_written(value)}")
        return seconds

    def cloudfront_seconds(self, value: Any, path: str, bounds: tuple[float, float]) -> float:
        """A CloudFront timeout: whole seconds, as its API takes them."""
        seconds = self.duration(value, path, bounds)
        if seconds != int(seconds):
            self.fail(
                path, f"must be a whole number of seconds (as CloudFront takes it), got {value}"
            )
        return seconds

    def choice(self, value: Any, path: str, kind: type[_E]) -> _E:
        """One of an enumeration's values, exactly; a case-insensitive match is suggested."""
        allowed = [member.value for member in kind]
        if isinstance(value, str) and value in allowed:
            return kind(value)
        shown = ", ".join(repr(m) for m in allowed)
        got = repr(value) if isinstance(value, str) else _describe(value)
        close = [m for m in allowed if isinstance(value, str) and m.lower() == value.lower()]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.fail(path, f"must be one of {shown}, got {got}{hint}")

    # --- values --------------------------------------------------------------------------

    def host(self, value: Any, path: str, what: str = "a host name or IP address") -> str:
        """A DNS name or IP literal; IPv6 may be bracketed and is returned without brackets."""
        text = self.string(value, path)
        if "://" in text:
            self.fail(path, f"must be {what}, not a URL, got {text!r}")
        if text.startswith("[") and text.endswith("]") and _is_ip(text[1:-1]):
            return text[1:-1]
        if ":" in text and not _is_ip(text):
            name, _, port = text.rpartition(":")
            if port.isdigit() and name:
                self.fail(path, f"must not include a port, got {text!r}; use the port key")
            self.fail(path, f"must be {what}, got {text!r}")
        if any(c.isspace() or c in "/?#@[]\\" for c in text):
            self.fail(path, f"must be {what}, got {text!r}")
        if not _is_ip(text):
            self.dns_name(text, path, what)
        return text

    def dns_name(self, text: str, path: str, what: str) -> None:
        """RFC 1123 labels (underscores tolerated), 253 characters at most; IDNs as IDNA."""
        try:
            ascii_name = text.encode("idna").decode("ascii") if not text.isascii() else text
        except UnicodeError:
            self.fail(path, f"must be {what}, got {text!r} (not a valid internationalised name)")
        name = ascii_name[:-1] if ascii_name.endswith(".") else ascii_name
        if len(name) > 253:
            self.fail(path, f"must be {what}: {len(name)} characters, at most 253 allowed")
        for label in name.split("."):
            if not _DNS_LABEL.match(label):
                self.fail(
                    path,
                    f"must be {what}, got {text!r}: label {label!r} is not 1-63 letters, digits "
                    "or hyphens (not first or last)",
                )

    def ip_address(self, value: Any, path: str) -> str:
        """An IP literal (IPv6 optionally in brackets), returned without brackets."""
        if not isinstance(value, str):
            self.fail(path, f"must be an IP address, got {_describe(value)}")
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        if not _is_ip(text):
            self.fail(path, f"must be an IP address, got {value!r}")
        return text

    def protocols(self, value: Any, path: str) -> tuple[Protocol, ...]:
        items = self.sequence(value, path, " such as [TLSv1.2]")
        if not items:
            self.fail(path, "must not be empty: list the protocols the origin policy enables")
        chosen: set[Protocol] = set()
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            text = self.string(item, item_path)
            try:
                protocol = Protocol.parse(text)
            except ValueError as exc:
                self.fail(item_path, str(exc))
            if not protocol.cloudfront:
                self.fail(item_path, f"CloudFront does not use {protocol} towards origins")
            chosen.add(protocol)
        return tuple(p for p in CLOUDFRONT_PROTOCOLS if p in chosen)

    def ca_file(self, value: Any, path: str) -> str | None:
        """An existing, readable file; relative to the config file's directory. Null: none."""
        if value is None:
            return None
        return self.readable_file(value, path, 1)[0]

    def readable_file(self, value: Any, path: str, size: int) -> tuple[str, bytes]:
        """(absolute path, its first `size` bytes); relative to the config file's directory."""
        text = self.string(value, path)
        if "\0" in text:
            self.fail(path, f"{text!r} is not a file name: it contains a NUL character")
        try:
            resolved = Path(text).expanduser()
        except RuntimeError as exc:  # ~user with no such user
            self.fail(path, f"cannot expand {text!r}: {exc}")
        if not resolved.is_absolute():
            resolved = self.base_dir / resolved
        absolute = os.path.abspath(resolved)
        try:
            with open(absolute, "rb") as handle:
                return absolute, handle.read(size)
        except OSError as exc:
            where = "" if absolute == text else f" ({absolute})"
            self.fail(path, f"cannot read {text!r}{where}: {exc.strerror or exc}")

    def client_certificate(self, value: Any, path: str) -> ClientCertificate | None:
        """`{cert_file, key_file}`, both PEM, readable, and the key the certificate's."""
        return None if value is None else self.certificate_files(value, path)

    def certificate_files(self, value: Any, path: str) -> ClientCertificate:
        data = self.mapping(value, path)
        self.keys(data, path, CERTIFICATE_KEYS)
        for key in CERTIFICATE_KEYS:
            if data.get(key) is None:
                self.fail(path, f"missing {key!r}: cert_file and key_file go together")
        cert_path, key_path = _child(path, "cert_file"), _child(path, "key_file")
        cert_file, cert_pem = self.readable_file(data["cert_file"], cert_path, MAX_PEM_BYTES)
        key_file, key_pem = self.readable_file(data["key_file"], key_path, MAX_PEM_BYTES)
        certificate = self.pem_certificate(cert_pem, cert_path)
        key = self.pem_key(key_pem, key_path)
        if certificate.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
            self.fail(key_path, f"is not the key of {cert_path}'s certificate")
        return ClientCertificate(cert_file=cert_file, key_file=key_file)

    def pem_certificate(self, data: bytes, path: str) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificates(data)[0]
        except ValueError as exc:
            self.fail(path, f"is not a PEM certificate ({_first_line(exc)})")

    def pem_key(self, data: bytes, path: str) -> Any:
        try:
            return load_pem_private_key(data, password=None)
        except TypeError:
            self.fail(path, "is an encrypted private key; give one without a passphrase")
        except (ValueError, UnsupportedAlgorithm) as exc:
            self.fail(path, f"is not a PEM private key ({_first_line(exc)})")

    def request(self, value: Any, path: str) -> OriginRequest | None:
        """`false`: no request; `true`, null or a mapping: `GET /` with what it sets."""
        if isinstance(value, bool):
            return OriginRequest() if value else None
        data = self.mapping(value, path)
        self.keys(data, path, REQUEST_KEYS)
        method = self.token(data.get("method", "GET"), _child(path, "method"), "method")
        target = self.request_path(data.get("path", "/"), _child(path, "path"))
        headers = self.headers(data.get("headers"), _child(path, "headers"))
        return OriginRequest(method=method, path=target, headers=headers)

    def token(self, value: Any, path: str, what: str) -> str:
        text = self.no_line_breaks(value, path)
        if not _TOKEN.match(text):
            self.fail(
                path,
                f"must be an HTTP {what} (a token: letters, digits, !#$%&'*+.^_`|~-), got {text!r}",
            )
        return text

    def request_path(self, value: Any, path: str) -> str:
        text = self.no_line_breaks(value, path)
        if not text.startswith("/"):
            self.fail(path, f"must start with '/', got {text!r}")
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            self.fail(path, f"must not contain spaces or control characters, got {text!r}")
        return text

    def no_line_breaks(self, value: Any, path: str) -> str:
        """A string without CR, LF or NUL: one of them would split the request on the wire."""
        text = self.string(value, path)
        if any(c in text for c in "\r\n\0"):
            self.fail(path, f"must not contain CR, LF or NUL, got {text!r}")
        return text

    def headers(self, value: Any, path: str) -> tuple[tuple[str, str], ...]:
        found: dict[str, tuple[str, str]] = {}
        for name, raw in self.mapping(value, path).items():
            header_path = _child(path, name)
            if not isinstance(name, str):
                self.fail(header_path, f"header names must be strings, got {_describe(name)}")
            self.token(name, header_path, "header name")
            if name.lower() in UNSETTABLE_HEADERS:
                self.fail(header_path, f"{name!r} is set by CloudFront itself; leave it out")
            if name.lower() in found:
                self.fail(header_path, f"duplicate header {name!r} (header names ignore case)")
            if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                self.fail(header_path, f"must be a string, got {_describe(raw)}")
            text = raw if isinstance(raw, str) else str(raw)
            if any(c in text for c in "\r\n\0"):
                self.fail(header_path, f"must not contain CR, LF or NUL, got {text!r}")
            found[name.lower()] = (name, text)
        return tuple(found.values())

    def dns(self, value: Any) -> DnsConfig:
        """`dns: {servers: [IP[:PORT], ...], timeout}`; no servers: the system resolver."""
        data = self.mapping(value, "dns")
        self.keys(data, "dns", DNS_KEYS)
        servers = tuple(
            self.dns_server(item, f"dns.servers[{index}]")
            for index, item in enumerate(self.sequence(data.get("servers"), "dns.servers"))
        )
        timeout = DEFAULT_DNS_TIMEOUT
        if "timeout" in data:
            timeout = self.duration(data["timeout"], "dns.timeout", DNS_TIMEOUT_RANGE)
        return DnsConfig(servers=servers, timeout=timeout)

    def dns_server(self, value: Any, path: str) -> DnsServer:
        """`IP`, `IPv4:PORT`, `[IPv6]:PORT` or a bare IPv6 address; port 53 by default."""
        text = self.string(value, path).strip()
        if _is_ip(text):
            return DnsServer(address=text)  # IPv4, or a bare IPv6 address
        host, port = text, str(DEFAULT_DNS_PORT)
        if text.startswith("[") and "]" in text:
            host, _, rest = text[1:].partition("]")
            if rest:
                port = rest[1:] if rest.startswith(":") else ""
        elif text.count(":") == 1:
            host, port = text.split(":")
        if not _is_ip(host) or (text.startswith("[") and ":" not in host):
            self.fail(path, f"must be IP or IP:PORT (IPv6 as [ADDRESS]:PORT), got {text!r}")
        if not port.isdigit() or not 0 < int(port) < 65536:
            self.fail(path, f"port must be from 1 to 65535, got {port!r}")
        return DnsServer(address=host, port=int(port))

    def labels(self, value: Any, path: str) -> tuple[tuple[str, str], ...]:
        labels: dict[str, str] = {}
        for name, raw in self.mapping(value, path).items():
            label_path = _child(path, name)
            if not isinstance(name, str) or not LABEL_NAME.match(name):
                self.fail(
                    label_path,
                    f"invalid label name {_yaml_text(name)}: must match [a-zA-Z_][a-zA-Z0-9_]*",
                )
            if name.startswith("__"):
                self.fail(label_path, "label names starting with '__' are reserved by Prometheus")
            if name in RESERVED_LABELS:
                self.fail(
                    label_path,
                    f"{name!r} is a reserved label name: the exporter sets it itself "
                    f"(reserved: {', '.join(sorted(RESERVED_LABELS))})",
                )
            if isinstance(raw, bool):
                labels[name] = "true" if raw else "false"
            elif isinstance(raw, str | int | float):
                labels[name] = str(raw)
            else:
                self.fail(label_path, f"must be a string, number or boolean, got {_describe(raw)}")
        return tuple(sorted(labels.items()))

    def settings(self, data: Mapping[Any, Any], path: str) -> dict[str, Any]:
        """The shared keys present in `data`, each parsed by its field's `Setting`."""
        return {
            key: ORIGIN_SETTINGS[key].parse(self, data[key], _child(path, key))
            for key in DEFAULTS_KEYS
            if key in data
        }

    def timeout_fits(self, own: Mapping[str, Any], path: str, interval: float) -> None:
        """An explicit timeout must fit the interval (an inherited one is capped instead)."""
        if "timeout" in own and own["timeout"] > interval:
            self.fail(
                _child(path, "timeout"),
                f"must not exceed the interval ({format_duration(interval)}), "
                f"got {format_duration(own['timeout'])}",
            )

    # --- sections ------------------------------------------------------------------------

    def config(self, document: Any) -> ExporterConfig:
        if document is None:
            document = {}
        if not isinstance(document, dict):
            self.fail("(top level)", "must be a mapping")
        self.keys(document, "", TOP_LEVEL_KEYS)
        defaults = self.defaults(document.get("defaults"))
        resolve = self.resolve(document.get("resolve"))
        dns = self.dns(document.get("dns"))
        probe_allow = self.probe_allow(document.get("probe_allow"))
        scheduler = self.mapping(document.get("scheduler"), "scheduler")
        self.keys(scheduler, "scheduler", SCHEDULER_KEYS)
        max_concurrent_probes = DEFAULT_MAX_CONCURRENT_PROBES
        if "max_concurrent_probes" in scheduler:
            max_concurrent_probes = self.integer(
                scheduler["max_concurrent_probes"],
                "scheduler.max_concurrent_probes",
                MAX_CONCURRENT_PROBES_RANGE,
            )
        metrics = self.mapping(document.get("metrics"), "metrics")
        self.keys(metrics, "metrics", METRICS_KEYS)
        cipher_series = True
        if "cipher_series" in metrics:
            cipher_series = self.boolean(metrics["cipher_series"], "metrics.cipher_series")
        origins = self.origins(document.get("origins"), defaults, dict(resolve), dns)
        discovery = self.discovery(document.get("discovery"))
        return ExporterConfig(
            source=self.source,
            origins=origins,
            resolve=resolve,
            dns=dns,
            probe_allow=probe_allow,
            max_concurrent_probes=max_concurrent_probes,
            cipher_series=cipher_series,
            defaults=defaults,
            discovery=discovery,
        )

    def discovery(self, value: Any) -> DiscoveryConfig | None:
        """`discovery: {cloudfront: {...}}`; no provider (or null) means no discovery.

        `cloudfront:` with every key below it commented out (null) discovers every distribution
        with the defaults, like the other sections where null is empty.
        """
        data = self.mapping(value, "discovery")
        self.keys(data, "discovery", DISCOVERY_KEYS)
        if "cloudfront" not in data:
            return None
        return DiscoveryConfig(cloudfront=self.cloudfront(data["cloudfront"]))

    def cloudfront(self, value: Any) -> CloudFrontDiscoveryConfig:
        path = "discovery.cloudfront"
        data = self.mapping(value, path)
        self.keys(data, path, CLOUDFRONT_DISCOVERY_KEYS)
        refresh_interval = DEFAULT_REFRESH_INTERVAL
        if "refresh_interval" in data:
            key_path = f"{path}.refresh_interval"
            refresh_interval = self.duration(
                data["refresh_interval"], key_path, REFRESH_INTERVAL_RANGE
            )
        endpoint_url = None
        if data.get("endpoint_url") is not None:
            endpoint_url = self.url(data["endpoint_url"], f"{path}.endpoint_url")
        region = None
        if data.get("region") is not None:
            key_path = f"{path}.region"
            region = self.string(data["region"], key_path).strip()
            if not _REGION.match(region):
                self.fail(key_path, f"must be an AWS region such as us-east-1, got {region!r}")
        distribution_ids: tuple[str, ...] = ()
        if "distribution_ids" in data:
            distribution_ids = self.distribution_ids(
                data["distribution_ids"], f"{path}.distribution_ids"
            )
        tags: tuple[tuple[str, str], ...] = ()
        if "tags" in data:
            tags = self.tags(data["tags"], f"{path}.tags")
        certificates = self.client_certificates(
            data.get("client_certificates"), f"{path}.client_certificates"
        )
        return CloudFrontDiscoveryConfig(
            refresh_interval=refresh_interval,
            endpoint_url=endpoint_url,
            region=region,
            distribution_ids=distribution_ids,
            tags=tags,
            client_certificates=certificates,
        )

    def client_certificates(
        self, value: Any, path: str
    ) -> tuple[tuple[str, ClientCertificate], ...]:
        """`{"<distribution-id>/<origin-id>" or glob: {cert_file, key_file}}`, in file order."""
        found: list[tuple[str, ClientCertificate]] = []
        for pattern, files in self.mapping(value, path).items():
            entry_path = _child(path, pattern)
            if not isinstance(pattern, str) or "/" not in pattern or pattern.strip() != pattern:
                self.fail(
                    entry_path,
                    "keys are origin names <distribution-id>/<origin-id> or globs of them "
                    f"(E2QWRUHEXAMPLE/web, E2QWRUHEXAMPLE/*), got {_describe(pattern)}",
                )
            if files is None:
                self.fail(entry_path, "must be a mapping {cert_file, key_file}, got null")
            found.append((pattern, self.certificate_files(files, entry_path)))
        return tuple(found)

    def url(self, value: Any, path: str) -> str:
        text = self.string(value, path).strip()
        try:
            parts = urlsplit(text)
            _ = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError as exc:
            self.fail(path, f"must be an http:// or https:// URL, got {text!r} ({exc})")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(path, f"must be an http:// or https:// URL, got {text!r}")
        return text

    def distribution_ids(self, value: Any, path: str) -> tuple[str, ...]:
        items = self.sequence(value, path, " of distribution IDs such as [E2QWRUHEXAMPLE]")
        if not items:
            self.fail(path, "must not be empty: leave the key out to discover every distribution")
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            text = self.string(item, item_path).strip()
            if not _DISTRIBUTION_ID.match(text):
                self.fail(
                    item_path,
                    f"must be a CloudFront distribution ID such as E2QWRUHEXAMPLE (capital "
                    f"letters and digits), got {text!r}",
                )
            if text in seen:
                self.fail(
                    item_path, f"duplicate distribution ID {text!r} ({path}[{seen[text]}] too)"
                )
            seen[text] = index
        return tuple(seen)

    def tags(self, value: Any, path: str) -> tuple[tuple[str, str], ...]:
        data = self.mapping(value, path)
        if not data:
            self.fail(path, "must not be empty: leave the key out to discover every distribution")
        tags: dict[str, str] = {}
        for key, raw in data.items():
            tag_path = _child(path, key)
            if not isinstance(key, str) or not key.strip():
                self.fail(tag_path, f"tag keys must be non-empty strings, got {_describe(key)}")
            if not isinstance(raw, str):
                hint = ""
                if isinstance(raw, bool | int):
                    hint = f"; quote it: '{_yaml_text(raw)}'"
                elif isinstance(raw, float):
                    hint = "; quote it exactly as the tag value is written"
                self.fail(
                    tag_path,
                    f"tag values must be strings (CloudFront compares them as text), "
                    f"got {_describe(raw)}{hint}",
                )
            tags[key] = raw
        return tuple(sorted(tags.items()))

    def defaults(self, value: Any, built_in: OriginSettings = OriginSettings()) -> OriginSettings:
        data = self.mapping(value, "defaults")
        special = {
            key: f"cannot be set under defaults: {key} is per origin"
            for key in PER_ORIGIN_ONLY_KEYS
        }
        self.keys(data, "defaults", DEFAULTS_KEYS, special)
        own = self.settings(data, "defaults")
        self.timeout_fits(own, "defaults", own.get("interval", built_in.interval))
        return OriginSettings(**merge_settings(built_in, own))

    def resolve(self, value: Any) -> tuple[tuple[str, str], ...]:
        entries: dict[str, str] = {}
        for host, address in self.mapping(value, "resolve").items():
            path = _child("resolve", host)
            key = _host_key(self.host(host, path))
            if key in entries:
                self.fail(path, f"duplicate host: {key!r} is already in resolve")
            entries[key] = self.ip_address(address, path)
        return tuple(sorted(entries.items()))

    def probe_allow(self, value: Any) -> tuple[str, ...]:
        patterns = []
        for index, item in enumerate(self.sequence(value, "probe_allow")):
            path = f"probe_allow[{index}]"
            pattern = self.string(item, path)
            if any(c.isspace() for c in pattern):
                self.fail(path, f"must not contain whitespace, got {pattern!r}")
            if ":" not in pattern and not pattern.endswith("*"):
                self.fail(
                    path,
                    f"{pattern!r} has no ':PORT' and can never match a HOST:PORT target; "
                    f"write {pattern + ':443'!r} or {pattern + ':*'!r}",
                )
            patterns.append(pattern)
        return tuple(patterns)

    def origins(
        self, value: Any, defaults: OriginSettings, resolve: Mapping[str, str], dns: DnsConfig
    ) -> tuple[OriginConfig, ...]:
        origins: list[OriginConfig] = []
        first_index: dict[str, int] = {}
        items = self.sequence(value, "origins")
        for index, item in enumerate(items):
            path = f"origins[{index}]"
            origin = self.origin(item, path, defaults, resolve, dns)
            if origin.name in first_index:
                hint = ""
                if not (isinstance(item, dict) and "name" in item):
                    hint = "; the default name is host:port, so give one of them a name"
                self.fail(
                    f"{path}.name",
                    f"duplicate origin name {origin.name!r} "
                    f"(origins[{first_index[origin.name]}] has the same name){hint}",
                )
            first_index[origin.name] = index
            origins.append(origin)
        return tuple(origins)

    def origin(
        self,
        value: Any,
        path: str,
        defaults: OriginSettings,
        resolve: Mapping[str, str],
        dns: DnsConfig = DnsConfig(),
    ) -> OriginConfig:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {_describe(value)}")
        self.keys(value, path, ORIGIN_KEYS)
        if "host" not in value:
            self.fail(path, "missing required key 'host'")
        identity = {
            key: ORIGIN_SETTINGS[key].parse(self, value[key], _child(path, key))
            for key in PER_ORIGIN_ONLY_KEYS
            if key in value
        }
        own = self.settings(value, path)
        self.timeout_fits(own, path, own.get("interval", defaults.interval))
        host: str = identity["host"]
        name = identity.get("name") or _display(host, own.get("port", defaults.port))
        return origin_config(
            defaults,
            own,
            name=name,
            host=host,
            sni=identity.get("sni"),
            address=resolve.get(_host_key(host)),
            dns=dns,
        )


def settings_dict(settings: OriginSettings) -> dict[str, Any]:
    """Every configuration key of `settings` (an origin's or the defaults') as plain data."""
    return {key: spec.show(getattr(settings, key)) for key, spec in origin_settings(type(settings))}


def config_dict(config: ExporterConfig) -> dict[str, Any]:
    """The loaded configuration as plain data (defaults applied), for `/config`."""

    def origin_dict(origin: OriginConfig) -> dict[str, Any]:
        shown = settings_dict(origin)
        shown["address"] = origin.address
        if origin.client_certificate_missing:
            shown["client_certificate_missing"] = True
        if origin.unread_policies:
            shown["unread_policies"] = list(origin.unread_policies)
        return shown

    return {
        "source": config.source,
        "defaults": settings_dict(config.defaults),
        "resolve": dict(config.resolve),
        "dns": {
            "servers": [server.display for server in config.dns.servers],
            "timeout": format_duration(config.dns.timeout),
        },
        "probe_allow": list(config.probe_allow),
        "scheduler": {"max_concurrent_probes": config.max_concurrent_probes},
        "metrics": {"cipher_series": config.cipher_series},
        "origins": [origin_dict(o) for o in config.origins],
    }
