"""The API's pipelined Redis connection: order, errors, scripts, lost connections, time-outs."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
import redis

from stream_app.store.multiplexed import RedisMultiplexer, RedisReplyError, encode_command


def test_commands_are_resp_arrays_of_bulk_strings() -> None:
    assert encode_command(("GET", "k", 12, b"\xff")) == (
        b"*4\r\n$3\r\nGET\r\n$1\r\nk\r\n$2\r\n12\r\n$1\r\n\xff\r\n"
    )


async def test_concurrent_commands_get_their_own_replies(redis_url: str, unique: str) -> None:
    mux = RedisMultiplexer(redis_url)
    try:
        keys = [f"test:{unique}:{i}" for i in range(200)]
        await asyncio.gather(
            *(mux.execute("SET", k, f"value-{i}", "EX", 60) for i, k in enumerate(keys))
        )
        replies = await asyncio.gather(*(mux.execute("GET", k) for k in keys))
        assert replies == [f"value-{i}".encode() for i in range(200)]
        with pytest.raises(RedisReplyError, match="WRONGTYPE"):
            await mux.execute("HGETALL", keys[0])
        assert await mux.execute("DEL", *keys) == 200
    finally:
        await mux.close()


async def test_commands_of_one_loop_turn_leave_in_one_write(redis_url: str, unique: str) -> None:
    mux = RedisMultiplexer(redis_url)
    try:
        await mux.execute("PING")  # connected
        protocol = mux._protocol
        assert protocol is not None and protocol.transport is not None
        writes: list[bytes] = []
        real_write = protocol.transport.write

        def counting_write(data: bytes) -> None:
            writes.append(data)
            real_write(data)

        protocol.transport.write = counting_write  # type: ignore[method-assign]
        replies = await asyncio.gather(*(mux.execute("ECHO", f"{unique}-{i}") for i in range(20)))
        assert replies == [f"{unique}-{i}".encode() for i in range(20)]
        assert len(writes) == 1 and writes[0].count(b"ECHO") == 20
    finally:
        await mux.close()


async def test_an_unknown_script_is_loaded_once(redis_url: str, unique: str) -> None:
    script = f"return '{unique}'"
    sha = hashlib.sha1(script.encode()).hexdigest()
    mux = RedisMultiplexer(redis_url)
    try:
        assert await mux.evalsha(script, sha, [], []) == unique.encode()
        assert await mux.execute("SCRIPT", "EXISTS", sha) == [1]
    finally:
        await mux.close()


async def test_a_lost_connection_is_opened_again(redis_url: str) -> None:
    mux = RedisMultiplexer(redis_url)
    admin = redis.Redis.from_url(redis_url)
    try:
        own_id = await mux.execute("CLIENT", "ID")
        admin.client_kill_filter(_id=str(own_id))  # only this test's own connection
        for _ in range(50):  # the loss is seen when the socket closes
            try:
                if (
                    await mux.execute("PING") == b"PONG"
                    and await mux.execute("CLIENT", "ID") != own_id
                ):
                    break
            except ConnectionError:
                pass
            await asyncio.sleep(0.02)
        assert await mux.execute("CLIENT", "ID") != own_id
    finally:
        admin.close()
        await mux.close()


async def test_a_silent_server_is_a_connection_error_in_bounded_time() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mux = RedisMultiplexer(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionError, match="did not answer"):
            await mux.execute("PING")
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await mux.close()
        server.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectionError, match="cannot connect"):
        await RedisMultiplexer(f"redis://127.0.0.1:{port}/0").execute("PING")
