"""The tlslite-ng legacy origin: re-exported from `exporter.demo.legacy`.

`python -m tests.servers.legacy ...` still works and takes the same arguments.
"""

from __future__ import annotations

import sys

from exporter.demo.legacy import SUITES, VERSIONS, LegacyConfig, LegacyTLSServer, Suite, main

__all__ = ["SUITES", "VERSIONS", "LegacyConfig", "LegacyTLSServer", "Suite", "main"]

if __name__ == "__main__":
    sys.exit(main())
