# SPDX-License-Identifier: Apache-2.0
"""Conformance of Portico's HTTP/2 framing layer (issue 11), after h2spec's case list (h2spec
itself is not packaged in Debian): frames built by hand (tests/support/h2_frames.py, HPACK from
python3-hpack) and the exact answer RFC 9113 requires asserted: a connection error is a GOAWAY
with its code and then the end of the connection, a stream error an RST_STREAM with its code on
a connection that still answers a PING. Covered: the preface, frame format and sizes, stream
states and identifiers, SETTINGS (values, ACK, synchronization, flood), PING, GOAWAY,
WINDOW_UPDATE and flow-control windows (negative ones, overflow, DATA beyond the window, the
window given back for DATA on reset streams and for DATA that came before a WebSocket session
started), HPACK errors and bombs, CONTINUATION (order, floods: CVE-2024-27316), malformed
requests (RFC 9113 8.1-8.3), a header block left unfinished past client_header_timeout, GOAWAY on
graceful stop, and request trailers forwarded to a chunked HTTP/1.1 upstream request."""

import json
import os
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import h2_frames as h  # noqa: E402
from backends import free_port  # noqa: E402
from h2_frames import RawH2  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, slow_factor  # noqa: E402
from woh_backend import WohBackend  # noqa: E402
from ws_peers import start_raw_ws_backend  # noqa: E402

MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE's initial value: Portico does not raise it


def masked_text(payload):
    """One masked WebSocket text frame (RFC 6455 5.3; a zero mask keeps the bytes readable)."""
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + b"\0\0\0\0" + payload


class Http2Case(PorticoTestCase):
    """Portico on an h2c listener (one worker), and the assertions of RFC 9113 5.4."""

    def start(self, limits=None, routes=None, upstreams=None):
        if routes is None:
            self.backend = self.start_backend(name="b")
            routes = [{"path": "/healthz", "handler": "health"}, {"path": "/", "upstream": "app"}]
            upstreams = {"app": {"servers": [self.backend.address]}}
        self.p = self.start_portico(make_config(routes=routes, upstreams=upstreams, workers=1, limits=limits,
                                                listeners=[{"address": "127.0.0.1:0", "http2": True}]))
        return self.p

    def connect(self, **kw):
        c = RawH2(self.p.port, **kw)
        self.addCleanup(c.close)
        return c

    def assertConnectionError(self, c, code, msg=None):
        """RFC 9113 5.4.1: GOAWAY with the code, then the connection is closed."""
        got = c.goaway(5 * slow_factor())
        self.assertIsNotNone(got, msg or "no GOAWAY")
        self.assertEqual(got[1], code, msg)
        self.assertTrue(c.wait_closed(5 * slow_factor()), msg or "the connection stays open after GOAWAY")

    def assertStreamError(self, c, stream_id, code, msg=None, or_connection_error=False):
        """RFC 9113 5.4.2: RST_STREAM with the code; the connection goes on. With
        or_connection_error, a GOAWAY with the code passes too (5.4.2: an endpoint MAY treat a
        stream error as a connection error; nghttp2 does for some)."""
        got = c.wait_for(lambda f: f[0] == h.RST_STREAM and f[2] == stream_id or f[0] == h.GOAWAY, 5 * slow_factor())
        self.assertIsNotNone(got, msg or "no RST_STREAM")
        if got[0] == h.GOAWAY and or_connection_error:
            self.assertConnectionError(c, code, msg)
            return
        self.assertEqual((got[0], struct.unpack("!I", got[3][-4:])[0]), (h.RST_STREAM, code), msg)
        self.assertTrue(c.alive(), msg or "the connection did not survive a stream error")

    def run_connection_errors(self, cases):
        for name, send, code in cases:
            with self.subTest(name):
                c = self.connect()
                send(c)
                self.assertConnectionError(c, code, name)


class Http2Framing(Http2Case):

    # ---- 3.4 / 3.5: the connection preface ----------------------------------------------------

    def test_preface(self):
        self.start()
        # The server's preface is a SETTINGS frame, its first frame (RawH2 checks it), and it
        # acknowledges ours.
        c = self.connect()
        self.assertIsNotNone(c.wait_for(lambda f: f[0] == h.SETTINGS and f[1] & h.ACK), "our SETTINGS not ACKed")
        self.assertEqual(c.server_settings.get(h.MAX_CONCURRENT_STREAMS), 100)
        # An invalid preface ends the TCP connection without an answer in any protocol.
        c = self.connect(handshake=False)
        c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + h.settings())
        self.assertTrue(c.wait_closed(), "an invalid preface left the connection open")
        # (the server's own preface may have gone out first: SETTINGS and its window)
        self.assertFalse([f for f in c.frames if f[0] not in (h.SETTINGS, h.WINDOW_UPDATE)], c.frames)

    # ---- 4: frame format, sizes, header blocks --------------------------------------------------

    def test_frames_and_flags_to_ignore(self):
        self.start()
        c = self.connect()
        # 4.1 / 5.5: an unknown type is discarded, undefined flags and the reserved bit ignored.
        c.send(h.frame(0x16, 0, 0, b"unknown"), h.frame(h.PING, 0x16, 0, b"flags..."))
        self.assertIsNotNone(c.wait_for(lambda f: f[0] == h.PING and f[1] == h.ACK and f[3] == b"flags..."))
        c.send(c.headers(1 | 0x80000000, c.fields("/healthz")))
        self.assertEqual(c.response(1)[0], 200)
        # 6.5.2: an unknown setting is ignored (and acknowledged).
        def acks():
            return len([f for f in c.frames if f[0] == h.SETTINGS and f[1] & h.ACK])
        before = acks()
        c.send(h.settings((0xFF, 1)))
        self.assertIsNotNone(c.wait_for(lambda f: acks() > before), "a SETTINGS with an unknown id not ACKed")
        # 7: unknown error codes trigger nothing special.
        c.request(3, "/slow?delay=5")
        c.send(h.rst_stream(3, 0xFF))
        self.assertTrue(c.alive())
        self.assertIsNone(c.goaway(0.2))

    def test_frame_size(self):
        self.start()
        # 4.2: a DATA frame of 2^14 octets is taken whole.
        c = self.connect()
        c.request(1, "/echo/max", "POST", [("content-length", str(MAX_FRAME))], end_stream=False)
        c.send(h.data(1, b"d" * MAX_FRAME, end=True))
        status, _, body = c.response(1)
        self.assertEqual((status, json.loads(body)["body_len"]), (200, MAX_FRAME))

        def big_headers(c):
            c.send(c.headers(1, c.encoder.encode(c.fields(extra=[("x-big", "b" * (MAX_FRAME + 10))]),
                                                 huffman=False)))

        def big_data(c):
            c.request(1, "/echo", "POST", end_stream=False)
            c.send(h.data(1, b"d" * (MAX_FRAME + 1)))

        self.run_connection_errors([
            ("DATA beyond SETTINGS_MAX_FRAME_SIZE", big_data, h.FRAME_SIZE_ERROR),
            ("HEADERS beyond SETTINGS_MAX_FRAME_SIZE", big_headers, h.FRAME_SIZE_ERROR),
        ])

    def test_header_block_sequence(self):
        """4.3 and 6.10: a header block is HEADERS then CONTINUATIONs on the same stream, and
        nothing else in between."""
        self.start()
        c = self.connect()
        block = c.block(c.fields("/healthz"))
        parts = [block[i:i + 3] for i in range(0, len(block), 3)]
        c.send(h.frame(h.HEADERS, h.END_STREAM, 1, parts[0]),
               *[h.frame(h.CONTINUATION, h.END_HEADERS if i == len(parts) - 1 else 0, 1, p)
                 for i, p in enumerate(parts[1:], 1)])
        self.assertEqual(c.response(1)[0], 200, "a block in many CONTINUATION frames")

        def open_block(c, stream_id=1):
            c.send(c.headers(stream_id, c.fields("/healthz"), end_headers=False))

        def then(*frames):
            return lambda c: (open_block(c), c.send(*frames))

        self.run_connection_errors([
            ("invalid header block fragment", lambda c: c.send(c.headers(1, b"\xff\xff\xff\xff\xff")),
             h.COMPRESSION_ERROR),
            ("PRIORITY inside a header block", then(h.frame(h.PRIORITY, 0, 1, struct.pack("!IB", 0, 15))),
             h.PROTOCOL_ERROR),
            ("HEADERS of another stream inside a header block",
             then(h.frame(h.HEADERS, h.END_HEADERS | h.END_STREAM, 3, b"\x82")), h.PROTOCOL_ERROR),
            ("unknown frame inside a header block", then(h.frame(0x16, 0, 1, b"x")), h.PROTOCOL_ERROR),
            ("CONTINUATION followed by DATA",
             then(h.frame(h.CONTINUATION, 0, 1, b""), h.data(1, b"x")), h.PROTOCOL_ERROR),
            ("CONTINUATION on stream 0", then(h.frame(h.CONTINUATION, h.END_HEADERS, 0, b"")), h.PROTOCOL_ERROR),
            ("CONTINUATION of another stream", then(h.frame(h.CONTINUATION, h.END_HEADERS, 3, b"")),
             h.PROTOCOL_ERROR),
            ("CONTINUATION after END_HEADERS",
             lambda c: c.send(c.headers(1, c.fields("/slow?delay=2")), h.frame(h.CONTINUATION, h.END_HEADERS, 1, b"")),
             h.PROTOCOL_ERROR),
            ("CONTINUATION after a CONTINUATION with END_HEADERS",
             then(h.frame(h.CONTINUATION, h.END_HEADERS, 1, b""), h.frame(h.CONTINUATION, h.END_HEADERS, 1, b"")),
             h.PROTOCOL_ERROR),
            ("CONTINUATION after DATA",
             lambda c: (c.request(1, "/slow?delay=2", "POST", end_stream=False),
                        c.send(h.data(1, b"x"), h.frame(h.CONTINUATION, h.END_HEADERS, 1, b""))),
             h.PROTOCOL_ERROR),
        ])

    # ---- 5.1: stream states and identifiers -----------------------------------------------------

    def test_frames_on_idle_streams_and_bad_identifiers(self):
        self.start()
        self.run_connection_errors([
            ("DATA on an idle stream", lambda c: c.send(h.data(1, b"x")), h.PROTOCOL_ERROR),
            ("RST_STREAM on an idle stream", lambda c: c.send(h.rst_stream(1)), h.PROTOCOL_ERROR),
            ("WINDOW_UPDATE on an idle stream", lambda c: c.send(h.window_update(1, 100)), h.PROTOCOL_ERROR),
            ("CONTINUATION on an idle stream",
             lambda c: c.send(h.frame(h.CONTINUATION, h.END_HEADERS, 1, c.block(c.fields("/healthz")))),
             h.PROTOCOL_ERROR),
            ("an even stream identifier", lambda c: c.request(2, "/healthz"), h.PROTOCOL_ERROR),
            ("a stream identifier lower than the last", lambda c: (c.request(5, "/healthz"), c.request(3, "/healthz")),
             h.PROTOCOL_ERROR),
            ("a skipped stream identifier, later", lambda c: (c.request(1, "/healthz"), c.request(7, "/healthz"),
                                                             c.request(9, "/healthz"), c.request(3, "/healthz")),
             h.PROTOCOL_ERROR),
            ("DATA on stream 0", lambda c: c.send(h.data(0, b"x")), h.PROTOCOL_ERROR),
            ("HEADERS on stream 0", lambda c: c.send(c.headers(0, c.fields("/healthz"))), h.PROTOCOL_ERROR),
            ("RST_STREAM on stream 0", lambda c: c.send(h.rst_stream(0)), h.PROTOCOL_ERROR),
            ("PUSH_PROMISE from a client",
             lambda c: (c.request(1, "/slow?delay=2"),
                        c.send(h.frame(h.PUSH_PROMISE, h.END_HEADERS, 1, struct.pack("!I", 2) + c.block(c.fields())))),
             h.PROTOCOL_ERROR),
            ("DATA with a pad length beyond its payload",
             lambda c: (c.request(1, "/echo", "POST", end_stream=False),
                        c.send(h.frame(h.DATA, h.PADDED, 1, bytes([10]) + b"abc"))), h.PROTOCOL_ERROR),
            ("HEADERS with a pad length beyond its payload",
             lambda c: c.send(h.frame(h.HEADERS, h.PADDED | h.END_HEADERS | h.END_STREAM, 1,
                                      bytes([200]) + c.block(c.fields("/healthz")))), h.PROTOCOL_ERROR),
            ("RST_STREAM of 3 octets",
             lambda c: (c.request(1, "/slow?delay=2"), c.send(h.frame(h.RST_STREAM, 0, 1, b"\0\0\0"))),
             h.FRAME_SIZE_ERROR),
        ])

    def test_frames_on_half_closed_and_closed_streams(self):
        self.start()
        # half-closed (remote): the client ended its side; DATA or HEADERS on it are
        # STREAM_CLOSED (5.1; nghttp2 makes it a connection error, which 5.4.2 allows).
        for name, frame in (("DATA", lambda c: h.data(1, b"x")),
                            ("HEADERS", lambda c: c.headers(1, c.block([("x-trailer", "1")])))):
            with self.subTest("half-closed (remote): " + name):
                c = self.connect()
                c.request(1, "/slow?delay=2")
                c.send(frame(c))
                self.assertStreamError(c, 1, h.STREAM_CLOSED, or_connection_error=True)
        # closed, after the client reset the stream: RFC 9113 5.1 lets an endpoint ignore what
        # was in flight; Portico forgets closed streams and ignores their frames, and the
        # connection (and its window) goes on.
        c = self.connect()
        c.request(1, "/slow?delay=2", "POST", end_stream=False)
        c.send(h.rst_stream(1), h.data(1, b"x" * 1000, end=True))
        self.assertTrue(c.alive())
        self.assertIsNone(c.goaway(0.2))
        # closed after a complete exchange: the same.
        c.request(3, "/healthz")
        self.assertEqual(c.response(3)[0], 200)
        c.send(h.data(3, b"late", end=True), c.headers(3, [("x-late", "1")]))
        self.assertTrue(c.alive())
        # Skipping ids is allowed (5.1.1); the skipped ones are closed for good (next test).
        c.request(9, "/healthz")
        self.assertEqual(c.response(9)[0], 200)

    def test_data_on_reset_streams_gives_the_connection_window_back(self):
        """DATA a client had in flight when its stream was reset still counts against the
        connection's window (6.9): Portico must give it back, or the connection starves."""
        self.start(limits={"http2_stream_window": "16KiB"})
        c = self.connect()
        window = 65535 + 4 * 16384  # what Portico raises its connection window to, at least
        sent, sid = 0, 1
        while sent < 3 * window:
            c.request(sid, "/slow?delay=5", "POST", end_stream=False)
            c.send(h.rst_stream(sid), *[h.data(sid, b"x" * MAX_FRAME) for _ in range(4)])
            sent += 4 * MAX_FRAME
            sid += 2
        self.assertTrue(c.alive())
        credit = 65535 + sum(struct.unpack("!I", f[3])[0] for f in c.frames if f[0] == h.WINDOW_UPDATE and f[2] == 0)
        self.assertGreaterEqual(credit - sent, 65535, "the connection window did not come back")
        c.request(sid, "/echo/after", "POST", [("content-length", "10")], end_stream=False)
        c.send(h.data(sid, b"0123456789", end=True))
        status, _, answer = c.response(sid)
        self.assertEqual((status, json.loads(answer)["body_len"]), (200, 10))

    # ---- 5.3: priorities (RFC 9113 deprecates them; still validated) ---------------------------

    def test_priority_frames(self):
        self.start()
        # A PRIORITY for an idle stream is fine (5.1) and changes nothing.
        c = self.connect()
        c.send(h.frame(h.PRIORITY, 0, 9, struct.pack("!IB", 0, 15)))
        self.assertTrue(c.alive())
        c.request(1, "/slow?delay=2")
        c.send(h.frame(h.PRIORITY, 0, 1, b"\0\0\0\0"))
        self.assertStreamError(c, 1, h.FRAME_SIZE_ERROR, "PRIORITY of 4 octets", or_connection_error=True)
        self.run_connection_errors([
            ("PRIORITY on stream 0", lambda c: c.send(h.frame(h.PRIORITY, 0, 0, struct.pack("!IB", 1, 15))),
             h.PROTOCOL_ERROR),
        ])

    # ---- 6.5: SETTINGS --------------------------------------------------------------------------

    def test_settings_errors(self):
        self.start()
        self.run_connection_errors([
            ("SETTINGS_ENABLE_PUSH 2", lambda c: c.send(h.settings((h.ENABLE_PUSH, 2))), h.PROTOCOL_ERROR),
            ("SETTINGS_INITIAL_WINDOW_SIZE 2^31", lambda c: c.send(h.settings((h.INITIAL_WINDOW_SIZE, 1 << 31))),
             h.FLOW_CONTROL_ERROR),
            ("SETTINGS_MAX_FRAME_SIZE below 2^14", lambda c: c.send(h.settings((h.MAX_FRAME_SIZE, 16383))),
             h.PROTOCOL_ERROR),
            ("SETTINGS_MAX_FRAME_SIZE above 2^24-1", lambda c: c.send(h.settings((h.MAX_FRAME_SIZE, 1 << 24))),
             h.PROTOCOL_ERROR),
            ("SETTINGS ACK with a payload", lambda c: c.send(h.frame(h.SETTINGS, h.ACK, 0, b"\0" * 6)),
             h.FRAME_SIZE_ERROR),
            ("SETTINGS on a stream", lambda c: c.send(h.frame(h.SETTINGS, 0, 1, b"")), h.PROTOCOL_ERROR),
            ("SETTINGS of 3 octets", lambda c: c.send(h.frame(h.SETTINGS, 0, 0, b"\0\0\0")), h.FRAME_SIZE_ERROR),
            ("PING on a stream", lambda c: c.send(h.frame(h.PING, 0, 1, b"12345678")), h.PROTOCOL_ERROR),
            ("PING of 6 octets", lambda c: c.send(h.frame(h.PING, 0, 0, b"123456")), h.FRAME_SIZE_ERROR),
            ("GOAWAY on a stream", lambda c: c.send(h.goaway(stream_id=1)), h.PROTOCOL_ERROR),
        ])

    def test_settings_are_applied_in_order_and_acknowledged(self):
        self.start()
        # 6.5.3: values in order, the last wins: a window of 1 octet per stream.
        c = self.connect(client_settings=[(h.INITIAL_WINDOW_SIZE, 100), (h.INITIAL_WINDOW_SIZE, 1)])
        c.request(1, "/healthz")
        first = c.wait_for(lambda f: f[0] == h.DATA and f[2] == 1)
        self.assertEqual(first[3], b"o", "6.9.1: no more than the window allows")
        c.send(h.window_update(1, 10))
        status, _, body = c.response(1)
        self.assertEqual((status, body), (200, b"ok\n"))

    def test_initial_window_changes_apply_to_open_streams(self):
        """6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE moves every stream's window, below zero too."""
        self.start()
        c = self.connect(client_settings=[(h.INITIAL_WINDOW_SIZE, 0)])
        c.request(1, "/stream?n=20")
        self.assertIsNone(c.wait_for(lambda f: f[0] == h.DATA, 0.5), "DATA on a zero window")
        c.send(h.settings((h.INITIAL_WINDOW_SIZE, 5)))

        def received(n):
            c.wait_for(lambda f: sum(len(g[3]) for g in c.frames if g[0] == h.DATA) >= n, 3 * slow_factor())
            c.wait_for(lambda f: False, 0.2)  # and nothing beyond
            return sum(len(f[3]) for f in c.frames if f[0] == h.DATA)
        self.assertEqual(received(5), 5)
        # 5 sent on a window of 5; the window becomes 2 - 5 = -3; +4 makes it 1.
        c.send(h.settings((h.INITIAL_WINDOW_SIZE, 2)), h.window_update(1, 4))
        self.assertEqual(received(6), 6, "the negative window was not kept")

    def test_settings_flood_gets_goaway_enhance_your_calm(self):
        self.start(limits={"http2_control_frame_rate": 50})
        c = self.connect()
        c.send(*[h.settings((h.INITIAL_WINDOW_SIZE, 65535))] * 500)
        self.assertConnectionError(c, h.ENHANCE_YOUR_CALM)

    def test_floods_of_frames_without_progress_get_goaway_enhance_your_calm(self):
        """CVE-2019-9518 and kin: frames that cost a parse and move no request on, without end,
        were all taken (200k in a row, no GOAWAY)."""
        self.start(limits={"http2_overhead_frame_rate": 50})
        floods = [
            ("empty DATA", lambda c: [h.data(1, b"")] * 2000, True),
            ("PRIORITY", lambda c: [h.frame(h.PRIORITY, 0, 3, struct.pack("!IB", 0, 15))] * 2000, False),
            ("WINDOW_UPDATE", lambda c: [h.window_update(0, 1)] * 2000, False),
            ("unknown type", lambda c: [h.frame(0xFA, 0, 0, b"")] * 2000, False),
            ("PRIORITY_UPDATE", lambda c: [h.frame(0x10, 0, 0, struct.pack("!I", 1) + b"u=3")] * 2000, False),
        ]
        for name, frames, open_stream in floods:
            with self.subTest(name):
                c = self.connect()
                if open_stream:
                    c.request(1, "/slow?delay=3", "POST", end_stream=False)
                c.send(*frames(c))
                self.assertConnectionError(c, h.ENHANCE_YOUR_CALM, name)

    def test_a_download_acknowledged_frame_by_frame_is_no_flood(self):
        """A client that gives back every DATA frame's bytes at once (python h2's usual way: a
        stream and a connection WINDOW_UPDATE per frame) is in step with the download however
        low http2_overhead_frame_rate is."""
        self.start(limits={"http2_overhead_frame_rate": 5})
        n = 4 << 20
        c = self.connect(client_settings=((h.INITIAL_WINDOW_SIZE, 16384),))
        c.request(1, "/stream?n=%d" % n)
        got = 0
        deadline = time.monotonic() + 30 * slow_factor()
        while got < n and time.monotonic() < deadline:
            f = c.next_frame(5)
            if f is None:
                break
            if f[0] == h.DATA and f[2] == 1 and f[3]:
                got += len(f[3])
                c.send(h.window_update(1, len(f[3])), h.window_update(0, len(f[3])))
            self.assertNotEqual(f[0], h.GOAWAY, "GOAWAY during the download")
            if f[0] == h.DATA and f[1] & h.END_STREAM:
                break
        self.assertEqual(got, n)
        self.assertTrue(c.alive())

    # ---- 6.7 / 6.8: PING and GOAWAY -------------------------------------------------------------

    def test_ping(self):
        self.start()
        c = self.connect()
        c.send(h.ping(b"\x01\x02\x03\x04\x05\x06\x07\x08"))
        self.assertIsNotNone(c.wait_for(lambda f: f[0] == h.PING and f[1] == h.ACK and
                                        f[3] == b"\x01\x02\x03\x04\x05\x06\x07\x08"))
        # A PING ACK is never answered.
        c.send(h.ping(b"ackackac", ack=True))
        self.assertIsNone(c.wait_for(lambda f: f[0] == h.PING and f[3] == b"ackackac", 0.5))

    def test_graceful_stop_sends_goaway_and_finishes_the_stream_in_flight(self):
        p = self.start()
        c = self.connect()
        c.request(1, "/slow?delay=1")
        c.wait_for(lambda f: False, 0.3)
        p.send_signal(signal.SIGTERM)
        # 6.8: NO_ERROR, and the last stream the server will process.
        self.assertEqual(c.goaway(5), (1, h.NO_ERROR))
        # A stream opened after the GOAWAY is not processed; the one in flight finishes.
        c.request(3, "/healthz")
        self.assertEqual(c.response(1, 5)[0], 200)
        self.assertTrue(c.wait_closed(5))
        self.assertFalse([f for f in c.frames if f[2] == 3 and f[0] in (h.HEADERS, h.DATA)])
        self.assertEqual(p.wait(10), 0)

    # ---- 6.9: WINDOW_UPDATE and flow control ----------------------------------------------------

    def test_window_update_errors(self):
        self.start()
        self.run_connection_errors([
            ("WINDOW_UPDATE of 0 on the connection", lambda c: c.send(h.window_update(0, 0)), h.PROTOCOL_ERROR),
            ("WINDOW_UPDATE of 3 octets", lambda c: c.send(h.frame(h.WINDOW_UPDATE, 0, 0, b"\0\0\1")),
             h.FRAME_SIZE_ERROR),
            ("connection window above 2^31-1", lambda c: c.send(h.window_update(0, 0x7FFFFFFF)),
             h.FLOW_CONTROL_ERROR),
        ])
        for name, increment, code in (("WINDOW_UPDATE of 0 on a stream", 0, h.PROTOCOL_ERROR),
                                      ("stream window above 2^31-1", 0x7FFFFFFF, h.FLOW_CONTROL_ERROR)):
            with self.subTest(name):
                c = self.connect()
                c.request(1, "/slow?delay=2")
                c.send(h.window_update(1, increment))
                self.assertStreamError(c, 1, code, name, or_connection_error=True)


class Http2HpackAndLimits(Http2Case):
    # ---- HPACK (RFC 7541), header lists, the attacks and the timeouts ---------------------------

    def test_hpack_errors_are_compression_errors(self):
        self.start()

        def block(suffix=b"", prefix=b""):
            return lambda c: c.send(c.headers(1, prefix + c.block(c.fields("/healthz")) + suffix))

        self.run_connection_errors([
            ("indexed field with index 0", block(b"\x80"), h.COMPRESSION_ERROR),
            ("indexed field beyond both tables", block(b"\xc6"), h.COMPRESSION_ERROR),
            ("literal with a name index beyond both tables", block(b"\x7f\x07\x01a"), h.COMPRESSION_ERROR),
            ("dynamic table size update at the end of a block", block(b"\x20"), h.COMPRESSION_ERROR),
            ("dynamic table size update above SETTINGS_HEADER_TABLE_SIZE", block(prefix=b"\x3f\xe1\x3f"),
             h.COMPRESSION_ERROR),
            ("Huffman padding longer than 7 bits", block(b"\x00\x06x-test\x82\xff\xff"), h.COMPRESSION_ERROR),
            ("Huffman padding of zeros", block(b"\x00\x06x-test\x81\x18"), h.COMPRESSION_ERROR),
            ("Huffman EOS symbol", block(b"\x00\x06x-test\x84\xff\xff\xff\xff"), h.COMPRESSION_ERROR),
        ])

    def test_hpack_bomb_is_431_and_costs_nothing_upstream(self):
        """One 4 KB field put in the dynamic table, then named again by a one-octet index
        thousands of times: a 16 KB block that decodes to megabytes. It is counted as decoded
        (RFC 9113 6.5.2) and refused with 431 before anything is kept or sent upstream."""
        self.start()
        c = self.connect()
        big = b"\x40\x05x-big\x7f\xa1\x1e" + b"v" * 4000  # literal, incremental indexing, 4000-octet value
        block = c.block(c.fields("/echo/bomb")) + big + b"\xbe" * 12000  # index 62: the newest entry
        c.send(h.frame(h.HEADERS, h.END_STREAM, 1, block[:MAX_FRAME]),
               h.frame(h.CONTINUATION, h.END_HEADERS, 1, block[MAX_FRAME:]))
        got = c.response(1, 5)
        self.assertIsNotNone(got, "no answer to an HPACK bomb")
        self.assertEqual(got[0], 431)
        self.assertEqual(self.backend.request_count(), 0)
        self.assertTrue(c.alive())

    def test_continuation_flood_ends_the_connection(self):
        """CVE-2024-27316: a header block in endless CONTINUATION frames (empty ones too) ends
        the connection after a handful, not when memory runs out."""
        self.start()
        c = self.connect()
        c.send(c.headers(1, c.fields("/healthz"), end_headers=False))
        # 9 frames are one more than a block may have: enough for the GOAWAY.
        c.send(*[h.frame(h.CONTINUATION, 0, 1, b"")] * 9)
        got = c.goaway(5 * slow_factor())
        self.assertIsNotNone(got, "no GOAWAY after 9 CONTINUATION frames")
        self.assertEqual(got[1], h.PROTOCOL_ERROR)
        self.assertTrue(c.wait_closed(5))

    def test_header_list_over_max_header_bytes_in_continuations_is_431(self):
        self.start(limits={"max_header_bytes": "4KiB"})
        c = self.connect()
        block = c.block(c.fields("/echo/big", extra=[("x-%d" % i, "v" * 1000) for i in range(8)]))
        c.send(h.frame(h.HEADERS, h.END_STREAM, 1, block[:3000]),
               h.frame(h.CONTINUATION, 0, 1, block[3000:6000]),
               h.frame(h.CONTINUATION, h.END_HEADERS, 1, block[6000:]))
        self.assertEqual(c.response(1)[0], 431)
        self.assertEqual(self.backend.request_count(), 0)

    def test_header_block_left_unfinished_past_client_header_timeout(self):
        self.start(limits={"client_header_timeout": "1s"})
        c = self.connect()
        start = time.monotonic()
        c.send(c.headers(1, c.fields("/healthz"), end_headers=False))
        got = c.goaway(5 * slow_factor())
        self.assertIsNotNone(got, "a header block without its end held the connection")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.assertTrue(c.wait_closed(5))


    def test_a_stream_whose_body_stalls_gets_408_and_the_connection_goes_on(self):
        self.start(limits={"client_body_timeout": "1s"})
        c = self.connect()
        c.request(1, "/echo/stalled", "POST", [("content-length", "100")], end_stream=False)
        c.send(h.data(1, b"only part"))
        got = c.response(1, 5 * slow_factor())
        self.assertIsNotNone(got, "a stalled body held its stream")
        self.assertEqual(got[0], 408)
        self.assertTrue(c.alive())
        self.assertIsNone(c.goaway(0))

    def test_a_connection_without_streams_past_keepalive_timeout_gets_goaway_no_error(self):
        self.start(limits={"keepalive_timeout": "1s"})
        c = self.connect()
        c.request(1, "/healthz")
        self.assertEqual(c.response(1)[0], 200)
        self.assertEqual(c.goaway(5 * slow_factor()), (1, h.NO_ERROR))
        self.assertTrue(c.wait_closed(5))


class Http2ConformanceMessages(Http2Case):
    # ---- 8.1-8.3: malformed requests are stream errors -----------------------------------------

    def test_malformed_requests_are_stream_errors(self):
        self.start()
        base = [(":method", "GET"), (":scheme", "http"), (":path", "/echo/m")]
        cases = [
            ("unknown pseudo-header", base + [(":foo", "x")]),
            ("response pseudo-header", base + [(":status", "200")]),
            ("pseudo-header after a regular field", [(":method", "GET"), (":scheme", "http"), ("x-a", "1"),
                                                     (":path", "/")]),
            ("connection-specific field", base + [("connection", "close")]),
            ("TE other than trailers", base + [("te", "gzip")]),
            ("empty :path", [(":method", "GET"), (":scheme", "http"), (":path", "")]),
            ("no :method", [(":scheme", "http"), (":path", "/")]),
            ("no :scheme", [(":method", "GET"), (":path", "/")]),
            ("no :path", [(":method", "GET"), (":scheme", "http")]),
            ("two :method", base + [(":method", "GET")]),
            ("two :scheme", base + [(":scheme", "http")]),
            ("two :path", base + [(":path", "/")]),
            ("uppercase field name", base + [("X-Upper", "1")]),
            # What HTTP/1.1 refuses (400) was taken here and went upstream as is.
            ("lower-case :method", [(":method", "get"), (":scheme", "http"), (":path", "/echo/m")]),
            ("unknown :method", [(":method", "BREW"), (":scheme", "http"), (":path", "/echo/m")]),
            (":scheme other than http(s)", [(":method", "GET"), (":scheme", "ftp"), (":path", "/echo/m")]),
        ]
        c = self.connect()
        sid = 1
        for name, fields in cases:
            with self.subTest(name):
                authority = [(":authority", c.authority)]
                ordered = fields[:3] + authority + fields[3:] if name.startswith("pseudo") else authority + fields
                c.send(c.headers(sid, ordered))
                self.assertStreamError(c, sid, h.PROTOCOL_ERROR, name)
                sid += 2
        with self.subTest("content-length other than the DATA"):
            c.request(sid, "/echo/cl", "POST", [("content-length", "10")], end_stream=False)
            c.send(h.data(sid, b"12345"), h.data(sid, b"123", end=True))
            self.assertStreamError(c, sid, h.PROTOCOL_ERROR)
            sid += 2
        with self.subTest("a second HEADERS without END_STREAM"):
            c.request(sid, "/echo/two", "POST", end_stream=False)
            c.send(c.headers(sid, [("x-trailer", "1")], end_stream=False))
            self.assertStreamError(c, sid, h.PROTOCOL_ERROR)
            sid += 2
        with self.subTest("a pseudo-header in trailers"):
            c.request(sid, "/echo/two", "POST", end_stream=False)
            c.send(c.headers(sid, [(":path", "/x")]))
            self.assertStreamError(c, sid, h.PROTOCOL_ERROR)
            sid += 2
        self.assertEqual(self.backend.request_count(), 0, "a malformed request went upstream")


class Http2ConformanceWebSocket(Http2Case):
    """Flow control on a stream that carries a WebSocket (RFC 8441): DATA may come before the
    200, while the session does not exist yet; its window is held and must come back."""

    def open(self, c, path):
        c.send(c.headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                             (":authority", c.authority), (":path", path), ("sec-websocket-version", "13")],
                         end_stream=False))

    def window_back(self, c, stream_id, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            back = sum(struct.unpack("!I", f[3])[0] for f in c.frames if f[0] == h.WINDOW_UPDATE and f[2] == stream_id)
            if back >= n:
                return back
            c.next_frame(0.1)
        return sum(struct.unpack("!I", f[3])[0] for f in c.frames if f[0] == h.WINDOW_UPDATE and f[2] == stream_id)

    def test_data_before_a_bridged_session_gives_its_window_back(self):
        def app_logic(req):
            if any(t == "OPEN" for t, _ in req.events):
                time.sleep(0.5)  # the 200 comes late: the client's frames wait for the session
                return 200, [], [("OPEN", None)]
            return 200, [], []
        app = WohBackend(app_logic).start()
        self.addCleanup(app.stop)
        self.start(limits={"http2_stream_window": "16KiB"},
                   routes=[{"path": "/", "upstream": "app", "websocket": {"mode": "http", "ping_interval": 0}}],
                   upstreams={"app": {"servers": [app.address]}})
        c = self.connect()
        self.open(c, "/chat")
        frames = masked_text(b"t" * 4000) * 4  # 16,032 octets: the whole stream window
        c.send(h.data(1, frames[:16384]))
        status = c.wait_for(lambda f: f[0] == h.HEADERS and f[2] == 1, 5)
        self.assertIsNotNone(status, "no answer to the extended CONNECT")
        self.assertGreaterEqual(self.window_back(c, 1, len(frames)), len(frames),
                                "the window for DATA that came before the session was not given back")

    def test_data_before_an_upstream_101_gives_its_window_back_and_cannot_exceed_it(self):
        backend = start_raw_ws_backend(self, "slow_101", delay=0.5)
        self.start(limits={"http2_stream_window": "16KiB"},
                   routes=[{"path": "/ws/", "upstream": "app", "websocket": {"mode": "tunnel"}}],
                   upstreams={"app": {"servers": [backend.address]}})
        c = self.connect()
        self.open(c, "/ws/slow")
        c.send(h.data(1, b"e" * 16384))
        self.assertGreaterEqual(self.window_back(c, 1, 16384), 16384)
        deadline = time.monotonic() + 5
        while len(backend.ws_received) < 16384 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(backend.ws_received), 16384)
        # 6.9.1: DATA beyond the window is a FLOW_CONTROL_ERROR (here before the 101: nothing
        # gives the window back while the session does not exist).
        c2 = self.connect()
        self.open(c2, "/ws/slow")
        c2.send(h.data(1, b"e" * 16384), h.data(1, b"e"))
        self.assertStreamError(c2, 1, h.FLOW_CONTROL_ERROR, or_connection_error=True)


class Http2Trailers(Http2Case):
    def test_request_trailers_reach_a_chunked_upstream_request(self):
        self.start()
        c = self.connect()
        c.request(1, "/echo/t", "POST", [("te", "trailers")], end_stream=False)
        c.send(h.data(1, b"body"), c.headers(1, [("x-checksum", "abc"), ("x-more", "1")]))
        status, _, body = c.response(1)
        doc = json.loads(body)
        self.assertEqual((status, doc["body"], doc["chunked"]), (200, "body", True))
        self.assertEqual(doc["trailers"], [["x-checksum", "abc"], ["x-more", "1"]])

    def test_a_request_with_trailers_is_retried_whole_on_the_next_server(self):
        # The first server refuses the connection: the request, trailers and all, goes to the next.
        backend = self.start_backend(name="b")
        down = "127.0.0.1:%d" % free_port()
        self.start(routes=[{"path": "/", "upstream": "app"}],
                   upstreams={"app": {"servers": [down, backend.address]}})
        c = self.connect()
        for sid in (1, 3):  # the first goes to the refusing server; the next one skips it
            c.request(sid, "/echo/t", "GET", [("te", "trailers")], end_stream=False)
            c.send(c.headers(sid, [("x-checksum", "abc%d" % sid)]))
            status, _, body = c.response(sid)
            self.assertEqual(status, 200, body)
            doc = json.loads(body)
            self.assertEqual((doc["chunked"], doc["trailers"]), (True, [["x-checksum", "abc%d" % sid]]))
        self.assertEqual(backend.request_count(), 2)

    def test_trailers_that_would_change_routing_are_dropped_and_framing_ones_refused(self):
        self.start(limits={"max_header_bytes": "4KiB"})
        c = self.connect()
        c.request(1, "/echo/t", "POST", end_stream=False)
        c.send(h.data(1, b"body"), c.headers(1, [("host", "evil"), ("te", "trailers"), ("x-ok", "1")]))
        status, _, body = c.response(1)
        self.assertEqual((status, json.loads(body)["trailers"]), (200, [["x-ok", "1"]]))
        # A Content-Length among the trailers makes the request malformed (nghttp2's check).
        c.request(3, "/echo/t", "POST", end_stream=False)
        c.send(h.data(3, b"body"), c.headers(3, [("content-length", "99")]))
        self.assertStreamError(c, 3, h.PROTOCOL_ERROR)
        # Trailers are bounded as the head is: 431.
        c.request(5, "/echo/t", "POST", end_stream=False)
        c.send(h.data(5, b"body"), c.headers(5, [("x-big", "v" * 5000)]))
        self.assertEqual(c.response(5)[0], 431)
        self.assertEqual(self.backend.request_count(), 1, "a refused request was completed upstream")

    def test_trailers_with_a_content_length_body_are_dropped(self):
        """HTTP/1.1 carries trailers only in a chunked body; a request with a content-length
        goes up as declared and its trailers are dropped (as nginx does)."""
        self.start()
        c = self.connect()
        c.request(1, "/echo/t", "POST", [("content-length", "4")], end_stream=False)
        c.send(h.data(1, b"body"), c.headers(1, [("x-checksum", "abc")]))
        status, _, body = c.response(1)
        doc = json.loads(body)
        self.assertEqual((status, doc["body"], doc["chunked"], doc["trailers"]), (200, "body", False, []))


if __name__ == "__main__":
    main()
