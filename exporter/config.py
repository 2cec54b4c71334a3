"""The exporter's YAML configuration: parsing, validation and the resolved, immutable result.

Every problem is a `ConfigError` naming the file, the key path (`origins[2].port`,
`resolve["origin.example.com"]`) and what is wrong, so `validate` and a failed reload tell the
operator exactly what to fix. Validation stops at the first problem, looking at the top-level
keys, then defaults, resolve, probe_allow, scheduler, metrics, origins and discovery, in that
order.
`config/schema.json` mirrors the structure checked here; `config/example.yml` documents every
key.

Timeouts follow Prometheus' convention for `scrape_timeout`: a timeout set explicitly must not
exceed its interval, and an inherited one (the built-in 10s or `defaults.timeout`) is capped at
the origin's interval.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import yaml

from .engine.catalogue import CLOUDFRONT_PROTOCOLS, Protocol
from .engine.target import ConfirmMode, ProbeOptions, ProbeTarget

DEFAULT_SOURCE = "<default>"
DEFAULT_PORT = 443
DEFAULT_PROTOCOLS: tuple[Protocol, ...] = (Protocol.TLSv1, Protocol.TLSv1_1, Protocol.TLSv1_2)
"""The policy CloudFront's console proposes for a new custom origin."""
DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 8
DEFAULT_MAX_CONCURRENT_PROBES = 32
MIN_INTERVAL = 1.0
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
    }
)
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

TOP_LEVEL_KEYS = (
    "defaults",
    "resolve",
    "probe_allow",
    "scheduler",
    "metrics",
    "origins",
    "discovery",
)
ORIGIN_KEYS = (
    "name",
    "host",
    "port",
    "sni",
    "protocols",
    "interval",
    "timeout",
    "ca_file",
    "labels",
    "confirm",
    "max_connections",
)
PER_ORIGIN_ONLY_KEYS = ("name", "host", "sni")
DEFAULTS_KEYS = tuple(k for k in ORIGIN_KEYS if k not in PER_ORIGIN_ONLY_KEYS)
SCHEDULER_KEYS = ("max_concurrent_probes",)
METRICS_KEYS = ("cipher_series",)
DISCOVERY_KEYS = ("cloudfront",)
CLOUDFRONT_DISCOVERY_KEYS = (
    "refresh_interval",
    "endpoint_url",
    "region",
    "distribution_ids",
    "tags",
)
DEFAULT_REFRESH_INTERVAL = 300.0
MIN_REFRESH_INTERVAL = 10.0
"""A refresh reads every distribution (and, with `tags`, makes one ListTagsForResource call per
distribution): refreshing more often than every 10s would only burn CloudFront API quota."""
_DISTRIBUTION_ID = re.compile(r"[A-Z0-9]+\Z")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+\Z")


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


@dataclass(frozen=True)
class OriginDefaults:
    """The resolved `defaults` section: what an origin gets for every key it does not set.

    `/probe` uses these for ad-hoc targets allowed by `probe_allow`.
    """

    port: int = DEFAULT_PORT
    protocols: tuple[Protocol, ...] = DEFAULT_PROTOCOLS
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    ca_file: str | None = None
    confirm: ConfirmMode = ConfirmMode.ALL
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    labels: tuple[tuple[str, str], ...] = ()  # merged under each origin's own, sorted

    @property
    def deadline(self) -> float:
        """See `probe_deadline`."""
        return probe_deadline(self.interval, self.timeout)

    def options(self) -> ProbeOptions:
        return ProbeOptions(
            timeout=self.timeout,
            deadline=self.deadline,
            max_connections=self.max_connections,
            confirm=self.confirm,
        )


@dataclass(frozen=True)
class OriginConfig:
    """One configured origin with every default applied."""

    name: str  # the `origin` label value; default `host:port` (`[v6]:port`)
    host: str  # IPv6 literals without brackets
    port: int = DEFAULT_PORT
    sni: str | None = None
    protocols: tuple[Protocol, ...] = DEFAULT_PROTOCOLS  # oldest first, no duplicates
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    ca_file: str | None = None  # absolute path
    confirm: ConfirmMode = ConfirmMode.ALL
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    address: str | None = None  # from `resolve` for this host, if any
    labels: tuple[tuple[str, str], ...] = ()  # defaults' merged under the origin's own, sorted

    @property
    def deadline(self) -> float:
        """`min(interval, max(timeout * 6, 30s))`: see `probe_deadline`."""
        return probe_deadline(self.interval, self.timeout)

    def target(self) -> ProbeTarget:
        return ProbeTarget(
            host=self.host,
            port=self.port,
            sni=self.sni,
            protocols=self.protocols,
            ca_file=self.ca_file,
            address=self.address,
        )

    def options(self) -> ProbeOptions:
        """Per-connection `timeout`; the whole probe bounded by `deadline` (see above)."""
        return ProbeOptions(
            timeout=self.timeout,
            deadline=self.deadline,
            max_connections=self.max_connections,
            confirm=self.confirm,
        )


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

    def duration(self, value: Any, path: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(path, str(exc))

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

    def confirm(self, value: Any, path: str) -> ConfirmMode:
        modes = [mode.value for mode in ConfirmMode]
        if not isinstance(value, str) or value not in modes:
            shown = ", ".join(repr(m) for m in modes)
            got = repr(value) if isinstance(value, str) else _describe(value)
            self.fail(path, f"must be one of {shown}, got {got}")
        return ConfirmMode(value)

    def ca_file(self, value: Any, path: str) -> str | None:
        """An existing, readable file; relative to the config file's directory. Null: none."""
        if value is None:
            return None
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
                handle.read(1)
        except OSError as exc:
            where = "" if absolute == text else f" ({absolute})"
            self.fail(path, f"cannot read {text!r}{where}: {exc.strerror or exc}")
        return absolute

    def labels(self, value: Any, path: str) -> dict[str, str]:
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
        return labels

    def settings(self, data: Mapping[Any, Any], path: str) -> dict[str, Any]:
        """The keys an origin and `defaults` share, parsed, for those present in `data`."""
        parsed: dict[str, Any] = {}
        for key in DEFAULTS_KEYS:
            if key not in data:
                continue
            value, key_path = data[key], _child(path, key)
            if key == "port":
                parsed[key] = self.integer(value, key_path, PORT_RANGE)
            elif key == "protocols":
                parsed[key] = self.protocols(value, key_path)
            elif key in ("interval", "timeout"):
                parsed[key] = self.duration(value, key_path)
                if key == "interval" and parsed[key] < MIN_INTERVAL:
                    self.fail(key_path, f"must be at least 1s, got {value}")
            elif key == "ca_file":
                parsed[key] = self.ca_file(value, key_path)
            elif key == "labels":
                parsed[key] = self.labels(value, key_path)
            elif key == "confirm":
                parsed[key] = self.confirm(value, key_path)
            elif key == "max_connections":
                parsed[key] = self.integer(value, key_path, MAX_CONNECTIONS_RANGE)
        return parsed

    def timeout(
        self, parsed: Mapping[str, Any], path: str, interval: float, inherited: float
    ) -> float:
        """An explicit timeout must fit the interval; an inherited one is capped at it."""
        if "timeout" not in parsed:
            return min(inherited, interval)
        timeout: float = parsed["timeout"]
        if timeout > interval:
            self.fail(
                _child(path, "timeout"),
                f"must not exceed the interval ({format_duration(interval)}), "
                f"got {format_duration(timeout)}",
            )
        return timeout

    # --- sections ------------------------------------------------------------------------

    def config(self, document: Any) -> ExporterConfig:
        if document is None:
            document = {}
        if not isinstance(document, dict):
            self.fail("(top level)", "must be a mapping")
        self.keys(document, "", TOP_LEVEL_KEYS)
        defaults = self.defaults(document.get("defaults"))
        resolve = self.resolve(document.get("resolve"))
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
        origins = self.origins(document.get("origins"), defaults, dict(resolve))
        discovery = self.discovery(document.get("discovery"))
        return ExporterConfig(
            source=self.source,
            origins=origins,
            resolve=resolve,
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
            refresh_interval = self.duration(data["refresh_interval"], key_path)
            if refresh_interval < MIN_REFRESH_INTERVAL:
                self.fail(
                    key_path,
                    f"must be at least {format_duration(MIN_REFRESH_INTERVAL)}, "
                    f"got {data['refresh_interval']}",
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
        return CloudFrontDiscoveryConfig(
            refresh_interval=refresh_interval,
            endpoint_url=endpoint_url,
            region=region,
            distribution_ids=distribution_ids,
            tags=tags,
        )

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

    def defaults(self, value: Any) -> OriginDefaults:
        data = self.mapping(value, "defaults")
        special = {
            key: f"cannot be set under defaults: {key} is per origin"
            for key in PER_ORIGIN_ONLY_KEYS
        }
        self.keys(data, "defaults", DEFAULTS_KEYS, special)
        parsed = self.settings(data, "defaults")
        interval = parsed.get("interval", DEFAULT_INTERVAL)
        return OriginDefaults(
            port=parsed.get("port", DEFAULT_PORT),
            protocols=parsed.get("protocols", DEFAULT_PROTOCOLS),
            interval=interval,
            timeout=self.timeout(parsed, "defaults", interval, DEFAULT_TIMEOUT),
            ca_file=parsed.get("ca_file"),
            confirm=parsed.get("confirm", ConfirmMode.ALL),
            max_connections=parsed.get("max_connections", DEFAULT_MAX_CONNECTIONS),
            labels=tuple(sorted(parsed.get("labels", {}).items())),
        )

    def resolve(self, value: Any) -> tuple[tuple[str, str], ...]:
        entries: dict[str, str] = {}
        for host, address in self.mapping(value, "resolve").items():
            path = _child("resolve", host)
            key = _host_key(self.host(host, path))
            if key in entries:
                self.fail(path, f"duplicate host: {key!r} is already in resolve")
            if not isinstance(address, str):
                self.fail(path, f"must be an IP address, got {_describe(address)}")
            text = address.strip()
            if text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            if not _is_ip(text):
                self.fail(path, f"must be an IP address, got {address!r}")
            entries[key] = text
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
        self, value: Any, defaults: OriginDefaults, resolve: Mapping[str, str]
    ) -> tuple[OriginConfig, ...]:
        origins: list[OriginConfig] = []
        first_index: dict[str, int] = {}
        items = self.sequence(value, "origins")
        for index, item in enumerate(items):
            path = f"origins[{index}]"
            origin = self.origin(item, path, defaults, resolve)
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
        self, value: Any, path: str, defaults: OriginDefaults, resolve: Mapping[str, str]
    ) -> OriginConfig:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {_describe(value)}")
        self.keys(value, path, ORIGIN_KEYS)
        if "host" not in value:
            self.fail(path, "missing required key 'host'")
        host = self.host(value["host"], _child(path, "host"))
        sni = None
        if value.get("sni") is not None:
            sni = self.host(value["sni"], _child(path, "sni"), "a host name")
        parsed = self.settings(value, path)
        port: int = parsed.get("port", defaults.port)
        if "name" in value:
            name = self.string(value["name"], _child(path, "name"))
        else:
            name = _display(host, port)
        interval: float = parsed.get("interval", defaults.interval)
        labels = dict(defaults.labels)
        labels.update(parsed.get("labels", {}))
        return OriginConfig(
            name=name,
            host=host,
            port=port,
            sni=sni,
            protocols=parsed.get("protocols", defaults.protocols),
            interval=interval,
            timeout=self.timeout(parsed, path, interval, defaults.timeout),
            ca_file=parsed.get("ca_file", defaults.ca_file),  # null: Mozilla roots
            confirm=parsed.get("confirm", defaults.confirm),
            max_connections=parsed.get("max_connections", defaults.max_connections),
            address=resolve.get(_host_key(host)),
            labels=tuple(sorted(labels.items())),
        )


def config_dict(config: ExporterConfig) -> dict[str, Any]:
    """The loaded configuration as plain data (defaults applied), for `/config`."""

    def origin_dict(origin: OriginConfig) -> dict[str, Any]:
        return {
            "name": origin.name,
            "host": origin.host,
            "port": origin.port,
            "sni": origin.sni,
            "protocols": [str(p) for p in origin.protocols],
            "interval": format_duration(origin.interval),
            "timeout": format_duration(origin.timeout),
            "ca_file": origin.ca_file,
            "confirm": str(origin.confirm),
            "max_connections": origin.max_connections,
            "address": origin.address,
            "labels": dict(origin.labels),
        }

    defaults = config.defaults
    return {
        "source": config.source,
        "defaults": {
            "port": defaults.port,
            "protocols": [str(p) for p in defaults.protocols],
            "interval": format_duration(defaults.interval),
            "timeout": format_duration(defaults.timeout),
            "ca_file": defaults.ca_file,
            "confirm": str(defaults.confirm),
            "max_connections": defaults.max_connections,
            "labels": dict(defaults.labels),
        },
        "resolve": dict(config.resolve),
        "probe_allow": list(config.probe_allow),
        "scheduler": {"max_concurrent_probes": config.max_concurrent_probes},
        "metrics": {"cipher_series": config.cipher_series},
        "origins": [origin_dict(o) for o in config.origins],
    }
