# SPDX-License-Identifier: Apache-2.0
"""permessage-deflate on the built-in endpoints: what an idle connection costs once it was used,
what the 101 agrees to by default (websocket.permessage_deflate), and that real clients
(python websockets, headless Chromium) still exchange compressed messages.

Before websocket.permessage_deflate existed the built-ins kept context takeover both ways: an
idle connection that had sent one message held its zlib compressor and decompressor, ~97 KiB
each, so one client address could pin 50-150 MB with limits.per_ip_websockets connections. The
defaults now answer server_no_context_takeover and client_no_context_takeover to every offer
(RFC 7692 7.1.1), and no zlib state outlives a message."""

import asyncio
import json
import os
import re
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import LEAN_ASAN_ENV, main, read_rss_kb, slow_factor  # noqa: E402
from ws_client import OP_CONT, OP_TEXT  # noqa: E402
from ws_peers import (WsTestCase, browser_available, echo_config, py_connect, py_run,  # noqa: E402
                      run_browser_close, wait_for, ws_url)

CONNECTIONS = 200
PER_CONNECTION_KB_LIMIT = 16.0  # idle RSS per connection once deflate was used (was ~97 KiB)
MESSAGE = ("The quick brown fox jumps over the lazy dog; " * 6)[:240]  # compressible, > 64 bytes
TAIL = b"\x00\x00\xff\xff"


async def settle_rss(pid, seconds=1.0):
    """The RSS (KiB) once it stopped moving for a moment."""
    last = read_rss_kb(pid)
    deadline = time.monotonic() + seconds * 3
    while time.monotonic() < deadline:
        await asyncio.sleep(seconds / 4)
        now = read_rss_kb(pid)
        if now == last:
            break
        last = now
    return last


async def open_many(url, count):
    conns = []
    for start in range(0, count, 50):  # python websockets offers client_max_window_bits
        conns += await asyncio.gather(*(py_connect(url).__aenter__()
                                        for _ in range(min(50, count - start))))
    return conns


async def echo_once(ws):
    await ws.send(MESSAGE)
    return await ws.recv()


async def idle_growth(pid, url, count):
    """Opens `count` connections, measures Portico's RSS, sends one message on each (awaiting its
    echo), measures again with all of them idle. Returns (per-connection KiB, the 101's
    Sec-WebSocket-Extensions, base KiB, after KiB)."""
    warm = await open_many(url, 32)  # per-worker pools and zlib's first allocations, once
    await asyncio.gather(*(echo_once(ws) for ws in warm))
    await asyncio.gather(*(ws.close() for ws in warm))
    conns = await open_many(url, count)
    try:
        base = await settle_rss(pid)
        echoes = await asyncio.gather(*(echo_once(ws) for ws in conns))
        assert all(e == MESSAGE for e in echoes), "an echo differs"
        after = await settle_rss(pid)
        ext = conns[0].response_headers.get("Sec-WebSocket-Extensions") or ""
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return (after - base) / count, ext, base, after


class DeflateMemory(WsTestCase):
    test_timeout = 120

    def echo(self, deflate=None, trace=False):
        websocket = {"ping_interval": 0}
        if deflate is not None:
            websocket["permessage_deflate"] = deflate
        if trace:
            websocket["trace"] = True
            websocket["trace_rate"] = "10000/s"
        observe = [{"path": "/metrics", "handler": "metrics"}, {"path": "/status", "handler": "status"}]
        return self.start_portico(echo_config(websocket=websocket, workers=1, extra_routes=observe), env=LEAN_ASAN_ENV)

    def test_default_answer_gives_up_context_takeover_and_still_compresses(self):
        p = self.echo()
        ws = self.ws_connect(p.port, "/echo", extensions="permessage-deflate; client_max_window_bits")
        self.assertEqual(ws.extensions,
                         "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        data = MESSAGE.encode()
        sizes = []
        for _ in range(3):
            # client_no_context_takeover: each message compressed from an empty window.
            comp = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
            ws.send_frame(OP_TEXT, payload[:-4], rsv=4)
            f = ws.recv_frame()
            self.assertEqual((f.opcode, f.rsv), (OP_TEXT, 4), "the echo was not compressed")
            # server_no_context_takeover: each echo inflates from an empty window.
            self.assertEqual(zlib.decompressobj(-15).decompress(f.payload + TAIL), data)
            sizes.append(len(f.payload))
        self.assertLess(sizes[0], len(data) // 2)
        self.assertEqual(len(set(sizes)), 1, "no context carried over: the same size each time")

    def test_compressed_messages_half_received_at_once_are_bounded_per_worker(self):
        # Each holds a decompressor (~40 KiB) until it ends: a client must not make a worker hold
        # one per connection it may open. Beyond max_inflating_per_worker: close 1013.
        p = self.echo(deflate={"max_inflating_per_worker": 2})
        big = ("The quick brown fox jumps over the lazy dog %d; " * 100) % tuple(range(100))
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = (comp.compress(big.encode()) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
        half = len(payload) // 2

        def connect():
            return self.ws_connect(p.port, "/echo", extensions="permessage-deflate")

        def start_message(ws):
            ws.send_frame(OP_TEXT, payload[:half], fin=False, rsv=4)
            ws.send_ping(b"seen")  # its pong: the fragment before it was read
            self.assertEqual(ws.recv_frame().payload, b"seen")

        def end_message(ws):
            ws.send_frame(OP_CONT, payload[half:], fin=True)
            op, echoed = ws.recv_message(allow_rsv=True)
            self.assertEqual(zlib.decompressobj(-15).decompress(echoed + TAIL).decode(), big)

        a, b, c = connect(), connect(), connect()
        start_message(a)
        start_message(b)
        # A whole compressed message holds nothing after its read: not refused at the bound.
        c.send_frame(OP_TEXT, payload, rsv=4)
        op, echoed = c.recv_message(allow_rsv=True)
        self.assertEqual(zlib.decompressobj(-15).decompress(echoed + TAIL).decode(), big)
        # A third one left half-way is one too many: 1013, and the first two go on.
        c.send_frame(OP_TEXT, payload[:half], fin=False, rsv=4)
        self.assertEqual(c.expect_close()[0], 1013)
        # counted with the route's other limit closes (metrics and status), a and b not
        inflating_closes = re.compile(r'^portico_websocket_limit_closes_total\{route="\*/echo",limit="inflating"\} (\d+)$', re.M)

        def counted():
            m = inflating_closes.search(http_request(p.port, "GET", "/metrics").body.decode())
            return int(m.group(1)) if m else None
        self.assertTrue(wait_for(lambda: counted() == 1, 5 * slow_factor()), "inflating closes: %r" % counted())
        status = json.loads(http_request(p.port, "GET", "/status").body)["routes"]["*/echo"]["websocket"]
        self.assertEqual(status["closed_by_inflating"], 1, status)
        end_message(a)
        # a's ended: room for one more, on a new connection as on an old one.
        d = connect()
        start_message(d)
        end_message(b)
        end_message(d)
        start_message(a)
        end_message(a)

    def test_context_takeover_is_still_available_when_configured(self):
        p = self.echo({"server_no_context_takeover": False, "client_no_context_takeover": False,
                       "client_max_window_bits": 10})
        ws = self.ws_connect(p.port, "/echo", extensions="permessage-deflate; client_max_window_bits")
        self.assertEqual(ws.extensions, "permessage-deflate; client_max_window_bits=10")
        off = self.echo({"enabled": False})
        self.assertIsNone(self.ws_connect(off.port, "/echo", extensions="permessage-deflate").extensions)

    def test_idle_connections_hold_no_zlib_memory(self):
        p = self.echo()
        per_conn, ext, base, after = py_run(idle_growth(p.pid, ws_url(p.port, "/echo"), CONNECTIONS),
                                            timeout=90)
        print("\n  defaults: %d idle connections after one %d-byte message each: RSS %d -> %d KiB, "
              "%.1f KiB per connection (%s)" % (CONNECTIONS, len(MESSAGE), base, after, per_conn, ext))
        self.assertIn("server_no_context_takeover", ext)
        self.assertIn("client_no_context_takeover", ext)
        limit = PER_CONNECTION_KB_LIMIT * (4 if p.uses_asan() else 1)
        self.assertLess(per_conn, limit, "%.1f KiB per idle connection" % per_conn)

        # The same measurement sees zlib's memory when context takeover is configured (what the
        # built-ins did before): this test can fail.
        taking = self.echo({"server_no_context_takeover": False, "client_no_context_takeover": False})
        per_conn, ext, base, after = py_run(
            idle_growth(taking.pid, ws_url(taking.port, "/echo"), CONNECTIONS), timeout=90)
        print("  context takeover both ways: RSS %d -> %d KiB, %.1f KiB per connection (%s)"
              % (base, after, per_conn, ext))
        self.assertNotIn("no_context_takeover", ext)
        if not taking.uses_asan():
            self.assertGreater(per_conn, 3 * PER_CONNECTION_KB_LIMIT)

    def test_chromium_exchanges_compressed_messages(self):
        if not browser_available():
            self.skipTest("node, playwright-core and /usr/bin/chromium are needed")
        p = self.start_portico(echo_config(websocket={
            "ping_interval": 0, "max_lifetime": "2s", "trace": True, "trace_rate": "1000/s"}, workers=1))
        messages = [MESSAGE, MESSAGE + " again", "short"]
        res = run_browser_close(ws_url(p.port, "/echo"), messages)
        self.assertEqual((res["code"], res["echoes"]), (1001, messages), res)
        self.assertEqual(res["extensions"],
                         "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        # Compressed (RSV1 set) in Portico's frame trace: Chromium compresses every message,
        # Portico those of at least min_message_bytes (64).
        trace = "\n".join(p.stderr_lines())
        self.assertEqual(trace.count("client->portico text fin=1 rsv=100"), 3, trace)
        self.assertEqual(trace.count("portico->client text fin=1 rsv=100"), 2, trace)
        self.assertEqual(trace.count("portico->client text fin=1 rsv=000 mask=0 len=5"), 1, trace)


if __name__ == "__main__":
    main()
