"""What CloudFront offers a custom origin, as data.

CloudFront's origin-facing TLS client is s2n-tls under the `CloudFront-Upstream` security
policies: four protocol versions selectable per origin (`OriginSslProtocols`), nineteen cipher
suites (sixteen of them documented by AWS), three curves and RSA-PKCS#1/ECDSA signatures, all in
the order s2n-tls sends them. Everything the engine tests is derived from these tables, so a
change on AWS's side is a change here only; tests/test_s2n.py compares them with the ClientHello
the s2n-tls in awscrt really sends. TLSv1.3 is listed for information: today's policies never
use it towards origins, the 2025 generation (`POLICY_OFFERS`) does.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

from tlslite.constants import CipherSuite as TlsliteSuites
from tlslite.constants import GroupName, HashAlgorithm, SignatureAlgorithm


class Protocol(enum.StrEnum):
    """Protocol versions by CloudFront's `OriginSslProtocols` names."""

    SSLv3 = "SSLv3"
    TLSv1 = "TLSv1"
    TLSv1_1 = "TLSv1.1"
    TLSv1_2 = "TLSv1.2"
    TLSv1_3 = "TLSv1.3"

    @property
    def wire(self) -> tuple[int, int]:
        """The (major, minor) version as sent on the wire."""
        return _WIRE_VERSIONS[self]

    @property
    def cloudfront(self) -> bool:
        """True for the versions CloudFront may use towards an origin."""
        return self is not Protocol.TLSv1_3

    @property
    def openssl_flag(self) -> str:
        """The `openssl s_client` flag selecting exactly this version."""
        return _OPENSSL_FLAGS[self]

    @classmethod
    def from_wire(cls, version: tuple[int, int]) -> Protocol | None:
        for protocol, wire in _WIRE_VERSIONS.items():
            if wire == version:
                return protocol
        return None

    @classmethod
    def parse(cls, text: str) -> Protocol:
        """Accept CloudFront's names, case-insensitively, plus `TLSv1.0`."""
        wanted = text.strip().lower()
        if wanted == "tlsv1.0":
            wanted = "tlsv1"
        for protocol in cls:
            if protocol.value.lower() == wanted:
                return protocol
        names = ", ".join(p.value for p in CLOUDFRONT_PROTOCOLS)
        raise ValueError(f"unknown protocol {text!r}: expected one of {names}")


_WIRE_VERSIONS: dict[Protocol, tuple[int, int]] = {
    Protocol.SSLv3: (3, 0),
    Protocol.TLSv1: (3, 1),
    Protocol.TLSv1_1: (3, 2),
    Protocol.TLSv1_2: (3, 3),
    Protocol.TLSv1_3: (3, 4),
}

_OPENSSL_FLAGS: dict[Protocol, str] = {
    Protocol.SSLv3: "-ssl3",
    Protocol.TLSv1: "-tls1",
    Protocol.TLSv1_1: "-tls1_1",
    Protocol.TLSv1_2: "-tls1_2",
    Protocol.TLSv1_3: "-tls1_3",
}

CLOUDFRONT_PROTOCOLS: tuple[Protocol, ...] = (
    Protocol.SSLv3,
    Protocol.TLSv1,
    Protocol.TLSv1_1,
    Protocol.TLSv1_2,
)
"""Every protocol an origin policy may enable, oldest first."""

ALL_PROTOCOLS: tuple[Protocol, ...] = (*CLOUDFRONT_PROTOCOLS, Protocol.TLSv1_3)


def parse_policy(text: str) -> tuple[Protocol, ...]:
    """A comma-separated origin protocol policy (`TLSv1.1,TLSv1.2`), oldest first."""
    chosen = {Protocol.parse(part) for part in text.split(",") if part.strip()}
    if not chosen:
        raise ValueError("empty protocol list")
    if Protocol.TLSv1_3 in chosen:
        raise ValueError(
            "CloudFront does not use TLSv1.3 towards origins; it cannot be in a protocol policy"
        )
    return tuple(p for p in CLOUDFRONT_PROTOCOLS if p in chosen)


@dataclass(frozen=True)
class CipherSuite:
    """One cipher suite: OpenSSL name (the metric label), IANA code and what it needs."""

    name: str
    code: int
    key_exchange: str  # "ECDHE" or "RSA" (TLSv1.3 suites: "any")
    authentication: str  # "RSA", "ECDSA" (TLSv1.3 suites: "any")
    tls12_only: bool = False
    tls13: bool = False
    legacy: bool = False  # RC4 or 3DES: CloudFront still connects, but operators should know
    documented: bool = True  # in AWS's published list; s2n's policy also offers three more

    @property
    def iana_name(self) -> str:
        return str(TlsliteSuites.ietfNames.get(self.code, f"0x{self.code:04X}"))

    def valid_in(self, protocol: Protocol) -> bool:
        """Whether a server may negotiate this suite under `protocol`."""
        if protocol is Protocol.TLSv1_3:
            return self.tls13
        if self.tls13:
            return False
        if self.tls12_only:
            return protocol is Protocol.TLSv1_2
        # RFC 4492 defines ECC suites for TLS only.
        return not (self.key_exchange == "ECDHE" and protocol is Protocol.SSLv3)


def _suite(
    name: str, code: int, *, tls12: bool = False, legacy: bool = False, documented: bool = True
) -> CipherSuite:
    key_exchange = "ECDHE" if name.startswith("ECDHE-") else "RSA"
    authentication = "ECDSA" if name.startswith("ECDHE-ECDSA-") else "RSA"
    return CipherSuite(
        name,
        code,
        key_exchange,
        authentication,
        tls12_only=tls12,
        legacy=legacy,
        documented=documented,
    )


CLOUDFRONT_SUITES: tuple[CipherSuite, ...] = (
    # s2n-tls's `CloudFront-Upstream` (and -TLS-1-0/1-1/1-2) policy, in the order its
    # ClientHello offers them (tls/s2n_cipher_preferences.c, cipher_suites_cloudfront_upstream).
    # AWS documents 16 of these; s2n also offers AES256-GCM-SHA384, AES128-GCM-SHA256 and
    # AES128-SHA256.
    _suite("ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C, tls12=True),
    _suite("ECDHE-RSA-AES256-GCM-SHA384", 0xC030, tls12=True),
    _suite("ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B, tls12=True),
    _suite("ECDHE-RSA-AES128-GCM-SHA256", 0xC02F, tls12=True),
    _suite("ECDHE-ECDSA-AES256-SHA384", 0xC024, tls12=True),
    _suite("ECDHE-RSA-AES256-SHA384", 0xC028, tls12=True),
    _suite("ECDHE-ECDSA-AES256-SHA", 0xC00A),
    _suite("ECDHE-RSA-AES256-SHA", 0xC014),
    _suite("ECDHE-ECDSA-AES128-SHA256", 0xC023, tls12=True),
    _suite("ECDHE-RSA-AES128-SHA256", 0xC027, tls12=True),
    _suite("ECDHE-ECDSA-AES128-SHA", 0xC009),
    _suite("ECDHE-RSA-AES128-SHA", 0xC013),
    _suite("AES256-GCM-SHA384", 0x009D, tls12=True, documented=False),
    _suite("AES128-GCM-SHA256", 0x009C, tls12=True, documented=False),
    _suite("AES256-SHA", 0x0035),
    _suite("AES128-SHA256", 0x003C, tls12=True, documented=False),
    _suite("AES128-SHA", 0x002F),
    _suite("DES-CBC3-SHA", 0x000A, legacy=True),
    _suite("RC4-MD5", 0x0004, legacy=True),
)

DOCUMENTED_SUITES: tuple[CipherSuite, ...] = tuple(s for s in CLOUDFRONT_SUITES if s.documented)
"""The sixteen suites AWS's CloudFront documentation lists for origin connections."""

TLS13_SUITES: tuple[CipherSuite, ...] = tuple(
    CipherSuite(name, code, "any", "any", tls13=True)
    for name, code in (
        ("TLS_AES_128_GCM_SHA256", 0x1301),
        ("TLS_AES_256_GCM_SHA384", 0x1302),
        ("TLS_CHACHA20_POLY1305_SHA256", 0x1303),
        ("TLS_AES_128_CCM_SHA256", 0x1304),
        ("TLS_AES_128_CCM_8_SHA256", 0x1305),
    )
)


@dataclass(frozen=True)
class Group:
    name: str  # OpenSSL name, as in the `group` label
    code: int


CLOUDFRONT_GROUPS: tuple[Group, ...] = (
    # s2n_ecc_preferences_20230623, in s2n's order
    Group("prime256v1", GroupName.secp256r1),
    Group("X25519", GroupName.x25519),
    Group("secp384r1", GroupName.secp384r1),
)

HYBRID_GROUPS: tuple[Group, ...] = (
    # The `-PQ` policies' ML-KEM hybrids (pq_kem_groups_ietf_2025_07), by their IANA names,
    # which are also s2n's.
    Group("X25519MLKEM768", GroupName.x25519mlkem768),
    Group("SecP256r1MLKEM768", GroupName.secp256r1mlkem768),
    Group("SecP384r1MLKEM1024", GroupName.secp384r1mlkem1024),
)


def _pkcs1_and_ecdsa(hashes: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    return (
        *((getattr(HashAlgorithm, h), SignatureAlgorithm.rsa) for h in hashes),
        *((getattr(HashAlgorithm, h), SignatureAlgorithm.ecdsa) for h in hashes),
    )


_SHA2 = ("sha256", "sha384", "sha512", "sha224")
_SHA1 = (
    (HashAlgorithm.sha1, SignatureAlgorithm.rsa),
    (HashAlgorithm.sha1, SignatureAlgorithm.ecdsa),
)
CLOUDFRONT_SIGNATURE_SCHEMES: tuple[tuple[int, int], ...] = (*_pkcs1_and_ecdsa(_SHA2), *_SHA1)
"""s2n_signature_preferences_20140601 as sent: RSA PKCS#1 v1.5 with SHA-256/384/512/224, ECDSA
likewise, then the SHA-1 pair; as (hash, signature) pairs; no RSA-PSS."""

_RSA_PSS = ((8, 9), (8, 10), (8, 11), (8, 4), (8, 5), (8, 6))  # pss_pss_*, then pss_rsae_*
_ML_DSA = ((9, 4), (9, 5), (9, 6))  # mldsa44, mldsa65, mldsa87
_SIGNATURES_2025: tuple[tuple[int, int], ...] = (
    # s2n_signature_preferences_20250820: ECDSA first, then RSA-PSS, PKCS#1, SHA-1
    *((getattr(HashAlgorithm, h), SignatureAlgorithm.ecdsa) for h in _SHA2),
    *_RSA_PSS,
    *((getattr(HashAlgorithm, h), SignatureAlgorithm.rsa) for h in _SHA2),
    *_SHA1,
)
_SIGNATURES_2025_PQ = (*_ML_DSA, *_SIGNATURES_2025)  # s2n_signature_preferences_20250821

# A broad offer, used only to tell "speaks this protocol, none of CloudFront's suites" apart from
# "does not speak this protocol": every suite tlslite-ng knows plus common ones it does not.
_EXTRA_BROAD_CODES = (
    0x0041,
    0x0084,
    0x0045,
    0x0088,
    0x00BA,
    0x00BE,
    0x00C0,
    0x00C4,  # CAMELLIA
    0xC072,
    0xC073,
    0xC076,
    0xC077,  # ECDHE CAMELLIA
    0xC05C,
    0xC05D,
    0xC060,
    0xC061,
    0xC050,
    0xC051,
    0xC052,
    0xC053,  # ARIA
    0x0007,
    0x0096,
    0x009A,  # IDEA, SEED
    0xCCA8,
    0xCCA9,
    0xCCAA,  # CHACHA20-POLY1305
    0xC0AC,
    0xC0AD,
    0xC0AE,
    0xC0AF,
    0xC09C,
    0xC09D,
    0xC09E,
    0xC09F,  # CCM
    0x0003,
    0x0006,
    0x0008,
    0x0009,
    0x0011,
    0x0012,
    0x0014,
    0x0015,  # export and DES
    0xC011,
    0xC007,
    0xC012,
    0xC008,  # ECDHE RC4 and 3DES
)
_NOT_SELECTABLE = {0x00FF, 0x5600}

BROAD_GROUPS: tuple[int, ...] = (
    GroupName.x25519,
    GroupName.secp256r1,
    GroupName.secp384r1,
    GroupName.secp521r1,
    GroupName.x448,
    GroupName.ffdhe2048,
    GroupName.ffdhe3072,
    GroupName.ffdhe4096,
)

BROAD_SIGNATURE_SCHEMES: tuple[tuple[int, int], ...] = (
    *CLOUDFRONT_SIGNATURE_SCHEMES,
    (8, 4),  # rsa_pss_rsae_sha256
    (8, 5),
    (8, 6),
    (8, 9),  # rsa_pss_pss_sha256
    (8, 10),
    (8, 11),
    (8, 7),  # ed25519
    (8, 8),  # ed448
)

EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF


@dataclass(frozen=True)
class PolicyOffer:
    """What s2n-tls's ClientHello offers under one CloudFront upstream policy, in wire order.

    `minimum` is what the policy accepts in the ServerHello; today's generation sends the same
    hello under all four policies (no supported_versions extension) and enforces its minimum
    only on the answer, while the 2025 generation lists its versions in supported_versions.
    """

    name: str
    minimum: Protocol
    maximum: Protocol
    suites: tuple[int, ...]  # IANA codes; s2n appends the renegotiation SCSV below TLS 1.3
    groups: tuple[int, ...]  # supported_groups
    signature_schemes: tuple[tuple[int, int], ...]  # signature_algorithms
    key_shares: tuple[int, ...] = ()  # TLS 1.3 key_share entries
    versions: tuple[Protocol, ...] = ()  # supported_versions, newest first; () when not sent


_TLS13_OFFER = (0x1301, 0x1302, 0x1303)  # S2N_TLS13_CLOUDFRONT_CIPHER_SUITES_20200716
_SUITES_2025 = (
    # cipher_suites_cloudfront_upstream_2025_08_08: AES128 before AES256 this time
    *_TLS13_OFFER,
    0xC02B,
    0xC02F,
    0xC02C,
    0xC030,
    0xC023,
    0xC027,
    0xC024,
    0xC028,
    0xC009,
    0xC013,
    0xC00A,
    0xC014,
    0x009C,
    0x009D,
    0x003C,
    0x002F,
    0x0035,
    0x000A,
    0x0004,
)
_POLICY_MINIMUMS = (
    ("", Protocol.SSLv3),
    ("-TLS-1-0", Protocol.TLSv1),
    ("-TLS-1-1", Protocol.TLSv1_1),
    ("-TLS-1-2", Protocol.TLSv1_2),
)


def _offers() -> dict[str, PolicyOffer]:
    groups = tuple(g.code for g in CLOUDFRONT_GROUPS)
    hybrid = tuple(g.code for g in HYBRID_GROUPS)
    offers: dict[str, PolicyOffer] = {}
    for suffix, minimum in _POLICY_MINIMUMS:
        name = f"CloudFront-Upstream{suffix}"
        offers[name] = PolicyOffer(
            name,
            minimum,
            Protocol.TLSv1_2,
            tuple(s.code for s in CLOUDFRONT_SUITES),
            groups,
            CLOUDFRONT_SIGNATURE_SCHEMES,
        )
    for pq in (False, True):
        for suffix, minimum in (*_POLICY_MINIMUMS, ("-TLS-1-3", Protocol.TLSv1_3)):
            name = f"CloudFront-Upstream{suffix}-2025{'-PQ' if pq else ''}"
            versions = tuple(p for p in reversed(ALL_PROTOCOLS) if p.wire >= minimum.wire)
            offers[name] = PolicyOffer(
                name,
                minimum,
                Protocol.TLSv1_3,
                _TLS13_OFFER if minimum is Protocol.TLSv1_3 else _SUITES_2025,
                (*hybrid, *groups) if pq else groups,
                _SIGNATURES_2025_PQ if pq else _SIGNATURES_2025,
                # s2n sends one hybrid share and one classic share (its first curve)
                (hybrid[0], groups[0]) if pq else (groups[0],),
                versions,
            )
    return offers


POLICY_OFFERS: Mapping[str, PolicyOffer] = MappingProxyType(_offers())
"""Every CloudFront upstream policy of the s2n-tls that awscrt bundles, by s2n's name."""


@dataclass(frozen=True)
class Catalogue:
    """CloudFront's offer, with the lookups the engine needs precomputed once."""

    protocols: tuple[Protocol, ...] = CLOUDFRONT_PROTOCOLS
    suites: tuple[CipherSuite, ...] = CLOUDFRONT_SUITES
    tls13_suites: tuple[CipherSuite, ...] = TLS13_SUITES
    groups: tuple[Group, ...] = CLOUDFRONT_GROUPS
    signature_schemes: tuple[tuple[int, int], ...] = CLOUDFRONT_SIGNATURE_SCHEMES

    @cached_property
    def by_code(self) -> dict[int, CipherSuite]:
        return {s.code: s for s in (*self.suites, *self.tls13_suites)}

    @cached_property
    def by_name(self) -> dict[str, CipherSuite]:
        return {s.name: s for s in (*self.suites, *self.tls13_suites)}

    def suites_for(self, protocol: Protocol) -> tuple[CipherSuite, ...]:
        """The suites CloudFront would offer (or, for TLSv1.3, any client) under `protocol`."""
        pool = self.tls13_suites if protocol is Protocol.TLSv1_3 else self.suites
        return tuple(s for s in pool if s.valid_in(protocol))

    @cached_property
    def broad_codes(self) -> tuple[int, ...]:
        known = [
            c
            for c in TlsliteSuites.ietfNames
            if c <= 0xFFFF and c not in _NOT_SELECTABLE and c >> 8 != 0x13
        ]
        merged = dict.fromkeys([*(s.code for s in self.suites), *known, *_EXTRA_BROAD_CODES])
        return tuple(merged)

    def group_name(self, code: int | None) -> str | None:
        """OpenSSL's name for a named group code, `None` when unknown."""
        if code is None:
            return None
        for group in (*self.groups, *HYBRID_GROUPS):
            if group.code == code:
                return group.name
        name = str(GroupName.toStr(code))
        return {"secp521r1": "secp521r1", "x448": "X448"}.get(name, name)

    def openssl_cipher_string(self, protocol: Protocol) -> str:
        """CloudFront's suites for `protocol` as an `openssl s_client -cipher` argument."""
        return ":".join(s.name for s in self.suites_for(protocol))


CATALOGUE = Catalogue()
"""The one immutable catalogue; shared freely since it never changes at run time."""
