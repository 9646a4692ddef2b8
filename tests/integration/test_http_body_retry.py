# SPDX-License-Identifier: Apache-2.0
"""Retries on a pooled upstream connection (hardening issue): a request whose body has started
to go upstream is never sent again. A pooled connection that dies after reading part of a PUT
body used to be retried on a fresh connection with the head only: the upstream then took the
rest of a chunked body as the whole (200 to the client, a truncated upload stored) or waited for
bytes that never came (Content-Length: a hang until read_timeout). Now the client gets 502.
A bodyless GET whose pooled connection was closed under it is still retried on a fresh one."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from backends import TcpServer  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, slow_factor  # noqa: E402

PART = 4096          # body bytes the upstream reads before it drops the connection
BODY = 64 * 1024     # the whole body


class ScriptedUpstream:
    """A raw HTTP/1.1 upstream. The first request on a connection is answered 200 with
    keep-alive (so Portico pools the connection); on a second request it reads the head and
    `drop_after` body bytes, then closes without answering. Requests on later connections are
    read whole (Content-Length or chunked) and answered 200. It records every request head and
    every body it accepted as complete."""

    def __init__(self, drop_after):
        self.drop_after = drop_after
        self.heads = []          # (connection number, request line)
        self.accepted = []       # (connection number, request line, body length)
        self.trailers = []       # (connection number, request line, trailer lines) of chunked ones
        self.dropped = threading.Event()
        self.lock = threading.Lock()
        self.server = TcpServer(self.serve)

    @property
    def address(self):
        return self.server.address

    def serve(self, sock):
        with self.lock:
            number = self.server.connections
        buf = b""
        with sock:
            sock.settimeout(30)
            for request_no in (1, 2, 3):
                while b"\r\n\r\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n")[0].decode("latin-1")
                with self.lock:
                    self.heads.append((number, line))
                if number == 1 and request_no == 2:
                    while len(buf) < self.drop_after:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                    self.dropped.set()
                    return  # closed mid-body, no answer
                body, buf, trailers = self.read_body(sock, head, buf)
                if body is None:
                    return
                with self.lock:
                    self.accepted.append((number, line, len(body)))
                    if trailers is not None:
                        self.trailers.append((number, line, trailers))
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    @staticmethod
    def read_body(sock, head, buf):
        """(body, rest, trailer lines or None) of a request whose head is `head`; (None, b"", None)
        at EOF mid-body."""
        lower = head.lower()

        def more():
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            return chunk

        try:
            if b"transfer-encoding: chunked" in lower:
                body = b""
                while True:
                    while b"\r\n" not in buf:
                        buf += more()
                    size_line, buf = buf.split(b"\r\n", 1)
                    size = int(size_line.split(b";")[0], 16)
                    while len(buf) < size + 2:
                        buf += more()
                    if size == 0:  # the trailer section: field lines, then an empty line
                        trailers = []
                        while True:
                            while b"\r\n" not in buf:
                                buf += more()
                            field, buf = buf.split(b"\r\n", 1)
                            if not field:
                                return body, buf, trailers
                            trailers.append(field.decode("latin-1"))
                    body, buf = body + buf[:size], buf[size + 2:]
            length = 0
            for header in lower.split(b"\r\n")[1:]:
                if header.startswith(b"content-length:"):
                    length = int(header.split(b":", 1)[1])
            while len(buf) < length:
                buf += more()
            return buf[:length], buf[length:], None
        except (EOFError, OSError):
            return None, b"", None

    def stop(self):
        self.server.stop()


class BodyRetry(PorticoTestCase):

    def start(self, drop_after=PART):
        upstream = ScriptedUpstream(drop_after)
        self.addCleanup(upstream.stop)
        cfg = make_config(routes=[{"path": "/", "upstream": "app"}],
                          upstreams={"app": {"servers": [upstream.address],
                                             "read_timeout": "%ds" % (20 * slow_factor())}},
                          workers=1)  # one pool: the second request reuses the first's connection
        p = self.start_portico(cfg)
        c = self.client(p.port, timeout=30 * slow_factor())
        r = c.roundtrip("GET", "/warm-up")
        self.assertEqual(r.status, 200, r)
        return upstream, p, c

    def upload_cut_short(self, framing):
        upstream, p, c = self.start()
        if framing == "chunked":
            headers = [("Transfer-Encoding", "chunked")]
            frame = lambda data: b"%x\r\n%s\r\n" % (len(data), data)  # noqa: E731
            end = b"0\r\n\r\n"
        else:
            headers = [("Content-Length", str(BODY))]
            frame = lambda data: data  # noqa: E731
            end = b""
        c.request("PUT", "/upload", headers=headers)
        c.send(frame(b"a" * PART))
        self.assertTrue(upstream.dropped.wait(10 * slow_factor()), "the upstream never read the body")
        # The rest of the body follows once the pooled connection is gone: a retry would carry it
        # to a fresh connection, without the part the dead one took.
        time.sleep(0.2 * slow_factor())
        try:
            c.send(frame(b"b" * (BODY - PART)) + end)
        except OSError:
            pass  # Portico may have answered and closed already
        r = c.read_response()
        self.assertEqual(r.status, 502, r)
        self.assertClosed(c)
        time.sleep(0.3 * slow_factor())  # a retried request would have reached the upstream by now
        with upstream.lock:
            puts = [h for h in upstream.heads if h[1].startswith("PUT ")]
            accepted_puts = [a for a in upstream.accepted if a[1].startswith("PUT ")]
        self.assertEqual(len(puts), 1, "the PUT was sent again: %r" % upstream.heads)
        self.assertEqual(accepted_puts, [], "the upstream took a truncated body as complete")
        self.assertEqual(upstream.server.connections, 1)
        # The 502 is in the access log.
        entries = p.access_log(count=2)
        self.assertEqual([e["status"] for e in entries], [200, 502], entries)

    def test_content_length_body_cut_on_a_pooled_connection_is_502(self):
        self.upload_cut_short("length")

    def test_chunked_body_cut_on_a_pooled_connection_is_502(self):
        self.upload_cut_short("chunked")

    def test_get_on_a_stale_pooled_connection_is_retried(self):
        # The pooled connection reads the GET's head and closes (the server's idle close racing
        # the request): a bodyless idempotent request goes again on a fresh connection.
        upstream, p, c = self.start(drop_after=0)
        r = c.roundtrip("GET", "/again")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok")
        with upstream.lock:
            self.assertEqual(upstream.heads, [(1, "GET /warm-up HTTP/1.1"), (1, "GET /again HTTP/1.1"),
                                              (2, "GET /again HTTP/1.1")])
        self.assertEqual(c.roundtrip("GET", "/after").status, 200)  # the client connection lives on

    def test_put_whose_body_had_not_started_is_retried_whole(self):
        # The pooled connection dies after the head, before any body byte was sent: the request
        # goes again, whole, on a fresh connection (nothing of it is lost).
        upstream, p, c = self.start(drop_after=0)
        c.request("PUT", "/upload", headers=[("Content-Length", str(PART))])
        self.assertTrue(upstream.dropped.wait(10 * slow_factor()))
        time.sleep(0.2 * slow_factor())
        c.send(b"c" * PART)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        with upstream.lock:
            self.assertEqual(upstream.accepted[-1], (2, "PUT /upload HTTP/1.1", PART))

    def resend_of_a_body_that_ended_at_once(self, method, target, last_chunk, trailers):
        upstream, p, c = self.start(drop_after=0)
        c.request(method, target, headers=[("Transfer-Encoding", "chunked")])
        c.send(last_chunk)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        line = "%s %s HTTP/1.1" % (method, target)
        with upstream.lock:
            self.assertEqual(upstream.accepted[-1], (2, line, 0))
            self.assertEqual(upstream.trailers[-1], (2, line, trailers))
        self.assertEqual(c.roundtrip("GET", "/after").status, 200)

    def test_empty_chunked_put_is_retried_with_its_last_chunk(self):
        # The whole request (head and the last chunk) went to the pooled connection that died:
        # the repeat must carry the last chunk again, or the upstream waits for the body's end
        # and the client gets 504 after read_timeout.
        self.resend_of_a_body_that_ended_at_once("PUT", "/empty", b"0\r\n\r\n", [])

    def test_trailers_only_get_is_retried_with_its_trailers(self):
        # As above, with a trailer section: it went to the dead connection too and is kept for the
        # repeat (a request with trailers used to be answered 502 instead).
        self.resend_of_a_body_that_ended_at_once("GET", "/sum", b"0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n",
                                                 ["X-Checksum: abc", "X-More: 1"])

    def test_bodyless_post_on_a_stale_pooled_connection_is_not_repeated(self):
        # RFC 9112 9.3.1.1: the upstream read the whole request before closing and may have acted
        # on it; a POST is not idempotent, so it is not sent a second time.
        upstream, p, c = self.start(drop_after=0)
        r = c.roundtrip("POST", "/order", body=b"")
        self.assertEqual(r.status, 502, r)
        time.sleep(0.3 * slow_factor())
        with upstream.lock:
            self.assertEqual([h for h in upstream.heads if h[1].startswith("POST ")],
                             [(1, "POST /order HTTP/1.1")])


if __name__ == "__main__":
    main()
