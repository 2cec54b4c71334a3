"""The test fleet: one real origin per CloudFront failure cause, all on 127.0.0.1.

nginx (Debian's, on the system OpenSSL 3) serves the mainstream set-ups, tlslite-ng the legacy
ones OpenSSL 3 dropped, and `tests.servers.broken` the ones that fail in a precise way. Each
origin has a DNS-style name (sent as SNI) that the probe maps to 127.0.0.1 through `address`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from exporter.engine.target import ProbeTarget
from tests.pki import DAY, NOW, TestPKI, issue, write_chain
from tests.servers import (
    HandshakeFailsAfterHelloServer,
    LegacyConfig,
    LegacyTLSServer,
    NginxServer,
    NginxSite,
    PlainHTTPServer,
    SilentServer,
    closed_port,
)

ALL_TLS = ("TLSv1", "TLSv1.1", "TLSv1.2")


@dataclass(frozen=True)
class Origin:
    name: str
    host: str  # the origin domain name: SNI and the name the certificate must cover
    port: int
    ca_file: str

    def target(self, **overrides: Any) -> ProbeTarget:
        fields: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "address": "127.0.0.1",
            "ca_file": self.ca_file,
        }
        fields.update(overrides)
        return ProbeTarget(**fields)


@dataclass
class TestOrigins:
    """Starts every scenario; `origins[name]` once entered."""

    __test__ = False  # not a pytest test class, despite the name

    workdir: Path
    pki: TestPKI = field(default_factory=TestPKI.create)
    origins: dict[str, Origin] = field(default_factory=dict)
    leaf_not_after: dict[str, Any] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __getitem__(self, name: str) -> Origin:
        return self.origins[name]

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "test-root.pem")

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki.write_roots(Path(self.ca_file))
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _chain(self, name: str, certs: list[Any], key: Any) -> tuple[Path, Path]:
        return write_chain(self.workdir / "certs", name, certs, key)

    def _start(self) -> None:
        pki = self.pki
        inter = pki.intermediate
        sites: list[NginxSite] = []
        hosts: dict[str, str] = {}

        def site(name: str, host: str, certs: list[Any], key: Any, **kwargs: Any) -> None:
            chain, key_path = self._chain(name, certs, key)
            sites.append(NginxSite(name=name, chain_pem=chain, key_pem=key_path, **kwargs))
            hosts[name] = host
            self.leaf_not_after[name] = certs[0].cert.not_valid_after_utc

        good = pki.leaf("good.test", sans=["good.test", "www.good.test"])
        site("good", "good.test", [good, inter], good.key, protocols=ALL_TLS)
        tls12 = pki.leaf("modern.test")
        site(
            "modern",
            "modern.test",
            [tls12, inter],
            tls12.key,
            protocols=("TLSv1.2", "TLSv1.3"),
            ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-SHA:AES128-SHA",
        )
        wildcard = pki.leaf("*.wild.test", sans=["*.wild.test"])
        site("wildcard", "shop.wild.test", [wildcard, inter], wildcard.key)
        mismatch = pki.leaf("other.test")
        site("name_mismatch", "mismatch.test", [mismatch, inter], mismatch.key)
        lonely = pki.leaf("lonely.test")
        site("missing_intermediate", "lonely.test", [lonely], lonely.key)
        shuffled = pki.leaf("shuffled.test")
        site("wrong_order", "shuffled.test", [shuffled, pki.root, inter], shuffled.key)
        expired = pki.leaf("expired.test", not_before=NOW - 400 * DAY, not_after=NOW - 2 * DAY)
        site("expired", "expired.test", [expired, inter], expired.key)
        future = pki.leaf("future.test", not_before=NOW + 10 * DAY, not_after=NOW + 400 * DAY)
        site("not_yet_valid", "future.test", [future, inter], future.key)
        selfsigned = issue("selfsigned.test", sans=["selfsigned.test"])
        site("self_signed", "selfsigned.test", [selfsigned], selfsigned.key)
        stranger = issue("stranger.test", issuer=pki.other_intermediate, sans=["stranger.test"])
        site("untrusted_root", "stranger.test", [stranger, pki.other_intermediate], stranger.key)
        nocipher = pki.leaf("nocipher.test")
        site(
            "no_common_cipher",
            "nocipher.test",
            [nocipher, inter],
            nocipher.key,
            ciphers="ECDHE-RSA-CHACHA20-POLY1305",
        )
        undocumented = pki.leaf("undocumented.test")
        site(
            "undocumented_only",
            "undocumented.test",
            [undocumented, inter],
            undocumented.key,
            protocols=("TLSv1.2",),
            ciphers="AES128-GCM-SHA256:AES256-GCM-SHA384",
        )
        tls13 = pki.leaf("tls13.test")
        site("no_common_protocol", "tls13.test", [tls13, inter], tls13.key, protocols=("TLSv1.3",))
        ecdsa = pki.leaf("ecdsa.test", key_kind="p256")
        site("ecdsa", "ecdsa.test", [ecdsa, inter], ecdsa.key, protocols=ALL_TLS)
        by_ip = pki.leaf("127.0.0.1", sans=["127.0.0.1"])
        site("ip_address", "127.0.0.1", [by_ip, inter], by_ip.key)

        nginx = NginxServer(self.workdir / "nginx")
        ports = nginx.start(sites)
        self._stack.callback(nginx.stop)
        for name, port in ports.items():
            self.origins[name] = Origin(name, hosts[name], port, self.ca_file)

        legacy_leaf = pki.leaf("legacy.test")
        self.leaf_not_after["sslv3_only"] = legacy_leaf.cert.not_valid_after_utc
        self.leaf_not_after["legacy_tls"] = legacy_leaf.cert.not_valid_after_utc
        chain, key_path = self._chain("legacy", [legacy_leaf, inter], legacy_leaf.key)
        self._legacy(
            "sslv3_only",
            "legacy.test",
            chain,
            key_path,
            "SSLv3",
            "SSLv3",
            ("RC4-MD5", "DES-CBC3-SHA", "AES128-SHA"),
        )
        self._legacy(
            "legacy_tls",
            "legacy.test",
            chain,
            key_path,
            "TLSv1",
            "TLSv1.2",
            ("DES-CBC3-SHA", "RC4-MD5"),
        )

        # TLSv1 only, preferring a suite CloudFront does not offer (RC4-SHA): spoken either
        # way, with one CloudFront suite behind it, or none.
        self._legacy(
            "outside_first",
            "legacy.test",
            chain,
            key_path,
            "TLSv1",
            "TLSv1",
            ("RC4-SHA", "AES128-SHA"),
        )
        self._legacy("outside_only", "legacy.test", chain, key_path, "TLSv1", "TLSv1", ("RC4-SHA",))

        broken_leaf = pki.leaf("broken.test")
        chain, _ = self._chain("broken", [broken_leaf, inter], broken_leaf.key)
        broken = HandshakeFailsAfterHelloServer(chain)
        self._serve("handshake_failed", "broken.test", broken)
        self._serve("not_tls", "plain.test", PlainHTTPServer())
        self._serve("silent", "silent.test", SilentServer())
        self.origins["closed"] = Origin("closed", "closed.test", closed_port(), self.ca_file)

    def _legacy(
        self,
        name: str,
        host: str,
        chain: Path,
        key: Path,
        low: str,
        high: str,
        suites: tuple[str, ...],
    ) -> None:
        config = LegacyConfig(
            chain, key, min_version=low, max_version=high, suites=suites, name=name
        )
        self._serve(name, host, LegacyTLSServer(config))

    def _serve(self, name: str, host: str, server: Any) -> None:
        port = server.start()
        self._stack.callback(server.stop)
        self.origins[name] = Origin(name, host, port, self.ca_file)
