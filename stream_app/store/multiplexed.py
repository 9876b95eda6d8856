"""One pipelined Redis connection for the API's hot reads (lookups, ``/v1/personas``).

redis-py's asyncio client takes a connection from its pool for every command and gives it
back after the reply: ≈70 µs of CPU per lookup on this machine, more than the rest of the
request. Here every coroutine writes its command to ONE connection and waits for its reply
in order (Redis answers a connection's commands in the order they came), parsed by hiredis
(the C parser redis-py uses too). Same Redis commands, same single round trip per lookup;
≈10-15 µs of CPU each.

Commands issued in the same turn of the event loop (the lookups of several connections that
became readable together) leave in one socket write, sent when the loop next runs its
ready callbacks: one system call for many lookups under load, one loop turn of delay alone.

Only for commands whose reply comes at once (no blocking commands, no pub/sub). A lost
connection fails every waiting command with ``ConnectionError`` (the API answers 503) and
the next command connects again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis


class RedisReplyError(RuntimeError):
    """Redis answered the command with an error (e.g. ``NOSCRIPT``)."""


def _expire(future: asyncio.Future[Any], timeout_s: float) -> None:
    if not future.done():
        future.set_exception(ConnectionError(f"Redis did not answer within {timeout_s:g}s"))


def encode_command(args: tuple[Any, ...]) -> bytes:
    """RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._outgoing: list[bytes] = []  # commands of this loop turn, written together

    def send(self, command: bytes) -> None:
        """Queue ``command`` for the write at the end of this loop turn."""
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(command)

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self.transport is not None and not self.closed and outgoing:
            self.transport.write(b"".join(outgoing))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(ConnectionError(f"Redis protocol error: {exc}"))
                if self.transport is not None:
                    self.transport.close()
                return
            if reply is False:
                return
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self._fail(ConnectionError("unexpected reply from Redis"))
                if self.transport is not None:
                    self.transport.close()
                return
            future = self.waiting.popleft()
            if future.done():  # its caller gave up (timeout); the reply is dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(RedisReplyError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)


class RedisMultiplexer:
    def __init__(self, url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._ssl = parts.scheme == "rediss"
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        path = parts.path.lstrip("/")
        self._db = int(path) if path else 0
        self._timeout = timeout_s
        self._connect_timeout = connect_timeout_s
        self._protocol: _Protocol | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        async with self._lock:
            if self._protocol is not None and not self._protocol.closed:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                _, fresh = await asyncio.wait_for(
                    loop.create_connection(
                        _Protocol,
                        self._host,
                        self._port,
                        ssl=ssl.create_default_context() if self._ssl else None,
                    ),
                    self._connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(f"cannot connect to Redis: {exc!r}") from exc
            # Commands sent from now on queue behind AUTH/SELECT on the same connection.
            self._protocol = fresh
            if self._password is not None:
                auth = ("AUTH", self._username, self._password) if self._username else None
                await self._send(fresh, auth or ("AUTH", self._password))
            if self._db:
                await self._send(fresh, ("SELECT", self._db))
            return fresh

    async def _send(self, protocol: _Protocol, args: tuple[Any, ...]) -> Any:
        transport = protocol.transport
        if transport is None or protocol.closed:
            raise ConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append(future)  # replies come in the order the commands are queued
        protocol.send(encode_command(args))
        timer = loop.call_later(self._timeout, _expire, future, self._timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply (bulk strings as ``bytes``)."""
        return await self._send(await self._connected(), args)

    async def evalsha(self, script: str, sha: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its SHA-1, loading it once when Redis does not know it."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.execute("SCRIPT", "LOAD", script)
        return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def close(self) -> None:
        protocol = self._protocol
        self._protocol = None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
