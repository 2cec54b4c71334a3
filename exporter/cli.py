"""Command line: `check` answers one question in a terminal; `serve` and `demo` run the daemon."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import socket
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import __version__, loop
from .address import DEFAULT_LISTEN_ADDRESS, DEFAULT_PORT, parse_listen_address
from .config import MAX_INTERVAL, ConfigError, OriginConfig, OriginSettings, parse_origin
from .engine.catalogue import CLOUDFRONT_PROTOCOLS
from .engine.net import is_ip_literal
from .engine.probe import Engine
from .engine.target import CloudFrontPolicy, ConfirmMode, IpAddressType, ProbeTarget
from .report import render_text, result_dict

EXIT_COMPATIBLE = 0
EXIT_INCOMPATIBLE = 1  # an unreachable origin too: CloudFront answers 502 or 504 then
EXIT_USAGE = 2

CHECK_DEFAULTS = OriginSettings(protocols=CLOUDFRONT_PROTOCOLS, interval=MAX_INTERVAL)
"""`check` offers every protocol unless told, and has no interval: the largest one lets any
timeout within the configuration's bounds through."""

#: configuration key path (prefix) -> the `check` option that sets it, longest first
CHECK_OPTIONS: tuple[tuple[str, str], ...] = (
    ("origin.client_certificate.cert_file", "--client-cert"),
    ("origin.client_certificate.key_file", "--client-key"),
    ("origin.client_certificate", "--client-cert"),
    ("origin.request.path", "--path"),
    ("origin.cloudfront_policy", "--cloudfront-policy"),
    ("origin.origin_read_timeout", "--origin-read-timeout"),
    ("origin.connection_attempts", "--connection-attempts"),
    ("origin.connection_timeout", "--connection-timeout"),
    ("origin.ip_address_type", "--ip-address-type"),
    ("origin.max_addresses", "--max-addresses"),
    ("origin.protocols", "--protocols"),
    ("origin.ca_file", "--ca-file"),
    ("origin.timeout", "--timeout"),
    ("origin.confirm", "--confirm"),
    ("origin.host", "HOST"),
    ("origin.sni", "--sni"),
    ("resolve", "--resolve"),
    ("dns.servers", "--dns-server"),
)
_INTEGER = re.compile(r"[-+]?[0-9]+\Z")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="origin-tls-exporter",
        description="Tell, before CloudFront does, whether it can reach your origins over HTTPS.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _check_parser(commands)

    serve = commands.add_parser(
        "serve",
        help="run the exporter: probe configured origins on a schedule, serve /metrics",
    )
    _config_file(serve)
    _daemon_flags(serve, DEFAULT_LISTEN_ADDRESS)
    serve.add_argument(
        "--shard.index",
        dest="shard_index",
        type=int,
        default=0,
        metavar="I",
        help="this replica's shard, 0..count-1 (0)",
    )
    serve.add_argument(
        "--shard.count",
        dest="shard_count",
        type=int,
        default=1,
        metavar="N",
        help="replicas sharing the configured origins by a stable hash of their name (1)",
    )
    serve.set_defaults(handler=_serve)

    validate = commands.add_parser(
        "validate", help="check a configuration file; exit 0 if valid, 2 with the errors if not"
    )
    _config_file(validate)
    validate.set_defaults(handler=_validate)

    demo = commands.add_parser(
        "demo",
        help="start local origins showing each cause of CloudFront 502s and serve their metrics",
    )
    _daemon_flags(demo, f"127.0.0.1:{DEFAULT_PORT}")
    demo.add_argument("--interval", default="15s", metavar="DURATION", help="probe interval (15s)")
    demo.set_defaults(handler=_demo)

    return parser


def _check_parser(commands: Any) -> None:
    check = commands.add_parser(
        "check",
        help="probe one origin as CloudFront would and explain the verdict",
        description=(
            "Probe one origin as CloudFront would. Every option is checked by the configuration "
            "file's rules. Exit 0: CloudFront can connect; 1: it cannot (an unreachable origin "
            "too: CloudFront answers 502 or 504); 2: usage error."
        ),
    )
    check.add_argument("target", metavar="HOST[:PORT]", help="origin domain name (port 443)")
    option = check.add_argument
    option("--sni", metavar="NAME", help="forwarded Host header / alias CloudFront sends as SNI")
    option(
        "--protocols",
        metavar="LIST",
        help="origin protocol policy, e.g. TLSv1.1,TLSv1.2 (default: SSLv3,TLSv1,TLSv1.1,TLSv1.2)",
    )
    option("--ca-file", metavar="FILE", help="trust these PEM roots instead of Mozilla's")
    option("--timeout", metavar="DURATION", help="per connection, 100ms..10m (10s)")
    option("--resolve", metavar="ADDRESS", help="connect to this IP address instead of resolving")
    option(
        "--dns-server",
        action="append",
        metavar="IP[:PORT]",
        help="resolve HOST with this server (repeatable; IPv6 as [ADDRESS]:PORT)",
    )
    option(
        "--confirm",
        choices=[m.value for m in ConfirmMode],
        help="complete a handshake for every picked suite (all) or only CloudFront's (negotiated)",
    )
    option("--cloudfront-policy", metavar="POLICY", help=_choices(CloudFrontPolicy))
    option("--client-cert", metavar="FILE", help="PEM certificate to present (origin mTLS)")
    option("--client-key", metavar="FILE", help="its PEM private key")
    option("--path", metavar="PATH", help="the HTTP request's path after the handshake (/)")
    option("--origin-read-timeout", metavar="DURATION", help="OriginReadTimeout, 1s..120s (30s)")
    option("--connection-attempts", metavar="N", help="ConnectionAttempts, 1..3 (3)")
    option("--connection-timeout", metavar="DURATION", help="ConnectionTimeout, 1s..10s (10s)")
    option("--ip-address-type", metavar="TYPE", help=_choices(IpAddressType))
    option("--max-addresses", metavar="N", help="addresses of HOST probed, 1..64 (8)")
    check.add_argument(
        "--keepalive-check",
        action="store_true",
        help="watch the idle connection for the whole OriginKeepaliveTimeout (5s) after the "
        "answer, not only while the probe runs",
    )
    option("--output", choices=["text", "json"], default="text")
    check.set_defaults(handler=_check)


def _choices(kind: Any) -> str:
    return "one of " + ", ".join(member.value for member in kind) + f" ({next(iter(kind)).value})"


def check_origin(args: argparse.Namespace) -> OriginConfig:
    """The origin `check` probes, built by the configuration's rules (see `parse_origin`).

    Raises ValueError naming the option (`--timeout: must be at most 10m, got 1h`).
    """
    target = ProbeTarget.parse(args.target)
    raw: dict[str, Any] = {"host": target.host, "port": target.port}
    simple = {
        "sni": args.sni,
        "ca_file": args.ca_file,
        "timeout": args.timeout,
        "confirm": args.confirm,
        "cloudfront_policy": args.cloudfront_policy,
        "origin_read_timeout": args.origin_read_timeout,
        "connection_attempts": _number(args.connection_attempts),
        "connection_timeout": args.connection_timeout,
        "ip_address_type": args.ip_address_type,
        "max_addresses": _number(args.max_addresses),
    }
    raw.update({key: value for key, value in simple.items() if value is not None})
    if args.protocols is not None:
        raw["protocols"] = [item.strip() for item in args.protocols.split(",")]
    if args.path is not None:
        raw["request"] = {"path": args.path}
    if (args.client_cert is None) != (args.client_key is None):
        given, other = ("--client-cert", "--client-key")[:: 1 if args.client_cert else -1]
        raise ValueError(f"{other}: required with {given} (the certificate and its key)")
    if args.client_cert is not None:
        raw["client_certificate"] = {"cert_file": args.client_cert, "key_file": args.client_key}
    dns = {"servers": args.dns_server} if args.dns_server else None
    try:
        return parse_origin(raw, "check", defaults=CHECK_DEFAULTS, address=args.resolve, dns=dns)
    except ConfigError as exc:
        raise ValueError(f"{_option(exc.key_path)}: {exc.problem}") from None


def _number(text: str | None) -> int | str | None:
    """An integer option as the configuration's integer rule wants it (text if not one)."""
    return int(text) if text is not None and _INTEGER.match(text) else text


def _option(key_path: str) -> str:
    for prefix, option in CHECK_OPTIONS:
        if key_path == prefix or key_path.startswith((prefix + ".", prefix + "[")):
            return option
    return key_path


def _check(args: argparse.Namespace) -> int:
    try:
        origin = check_origin(args)
    except ValueError as exc:
        print(f"origin-tls-exporter check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # A person waits: no overall bound.
    options = replace(origin.options(), deadline=None, keepalive_check=args.keepalive_check)
    try:
        result = loop.run(Engine().probe(origin.target(), options))
    except ValueError as exc:  # a ca_file that holds no certificates
        print(f"origin-tls-exporter check: --ca-file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output == "json":
        json.dump(result_dict(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result, dt.datetime.now(dt.UTC)))
    return EXIT_COMPATIBLE if result.compatible else EXIT_INCOMPATIBLE


def _config_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config.file",
        dest="config_file",
        required=True,
        metavar="PATH",
        help="YAML configuration (see config/example.yml)",
    )


def _daemon_flags(parser: argparse.ArgumentParser, listen: str) -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=listen,
        metavar="HOST:PORT",
        help=f"where to serve /metrics, /probe and the status page ({listen})",
    )
    parser.add_argument(
        "--web.external-url",
        dest="external_url",
        metavar="URL",
        help="the URL people reach the exporter at (links in alerts and pages); "
        "default http://HOSTNAME:PORT/ from the listen address",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config: TLS and basic auth for every endpoint",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=["debug", "info", "warn", "error"],
    )
    parser.add_argument(
        "--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"]
    )


def _validate_listen_address(text: str) -> str | None:
    """What is wrong with `--web.listen-address`, precisely, or None."""
    host, sep, port = text.rpartition(":")
    shown = f"listen address {text!r}"
    if not sep:
        return f"{shown}: expected HOST:PORT or :PORT (no ':PORT')"
    if not port.isdigit():
        return f"{shown}: port {port!r} is not a number"
    if not 0 <= int(port) <= 65535:
        return f"{shown}: port {int(port)} is out of range 0-65535"
    problem = _listen_host_problem(host)
    if problem:
        return f"{shown}: {problem}"
    try:
        parse_listen_address(text)
    except ValueError as exc:
        return str(exc)
    return None


def _listen_host_problem(host: str) -> str | None:
    if not host:
        return None  # every interface
    if host.startswith("[") and host.endswith("]"):
        return None if is_ip_literal(host[1:-1]) else f"{host!r} is not an IPv6 address"
    if ":" in host:
        return f"host {host!r}: put an IPv6 address in brackets, e.g. [::1]:{DEFAULT_PORT}"
    if is_ip_literal(host) or _HOST_NAME.fullmatch(host):
        return None
    return f"host {host!r} is neither an IP address nor a host name"


def _serve(args: argparse.Namespace) -> int:
    from . import logs
    from .daemon import Daemon

    problem = _validate_listen_address(args.listen_address)
    if problem:
        print(f"origin-tls-exporter serve: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from .sharding import Shard

    try:
        shard = Shard(args.shard_index, args.shard_count)
    except ValueError as exc:
        print(f"origin-tls-exporter serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    external_url, problem = _external_url(args.external_url, args.listen_address)
    if problem:
        print(f"origin-tls-exporter serve: {problem}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(_log_level(args.log_level), args.log_format)
    daemon = Daemon(
        Path(args.config_file),
        args.listen_address,
        _web_config_path(args),
        shard,
        external_url=external_url,
    )
    return loop.run(daemon.run())


def _external_url(given: str | None, listen: str) -> tuple[str, str | None]:
    """`--web.external-url` ending in "/", or one made from the listen address; or a problem."""
    if given is None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or socket.gethostname()
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/", None
    parts = urllib.parse.urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "", f"--web.external-url {given!r}: expected an http:// or https:// URL"
    return given if given.endswith("/") else given + "/", None


def _validate(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config

    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.config_file}: valid, {len(config.origins)} origins")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import tempfile

    from . import logs
    from .daemon import Daemon
    from .demo.fleet import DemoFleet

    problem = _validate_listen_address(args.listen_address)
    external_url, bad_url = _external_url(args.external_url, args.listen_address)
    if problem or bad_url:
        print(f"origin-tls-exporter demo: {problem or bad_url}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(_log_level(args.log_level), args.log_format)
    with (
        tempfile.TemporaryDirectory(prefix="origin-tls-exporter-demo-") as workdir,
        DemoFleet(Path(workdir)) as fleet,
    ):
        origins = fleet.origins
        config_path = Path(workdir) / "demo.yml"
        config_path.write_text(fleet.config_yaml(interval=args.interval))

        def announce(url: str) -> None:
            print(f"origin-tls-exporter demo: {len(origins)} local origins on 127.0.0.1:")
            for origin in origins:
                verdict = ", ".join(origin.expected_reasons) or "compatible"
                print(f"  {origin.name:<22} {origin.description} [{verdict}]")
            print(f"Status page: {url}")
            print(f"Metrics:     {url}metrics")
            print(f"Config:      {config_path}")
            print("Stop with Ctrl-C.", flush=True)

        daemon = Daemon(
            config_path,
            args.listen_address,
            _web_config_path(args),
            on_listening=announce,
            external_url=external_url,
        )
        return loop.run(daemon.run())


def _web_config_path(args: argparse.Namespace) -> Path | None:
    return Path(args.web_config_file) if args.web_config_file else None


def _log_level(level: str) -> str:
    return "warning" if level == "warn" else level


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
