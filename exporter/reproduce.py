"""The `openssl s_client` commands from AWS's troubleshooting article, filled in for one origin.

People trust what they can re-run. These are the article's commands (one per protocol, with
CloudFront's suites and `-servername`), so an operator can confirm any verdict by hand on a
machine whose OpenSSL still speaks the protocol.
"""

from __future__ import annotations

import shlex

from .engine.catalogue import CATALOGUE, Catalogue, Protocol
from .engine.target import ProbeTarget


def openssl_command(
    target: ProbeTarget, protocol: Protocol, catalogue: Catalogue = CATALOGUE
) -> str:
    connect_to = target.address or target.host  # with --resolve, where the probe connected
    host = f"[{connect_to}]" if ":" in connect_to else connect_to
    parts = ["openssl", "s_client", protocol.openssl_flag]
    if protocol.cloudfront:
        parts += ["-cipher", catalogue.openssl_cipher_string(protocol)]
    parts += ["-connect", f"{host}:{target.port}"]
    if target.server_name:
        parts += ["-servername", target.server_name]
    return "echo | " + " ".join(shlex.quote(p) for p in parts)


def openssl_commands(target: ProbeTarget, catalogue: Catalogue = CATALOGUE) -> list[str]:
    """One command per protocol of the origin's policy, oldest first."""
    return [openssl_command(target, p, catalogue) for p in target.protocols]
