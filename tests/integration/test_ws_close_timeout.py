# SPDX-License-Identifier: Apache-2.0
"""websocket.close_timeout (frames mode): once a side's Close went through, the other side has
that long to answer it (RFC 6455 7.1.1/7.1.7). The probe's defect: a client's Close that the
upstream never answered (nor closed TCP), or an upstream's Close the client never answered, held
both connections until websocket.idle_timeout (10 min by default). Now the side that did not
answer has its connection closed and the side that sent the Close gets 1001 as its answer, over
HTTP/1.1 and on an RFC 8441 HTTP/2 stream; traffic from the silent side does not put it off."""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import backends  # noqa: E402
import ws_client  # noqa: E402
from h2_client import H2Client, client_frame, server_frames, ws_frames  # noqa: E402
from portico_harness import main, make_config, slow_factor  # noqa: E402
from ws_client import OP_CLOSE, OP_TEXT  # noqa: E402
from ws_peers import WsTestCase, wait_for, ws_proxy_config  # noqa: E402

from test_ws_close import switching_protocols  # noqa: E402

CLOSE_TIMEOUT = 0.5  # seconds; the default (5 s) would make each case slow
WEBSOCKET = {"mode": "frames", "close_timeout": "500ms"}


def client_frames(data):
    """Masked frames as a client (here Portico towards the upstream) sends them: [(opcode, payload)]."""
    return ws_frames(data, masked=True)


class SilentUpstream:
    """A WebSocket upstream that answers the handshake, then (close_first) sends Close 1000, or
    (chatty, seconds) a text frame that often, and never closes TCP nor answers a Close: it reads what
    it is sent until Portico ends the connection. .received: the bytes; .end: "eof" or "reset"."""

    def __init__(self, testcase, close_first=False, chatty=0.0):
        self.received, self.end = bytearray(), None
        self.close_first, self.chatty = close_first, chatty
        self.server = backends.TcpServer(self.serve)
        testcase.addCleanup(self.server.stop)

    @property
    def address(self):
        return self.server.address

    def serve(self, s):
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        head, rest = head.split(b"\r\n\r\n", 1)
        self.received += rest
        s.sendall(switching_protocols(head))
        if self.close_first:
            s.sendall(ws_client.build_frame(OP_CLOSE, ws_client.close_payload(1000), mask=False))
        stop = threading.Event()
        if self.chatty:
            def chat():
                while not stop.wait(self.chatty):
                    try:
                        s.sendall(ws_client.build_frame(OP_TEXT, b"still here", mask=False))
                    except OSError:
                        return
            threading.Thread(target=chat, daemon=True).start()
        s.settimeout(30 * slow_factor())
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    self.end = "eof"
                    break
                self.received += data
        except ConnectionResetError:
            self.end = "reset"
        except socket.timeout:
            self.end = "open"
        stop.set()
        s.close()

    def frames(self):
        return client_frames(self.received)

    def wait_end(self, testcase):
        testcase.assertTrue(wait_for(lambda: self.end is not None, 5 * slow_factor()),
                            "the upstream connection stayed open")
        return self.end


def close_frame(code):
    return (OP_CLOSE, struct.pack("!H", code))


class CloseTimeoutHttp1(WsTestCase):
    test_timeout = 60

    def start(self, upstream):
        return self.start_portico(ws_proxy_config(upstream.address, mode=None, websocket=WEBSOCKET))

    def client_close_not_answered(self, chatty):
        b = SilentUpstream(self, chatty=chatty)
        p = self.start(b)
        ws = self.ws_connect(p.port, "/ws/x")
        ws.send_close(1000)
        t0 = time.monotonic()
        frames, eof = ws.read_until_eof(timeout=4 * slow_factor())
        elapsed = time.monotonic() - t0
        self.assertTrue(eof, "the client's connection stayed open after its unanswered Close (%d frames: %r)"
                        % (len(frames), frames[:3]))
        self.assertGreater(elapsed, CLOSE_TIMEOUT * 0.8)
        closes = [(f.opcode, f.close_code) for f in frames if f.opcode == OP_CLOSE]
        self.assertEqual(closes, [(OP_CLOSE, 1001)], frames)
        self.assertEqual(b.wait_end(self), "eof")
        self.assertEqual(b.frames(), [close_frame(1000)])

    def test_a_client_close_the_upstream_never_answers_ends_the_session(self):
        self.client_close_not_answered(chatty=0.0)

    def test_upstream_traffic_does_not_put_off_the_close_timeout(self):
        # idle_timeout counts traffic; the wait for a Close's answer must not. A frame every 2 ms
        # also keeps bytes arriving when Portico gives up on the upstream: closing its socket then
        # would answer them with a reset, the lingering close answers with a FIN ("eof" below).
        self.client_close_not_answered(chatty=0.002)

    def test_an_upstream_close_the_client_never_answers_ends_the_session(self):
        b = SilentUpstream(self, close_first=True)
        p = self.start(b)
        ws = self.ws_connect(p.port, "/ws/x")
        f = ws.recv_frame(5 * slow_factor())
        self.assertEqual((f.opcode, f.close_code), (OP_CLOSE, 1000))
        t0 = time.monotonic()
        # The client says nothing more: Portico closes its connection, the upstream gets 1001.
        self.assertTrue(ws.wait_eof(4 * slow_factor()), "the silent client's connection stayed open")
        self.assertGreater(time.monotonic() - t0, CLOSE_TIMEOUT * 0.5)
        self.assertEqual(b.wait_end(self), "eof")
        self.assertEqual(b.frames(), [close_frame(1001)])
        # Portico serves the next one.
        b2 = SilentUpstream(self)
        p2 = self.start(b2)
        ws2 = self.ws_connect(p2.port, "/ws/y")
        ws2.send_text("hi")
        self.assertTrue(wait_for(lambda: client_frames(b2.received) == [(OP_TEXT, b"hi")], 5))

    def test_a_chatty_client_that_never_answers_gets_a_fin_not_a_reset(self):
        # The client keeps sending data frames but never answers the upstream's Close. When
        # close_timeout runs out its frames are still arriving: a plain close() would answer them
        # with a reset, the lingering close sends FIN. The upstream gets 1001 as its answer.
        b = SilentUpstream(self, close_first=True)
        p = self.start(b)
        ws = self.ws_connect(p.port, "/ws/x")
        f = ws.recv_frame(5 * slow_factor())
        self.assertEqual((f.opcode, f.close_code), (OP_CLOSE, 1000))
        stop = threading.Event()
        self.addCleanup(stop.set)

        def chat():
            while not stop.wait(0.001):
                try:
                    ws.send_text("still here")
                except OSError:
                    return
        chatter = threading.Thread(target=chat, daemon=True)
        chatter.start()
        ws.sock.settimeout(4 * slow_factor())
        received, end = bytearray(ws.buf), "open"
        try:
            while True:
                data = ws.sock.recv(65536)
                if not data:
                    end = "eof"
                    break
                received += data
        except ConnectionResetError:
            end = "reset"
        except socket.timeout:
            pass
        stop.set()
        chatter.join()
        self.assertEqual(end, "eof", "the client's connection ended with a reset or stayed open")
        self.assertEqual(server_frames(received), [], "nothing after the upstream's Close")
        self.assertEqual(b.wait_end(self), "eof")
        self.assertEqual(b.frames()[-1], close_frame(1001))

    def test_an_answered_close_still_completes_normally(self):
        # The bound does not cut a handshake that completes: a real echo backend answers at once.
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode=None, websocket=WEBSOCKET))
        ws = self.ws_connect(p.port, "/ws/echo")
        ws.send_text("hello")
        self.assertEqual(ws.recv_text(), "hello")
        ws.send_close(1000)
        frames, eof = ws.read_until_eof(timeout=4 * slow_factor())
        self.assertTrue(eof)
        self.assertEqual([(f.opcode, f.close_code) for f in frames], [(OP_CLOSE, 1000)])


class CloseTimeoutHttp2(WsTestCase):
    """The same on an RFC 8441 stream: the client's side ends with END_STREAM after its Close
    (no RST_STREAM: the upstream did not fail, it was slow to close)."""

    test_timeout = 60

    def open(self, upstream):
        p = self.start_portico(make_config(
            routes=[{"path": "/ws/", "upstream": "app", "websocket": WEBSOCKET}],
            upstreams={"app": {"servers": [upstream.address]}},
            listeners=[{"address": "127.0.0.1:0", "http2": True}], workers=1))
        c = H2Client(p.port, validate=False)
        self.addCleanup(c.close)
        c.pump(0.3)
        sid = c.request("CONNECT", "/ws/x", headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
                        end=False)
        c.wait(lambda: c.responses[sid]["headers"] is not None or c.done(sid), 10)
        self.assertEqual(c.status(sid), 200, c.responses[sid])
        return c, sid

    def test_a_client_close_the_upstream_never_answers_ends_the_stream(self):
        b = SilentUpstream(self)
        c, sid = self.open(b)
        c.conn.send_data(sid, client_frame(8, struct.pack("!H", 1000)))
        c.flush()
        self.assertTrue(c.wait(lambda: c.done(sid), 4 * slow_factor()),
                        "the stream stayed open after its unanswered Close: %r" % c.responses[sid])
        r = c.responses[sid]
        self.assertEqual((r["ended"], r["reset"]), (True, None), r)
        self.assertEqual(server_frames(r["body"]), [close_frame(1001)])
        self.assertEqual(b.wait_end(self), "eof")
        self.assertEqual(b.frames(), [close_frame(1000)])

    def test_an_upstream_close_the_client_never_answers_ends_the_stream(self):
        b = SilentUpstream(self, close_first=True)
        c, sid = self.open(b)
        self.assertTrue(c.wait(lambda: c.done(sid), 4 * slow_factor()),
                        "the silent client's stream stayed open: %r" % c.responses[sid])
        r = c.responses[sid]
        self.assertTrue(r["ended"], r)
        self.assertEqual(server_frames(r["body"]), [close_frame(1000)])
        self.assertEqual(b.wait_end(self), "eof")
        self.assertEqual(b.frames(), [close_frame(1001)])
        c.pump(0.2)
        self.assertFalse(c.closed, "the HTTP/2 connection ended with the stream")


if __name__ == "__main__":
    main()
