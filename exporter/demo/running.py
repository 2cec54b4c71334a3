"""A with-block for anything that starts and stops (servers, child processes, fleets)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self


class Running:
    """`with thing:` starts it and stops it on the way out, whatever happened inside."""

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
