"""One socket write per small response: the header block waits for the body."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import uvicorn

from stream_app.api.server import CoalescingTransport, HttpToolsProtocol
from tests.integration.conftest import free_port


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        self.writes.append(b"".join(lines))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


async def test_headers_and_body_go_in_one_write() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())
    t.write(HEAD)
    assert real.writes == []
    t.write(b"{}")
    assert real.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)  # the cancelled flush sends nothing more
    assert real.writes == [HEAD + b"{}"]


async def test_a_lone_header_block_goes_out_on_the_next_loop_turn_or_close() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())
    t.write(HEAD)
    await asyncio.sleep(0)
    assert real.writes == [HEAD]
    t.write(HEAD)
    t.close()
    assert real.writes == [HEAD, HEAD] and real.closed
    t.write(b"partial body")  # not a header block: at once, in order
    assert real.writes[-1] == b"partial body"
    assert t.get_extra_info("peername") == "info:peername"  # the rest is the transport's


async def test_uvicorn_serves_with_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"chunk-1", "more_body": True})
        await send({"type": "http.response.body", "body": b"chunk-2"})

    port = free_port()
    config = uvicorn.Config(app, port=port, http=HttpToolsProtocol, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # up to 5 s
            if server.started:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            for _ in range(3):  # keep-alive: several responses on one connection
                r = await client.get(f"http://127.0.0.1:{port}/")
                assert r.status_code == 200 and r.text == "chunk-1chunk-2"
    finally:
        server.should_exit = True
        await task
