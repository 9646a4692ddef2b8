# SPDX-License-Identifier: Apache-2.0
"""WebSockets over HTTP/2 (RFC 8441) through Portico, with python3-h2 as the raw client:
SETTINGS_ENABLE_CONNECT_PROTOCOL (and a listener that turns it off), an extended CONNECT to the
built-in echo (frames both ways, close handshake, END_STREAM), to a python3-websockets backend
over an HTTP/1.1 upgrade in tunnel and frames mode (its 101 becomes the stream's 200),
non-101 answers from the backend (4xx/5xx pass, others become 502, never 2xx), and refusal on
a route that takes no WebSockets, and `websocket: {mode: http}` (the WebSocket-over-HTTP bridge)
on a stream: the app's OPEN answer becomes the 200, events both ways, CLOSE, and a refusal
relayed as the app sent it."""

import os
import signal
import struct
import sys

import h2.errors

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from backends import Response  # noqa: E402
from h2_client import H2Client, client_frame, server_frames  # noqa: E402
from portico_harness import main, make_config, slow_factor  # noqa: E402
from woh_backend import WohBackend  # noqa: E402
from ws_peers import WsTestCase, wait_for  # noqa: E402

ENABLE_CONNECT_PROTOCOL = 8


class WebSocketOverHttp2(WsTestCase):
    test_timeout = 60

    def start(self, routes, upstreams=None, **listener):
        entry = {"address": "127.0.0.1:0", "http2": True}
        entry.update(listener)
        return self.start_portico(make_config(routes=routes, upstreams=upstreams, listeners=[entry], workers=1))

    def open(self, p, path, headers=()):
        c = H2Client(p.port, validate=False)
        self.addCleanup(c.close)
        c.pump(0.3)
        sid = c.request("CONNECT", path, headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")]
                        + list(headers), end=False)
        c.wait(lambda: c.responses[sid]["headers"] is not None or c.done(sid), 10)
        return c, sid

    def echo_roundtrip(self, c, sid, text):
        before = len(c.responses[sid]["body"])
        c.conn.send_data(sid, client_frame(1, text.encode()))
        c.flush()
        c.wait(lambda: len(server_frames(c.responses[sid]["body"][before:])) >= 1, 5)
        return server_frames(c.responses[sid]["body"][before:])

    def close_handshake(self, c, sid):
        before = len(c.responses[sid]["body"])
        c.conn.send_data(sid, client_frame(8, struct.pack("!H", 1000)))
        c.flush()
        c.wait(lambda: c.done(sid), 5)
        self.assertEqual(server_frames(c.responses[sid]["body"][before:])[-1:], [(8, struct.pack("!H", 1000))])
        self.assertTrue(c.responses[sid]["ended"], "END_STREAM after the close handshake")
        c.conn.end_stream(sid)  # our side too: the stream is closed
        c.flush()

    def test_extended_connect_to_the_builtin_echo(self):
        p = self.start([{"path": "/echo", "handler": "echo"}])
        c, sid = self.open(p, "/echo")
        self.assertEqual(c.remote_settings.get(ENABLE_CONNECT_PROTOCOL), 1)
        self.assertEqual(c.status(sid), 200)
        self.assertEqual(self.echo_roundtrip(c, sid, "hello over h2"), [(1, b"hello over h2")])
        self.assertEqual(self.echo_roundtrip(c, sid, "x" * 1000), [(1, b"x" * 1000)])
        self.close_handshake(c, sid)
        p.wait_stdout(lambda line: '"path":"/echo"' in line)
        log = [e for e in p.access_log() if e["path"] == "/echo"]
        self.assertEqual((log[0]["status"], log[0]["protocol"]), (200, "HTTP/2.0"))

    def test_graceful_stop_closes_the_websocket_with_1001(self):
        p = self.start([{"path": "/echo", "handler": "echo"}])
        c, sid = self.open(p, "/echo")
        self.assertEqual(c.status(sid), 200)
        p.send_signal(signal.SIGTERM)
        c.wait(lambda: any(op == 8 for op, _ in server_frames(c.responses[sid]["body"])), 5)
        closes = [payload for op, payload in server_frames(c.responses[sid]["body"]) if op == 8]
        self.assertEqual([payload[:2] for payload in closes], [struct.pack("!H", 1001)])
        c.conn.send_data(sid, client_frame(8, struct.pack("!H", 1001)))
        c.conn.end_stream(sid)
        c.flush()
        self.assertEqual(p.wait(10), 0)

    def test_per_ip_websocket_limit_applies_to_streams(self):
        entry = {"address": "127.0.0.1:0", "http2": True}
        p = self.start_portico(make_config(routes=[{"path": "/echo", "handler": "echo"}], listeners=[entry],
                                           workers=1, limits={"per_ip_websockets": 1}))
        c, first = self.open(p, "/echo")
        self.assertEqual(c.status(first), 200)
        second = c.request("CONNECT", "/echo", headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
                           end=False)
        c.response(second, 5)
        self.assertEqual(c.status(second), 429)
        self.close_handshake(c, first)
        third = c.request("CONNECT", "/echo", headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
                          end=False)
        c.wait(lambda: c.responses[third]["headers"] is not None, 5)
        self.assertEqual(c.status(third), 200, "the slot is free once the first WebSocket closed")

    def test_a_client_that_never_ends_its_side_is_reset_after_the_close(self):
        p = self.start([{"path": "/echo", "handler": "echo"}])
        c, sid = self.open(p, "/echo")
        c.conn.send_data(sid, client_frame(8, struct.pack("!H", 1000)))
        c.flush()
        self.assertTrue(c.wait(lambda: c.responses[sid]["ended"], 5))
        # No END_STREAM from us: Portico resets the stream (NO_ERROR) after its linger.
        self.assertTrue(c.wait(lambda: c.responses[sid]["reset"] is not None, 6), c.responses[sid])
        self.assertEqual(c.responses[sid]["reset"], 0)
        self.assertIsNotNone(p.wait_stdout(lambda line: '"path":"/echo"' in line))

    def test_listener_can_turn_extended_connect_off(self):
        p = self.start([{"path": "/echo", "handler": "echo"}], http2_extended_connect=False)
        c, sid = self.open(p, "/echo")
        self.assertIsNone(c.remote_settings.get(ENABLE_CONNECT_PROTOCOL))
        self.assertNotEqual(c.status(sid), 200)

    def test_route_without_websockets_refuses_with_4xx(self):
        p = self.start([{"path": "/healthz", "handler": "health"}])
        c, sid = self.open(p, "/healthz")
        self.assertEqual(c.status(sid), 405)

    def tunnel_to_python_backend(self, mode):
        backend = self.start_ws_backend("python")
        p = self.start([{"path": "/ws/", "upstream": "app", "websocket": {"mode": mode}}],
                       upstreams={"app": {"servers": [backend.address]}})
        c, sid = self.open(p, "/ws/echo")
        self.assertEqual(c.status(sid), 200, c.responses[sid])
        headers = dict(c.responses[sid]["headers"])
        self.assertNotIn("sec-websocket-accept", headers)
        self.assertNotIn("upgrade", headers)
        self.assertEqual(self.echo_roundtrip(c, sid, "through %s" % mode), [(1, ("through %s" % mode).encode())])
        self.close_handshake(c, sid)

    def test_upstream_tunnel_mode(self):
        self.tunnel_to_python_backend("tunnel")

    def test_upstream_frames_mode(self):
        self.tunnel_to_python_backend("frames")

    def failing_upstream(self, mode, backend_mode, **websocket):
        backend = self.start_raw_ws_backend(backend_mode)
        p = self.start([{"path": "/ws/", "upstream": "app", "websocket": dict(mode=mode, **websocket)}],
                       upstreams={"app": {"servers": [backend.address]}})
        c, sid = self.open(p, "/ws/x")
        self.assertEqual(c.status(sid), 200, c.responses[sid])
        self.assertTrue(c.wait(lambda: c.done(sid), 5), c.responses[sid])
        c.pump(0.3)  # a reset that follows the END_STREAM would be seen now
        return c.responses[sid]

    def test_an_upstream_reset_resets_the_stream_with_connect_error(self):
        """RFC 9113 8.5: a CONNECT tunnel's TCP error is RST_STREAM CONNECT_ERROR, after what
        came before it; a clean close stays END_STREAM (the FIN's equivalent)."""
        for mode in ("tunnel", "frames"):
            with self.subTest(mode=mode):
                r = self.failing_upstream(mode, "hello_then_reset")
                self.assertEqual(r["reset"], h2.errors.ErrorCodes.CONNECT_ERROR, r)
                self.assertFalse(r["ended"])
                frames = server_frames(r["body"])
                self.assertEqual(frames[0], (1, b"hello"))
                if mode == "frames":  # and the relay's Close before the reset
                    self.assertEqual([f[1][:2] for f in frames[1:]], [struct.pack("!H", 1001)])

    def test_an_upstream_fin_ends_a_tunnel_cleanly_but_not_a_frames_session(self):
        r = self.failing_upstream("tunnel", "hello_then_fin")
        self.assertEqual((r["ended"], r["reset"], server_frames(r["body"])), (True, None, [(1, b"hello")]))
        # In frames mode a WebSocket that ends without a Close ended abnormally (RFC 6455 7.1.5).
        r = self.failing_upstream("frames", "hello_then_fin")
        self.assertEqual(r["reset"], h2.errors.ErrorCodes.CONNECT_ERROR, r)
        self.assertEqual(server_frames(r["body"]), [(1, b"hello"), (8, struct.pack("!H", 1001))])

    def test_an_upstream_over_the_routes_limit_ends_the_stream_cleanly(self):
        # 1009 to the upstream is the route's policy, not a failed upstream: the client gets our
        # Close 1001 and END_STREAM, no RST_STREAM.
        r = self.failing_upstream("frames", "big_server_message", max_message_bytes="1KiB")
        self.assertEqual((r["ended"], r["reset"]), (True, None), r)
        self.assertEqual(server_frames(r["body"]), [(8, struct.pack("!H", 1001))])

    def test_an_upstream_protocol_violation_resets_a_frames_stream(self):
        r = self.failing_upstream("frames", "masked_server_frame")
        self.assertEqual(r["reset"], h2.errors.ErrorCodes.CONNECT_ERROR, r)
        self.assertEqual(server_frames(r["body"]), [(8, struct.pack("!H", 1001))])

    def upstream_end_after_client(self, mode, finish):
        """How the upstream's TCP connection ended ("eof", "reset") after the client's `finish`."""
        backend = self.start_raw_ws_backend("hello_after_101")
        p = self.start([{"path": "/ws/", "upstream": "app", "websocket": {"mode": mode}}],
                       upstreams={"app": {"servers": [backend.address]}})
        c, sid = self.open(p, "/ws/x")
        self.assertEqual(c.status(sid), 200, c.responses[sid])
        c.conn.send_data(sid, client_frame(1, b"up"))
        c.flush()
        self.assertTrue(wait_for(lambda: len(backend.ws_received) > 0, 5), "nothing reached the upstream")
        finish(c, sid)
        c.flush()
        self.assertTrue(wait_for(lambda: backend.ws_ends, 5), "the upstream connection stayed open")
        c.pump(0.2)
        self.assertFalse(c.closed, "the HTTP/2 connection ended with the stream")
        return backend.ws_ends

    def test_a_client_reset_resets_the_upstream_connection(self):
        """RFC 9113 8.5 the other way: the client's RST_STREAM (any code) is a TCP RST to the
        upstream in tunnel mode, not a FIN. Frames mode speaks WebSocket to the upstream: it gets
        our Close 1001 and a FIN (an RST could destroy that Close in flight)."""
        for mode, code, end in (("tunnel", h2.errors.ErrorCodes.CANCEL, "reset"),
                                ("tunnel", h2.errors.ErrorCodes.NO_ERROR, "reset"),
                                ("frames", h2.errors.ErrorCodes.CANCEL, "eof")):
            with self.subTest(mode=mode, code=code):
                self.assertEqual(self.upstream_end_after_client(mode, lambda c, sid: c.reset(sid, code)), [end])

    def test_a_client_end_stream_closes_the_upstream_connection_with_a_fin(self):
        for mode in ("tunnel", "frames"):
            with self.subTest(mode=mode):
                self.assertEqual(self.upstream_end_after_client(mode, lambda c, sid: c.conn.end_stream(sid)), ["eof"])

    def test_non_101_answers_never_become_2xx(self):
        backend = self.start_backend(name="plain")
        backend.route("/ws/ok", lambda req, conn: Response(200, body=b"not a websocket"))
        backend.route("/ws/moved", lambda req, conn: Response(302, headers=[("Location", "/x")]))
        backend.route("/ws/gone", lambda req, conn: Response(410, body=b"gone"))
        p = self.start([{"path": "/ws/", "upstream": "app"}], upstreams={"app": {"servers": [backend.address]}})
        for path, expected in (("/ws/ok", 502), ("/ws/moved", 502), ("/ws/gone", 410)):
            c, sid = self.open(p, path)
            c.response(sid, 5)
            self.assertEqual(c.status(sid), expected, path)
        # The backend was asked with an HTTP/1.1 upgrade carrying a key we made.
        req = backend.requests[0]
        self.assertEqual(req.method, "GET")
        self.assertEqual(req.header("Upgrade"), "websocket")
        self.assertEqual(len(req.header("Sec-WebSocket-Key", "")), 24)

    def test_bridge_mode_http_on_a_stream(self):
        def app_logic(req):
            if req.path.startswith("/refuse"):
                return 403, [("Content-Type", "text/plain")], b"go away\n"
            out = []
            for typ, content in req.events:
                if typ == "OPEN":
                    out += [("OPEN", None), ("TEXT", "welcome " + req.header("X-Forwarded-Proto"))]
                elif typ == "TEXT":
                    out.append(("TEXT", b"echo:" + content))
                elif typ == "CLOSE":
                    out.append(("CLOSE", content))
            return 200, [], out
        app = WohBackend(app_logic).start()
        self.addCleanup(app.stop)
        p = self.start([{"path": "/", "upstream": "app",
                         "websocket": {"mode": "http", "ping_interval": 0,
                                       # the app answers well within it however loaded the machine
                                       "http": {"request_timeout": "%ds" % (10 * slow_factor())}}}],
                       upstreams={"app": {"servers": [app.address]}})
        c, sid = self.open(p, "/chat")
        self.assertEqual(c.status(sid), 200, c.responses[sid])
        c.wait(lambda: len(server_frames(c.responses[sid]["body"])) >= 1, 5)
        self.assertEqual(server_frames(c.responses[sid]["body"]), [(1, b"welcome http")])
        self.assertEqual(self.echo_roundtrip(c, sid, "hi app"), [(1, b"echo:hi app")])
        self.close_handshake(c, sid)
        # The app had its CLOSE event before the stream ended (as on HTTP/1.1).
        types = [t for r in app.requests for t in r.types()]
        self.assertEqual(types, ["OPEN", "TEXT", "CLOSE"])
        # A refusal with the app's own body is relayed as it was.
        c2, sid2 = self.open(p, "/refuse")
        c2.response(sid2, 5)
        self.assertEqual(c2.status(sid2), 403)
        self.assertEqual(bytes(c2.responses[sid2]["body"]), b"go away\n")


if __name__ == "__main__":
    main()
