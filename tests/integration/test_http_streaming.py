# SPDX-License-Identifier: Apache-2.0
"""Bodies are streamed, never buffered whole: 256 MiB each way through the proxy with flat
memory, and backpressure against a slow client reader and a slow upstream reader."""

import hashlib
import threading
import time

from backends import PATTERN_BLOCK, TcpServer, pattern_sha256
from portico_harness import (LEAN_ASAN_ENV, PorticoTestCase, RssSampler, main, proxy_config,
                             rss_limit_kb, slow_factor)

MiB = 1024 * 1024
BIG = 256 * MiB


def send_pattern(sock, n, chunked=False, piece=256 * 1024):
    """Writes n pattern bytes (as chunks of `piece` when chunked) to sock."""
    block = PATTERN_BLOCK * (piece // len(PATTERN_BLOCK))
    assert len(block) == piece
    left = n
    while left:
        k = min(piece, left)
        data = block[:k]
        if chunked:
            sock.sendall(b"%x\r\n" % k + data + b"\r\n")
        else:
            sock.sendall(data)
        left -= k
    if chunked:
        sock.sendall(b"0\r\n\r\n")


class Streaming(PorticoTestCase):
    def setUp(self):
        self.b = self.start_backend(name="a")
        self.p = self.start_portico(
            proxy_config([self.b.address], limits={"max_body_bytes": 0}),
            env=LEAN_ASAN_ENV)
        # warm up: one request through, so the baseline includes the pools and buffers
        c = self.client(self.p.port)
        self.assertEqual(c.roundtrip("POST", "/echo", body=b"x" * 100000).status, 200)
        c.close()
        self.baseline = self.p.rss_kb()
        self.limit = rss_limit_kb(self.p, self.baseline)

    def assertRssBounded(self, sampler, what):
        self.assertTrue(sampler.samples, "no RSS samples")
        self.assertLess(sampler.max_kb, self.limit,
                        "%s: portico RSS peaked at %d KiB (baseline %d KiB, limit %d KiB)"
                        % (what, sampler.max_kb, self.baseline, self.limit))

    def test_256mib_response_content_length(self):
        c = self.client(self.p.port, timeout=60)
        with RssSampler(self.p.pid) as s:
            t0 = time.monotonic()
            r = c.roundtrip("GET", "/stream?n=%d&mode=length" % BIG,
                            body_sink=lambda d: None, hash_body=True)
            took = time.monotonic() - t0
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body_len, BIG)
        self.assertEqual(r.sha256, pattern_sha256(BIG))
        self.assertRssBounded(s, "256 MiB download")
        print("256 MiB download: %.2fs, peak RSS %d KiB (baseline %d)"
              % (took, s.max_kb, self.baseline))

    def test_256mib_response_chunked(self):
        c = self.client(self.p.port, timeout=60)
        with RssSampler(self.p.pid) as s:
            r = c.roundtrip("GET", "/stream?n=%d&mode=chunked&chunk=65536" % BIG,
                            body_sink=lambda d: None, hash_body=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body_len, BIG)
        self.assertEqual(r.sha256, pattern_sha256(BIG))
        self.assertRssBounded(s, "256 MiB chunked download")

    def test_256mib_request_content_length(self):
        c = self.client(self.p.port, timeout=60)
        with RssSampler(self.p.pid) as s:
            t0 = time.monotonic()
            c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG)
            send_pattern(c.sock, BIG)
            r = c.read_response()
            took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], BIG)
        self.assertEqual(r.json()["body_sha256"], pattern_sha256(BIG))
        self.assertRssBounded(s, "256 MiB upload")
        print("256 MiB upload: %.2fs, peak RSS %d KiB (baseline %d)"
              % (took, s.max_kb, self.baseline))

    def test_256mib_request_chunked(self):
        c = self.client(self.p.port, timeout=60)
        with RssSampler(self.p.pid) as s:
            c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            send_pattern(c.sock, BIG, chunked=True)
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], BIG)
        self.assertEqual(r.json()["body_sha256"], pattern_sha256(BIG))
        self.assertRssBounded(s, "256 MiB chunked upload")

    def test_slow_reader_backpressure(self):
        # The client reads 1 MiB, then stops. The proxy must stop reading from the backend
        # (backend progress stalls) and hold no more than a few buffers. Then the client reads
        # slowly for a second, then at full speed; every byte must arrive intact.
        c = self.client(self.p.port, timeout=60, rcvbuf=64 * 1024)
        self.b.reset_counters()
        sha = hashlib.sha256()
        received = 0

        def take(data):
            nonlocal received
            sha.update(data)
            received += len(data)

        with RssSampler(self.p.pid) as s:
            c.request("GET", "/stream?n=%d&mode=length" % BIG)
            head = c.read_head()
            self.assertEqual(head.status, 200)
            self.assertEqual(head.header("Content-Length"), str(BIG))
            take(bytes(c.buf))
            c.buf.clear()
            while received < MiB:
                take(c.sock.recv(65536))
            time.sleep(1.0 * slow_factor())
            sent_1 = self.b.bytes_sent
            time.sleep(1.0)
            sent_2 = self.b.bytes_sent
            self.assertLess(sent_2 - sent_1, 2 * MiB,
                            "backend kept sending to a stalled client: %d bytes in 1 s"
                            % (sent_2 - sent_1))
            self.assertLess(sent_2, 64 * MiB,
                            "%d MiB left the backend while the client had read 1 MiB"
                            % (sent_2 // MiB))
            slow_end = time.monotonic() + 1.0
            while time.monotonic() < slow_end:
                take(c.sock.recv(65536))
                time.sleep(0.005)
            while received < BIG:
                data = c.sock.recv(min(1 << 20, BIG - received))
                self.assertTrue(data, "connection closed after %d bytes" % received)
                take(data)
        self.assertEqual(received, BIG)
        self.assertEqual(sha.hexdigest(), pattern_sha256(BIG))
        self.assertRssBounded(s, "slow reader")
        # the connection is still usable
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)

    def test_slow_upstream_reader_backpressure(self):
        # The backend reads the head and then nothing for 2 s: the proxy must stop reading the
        # client's 256 MiB upload rather than buffer it.
        release = threading.Event()
        counted = {}

        def slow_sink(s):
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = s.recv(65536)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            release.wait(30)
            n = len(rest)
            while n < length:
                data = s.recv(1 << 20)
                if not data:
                    break
                n += len(data)
            counted["n"] = n
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(n)), n))
            s.close()

        srv = TcpServer(slow_sink)
        self.addCleanup(srv.stop)
        self.addCleanup(release.set)
        p = self.start_portico(proxy_config([srv.address], limits={"max_body_bytes": 0}),
                               env=LEAN_ASAN_ENV)
        base = p.rss_kb()
        limit = rss_limit_kb(p, base)
        c = self.client(p.port, timeout=60)
        c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG)
        sent = [0]
        err = []

        def writer():
            piece = PATTERN_BLOCK * 4
            try:
                while sent[0] < BIG:
                    k = min(len(piece), BIG - sent[0])
                    c.sock.sendall(piece[:k])
                    sent[0] += k
            except OSError as e:
                err.append(e)

        c.sock.settimeout(60)
        t = threading.Thread(target=writer, daemon=True)
        with RssSampler(p.pid) as s:
            t.start()
            time.sleep(2.0 * slow_factor())
            stalled_at = sent[0]
            self.assertLess(stalled_at, 64 * MiB,
                            "the proxy accepted %d MiB of upload the backend had not read"
                            % (stalled_at // MiB))
            release.set()
            t.join(60)
            r = c.read_response()
        self.assertFalse(err, err)
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.body), BIG)
        self.assertLess(s.max_kb, limit, "RSS peaked at %d KiB (limit %d)" % (s.max_kb, limit))


if __name__ == "__main__":
    main()
