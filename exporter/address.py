"""The exporter's listen address: default port and parsing, shared by the CLI and the daemon."""

from __future__ import annotations

DEFAULT_PORT = 10043  # past Prometheus' full 9100-9999 exporter range
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"


def parse_listen_address(text: str) -> tuple[str | None, int]:
    """`HOST:PORT`, `:PORT` (every interface) or `[V6]:PORT`."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"listen address {text!r}: expected HOST:PORT or :PORT")
    host = host.strip("[]")
    return (host or None), int(port_text)
