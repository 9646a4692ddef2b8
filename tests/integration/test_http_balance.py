# SPDX-License-Identifier: Apache-2.0
"""Upstream selection: round_robin, least_conn, ip_hash; fail-over and marking servers down."""

import collections
import threading
import time

from backends import BlackholeListener, HttpBackend, free_port
from http_client import RawClient
from portico_harness import PorticoTestCase, main, make_config, slow_factor


def upstream_config(servers, balance=None, workers=1, **up):
    u = {"servers": list(servers)}
    if balance:
        u["balance"] = balance
    u.update(up)
    return make_config(upstreams={"app": u}, routes=[{"path": "/", "upstream": "app"}],
                       workers=workers)


class Balancing(PorticoTestCase):
    def fresh_get(self, p, target="/echo", source=None):
        c = RawClient(p.port, source=source)
        try:
            c.request("GET", target, headers=[("Connection", "close")])
            return c.read_response()
        finally:
            c.close()

    def test_round_robin_new_connections(self):
        bs = [self.start_backend(name=n) for n in "abc"]
        p = self.start_portico(upstream_config([b.address for b in bs], "round_robin"))
        seen = collections.Counter()
        for _ in range(30):
            r = self.fresh_get(p)
            self.assertEqual(r.status, 200)
            seen[r.header("X-Backend")] += 1
        self.assertEqual(seen, {"a": 10, "b": 10, "c": 10})

    def test_round_robin_per_request_on_one_client_connection(self):
        bs = [self.start_backend(name=n) for n in "abc"]
        p = self.start_portico(upstream_config([b.address for b in bs], "round_robin"))
        c = self.client(p.port)
        seen = collections.Counter(c.roundtrip("GET", "/echo").header("X-Backend")
                                   for _ in range(30))
        self.assertEqual(seen, {"a": 10, "b": 10, "c": 10})

    def test_round_robin_is_the_default(self):
        bs = [self.start_backend(name=n) for n in "ab"]
        p = self.start_portico(upstream_config([b.address for b in bs]))
        seen = collections.Counter(self.fresh_get(p).header("X-Backend") for _ in range(10))
        self.assertEqual(seen, {"a": 5, "b": 5})

    def test_least_conn_avoids_the_busy_server(self):
        bs = [self.start_backend(name=n) for n in "ab"]
        p = self.start_portico(upstream_config([b.address for b in bs], "least_conn"))
        slow = self.client(p.port)
        slow.request("GET", "/slow?delay=%.1f" % (2.0 * slow_factor()))
        deadline = time.monotonic() + 2
        while sum(b.request_count() for b in bs) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = "a" if bs[0].request_count() else "b"
        other = "b" if busy == "a" else "a"
        seen = collections.Counter(self.fresh_get(p).header("X-Backend") for _ in range(6))
        self.assertEqual(seen, {other: 6}, "least_conn sent requests to the busy server %s"
                         % busy)
        r = slow.read_response()
        self.assertEqual((r.status, r.header("X-Backend")), (200, busy))

    def test_ip_hash_is_sticky_per_client_address(self):
        bs = [self.start_backend(name=n) for n in "abc"]
        p = self.start_portico(upstream_config([b.address for b in bs], "ip_hash"))
        chosen = {}
        for i in range(1, 25):
            src = "127.0.%d.1" % i
            names = {self.fresh_get(p, source=src).header("X-Backend") for _ in range(3)}
            self.assertEqual(len(names), 1, "ip_hash sent %s to %s" % (src, names))
            chosen[src] = names.pop()
        self.assertGreater(len(set(chosen.values())), 1,
                           "24 client addresses all hashed to one server: %r" % chosen)


class FailOver(PorticoTestCase):
    def test_idempotent_get_never_sees_502_when_one_server_refuses(self):
        b = self.start_backend(name="b")
        down = "127.0.0.1:%d" % free_port()
        p = self.start_portico(upstream_config([down, b.address], "round_robin", workers=2))
        statuses = collections.Counter()
        for i in range(20):
            r = RawClient(p.port)
            statuses[r.roundtrip("GET", "/echo/%d" % i,
                                 headers=[("Connection", "close")]).status] += 1
            r.close()
        c = self.client(p.port)
        for i in range(20):
            statuses[c.roundtrip("GET", "/echo/ka%d" % i).status] += 1
        self.assertEqual(statuses, {200: 40})

    def test_a_request_with_trailers_is_retried_whole_on_the_next_server(self):
        # The connect to the first server fails: nothing reached it, so the request goes to the
        # next one as a request without trailers does, its trailer section included (it used to
        # be answered 502: the trailers were not kept for a resend).
        b = self.start_backend(name="b")
        down = "127.0.0.1:%d" % free_port()
        p = self.start_portico(upstream_config([down, b.address], "round_robin"))
        c = self.client(p.port)
        for i in range(3):  # the first goes to the refusing server; the next ones skip it
            c.send(b"GET /echo/t%d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"0\r\nX-Checksum: abc%d\r\n\r\n" % (i, i))
            r = c.read_response()
            self.assertEqual((r.status, r.header("X-Backend")), (200, "b"), "request %d: %r" % (i, r))
            doc = r.json()
            self.assertEqual((doc["path"], doc["chunked"], doc["trailers"]),
                             ("/echo/t%d" % i, True, [["X-Checksum", "abc%d" % i]]))
        self.assertEqual(b.request_count(), 3)

    def test_refusing_server_is_skipped_then_probed_again(self):
        port = free_port()
        b = self.start_backend(name="b")
        p = self.start_portico(upstream_config(["127.0.0.1:%d" % port, b.address],
                                               "round_robin"))
        c = self.client(p.port)
        for i in range(10):
            r = c.roundtrip("GET", "/echo/%d" % i)
            self.assertEqual((r.status, r.header("X-Backend")), (200, "b"))
        # the server comes back: while it is marked down (back-off) it gets nothing ...
        a = HttpBackend(name="a", port=port).start()
        self.addCleanup(a.stop)
        early = [c.roundtrip("GET", "/echo/early").header("X-Backend") for _ in range(6)]
        self.assertEqual(early, ["b"] * 6, "a server marked down got traffic right away")
        # ... and is probed again later
        deadline = time.monotonic() + 30 * slow_factor()
        while a.request_count() == 0 and time.monotonic() < deadline:
            self.assertEqual(c.roundtrip("GET", "/echo/probe").status, 200)
            time.sleep(0.2)
        self.assertGreater(a.request_count(), 0, "the recovered server never got traffic again")

    def test_connect_timeout_server_is_skipped_after_the_first_failure(self):
        hole = BlackholeListener()
        self.addCleanup(hole.close)
        b = self.start_backend(name="b")
        p = self.start_portico(upstream_config([hole.address, b.address], "round_robin",
                                               connect_timeout="300ms"))
        slow_requests = 0
        c = self.client(p.port)
        for i in range(10):
            t0 = time.monotonic()
            r = c.roundtrip("GET", "/echo/%d" % i)
            if time.monotonic() - t0 > 0.25:
                slow_requests += 1
            self.assertEqual((r.status, r.header("X-Backend")), (200, "b"),
                             "request %d: %r" % (i, r))
        self.assertLessEqual(slow_requests, 1, "%d of 10 requests waited for the connect "
                             "timeout: the server was not marked down" % slow_requests)

    def test_server_that_goes_away_while_running(self):
        a = self.start_backend(name="a")
        b = HttpBackend(name="b").start()
        self.addCleanup(b.stop)
        p = self.start_portico(upstream_config([a.address, b.address], "round_robin",
                                               workers=2))
        c = self.client(p.port)
        names = {c.roundtrip("GET", "/echo").header("X-Backend") for _ in range(6)}
        self.assertEqual(names, {"a", "b"})
        b.stop()  # closes its pooled connections too
        time.sleep(0.2)
        for i in range(12):
            r = c.roundtrip("GET", "/echo/%d" % i)
            self.assertEqual((r.status, r.header("X-Backend")), (200, "a"),
                             "request %d after b stopped: %r" % (i, r))

    def test_concurrent_requests_with_one_server_down(self):
        bs = [self.start_backend(name=n) for n in "ab"]
        down = "127.0.0.1:%d" % free_port()
        p = self.start_portico(upstream_config([down] + [b.address for b in bs], workers=2))
        results = collections.Counter()
        lock = threading.Lock()

        def worker():
            c = RawClient(p.port)
            try:
                for i in range(15):
                    s = c.roundtrip("GET", "/echo/%d" % i).status
                    with lock:
                        results[s] += 1
            finally:
                c.close()

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(results, {200: 120})


if __name__ == "__main__":
    main()
