"""The demo's origins: one real TLS server per cause of CloudFront 502s, all on 127.0.0.1.

A newcomer should see every verdict the exporter can give without nginx, DNS or the internet.
Each origin is a real server (Python `ssl`, or tlslite-ng for SSLv3/RC4) with certificates from
a throw-away demo CA, and a `*.demo.test` name that the generated config resolves to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter.config import format_duration, parse_duration
from exporter.demo.legacy import LegacyConfig, LegacyTLSServer
from exporter.demo.modern import ModernConfig, ModernTLSServer
from exporter.demo.pki import DAY, DemoPKI, Issued, issue, write_chain
from exporter.demo.running import Running
from exporter.demo.tcp import HOST, ThreadedTCPServer

__all__ = ["DOMAIN", "DemoFleet", "DemoOrigin"]

#: every demo origin is `<name>.demo.test`; `.test` is reserved and never resolves (RFC 6761)
DOMAIN = "demo.test"

HEADER = (
    "# origin-tls-exporter demo: local origins on 127.0.0.1, "
    "each showing one cause of CloudFront 502s.\n"
)

#: the origin protocol policy CloudFront's console proposes today
_TLS12 = ("TLSv1.2",)
_ALL = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2")


@dataclass(frozen=True)
class DemoOrigin:
    """One running demo origin and what the engine should conclude about it."""

    name: str  # config origin name, e.g. "good"
    host: str  # sent as SNI, e.g. "good.demo.test"; the config resolves it to 127.0.0.1
    port: int
    protocols: tuple[str, ...]  # origin protocol policy, CloudFront names
    description: str  # one line for people: what is wrong with it
    expected_reasons: tuple[str, ...]  # FailureReason values; () when CloudFront connects


@dataclass(frozen=True)
class _Scenario:
    name: str
    description: str
    expected_reasons: tuple[str, ...]
    build: Callable[[str], ThreadedTCPServer]  # host -> a configured, not yet started server
    protocols: tuple[str, ...] = _TLS12


class DemoFleet(Running):
    """Starts the demo origins in background threads; `stop` (or leaving `with`) joins them.

    Certificates and keys are generated at `start` into `workdir`, with fresh dates, so the
    expired and expiring-soon origins stay what they claim to be whenever the demo runs.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self._servers: list[ThreadedTCPServer] = []
        self._origins: list[DemoOrigin] = []
        self._pki: DemoPKI | None = None

    @property
    def ca_file(self) -> Path:
        """The demo root CA (PEM), which the daemon must trust through `ca_file`."""
        return (self.workdir / "demo-root.pem").absolute()

    @property
    def origins(self) -> list[DemoOrigin]:
        """The running origins, in scenario order; empty before `start`."""
        return list(self._origins)

    def start(self) -> list[DemoOrigin]:
        """Issue certificates, start every origin on a free 127.0.0.1 port, return them all."""
        if self._servers:
            raise RuntimeError("demo fleet already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pki = DemoPKI.create(label="Demo")
        self._pki.write_roots(self.ca_file)
        try:
            for scenario in self._scenarios():
                host = f"{scenario.name}.{DOMAIN}"
                server = scenario.build(host)
                self._servers.append(server)
                port = server.start()
                self._origins.append(
                    DemoOrigin(
                        name=scenario.name,
                        host=host,
                        port=port,
                        protocols=scenario.protocols,
                        description=scenario.description,
                        expected_reasons=scenario.expected_reasons,
                    )
                )
        except BaseException:
            self.stop()
            raise
        return self.origins

    def stop(self) -> None:
        """Stop every origin and join its threads. Idempotent."""
        servers, self._servers, self._origins = self._servers, [], []
        for server in servers:
            server.stop()

    def config_yaml(self, interval: str = "15s") -> str:
        """A complete exporter config probing every running origin through the resolve map."""
        if not self._origins:
            raise RuntimeError("start the demo fleet before asking for its config")
        config: dict[str, Any] = {
            "defaults": {
                "interval": interval,
                # Local origins answer in milliseconds; the timeout may not exceed the interval.
                "timeout": format_duration(min(5.0, parse_duration(interval))),
                "ca_file": str(self.ca_file),
            },
            "resolve": {origin.host: HOST for origin in self._origins},
            "probe_allow": [f"*.{DOMAIN}:*", f"{HOST}:*"],
            "origins": [
                {
                    "name": origin.name,
                    "host": origin.host,
                    "port": origin.port,
                    "protocols": _Flow(origin.protocols),
                    "labels": _FlowMap({"scenario": origin.name}),
                }
                for origin in self._origins
            ],
        }
        body = yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=1000)
        return HEADER + body

    # --- scenarios ------------------------------------------------------------------------

    def _chain(self, stem: str, certs: list[Issued]) -> tuple[Path, Path]:
        return write_chain(self.workdir / "certs", stem, certs, certs[0].key)

    def _modern(self, stem: str, certs: list[Issued], **kwargs: Any) -> ModernTLSServer:
        chain, key = self._chain(stem, certs)
        return ModernTLSServer(ModernConfig(chain, key, name=stem, **kwargs))

    def _scenarios(self) -> list[_Scenario]:
        pki = self._pki
        assert pki is not None
        inter = pki.intermediate
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)

        def good(host: str) -> ThreadedTCPServer:
            return self._modern("good", [pki.leaf(host), inter])

        def mismatch(host: str) -> ThreadedTCPServer:
            return self._modern("name-mismatch", [pki.leaf(f"another-site.{DOMAIN}"), inter])

        def lonely(host: str) -> ThreadedTCPServer:
            return self._modern("missing-intermediate", [pki.leaf(host)])

        def expired(host: str) -> ThreadedTCPServer:
            leaf = pki.leaf(host, not_before=now - 400 * DAY, not_after=now - 2 * DAY)
            return self._modern("expired", [leaf, inter])

        def expiring(host: str) -> ThreadedTCPServer:
            leaf = pki.leaf(host, not_before=now - 355 * DAY, not_after=now + 10 * DAY)
            return self._modern("expiring-soon", [leaf, inter])

        def no_cipher(host: str) -> ThreadedTCPServer:
            return self._modern(
                "no-common-cipher",
                [pki.leaf(host), inter],
                min_version="TLSv1.2",
                max_version="TLSv1.2",
                ciphers="ECDHE-RSA-CHACHA20-POLY1305",
            )

        def undocumented(host: str) -> ThreadedTCPServer:
            return self._modern(
                "undocumented-suites",
                [pki.leaf(host), inter],
                min_version="TLSv1.2",
                max_version="TLSv1.2",
                ciphers="AES128-GCM-SHA256:AES256-GCM-SHA384",
            )

        def tls13(host: str) -> ThreadedTCPServer:
            return self._modern("tls13-only", [pki.leaf(host), inter], min_version="TLSv1.3")

        def legacy(host: str) -> ThreadedTCPServer:
            chain, key = self._chain("legacy-sslv3", [pki.leaf(host), inter])
            config = LegacyConfig(
                chain,
                key,
                min_version="SSLv3",
                max_version="SSLv3",
                suites=("RC4-MD5", "DES-CBC3-SHA"),
                name="legacy-sslv3",
            )
            return LegacyTLSServer(config)

        def self_signed(host: str) -> ThreadedTCPServer:
            return self._modern("self-signed", [issue(host, sans=[host])])

        return [
            _Scenario(
                "good", "TLS 1.2 and 1.3, full chain, right name: CloudFront connects", (), good
            ),
            _Scenario(
                "name-mismatch",
                f"the certificate is for another-site.{DOMAIN}, not the name CloudFront sends",
                ("name_mismatch",),
                mismatch,
            ),
            _Scenario(
                "missing-intermediate",
                "sends only its leaf certificate; CloudFront does not fetch the intermediate",
                ("missing_intermediate",),
                lonely,
            ),
            _Scenario("expired", "the certificate expired two days ago", ("expired",), expired),
            _Scenario(
                "expiring-soon",
                "works today, but the certificate expires in 10 days",
                (),
                expiring,
            ),
            _Scenario(
                "no-common-cipher",
                "TLS 1.2 with only ECDHE-RSA-CHACHA20-POLY1305, which CloudFront never offers",
                ("no_common_cipher",),
                no_cipher,
            ),
            _Scenario(
                "undocumented-suites",
                "TLS 1.2 with only AES128-GCM-SHA256 and AES256-GCM-SHA384: s2n-tls's "
                "CloudFront-Upstream offers them though AWS does not document them",
                (),
                undocumented,
            ),
            _Scenario(
                "tls13-only",
                "speaks only TLS 1.3: CloudFront-Upstream cannot connect; the 2025 generation can",
                ("no_common_protocol",),
                tls13,
            ),
            _Scenario(
                "legacy-sslv3",
                "SSLv3 with RC4-MD5 and 3DES only: CloudFront connects, but with broken crypto",
                (),
                legacy,
                protocols=_ALL,
            ),
            _Scenario(
                "self-signed",
                "a self-signed certificate, which chains to no root CloudFront trusts",
                ("untrusted",),
                self_signed,
            ),
        ]


class _Flow(tuple[str, ...]):
    """A list the config shows inline (`[TLSv1.2]`), as people write it."""


class _FlowMap(dict[str, str]):
    """A mapping the config shows inline (`{scenario: good}`)."""


class _Dumper(yaml.SafeDumper):
    """`SafeDumper` (so quoting stays right) that writes the small leaf collections inline."""


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", list(data), flow_style=True)


def _represent_flow_map(dumper: yaml.SafeDumper, data: _FlowMap) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", dict(data), flow_style=True)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(_FlowMap, _represent_flow_map)
