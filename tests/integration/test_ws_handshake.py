# SPDX-License-Identifier: Apache-2.0
"""WebSocket handshakes (RFC 6455 section 4) through Portico: what is an upgrade, what is
refused before upgrading (400, 426, 403), what goes upstream, and how a bad upstream answer is
handled (non-101 relayed, wrong accept 502, upstream down 502)."""

import base64
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import ws_client  # noqa: E402
from portico_harness import main  # noqa: E402
from ws_client import accept_for, make_key, upgrade_headers  # noqa: E402
from ws_peers import (WsTestCase, closed_socket_port, echo_config, run_node_client,  # noqa: E402
                      wait_for, ws_proxy_config, ws_url)


def _without(headers, name):
    return [(k, v) for k, v in headers if k.lower() != name.lower()]


def _with(headers, name, value):
    return _without(headers, name) + [(name, value)]


class _HandshakeChecks:
    """Checks that hold for the built-in echo and for a route to a backend. Subclasses set up
    self.port and self.path in setUp."""

    def assert_upgraded(self, r, key):
        self.assertEqual(r.status, 101, r)
        self.assertEqual(r.header("Sec-WebSocket-Accept"), accept_for(key), r)
        self.assertIn("websocket", (r.header("Upgrade") or "").lower(), r)
        self.assertIn("upgrade", r.connection_tokens(), r)

    def test_valid_handshake_is_upgraded(self):
        key = make_key()
        self.assert_upgraded(self.handshake(self.port, self.path, upgrade_headers(key=key)), key)

    def test_tokens_are_case_insensitive_and_in_lists(self):
        key = make_key()
        hdrs = [("Upgrade", "WebSocket"), ("Connection", "keep-alive, UPGRADE"),
                ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
        self.assert_upgraded(self.handshake(self.port, self.path, hdrs), key)

    def test_missing_key_is_400(self):
        r = self.handshake(self.port, self.path, _without(upgrade_headers(), "Sec-WebSocket-Key"))
        self.assertEqual(r.status, 400, r)

    def test_bad_keys_are_400(self):
        bad = ["not base64!!", base64.b64encode(b"x" * 15).decode(), base64.b64encode(
            b"x" * 17).decode(), "", "AAAAAAAAAAAAAAAAAAAAAA"]  # last: 22 chars, no padding
        for key in bad:
            with self.subTest(key=key):
                r = self.handshake(self.port, self.path, upgrade_headers(key=key))
                self.assertEqual(r.status, 400, r)

    def test_two_keys_are_400(self):
        hdrs = upgrade_headers() + [("Sec-WebSocket-Key", make_key())]
        r = self.handshake(self.port, self.path, hdrs)
        self.assertEqual(r.status, 400, r)

    def test_version_8_is_426_with_version_13(self):
        for version in ("8", "12", "14", "0"):
            with self.subTest(version=version):
                r = self.handshake(self.port, self.path, upgrade_headers(version=version))
                self.assertEqual(r.status, 426, r)
                self.assertEqual(r.header("Sec-WebSocket-Version"), "13", r)

    def test_upgrade_without_connection_upgrade_is_not_upgraded(self):
        r = self.handshake(self.port, self.path, _without(upgrade_headers(), "Connection"))
        self.assertNotEqual(r.status, 101, r)

    def test_http10_and_post_are_not_upgraded(self):
        for method, version in (("GET", "HTTP/1.0"), ("POST", "HTTP/1.1")):
            with self.subTest(method=method, version=version):
                c = self.client(self.port)
                c.request(method, self.path, headers=upgrade_headers(), version=version,
                          body=b"" if method == "POST" else None)
                r = c.read_response(method=method)
                self.assertNotEqual(r.status, 101, r)

    def test_frame_sent_with_the_handshake_is_not_lost(self):
        # A client may write its first frame right behind the request, before the 101.
        frame = ws_client.build_frame(ws_client.OP_TEXT, b"early bird")
        ws = self.ws_connect(self.port, self.path, early_data=frame)
        self.assertEqual(ws.recv_text(), "early bird")

    def test_missing_version_is_refused(self):
        r = self.handshake(self.port, self.path,
                           _without(upgrade_headers(), "Sec-WebSocket-Version"))
        self.assertIn(r.status, (400, 426), r)


class EchoHandshake(_HandshakeChecks, WsTestCase):
    test_timeout = 30

    def setUp(self):
        super().setUp()
        self.p = self.start_portico(echo_config(websocket={"origins": ["https://example.com"]},
                                                extra_routes=[{"path": "/open-echo",
                                                               "handler": "echo"}]))
        self.port = self.p.port
        self.path = "/open-echo"

    def test_origin_mismatch_is_403(self):
        r = self.handshake(self.port, "/echo", upgrade_headers(origin="https://evil.example"))
        self.assertEqual(r.status, 403, r)

    def test_origin_match_is_upgraded(self):
        key = make_key()
        r = self.handshake(self.port, "/echo",
                           upgrade_headers(key=key, origin="https://example.com"))
        self.assert_upgraded(r, key)

    def test_echo_selects_no_unoffered_subprotocol(self):
        ws = self.ws_connect(self.port, self.path, protocols=["chat.v1"])
        self.assertIn(ws.protocol, (None, "chat.v1"))
        ws2 = self.ws_connect(self.port, self.path)
        self.assertIsNone(ws2.protocol, "echo selected a subprotocol nobody offered")


class ProxyHandshake(_HandshakeChecks, WsTestCase):
    test_timeout = 60
    mode = "tunnel"

    def setUp(self):
        super().setUp()
        self.b = self.start_ws_backend("node")
        self.p = self.start_portico(ws_proxy_config(self.b.address, mode=self.mode))
        self.port = self.p.port
        self.path = "/ws/echo"

    def test_refused_handshakes_never_reach_the_backend(self):
        for hdrs in (_without(upgrade_headers(), "Sec-WebSocket-Key"),
                     upgrade_headers(key="short"), upgrade_headers(version="8")):
            r = self.handshake(self.port, self.path, hdrs)
            self.assertIn(r.status, (400, 426), r)
        self.assertEqual([e for e in self.b.events() if e["event"] == "open"], [],
                         "an invalid handshake reached the backend")

    def test_handshake_headers_reach_the_backend(self):
        res = run_node_client({
            "url": ws_url(self.port, "/ws/echo?q=1"), "info": True,
            "headers": {"Origin": "https://app.example", "Cookie": "sid=abc",
                        "Authorization": "Bearer t0k", "X-Custom": "yes"},
            "protocols": ["chat.v1"]})
        self.assertTrue(res["open"], res)
        info = res["info"]
        self.assertIsNotNone(info, res)
        h = info["headers"]
        self.assertEqual(info["path"], "/ws/echo?q=1")
        self.assertEqual(h.get("origin"), "https://app.example", h)
        self.assertEqual(h.get("cookie"), "sid=abc", h)
        self.assertEqual(h.get("authorization"), "Bearer t0k", h)
        self.assertEqual(h.get("sec-websocket-version"), "13", h)
        self.assertIn("sec-websocket-key", h)
        self.assertEqual(h.get("sec-websocket-protocol"), "chat.v1", h)
        self.assertIn("websocket", h.get("upgrade", "").lower(), h)
        self.assertIn("upgrade", h.get("connection", "").lower(), h)
        self.assertIn("127.0.0.1", h.get("x-forwarded-for", ""), h)
        self.assertEqual(res["protocol"], "chat.v1")

    def test_a_connection_inherits_nothing_from_the_one_before(self):
        """A connection's HTTP state (parser, request, exchange) is given back to its worker when
        it upgrades or ends and serves the next connection: one that left a head half-sent, one
        refused, one upgraded must leave nothing behind (one worker: they share the spares)."""
        p = self.start_portico(ws_proxy_config(self.b.address, mode=self.mode, workers=1))
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", p.port))
            c.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: left.example\r\nX-Left-Over: ")
            c.close()
            r = self.handshake(p.port, "/ws/echo", _without(upgrade_headers(), "Sec-WebSocket-Key"))
            self.assertEqual(r.status, 400, r)
            key = make_key()
            self.assert_upgraded(self.handshake(p.port, "/ws/echo", upgrade_headers(key=key)), key)
        res = run_node_client({"url": ws_url(p.port, "/ws/echo?next=1"), "info": True})
        self.assertTrue(res["open"], res)
        self.assertEqual(res["info"]["path"], "/ws/echo?next=1")
        self.assertNotIn("x-left-over", res["info"]["headers"])
        self.assertNotEqual(res["info"]["headers"].get("host"), "left.example")

    def test_origin_mismatch_is_403_before_the_backend(self):
        p = self.start_portico(ws_proxy_config(self.b.address, mode=self.mode, websocket={
            "origins": ["https://example.com", "http://localhost:8080"]}))
        r = self.handshake(p.port, "/ws/echo", upgrade_headers(origin="https://evil.example"))
        self.assertEqual(r.status, 403, r)
        self.assertFalse([e for e in self.b.events() if e["event"] == "open"])
        key = make_key()
        r = self.handshake(p.port, "/ws/echo",
                           upgrade_headers(key=key, origin="http://localhost:8080"))
        self.assert_upgraded(r, key)

    def test_configured_subprotocols_limit_what_is_agreed(self):
        # Interpretation of `subprotocols: [chat.v1]`: only listed protocols may be agreed.
        # The backend prefers chat.v2, so the outcome is chat.v1 (offer filtered) or a refusal
        # of the upgrade; never chat.v2.
        p = self.start_portico(ws_proxy_config(self.b.address, mode=self.mode,
                                               websocket={"subprotocols": ["chat.v1"]}))
        key = make_key()
        r = self.handshake(p.port, "/ws/echo",
                           upgrade_headers(key=key, protocols=["chat.v1", "chat.v2"]))
        if r.status == 101:
            self.assertEqual(r.header("Sec-WebSocket-Protocol"), "chat.v1", r)
        else:
            self.assertIn(r.status, (400, 403, 502), r)


class FramesProxyHandshake(ProxyHandshake):
    mode = "frames"


class UpstreamAnswers(WsTestCase):
    test_timeout = 60

    def test_non_101_is_relayed_as_ordinary_http(self):
        b = self.start_raw_ws_backend("non101")
        for mode in ("tunnel", "frames"):
            with self.subTest(mode=mode):
                p = self.start_portico(ws_proxy_config(b.address, mode=mode))
                c = self.client(p.port)
                c.request("GET", "/ws/x", headers=upgrade_headers())
                r = c.read_response()
                self.assertEqual(r.status, 403, r)
                self.assertEqual(r.body, b"refused\n")
                self.assertEqual(r.header("X-Refused"), "yes", r)
                self.assertIsNone(r.header("Sec-WebSocket-Accept"), r)

    def test_plain_http_answer_to_an_upgrade_keeps_the_connection_usable(self):
        b = self.start_backend(name="plain")  # answers every request 200 with JSON
        p = self.proxy(b, path="/")
        c = self.client(p.port)
        c.request("GET", "/ws/x", headers=upgrade_headers(origin="https://o.example"))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        seen = {k.lower(): v for k, v in r.json()["headers"]}
        self.assertIn("sec-websocket-key", seen)
        self.assertEqual(seen.get("origin"), "https://o.example")
        # Still HTTP: unless the answer said "Connection: close", another request on the same
        # client connection works.
        if "close" in r.connection_tokens():
            self.assertClosed(c)
            return
        r2 = c.roundtrip("GET", "/again")
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json()["path"], "/again")

    def test_wrong_accept_is_502(self):
        b = self.start_raw_ws_backend("wrong_accept")
        for mode in ("tunnel", "frames"):
            with self.subTest(mode=mode):
                p = self.start_portico(ws_proxy_config(b.address, mode=mode))
                r = self.handshake(p.port, "/ws/x")
                self.assertEqual(r.status, 502, r)

    def test_missing_accept_is_502(self):
        b = self.start_raw_ws_backend("no_accept")
        p = self.start_portico(ws_proxy_config(b.address, mode="tunnel"))
        r = self.handshake(p.port, "/ws/x")
        self.assertEqual(r.status, 502, r)

    def test_frame_sent_right_behind_the_101_is_relayed(self):
        b = self.start_raw_ws_backend("hello_after_101")
        for mode in ("tunnel", "frames"):
            with self.subTest(mode=mode):
                p = self.start_portico(ws_proxy_config(b.address, mode=mode))
                ws = self.ws_connect(p.port, "/ws/x")
                self.assertEqual(ws.recv_text(), "hello")

    def test_a_101_larger_than_a_small_buffer_is_relayed_whole(self):
        # About 6 KB of fields: the 101 no longer fits the stack buffer the usual one is
        # formatted in, and goes out the general way, whole and before the frame behind it.
        b = self.start_raw_ws_backend("big_101", size=6000)
        for mode in ("tunnel", "frames"):
            with self.subTest(mode=mode):
                p = self.start_portico(ws_proxy_config(b.address, mode=mode))
                ws = self.ws_connect(p.port, "/ws/x")
                for n in (0, 29, 59):
                    self.assertEqual(ws.response.header("X-Pad-%d" % n), "p" * 90)
                self.assertEqual(ws.recv_text(), "hello")

    def test_client_leaving_during_a_slow_upstream_handshake(self):
        b = self.start_raw_ws_backend("slow_101", delay=1.0)
        for mode in ("tunnel", "frames"):
            with self.subTest(mode=mode):
                p = self.start_portico(ws_proxy_config(b.address, mode=mode))
                closed_before = b.ws_closed
                c = self.client(p.port)
                c.request("GET", "/ws/slow", headers=upgrade_headers())
                time.sleep(0.2)
                c.close()
                # Portico lets go of the upstream connection too (it may first see the 101).
                self.assertTrue(wait_for(lambda: b.ws_closed > closed_before, timeout=6),
                                "the upstream connection outlived its client")
                # And it still serves.
                ws = self.ws_connect(p.port, "/ws/after")
                self.assertIsNotNone(ws.response)

    def test_upstream_down_is_502(self):
        for mode in ("tunnel", "frames"):
            with self.subTest(mode=mode):
                p = self.start_portico(ws_proxy_config("127.0.0.1:%d" % closed_socket_port(),
                                                       mode=mode))
                r = self.handshake(p.port, "/ws/x")
                self.assertEqual(r.status, 502, r)

    def test_other_upgrades_are_proxied_as_plain_http(self):
        b = self.start_backend(name="plain")
        p = self.proxy(b, path="/")
        for upgrade in ("h2c", "TLS/1.0", "foo, bar"):
            with self.subTest(upgrade=upgrade):
                c = self.client(p.port)
                hdrs = [("Upgrade", upgrade), ("Connection", "Upgrade, HTTP2-Settings"),
                        ("HTTP2-Settings", "AAMAAABkAAQAAP__")]
                c.request("GET", "/h2c", headers=hdrs)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                seen = {k.lower(): v for k, v in r.json()["headers"]}
                self.assertNotIn("upgrade", seen, "Upgrade reached the backend: %r" % seen)
                self.assertNotIn("upgrade", seen.get("connection", "").lower(), seen)
                r2 = c.roundtrip("GET", "/after")
                self.assertEqual(r2.status, 200, r2)


if __name__ == "__main__":
    main()
