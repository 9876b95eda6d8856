"""uvicorn's httptools protocol with one socket write per small response instead of two.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start`` and the body as a second write on ``http.response.body``: two
``write`` system calls and two TCP segments for a lookup of a few hundred bytes. A py-spy
profile of the API under load put about a third of a lookup's time in those writes.

:class:`CoalescingTransport` holds a write that ends with the blank line closing a header
block and sends it together with the next write (the body), or at the latest when the event
loop next runs its ready callbacks, or before the transport closes. Anything else is written
at once, so nothing waits for more than one loop turn. :class:`HttpToolsProtocol` (given to
uvicorn as its ``http`` class by ``persona-stream api``) wraps each connection's transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornHttpTools

HEADER_END = b"\r\n\r\n"


class CoalescingTransport:
    """A transport that sends a header block with the write that follows it."""

    __slots__ = ("_flush_handle", "_held", "_loop", "_transport")

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush_handle: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            self._transport.write(held + bytes(data))
        elif isinstance(data, bytes) and data.endswith(HEADER_END):
            self._held = data
            self._flush_handle = self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        self._flush_handle = None
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, lines: Any) -> None:
        self.flush()
        self._transport.writelines(lines)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class HttpToolsProtocol(_UvicornHttpTools):
    """uvicorn's protocol over a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(wrapped)
