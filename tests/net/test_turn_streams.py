"""Hostile input on TURN over TCP (RFC 8656 §3.1, RFC 8489 §6.2.2) costs only that connection:
garbage, a huge announced length, frames split byte by byte, too many connections from one
source. The relay keeps answering everyone else and counts what it cut off."""

from __future__ import annotations

import asyncio
import random
import time

from ports import free_port_block

from hybridvoice.media.mras import MrasVerifier
from hybridvoice.media.stun import Method, StunClass, StunMessage, encode, parse
from hybridvoice.media.turn_state import TurnConfig
from hybridvoice.net.turn import TurnRelay

HOST = "127.0.0.1"


async def _relay() -> TurnRelay:
    first = free_port_block(9)
    return await TurnRelay.open(
        TurnConfig(realm="r", external_ip=HOST),
        MrasVerifier(b"secret", wall=time.time),
        listen=(HOST, 0), relay_host=HOST, ports=(first, min(first + 8, 65535)), tcp=True,
        tcp_port=0,
    )  # fmt: skip


async def _binding(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One Binding request answered on this connection."""
    tid = random.randbytes(12)
    writer.write(encode(StunMessage(Method.BINDING, StunClass.REQUEST, tid)))
    await writer.drain()
    header = await asyncio.wait_for(reader.readexactly(20), 10)
    body = await asyncio.wait_for(reader.readexactly(int.from_bytes(header[2:4], "big")), 10)
    reply = parse(header + body)
    assert (reply.cls, reply.transaction_id) == (StunClass.SUCCESS, tid)


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


def test_garbage_costs_only_its_connection() -> None:
    async def run() -> None:
        relay = await _relay()
        address = relay.tcp_address
        assert address is not None and address[1] != relay.address[1]  # its own TCP port
        try:
            good = await asyncio.open_connection(*address)
            await _binding(*good)
            bad_r, bad_w = await asyncio.open_connection(*address)
            bad_w.write(b"\xff\xfe garbage that is neither STUN nor ChannelData")
            assert await _closed(bad_r)
            await _binding(*good)  # the other connection is untouched
            assert relay.counters["stream_garbage"] == 1
            good[1].close()
        finally:
            relay.close()

    asyncio.run(run())


def test_malformed_stun_is_counted_and_the_connection_stays() -> None:
    async def run() -> None:
        relay = await _relay()
        address = relay.tcp_address
        assert address is not None
        try:
            reader, writer = await asyncio.open_connection(*address)
            # a STUN header announcing 8 bytes of attributes that are not attributes
            writer.write(b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\xff" * 8)
            await _binding(reader, writer)
            assert relay.counters["malformed"] == 1
            writer.close()
        finally:
            relay.close()

    asyncio.run(run())


def test_huge_length_then_hang_up_and_split_frames() -> None:
    async def run() -> None:
        relay = await _relay()
        address = relay.tcp_address
        assert address is not None
        try:
            # the largest length a header can announce, then only part of it, then gone
            _r1, w1 = await asyncio.open_connection(*address)
            w1.write(b"\x00\x01\xff\xff\x21\x12\xa4\x42" + bytes(12) + b"\0" * 30000)
            await w1.drain()
            w1.close()
            # ChannelData announcing 65535 bytes on a channel nobody bound, sent whole
            r2, w2 = await asyncio.open_connection(*address)
            w2.write(b"\x40\x00\xff\xff" + bytes(0x10000))
            # a Binding request one byte at a time
            reader, writer = await asyncio.open_connection(*address)
            tid = b"byte-by-byte"
            for byte in encode(StunMessage(Method.BINDING, StunClass.REQUEST, tid)):
                writer.write(bytes([byte]))
                await writer.drain()
            header = await asyncio.wait_for(reader.readexactly(20), 10)
            body = await asyncio.wait_for(
                reader.readexactly(int.from_bytes(header[2:4], "big")), 10
            )
            assert parse(header + body).transaction_id == tid
            await _binding(r2, w2)  # the ChannelData was dropped, the connection serves on
            assert relay.counters["no_channel"] == 1
            writer.close()
            w2.close()
        finally:
            relay.close()

    asyncio.run(run())


def test_connections_per_source_are_limited() -> None:
    async def run() -> None:
        relay = await _relay()
        relay.max_streams_per_source = 3
        address = relay.tcp_address
        assert address is not None
        try:
            kept = [await asyncio.open_connection(*address) for _ in range(3)]
            for conn in kept:
                await _binding(*conn)
            extra_r, _ = await asyncio.open_connection(*address)
            assert await _closed(extra_r)
            assert relay.counters["stream_source_limit"] == 1
            await _binding(*kept[0])
            kept[0][1].close()
            await asyncio.wait_for(kept[0][0].read(), 10)
            for _ in range(100):  # the server sees the close; then a new one is let in
                if relay.stream_clients < 3:
                    break
                await asyncio.sleep(0.05)
            await _binding(*await asyncio.open_connection(*address))
        finally:
            relay.close()

    asyncio.run(run())
