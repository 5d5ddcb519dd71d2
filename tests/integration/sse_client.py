"""A minimal Server-Sent Events reader over httpx, for the /follow tests and benchmark.

Reads a ``text/event-stream`` response line by line (the SSE format: ``id:``, ``event:``,
``data:`` fields, a blank line ends an event, ``:`` starts a comment such as a ping).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEvent:
    id: str
    event: str
    data: str


class _Parser:
    def __init__(self) -> None:
        self.id = self.event = ""
        self.data: list[str] = []

    def feed(self, line: str) -> SSEvent | None:
        line = line.rstrip("\r")
        if not line:
            if not self.data and not self.event:
                return None
            out = SSEvent(self.id, self.event or "message", "\n".join(self.data))
            self.event, self.data = "", []
            return out
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            self.id = value
        elif field == "event":
            self.event = value
        elif field == "data":
            self.data.append(value)
        return None


def events(lines: Iterator[str]) -> Iterator[SSEvent]:
    parser = _Parser()
    for line in lines:
        ev = parser.feed(line)
        if ev is not None:
            yield ev


async def aevents(lines: AsyncIterator[str]) -> AsyncIterator[SSEvent]:
    parser = _Parser()
    async for line in lines:
        ev = parser.feed(line)
        if ev is not None:
            yield ev
