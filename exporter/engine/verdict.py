"""The fixed vocabulary of reasons CloudFront cannot connect, with what to do about each.

These names are a contract: dashboards and alerts match on them (label `reason`).
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """Which part of CloudFront's connection a reason is about: the checklist's sections."""

    CONNECTION = "connection"  # DNS, TCP, timeouts, not TLS at all
    PROTOCOL = "protocol"  # protocols, cipher suites, the handshake itself
    NAME = "name"  # the certificate does not cover the name CloudFront sends
    CHAIN = "chain"  # the certificates as sent do not link to a trusted root
    DATES = "dates"  # a certificate outside its validity period
    HTTP = "http"  # the request CloudFront forwards after its handshake


class Source(StrEnum):
    """Who says a reason makes CloudFront fail: every failure names one."""

    TLS_LIBRARY = "s2n-tls"  # CloudFront's own TLS library failed the handshake
    AWS_DOCUMENTATION = "aws-documentation"  # s2n alone accepts it, AWS documents it as a 502
    EXPORTER = "exporter"  # no s2n-tls to ask: the exporter's own analysis decides


class FailureReason(StrEnum):
    DNS_FAILED = "dns_failed"
    CONNECT_FAILED = "connect_failed"
    TIMEOUT = "timeout"
    NOT_TLS = "not_tls"
    NO_COMMON_PROTOCOL = "no_common_protocol"
    NO_COMMON_CIPHER = "no_common_cipher"
    HANDSHAKE_FAILED = "handshake_failed"
    NAME_MISMATCH = "name_mismatch"
    MISSING_INTERMEDIATE = "missing_intermediate"
    WRONG_ORDER = "wrong_order"
    UNTRUSTED = "untrusted"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    CLIENT_CERTIFICATE_REQUIRED = "client_certificate_required"
    RESPONSE_TIMEOUT = "response_timeout"
    HTTP_INVALID_RESPONSE = "http_invalid_response"

    @property
    def summary(self) -> str:
        return _SUMMARIES[self]

    @property
    def remedy(self) -> str:
        return _REMEDIES[self]

    @property
    def category(self) -> Category:
        return _CATEGORIES[self]

    @property
    def http_status(self) -> int:
        """What viewers get from CloudFront: 504 when it gives up waiting, 502 otherwise."""
        return 504 if self in (FailureReason.TIMEOUT, FailureReason.RESPONSE_TIMEOUT) else 502


_SUMMARIES = {
    FailureReason.DNS_FAILED: "the origin domain name does not resolve",
    FailureReason.CONNECT_FAILED: "the TCP connection to the origin's HTTPS port fails",
    FailureReason.TIMEOUT: "the origin does not answer in time",
    FailureReason.NOT_TLS: "the origin's HTTPS port does not speak TLS",
    FailureReason.NO_COMMON_PROTOCOL: (
        "the origin speaks none of the protocols in the origin protocol policy"
    ),
    FailureReason.NO_COMMON_CIPHER: "the origin accepts none of CloudFront's cipher suites",
    FailureReason.HANDSHAKE_FAILED: (
        "the origin picks a suite but the handshake CloudFront makes does not complete"
    ),
    FailureReason.NAME_MISMATCH: (
        "the name CloudFront sends (origin domain or forwarded Host) is in neither the "
        "certificate's CN nor its SANs"
    ),
    FailureReason.MISSING_INTERMEDIATE: (
        "the origin does not send the intermediate CA certificate(s); CloudFront does not fetch "
        "them"
    ),
    FailureReason.WRONG_ORDER: "the origin sends its certificate chain out of order",
    FailureReason.UNTRUSTED: (
        "the certificate is self-signed or does not chain to a root CloudFront trusts"
    ),
    FailureReason.EXPIRED: "a certificate in the chain has expired",
    FailureReason.NOT_YET_VALID: "a certificate in the chain is not valid yet",
    FailureReason.CLIENT_CERTIFICATE_REQUIRED: (
        "the origin aborts the handshake because CloudFront presents no client certificate"
    ),
    FailureReason.RESPONSE_TIMEOUT: (
        "the origin sends no first byte of its response within the origin response timeout"
    ),
    FailureReason.HTTP_INVALID_RESPONSE: "the origin's answer to the request is not HTTP/1.x",
}

_REMEDIES = {
    FailureReason.DNS_FAILED: (
        "Fix the origin domain name in the distribution, or publish its DNS record."
    ),
    FailureReason.CONNECT_FAILED: (
        "Open the origin's HTTPS port (origin HTTPSPort) to CloudFront's origin-facing IP ranges "
        "and make sure a server listens on it."
    ),
    FailureReason.TIMEOUT: (
        "Check firewalls and security groups for CloudFront's origin-facing ranges, and the "
        "origin's load; CloudFront's connection timeout defaults to 10 s."
    ),
    FailureReason.NOT_TLS: (
        "Serve HTTPS on the origin's HTTPSPort, or set the origin protocol policy to HTTP only."
    ),
    FailureReason.NO_COMMON_PROTOCOL: (
        "Enable a CloudFront protocol on the origin (TLSv1.2 recommended), or add the protocol "
        "the origin speaks to the origin protocol policy (OriginSslProtocols). "
        "CloudFront-Upstream, the policy of today's distributions, never uses TLSv1.3 towards "
        "origins; the 2025 generation does."
    ),
    FailureReason.NO_COMMON_CIPHER: (
        "Add a CloudFront cipher suite to the origin, e.g. ECDHE-RSA-AES128-GCM-SHA256 (RSA "
        "certificate) or ECDHE-ECDSA-AES128-GCM-SHA256 (ECDSA certificate)."
    ),
    FailureReason.HANDSHAKE_FAILED: (
        "Check that the certificate's key type matches the suites the origin prefers (RSA vs "
        "ECDSA), that the key matches the certificate, and the origin's TLS error log."
    ),
    FailureReason.NAME_MISMATCH: (
        "Issue a certificate whose SANs cover the origin domain name (and every alternate domain "
        "name, when the Host header is forwarded), or change the origin domain name to one the "
        "certificate covers."
    ),
    FailureReason.MISSING_INTERMEDIATE: (
        "Re-upload or reconfigure the certificate with its full chain (leaf first, then the "
        "intermediates), or use an ACM certificate on an ELB origin."
    ),
    FailureReason.WRONG_ORDER: (
        "Configure the chain leaf first, then each issuer in turn (the server's fullchain file)."
    ),
    FailureReason.UNTRUSTED: (
        "Use a certificate from a publicly trusted CA (Mozilla's root store), e.g. from ACM; "
        "CloudFront does not accept self-signed or private-CA certificates on origins."
    ),
    FailureReason.EXPIRED: "Renew the certificate (or the expired intermediate) and deploy it.",
    FailureReason.NOT_YET_VALID: (
        "Deploy a certificate that is valid now, or fix the origin's or the CA's clock."
    ),
    FailureReason.CLIENT_CERTIFICATE_REQUIRED: (
        "Configure origin mutual TLS on the distribution's origin (OriginMtlsConfig, with the "
        "client certificate the origin trusts), or stop requiring client certificates on it."
    ),
    FailureReason.RESPONSE_TIMEOUT: (
        "Check the origin application and its load: it must start answering within the "
        "distribution's origin response timeout (OriginReadTimeout, 30 s by default); raise "
        "that timeout only for origins that are slow by design."
    ),
    FailureReason.HTTP_INVALID_RESPONSE: (
        "Make the origin answer HTTPS requests with valid HTTP/1.1 (a status line, then "
        "headers); check that no other protocol, and no broken proxy, listens on the HTTPS "
        "port."
    ),
}

_CATEGORIES = {
    FailureReason.DNS_FAILED: Category.CONNECTION,
    FailureReason.CONNECT_FAILED: Category.CONNECTION,
    FailureReason.TIMEOUT: Category.CONNECTION,
    FailureReason.NOT_TLS: Category.CONNECTION,
    FailureReason.NO_COMMON_PROTOCOL: Category.PROTOCOL,
    FailureReason.NO_COMMON_CIPHER: Category.PROTOCOL,
    FailureReason.HANDSHAKE_FAILED: Category.PROTOCOL,
    FailureReason.NAME_MISMATCH: Category.NAME,
    FailureReason.MISSING_INTERMEDIATE: Category.CHAIN,
    FailureReason.WRONG_ORDER: Category.CHAIN,
    FailureReason.UNTRUSTED: Category.CHAIN,
    FailureReason.EXPIRED: Category.DATES,
    FailureReason.NOT_YET_VALID: Category.DATES,
    FailureReason.CLIENT_CERTIFICATE_REQUIRED: Category.PROTOCOL,
    FailureReason.RESPONSE_TIMEOUT: Category.HTTP,
    FailureReason.HTTP_INVALID_RESPONSE: Category.HTTP,
}


class CloudFrontWarning(StrEnum):
    """Findings that do not stop CloudFront today but deserve attention: a fixed vocabulary
    (label `warning` of `origin_tls_cloudfront_warning`)."""

    UNDOCUMENTED_SUITES_ONLY = "undocumented_suites_only"
    STRICT_VALIDATION_FAILS = "strict_validation_fails"
    SHA1_SIGNATURE = "sha1_signature"
    WEAK_RSA_KEY = "weak_rsa_key"
    LEGACY_CRYPTO_ONLY = "legacy_crypto_only"
    NEGOTIATED_OUTSIDE_POLICY = "negotiated_outside_policy"
    CLOSES_KEEPALIVE_EARLY = "closes_keepalive_early"
    CLIENT_CERTIFICATE_REQUESTED = "client_certificate_requested"

    @property
    def summary(self) -> str:
        return _WARNINGS[self]


_WARNINGS = {
    CloudFrontWarning.UNDOCUMENTED_SUITES_ONLY: (
        "CloudFront connects only through cipher suites AWS does not document "
        "(AES128-GCM-SHA256, AES256-GCM-SHA384, AES128-SHA256): add a documented one"
    ),
    CloudFrontWarning.STRICT_VALIDATION_FAILS: (
        "CloudFront accepts the chain, but a strict RFC 5280 / CA/Browser Forum validator "
        "(browsers, cryptography) would not"
    ),
    CloudFrontWarning.SHA1_SIGNATURE: "a certificate sent is signed with SHA-1",
    CloudFrontWarning.WEAK_RSA_KEY: "an RSA key in the chain has fewer than 2048 bits",
    CloudFrontWarning.LEGACY_CRYPTO_ONLY: (
        "CloudFront connects only with SSLv3, RC4 or 3DES: upgrade the origin"
    ),
    CloudFrontWarning.NEGOTIATED_OUTSIDE_POLICY: (
        "CloudFront's TLS library negotiated a protocol the origin protocol policy omits"
    ),
    CloudFrontWarning.CLOSES_KEEPALIVE_EARLY: (
        "the origin closes idle connections before CloudFront's keep-alive timeout, or answers "
        "Connection: close (intermittent 502s)"
    ),
    CloudFrontWarning.CLIENT_CERTIFICATE_REQUESTED: (
        "the origin asks for a client certificate but completes the handshake without one"
    ),
}
