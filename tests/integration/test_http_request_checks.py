# SPDX-License-Identifier: Apache-2.0
"""What a request must be before it is routed (hardening issue): a WebSocket upgrade carrying a
body is refused instead of smuggling that body into the tunnel; Host is validated, never removed
by a Connection token and supplied for HTTP/1.0; the path is normalized (dot segments, %2e,
duplicate slashes) before matching and forwarded as matched; HTTP/2.0 on an HTTP/1 connection
is 505; plain HTTP on a TLS port gets a readable 400."""

import base64
import hashlib
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from backends import TcpServer  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config  # noqa: E402
from tls_certs import shared_pki, tls_listener  # noqa: E402

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SMUGGLED = b"GET /admin/secret HTTP/1.1\r\nHost: internal\r\n\r\n"


def upgrade_head(path="/ws/chat", extra=()):
    lines = ["GET %s HTTP/1.1" % path, "Host: localhost", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + KEY, "Sec-WebSocket-Version: 13"] + list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class UpgradingBackend:
    """A backend that answers every WebSocket handshake with a valid 101 and then records all
    bytes that arrive on the connection: whatever Portico lets through ends up in `received`."""

    def __init__(self, tc):
        self.lock = threading.Lock()
        self.received = []  # bytes per connection, head included
        self.upgraded = threading.Event()
        self.server = TcpServer(self.handle)
        tc.addCleanup(self.server.stop)

    def handle(self, sock):
        data = b""
        with self.lock:
            index = len(self.received)
            self.received.append(b"")
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
                with self.lock:
                    self.received[index] = data
            accept = base64.b64encode(hashlib.sha1((KEY + WS_GUID).encode()).digest()).decode()
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
            self.upgraded.set()
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                with self.lock:
                    self.received[index] += chunk
        finally:
            sock.close()

    def all_bytes(self):
        with self.lock:
            return b"".join(self.received)


class UpgradeWithBody(PorticoTestCase):
    """RFC 6455 4.1: the opening handshake has no content. A body sent with it used to follow the
    head upstream as raw bytes, i.e. as a second request the upstream would parse."""

    def setUp(self):
        self.backend = UpgradingBackend(self)
        # one worker: connections are served, and so connect upstream, in the order they arrive
        self.p = self.start_portico(make_config(
            workers=1,
            upstreams={"app": {"servers": [self.backend.server.address]}},
            routes=[{"path": "/ws/", "upstream": "app"}, {"path": "/echo", "handler": "echo"}]))

    def assert_upstream_never_sees_smuggled(self):
        # A clean upgrade afterwards: once the backend has it, anything Portico had sent for the
        # refused one (an earlier connection, accepted first) would be recorded too.
        c = self.client(self.p.port)
        c.send(upgrade_head())
        self.assertEqual(c.read_response().status, 101)
        self.assertTrue(self.backend.upgraded.wait(5))
        c.send(b"\x81\x82abcd" + bytes(x ^ y for x, y in zip(b"hi", b"abcd")))  # masked "hi"
        self.assertNotIn(b"/admin/secret", self.backend.all_bytes())
        self.assertEqual(self.backend.server.connections, 1, self.backend.received)

    def test_upgrade_with_content_length_body_is_refused(self):
        c = self.client(self.p.port)
        c.send(upgrade_head(extra=["Content-Length: %d" % len(SMUGGLED)]) + SMUGGLED)
        r = c.read_response()
        self.assertEqual(r.status, 400, r)
        self.assertClosed(c)
        self.assert_upstream_never_sees_smuggled()

    def test_upgrade_with_chunked_body_is_refused(self):
        c = self.client(self.p.port)
        chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
        c.send(upgrade_head(extra=["Transfer-Encoding: chunked"]) + chunk)
        self.assertEqual(c.read_response().status, 400)
        self.assertClosed(c)
        self.assert_upstream_never_sees_smuggled()

    def test_upgrade_to_a_builtin_endpoint_with_a_body_is_refused(self):
        c = self.client(self.p.port)
        c.send(upgrade_head("/echo", extra=["Content-Length: 5"]) + b"hello")
        self.assertEqual(c.read_response().status, 400)
        self.assertClosed(c)

    def test_upgrade_with_empty_content_length_is_fine(self):
        c = self.client(self.p.port)
        c.send(upgrade_head(extra=["Content-Length: 0"]))
        self.assertEqual(c.read_response().status, 101)


class HostHandling(PorticoTestCase):

    def setUp(self):
        self.backend = self.start_backend(name="a")
        self.p = self.proxy(self.backend)

    def echoed_headers(self, r):
        self.assertEqual(r.status, 200, r)
        return {k.lower(): v for k, v in json.loads(r.body)["headers"]}

    def test_host_named_in_connection_still_reaches_the_upstream(self):
        r = self.client(self.p.port).roundtrip("GET", "/x", host="app.example",
                                               headers=[("Connection", "close, Host")])
        headers = self.echoed_headers(r)
        self.assertEqual(headers.get("host"), "app.example")

    def test_http10_without_host_gets_the_address_the_client_connected_to(self):
        c = self.client(self.p.port)
        c.send(b"GET /x HTTP/1.0\r\n\r\n")
        headers = self.echoed_headers(c.read_response())
        self.assertEqual(headers.get("host"), "127.0.0.1:%d" % self.p.port)

    def test_invalid_host_is_400_and_never_forwarded(self):
        for host in ["x/../y", "", "evil.example/x?", "a b", "host:99999", "host:8x", "[::1", "a..b",
                     "user@host", "<script>"]:
            with self.subTest(host=host):
                c = self.client(self.p.port)
                c.send(("GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
                r = c.read_response()
                self.assertEqual(r.status, 400, r)
                self.assertClosed(c)
        self.assertEqual(self.backend.request_count(), 0,
                         [q.header("Host") for q in self.backend.requests])

    def test_absolute_form_authority_is_validated_like_host(self):
        c = self.client(self.p.port)
        c.send(b"GET http://evil.example%2f..%2f/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertEqual(c.read_response().status, 400)
        r = self.client(self.p.port).roundtrip("GET", "http://good.example:81/x?q=1")
        headers = self.echoed_headers(r)
        self.assertEqual(headers.get("host"), "good.example:81")
        self.assertEqual(self.backend.requests[-1].target, "/x?q=1")

    def test_redirect_https_location_is_built_from_a_valid_host_only(self):
        p = self.start_portico(make_config(routes=[{"path": "/", "handler": "health"}],
                                           listeners=[{"address": "127.0.0.1:0", "redirect_https": 18443}]))
        c = self.client(p.port)
        c.send(b"GET /p HTTP/1.1\r\nHost: evil.example/x?\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 400, r)
        self.assertIsNone(r.header("Location"))
        r = self.client(p.port).roundtrip("GET", "/p", host="site.example")
        self.assertEqual((r.status, r.header("Location")), (308, "https://site.example:18443/p"))


class PathNormalization(PorticoTestCase):
    """/api/ goes to one upstream (strip_prefix), /admin/ to another: a path that names /admin
    through /api/ must be routed as /admin, or refused, never forwarded by the /api/ route."""

    def setUp(self):
        self.app = self.start_backend(name="app")
        self.admin = self.start_backend(name="admin")
        self.p = self.start_portico(make_config(
            upstreams={"app": {"servers": [self.app.address]}, "admin": {"servers": [self.admin.address]}},
            routes=[{"path": "/api/", "upstream": "app", "strip_prefix": True},
                    {"path": "/admin/", "upstream": "admin"},
                    {"path": "/", "handler": "health"}]))

    def get(self, target):
        c = self.client(self.p.port)
        c.send(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % target).encode())
        return c.read_response()

    def test_dot_segments_are_resolved_before_routing(self):
        for target in ["/api/../admin/users", "/api/%2e%2e/admin/users", "/api/%2E%2E/admin/users",
                       "/api/.%2e/admin/users", "/api/./../admin/./users", "//api//..//admin//users"]:
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual((r.status, r.header("X-Backend")), (200, "admin"), r)
                self.assertEqual(self.admin.requests[-1].target, "/admin/users")
        self.assertEqual(self.app.request_count(), 0, [q.target for q in self.app.requests])

    def test_what_goes_upstream_is_the_path_that_was_matched(self):
        r = self.get("/api//v1/./items/../users?next=/../x&y=%2e%2e")
        self.assertEqual((r.status, r.header("X-Backend")), (200, "app"), r)
        # merged slashes, dot segments resolved, prefix stripped; the query is left as sent
        self.assertEqual(self.app.requests[-1].target, "/v1/users?next=/../x&y=%2e%2e")
        r = self.get("/api/a%2Fb/%7Ec")
        self.assertEqual(self.app.requests[-1].target, "/a%2Fb/%7Ec")

    def test_paths_that_climb_above_root_or_hide_separators_are_400(self):
        for target in ["/..", "/api/../../admin", "/%2e%2e/admin/", "/api/..%2fadmin/users",
                       "/api/..%2Fadmin/users", "/api/%2e%2e%2fadmin/users", "/api/..%5cadmin/users",
                       "/api/x%00", "/api/%zz", "/api/x#frag"]:
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual(r.status, 400, r)
        self.assertEqual(self.app.request_count() + self.admin.request_count(), 0,
                         [q.target for q in self.app.requests + self.admin.requests])


class ProtocolVersionAndTls(PorticoTestCase):

    def test_http2_request_line_is_505(self):
        backend = self.start_backend(name="a")
        p = self.proxy(backend)
        c = self.client(p.port)
        c.send(b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 505, r)
        self.assertClosed(c)
        self.assertEqual(backend.request_count(), 0)

    def test_plain_http_on_a_tls_port_gets_400_in_plain_text(self):
        _, certs = shared_pki()
        p = self.start_portico(make_config(routes=[{"path": "/", "handler": "health"}],
                                           listeners=[tls_listener([certs["site-ec"]])]))
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        self.assertIn(b"plain HTTP request was sent to HTTPS port", data)
        self.assertIn(b"Connection: close", data)
        # TLS clients on the same listener are not disturbed
        import ssl
        ctx = ssl.create_default_context(cafile=shared_pki()[0].ca_file)
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="site.test") as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
                reply = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)


if __name__ == "__main__":
    main()
