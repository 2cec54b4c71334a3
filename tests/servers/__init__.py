"""Real TLS origins on 127.0.0.1 for tests, the demo and benchmarks.

nginx (system OpenSSL 3) serves mainstream setups; tlslite-ng serves what OpenSSL 3 dropped
(SSLv3, RC4, 3DES); `broken` holds origins that fail in one precise way.
"""

from tests.servers.broken import (
    HandshakeFailsAfterHelloServer,
    PlainHTTPServer,
    SilentServer,
    closed_port,
)
from tests.servers.legacy import LegacyConfig, LegacyTLSServer
from tests.servers.nginx import NginxError, NginxServer, NginxSite
from tests.servers.ports import ThreadedTCPServer, free_port

__all__ = [
    "HandshakeFailsAfterHelloServer",
    "LegacyConfig",
    "LegacyTLSServer",
    "NginxError",
    "NginxServer",
    "NginxSite",
    "PlainHTTPServer",
    "SilentServer",
    "ThreadedTCPServer",
    "closed_port",
    "free_port",
]
