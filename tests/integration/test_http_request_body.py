# SPDX-License-Identifier: Apache-2.0
"""Request bodies (hardening issue): a publish without a valid token is refused at its head
(401, nothing of the body read or buffered), `limits.client_body_timeout` ends a body that stops
arriving (408) for built-in handlers and proxied requests, `Expect: 100-continue` is answered
for a publish, and an HTTP/1.0 keep-alive reply from a built-in handler says so."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from backends import TcpServer  # noqa: E402
from http_client import RawClient  # noqa: E402
from portico_harness import (LEAN_ASAN_ENV, PorticoTestCase, RssSampler, main, make_config,  # noqa: E402
                             read_rss_kb, rss_limit_kb, slow_factor)

TOKEN = "s3cret"


def pubsub_config(**kw):
    return make_config(routes=[{"path": "/healthz", "handler": "health"},
                               {"path": "/live/", "handler": "pubsub",
                                "pubsub": {"publish_token": TOKEN}}], **kw)


class PublishAuthorization(PorticoTestCase):

    def test_unauthenticated_publish_is_401_before_the_body(self):
        p = self.start_portico(pubsub_config())
        for auth in [None, "Bearer wrong!", "Basic czNjcmV0"]:
            with self.subTest(auth=auth):
                c = self.client(p.port)
                headers = [("Content-Length", str(10 << 20))]
                if auth:
                    headers.append(("Authorization", auth))
                c.request("POST", "/live/room", headers=headers)  # the head only: no body sent
                r = c.read_response()
                self.assertEqual(r.status, 401, r)
                self.assertEqual(r.header("WWW-Authenticate"), "Bearer")
                self.assertIn("close", r.connection_tokens())
        r = self.client(p.port).roundtrip("POST", "/live/room", body=b"hello",
                                          headers=[("Authorization", "Bearer " + TOKEN)])
        self.assertEqual(r.status, 200, r)

    def test_unauthenticated_bodies_are_not_buffered(self):
        # 20 clients each sending a 10 MiB body without a token used to be held in memory
        # (about 217 MB) until the token was checked after the whole body had arrived.
        p = self.start_portico(pubsub_config(workers=1), env=LEAN_ASAN_ENV)
        baseline = read_rss_kb(p.pid)
        limit = rss_limit_kb(p, baseline, budget_mb=64)
        statuses = []
        lock = threading.Lock()
        block = b"x" * (1 << 20)

        def publisher():
            c = RawClient(p.port, timeout=10 * slow_factor())
            try:
                c.request("POST", "/live/room", headers=[("Content-Length", str(10 << 20))])
                try:
                    for _ in range(10):
                        c.send(block)
                except OSError:
                    pass  # the server may close while the body is still coming
                r = c.read_response()
                with lock:
                    statuses.append(r.status)
            finally:
                c.close()

        with RssSampler(p.pid) as sampler:
            threads = [threading.Thread(target=publisher) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60 * slow_factor())
        self.assertEqual(statuses, [401] * 20)
        self.assertLess(sampler.max_kb, limit,
                        "RSS peaked at %d KiB (baseline %d KiB)" % (sampler.max_kb, baseline))


class ExpectContinue(PorticoTestCase):

    def test_publish_with_expect_gets_100_then_the_final_status(self):
        p = self.start_portico(pubsub_config())
        c = self.client(p.port)
        c.request("POST", "/live/room", headers=[("Authorization", "Bearer " + TOKEN),
                                                 ("Expect", "100-continue"), ("Content-Length", "5")])
        interim = c.read_response(skip_1xx=False)
        self.assertEqual(interim.status, 100, interim)
        c.send(b"hello")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["seq"], 1)
        self.assertEqual(c.roundtrip("GET", "/healthz").status, 200)  # still usable

    def test_refused_publish_with_expect_gets_the_final_status_and_close(self):
        p = self.start_portico(pubsub_config())
        c = self.client(p.port)
        c.request("POST", "/live/room", headers=[("Expect", "100-continue"), ("Content-Length", "5")])
        r = c.read_response(skip_1xx=False)
        self.assertEqual(r.status, 401, r)
        self.assertClosed(c)

    def test_builtin_answered_at_the_head_closes_when_the_body_was_not_sent(self):
        # The client waits for 100 before sending its body; a final answer instead means the
        # body may never come: keeping the connection would leave it half-read.
        p = self.start_portico(pubsub_config())
        c = self.client(p.port)
        c.request("POST", "/healthz", headers=[("Expect", "100-continue"), ("Content-Length", "5")])
        r = c.read_response(skip_1xx=False)
        self.assertEqual(r.status, 200, r)
        self.assertIn("close", r.connection_tokens())
        self.assertClosed(c)


class Http10KeepAlive(PorticoTestCase):

    def test_builtin_reply_to_http10_keepalive_says_keep_alive(self):
        p = self.start_portico(pubsub_config())
        c = self.client(p.port)
        for path in ["/healthz", "/live/room", "/nowhere"]:
            with self.subTest(path=path):
                c.send(("GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n" % path).encode())
                r = c.read_response()
                self.assertIn(r.status, (200, 404), r)
                self.assertIn("keep-alive", r.connection_tokens(), r)
        self.assertOpen(c)


class BodyTimeout(PorticoTestCase):

    def config(self, backend=None):
        routes = [{"path": "/healthz", "handler": "health"},
                  {"path": "/live/", "handler": "pubsub"}]
        upstreams = None
        if backend:
            routes.append({"path": "/api/", "upstream": "app"})
            upstreams = {"app": {"servers": [backend.address]}}
        return make_config(routes=routes, upstreams=upstreams,
                           limits={"client_body_timeout": "%dms" % (500 * slow_factor())})

    def assert_408_after_stall(self, port, path, status=408):
        c = self.client(port)
        c.request("POST", path, headers=[("Content-Length", "100")], send=True)
        c.send(b"x" * 10)  # then nothing more
        r = c.read_response()
        self.assertEqual(r.status, status, r)
        self.assertClosed(c, timeout=5)

    def test_stalled_body_to_builtin_handlers_is_408(self):
        p = self.start_portico(self.config())
        self.assert_408_after_stall(p.port, "/live/room")
        # health answers at the head; the body it then discards stalls: the connection is
        # closed (it used to stay open for good)
        self.assert_408_after_stall(p.port, "/healthz", status=200)

    def test_stalled_body_to_an_upstream_is_408(self):
        backend = self.start_backend(name="a")
        p = self.start_portico(self.config(backend))
        self.assert_408_after_stall(p.port, "/api/upload")

    def test_time_spent_waiting_for_a_slow_upstream_is_not_counted(self):
        # The backend reads nothing for 4 body timeouts, then the whole body: Portico stops
        # reading the client meanwhile (backpressure), which is not the client being slow.
        stall = 2.0 * slow_factor()
        total = 32 << 20
        got = []

        def backend(sock):
            with sock:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                time.sleep(stall)
                body = len(data) - data.index(b"\r\n\r\n") - 4
                while body < total:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return
                    body += len(chunk)
                got.append(body)
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

        server = TcpServer(backend)
        self.addCleanup(server.stop)
        cfg = self.config()
        cfg["upstreams"] = {"app": {"servers": [server.address]}}
        cfg["routes"].append({"path": "/api/", "upstream": "app"})
        cfg["limits"]["max_body_bytes"] = 0
        p = self.start_portico(cfg)
        c = self.client(p.port, timeout=30 * slow_factor())
        c.request("POST", "/api/upload", headers=[("Content-Length", str(total))])
        block = b"y" * (1 << 20)
        for _ in range(total >> 20):
            c.send(block)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(got, [total])

    def test_a_body_that_keeps_arriving_is_not_cut(self):
        # each gap is shorter than the timeout, the whole body takes longer than it
        p = self.start_portico(self.config())
        c = self.client(p.port)
        c.request("POST", "/live/room", headers=[("Content-Length", "6")])
        for byte in b"abcdef":
            c.send(bytes([byte]))
            time.sleep(0.2 * slow_factor())
        self.assertEqual(c.read_response().status, 200)


if __name__ == "__main__":
    main()
