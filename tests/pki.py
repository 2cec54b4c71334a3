"""The test CA: re-exported from `exporter.demo.pki`, where the demo uses it too.

`TestPKI` is the name the tests grew up with; it is `DemoPKI` under another name.
"""

from __future__ import annotations

from exporter.demo.pki import *  # noqa: F403
from exporter.demo.pki import DemoPKI
from exporter.demo.pki import __all__ as _demo_all

TestPKI = DemoPKI

__all__ = [*_demo_all, "TestPKI"]
