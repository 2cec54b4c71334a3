"""Command line: `check` answers one question in a terminal; `serve` and `demo` run the daemon."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .address import DEFAULT_LISTEN_ADDRESS, DEFAULT_PORT, parse_listen_address
from .engine.catalogue import CLOUDFRONT_PROTOCOLS, Protocol, parse_policy
from .engine.probe import Engine
from .engine.target import ConfirmMode, ProbeOptions, ProbeTarget
from .engine.verdict import FailureReason
from .report import render_text, result_dict

EXIT_COMPATIBLE = 0
EXIT_INCOMPATIBLE = 1
EXIT_USAGE = 2

_UNREACHABLE = {FailureReason.DNS_FAILED, FailureReason.CONNECT_FAILED, FailureReason.TIMEOUT}


def parse_protocols(text: str) -> tuple[Protocol, ...]:
    try:
        return parse_policy(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="origin-tls-exporter",
        description="Tell, before CloudFront does, whether it can reach your origins over HTTPS.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="probe one origin as CloudFront would and explain the verdict",
        description=(
            "Probe one origin as CloudFront would. Exit 0: CloudFront can connect; 1: it cannot; "
            "2: usage error or the origin could not be reached (DNS, TCP, timeout)."
        ),
    )
    check.add_argument("target", metavar="HOST[:PORT]", help="origin domain name (port 443)")
    check.add_argument(
        "--sni", metavar="NAME", help="forwarded Host header / alias CloudFront sends as SNI"
    )
    check.add_argument(
        "--protocols",
        type=parse_protocols,
        default=CLOUDFRONT_PROTOCOLS,
        metavar="LIST",
        help="origin protocol policy, e.g. TLSv1.1,TLSv1.2 (default: SSLv3,TLSv1,TLSv1.1,TLSv1.2)",
    )
    check.add_argument(
        "--ca-file", metavar="FILE", help="trust these PEM roots instead of Mozilla's"
    )
    check.add_argument(
        "--timeout", type=_positive, default=10.0, metavar="S", help="per connection (10)"
    )
    check.add_argument(
        "--resolve", metavar="ADDRESS", help="connect to this address instead of resolving HOST"
    )
    check.add_argument(
        "--confirm",
        choices=[m.value for m in ConfirmMode],
        default=ConfirmMode.ALL.value,
        help="complete a handshake for every picked suite (all) or only CloudFront's (negotiated)",
    )
    check.add_argument("--output", choices=["text", "json"], default="text")
    check.set_defaults(handler=_check)

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


def _check(args: argparse.Namespace) -> int:
    try:
        target = ProbeTarget.parse(
            args.target,
            sni=args.sni,
            protocols=args.protocols,
            ca_file=args.ca_file,
            address=args.resolve,
        )
    except ValueError as exc:
        print(f"origin-tls-exporter check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    options = ProbeOptions(timeout=args.timeout, deadline=None, confirm=ConfirmMode(args.confirm))
    engine = Engine()
    try:
        result = asyncio.run(engine.probe(target, options))
    except ValueError as exc:  # a bad ca_file
        print(f"origin-tls-exporter check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output == "json":
        json.dump(result_dict(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result, dt.datetime.now(dt.UTC)))
    if _UNREACHABLE.intersection(result.reasons):
        return EXIT_USAGE
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
    try:
        parse_listen_address(text)
    except ValueError as exc:
        return str(exc)
    return None


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
    logs.setup(_log_level(args.log_level), args.log_format)
    daemon = Daemon(Path(args.config_file), args.listen_address, _web_config_path(args), shard)
    return asyncio.run(daemon.run())


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
    if problem:
        print(f"origin-tls-exporter demo: {problem}", file=sys.stderr)
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
            config_path, args.listen_address, _web_config_path(args), on_listening=announce
        )
        return asyncio.run(daemon.run())


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
