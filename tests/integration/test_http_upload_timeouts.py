# SPDX-License-Identifier: Apache-2.0
"""Timeouts while a request body goes upstream (hardening issue). `read_timeout` used to run
from the moment the request head went out, so an upload slower than it got 504 while its bytes
were still moving. Now:
  - read_timeout runs only once the whole request went out;
  - upstreams.<name>.send_timeout (nginx's proxy_send_timeout) ends an exchange whose upstream
    takes no byte of the request for that long: 504;
  - a client that stops sending its body gets 408 after limits.client_body_timeout, whatever the
    upstream's timeouts."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from backends import TcpServer, take, wait_receive_queue_full  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, slow_factor  # noqa: E402


def ms(value):
    return "%dms" % (value * 1000 * slow_factor())


def tcp_wmem_max():
    """The largest send buffer the kernel gives a TCP socket (net.ipv4.tcp_wmem's maximum)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


class UploadTimeouts(PorticoTestCase):

    def start(self, upstream_address, read_timeout, send_timeout, body_timeout=60.0):
        cfg = make_config(routes=[{"path": "/", "upstream": "app"}],
                          upstreams={"app": {"servers": [upstream_address],
                                             "read_timeout": ms(read_timeout),
                                             "send_timeout": ms(send_timeout)}},
                          limits={"client_body_timeout": ms(body_timeout), "max_body_bytes": 0})
        return self.start_portico(cfg)

    def silent_upstream(self):
        """The address of an upstream that reads a request head, then nothing, and never answers
        (until the test ends)."""
        release = threading.Event()

        def upstream(sock):
            with sock:
                read_head(sock)
                release.wait(60)

        server = TcpServer(upstream)
        self.addCleanup(server.stop)
        self.addCleanup(release.set)
        return server.address

    def upload_without_end(self, c):
        """Sends a 256 MiB upload on `c` from a thread (started, returned) until Portico closes."""
        total = 256 << 20
        c.request("POST", "/upload", headers=[("Content-Length", str(total))])
        block = b"t" * (1 << 20)

        def sender():
            try:
                for _ in range(total >> 20):
                    c.sock.sendall(block)
            except OSError:
                pass  # Portico answered and closed

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        return thread

    def test_slow_upload_longer_than_read_timeout_succeeds(self):
        # 12 pieces, 0.15 s apart: the upload takes 1.8 s, read_timeout is 0.5 s; each gap is
        # shorter than every timeout.
        b = self.start_backend(name="a")
        p = self.start(b.address, read_timeout=0.5, send_timeout=0.5)
        c = self.client(p.port)
        piece = b"u" * 1024
        c.request("POST", "/echo", headers=[("Content-Length", str(12 * len(piece)))])
        for _ in range(12):
            time.sleep(0.15 * slow_factor())
            c.send(piece)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], 12 * len(piece))
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)  # the connection lives on

    def test_upstream_that_reads_slowly_but_steadily_is_not_timed_out(self):
        # The upstream takes 256 KiB every 0.1 s (2.5 MB/s) through a 64 KiB receive buffer. The
        # body is 4 MiB more than the largest kernel send buffer, so Portico holds part of it
        # for well over a second (> 3 send_timeouts of 0.5 s) while bytes keep moving: no 504.
        # read_timeout covers the tail still in the kernel's buffers once the last byte was
        # written.
        total = (tcp_wmem_max() + (4 << 20)) & ~((1 << 20) - 1)
        got = []

        def upstream(sock):
            with sock:
                head, rest = read_head(sock)
                if head is None:
                    return
                received = len(rest)
                while received < total:
                    time.sleep(0.1)
                    want = min(256 << 10, total - received)
                    while want > 0:
                        chunk = sock.recv(want)
                        if not chunk:
                            return
                        received += len(chunk)
                        want -= len(chunk)
                got.append(received)
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

        server = TcpServer(upstream)
        server._l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # inherited at accept
        self.addCleanup(server.stop)
        p = self.start(server.address, read_timeout=10.0, send_timeout=0.5)
        c = self.client(p.port, timeout=60 * slow_factor())
        c.request("POST", "/upload", headers=[("Content-Length", str(total))])
        block = b"s" * (1 << 20)
        started = time.monotonic()
        for _ in range(total >> 20):
            c.send(block)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(got, [total])
        self.assertGreater(time.monotonic() - started, 2.0, "the upstream was not slow: no test")

    def test_upstream_that_stops_reading_gets_504_after_send_timeout(self):
        # The upstream reads the head and then nothing: once the socket buffers are full, no
        # byte goes out for send_timeout (0.5 s). read_timeout (60 s) is not what ends it.
        p = self.start(self.silent_upstream(), read_timeout=60.0, send_timeout=0.5)
        c = self.client(p.port, timeout=60 * slow_factor())
        started = time.monotonic()
        thread = self.upload_without_end(c)
        r = c.read_response()
        elapsed = time.monotonic() - started
        self.assertEqual(r.status, 504, r)
        self.assertLess(elapsed, 15 * slow_factor(), "504 came from read_timeout, not send_timeout")
        self.assertIsNotNone(p.wait_stderr(lambda line: "send timed out" in line), p.stderr_text())
        self.assertClosed(c, timeout=10)
        thread.join(10)

    def test_send_timeout_runs_from_the_upstreams_last_take_not_from_the_check_after_it(self):
        # The upstream lets its receive buffer fill, takes 1 MiB once, then nothing. The timer
        # that saw that take restarted the whole send_timeout from itself: a take just after the
        # timer was armed got the 504 nearly two send_timeouts later (4.0 s for 2 s). Now the
        # timer looks every quarter and counts from the first look that saw the take: between
        # T and 1.25 T after it. The bound, 1.6 T, is a timed assertion, the only way to see this
        # defect: T is 3 s (times slow_factor): about 0.3 T each way.
        send_timeout = 3.0
        took = []

        def upstream(sock):
            with sock:
                head, _ = read_head(sock)
                if head is None:
                    return
                wait_receive_queue_full(sock)
                if not take(sock, 1 << 20):
                    return
                took.append(time.monotonic())
                release.wait(120)

        release = threading.Event()
        server = TcpServer(upstream)
        self.addCleanup(server.stop)
        self.addCleanup(release.set)
        p = self.start(server.address, read_timeout=60.0, send_timeout=send_timeout)
        c = self.client(p.port, timeout=60 * slow_factor())
        thread = self.upload_without_end(c)
        r = c.read_response()
        answered = time.monotonic()
        self.assertEqual(r.status, 504, r)
        self.assertIsNotNone(p.wait_stderr(lambda line: "send timed out" in line), p.stderr_text())
        self.assertEqual(len(took), 1, "the upstream never took its 1 MiB")
        timeout = send_timeout * slow_factor()
        self.assertGreater(answered - took[0], timeout - 0.1, "504 before send_timeout had passed since the take")
        self.assertLess(answered - took[0], 1.6 * timeout, "send_timeout restarted at the check after the take")
        self.assertClosed(c, timeout=10)
        thread.join(10)

    def test_client_that_stalls_mid_body_gets_408(self):
        # The upstream's timeouts are shorter than client_body_timeout: neither may fire while
        # the upstream has taken all there was and waits, like us, for the client.
        b = self.start_backend(name="a")
        p = self.start(b.address, read_timeout=0.3, send_timeout=0.3, body_timeout=1.0)
        c = self.client(p.port)
        c.request("POST", "/echo", headers=[("Content-Length", "100")])
        c.send(b"x" * 10)  # then nothing more
        started = time.monotonic()
        r = c.read_response()
        self.assertEqual(r.status, 408, r)
        self.assertGreater(time.monotonic() - started, 0.8 * slow_factor())
        self.assertClosed(c, timeout=5)
        entries = p.access_log(count=1)
        self.assertEqual([e["status"] for e in entries], [408], entries)

    def test_read_timeout_still_runs_once_the_request_is_sent(self):
        # The whole request went out; the upstream never answers: 504 after read_timeout.
        p = self.start(self.silent_upstream(), read_timeout=0.5, send_timeout=60.0)
        c = self.client(p.port)
        started = time.monotonic()
        r = c.roundtrip("POST", "/upload", body=b"z" * 1000)
        self.assertEqual(r.status, 504, r)
        self.assertLess(time.monotonic() - started, 10 * slow_factor())
        self.assertIsNotNone(p.wait_stderr(lambda line: "read timed out" in line), p.stderr_text())


if __name__ == "__main__":
    main()
