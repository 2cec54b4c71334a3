"""A probe result for people (text) and programs (JSON): the `check` command's output.

The text follows the troubleshooting article's three causes in its order (name, chain, protocols
and ciphers), then expiry, each with PASS/FAIL, why, and what to do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from .engine.catalogue import Protocol
from .engine.certs import CertificateFacts
from .engine.result import GenerationOutcome, Judgment, ProtocolResult
from .reproduce import openssl_commands
from .view import (
    CellState,
    Matrix,
    checklist,
    handshake_line,
    iso,
    matrix,
    reasons_with_sources,
    request_line,
    spoken_word,
    viewer_status,
)


def certificate_dict(cert: CertificateFacts) -> dict[str, Any]:
    return {
        "position": cert.position,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "common_names": list(cert.common_names),
        "serial": cert.serial,
        "dns_names": list(cert.dns_names),
        "ip_addresses": list(cert.ip_addresses),
        "not_before": iso(cert.not_before),
        "not_after": iso(cert.not_after),
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
    resolution = result.observations.resolution
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
        "started_at": iso(result.started_at),
        "duration_seconds": round(result.duration_seconds, 6),
        "connections": result.connections,
        "success": result.success,
        "compatible": result.compatible,
        "legacy_only": result.legacy_only,
        "reasons": [
            {
                "reason": str(r),
                "source": source,
                "http_status": r.http_status,
                "summary": r.summary,
                "remedy": r.remedy,
            }
            for r, source in reasons_with_sources(result)
        ],
        "viewer_status": viewer_status(result),
        "decided_by": result.decided_by,
        "tls_library": None if result.tls_library is None else asdict(result.tls_library),
        "cloudfront_policy": str(result.generation),
        "cloudfront_handshake": _generation_dict(result.cloudfront),
        "generations": [_generation_dict(g) for g in result.generations],
        "warnings": [
            {"warning": str(w), "summary": w.summary, "detail": detail}
            for w, detail in result.warnings
        ],
        "disagreements": list(result.disagreements),
        "resolution": None if resolution is None else asdict(resolution),
        "addresses": [
            {
                "address": a.address,
                "compatible": a.compatible,
                "reasons": [str(r) for r in a.reasons],
                "sources": [str(x) for x in a.sources],
            }
            for a in result.addresses
        ],
        "http": None if result.http is None else result.http.as_dict(),
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
            "earliest_expiry": iso(chain.earliest_expiry) if chain.earliest_expiry else None,
            "certificates": [certificate_dict(c) for c in chain.certificates],
        },
        "openssl_commands": openssl_commands(target, result.catalogue),
        "log": list(result.log),
    }


def _around_lines(result: Judgment) -> list[str]:
    """One line per address of the name, then the request CloudFront forwards."""
    lines = []
    resolution = result.observations.resolution
    if resolution is not None and len(result.addresses) > 1:
        cut = f" (of {resolution.truncated_from})" if resolution.truncated_from else ""
        lines.append(f"addresses ({resolution.resolver}){cut}:")
    for verdict in result.addresses if len(result.addresses) > 1 else ():
        why = ", ".join(verdict.reasons) or "CloudFront can connect"
        lines.append(f"  {verdict.address}: {'ok' if verdict.compatible else 'FAIL'}: {why}")
    http = result.http
    if http is not None:
        status = f"HTTP {http.status_code}" if http.status_code is not None else http.outcome
        first = (
            f", first byte {http.first_byte_seconds * 1000:.0f} ms"
            if http.first_byte_seconds is not None
            else ""
        )
        detail = f" ({http.detail})" if http.detail else ""
        lines.append(f"request {request_line(result)}: {status}{first}{detail}")
    return lines


def _cloudfront_lines(result: Judgment) -> list[str]:
    """Who decided, CloudFront's own handshake, the other generations, warnings, notes."""
    lines = []
    library = result.tls_library
    if result.cloudfront is not None:
        lines.append(
            f"CloudFront's handshake ({result.cloudfront.handshake.library}, "
            f"{result.cloudfront.policy}): {handshake_line(result.cloudfront)}"
        )
    elif library is not None and library.library == "none":
        lines.append(f"no s2n-tls ({library.reason}): the exporter's own analysis decides")
    others = [g for g in result.generations if g is not result.cloudfront]
    if others:
        lines.append(
            "other policy generations: "
            + "; ".join(f"{g.generation}: {handshake_line(g)}" for g in others)
        )
    for warning, detail in result.warnings:
        lines.append(f"  warning {warning}: {warning.summary} ({detail})")
    for note in result.disagreements:
        lines.append(f"  note: {note}")
    return lines


def _generation_dict(outcome: GenerationOutcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    h = outcome.handshake
    return {
        "generation": outcome.generation,
        "policy": outcome.policy,
        "compatible": outcome.compatible,
        "library": h.library,
        "completed": h.completed,
        "protocol": str(h.protocol) if h.protocol else None,
        "cipher": h.cipher,
        "group": h.group,
        "error": h.error,
        "error_detail": h.error_detail,
        "alert": h.alert,
        "client_certificate_requested": h.client_certificate_requested,
        "peer_chain_certificates": len(h.peer_chain),
    }


def render_text(result: Judgment, now: dt.datetime) -> str:
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
    else:
        reasons = ", ".join(f"{r} ({source})" for r, source in reasons_with_sources(result))
        out.append(f"VERDICT: CloudFront can NOT connect (HTTP {viewer_status(result)}): {reasons}")
    out.extend(_cloudfront_lines(result))
    out.extend(_around_lines(result))
    out.append("")
    for check in checklist(result, now):
        out.append(f"[{check.mark}] {check.title}: {check.finding}")
        for reason in check.reasons:
            out.append(f"       {reason}: {reason.summary}")
            out.append(f"       fix: {reason.remedy}")
    table = matrix(result)
    if table is not None:
        out.append("")
        out.extend(_matrix_lines(result, table))
    if result.chain is not None:
        out.append("")
        out.append("Certificates as sent by the origin:")
        for cert in result.chain.certificates:
            out.extend(_certificate_lines(cert, now))
    out.append("")
    out.append("Reproduce with OpenSSL (needs an OpenSSL that still speaks the protocol):")
    out.extend(f"  {command}" for command in openssl_commands(target, result.catalogue))
    return "\n".join(out) + "\n"


def _matrix_lines(result: Judgment, table: Matrix) -> list[str]:
    columns = table.cloudfront_columns
    width = max(len(s.name) for s in table.rows) + 2
    header = "CloudFront suite".ljust(width) + "".join(
        f"{c.protocol}{'*' if c.in_policy else ''}".ljust(9) for c in columns
    )
    lines = ["Accepted cipher suites (* = in the origin protocol policy):", header]
    for suite in table.rows:
        cells = "".join(_CELL_TEXT[table.cell(c.protocol, suite).state].ljust(9) for c in columns)
        lines.append(suite.name.ljust(width) + cells)
    spoken = ", ".join(f"{c.protocol}={spoken_word(c.spoken)}" for c in columns)
    lines.append(f"protocol spoken at all: {spoken}")
    if table.column(Protocol.TLSv1_3) is not None:
        names = ", ".join(s.name for s in table.accepted(Protocol.TLSv1_3)) or "not spoken"
        lines.append(f"TLSv1.3 (only the 2025 generation offers it to origins): {names}")
    return lines


_CELL_TEXT = {
    CellState.ACCEPTED: "yes",
    CellState.UNCONFIRMED: "yes",
    CellState.FAILED: "picked!",  # picked but the handshake does not complete
    CellState.REFUSED: "-",
    CellState.INVALID: "",
}


def _certificate_lines(cert: CertificateFacts, now: dt.datetime) -> list[str]:
    days = (cert.not_after - now).total_seconds() / 86400
    key = f"{cert.key_type} {cert.key_bits}" + (f" {cert.key_curve}" if cert.key_curve else "")
    lines = [f"  #{cert.index} {cert.position}: {cert.subject}", f"     issuer: {cert.issuer}"]
    names = [*cert.dns_names, *cert.ip_addresses]
    if names:
        lines.append(f"     SANs: {', '.join(names)}")
    lines.append(
        f"     valid {iso(cert.not_before)} to {iso(cert.not_after)} ({days:.0f} days left)"
    )
    lines.append(f"     key {key}, {cert.signature_algorithm}, serial {cert.serial}")
    lines.append(f"     sha256 {cert.sha256_fingerprint}")
    return lines
