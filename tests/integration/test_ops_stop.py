# SPDX-License-Identifier: Apache-2.0
"""Graceful stop (issue 5): on SIGTERM Portico stops accepting, lets HTTP requests in flight
finish, sends close 1001 Going Away to WebSockets in frames mode and on built-in handlers (echo,
pubsub), closes tunnels, closes idle keep-alive connections, and exits 0 as soon as nothing is
left, or after shutdown_timeout with whatever is left closed."""

import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import main, make_config, slow_factor  # noqa: E402
from ws_client import OP_CLOSE, OP_TEXT  # noqa: E402
from ws_peers import WsTestCase, wait_for  # noqa: E402


def refused(port, timeout=0.5):
    """True when a TCP connect to 127.0.0.1:port is refused, or is accepted by a listening
    socket that is being closed (reset before any answer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, ConnectionResetError):
            return True
        except OSError:
            return False
        # A live listener answers a request; one whose queue is dropped resets or closes.
        try:
            s.sendall(b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return not s.recv(64)
        except OSError:
            return True
    finally:
        s.close()


class GracefulStop(WsTestCase):
    test_timeout = 90

    def setUp(self):
        super().setUp()
        self.wsb = self.start_ws_backend("python", deflate=False)
        self.hb = self.start_backend(name="h")

    def config(self, shutdown_timeout, access="off"):
        return make_config(
            routes=[{"path": "/echo", "handler": "echo"},
                    {"path": "/live/", "handler": "pubsub", "pubsub": {"publish_token": "t"}},
                    {"path": "/frames/", "upstream": "ws", "websocket": {"mode": "frames"}},
                    {"path": "/tunnel/", "upstream": "ws", "websocket": {"mode": "tunnel"}},
                    {"path": "/api/", "upstream": "http"}],
            upstreams={"ws": {"servers": [self.wsb.address]},
                       "http": {"servers": [self.hb.address]}},
            shutdown_timeout=shutdown_timeout, access=access)

    def open_websockets(self, p):
        sockets = {"echo": self.ws_connect(p.port, "/echo"),
                   "frames": self.ws_connect(p.port, "/frames/x"),
                   "tunnel": self.ws_connect(p.port, "/tunnel/y")}
        for name, ws in sockets.items():
            ws.send_text("hello " + name)
            self.assertEqual(ws.recv_message(), (OP_TEXT, ("hello " + name).encode()))
        sockets["pubsub"] = self.ws_connect(p.port, "/live/room")
        return sockets

    def test_sigterm_goes_away_finishes_requests_and_exits_0(self):
        timeout_s = 8
        p = self.start_portico(self.config("%ds" % timeout_s))
        sockets = self.open_websockets(p)
        idle = self.client(p.port)
        self.assertEqual(idle.roundtrip("GET", "/api/idle").status, 200)
        delay = 1.5 * slow_factor()
        # two requests in flight: one waiting for its response head, one in the middle of its body
        slow = {where: self.client(p.port, timeout=20) for where in ("head", "body")}
        for where, c in slow.items():
            c.request("GET", "/api/slow?delay=%g&where=%s&n=100000" % (delay, where))
        self.assertTrue(wait_for(lambda: sum(r.path == "/api/slow" for r in self.hb.requests) == 2))
        slow_result = {}

        def read_slow(where):
            try:
                slow_result[where] = slow[where].read_response()
            except Exception as e:  # noqa: BLE001 - reported below
                slow_result[where] = e

        readers = [threading.Thread(target=read_slow, args=(w,), daemon=True) for w in slow]
        for reader in readers:
            reader.start()
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)

        # WebSockets: 1001 for frames mode and built-ins, the tunnel closed
        for name in ("echo", "pubsub", "frames"):
            code, reason = sockets[name].expect_close(timeout=3 * slow_factor())
            self.assertEqual(code, 1001, "%s WebSocket: close %r %r on SIGTERM" % (name, code, reason))
        frames, eof = sockets["tunnel"].read_until_eof(3 * slow_factor())
        self.assertTrue(eof, "the tunnel stayed open after SIGTERM")
        # the backend behind frames mode was told 1001 too
        ev = self.wsb.wait_event(lambda e: e["event"] == "close" and e.get("code") == 1001,
                                 timeout=3)
        self.assertIsNotNone(ev, "frames mode did not send 1001 to the backend: %r"
                             % self.wsb.close_events())
        # idle keep-alive connections are closed, new connections refused
        self.assertClosed(idle, timeout=2 * slow_factor(), msg="idle keep-alive connection kept open")
        self.assertTrue(wait_for(lambda: refused(p.port), timeout=2),
                        "still accepting connections after SIGTERM")
        # the request in flight finishes with its whole body
        for reader in readers:
            reader.join(delay + 10)
        for where in slow:
            r = slow_result.get(where)
            self.assertFalse(r is None or isinstance(r, Exception),
                             "the request in flight (delayed %s) was cut: %r" % (where, r))
            self.assertEqual((r.status, r.body_len), (200, 100000), r)
        # and the process leaves with 0 once nothing is left, well before shutdown_timeout
        rc = p.wait(timeout_s + 5)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit code %r; stderr:\n%s" % (rc, p.stderr_text()[-3000:]))
        self.assertLess(elapsed, timeout_s - 1,
                        "took %.1fs to exit although everything had finished" % elapsed)

    def test_sigterm_cuts_what_is_left_after_shutdown_timeout(self):
        p = self.start_portico(self.config("1s"))
        # a request that would take 30 s and a WebSocket client that never answers the close
        stuck = self.client(p.port, timeout=20)
        stuck.request("GET", "/api/slow?delay=30")
        self.assertTrue(wait_for(lambda: any(r.path == "/api/slow" for r in self.hb.requests)))
        mute = self.ws_connect(p.port, "/echo")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(1 + 5)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit code %r after shutdown_timeout; stderr:\n%s"
                         % (rc, p.stderr_text()[-3000:]))
        self.assertGreater(elapsed, 0.8, "exited after %.2fs: it did not wait for the request "
                           "in flight" % elapsed)
        self.assertLess(elapsed, 1 + 3 * slow_factor(), "exited %.1fs after SIGTERM with "
                        "shutdown_timeout 1s" % elapsed)
        self.assertTrue(stuck.wait_closed(2), "the stuck request's connection is still open")
        f = mute.recv_frame(2)
        self.assertEqual((f.opcode, f.close_code), (OP_CLOSE, 1001), f)

    def test_a_second_stop_signal_stops_now_and_exits_0_with_the_logs(self):
        # nginx and HAProxy take a second stop signal for "stop now". Unwatched once the graceful
        # stop began, it killed Portico by the signal: no last log lines, exit by SIGTERM. A
        # SIGHUP then killed it too.
        p = self.start_portico(self.config("60s", access="stdout"))
        c = self.client(p.port)
        self.assertEqual(c.roundtrip("GET", "/api/before").status, 200)
        stuck = self.client(p.port, timeout=20)
        stuck.request("GET", "/api/slow?delay=50")
        self.assertTrue(wait_for(lambda: any(r.path == "/api/slow" for r in self.hb.requests)))
        mute = self.ws_connect(p.port, "/echo")  # never answers its 1001
        start = len(p.stderr_lines())
        p.send_signal(signal.SIGTERM)
        self.assertIsNotNone(p.wait_stderr(lambda l: "stopping: finishing requests" in l, start=start))
        p.send_signal(signal.SIGHUP)
        self.assertIsNotNone(p.wait_stderr(lambda l: "SIGHUP during the graceful stop" in l, start=start),
                             p.stderr_text()[-3000:])
        self.assertIsNone(p.wait(0.5), "exited before the second stop signal")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(10)
        self.assertEqual(rc, 0, "exit code %r after a second SIGTERM; stderr:\n%s" % (rc, p.stderr_text()[-3000:]))
        self.assertLess(time.monotonic() - t0, 5 * slow_factor(), "the second SIGTERM did not stop at once")
        err = p.stderr_text()
        self.assertIn("stop signal during the graceful stop: closing what is left now", err)
        # the stuck request (built-in endpoints close TCP right after their 1001: the mute
        # WebSocket is gone already; a worker with nothing left has ended)
        self.assertEqual(sum(int(n) for n in re.findall(r"worker \d+: stopping now, closing (\d+) connections", err)),
                         1, err)
        self.assertIn("stopped", p.stderr_lines()[-1])
        self.assertTrue(stuck.wait_closed(2), "the stuck request's connection is still open")
        self.assertEqual(mute.recv_frame(2).close_code, 1001)
        self.assertIn("/api/before", [e.get("path") for e in p.access_log(count=1)])

    def test_sigint_stops_like_sigterm(self):
        p = self.start_portico(self.config("5s"))
        ws = self.ws_connect(p.port, "/echo")
        p.send_signal(signal.SIGINT)
        self.assertEqual(ws.expect_close(timeout=3 * slow_factor())[0], 1001)
        self.assertEqual(p.wait(10), 0)

    def test_sigquit_stops_like_sigterm(self):
        # nginx's graceful stop; unhandled, it killed Portico with a core dump.
        p = self.start_portico(self.config("5s"))
        ws = self.ws_connect(p.port, "/echo")
        p.send_signal(signal.SIGQUIT)
        self.assertEqual(ws.expect_close(timeout=3 * slow_factor())[0], 1001)
        self.assertEqual(p.wait(10), 0)


if __name__ == "__main__":
    main()
