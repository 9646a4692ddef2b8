# SPDX-License-Identifier: Apache-2.0
"""Built-in handlers (health, static) and the access log."""

import hashlib
import json
import os
import time

from http_client import ConnectionClosed
from portico_harness import PorticoTestCase, main, make_config, slow_factor

SECRET = b"TOP-SECRET-OUTSIDE-ROOT"
INDEX = b"<!doctype html><title>portico</title><h1>hello from index</h1>\n"


class Health(PorticoTestCase):
    def test_healthz(self):
        p = self.start_portico(make_config(routes=[{"path": "/healthz", "handler": "health"}]))
        c = self.client(p.port)
        for _ in range(3):  # keep-alive works on handler routes too
            r = c.roundtrip("GET", "/healthz")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body.strip(), b"ok")
        r = c.roundtrip("HEAD", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertEqual(c.roundtrip("GET", "/elsewhere").status, 404)

    def test_head_answered_by_portico_has_no_body_whatever_the_status(self):
        # RFC 9110 9.3.2: a body after a HEAD response is read by a keep-alive client as the next
        # response. Found by fuzz_pubsub_publish for the pubsub 404; the route 404 and the 404 of
        # WebSocket-only handlers did the same.
        p = self.start_portico(make_config(routes=[
            {"path": "/healthz", "handler": "health"},
            {"path": "/live/", "handler": "pubsub"},
            {"path": "/echo", "handler": "echo"}]))
        c = self.client(p.port)
        for target, status in (("/nowhere", 404), ("/live/", 404), ("/echo", 404),
                               ("/live/room", 200), ("/healthz", 200)):
            with self.subTest(target=target):
                r = c.roundtrip("HEAD", target)
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.body, b"")
                self.assertNotEqual(r.header("Content-Length"), "0")  # what a GET would get
                self.assertEqual(c.read_available(0.2), b"", "bytes after the HEAD response")
                r = c.roundtrip("GET", "/healthz")
                self.assertEqual((r.status, r.body.strip()), (200, b"ok"))

    def test_request_bodies_to_handlers_are_consumed(self):
        # a body sent to a built-in handler must be read (or the connection closed), never
        # parsed as the next request
        p = self.start_portico(make_config(routes=[{"path": "/healthz", "handler": "health"}]))
        c = self.client(p.port)
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
               % len(smuggled) + smuggled)
        r = c.read_response()
        self.assertIn(r.status, (200, 405), r)
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"%x\r\n" % len(smuggled) + smuggled + b"\r\n0\r\n\r\n")
        try:
            r2 = c.read_response()
        except ConnectionClosed:
            return  # closing after the first response is a valid choice
        self.assertIn(r2.status, (200, 405), "the body was parsed as a request: %r" % r2)
        self.assertNotEqual(r2.status, 404)
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        r3 = c.read_response()
        self.assertEqual(r3.status, 200, "the chunked body was parsed as a request: %r" % r3)


class Static(PorticoTestCase):
    def setUp(self):
        self.dir = self.tmpdir()
        www = os.path.join(self.dir, "www")
        os.makedirs(os.path.join(www, "sub"))
        self.files = {
            "index.html": INDEX,
            "a.txt": b"plain text file\n",
            "with space.txt": b"spaced\n",
            "sub/b.css": b"body { color: red }\n",
            "sub/index.html": b"<p>sub index</p>\n",
            "big.bin": os.urandom(3 * 1024 * 1024 + 11),
        }
        for name, data in self.files.items():
            with open(os.path.join(www, name), "wb") as f:
                f.write(data)
        with open(os.path.join(self.dir, "secret.txt"), "wb") as f:
            f.write(SECRET)
        # root is relative: it resolves against the config file's folder, not the cwd
        self.p = self.start_portico(make_config(routes=[
            {"path": "/healthz", "handler": "health"},
            {"path": "/echo", "handler": "echo"},
            {"path": "/", "handler": "static", "root": "www"}]), workdir=self.dir)
        self.c = self.client(self.p.port)

    def get(self, target, method="GET"):
        return self.c.roundtrip(method, target)

    def test_index_at_root(self):
        r = self.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, INDEX)
        self.assertIn("text/html", r.header("Content-Type", ""))

    def test_files_and_content_types(self):
        for target, name, ctype in [("/a.txt", "a.txt", "text/plain"),
                                    ("/sub/b.css", "sub/b.css", "text/css"),
                                    ("/index.html", "index.html", "text/html"),
                                    ("/a.txt?v=1", "a.txt", "text/plain"),
                                    ("/with%20space.txt", "with space.txt", "text/plain")]:
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, self.files[name])
                self.assertIn(ctype, r.header("Content-Type", ""))

    def test_large_file_intact(self):
        r = self.get("/big.bin")
        self.assertEqual(r.status, 200)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(),
                         hashlib.sha256(self.files["big.bin"]).hexdigest())

    def test_head(self):
        r = self.get("/a.txt", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), str(len(self.files["a.txt"])))
        self.assertEqual(r.body, b"")
        self.assertEqual(self.get("/a.txt").body, self.files["a.txt"])

    def test_directory_index(self):
        r = self.get("/sub/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, self.files["sub/index.html"])

    def test_directory_without_slash(self):
        r = self.get("/sub")
        self.assertIn(r.status, (301, 302, 308, 404), r)
        if r.status in (301, 302, 308):
            self.assertTrue(r.header("Location", "").endswith("/sub/"), r)

    def test_missing_is_404(self):
        for target in ("/missing", "/sub/missing.css", "/missing/"):
            with self.subTest(target=target):
                self.assertEqual(self.get(target).status, 404)

    def test_no_path_traversal(self):
        targets = ["/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
                   "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
                   "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/sub/..%2f..%2fsecret.txt",
                   "/.%2e/secret.txt", "/%2e./secret.txt", "/sub/..%5c..%5csecret.txt",
                   "/%252e%252e/secret.txt", "/./../secret.txt", "//../secret.txt",
                   "/sub/../../../../../../.." + self.dir + "/secret.txt"]
        for target in targets:
            with self.subTest(target=target):
                c = self.client(self.p.port)
                c.request("GET", target, headers=[("Connection", "close")])
                r = c.read_response()
                self.assertNotIn(SECRET, r.body, "%s served a file outside root" % target)
                self.assertIn(r.status, (400, 403, 404), r)

    def test_normalised_path_inside_root_is_served_or_rejected(self):
        r = self.get("/sub/../a.txt")
        self.assertIn(r.status, (200, 400, 404))
        if r.status == 200:
            self.assertEqual(r.body, self.files["a.txt"])

    def test_nul_byte_is_rejected(self):
        c = self.client(self.p.port)
        c.request("GET", "/a.txt%00.html", headers=[("Connection", "close")])
        self.assertIn(c.read_response().status, (400, 404))

    def test_health_route_before_static(self):
        r = self.get("/healthz")
        self.assertEqual((r.status, r.body.strip()), (200, b"ok"))

    def test_pipelined_answer_then_file(self):
        # Two requests in one segment: the first answer is written the usual way (with
        # io_uring: on, queued for the ring's next enter), then a file answer (sendfile, the
        # epoll path) follows in the same pass. Before, on the ring nothing was sent at all
        # until client_send_timeout.
        data = pipelined_exchange(self.p.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                  b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", b"plain text file\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertEqual(data.count(b"HTTP/1.1 200"), 2, data[:400])
        self.assertTrue(data.endswith(b"plain text file\n"), data[-200:])

    def test_pipelined_answer_then_builtin_websocket(self):
        # As above, with a built-in WebSocket endpoint's 101 (written at once) second.
        key = b"dGhlIHNhbXBsZSBub25jZQ=="
        data = pipelined_exchange(self.p.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                  b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                  b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                  b"Sec-WebSocket-Key: " + key + b"\r\n\r\n", b"\r\n\r\n", answers=2)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertIn(b"HTTP/1.1 101 ", data)
        self.assertIn(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", data)


def pipelined_exchange(port, requests, last, answers=1, timeout=5.0):
    """Sends `requests` in one write and reads until `last` ends what came (seen `answers`
    times), the peer closes, or `timeout` passes."""
    import socket
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(requests)
        s.settimeout(0.2)
        data, deadline = b"", time.monotonic() + timeout * slow_factor()
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
            if data.endswith(last) and data.count(last) >= answers:
                break
        return data
    finally:
        s.close()


class AccessLog(PorticoTestCase):
    FIELDS = ("time", "client", "method", "path", "status", "bytes_in", "bytes_out",
              "upstream", "duration_ms")

    def setUp(self):
        self.b = self.start_backend(name="a")

    def config(self, access="stdout"):
        return make_config(upstreams={"app": {"servers": [self.b.address]}},
                           routes=[{"path": "/healthz", "handler": "health"},
                                   {"path": "/api/", "upstream": "app"}],
                           access=access)

    def entries(self, p, count):
        got = p.access_log(timeout=5, count=count)
        self.assertGreaterEqual(len(got), count, "expected %d access log lines within 5 s; "
                                "stdout: %r" % (count, p.stdout_lines()))
        return got

    def test_proxied_request_fields(self):
        p = self.start_portico(self.config())
        c = self.client(p.port)
        r = c.roundtrip("POST", "/api/echo?x=1", body=b"b" * 100)
        self.assertEqual(r.status, 200)
        e = self.entries(p, 1)[0]
        for f in self.FIELDS:
            self.assertIn(f, e, "field %s missing in %r" % (f, e))
        self.assertEqual(e["method"], "POST")
        self.assertTrue(e["path"].startswith("/api/echo"), e)
        self.assertEqual(e["status"], 200)
        self.assertIn("127.0.0.1", str(e["client"]))
        self.assertIsInstance(e["bytes_in"], int)
        self.assertIsInstance(e["bytes_out"], int)
        self.assertGreaterEqual(e["bytes_in"], 100)
        self.assertGreaterEqual(e["bytes_out"], r.body_len)
        self.assertTrue(self.b.address in str(e["upstream"]) or "app" in str(e["upstream"]), e)
        self.assertIsInstance(e["duration_ms"], (int, float))
        self.assertGreaterEqual(e["duration_ms"], 0)
        if isinstance(e["time"], str):  # ISO 8601, or else a number (epoch seconds)
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        else:
            self.assertGreater(e["time"], 1.6e9)

    def test_one_line_per_request_and_statuses(self):
        p = self.start_portico(self.config())
        c = self.client(p.port)
        c.roundtrip("GET", "/api/echo")
        c.roundtrip("GET", "/healthz")
        c.roundtrip("GET", "/nope")
        c.roundtrip("GET", "/api/slow?delay=0.3")
        got = self.entries(p, 4)
        time.sleep(0.3)
        got = p.access_log(timeout=0, count=5)
        self.assertEqual(len(got), 4, got)
        self.assertEqual([e["path"].split("?")[0] for e in got],
                         ["/api/echo", "/healthz", "/nope", "/api/slow"])
        self.assertEqual([e["status"] for e in got], [200, 200, 404, 200])
        self.assertIn(got[2]["upstream"], (None, "", "-"))
        self.assertGreaterEqual(got[3]["duration_ms"], 250)

    def test_each_stdout_line_is_one_json_object(self):
        p = self.start_portico(self.config())
        c = self.client(p.port)
        for i in range(5):
            r = c.roundtrip("GET", "/api/echo/%d%%22q%%5C" % i,
                            headers=[("User-Agent", 'evil"\\{x}'), ("Referer", '"\\"')])
            self.assertEqual(r.status, 200)
        self.assertEqual(c.roundtrip("GET", "/nope%22%5C").status, 404)
        self.entries(p, 6)
        for line in p.stdout_lines():
            doc = json.loads(line)
            self.assertIsInstance(doc, dict)

    def test_access_off(self):
        p = self.start_portico(self.config(access="off"))
        c = self.client(p.port)
        self.assertEqual(c.roundtrip("GET", "/api/echo").status, 200)
        time.sleep(0.5 * slow_factor())
        self.assertEqual(p.access_log(timeout=0), [])

    def test_access_to_a_file_relative_to_the_config(self):
        d = self.tmpdir()
        os.makedirs(os.path.join(d, "logs"))
        p = self.start_portico(self.config(access="logs/access.log"), workdir=d)
        c = self.client(p.port)
        self.assertEqual(c.roundtrip("GET", "/api/echo").status, 200)
        path = os.path.join(d, "logs", "access.log")
        deadline = time.monotonic() + 5 * slow_factor()
        lines = []
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    lines = [x for x in f.read().splitlines() if x.strip()]
                if lines:
                    break
            time.sleep(0.05)
        self.assertEqual(len(lines), 1, "access log file %s: %r" % (path, lines))
        self.assertEqual(json.loads(lines[0])["status"], 200)


if __name__ == "__main__":
    main()
