#!/usr/bin/env python3
"""Coverage-guided fuzzing of configuration loading: YAML syntax and every validation rule.

The input is the file's bytes, decoded as `load_config` does (UTF-8, optional BOM; the rest is
a `ConfigError` there and skipped here), then `parse_config` with this directory as the base for
relative `ca_file` paths. Only `ConfigError` may come out, and its text names the file.

    python fuzz/fuzz_config.py fuzz/corpus/config -max_total_time=600
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["exporter", "yaml"]):
    from exporter.config import ConfigError, parse_config

SOURCE = "fuzz.yml"
BASE_DIR = Path(__file__).resolve().parent


def TestOneInput(data: bytes) -> None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return
    try:
        parse_config(text, SOURCE, BASE_DIR)
    except ConfigError as exc:
        if not str(exc).startswith(f"{SOURCE}: "):
            raise AssertionError(f"the error does not name the file: {exc}") from exc


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
