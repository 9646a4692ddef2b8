# SPDX-License-Identifier: Apache-2.0
"""Many concurrent idle WebSocket connections through Portico, with the memory each costs.

10,000 connections to the built-in echo (one descriptor each in Portico), and as many as the
open-file limit allows (about 9,900 with the usual 20,000 hard limit: two descriptors per
proxied connection) tunnelled and in frames mode to the Node express-ws backend. The RSS that
Portico gains per connection is printed and must stay under a generous bound."""

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import LEAN_ASAN_ENV, main, make_config, slow_factor  # noqa: E402
from ws_client import OP_TEXT, WsConnection  # noqa: E402
from ws_peers import WsTestCase, connect_many, raise_nofile, ws_proxy_config  # noqa: E402

PER_CONNECTION_KB_LIMIT = 16.0


class ManyIdleConnections(WsTestCase):
    test_timeout = 150

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nofile = raise_nofile()

    def settle_rss(self, p, seconds=1.0):
        """The RSS after it stopped moving for a moment (KB)."""
        last = p.rss_kb()
        deadline = time.monotonic() + seconds * 3
        while time.monotonic() < deadline:
            time.sleep(seconds / 4)
            now = p.rss_kb()
            if now == last:
                break
            last = now
        return last

    def run_many(self, p, path, count, label):
        # Warm up: the first connections allocate per-worker pools and caches once.
        warm = connect_many(p.port, path, 64)
        for s in warm:
            s.close()
        base = self.settle_rss(p)
        t0 = time.monotonic()
        socks = connect_many(p.port, path, count, timeout=90)
        self.addCleanup(lambda: [s.close() for s in socks])
        opened = time.monotonic() - t0
        after = self.settle_rss(p)
        per_conn = (after - base) * 1024.0 / count / 1024.0
        print("\n  %s: %d idle WebSockets opened in %.1f s; Portico RSS %d KB -> %d KB, "
              "%.2f KB per connection" % (label, count, opened, base, after, per_conn))
        # Idle, yet alive: a sample still echoes.
        for s in random.sample(socks, 20):
            s.setblocking(True)
            ws = WsConnection(s, timeout=10 * slow_factor())
            ws.send_text("alive?")
            op, data = ws.recv_message()
            self.assertEqual((op, data), (OP_TEXT, b"alive?"))
        limit = PER_CONNECTION_KB_LIMIT * (4 if p.uses_asan() else 1)
        self.assertLess(per_conn, limit, "%.2f KB per idle connection" % per_conn)
        for s in socks:
            s.close()
        socks.clear()
        # Everything went away: a new connection still works.
        ws = self.ws_connect(p.port, path)
        ws.send_text("after")
        self.assertEqual(ws.recv_text(), "after")
        return per_conn

    def test_10000_idle_connections_to_the_builtin_echo(self):
        count = 10000
        if self.nofile < count + 200:
            self.skipTest("RLIMIT_NOFILE hard limit %d is below %d" % (self.nofile, count + 200))
        p = self.start_portico(make_config(
            workers=2, limits={"max_connections": 30000, "per_ip_connections": 0,
                               "per_ip_websockets": 0},  # one client address: no per-IP caps
            routes=[{"path": "/echo", "handler": "echo",
                     "websocket": {"ping_interval": 0, "idle_timeout": "10m"}}]),
            env=LEAN_ASAN_ENV)
        self.run_many(p, "/echo", count, "echo")

    def _proxied(self, mode):
        # Two descriptors per connection in Portico; keep room for listeners and the like.
        count = min(10000, (self.nofile - 400) // 2)
        if count < 1000:
            self.skipTest("RLIMIT_NOFILE %d is too low" % self.nofile)
        b = self.start_ws_backend("node")
        p = self.start_portico(ws_proxy_config(
            b.address, mode=mode, workers=2,
            limits={"max_connections": 30000, "per_ip_connections": 0, "per_ip_websockets": 0},
            websocket={"idle_timeout": "10m"} if mode == "tunnel" else
            {"idle_timeout": "10m", "ping_interval": 0}), env=LEAN_ASAN_ENV)
        self.run_many(p, "/ws/idle", count, "%s to express-ws" % mode)

    def test_idle_tunnels_to_a_node_backend(self):
        self._proxied("tunnel")

    def test_idle_frames_connections_to_a_node_backend(self):
        self._proxied("frames")


if __name__ == "__main__":
    main()
