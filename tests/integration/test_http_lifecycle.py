# SPDX-License-Identifier: Apache-2.0
"""Process life: listeners on port 0, workers, max_connections, and graceful stop on SIGTERM
and SIGINT (in-flight requests finish, shutdown_timeout bounds the wait, exit code 0)."""

import re
import signal
import socket
import threading
import time

from backends import Response, free_port
from http_client import RawClient
from portico_harness import PorticoTestCase, main, proxy_config, slow_factor
from ws_peers import wait_for


def wait_connectable(port, timeout=10.0):
    deadline = time.monotonic() + timeout * slow_factor()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class GracefulStop(PorticoTestCase):
    def setUp(self):
        self.b = self.start_backend(name="a")

    def send_in_flight(self, c, target):
        """Sends GET target and returns once the backend has it: in flight, not in a queue
        (a fixed sleep stood for this, and a loaded machine can take longer)."""
        before = self.b.request_count()
        c.request("GET", target)
        self.assertTrue(wait_for(lambda: self.b.request_count() > before, timeout=10),
                        "the request never reached the backend")

    def test_sigterm_lets_an_in_flight_request_finish(self):
        p = self.proxy(self.b)
        c = self.client(p.port)
        self.send_in_flight(c, "/slow?delay=1.5")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"slow done"))
        rc = p.wait(10)
        self.assertEqual(rc, 0, "exit code %r; stderr:\n%s" % (rc, p.stderr_text()))
        self.assertLess(time.monotonic() - t0, 5 * slow_factor())

    def test_sigterm_lets_a_streaming_body_finish(self):
        p = self.proxy(self.b)
        c = self.client(p.port)
        self.send_in_flight(c, "/slow?delay=1&where=body&n=300000")  # head now, body in 1 s
        p.send_signal(signal.SIGTERM)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body_len, 300000)
        self.assertEqual(p.wait(10), 0)

    def test_sigterm_stops_accepting(self):
        release = threading.Event()  # the in-flight request is answered once this is set
        self.addCleanup(release.set)
        self.b.route("/held", lambda req, conn: release.wait(60) and Response(body=b"held"))
        p = self.start_portico(proxy_config([self.b.address], shutdown_timeout="60s"))
        c = self.client(p.port)
        self.send_in_flight(c, "/held")
        p.send_signal(signal.SIGTERM)
        self.assertIsNotNone(p.wait_stderr(lambda l: "stopping:" in l), p.stderr_text())
        # The workers close their listeners once the signal reaches them: a connection the
        # kernel completed before that is served (they empty their queues). Polled, not slept
        # for: the claim is that the listeners close while a request is still in flight.
        self.assertTrue(wait_for(lambda: not self.served(p.port), timeout=10),
                        "new connections were still served after SIGTERM")
        self.assertTrue(p.alive(), "portico ended before the in-flight request did")
        release.set()
        self.assertEqual(c.read_response().body, b"held")
        self.assertEqual(p.wait(10), 0)

    @staticmethod
    def served(port):
        """True when a new connection to port gets an answer to GET /echo."""
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            return False
        with s:
            try:
                # the kernel may still complete a handshake on a closing listener; it must not
                # be served then
                s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                s.settimeout(1.0)
                return s.recv(100).startswith(b"HTTP/1.1 200")
            except OSError:  # a reset, or nothing within the second
                return False

    def test_in_flight_keepalive_connection_is_closed_after_its_response(self):
        p = self.proxy(self.b)
        c = self.client(p.port)
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
        self.send_in_flight(c, "/slow?delay=1")
        p.send_signal(signal.SIGTERM)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertClosed(c, 5)
        self.assertEqual(p.wait(10), 0)

    def test_idle_keepalive_connections_do_not_delay_exit(self):
        p = self.start_portico(proxy_config([self.b.address], shutdown_timeout="20s"))
        idle = []
        for _ in range(3):
            c = self.client(p.port)
            self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
            idle.append(c)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 3 * slow_factor(),
                        "idle keep-alive connections held the shutdown")
        for c in idle:
            self.assertClosed(c)

    def test_shutdown_timeout_bounds_the_wait(self):
        p = self.start_portico(proxy_config([self.b.address], shutdown_timeout="1s"))
        c = self.client(p.port)
        self.send_in_flight(c, "/slow?delay=30")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit code %r after shutdown_timeout" % rc)
        self.assertGreater(took, 0.8)
        self.assertLess(took, 4 * slow_factor())
        self.assertClosed(c)

    def test_sigint_stops_gracefully(self):
        p = self.proxy(self.b)
        c = self.client(p.port)
        self.send_in_flight(c, "/slow?delay=1")
        p.send_signal(signal.SIGINT)
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(p.wait(10), 0)

    def test_stop_with_nothing_running(self):
        p = self.proxy(self.b)
        t0 = time.monotonic()
        self.assertEqual(p.stop(), 0)
        self.assertLess(time.monotonic() - t0, 3 * slow_factor())


class ErrorLog(PorticoTestCase):
    def traffic(self, port):
        c = RawClient(port)
        c.roundtrip("GET", "/echo")
        c.roundtrip("GET", "/nothing")
        c.close()
        c = RawClient(port)
        c.send(b"BAD REQUEST\r\n\r\n")
        c.read_available(1.0)
        c.close()

    def test_level_error_hides_info_and_debug(self):
        b = self.start_backend(name="a")
        port = free_port()
        p = self.start_portico(proxy_config([b.address], path="/echo", level="error",
                                            listeners=["127.0.0.1:%d" % port]), listeners=0)
        wait_connectable(port)
        self.traffic(port)
        p.stop()
        noisy = [x for x in p.stderr_lines() if re.search(r"\b(info|debug)\b", x, re.I)]
        self.assertEqual(noisy, [], "level: error still logs info/debug lines")

    def test_level_debug_logs_more_than_info(self):
        b = self.start_backend(name="a")
        counts = {}
        for level in ("info", "debug"):
            p = self.start_portico(proxy_config([b.address], path="/echo", level=level))
            self.traffic(p.port)
            p.stop()
            counts[level] = len(p.stderr_lines())
        self.assertGreater(counts["debug"], counts["info"], counts)


class Listeners(PorticoTestCase):
    def test_two_listeners_on_port_0_are_both_reported_and_served(self):
        b = self.start_backend(name="a")
        p = self.start_portico(proxy_config([b.address], listeners=2))
        self.assertEqual(len(p.addresses), 2)
        self.assertNotEqual(p.addresses[0][1], p.addresses[1][1])
        for host, port in p.addresses:
            r = self.client(port).roundtrip("GET", "/echo")
            self.assertEqual(r.status, 200)

    def test_ipv6_loopback_listener(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        b = self.start_backend(name="a")
        p = self.start_portico(proxy_config([b.address], listeners=["[::1]:0"]))
        self.assertEqual(p.addresses[0][0], "::1")
        c = self.client(p.port, host="::1")
        r = c.roundtrip("GET", "/echo", host="[::1]")
        self.assertEqual(r.status, 200)
        xff = [v for k, v in r.json()["headers"] if k.lower() == "x-forwarded-for"]
        self.assertEqual(xff, ["::1"])

    def test_many_concurrent_connections_over_two_workers(self):
        b = self.start_backend(name="a")
        p = self.start_portico(proxy_config([b.address], workers=2))
        errors = []
        ok = [0]
        lock = threading.Lock()

        def run(i):
            try:
                c = RawClient(p.port)
                for j in range(5):
                    r = c.roundtrip("POST", "/echo/%d/%d" % (i, j), body=b"x" * 1000)
                    if r.status != 200 or r.json()["body_len"] != 1000:
                        errors.append(r)
                    with lock:
                        ok[0] += 1
                c.close()
            except Exception as e:  # noqa: BLE001 - report every failure
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(ok[0], 250)

    def test_max_connections_pauses_accepting(self):
        b = self.start_backend(name="a")
        p = self.start_portico(proxy_config([b.address], workers=1,
                                            limits={"max_connections": 3}))
        held = []
        for _ in range(3):
            c = self.client(p.port)
            self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
            held.append(c)
        extra = self.client(p.port)  # the kernel completes the handshake; no one serves it
        extra.request("GET", "/echo/extra")
        early = extra.read_available(0.7)
        self.assertEqual(early, b"", "a connection beyond max_connections was answered")
        self.assertFalse(extra.eof, "a connection beyond max_connections was closed, not paused")
        served = [r.target for r in b.requests if r.target == "/echo/extra"]
        self.assertEqual(served, [])
        held[0].close()
        extra.sock.settimeout(5 * slow_factor())
        r = extra.read_response()
        self.assertEqual(r.status, 200, "the waiting connection was not served after a slot "
                         "freed up")
        # nothing crashed; the others still work
        self.assertEqual(held[1].roundtrip("GET", "/echo").status, 200)


if __name__ == "__main__":
    main()
