# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 proxying: keep-alive both sides, pipelining, framing (Content-Length, chunked,
close-delimited, HEAD/204/304), header rewriting and routing."""

import hashlib
import time

from backends import Response, free_port, pattern_sha256
from portico_harness import PorticoTestCase, main, make_config


class KeepAlive(PorticoTestCase):
    def test_one_client_connection_reaches_backend_over_one_connection(self):
        b = self.start_backend(name="a")
        p = self.proxy(b, workers=1)
        c = self.client(p.port)
        conn_ids = set()
        for i in range(10):
            r = c.roundtrip("GET", "/echo/%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"], "/echo/%d" % i)
            conn_ids.add(r.json()["conn_id"])
        self.assertEqual(b.connections, 1,
                         "10 requests on one client connection used %d upstream connections"
                         % b.connections)
        self.assertEqual(len(conn_ids), 1)
        self.assertOpen(c)

    def test_sequential_client_connections_share_the_upstream_pool(self):
        b = self.start_backend(name="a")
        p = self.proxy(b, workers=1)
        for i in range(6):
            c = self.client(p.port)
            r = c.roundtrip("GET", "/echo/%d" % i, headers=[("Connection", "close")])
            self.assertEqual(r.status, 200, r)
            self.assertClosed(c)
            # "Connection: close" is hop-by-hop: it must not reach the backend
            self.assertNotIn("connection", [k.lower() for k, _ in r.json()["headers"]])
            c.close()
        self.assertEqual(b.connections, 1,
                         "6 client connections in a row used %d upstream connections"
                         % b.connections)

    def test_many_requests_over_few_client_connections_use_few_upstream_connections(self):
        b = self.start_backend(name="a")
        p = self.proxy(b)  # two workers: at most one idle pooled connection each is needed
        for _ in range(4):
            c = self.client(p.port)
            for i in range(5):
                self.assertEqual(c.roundtrip("GET", "/echo/%d" % i).status, 200)
            c.close()
            time.sleep(0.05)
        self.assertLessEqual(b.connections, 2, "20 sequential requests used %d upstream "
                             "connections" % b.connections)

    def test_upstream_keepalive_0_disables_pooling(self):
        b = self.start_backend(name="a")
        p = self.proxy(b, workers=1, upstream_extra={"keepalive": 0})
        c = self.client(p.port)
        for i in range(4):
            self.assertEqual(c.roundtrip("GET", "/echo/%d" % i).status, 200)
        self.assertEqual(b.connections, 4, "keepalive: 0 still pooled upstream connections")

    def test_upstream_connection_close_is_not_reused_and_client_stays_open(self):
        b = self.start_backend(name="a")
        p = self.proxy(b, workers=1)
        c = self.client(p.port)
        r1 = c.roundtrip("GET", "/close")
        self.assertEqual(r1.status, 200)
        self.assertEqual(r1.body, b"closing")
        self.assertNotIn("close", r1.connection_tokens(),
                         "backend's Connection: close leaked to the client")
        r2 = c.roundtrip("GET", "/echo")
        self.assertEqual(r2.status, 200)
        self.assertEqual(b.connections, 2)

    def test_upstream_that_closed_an_idle_pooled_connection(self):
        b = self.start_backend(name="a", idle_timeout=0.2)
        p = self.proxy(b, workers=1)
        c = self.client(p.port)
        self.assertEqual(c.roundtrip("GET", "/echo/1").status, 200)
        time.sleep(0.7)  # the backend closes its side of the pooled connection meanwhile
        r = c.roundtrip("GET", "/echo/2")
        self.assertEqual(r.status, 200, "request after the backend closed an idle pooled "
                         "connection: %r" % r)
        self.assertEqual(r.json()["path"], "/echo/2")

    def test_client_connection_close_is_honoured(self):
        b = self.start_backend(name="a")
        p = self.proxy(b)
        c = self.client(p.port)
        r = c.roundtrip("GET", "/echo", headers=[("Connection", "close")])
        self.assertEqual(r.status, 200)
        self.assertClosed(c)

    def test_http10_client_gets_a_response_and_the_connection_closes(self):
        b = self.start_backend(name="a")
        p = self.proxy(b)
        c = self.client(p.port)
        c.send(b"GET /stream?n=1000&mode=chunked HTTP/1.0\r\nHost: x\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.framing, "chunked", "chunked sent to an HTTP/1.0 client")
        self.assertEqual(r.body_len, 1000)
        self.assertClosed(c)

    def test_keepalive_timeout_closes_idle_client_connection(self):
        b = self.start_backend(name="a")
        p = self.proxy(b, limits={"keepalive_timeout": "500ms"})
        c = self.client(p.port)
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
        t0 = time.monotonic()
        self.assertTrue(c.wait_closed(5.0), "idle connection not closed after keepalive_timeout")
        self.assertGreater(time.monotonic() - t0, 0.3)


class Pipelining(PorticoTestCase):
    def test_pipelined_requests_are_answered_in_order(self):
        b = self.start_backend(name="a")
        p = self.proxy(b)
        c = self.client(p.port)
        c.send(b"".join(b"GET /echo/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(8)))
        for i in range(8):
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["path"], "/echo/%d" % i)
        self.assertOpen(c)

    def test_pipelined_slow_first_request_with_bodies_keeps_order(self):
        b = self.start_backend(name="a")
        p = self.start_portico(make_config(
            upstreams={"app": {"servers": [b.address]}},
            routes=[{"path": "/healthz", "handler": "health"},
                    {"path": "/", "upstream": "app"}]))
        c = self.client(p.port)
        c.send(b"GET /slow?delay=0.5 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /echo/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
               b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /echo/4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\n\r\n"
               b"GET /echo/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r1 = c.read_response()
        self.assertEqual((r1.status, r1.body), (200, b"slow done"))
        r2 = c.read_response()
        self.assertEqual((r2.json()["path"], r2.json()["body"]), ("/echo/2", "hello"))
        r3 = c.read_response()
        self.assertEqual(r3.status, 200)
        self.assertEqual(r3.body.strip(), b"ok")
        r4 = c.read_response()
        self.assertEqual((r4.json()["path"], r4.json()["body"]), ("/echo/4", "abc"))
        r5 = c.read_response()
        self.assertEqual(r5.json()["path"], "/echo/5")
        self.assertClosed(c)

    def test_requests_split_into_single_bytes(self):
        b = self.start_backend(name="a")
        p = self.proxy(b)
        c = self.client(p.port)
        req = b"POST /echo/split HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
        for i in range(len(req)):
            c.send(req[i:i + 1])
            time.sleep(0.002)
        r = c.read_response()
        self.assertEqual((r.status, r.json()["body"]), (200, "xyz"))


class Framing(PorticoTestCase):
    def setUp(self):
        self.b = self.start_backend(name="a")
        self.p = self.proxy(self.b)
        self.c = self.client(self.p.port)

    def test_content_length_request_body(self):
        body = bytes(range(256)) * 1000
        r = self.c.roundtrip("POST", "/echo", body=body)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], len(body))
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_body_sent_with_the_head_before_the_upstream_connects(self):
        # the first request of a fresh gateway: the upstream connection is still being made
        # while the whole 1 MiB body is already in the gateway's input buffer
        body = bytes(range(256)) * 4096
        r = self.c.roundtrip("POST", "/echo", body=body)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], len(body))
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_chunked_body_sent_with_the_head_before_the_upstream_connects(self):
        part = bytes(range(256)) * 256
        wire = b"".join(b"%x\r\n" % len(part) + part + b"\r\n" for _ in range(16))
        self.c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                    wire + b"0\r\n\r\n")
        r = self.c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], 16 * len(part))
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(part * 16).hexdigest())

    def test_expect_100_continue(self):
        # curl sends "Expect: 100-continue" for bodies over 1 KiB and waits up to 1 s for the
        # interim response; either way the final response must be right.
        body = b"e" * 5000
        self.c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                    b"Expect: 100-continue\r\n\r\n")
        early = self.c.read_available(1.0)
        if early:
            self.assertTrue(early.startswith(b"HTTP/1.1 100"), "unexpected %r" % early[:200])
            self.assertTrue(early.endswith(b"\r\n\r\n"), early)
        self.c.send(body)
        r = self.c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], 5000)
        self.assertEqual(self.c.roundtrip("GET", "/echo/next").json()["path"], "/echo/next")

    def test_interim_responses_reach_http11_clients_only(self):
        # RFC 9110 15.2: no 1xx to an HTTP/1.0 client, which would read it as the final answer.
        def early_hints(req, conn):
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            return Response(body=b"final")

        self.b.route("/hints", early_hints)
        self.c.send(b"GET /hints HTTP/1.1\r\nHost: x\r\n\r\n")
        interim = self.c.read_response(skip_1xx=False)
        self.assertEqual((interim.status, interim.header("Link")), (103, "</style.css>; rel=preload"))
        self.assertEqual(self.c.read_response().body, b"final")
        old = self.client(self.p.port)
        old.send(b"GET /hints HTTP/1.0\r\nHost: x\r\n\r\n")
        r = old.read_response(skip_1xx=False)
        self.assertEqual((r.status, r.body), (200, b"final"))

    def test_interim_responses_without_end_are_a_broken_upstream(self):
        # 16 interim responses per request at most: they were all relayed, each one restarting
        # read_timeout, so an upstream could keep a client reading 1xx heads for ever.
        def hints(n):
            def handler(req, conn):
                conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" * n)
                return Response(body=b"final")
            return handler

        self.b.route("/sixteen", hints(16))
        self.b.route("/many", hints(200))
        self.c.send(b"GET /sixteen HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(16):
            self.assertEqual(self.c.read_response(skip_1xx=False).status, 103)
        self.assertEqual(self.c.read_response().body, b"final")
        c = self.client(self.p.port)
        c.send(b"GET /many HTTP/1.1\r\nHost: x\r\n\r\n")
        statuses = []
        while not statuses or statuses[-1] == 103:
            statuses.append(c.read_response(skip_1xx=False).status)
        self.assertEqual(statuses, [103] * 16 + [502])
        self.assertIsNotNone(self.p.wait_stderr(lambda line: "interim (1xx) responses" in line))

    def test_a_status_outside_100_to_599_is_a_broken_upstream(self):
        # RFC 9110 15: valid status codes are 100-599. llhttp reads any three digits, and "HTTP/1.1
        # 600" reached HTTP/1.1 and HTTP/2 clients as is: now 502, and the upstream is logged.
        from h2_client import H2Client

        for status in (600, 999, 99):
            self.b.route("/odd%d" % status, lambda req, conn, s=status: Response(status=s, reason="Odd", body=b"x"))
        h2 = self.start_portico(make_config(routes=[{"path": "/", "upstream": "app"}],
                                            upstreams={"app": {"servers": [self.b.address]}},
                                            listeners=[{"address": "127.0.0.1:0", "http2": True}]))
        for status in (600, 999, 99):
            with self.subTest(status=status):
                c = self.client(self.p.port)
                self.assertEqual(c.roundtrip("GET", "/odd%d" % status).status, 502)
                h = H2Client(h2.port)
                self.addCleanup(h.close)
                sid = h.request(path="/odd%d" % status)
                h.response(sid, 5)
                self.assertEqual(h.status(sid), 502)
        self.assertIsNotNone(self.p.wait_stderr(lambda line: "invalid response" in line))
        self.assertEqual(self.c.roundtrip("GET", "/echo/after").status, 200)

    def test_an_answer_before_the_whole_request_body_says_connection_close(self):
        # The connection closes after it (the rest of the body is not read): a head that did not
        # say so left the client to send its next request into a closing connection.
        from backends import TcpServer

        def early(s):
            s.recv(65536)
            s.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope")
            time.sleep(1)
            s.close()

        up = TcpServer(early)
        self.addCleanup(up.stop)
        p = self.proxy(up.address)
        for framing in (b"Content-Length: 10\r\nExpect: 100-continue", b"Transfer-Encoding: chunked"):
            with self.subTest(framing=framing):
                c = self.client(p.port)
                c.send(b"POST /x HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n")
                r = c.read_response()
                self.assertEqual((r.status, r.body), (401, b"nope"))
                self.assertEqual(r.header("Connection"), "close")
                self.assertClosed(c)


        parts = [b"a" * 1, b"b" * 100, b"c" * 5000, b"d" * 70000, b"e" * 3]
        wire = b"".join(b"%x;ext=1\r\n" % len(x) + x + b"\r\n" for x in parts) + b"0\r\n\r\n"
        self.c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(wire), 777):  # chunk boundaries fall anywhere in the writes
            self.c.send(wire[i:i + 777])
        r = self.c.read_response()
        body = b"".join(parts)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], len(body))
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(r.json()["method"], "POST")
        # the next request on the same connection still works
        self.assertEqual(self.c.roundtrip("GET", "/echo").status, 200)

    def test_empty_chunked_request_body(self):
        self.c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"0\r\n\r\n")
        r = self.c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], 0)

    def test_chunked_request_trailers_reach_the_upstream(self):
        # RFC 9112 7.1.2: the trailer section goes on in the upstream's chunked request (as an
        # HTTP/2 client's trailers do), less the fields that would change framing or routing.
        self.c.send(b"POST /echo/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Trailer: X-Checksum\r\n\r\n4\r\nbody\r\n0\r\n"
                    b"X-Checksum: abc\r\nHost: evil\r\nContent-Length: 9\r\n"
                    b"X-Forwarded-For: 6.6.6.6\r\nX-More:  1 \r\n\r\n")
        r = self.c.read_response()
        doc = r.json()
        self.assertEqual((r.status, doc["body"], doc["chunked"]), (200, "body", True))
        self.assertEqual(doc["trailers"], [["X-Checksum", "abc"], ["X-More", "1"]])
        # The next request on the connection has none.
        self.c.send(b"POST /echo/u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"1\r\nz\r\n0\r\n\r\n")
        doc = self.c.read_response().json()
        self.assertEqual((doc["path"], doc["trailers"]), ("/echo/u", []))

    def test_a_trailer_cannot_bring_back_a_field_the_head_left_out(self):
        # The route sets X-User and the head names X-Hop in Connection: the head writer drops
        # the client's values, and a backend that merges trailers into the head must not get
        # them back from the trailer section either.
        p = self.proxy(self.b, route_extra={"set_headers": {"X-User": "trusted"}})
        c = self.client(p.port)
        c.send(b"POST /echo/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: X-Hop\r\n\r\n4\r\nbody\r\n0\r\n"
               b"X-User: forged\r\nx-hop: 1\r\nX-Checksum: abc\r\n\r\n")
        r = c.read_response()
        doc = r.json()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(doc["trailers"], [["X-Checksum", "abc"]])

    def test_chunked_request_trailers_are_bounded_and_checked_as_a_head_is(self):
        p = self.proxy(self.b, limits={"max_header_bytes": "4KiB"})
        start = b"POST /echo/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n"
        for trailer, status in ((b"X-Big: " + b"v" * 5000 + b"\r\n", 431),
                                (b"X-Fold: a\r\n b\r\n", 400),
                                (b"X-Bare: a\n", 400),
                                (b"X(Bad): a\r\n", 400)):
            with self.subTest(trailer=trailer[:20]):
                c = self.client(p.port)
                c.send(start + trailer + b"\r\n")
                r = c.read_response()
                self.assertEqual(r.status, status, r)
                self.assertClosed(c)
        self.assertEqual(self.b.request_count(), 0, "a refused request was completed upstream")

    def test_chunked_response(self):
        n = 3 * 1024 * 1024 + 17
        r = self.c.roundtrip("GET", "/stream?n=%d&mode=chunked&chunk=1000" % n, hash_body=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body_len, n)
        self.assertEqual(r.sha256, pattern_sha256(n))
        self.assertEqual(self.c.roundtrip("GET", "/echo").status, 200)

    def test_content_length_response(self):
        n = 2 * 1024 * 1024 + 5
        r = self.c.roundtrip("GET", "/stream?n=%d&mode=length" % n, hash_body=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.framing, "length")
        self.assertEqual(int(r.header("Content-Length")), n)
        self.assertEqual(r.sha256, pattern_sha256(n))
        self.assertEqual(self.c.roundtrip("GET", "/echo").status, 200)

    def test_close_delimited_response(self):
        n = 1024 * 1024 + 3
        r = self.c.roundtrip("GET", "/stream?n=%d&mode=close" % n, hash_body=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body_len, n)
        self.assertEqual(r.sha256, pattern_sha256(n))
        if r.framing != "close":
            # re-framed (chunked) for the client: the client connection can stay open
            self.assertEqual(self.c.roundtrip("GET", "/echo").status, 200)

    def test_head_response_has_no_body_and_connection_stays_usable(self):
        r = self.c.roundtrip("HEAD", "/stream?n=5000&mode=length")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "5000")
        r2 = self.c.roundtrip("GET", "/echo/after-head")
        self.assertEqual(r2.json()["path"], "/echo/after-head")

    def test_204_and_304_have_no_body(self):
        for code in (204, 304):
            with self.subTest(code=code):
                r = self.c.roundtrip("GET", "/status?code=%d" % code)
                self.assertEqual(r.status, code)
                self.assertIsNone(r.header("Transfer-Encoding"))
                r2 = self.c.roundtrip("GET", "/echo/after-%d" % code)
                self.assertEqual(r2.json()["path"], "/echo/after-%d" % code)

    def test_backend_error_statuses_are_passed_through(self):
        for code in (400, 404, 500, 503):
            r = self.c.roundtrip("GET", "/status?code=%d" % code)
            self.assertEqual(r.status, code)
            self.assertEqual(r.body, b"status %d" % code)
            self.assertEqual(r.header("X-Backend"), "a")


class Headers(PorticoTestCase):
    def setUp(self):
        self.b = self.start_backend(name="a")

    def echo_headers(self, p, headers, host="app.test:8080", target="/echo"):
        c = self.client(p.port)
        r = c.roundtrip("GET", target, headers=headers, host=host)
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        return doc, {k.lower(): [v2 for k2, v2 in doc["headers"] if k2.lower() == k.lower()]
                     for k, _ in doc["headers"]}

    def test_hop_by_hop_request_headers_are_removed(self):
        p = self.proxy(self.b)
        doc, h = self.echo_headers(p, [
            ("Connection", "keep-alive, X-Custom-Hop, x-other-hop"),
            ("X-Custom-Hop", "1"), ("X-Other-Hop", "2"), ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"), ("Trailer", "X-Checksum"), ("Proxy-Authorization", "Basic x"),
            ("Proxy-Connection", "keep-alive"), ("X-End-To-End", "kept")])
        for name in ("x-custom-hop", "x-other-hop", "keep-alive", "te", "trailer",
                     "proxy-authorization", "proxy-connection"):
            self.assertNotIn(name, h, "hop-by-hop %s reached the backend: %r"
                             % (name, doc["headers"]))
        self.assertNotIn("keep-alive", [t.strip().lower() for v in h.get("connection", [])
                                        for t in v.split(",")])
        self.assertNotIn("x-custom-hop", ",".join(h.get("connection", [])).lower())
        self.assertEqual(h.get("x-end-to-end"), ["kept"])

    def test_hop_by_hop_response_headers_are_removed(self):
        p = self.proxy(self.b)
        c = self.client(p.port)
        q = "&".join("h=" + x for x in (
            "Connection:X-Resp-Hop", "X-Resp-Hop:1", "Keep-Alive:timeout=5",
            "Proxy-Connection:keep-alive", "Trailer:X-T", "X-Resp-End:kept"))
        r = c.roundtrip("GET", "/headers?" + q)
        self.assertEqual(r.status, 200)
        names = [k.lower() for k, _ in r.headers]
        for name in ("x-resp-hop", "keep-alive", "proxy-connection", "trailer"):
            self.assertNotIn(name, names, "hop-by-hop %s reached the client: %r"
                             % (name, r.headers))
        self.assertNotIn("x-resp-hop", ",".join(r.header_all("Connection")).lower())
        self.assertEqual(r.header("X-Resp-End"), "kept")
        self.assertEqual(r.body, b"headers")

    def test_x_forwarded_for_is_appended(self):
        p = self.proxy(self.b)
        _, h = self.echo_headers(p, [("X-Forwarded-For", "203.0.113.9")])
        self.assertEqual(len(h["x-forwarded-for"]), 1, h["x-forwarded-for"])
        parts = [x.strip() for x in h["x-forwarded-for"][0].split(",")]
        self.assertEqual(parts, ["203.0.113.9", "127.0.0.1"])

    def test_x_forwarded_for_is_created(self):
        p = self.proxy(self.b)
        _, h = self.echo_headers(p, [])
        self.assertEqual(h["x-forwarded-for"], ["127.0.0.1"])

    def test_x_forwarded_proto_host_real_ip_are_set_and_host_passed(self):
        p = self.proxy(self.b)
        _, h = self.echo_headers(p, [("X-Forwarded-Proto", "https"),
                                     ("X-Forwarded-Host", "evil.test"),
                                     ("X-Real-IP", "198.51.100.7")], host="app.test:8080")
        self.assertEqual(h.get("x-forwarded-proto"), ["http"])
        self.assertEqual(h.get("x-forwarded-host"), ["app.test:8080"])
        self.assertEqual(h.get("x-real-ip"), ["127.0.0.1"])
        self.assertEqual(h.get("host"), ["app.test:8080"])

    def test_set_headers_replace_client_values(self):
        p = self.proxy(self.b, route_extra={"set_headers": {"X-Env": "prod", "X-Team": "core"}})
        _, h = self.echo_headers(p, [("X-Env", "dev"), ("x-env", "dev2")])
        self.assertEqual(h.get("x-env"), ["prod"])
        self.assertEqual(h.get("x-team"), ["core"])

    def test_end_to_end_headers_and_repeats_are_kept(self):
        p = self.proxy(self.b)
        doc, h = self.echo_headers(p, [("Accept", "a/b"), ("Cookie", "a=1"), ("Cookie", "b=2"),
                                       ("X-Empty", ""), ("Authorization", "Bearer t")])
        self.assertEqual(h.get("accept"), ["a/b"])
        self.assertEqual(", ".join(h.get("cookie", [])).replace("; ", ", "), "a=1, b=2")
        self.assertEqual(h.get("authorization"), ["Bearer t"])
        self.assertEqual(h.get("x-empty"), [""])

    def test_request_target_and_method_pass_unchanged(self):
        p = self.proxy(self.b)
        c = self.client(p.port)
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            target = "/a%20b/c?x=1&y=%2F&z"
            r = c.roundtrip(method, target, body=b"" if method in ("POST", "PUT") else None)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["method"], method)
            self.assertEqual(r.json()["target"], target)


class Routing(PorticoTestCase):
    def backends(self, *names):
        return {n: self.start_backend(name=n) for n in names}

    def get(self, p, target, host="localhost"):
        c = self.client(p.port)
        return c.roundtrip("GET", target, host=host)

    def test_strip_prefix(self):
        bs = self.backends("a", "b")
        p = self.start_portico(make_config(
            upstreams={"a": {"servers": [bs["a"].address]}, "b": {"servers": [bs["b"].address]}},
            routes=[{"path": "/api/", "upstream": "a", "strip_prefix": True},
                    {"path": "/keep/", "upstream": "b"}]))
        cases = [("/api/users?x=1", "a", "/users?x=1"),
                 ("/api/", "a", "/"),
                 ("/api/a/b/", "a", "/a/b/"),
                 ("/keep/users?x=1", "b", "/keep/users?x=1")]
        for target, backend, seen in cases:
            with self.subTest(target=target):
                r = self.get(p, target)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("X-Backend"), backend)
                self.assertEqual(r.json()["target"], seen)

    def test_prefix_match_and_first_match_wins(self):
        bs = self.backends("a", "b", "c")
        p = self.start_portico(make_config(
            upstreams={n: {"servers": [b.address]} for n, b in bs.items()},
            routes=[{"path": "/api/v2/", "upstream": "a"},
                    {"path": "/api/", "upstream": "b"},
                    {"path": "/", "upstream": "c"}]))
        for target, backend in [("/api/v2/x", "a"), ("/api/v2/", "a"), ("/api/v1", "b"),
                                ("/api/", "b"), ("/api", "c"), ("/apix", "c"), ("/", "c"),
                                ("/api/v2", "b")]:
            with self.subTest(target=target):
                self.assertEqual(self.get(p, target).header("X-Backend"), backend)

    def test_one_connection_alternating_routes_carries_nothing_over(self):
        # One exchange serves every request of a connection (reused, not made anew): nothing of
        # one request (upstream, body, framing, headers set, a failure) may reach the next.
        bs = self.backends("a", "b")
        dead = "127.0.0.1:%d" % free_port()
        p = self.start_portico(make_config(
            workers=1,
            upstreams={"a": {"servers": [bs["a"].address]}, "b": {"servers": [bs["b"].address]},
                       "dead": {"servers": [dead]}},
            routes=[{"path": "/a/", "upstream": "a", "strip_prefix": True,
                     "set_headers": {"X-Route": "a"}},
                    {"path": "/dead/", "upstream": "dead"},
                    {"path": "/", "upstream": "b"}]))
        def sent(r, name):  # a header as the backend received it
            return next((v for k, v in r.json()["headers"] if k.lower() == name), None)

        c = self.client(p.port)
        for i in range(3):
            with self.subTest(round=i):
                r = c.roundtrip("POST", "/a/echo", body=b"x" * (100 + i))
                self.assertEqual((r.status, r.header("X-Backend")), (200, "a"), r)
                doc = r.json()
                self.assertEqual((doc["method"], doc["target"], doc["body_len"]), ("POST", "/echo", 100 + i))
                self.assertEqual(sent(r, "x-route"), "a")
                r = c.roundtrip("GET", "/echo?n=%d" % i)
                self.assertEqual((r.status, r.header("X-Backend")), (200, "b"), r)
                doc = r.json()
                self.assertEqual((doc["method"], doc["target"], doc["body_len"]), ("GET", "/echo?n=%d" % i, 0))
                self.assertIsNone(sent(r, "x-route"), "the last request's set_headers leaked")
                self.assertIsNone(sent(r, "content-length"), "the last request's framing leaked")
                r = c.roundtrip("HEAD", "/a/echo")
                self.assertEqual((r.status, r.header("X-Backend"), r.body), (200, "a", b""), r)
        # A failed exchange ends the connection (502 closes it); the next connection's first
        # request is served by a fresh exchange as usual.
        r = c.roundtrip("GET", "/dead/x")
        self.assertEqual(r.status, 502, r)
        c2 = self.client(p.port)
        r = c2.roundtrip("GET", "/echo")
        self.assertEqual((r.status, r.header("X-Backend")), (200, "b"), r)

    def test_exact_path(self):
        bs = self.backends("a", "b")
        p = self.start_portico(make_config(
            upstreams={"a": {"servers": [bs["a"].address]}, "b": {"servers": [bs["b"].address]}},
            routes=[{"path": "=/exact", "upstream": "a"}, {"path": "/", "upstream": "b"}]))
        for target, backend in [("/exact", "a"), ("/exact?q=1", "a"), ("/exact/", "b"),
                                ("/exactly", "b"), ("/exact/x", "b")]:
            with self.subTest(target=target):
                self.assertEqual(self.get(p, target).header("X-Backend"), backend)

    def test_host_routing(self):
        bs = self.backends("a", "b", "c")
        p = self.start_portico(make_config(
            upstreams={n: {"servers": [b.address]} for n, b in bs.items()},
            routes=[{"host": "a.test", "path": "/", "upstream": "a"},
                    {"host": "*.b.test", "path": "/", "upstream": "b"},
                    {"path": "/", "upstream": "c"}]))
        for host, backend in [("a.test", "a"), ("A.TEST", "a"), ("a.test:8080", "a"),
                              ("x.b.test", "b"), ("y.x.b.test", "b"), ("x.b.test:81", "b"),
                              ("b.test", "c"), ("other.test", "c"), ("a.test.evil", "c")]:
            with self.subTest(host=host):
                r = self.get(p, "/", host=host)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("X-Backend"), backend)

    def test_host_and_path_together(self):
        bs = self.backends("a", "b")
        p = self.start_portico(make_config(
            upstreams={"a": {"servers": [bs["a"].address]}, "b": {"servers": [bs["b"].address]}},
            routes=[{"host": "a.test", "path": "/api/", "upstream": "a"},
                    {"path": "/api/", "upstream": "b"}]))
        self.assertEqual(self.get(p, "/api/x", host="a.test").header("X-Backend"), "a")
        self.assertEqual(self.get(p, "/api/x", host="z.test").header("X-Backend"), "b")
        self.assertEqual(self.get(p, "/other", host="a.test").status, 404)

    def test_routing_uses_the_path_not_the_query(self):
        bs = self.backends("a", "b")
        p = self.start_portico(make_config(
            upstreams={"a": {"servers": [bs["a"].address]}, "b": {"servers": [bs["b"].address]}},
            routes=[{"path": "/api/", "upstream": "a"}, {"path": "/", "upstream": "b"}]))
        self.assertEqual(self.get(p, "/x?next=/api/").header("X-Backend"), "b")

    def test_absolute_form_target_is_routed_by_its_authority(self):
        # RFC 9112 3.2.2: a server MUST accept absolute-form; the host in it wins over Host.
        bs = self.backends("a", "c")
        p = self.start_portico(make_config(
            upstreams={"a": {"servers": [bs["a"].address]}, "c": {"servers": [bs["c"].address]}},
            routes=[{"host": "a.test", "path": "/", "upstream": "a"},
                    {"path": "/", "upstream": "c"}]))
        r = self.get(p, "http://a.test/echo?x=1", host="a.test")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "a")
        self.assertEqual(r.json()["path"], "/echo")


if __name__ == "__main__":
    main()
