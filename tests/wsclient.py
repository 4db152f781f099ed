"""A plain signalling client for tests: requests with ids, and a log of everything received."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp


class Client:
    def __init__(self, http: aiohttp.ClientSession, url: str, name: str = "") -> None:
        self.http = http
        self.url = url
        self.name = name
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.inbox: list[dict[str, Any]] = []
        self.id: str = ""
        self.welcome: dict[str, Any] = {}
        self._next = 0
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.closed = asyncio.Event()

    async def connect(self, headers: dict[str, str] | None = None) -> Client:
        self.ws = await self.http.ws_connect(self.url, headers=headers)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data = msg.json()
                items = data["messages"] if data.get("type") == "batch" else [data]
                self.inbox.extend(items)
                self._changed.set()
        finally:
            self.closed.set()
            self._changed.set()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def request(self, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        self._next += 1
        ref = self._next
        await self.send({**message, "id": ref})
        return await self.wait(lambda m: m.get("ref") == ref, timeout)

    async def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
                   ) -> dict[str, Any]:
        """The first message (already received or coming) that matches."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for message in self.inbox[seen:]:
                if predicate(message):
                    return message
            seen = len(self.inbox)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.closed.is_set() and seen == len(self.inbox)):
                raise TimeoutError(f"{self.name}: no matching message; got {self.inbox[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_type(self, type_: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        return await self.wait(
            lambda m: m.get("type") == type_ and all(m.get(k) == v for k, v in fields.items()),
            timeout,
        )

    def received(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.inbox if m.get("type") == kind]

    async def join(self, room: str, **extra: Any) -> dict[str, Any]:
        reply = await self.request({"type": "join", "room": room, "name": self.name, **extra})
        if reply.get("type") == "welcome":
            self.id = reply["participant"]
            self.welcome = reply
        return reply

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
