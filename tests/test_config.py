"""The configuration file: every rule, table-driven from tests/configs, plus the JSON Schema.

Each `tests/configs/bad/*.yml` starts with `# error: <expected message substring>` and
`# schema: rejects|accepts|n/a`: whether config/schema.json also rejects it (structural errors:
unknown keys, wrong types, enums, ranges the schema can express) or only the exporter can tell.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from exporter.config import (
    DEFAULT_PROTOCOLS,
    DEFAULT_SOURCE,
    DEFAULTS_KEYS,
    METRICS_KEYS,
    ORIGIN_KEYS,
    ORIGIN_SETTINGS,
    PER_ORIGIN_ONLY_KEYS,
    RESERVED_LABELS,
    SCHEDULER_KEYS,
    TOP_LEVEL_KEYS,
    ConfigError,
    DnsConfig,
    ExporterConfig,
    OriginConfig,
    OriginDefaults,
    OriginSettings,
    Setting,
    config_dict,
    default_config,
    format_duration,
    load_config,
    parse_config,
    parse_duration,
    probe_deadline,
    settings_dict,
    settings_schema,
)
from exporter.demo.pki import Issued, issue
from exporter.engine.catalogue import CLOUDFRONT_PROTOCOLS, Protocol
from exporter.engine.target import (
    ClientCertificate,
    CloudFrontPolicy,
    ConfirmMode,
    DnsServer,
    IpAddressType,
    OriginRequest,
    ProbeOptions,
    ProbeTarget,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "configs"
BAD = sorted((CONFIGS / "bad").glob("*.yml"))
GOOD = sorted((CONFIGS / "good").glob("*.yml"))
EXAMPLE = ROOT / "config" / "example.yml"
SCHEMA = ROOT / "config" / "schema.json"


def header(path: Path) -> tuple[str, str]:
    """(expected error substring, schema verdict) from a bad config's first two lines."""
    lines = path.read_text().splitlines()
    error = re.fullmatch(r"# error: (.+)", lines[0])
    schema = re.fullmatch(r"# schema: (rejects|accepts|n/a)\b.*", lines[1])
    assert error, f"{path.name}: the first line must be '# error: <expected substring>'"
    assert schema, f"{path.name}: the second line must be '# schema: rejects|accepts|n/a'"
    return error[1], schema[1]


def parse(text: str, **kwargs: Any) -> ExporterConfig:
    return parse_config(text, "conf.yml", **kwargs)


def error_of(text: str, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, **kwargs)
    return info.value


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# --- table-driven: bad and good files ----------------------------------------------------------


def test_fixture_sets_are_there() -> None:
    assert len(BAD) >= 50
    assert len(GOOD) >= 8


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_is_rejected_with_its_message(path: Path) -> None:
    expected, _ = header(path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert expected in str(error)
    assert str(error) == f"{path}: {error.key_path}: {error.problem}"
    assert error.file == str(path)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_schema_verdict(path: Path, validator: Any) -> None:
    _, verdict = header(path)
    if verdict == "n/a":  # YAML syntax or duplicate keys: below what a schema sees
        pytest.skip("not a schema matter")
    document = yaml.safe_load(path.read_text())
    errors = [e.message for e in validator.iter_errors(document)]
    if verdict == "rejects":
        assert errors, f"{path.name}: the schema should reject this structural error"
    else:
        assert not errors, f"{path.name}: mark it '# schema: rejects' ({errors})"


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_config_loads_and_matches_schema(path: Path, validator: Any) -> None:
    config = load_config(path)
    assert config.source == str(path)
    validator.validate(yaml.safe_load(path.read_text()))


def test_example_loads_and_matches_schema(validator: Any) -> None:
    config = load_config(EXAMPLE)
    validator.validate(yaml.safe_load(EXAMPLE.read_text()))
    assert [o.name for o in config.origins] == [
        "static.example.com:443",
        "shop",
        "[2001:db8::443]:8443",
    ]
    # The example shows the defaults as they are.
    assert config.defaults == OriginDefaults(labels=(("env", "production"),))
    assert config.max_concurrent_probes == 32
    assert config.cipher_series is True
    assert config.origin("shop") is not None
    assert config.origin("shop").address == "203.0.113.10"  # type: ignore[union-attr]


def test_example_shows_every_key(schema: dict[str, Any]) -> None:
    text = EXAMPLE.read_text()
    assert re.search(r"^\s*# ca_file: ", text, re.MULTILINE), "ca_file stays commented out"
    assert not re.search(r"^\s*ca_file:", text, re.MULTILINE), "no ca_file to ship with it"

    def keys(node: Any) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties":
                    found |= set(value)
                found |= keys(value)
        elif isinstance(node, list):
            for item in node:
                found |= keys(item)
        return found

    for key in keys(schema) - {"discovery"}:
        assert re.search(rf"^\s*(# )?(- )?{key}:", text, re.MULTILINE), f"{key} not in example"


# --- the schema mirrors the loader -------------------------------------------------------------


def test_schema_keys_mirror_the_loader(schema: dict[str, Any]) -> None:
    top = schema["properties"]
    defs = schema["$defs"]
    assert tuple(top) == TOP_LEVEL_KEYS
    assert tuple(defs["origin"]["properties"]) == ORIGIN_KEYS
    assert tuple(top["defaults"]["properties"]) == DEFAULTS_KEYS
    assert tuple(top["scheduler"]["properties"]) == SCHEDULER_KEYS
    assert tuple(top["metrics"]["properties"]) == METRICS_KEYS
    assert defs["origin"]["required"] == ["host"]
    for node in (schema, top["defaults"], top["scheduler"], top["metrics"], defs["origin"]):
        assert node["additionalProperties"] is False


def test_schema_defaults_enums_and_ranges_mirror_the_loader(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    top = schema["properties"]
    built_in = OriginDefaults()
    assert defs["port"]["default"] == built_in.port
    assert (defs["port"]["minimum"], defs["port"]["maximum"]) == (1, 65535)
    assert tuple(Protocol.parse(p) for p in defs["protocols"]["default"]) == built_in.protocols
    assert defs["protocols"]["items"]["anyOf"][0]["enum"] == [p.value for p in CLOUDFRONT_PROTOCOLS]
    assert parse_duration(defs["interval"]["default"]) == built_in.interval
    assert parse_duration(defs["timeout"]["default"]) == built_in.timeout
    assert defs["ca_file"]["default"] is None
    assert built_in.ca_file is None
    assert defs["confirm"]["enum"] == [m.value for m in ConfirmMode]
    assert defs["confirm"]["default"] == built_in.confirm.value
    assert defs["max_connections"]["default"] == built_in.max_connections
    assert (defs["max_connections"]["minimum"], defs["max_connections"]["maximum"]) == (1, 64)
    probes = top["scheduler"]["properties"]["max_concurrent_probes"]
    assert (probes["default"], probes["minimum"], probes["maximum"]) == (32, 1, 10000)
    assert ExporterConfig(source="x").max_concurrent_probes == probes["default"]
    assert top["metrics"]["properties"]["cipher_series"]["default"] is True
    reserved = defs["labels"]["propertyNames"]["not"]["anyOf"][1]["enum"]
    assert set(reserved) == RESERVED_LABELS


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("10s", True),
        ("1h30m", True),
        ("500ms", True),
        ("90", True),
        (1.5, True),
        ("1.5s", False),
        ("30m1h", False),
        ("10 seconds", False),
        ("", False),
        (0, False),
        (True, False),
    ],
)
def test_schema_duration_agrees_with_parse_duration(validator: Any, value: Any, ok: bool) -> None:
    document = {"defaults": {"timeout": value}}
    assert validator.is_valid(document) is ok
    if ok:
        parse_duration(value)
    else:
        with pytest.raises(ValueError, match=r"duration|greater than 0"):
            parse_duration(value)


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s500ms", 90.5),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1y", 31536000.0),
        ("30", 30.0),
        ("2.5", 2.5),
        (" 10s ", 10.0),
        (30, 30.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10x", "invalid duration '10x': expected a number of seconds or a duration such as"),
        ("1.5s", "units take whole numbers; write e.g. 1s500ms"),
        ("30m1h", "invalid duration '30m1h'"),
        ("10S", "invalid duration '10S'"),
        ("", "invalid duration ''"),
        ("s", "invalid duration 's'"),
        ("0s", "must be greater than 0, got 0s"),
        ("0", "must be greater than 0, got 0"),
        (0, "must be greater than 0, got 0"),
        (-1.5, "must be greater than 0, got -1.5"),
        (float("inf"), "must be a finite number of seconds, got inf"),
        (float("nan"), "must be a finite number of seconds, got nan"),
        (True, "got boolean true"),
        ([10], "got list"),
        (None, "got null"),
    ],
)
def test_parse_duration_errors(text: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (10, "10s"), (90, "1m30s"), (5400, "1h30m"), (86400, "1d"), (1.25, "1s250ms")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


# --- defaults and merging ----------------------------------------------------------------------


def test_built_in_defaults() -> None:
    config = parse("origins: [{host: a.example.com}]")
    origin = config.origins[0]
    assert origin == OriginConfig(name="a.example.com:443", host="a.example.com")
    assert origin.port == 443
    assert (
        origin.protocols
        == DEFAULT_PROTOCOLS
        == (Protocol.TLSv1, Protocol.TLSv1_1, Protocol.TLSv1_2)
    )
    assert (origin.interval, origin.timeout) == (60.0, 10.0)
    assert origin.confirm is ConfirmMode.ALL
    assert origin.max_connections == 8
    assert origin.sni is None
    assert origin.ca_file is None
    assert origin.address is None
    assert origin.labels == ()
    assert config.defaults == OriginDefaults()
    assert config.resolve == ()
    assert config.probe_allow == ()
    assert config.max_concurrent_probes == 32
    assert config.cipher_series is True


def test_defaults_apply_where_an_origin_does_not_set_the_key() -> None:
    config = load_config(CONFIGS / "good" / "full.yml")
    shop, api = config.origins
    assert api == OriginConfig(
        name="api.example.com:8443",
        host="api.example.com",
        port=8443,
        protocols=(Protocol.TLSv1_1, Protocol.TLSv1_2),
        interval=120.0,
        timeout=20.0,
        confirm=ConfirmMode.NEGOTIATED,
        max_connections=8,
        labels=(("env", "staging"), ("team", "platform")),
    )
    assert shop == OriginConfig(
        name="shop",
        host="origin.example.com",
        port=443,
        sni="www.example.com",
        protocols=CLOUDFRONT_PROTOCOLS,
        interval=3600.0,
        timeout=60.0,
        confirm=ConfirmMode.ALL,
        max_connections=1,
        address="203.0.113.10",
        # defaults' labels merged under the origin's own; values converted to strings
        labels=(("env", "staging"), ("public", "true"), ("team", "web"), ("tier", "1")),
    )
    assert config.defaults == OriginDefaults(
        port=8443,
        protocols=(Protocol.TLSv1_1, Protocol.TLSv1_2),
        interval=120.0,
        timeout=20.0,
        confirm=ConfirmMode.NEGOTIATED,
        max_connections=8,
        labels=(("env", "staging"), ("team", "platform")),
    )
    assert config.max_concurrent_probes == 100
    assert config.cipher_series is False
    assert config.probe_allow == ("*.example.com:443", "*.example.net:*", "[2001:db8::1]:8443")


def test_inherited_timeout_is_capped_at_the_interval() -> None:
    config = load_config(CONFIGS / "good" / "inherited_timeout.yml")
    assert config.defaults.timeout == 5.0
    timeouts = {o.name: (o.interval, o.timeout) for o in config.origins}
    assert timeouts == {"inherits": (5.0, 5.0), "short": (2.0, 2.0), "explicit": (60.0, 30.0)}


def test_explicit_timeout_must_fit_the_interval() -> None:
    # defaults.timeout is explicit, but the origin inherits it: capped, no error
    config = parse("defaults: {timeout: 30s}\norigins: [{host: a.example.com, interval: 20s}]")
    assert config.origins[0].timeout == 20.0
    error = error_of("origins: [{host: a.example.com, interval: 20s, timeout: 21s}]")
    assert str(error) == "conf.yml: origins[0].timeout: must not exceed the interval (20s), got 21s"


def test_ca_file_null_in_an_origin_overrides_the_default(tmp_path: Path) -> None:
    (tmp_path / "roots.pem").write_text("roots\n")
    config = parse(
        "defaults: {ca_file: roots.pem}\n"
        "origins: [{host: a.example.com}, {host: b.example.com, ca_file: null}]",
        base_dir=tmp_path,
    )
    assert config.defaults.ca_file == str(tmp_path / "roots.pem")
    assert [o.ca_file for o in config.origins] == [str(tmp_path / "roots.pem"), None]


def test_protocols_are_normalised() -> None:
    config = load_config(CONFIGS / "good" / "protocols_normalised.yml")
    assert config.origins[0].protocols == (
        Protocol.SSLv3,
        Protocol.TLSv1,
        Protocol.TLSv1_2,
    )


def test_label_values_become_strings() -> None:
    config = parse(
        "origins: [{host: a.example.com, labels: {a: 1, b: 2.5, c: true, d: false, e: x}}]"
    )
    assert config.origins[0].labels == (
        ("a", "1"),
        ("b", "2.5"),
        ("c", "true"),
        ("d", "false"),
        ("e", "x"),
    )


@pytest.mark.parametrize("name", sorted(RESERVED_LABELS))
def test_every_reserved_label_is_rejected(name: str) -> None:
    error = error_of(f"defaults: {{labels: {{{name}: x}}}}")
    assert error.key_path == f"defaults.labels.{name}"
    assert f"{name!r} is a reserved label name" in error.problem


# --- resolve -----------------------------------------------------------------------------------


def test_resolve_maps_hosts_case_insensitively() -> None:
    config = load_config(CONFIGS / "good" / "full.yml")
    assert config.resolve == (
        ("origin.example.com", "203.0.113.10"),
        ("v6.example.com", "2001:db8::10"),  # brackets stripped
    )
    assert config.address_for("ORIGIN.example.com") == "203.0.113.10"
    assert config.address_for("other.example.com") is None
    assert config.origins[0].target().address == "203.0.113.10"
    assert config.origins[1].address is None


def test_resolve_applies_to_every_origin_of_the_host() -> None:
    config = load_config(CONFIGS / "good" / "ipv6.yml")
    addresses = {o.name: o.address for o in config.origins}
    assert addresses == {
        "[2001:db8::1]:443": None,
        "[2001:db8::2]:8443": None,
        "dual.example.com:443": "2001:db8::20",
        "192.0.2.7:443": None,
    }


# --- names ------------------------------------------------------------------------------------


def test_default_names_are_host_port_with_ipv6_in_brackets() -> None:
    config = load_config(CONFIGS / "good" / "ipv6.yml")
    assert [(o.name, o.host, o.port) for o in config.origins] == [
        ("[2001:db8::1]:443", "2001:db8::1", 443),
        ("[2001:db8::2]:8443", "2001:db8::2", 8443),
        ("dual.example.com:443", "dual.example.com", 443),
        ("192.0.2.7:443", "192.0.2.7", 443),
    ]
    assert config.origins[0].target().display == "[2001:db8::1]:443"


def test_default_name_uses_the_defaults_port() -> None:
    config = parse("defaults: {port: 8443}\norigins: [{host: a.example.com}]")
    assert config.origins[0].name == "a.example.com:8443"


def test_duplicate_names_name_both_origins() -> None:
    error = error_of(
        "origins:\n"
        "  - {name: shop, host: a.example.com}\n"
        "  - {host: b.example.com}\n"
        "  - {name: shop, host: c.example.com}\n"
    )
    assert error.key_path == "origins[2].name"
    assert error.problem == "duplicate origin name 'shop' (origins[0] has the same name)"


def test_same_host_twice_needs_names() -> None:
    config = parse(
        "origins:\n"
        "  - {name: apex, host: a.example.com}\n"
        "  - {name: www, host: a.example.com, sni: www.example.com}\n"
    )
    assert [o.name for o in config.origins] == ["apex", "www"]
    assert config.origin("www") == config.origins[1]
    assert config.origin("nope") is None


# --- allows_probe ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet() -> ExporterConfig:
    return parse(
        "probe_allow: ['*.example.net:443', 'edge-?.example.org:*', '[2001:db8::1]:8443',"
        " '192.0.2.*:443']\n"
        "origins:\n"
        "  - {name: shop, host: Origin.Example.com}\n"
        "  - {host: api.example.com, port: 8443}\n"
    )


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("origin.example.com", 443, True),  # configured, case-insensitive
        ("ORIGIN.EXAMPLE.COM", 443, True),
        ("origin.example.com", 8443, False),  # configured host, other port
        ("api.example.com", 8443, True),
        ("api.example.com", 443, False),
        ("shop", 443, True),  # by name (a bare name parses to port 443)
        ("shop", 8443, False),
        ("api.example.com:8443", 8443, False),
        ("www.example.net", 443, True),  # probe_allow
        ("a.b.example.net", 443, True),  # * spans dots
        ("WWW.Example.NET", 443, True),
        ("www.example.net", 8443, False),
        ("example.net", 443, False),
        ("edge-1.example.org", 9000, True),  # ? is one character
        ("edge-12.example.org", 9000, False),
        ("2001:db8::1", 8443, True),  # brackets are literal, not a character class
        ("[2001:db8::1]", 8443, True),
        ("2001:db8::1", 443, False),
        ("192.0.2.10", 443, True),
        ("198.51.100.1", 443, False),
        ("www.example.net", 0, False),
        ("www.example.net", 70000, False),
        ("", 443, False),
    ],
)
def test_allows_probe(fleet: ExporterConfig, host: str, port: int, allowed: bool) -> None:
    assert fleet.allows_probe(host, port) is allowed


def test_allows_probe_by_host_port_name() -> None:
    config = parse("origins: [{host: a.example.com, port: 8443}]")
    assert config.allows_probe("a.example.com:8443", 8443) is False
    config = parse("origins: [{name: 'a:8443', host: a.example.com}]")
    assert config.allows_probe("a", 8443) is True


def test_without_probe_allow_only_configured_origins() -> None:
    empty = default_config()
    assert empty.source == DEFAULT_SOURCE == "<default>"
    assert empty.origins == ()
    assert not empty.allows_probe("example.com", 443)
    assert parse("probe_allow: ['*']").allows_probe("anything.example", 1)


# --- ca_file ----------------------------------------------------------------------------------


def test_relative_ca_file_is_resolved_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc"
    (config_dir / "pki").mkdir(parents=True)
    (config_dir / "pki" / "roots.pem").write_text("roots\n")
    (config_dir / "conf.yml").write_text(
        "defaults: {ca_file: pki/roots.pem}\n"
        "origins:\n"
        "  - host: a.example.com\n"
        "  - host: b.example.com\n"
        "    ca_file: ./pki/../pki/roots.pem\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    expected = str(config_dir / "pki" / "roots.pem")
    config = load_config(Path("../etc/conf.yml"))
    assert config.defaults.ca_file == expected
    assert [o.ca_file for o in config.origins] == [expected, expected]
    assert config.origins[0].target().ca_file == expected
    # From text: base_dir, else the current directory.
    text = "defaults: {ca_file: pki/roots.pem}"
    assert parse(text, base_dir=config_dir).defaults.ca_file == expected
    monkeypatch.chdir(config_dir)
    assert parse(text).defaults.ca_file == expected
    monkeypatch.chdir(elsewhere)
    error = error_of(text)
    assert error.key_path == "defaults.ca_file"
    assert error.problem == (
        f"cannot read 'pki/roots.pem' ({elsewhere / 'pki' / 'roots.pem'}): "
        "No such file or directory"
    )


def test_absolute_ca_file(tmp_path: Path) -> None:
    roots = tmp_path / "roots.pem"
    roots.write_text("roots\n")
    config = parse(f"origins: [{{host: a.example.com, ca_file: '{roots}'}}]")
    assert config.origins[0].ca_file == str(roots)
    roots.unlink()
    error = error_of(f"origins: [{{host: a.example.com, ca_file: '{roots}'}}]")
    assert str(error) == (
        f"conf.yml: origins[0].ca_file: cannot read '{roots}': No such file or directory"
    )


# --- probe target and options -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "timeout", "deadline"),
    [
        (60.0, 10.0, 60.0),  # 6 x 10s, within the interval
        (300.0, 10.0, 60.0),
        (300.0, 2.0, 30.0),  # at least 30s
        (20.0, 2.0, 20.0),  # never longer than the interval
        (5.0, 5.0, 5.0),
        (3600.0, 60.0, 360.0),
    ],
)
def test_probe_deadline(interval: float, timeout: float, deadline: float) -> None:
    assert probe_deadline(interval, timeout) == deadline
    origin = OriginConfig(name="a", host="a.example.com", interval=interval, timeout=timeout)
    assert origin.deadline == deadline
    assert origin.options().deadline == deadline
    assert OriginDefaults(interval=interval, timeout=timeout).options().deadline == deadline


def test_target_and_options() -> None:
    config = load_config(CONFIGS / "good" / "full.yml")
    shop = config.origins[0]
    assert shop.target() == ProbeTarget(
        host="origin.example.com",
        port=443,
        sni="www.example.com",
        protocols=CLOUDFRONT_PROTOCOLS,
        ca_file=None,
        address="203.0.113.10",
    )
    assert shop.options() == ProbeOptions(
        timeout=60.0, deadline=360.0, max_connections=1, confirm=ConfirmMode.ALL
    )


# --- files and YAML ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# only comments\n", "---\n", "origins: []\n", "origins:\n"])
def test_empty_configurations_are_valid(text: str) -> None:
    config = parse(text)
    assert config == ExporterConfig(source="conf.yml")
    assert config.origins == ()


def test_parsing_twice_gives_equal_configurations() -> None:
    text = EXAMPLE.read_text()
    first, second = parse(text), parse(text)
    assert first == second
    assert hash(first.origins) == hash(second.origins)  # the scheduler compares origins


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: (file): cannot read: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r": \(file\): cannot read: Is a directory$"):
        load_config(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"origins:\n  - host: caf\xe9.example.com\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key_path == "(file)"
    assert info.value.problem == "not valid UTF-8 (byte 0xe9 at offset 22)"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yml"
    path.write_bytes(b"\xef\xbb\xbforigins: [{host: a.example.com}]\n")
    assert len(load_config(path).origins) == 1


def test_yaml_errors_give_line_and_column() -> None:
    error = error_of("origins:\n  - host: a.example.com\n   port: 443\n")
    assert error.key_path.startswith("line 3, column ")
    assert str(error).startswith("conf.yml: line 3, column ")
    error = error_of("origins:\n  - host: a\n\tport: 1\n")
    assert error.key_path == "line 3, column 1"
    assert "found character '\\t' that cannot start any token" in error.problem
    error = error_of("a: 1\n\x07\n")
    assert str(error) == (
        "conf.yml: line 2, column 1: unacceptable character #x0007: "
        "special characters are not allowed"
    )


def test_one_document_only() -> None:
    error = error_of("origins: []\n---\norigins: []\n")
    assert error.key_path == "line 2, column 1"
    assert "expected a single document in the stream" in error.problem


def test_top_level_must_be_a_mapping() -> None:
    assert str(error_of("[1, 2]")) == "conf.yml: (top level): must be a mapping"


def test_config_error_is_a_value_error() -> None:
    error = ConfigError("conf.yml", "origins[2].port", "must be between 1 and 65535, got 70000")
    assert isinstance(error, ValueError)
    assert str(error) == "conf.yml: origins[2].port: must be between 1 and 65535, got 70000"
    assert (error.file, error.key_path, error.problem) == (
        "conf.yml",
        "origins[2].port",
        "must be between 1 and 65535, got 70000",
    )


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("resolve: {origin.example.com: x}", 'resolve["origin.example.com"]'),
        ("resolve: {'[2001:db8::1]': x}", 'resolve["[2001:db8::1]"]'),
        ("origins: [{host: a, labels: {team: [1]}}]", "origins[0].labels.team"),
        ("origins: [{host: a, labels: {é: x}}]", 'origins[0].labels["é"]'),
        ("origins: [{host: a, 5: x}]", "origins[0][5]"),
        ("origins: [{host: a, true: x}]", "origins[0][true]"),
        ("x-anchors: {}", '["x-anchors"]'),
    ],
)
def test_key_paths(text: str, key_path: str) -> None:
    assert error_of(text).key_path == key_path


def test_unknown_key_without_close_match_lists_the_keys() -> None:
    error = error_of("origins: [{host: a, colour: blue}]")
    assert error.problem == f"unknown key; expected one of: {', '.join(ORIGIN_KEYS)}"


# --- one source: the settings fields -----------------------------------------------------------


def test_the_schema_is_what_the_settings_fields_generate(schema: dict[str, Any]) -> None:
    """config/schema.json's origin and defaults parts equal `settings_schema()`; after changing
    a field, regenerate them with `SCHEMA_UPDATE=1 python3 -m pytest tests/test_config.py -k
    generate` and review the diff."""
    generated = settings_schema()
    if os.environ.get("SCHEMA_UPDATE") == "1":
        schema["$defs"]["origin"]["properties"] = generated["origin"]
        schema["properties"]["defaults"]["properties"] = generated["defaults"]
        schema["$defs"].update(generated["defs"])
        SCHEMA.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    assert schema["$defs"]["origin"]["properties"] == generated["origin"]
    assert schema["properties"]["defaults"]["properties"] == generated["defaults"]
    for key, node in generated["defs"].items():
        assert schema["$defs"][key] == node, key


def test_keys_come_from_the_fields() -> None:
    shared = tuple(f.name for f in fields(OriginSettings))
    assert shared == DEFAULTS_KEYS
    assert ("name", "host", "sni", *shared) == ORIGIN_KEYS
    assert PER_ORIGIN_ONLY_KEYS == ("name", "host", "sni")
    assert OriginDefaults is OriginSettings
    for key in ORIGIN_KEYS:
        assert isinstance(ORIGIN_SETTINGS[key], Setting)
    assert set(settings_dict(OriginSettings())) == set(DEFAULTS_KEYS)


def test_new_keys_default_once() -> None:
    origin = parse("origins: [{host: a.example.com}]").origins[0]
    assert origin.cloudfront_policy is CloudFrontPolicy.UPSTREAM
    assert origin.ip_address_type is IpAddressType.IPV4
    assert origin.max_addresses == 8
    assert origin.request == OriginRequest(method="GET", path="/", headers=())
    assert (origin.origin_read_timeout, origin.connection_timeout) == (30.0, 10.0)
    assert (origin.connection_attempts, origin.origin_keepalive_timeout) == (3, 5.0)
    assert origin.client_certificate is None
    assert origin.dns == DnsConfig(servers=(), timeout=2.0)
    # The engine's own defaults are the same values: one source.
    assert origin.options() == replace(ProbeOptions(), deadline=60.0)
    assert origin.target() == ProbeTarget(host="a.example.com", protocols=DEFAULT_PROTOCOLS)


NEW_KEYS = """
defaults:
  cloudfront_policy: CloudFront-Upstream-2025
  ip_address_type: dualstack
  max_addresses: 4
  request: {method: HEAD, path: /health, headers: {X-Probe: origin-tls-exporter, X-N: 1}}
  origin_read_timeout: 1m
  connection_attempts: 2
  connection_timeout: 5
  origin_keepalive_timeout: 2m
dns: {servers: [127.0.0.1, "[::1]:5353"], timeout: 500ms}
origins:
  - host: a.example.com
  - host: b.example.com
    cloudfront_policy: CloudFront-Upstream-2025-PQ
    ip_address_type: ipv6
    max_addresses: 64
    request: false
    origin_read_timeout: 120
    connection_attempts: 1
    connection_timeout: 1s
    origin_keepalive_timeout: 1s
"""


def test_new_keys_are_parsed_inherited_and_reach_the_engine() -> None:
    config = parse(NEW_KEYS)
    a, b = config.origins
    assert a.cloudfront_policy is CloudFrontPolicy.UPSTREAM_2025
    assert (a.ip_address_type, a.max_addresses) == (IpAddressType.DUALSTACK, 4)
    assert a.request == OriginRequest(
        method="HEAD", path="/health", headers=(("X-Probe", "origin-tls-exporter"), ("X-N", "1"))
    )
    assert (a.origin_read_timeout, a.connection_attempts) == (60.0, 2)
    assert (a.connection_timeout, a.origin_keepalive_timeout) == (5.0, 120.0)
    assert b.cloudfront_policy is CloudFrontPolicy.UPSTREAM_2025_PQ
    assert (b.ip_address_type, b.max_addresses, b.request) == (IpAddressType.IPV6, 64, None)
    assert (b.origin_read_timeout, b.connection_attempts) == (120.0, 1)
    assert (b.connection_timeout, b.origin_keepalive_timeout) == (1.0, 1.0)
    servers = (DnsServer("127.0.0.1", 53), DnsServer("::1", 5353))
    assert config.dns == DnsConfig(servers=servers, timeout=0.5)
    options, target = b.options(), b.target()
    assert (options.dns_servers, options.dns_timeout) == (servers, 0.5)
    assert (options.connection_attempts, options.connection_timeout) == (1, 1.0)
    assert (options.ip_address_type, options.max_addresses) == (IpAddressType.IPV6, 64)
    assert (target.cloudfront_policy, target.request) == (CloudFrontPolicy.UPSTREAM_2025_PQ, None)


def test_config_dict_shows_every_key() -> None:
    shown = config_dict(parse(NEW_KEYS))
    a, b = shown["origins"]
    assert list(a) == [*ORIGIN_KEYS, "address"]
    assert a["request"] == {
        "method": "HEAD",
        "path": "/health",
        "headers": {"X-Probe": "origin-tls-exporter", "X-N": "1"},
    }
    assert (b["request"], b["cloudfront_policy"], b["origin_read_timeout"]) == (
        False,
        "CloudFront-Upstream-2025-PQ",
        "2m",
    )
    assert shown["dns"] == {"servers": ["127.0.0.1:53", "[::1]:5353"], "timeout": "500ms"}
    assert shown["defaults"]["connection_timeout"] == "5s"
    assert set(shown["defaults"]) == set(DEFAULTS_KEYS)
    yaml.safe_dump(shown)  # what /config serves


def client_pair(directory: Path) -> tuple[Issued, Path, Path]:
    issued = issue("client", client=True, key_kind="p256")
    (directory / "client.pem").write_bytes(issued.pem)
    (directory / "client.key").write_bytes(issued.key_pem)
    return issued, directory / "client.pem", directory / "client.key"


def test_client_certificate_is_relative_to_the_config_file(tmp_path: Path) -> None:
    _, cert, key = client_pair(tmp_path)
    path = tmp_path / "conf.yml"
    path.write_text(
        "defaults: {client_certificate: {cert_file: client.pem, key_file: client.key}}\n"
        "origins: [{host: a.example.com}, {host: b.example.com, client_certificate: null}]\n"
    )
    a, b = load_config(path).origins
    assert a.client_certificate == ClientCertificate(cert_file=str(cert), key_file=str(key))
    assert a.target().client_certificate == a.client_certificate
    assert b.client_certificate is None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ("{cert_file: client.pem}", "client_certificate: missing 'key_file': cert_file and key"),
        ("{key_file: client.key}", "client_certificate: missing 'cert_file'"),
        ("{cert_file: client.pem, key_file: client.key, password: x}", "password: unknown key"),
        ("{cert_file: none.pem, key_file: client.key}", "cert_file: cannot read 'none.pem'"),
        ("{cert_file: client.key, key_file: client.key}", "cert_file: is not a PEM certificate"),
        ("{cert_file: client.pem, key_file: client.pem}", "key_file: is not a PEM private key"),
        ("{cert_file: client.pem, key_file: other.key}", "key_file: is not the key of"),
        ("{cert_file: client.pem, key_file: locked.key}", "key_file: is an encrypted private key"),
        ("client.pem", "client_certificate: must be a mapping, got string"),
    ],
)
def test_client_certificate_errors(tmp_path: Path, files: str, message: str) -> None:
    issued, _, _ = client_pair(tmp_path)
    (tmp_path / "other.key").write_bytes(issue("other", key_kind="p256").key_pem)
    locked = issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (tmp_path / "locked.key").write_bytes(locked)
    error = error_of(
        f"origins: [{{host: a.example.com, client_certificate: {files}}}]", base_dir=tmp_path
    )
    assert error.key_path.startswith("origins[0].client_certificate")
    assert message in str(error)


@pytest.mark.parametrize(
    ("text", "key_path", "problem"),
    [
        (
            "defaults: {interval: 1000000000000000000000y}",
            "defaults.interval",
            "must be at most 1d, got 1000000000000000000000y",
        ),
        ("defaults: {interval: 1.0e+21}", "defaults.interval", "must be at most 1d, got 1e+21"),
        ("defaults: {interval: 25h}", "defaults.interval", "must be at most 1d, got 25h"),
        ("defaults: {timeout: 50ms}", "defaults.timeout", "must be at least 100ms, got 50ms"),
        ("defaults: {timeout: 1y}", "defaults.timeout", "must be at most 10m, got 1y"),
        (
            "discovery: {cloudfront: {refresh_interval: 2d}}",
            "discovery.cloudfront.refresh_interval",
            "must be at most 1d, got 2d",
        ),
        ("dns: {timeout: 31s}", "dns.timeout", "must be at most 30s, got 31s"),
        ("dns: {timeout: 10ms}", "dns.timeout", "must be at least 100ms, got 10ms"),
        ("dns: {servers: [dns.google]}", "dns.servers[0]", "must be IP or IP:PORT"),
        ("dns: {servers: 127.0.0.1}", "dns.servers", "must be a list, got string"),
        ("dns: {server: [127.0.0.1]}", "dns.server", "unknown key; did you mean 'servers'?"),
        (
            "defaults: {cloudfront_policy: TLSv1.2_2021}",
            "defaults.cloudfront_policy",
            "must be one of 'CloudFront-Upstream', 'CloudFront-Upstream-2025', "
            "'CloudFront-Upstream-2025-PQ', got 'TLSv1.2_2021'",
        ),
        (
            "defaults: {ip_address_type: IPv4}",
            "defaults.ip_address_type",
            "got 'IPv4'; did you mean 'ipv4'?",
        ),
        (
            "defaults: {max_addresses: 0}",
            "defaults.max_addresses",
            "must be between 1 and 64, got 0",
        ),
        ("defaults: {max_addresses: 65}", "defaults.max_addresses", "must be between 1 and 64"),
        (
            "defaults: {connection_attempts: 4}",
            "defaults.connection_attempts",
            "must be between 1 and 3, got 4",
        ),
        (
            "defaults: {connection_timeout: 11s}",
            "defaults.connection_timeout",
            "must be at most 10s, got 11s",
        ),
        (
            "defaults: {connection_timeout: 1500ms}",
            "defaults.connection_timeout",
            "must be a whole number of seconds",
        ),
        (
            "defaults: {origin_read_timeout: 0.5}",
            "defaults.origin_read_timeout",
            "must be at least 1s, got 0.5",
        ),
        (
            "defaults: {origin_read_timeout: 3m}",
            "defaults.origin_read_timeout",
            "must be at most 2m, got 3m",
        ),
        (
            "defaults: {origin_keepalive_timeout: 121}",
            "defaults.origin_keepalive_timeout",
            "must be at most 2m, got 121",
        ),
        (
            "defaults: {request: {method: 'GET /'}}",
            "defaults.request.method",
            "must be an HTTP method (a token",
        ),
        (
            'defaults: {request: {method: "GET\\r\\n"}}',
            "defaults.request.method",
            "must not contain CR, LF or NUL",
        ),
        ("defaults: {request: {path: health}}", "defaults.request.path", "must start with '/'"),
        (
            'defaults: {request: {path: "/\\nX: y"}}',
            "defaults.request.path",
            "must not contain CR, LF or NUL",
        ),
        ("defaults: {request: {path: /a b}}", "defaults.request.path", "must not contain spaces"),
        (
            "defaults: {request: {headers: {'X Y': 1}}}",
            'defaults.request.headers["X Y"]',
            "must be an HTTP header name",
        ),
        (
            'defaults: {request: {headers: {X-A: "a\\r\\nX-B: b"}}}',
            'defaults.request.headers["X-A"]',
            "must not contain CR, LF or NUL",
        ),
        (
            "defaults: {request: {headers: {Host: x}}}",
            "defaults.request.headers.Host",
            "'Host' is set by CloudFront itself",
        ),
        (
            "defaults: {request: {headers: {x-a: 1, X-A: 2}}}",
            'defaults.request.headers["X-A"]',
            "duplicate header 'X-A'",
        ),
        (
            "defaults: {request: {headers: {X-A: [1]}}}",
            'defaults.request.headers["X-A"]',
            "must be a string, got list",
        ),
        ("defaults: {request: {verb: GET}}", "defaults.request.verb", "unknown key"),
        ("defaults: {request: GET /}", "defaults.request", "must be a mapping, got string"),
        ("origins: [{host: 'bad host!'}]", "origins[0].host", "must be a host name or IP"),
        ("origins: [{host: a..b}]", "origins[0].host", "label '' is not 1-63"),
        ("origins: [{host: -a.test}]", "origins[0].host", "label '-a' is not 1-63"),
        (f"origins: [{{host: {'a' * 64}.test}}]", "origins[0].host", "is not 1-63"),
        (f"origins: [{{host: {'a.' * 130}test}}]", "origins[0].host", "at most 253 allowed"),
        ("origins: [{host: a.test, sni: 'bad sni!'}]", "origins[0].sni", "must be a host name"),
        ("origins: [{host: a.test, sni: a!.test}]", "origins[0].sni", "label 'a!' is not"),
    ],
)
def test_new_key_errors_name_the_key_path(text: str, key_path: str, problem: str) -> None:
    error = error_of(text)
    assert error.key_path == key_path
    assert problem in error.problem


@pytest.mark.parametrize(
    "host",
    [
        "a.example.com",
        "a-b.example",
        "_dmarc.example.com",
        "example.com.",
        "bücher.example",
        "127.0.0.1",
        "2001:db8::1",
        "localhost",
    ],
)
def test_good_host_names(host: str) -> None:
    assert parse(f"origins: [{{host: '{host}'}}]").origins[0].host == host


def test_request_true_and_null_mean_get_slash() -> None:
    config = parse("origins: [{host: a.test, request: true}, {host: b.test, request: }]")
    assert [o.request for o in config.origins] == [OriginRequest(), OriginRequest()]
