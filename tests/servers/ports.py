"""Ports and the threaded TCP server base: re-exported from `exporter.demo.tcp`."""

from __future__ import annotations

from exporter.demo.tcp import HOST, ThreadedTCPServer, free_port, recv_exact

__all__ = ["HOST", "ThreadedTCPServer", "free_port", "recv_exact"]
