# SPDX-License-Identifier: Apache-2.0
"""Per-WebSocket limits: `websocket.rate` (message and byte token buckets per direction, over
them the sender is closed 1008 and the other side gets 1001) and `websocket.max_lifetime`
(Close 1001 to both sides, then `max_lifetime_grace` for their Close; a tunnel is closed at TCP
level), with their counters in `handler: status` and `handler: metrics`, the log line naming
the route and the client, and `portico -t` refusing `rate` in tunnel mode."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import ws_client  # noqa: E402
from http_client import http_request  # noqa: E402
from portico_harness import main, make_config, run_portico, slow_factor  # noqa: E402
from ws_client import OP_CLOSE, OP_TEXT  # noqa: E402
from ws_peers import (WsTestCase, browser_available, run_browser_close,  # noqa: E402
                      start_raw_python_backend, wait_for)

OBSERVE = [{"path": "/status", "handler": "status"}, {"path": "/metrics", "handler": "metrics"}]


def frames_config(backend, websocket, path="/ws/"):
    ws = {"mode": "frames"}
    ws.update(websocket)
    return make_config(routes=[{"path": path, "upstream": "app", "websocket": ws}] + OBSERVE,
                       upstreams={"app": {"servers": [backend.address]}})


def echo_limits_config(websocket):
    return make_config(routes=[{"path": "/echo", "handler": "echo", "websocket": websocket}] + OBSERVE)


def upstream_frames(data):
    """The masked frames an upstream received, as ws_client.Frame objects."""
    frames, pos = [], 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        n, p = b1 & 0x7F, pos + 2
        if n == 126:
            n, p = int.from_bytes(data[p:p + 2], "big"), p + 2
        elif n == 127:
            n, p = int.from_bytes(data[p:p + 8], "big"), p + 8
        key = data[p:p + 4] if b1 & 0x80 else None
        p += 4 if key else 0
        if len(data) < p + n:
            break
        payload = ws_client.mask_bytes(data[p:p + n], key) if key else data[p:p + n]
        frames.append(ws_client.Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload, bool(key)))
        pos = p + n
    return frames


class LimitsTestCase(WsTestCase):
    test_timeout = 90

    def route_status(self, p, route):
        r = http_request(p.port, "GET", "/status")
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)["routes"][route]["websocket"]

    def wait_counter(self, p, route, key, value):
        ok = wait_for(lambda: self.route_status(p, route)[key] == value, 5 * slow_factor())
        self.assertTrue(ok, "%s of %s never became %d: %r" % (key, route, value, self.route_status(p, route)))

    def metric(self, p, route, limit):
        body = http_request(p.port, "GET", "/metrics").body.decode()
        m = re.search(r'^portico_websocket_limit_closes_total\{route="%s",limit="%s"\} (\d+)$'
                      % (re.escape(route), limit), body, re.M)
        self.assertIsNotNone(m, body)
        return int(m.group(1))


class RateFrames(LimitsTestCase):
    """Frames mode to real backends."""

    def test_client_over_the_message_rate_gets_1008(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(frames_config(b, {"rate": {"messages": "5/s"}}))
        ws = self.ws_connect(p.port, "/ws/rate")
        ws.send_raw(b"".join(ws_client.build_frame(OP_TEXT, b"m%d" % i) for i in range(20)))
        self.assertCloseCode(ws, 1008)
        # The burst (one second's worth: 5) went through and came back; nothing beyond it.
        self.assertLessEqual(len(ws.before_close), 6, ws.before_close)
        ev = b.wait_event(lambda e: e["event"] == "close", 5)
        self.assertIsNotNone(ev, b.output())
        self.assertEqual(ev["code"], 1001, ev)
        self.wait_counter(p, "*/ws/", "closed_by_rate", 1)
        self.assertEqual(self.metric(p, "*/ws/", "rate"), 1)
        self.assertEqual(self.metric(p, "*/ws/", "lifetime"), 0)
        line = p.wait_stderr(lambda l: "1008" in l and "route */ws/" in l, 5)
        self.assertIsNotNone(line, p.stderr_text())
        self.assertIn("127.0.0.1", line)
        self.assertIn("client over the message rate", line)

    def test_client_over_the_byte_rate_gets_1008(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(frames_config(b, {"rate": {"bytes": "1KiB/s",
                                                          "burst": {"bytes": "2KiB"}}}))
        ws = self.ws_connect(p.port, "/ws/bytes")
        ws.send_binary(b"x" * 1500)  # within the 2 KiB burst
        op, data = ws.recv_message()
        self.assertEqual(len(data), 1500)
        ws.send_binary(b"y" * 1500)  # the bucket holds about 550 bytes now
        self.assertCloseCode(ws, 1008)

    def test_traffic_within_the_rate_flows(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(frames_config(b, {"rate": {"messages": "1000/s", "bytes": "1MiB/s"}}))
        ws = self.ws_connect(p.port, "/ws/ok")
        for i in range(50):
            ws.send_text("msg %d" % i)
            self.assertEqual(ws.recv_text(), "msg %d" % i)
        ws.send_close(1000)
        code, _ = ws.expect_close()
        self.assertEqual(code, 1000)
        self.assertEqual(self.route_status(p, "*/ws/")["closed_by_rate"], 0)

    def test_backend_flooding_the_client_gets_1008(self):
        b = start_raw_python_backend(self)
        p = self.start_portico(frames_config(b, {"rate": {"messages": "5/s"}}))
        ws = self.ws_connect(p.port, "/ws/")
        ws.send_text("flood:50")  # one message from the client; 50 back at once
        self.assertCloseCode(ws, 1001)
        self.assertLessEqual(len(ws.before_close), 5, ws.before_close)
        ev = b.wait_event(lambda e: e["event"] == "close", 5)
        self.assertIsNotNone(ev, b.output())
        self.assertEqual(ev["received_close"], 1008, ev)
        self.wait_counter(p, "*/ws/", "closed_by_rate", 1)
        line = p.wait_stderr(lambda l: "upstream over the message rate" in l, 5)
        self.assertIsNotNone(line, p.stderr_text())


class RateBuiltin(LimitsTestCase):
    def test_echo_client_over_the_message_rate_gets_1008(self):
        p = self.start_portico(echo_limits_config({"rate": {"messages": "5/s"}}))
        ws = self.ws_connect(p.port, "/echo")
        ws.send_raw(b"".join(ws_client.build_frame(OP_TEXT, b"m%d" % i) for i in range(20)))
        self.assertCloseCode(ws, 1008)
        self.assertIn(len(ws.before_close), (5, 6), ws.before_close)
        self.wait_counter(p, "*/echo", "closed_by_rate", 1)
        self.assertEqual(self.metric(p, "*/echo", "rate"), 1)

    def test_echo_client_over_the_byte_rate_gets_1008(self):
        p = self.start_portico(echo_limits_config({"rate": {"bytes": "1KiB/s"}}))
        ws = self.ws_connect(p.port, "/echo")
        ws.send_binary(b"z" * 4000)
        self.assertCloseCode(ws, 1008)
        self.assertEqual(ws.before_close, [])  # refused before the codec saw it


class Lifetime(LimitsTestCase):
    def test_frames_mode_closes_both_sides_1001(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(frames_config(b, {"max_lifetime": "1s", "max_lifetime_grace": "5s"}))
        ws = self.ws_connect(p.port, "/ws/old")
        ws.send_text("hi")
        self.assertEqual(ws.recv_text(), "hi")
        code, _ = ws.expect_close(timeout=10 * slow_factor())  # replies, then awaits the TCP close
        self.assertEqual(code, 1001)
        ev = b.wait_event(lambda e: e["event"] == "close", 5)
        self.assertIsNotNone(ev, b.output())
        self.assertEqual(ev["code"], 1001, ev)
        self.wait_counter(p, "*/ws/", "closed_by_lifetime", 1)
        self.assertEqual(self.metric(p, "*/ws/", "lifetime"), 1)

    def test_a_client_that_answers_late_is_not_reset(self):
        # The backend answers the 1001 at once and closes; the client's Close comes later. Portico
        # must still be reading then: a closed socket answers it with a reset, which a browser
        # reports as wasClean false (test_chromium_sees_a_clean_1001 failed so in CI).
        b = self.start_ws_backend("python")
        p = self.start_portico(frames_config(b, {"max_lifetime": "1s", "max_lifetime_grace": "5s"}))
        ws = self.ws_connect(p.port, "/ws/late")
        ws.send_text("hi")
        self.assertEqual(ws.recv_text(), "hi")
        op, data = ws.recv_message(10 * slow_factor())
        self.assertEqual((op, data[:2]), (OP_CLOSE, b"\x03\xe9"))
        self.assertIsNotNone(b.wait_event(lambda e: e["event"] == "close", 5), b.output())
        time.sleep(0.3)  # the session has ended on the backend's side by now
        ws.send_close(1001)
        time.sleep(0.3)
        # A reset in answer to the Close makes this write fail; a lingering socket takes it.
        ws.send_ping(b"after")
        self.assertTrue(ws.wait_eof(5 * slow_factor()))

    def test_a_client_that_ignores_the_close_is_dropped_after_the_grace(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(frames_config(b, {"max_lifetime": "1s", "max_lifetime_grace": "1s"}))
        ws = self.ws_connect(p.port, "/ws/deaf")
        code, _ = ws.expect_close(timeout=10 * slow_factor(), reply=False)
        self.assertEqual(code, 1001)

    def test_builtin_echo_closes_1001(self):
        p = self.start_portico(echo_limits_config({"max_lifetime": "1s"}))
        ws = self.ws_connect(p.port, "/echo")
        ws.send_text("hi")
        self.assertEqual(ws.recv_text(), "hi")
        code, _ = ws.expect_close(timeout=10 * slow_factor())
        self.assertEqual(code, 1001)
        self.wait_counter(p, "*/echo", "closed_by_lifetime", 1)

    def test_tunnel_mode_closes_tcp(self):
        b = start_raw_python_backend(self)
        p = self.start_portico(make_config(
            routes=[{"path": "/ws/", "upstream": "app", "websocket": {"max_lifetime": "1s"}}] + OBSERVE,
            upstreams={"app": {"servers": [b.address]}}))
        ws = self.ws_connect(p.port, "/ws/")
        ws.send_text("hi")
        self.assertEqual(ws.recv_text(), "hi")
        # A tunnel cannot insert a frame: the TCP connection ends without a Close.
        frames, eof = ws.read_until_eof(10 * slow_factor())
        self.assertTrue(eof)
        self.assertEqual(frames, [])
        self.assertIsNotNone(b.wait_event(lambda e: e["event"] == "close", 5), b.output())
        self.wait_counter(p, "*/ws/", "closed_by_lifetime", 1)

    def test_chromium_sees_a_clean_1001(self):
        if not browser_available():
            self.skipTest("node, playwright-core and /usr/bin/chromium are needed")
        b = self.start_ws_backend("python")
        p = self.start_portico(frames_config(b, {"max_lifetime": "1s"}))
        res = run_browser_close("ws://127.0.0.1:%d/ws/browser" % p.port, ["hi"])
        self.assertEqual((res["code"], res["wasClean"], res["echoes"]), (1001, True, ["hi"]), res)


class ConfigCheck(LimitsTestCase):
    def test_rate_in_tunnel_mode_is_an_error_with_its_position(self):
        d = self.tmpdir()
        path = os.path.join(d, "portico.yaml")
        with open(path, "w") as f:
            f.write("listeners: [{address: 127.0.0.1:0}]\n"
                    "upstreams: {app: {servers: [127.0.0.1:9]}}\n"
                    "routes:\n"
                    "  - path: /ws/\n"
                    "    upstream: app\n"
                    "    websocket:\n"
                    "      rate: {messages: 10/s}\n")
        r = run_portico(["-t", "-c", path])
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn("portico.yaml:7:13: routes[0].websocket.rate: needs mode: frames", r.stderr + r.stdout)


if __name__ == "__main__":
    main()
