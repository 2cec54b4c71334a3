"""The engine's one error tree: everything a server or resolver can do wrong ends up here.

A server refusing a cipher suite is *not* an error (see `hello.Refusal`); these are the
conditions that stop a probe from learning anything on a connection.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose; carries the failure reason name."""

    reason = "handshake_failed"


class ResolveError(EngineError):
    reason = "dns_failed"


class ConnectError(EngineError):
    reason = "connect_failed"


class ProbeTimeout(EngineError):
    reason = "timeout"


class NotTLSError(EngineError):
    """The peer answered, but not with TLS records (plain HTTP, SSH banner, garbage)."""

    reason = "not_tls"


class ProtocolViolation(EngineError):
    """The peer speaks TLS but sent something malformed or beyond the engine's limits."""

    reason = "handshake_failed"


class BudgetExceeded(ProtocolViolation):
    """The origin sent more bytes in one probe than the probe's budget: the probe stops."""
