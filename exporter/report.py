"""A probe result for people (text) and programs (JSON): the `check` command's output.

The text follows the troubleshooting article's three causes in its order (name, chain, protocols
and ciphers), then expiry, each with PASS/FAIL, why, and what to do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .engine.catalogue import CATALOGUE, CLOUDFRONT_PROTOCOLS, Protocol
from .engine.certs import CertificateFacts
from .engine.result import Judgment, ProtocolResult
from .engine.verdict import FailureReason
from .reproduce import openssl_commands

_NAME_REASONS = {FailureReason.NAME_MISMATCH}
_CHAIN_REASONS = {
    FailureReason.MISSING_INTERMEDIATE,
    FailureReason.WRONG_ORDER,
    FailureReason.UNTRUSTED,
}
_NO_CERTIFICATE = "not checked: no TLS 1.0-1.2 handshake got as far as the certificate"
_DATE_REASONS = {FailureReason.EXPIRED, FailureReason.NOT_YET_VALID}
_HANDSHAKE_REASONS = {
    FailureReason.DNS_FAILED,
    FailureReason.CONNECT_FAILED,
    FailureReason.TIMEOUT,
    FailureReason.NOT_TLS,
    FailureReason.NO_COMMON_PROTOCOL,
    FailureReason.NO_COMMON_CIPHER,
    FailureReason.HANDSHAKE_FAILED,
}


def _iso(moment: dt.datetime | float) -> str:
    if isinstance(moment, float):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def certificate_dict(cert: CertificateFacts) -> dict[str, Any]:
    return {
        "position": cert.position,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "common_names": list(cert.common_names),
        "serial": cert.serial,
        "dns_names": list(cert.dns_names),
        "ip_addresses": list(cert.ip_addresses),
        "not_before": _iso(cert.not_before),
        "not_after": _iso(cert.not_after),
        "key_type": cert.key_type,
        "key_bits": cert.key_bits,
        "key_curve": cert.key_curve,
        "signature_algorithm": cert.signature_algorithm,
        "sha256_fingerprint": cert.sha256_fingerprint,
        "is_ca": cert.is_ca,
        "self_signed": cert.self_signed,
        "aia_ca_issuers": list(cert.aia_ca_issuers),
    }


def _protocol_dict(result: ProtocolResult) -> dict[str, Any]:
    return {
        "protocol": str(result.protocol),
        "in_policy": result.in_policy,
        "cloudfront": result.protocol.cloudfront,
        "spoken": result.spoken,
        "accepted": [s.name for s in result.accepted_suites],
        "suites": [
            {
                "cipher": r.suite.name,
                "iana": r.suite.iana_name,
                "confirmed": r.confirmed,
                "backend": r.backend,
                "error": r.error,
            }
            for r in result.picked
        ],
        "refusal": result.refusal,
        "error": result.error,
    }


def result_dict(result: Judgment) -> dict[str, Any]:
    """A JSON-ready dict; its keys are part of the `check --output json` contract."""
    target = result.target
    negotiation = result.negotiation
    chain = result.chain
    match = result.name_match
    return {
        "target": {
            "host": target.host,
            "port": target.port,
            "sni": target.server_name,
            "checked_name": target.checked_name,
            "protocols": [str(p) for p in target.protocols],
            "ca_file": target.ca_file,
        },
        "address": result.address,
        "started_at": _iso(result.started_at),
        "duration_seconds": round(result.duration_seconds, 6),
        "connections": result.connections,
        "success": result.success,
        "compatible": result.compatible,
        "legacy_only": result.legacy_only,
        "reasons": [
            {"reason": str(r), "summary": r.summary, "remedy": r.remedy} for r in result.reasons
        ],
        "error": result.error,
        "negotiated": None
        if negotiation is None
        else {
            "protocol": str(negotiation.protocol) if negotiation.protocol else None,
            "cipher": negotiation.suite.name if negotiation.suite else None,
            "group": negotiation.group,
            "completed": negotiation.completed,
            "error": negotiation.error,
        },
        "protocols": [_protocol_dict(p) for p in result.protocols],
        "name_match": None
        if match is None
        else {"name": match.name, "san": match.san, "cn": match.cn, "matched_by": match.matched_by},
        "chain": None
        if chain is None
        else {
            "status": str(chain.status),
            "problems": [str(p) for p in chain.problems],
            "complete": chain.complete,
            "detail": chain.detail,
            "missing_issuer": chain.missing_issuer,
            "missing_issuer_url": chain.missing_issuer_url,
            "path": list(chain.path),
            "earliest_expiry": _iso(chain.earliest_expiry) if chain.earliest_expiry else None,
            "certificates": [certificate_dict(c) for c in chain.certificates],
        },
        "openssl_commands": openssl_commands(target),
        "log": list(result.log),
    }


@dataclass(frozen=True)
class Check:
    """One line of the checklist: a cause from the article and how this origin fares."""

    title: str
    passed: bool | None  # None: could not be checked
    finding: str
    reasons: tuple[FailureReason, ...] = ()


def checklist(result: Judgment, now: dt.datetime | None = None) -> list[Check]:
    """The article's causes, in its order, then expiry."""
    now = now or dt.datetime.now(dt.UTC)
    reasons = set(result.reasons)
    checks: list[Check] = []

    handshake = tuple(r for r in result.reasons if r in _HANDSHAKE_REASONS)
    negotiation = result.negotiation
    if handshake:
        finding = (
            result.error
            or _protocol_finding(result, handshake[0])
            or (negotiation.error if negotiation and negotiation.error else None)
            or handshake[0].summary
        )
    elif negotiation is not None and negotiation.protocol and negotiation.suite:
        group = f", group {negotiation.group}" if negotiation.group else ""
        finding = (
            f"CloudFront would negotiate {negotiation.protocol} {negotiation.suite.name}{group}; "
            "the full handshake completes"
        )
    else:
        finding = "no handshake result"
    checks.append(Check("Protocols and cipher suites", not handshake, finding, handshake))

    match = result.name_match
    leaf = result.chain.certificates[0] if result.chain else None
    if match is None or leaf is None:
        checks.append(Check("Certificate name", None, _NO_CERTIFICATE))
    else:
        covered = f"CN {list(leaf.common_names)}, SANs {[*leaf.dns_names, *leaf.ip_addresses]}"
        if match.ok:
            field = "SAN" if match.san else "CN"
            finding = f"{match.name!r} matches {field} {match.matched_by!r}"
        else:
            finding = f"{match.name!r} is not covered by {covered}"
        checks.append(
            Check("Certificate name", match.ok, finding, tuple(r for r in _NAME_REASONS & reasons))
        )

    chain = result.chain
    if chain is None:
        checks.append(Check("Certificate chain", None, _NO_CERTIFICATE))
    else:
        chain_reasons = tuple(r for r in result.reasons if r in _CHAIN_REASONS)
        checks.append(Check("Certificate chain", not chain_reasons, chain.detail, chain_reasons))
        date_reasons = tuple(r for r in result.reasons if r in _DATE_REASONS)
        if chain.earliest_expiry is not None:
            days = (chain.earliest_expiry - now).total_seconds() / 86400
            soonest = min(chain.certificates, key=lambda c: c.not_after)
            finding = (
                f"earliest expiry {_iso(chain.earliest_expiry)} ({days:.0f} days) "
                f"for {soonest.position} {soonest.subject}"
            )
            if date_reasons:
                finding = f"{', '.join(date_reasons)}: {finding}"
            checks.append(Check("Certificate dates", not date_reasons, finding, date_reasons))
    return checks


def _protocol_finding(result: Judgment, reason: FailureReason) -> str | None:
    """Say what the origin does speak, so the remedy is concrete."""
    policy = ", ".join(str(p) for p in result.target.protocols)
    spoken = [p for p in result.protocols if p.spoken]
    if reason is FailureReason.NO_COMMON_PROTOCOL:
        names = ", ".join(str(p.protocol) for p in spoken) or "no TLS version CloudFront knows"
        return f"the policy enables {policy}; the origin speaks {names}"
    if reason is FailureReason.NO_COMMON_CIPHER:
        parts = [
            f"{p.protocol} (picked {p.outside_suite} instead)"
            if p.outside_suite
            else str(p.protocol)
            for p in spoken
            if p.in_policy
        ]
        return (
            f"the origin speaks {', '.join(parts)} but accepts none of CloudFront's "
            f"{len(CATALOGUE.suites)} suites"
        )
    return None


def render_text(result: Judgment) -> str:
    target = result.target
    out: list[str] = []
    policy = ", ".join(str(p) for p in target.protocols)
    out.append(f"origin {target.display}  SNI {target.server_name or '(none: IP address)'}")
    out.append(f"origin protocol policy: {policy}")
    out.append(
        f"address {result.address or '-'}, {result.connections} connections, "
        f"{result.duration_seconds:.2f}s"
    )
    out.append("")
    if result.compatible:
        out.append("VERDICT: CloudFront can connect to this origin.")
        if result.legacy_only:
            out.append("  warning: only SSLv3 or RC4/3DES suites are usable; upgrade the origin.")
    else:
        out.append("VERDICT: CloudFront can NOT connect (HTTP 502): " + ", ".join(result.reasons))
    out.append("")
    for check in checklist(result):
        mark = "SKIP" if check.passed is None else "PASS" if check.passed else "FAIL"
        out.append(f"[{mark}] {check.title}: {check.finding}")
        for reason in check.reasons:
            out.append(f"       {reason}: {reason.summary}")
            out.append(f"       fix: {reason.remedy}")
    if result.protocols:
        out.append("")
        out.extend(_matrix(result))
    if result.chain is not None:
        out.append("")
        out.append("Certificates as sent by the origin:")
        for cert in result.chain.certificates:
            out.extend(_certificate_lines(cert))
    out.append("")
    out.append("Reproduce with OpenSSL (needs an OpenSSL that still speaks the protocol):")
    out.extend(f"  {command}" for command in openssl_commands(target))
    return "\n".join(out) + "\n"


def _matrix(result: Judgment) -> list[str]:
    protocols = [result.protocol(p) for p in CLOUDFRONT_PROTOCOLS]
    width = max(len(s.name) for s in CATALOGUE.suites) + 2
    header = "CloudFront suite".ljust(width) + "".join(
        f"{p.protocol}{'*' if p.in_policy else ''}".ljust(9) for p in protocols if p
    )
    lines = ["Accepted cipher suites (* = in the origin protocol policy):", header]
    for suite in CATALOGUE.suites:
        cells = []
        for p in protocols:
            if p is None:
                continue
            cells.append(_cell(p, suite.name, suite.valid_in(p.protocol)).ljust(9))
        lines.append(suite.name.ljust(width) + "".join(cells))
    spoken = ", ".join(
        f"{p.protocol}={'yes' if p.spoken else 'no' if p.spoken is False else '?'}"
        for p in protocols
        if p
    )
    lines.append(f"protocol spoken at all: {spoken}")
    tls13 = result.protocol(Protocol.TLSv1_3)
    if tls13 is not None:
        names = ", ".join(s.name for s in tls13.accepted_suites) or "not spoken"
        lines.append(f"TLSv1.3 (information only; CloudFront never uses it to origins): {names}")
    return lines


def _cell(result: ProtocolResult, name: str, valid: bool) -> str:
    if not valid:
        return ""
    for suite in result.picked:
        if suite.suite.name == name:
            if suite.confirmed is False:
                return "picked!"  # picked but the handshake does not complete
            return "yes"
    return "-"


def _certificate_lines(cert: CertificateFacts) -> list[str]:
    days = (cert.not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    key = f"{cert.key_type} {cert.key_bits}" + (f" {cert.key_curve}" if cert.key_curve else "")
    lines = [f"  #{cert.index} {cert.position}: {cert.subject}", f"     issuer: {cert.issuer}"]
    names = [*cert.dns_names, *cert.ip_addresses]
    if names:
        lines.append(f"     SANs: {', '.join(names)}")
    lines.append(
        f"     valid {_iso(cert.not_before)} to {_iso(cert.not_after)} ({days:.0f} days left)"
    )
    lines.append(f"     key {key}, {cert.signature_algorithm}, serial {cert.serial}")
    lines.append(f"     sha256 {cert.sha256_fingerprint}")
    return lines
