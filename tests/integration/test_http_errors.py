# SPDX-License-Identifier: Apache-2.0
"""Every error status the gateway produces itself, and the request-smuggling defences."""

import json
import socket
import time

from backends import BlackholeListener, free_port
from http_client import ConnectionClosed
from portico_harness import PorticoTestCase, main, make_config, slow_factor

SMUGGLED = b"GET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


class ErrorStatuses(PorticoTestCase):
    @classmethod
    def setUpClass(cls):
        cls.down_port = free_port()

    def setUp(self):
        self.b = self.start_backend(name="a")
        self.blackhole = BlackholeListener()
        self.addCleanup(self.blackhole.close)
        self.p = self.start_portico(make_config(
            upstreams={
                "app": {"servers": [self.b.address]},
                "down": {"servers": ["127.0.0.1:%d" % self.down_port]},
                "slow": {"servers": [self.b.address], "read_timeout": "500ms"},
                "hole": {"servers": [self.blackhole.address], "connect_timeout": "300ms"},
            },
            routes=[{"path": "/healthz", "handler": "health"},
                    {"path": "/api/", "upstream": "app"},
                    {"path": "/down/", "upstream": "down"},
                    {"path": "/slowup/", "upstream": "slow"},
                    {"path": "/hole/", "upstream": "hole"}],
            limits={"max_header_bytes": "4KiB", "max_body_bytes": "1KiB",
                    "client_header_timeout": "500ms"}))

    def send(self, data):
        c = self.client(self.p.port)
        c.send(data)
        return c

    def assertShortError(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertLess(r.body_len, 2048, "error body is not short")

    def assertNoBackendRequest(self, path_prefix="/api/"):
        seen = [r.target for r in self.b.requests if r.path.startswith(path_prefix)]
        self.assertEqual(seen, [], "the backend received %r" % seen)

    # -- 404 ---------------------------------------------------------------------------------
    def test_404_no_route_and_connection_stays_usable(self):
        c = self.client(self.p.port)
        r = c.roundtrip("GET", "/nothing/here")
        self.assertShortError(r, 404)
        self.assertEqual(c.roundtrip("GET", "/api/echo").status, 200)

    # -- 400 ---------------------------------------------------------------------------------
    def test_400_malformed_requests_close_the_connection(self):
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET /api/echo HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
            b"GET /api/echo HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
            b"GET /api/echo HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
            b"GET /api/ echo HTTP/1.1\r\nHost: x\r\n\r\n",
            b"G(T /api/echo HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /api/echo HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
            b"GET /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        ]
        for data in cases:
            with self.subTest(request=data):
                c = self.send(data + SMUGGLED)
                r = c.read_response()
                self.assertShortError(r, 400)
                self.assertClosed(c)
        self.assertNoBackendRequest()

    def test_400_missing_host_in_http11(self):
        # RFC 9112 3.2: a server MUST respond 400 to an HTTP/1.1 request without Host
        c = self.send(b"GET /api/echo HTTP/1.1\r\nX-A: 1\r\n\r\n")
        self.assertShortError(c.read_response(), 400)
        self.assertNoBackendRequest()

    def test_400_several_host_headers(self):
        # RFC 9112 3.2: ... or with more than one Host field line
        c = self.send(b"GET /api/echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        self.assertShortError(c.read_response(), 400)
        self.assertNoBackendRequest()

    # -- 431 ---------------------------------------------------------------------------------
    def test_431_one_huge_header(self):
        c = self.send(b"GET /api/echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        self.assertShortError(c.read_response(), 431)
        self.assertNoBackendRequest()

    def test_431_many_small_headers(self):
        hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(200))
        c = self.send(b"GET /api/echo HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
        self.assertShortError(c.read_response(), 431)
        self.assertNoBackendRequest()

    def test_431_head_sent_without_end_is_cut_at_the_limit(self):
        # the head never ends: the gateway must not buffer it without bound
        c = self.client(self.p.port)
        c.send(b"GET /api/echo HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(8):
                c.send(b"a" * 1024)
        except OSError:
            pass  # closed after answering: fine
        try:
            r = c.read_response()
        except ConnectionClosed:
            self.fail("connection closed without a 431")
        self.assertShortError(r, 431)

    def test_long_request_line_is_rejected(self):
        c = self.send(b"GET /api/" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        self.assertIn(r.status, (414, 431), r)

    def test_head_just_under_the_limit_is_accepted(self):
        # 4 KiB in total including the request line and the final CRLF
        base = b"GET /api/echo HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"
        data = base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (4096 - len(base) - 200))
        c = self.send(data)
        self.assertEqual(c.read_response().status, 200)

    # -- 413 ---------------------------------------------------------------------------------
    def test_413_content_length_over_limit_answered_before_the_body(self):
        c = self.send(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n")
        t0 = time.monotonic()
        r = c.read_response()
        self.assertShortError(r, 413)
        self.assertLess(time.monotonic() - t0, 2.0 * slow_factor())
        self.assertNoBackendRequest()

    def test_413_chunked_body_over_limit(self):
        c = self.send(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + b"200\r\n" + b"x" * 512 + b"\r\n"
                      + b"200\r\n" + b"y" * 512 + b"\r\n"
                      + b"200\r\n" + b"z" * 512 + b"\r\n")
        r = c.read_response()
        self.assertShortError(r, 413)
        self.assertFalse([q for q in self.b.requests if q.path == "/api/echo" and
                          q.body_len > 1024], "an over-limit body reached the backend whole")

    def test_body_exactly_at_the_limit_passes(self):
        c = self.client(self.p.port)
        r = c.roundtrip("POST", "/api/echo", body=b"x" * 1024)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], 1024)
        c.send(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"200\r\n" + b"x" * 512 + b"\r\n200\r\n" + b"y" * 512 + b"\r\n0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], 1024)

    # -- 501 ---------------------------------------------------------------------------------
    def test_501_unknown_transfer_encoding(self):
        # RFC 9112 6.1: a transfer coding the server does not understand: 501. The framing is
        # still known here (chunked is final), so this is the unambiguous 501 case.
        for te in (b"foo, chunked", b"x-custom, chunked"):
            with self.subTest(te=te):
                c = self.send(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te +
                              b"\r\n\r\n0\r\n\r\n" + SMUGGLED)
                r = c.read_response()
                self.assertShortError(r, 501)
                self.assertClosed(c)
        self.assertNoBackendRequest()

    def test_unknown_transfer_encoding_alone_is_rejected(self):
        # "Transfer-Encoding: foo": unknown coding (501, as nginx answers) and chunked not final
        # (RFC 9112 6.3: 400). Either is acceptable; the connection must close.
        c = self.send(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n"
                      b"0\r\n\r\n" + SMUGGLED)
        r = c.read_response()
        self.assertIn(r.status, (400, 501), r)
        self.assertClosed(c)
        self.assertNoBackendRequest()

    # -- 502 / 504 ---------------------------------------------------------------------------
    def test_502_upstream_refuses(self):
        c = self.client(self.p.port)
        t0 = time.monotonic()
        r = c.roundtrip("GET", "/down/x")
        self.assertShortError(r, 502)
        self.assertLess(time.monotonic() - t0, 3.0 * slow_factor())

    def test_502_upstream_sends_garbage(self):
        from backends import TcpServer

        def garbage(s):
            s.recv(65536)
            s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            s.close()

        bad = TcpServer(garbage)
        self.addCleanup(bad.stop)
        p = self.start_portico(make_config(upstreams={"bad": {"servers": [bad.address]}},
                                           routes=[{"path": "/", "upstream": "bad"}]))
        r = self.client(p.port).roundtrip("GET", "/x")
        self.assertShortError(r, 502)

    def test_502_upstream_closes_before_responding(self):
        from backends import TcpServer

        def hangup(s):
            s.recv(65536)
            s.close()

        bad = TcpServer(hangup)
        self.addCleanup(bad.stop)
        p = self.start_portico(make_config(upstreams={"bad": {"servers": [bad.address]}},
                                           routes=[{"path": "/", "upstream": "bad"}]))
        r = self.client(p.port).roundtrip("GET", "/x")
        self.assertShortError(r, 502)

    def test_504_upstream_read_timeout(self):
        c = self.client(self.p.port)
        t0 = time.monotonic()
        r = c.roundtrip("GET", "/slowup/slow?delay=5")
        took = time.monotonic() - t0
        self.assertShortError(r, 504)
        self.assertGreater(took, 0.4)
        self.assertLess(took, 3.0 * slow_factor())

    def test_504_upstream_connect_timeout(self):
        c = self.client(self.p.port)
        t0 = time.monotonic()
        r = c.roundtrip("GET", "/hole/x")
        took = time.monotonic() - t0
        self.assertShortError(r, 504)
        self.assertGreater(took, 0.25)
        self.assertLess(took, 3.0 * slow_factor())

    # -- 408 ---------------------------------------------------------------------------------
    def test_408_half_a_head(self):
        c = self.send(b"GET /api/echo HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        r = c.read_response()
        took = time.monotonic() - t0
        self.assertShortError(r, 408)
        self.assertGreater(took, 0.3)
        self.assertLess(took, 3.0 * slow_factor())
        self.assertClosed(c)
        self.assertNoBackendRequest()

    def test_408_trickled_head_slowloris(self):
        # client_header_timeout bounds the whole head, not the gap between bytes
        c = self.client(self.p.port)
        head = b"GET /api/echo HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * 100
        t0 = time.monotonic()
        got = None
        for i in range(len(head)):
            try:
                c.send(head[i:i + 1])
            except OSError:
                break
            time.sleep(0.02)
            if time.monotonic() - t0 > 4 * slow_factor():
                break
        try:
            got = c.read_response()
        except (ConnectionClosed, socket.timeout):
            pass
        self.assertIsNotNone(got, "no 408 for a trickled head")
        self.assertEqual(got.status, 408)
        self.assertLess(time.monotonic() - t0, 4.0 * slow_factor())


class Smuggling(PorticoTestCase):
    """RFC 9112 6.1, 6.3, 5.2, 2.2: ambiguous framing is rejected with 400 and the connection
    closed, and the bytes after it are never treated as another request."""

    def setUp(self):
        self.b = self.start_backend(name="a")
        self.p = self.start_portico(make_config(
            upstreams={"app": {"servers": [self.b.address]}},
            routes=[{"path": "/api/", "upstream": "app"}]))

    def check(self, data):
        c = self.client(self.p.port)
        c.send(data + SMUGGLED)
        try:
            r = c.read_response()
        except ConnectionClosed:
            self.fail("closed without a 400")
        self.assertEqual(r.status, 400, r)
        self.assertClosed(c)
        self.assertNotIn(b"HTTP/1.1", c.extra(), "a second response followed the 400")
        smuggled = [q.target for q in self.b.requests if q.path == "/api/smuggled"]
        self.assertEqual(smuggled, [], "the smuggled request reached the backend")

    def test_content_length_with_transfer_encoding(self):
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")

    def test_transfer_encoding_with_content_length(self):
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   b"Content-Length: 5\r\n\r\n0\r\n\r\n")

    def test_differing_duplicate_content_length(self):
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Content-Length: 6\r\n\r\nhello!")

    def test_content_length_list_with_different_values(self):
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!")

    def test_content_length_with_sign(self):
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello")

    def test_bad_chunk_sizes(self):
        for size in (b"zz", b"-1", b"0x5", b"5 5", b"fffffffffffffffffffff1", b""):
            with self.subTest(size=size):
                self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                           b"\r\n\r\n" + size + b"\r\nhello\r\n0\r\n\r\n")

    def test_chunk_data_longer_than_its_size(self):
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nhello\r\n0\r\n\r\n")

    def test_bare_lf_line_endings(self):
        self.check(b"GET /api/echo HTTP/1.1\nHost: x\n\n")

    def test_bare_lf_in_one_header_line(self):
        self.check(b"GET /api/echo HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n")

    def test_bare_cr_in_header(self):
        self.check(b"GET /api/echo HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n")

    def test_obs_fold(self):
        self.check(b"GET /api/echo HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")

    def test_obs_fold_of_transfer_encoding(self):
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"X-A: a\r\n Transfer-Encoding: chunked\r\n\r\nhello")

    def test_whitespace_before_colon(self):
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
                   b"Content-Length: 5\r\n\r\nhello")

    def test_chunked_not_final_in_request(self):
        # RFC 9112 6.3: chunked present but not final: 400 and close
        self.check(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, foo"
                   b"\r\n\r\n0\r\n\r\n")


class ErrorLogLines(PorticoTestCase):
    def test_an_error_before_the_first_request_does_not_log_the_previous_connections(self):
        # One worker: the second connection is given the HTTP state (parser and all) the first
        # one handed back. Its 408, before any request began, must log "-", not the first
        # client's method, path (query string and all) and User-Agent.
        b = self.start_backend(name="a")
        p = self.start_portico(make_config(
            upstreams={"app": {"servers": [b.address]}}, routes=[{"path": "/", "upstream": "app"}],
            workers=1, limits={"client_header_timeout": "300ms"}))
        first = self.client(p.port)
        r = first.roundtrip("GET", "/victim?token=SECRET", headers=[("User-Agent", "victim-agent")])
        self.assertEqual(r.status, 200)
        first.close()
        self.assertEqual(len(p.access_log(count=1)), 1)
        second = self.client(p.port)
        second.send(b"\r\n")
        self.assertEqual(second.read_response().status, 408)
        lines = p.access_log(count=2)
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[1].get("status"), 408, lines[1])
        self.assertNotIn("SECRET", json.dumps(lines[1]))
        self.assertNotIn("victim-agent", json.dumps(lines[1]))


if __name__ == "__main__":
    main()
