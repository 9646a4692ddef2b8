# SPDX-License-Identifier: Apache-2.0
"""Plaintext WebSocket tunnels on io_uring (`io_uring: on`): the ring is used (its completion
counter moves), a frame behind the 101 arrives, each side's end reaches the other, the idle
timeout and a graceful stop close open tunnels, many tunnels opened and closed leave no
descriptor behind, a TLS client stays on epoll, and `io_uring: on` is refused where the kernel
refuses a ring. The existing tunnel tests also run with `io_uring: on` (CTest's *_uring
variants, PORTICO_TEST_IO_URING). Skipped, with the reason, where io_uring_setup is refused."""

import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import uring_probe  # noqa: E402
from backends import free_port  # noqa: E402
import ws_client  # noqa: E402
from portico_harness import (LEAN_ASAN_ENV, main, make_config, portico_bin, quarantine_slack_kb,  # noqa: E402
                             slow_factor, to_yaml)
from ws_client import OP_TEXT  # noqa: E402
from ws_peers import WsTestCase, start_raw_ws_backend, ws_proxy_config  # noqa: E402


def ring_completions(pid):
    """The CqHead of each io_uring the process has open (completions reaped so far)."""
    heads = []
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) != "anon_inode:[io_uring]":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("CqHead:"):
                        heads.append(int(line.split()[1]))
        except OSError:
            continue
    return heads


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class UringTunnel(WsTestCase):
    test_timeout = 120

    def setUp(self):
        super().setUp()
        refusal = uring_probe.io_uring_refusal()
        if refusal:
            self.skipTest(refusal)
        self.backend = self.start_ws_backend("python")

    def portico(self, websocket=None, **kw):
        return self.start_portico(ws_proxy_config(self.backend.address, websocket=websocket,
                                                  io_uring="on", workers=1, **kw))

    def test_the_ring_carries_the_tunnel(self):
        p = self.portico()
        self.assertTrue(p.wait_stderr(lambda line: "plaintext WebSocket tunnels on io_uring" in line))
        before = sum(ring_completions(p.pid))
        ws = self.ws_connect(p.port, "/ws/ring")
        for i in range(20):
            ws.send_frame(OP_TEXT, b"m%d" % i)
            self.assertEqual(ws.recv_text(), "m%d" % i)
        after = sum(ring_completions(p.pid))
        # Each echoed message is two receives and two sends (the last send's completion may not
        # be reaped yet when the reply arrived).
        self.assertGreaterEqual(after - before, 76, "the tunnel's bytes did not go through the ring")

    def test_a_frame_behind_the_101_arrives(self):
        p = self.portico()
        ws = self.ws_connect(p.port, "/ws/behind", early_data=ws_client.build_frame(OP_TEXT, b"first"))
        self.assertEqual(ws.recv_text(5 * slow_factor()), "first")

    def test_a_client_fin_ends_the_backend_side(self):
        p = self.portico()
        ws = self.ws_connect(p.port, "/ws/clientfin")
        ws.send_frame(OP_TEXT, b"x")
        self.assertEqual(ws.recv_text(), "x")
        ws.sock.shutdown(socket.SHUT_WR)
        ev = self.backend.wait_event(lambda e: e["event"] == "close")
        self.assertIsNotNone(ev, "the backend never saw the tunnel end")
        self.assertTrue(ws.wait_eof(5 * slow_factor()), "the client side stayed open")

    def test_an_upstream_close_ends_the_client_side(self):
        p = self.portico()
        ws = self.ws_connect(p.port, "/ws/close")
        ws.send_text("__drop__")  # the python backend drops its TCP connection
        frames, eof = ws.read_until_eof(5 * slow_factor())
        self.assertTrue(eof, "the client side stayed open after the backend closed")

    def test_idle_timeout_closes_the_tunnel(self):
        p = self.portico(websocket={"idle_timeout": "1s"})
        ws = self.ws_connect(p.port, "/ws/idle")
        ws.send_frame(OP_TEXT, b"x")
        self.assertEqual(ws.recv_text(), "x")
        start = time.monotonic()
        self.assertTrue(ws.wait_eof(6 * slow_factor()), "an idle tunnel stayed open")
        self.assertGreaterEqual(time.monotonic() - start, 0.8)

    def test_stop_with_tunnels_open(self):
        p = self.portico()
        sockets = [self.ws_connect(p.port, "/ws/stop%d" % i) for i in range(10)]
        for ws in sockets:
            ws.send_frame(OP_TEXT, b"hi")
            self.assertEqual(ws.recv_text(), "hi")
        start = time.monotonic()
        self.assertEqual(p.stop(timeout=15), 0)
        self.assertLess(time.monotonic() - start, 8 * slow_factor(), "stop waited on open tunnels")
        for ws in sockets:
            self.assertTrue(ws.wait_eof(5 * slow_factor()), "a tunnel outlived the stop")

    def test_many_tunnels_leave_no_descriptor_behind(self):
        p = self.portico()
        pid = p.pid
        ws = self.ws_connect(p.port, "/ws/warm")  # the ring and the pool exist already
        ws.send_frame(OP_TEXT, b"w")
        self.assertEqual(ws.recv_text(), "w")
        ws.close()
        time.sleep(0.3)
        base = fd_count(pid)
        for round_ in range(5):
            batch = [self.ws_connect(p.port, "/ws/many%d_%d" % (round_, i)) for i in range(40)]
            for i, ws in enumerate(batch):
                ws.send_text("t%d" % i * 100)
            for i, ws in enumerate(batch):
                self.assertEqual(ws.recv_text(5 * slow_factor()), "t%d" % i * 100)
            for i, ws in enumerate(batch):
                if i % 2:
                    ws.abort()  # a reset: the backend side is reset too
                else:
                    ws.close()
        deadline = time.monotonic() + 10 * slow_factor()
        while fd_count(pid) > base and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertLessEqual(fd_count(pid), base, "descriptors left after 200 tunnels ended")

    def test_stalled_tunnels_do_not_starve_the_others(self):
        # 40 clients that never read (a small receive buffer) behind backends that flood: each
        # tunnel's backend-to-client direction stops at its backpressure bound. Before the fix a
        # stalled direction held its queued bytes in the worker's shared pool (256 x 16 KiB
        # buffers), so ~32 of them emptied it and every other tunnel on the worker stopped. A
        # fresh tunnel must still echo, and the stalled tunnels' memory stays bounded.
        flood = start_raw_ws_backend(self, "flood", name="flood", size=1 << 40)
        p = self.start_portico(make_config(
            routes=[{"path": "/ws/", "upstream": "flood", "websocket": {"mode": "tunnel"}},
                    {"path": "/app/", "upstream": "app", "websocket": {"mode": "tunnel"}}],
            upstreams={"flood": {"servers": [flood.address]}, "app": {"servers": [self.backend.address]}},
            io_uring="on", workers=1), env=LEAN_ASAN_ENV)
        warm = self.ws_connect(p.port, "/app/warm")
        warm.send_frame(OP_TEXT, b"w")
        self.assertEqual(warm.recv_text(), "w")
        rss_before = rss_kib(p.pid)
        stalled = [ws_client.WsConnection.connect(p.port, "/ws/stall%d" % i, rcvbuf=4096) for i in range(40)]
        # The floods stop when every relay stopped reading (its bound reached).
        last, deadline = -1, time.monotonic() + 30 * slow_factor()
        while flood.ws_sent != last and time.monotonic() < deadline:
            last = flood.ws_sent
            time.sleep(0.5)
        fresh = self.ws_connect(p.port, "/app/fresh")
        fresh.send_frame(OP_TEXT, b"still moving")
        # Before the fix the echo never came (the stalled directions held the pool's buffers
        # for good), so its arrival is the check; no bound on how fast, which a loaded machine
        # cannot promise.
        self.assertEqual(fresh.recv_text(5 * slow_factor()), "still moving", "stalled tunnels held up a fresh one")
        growth = rss_kib(p.pid) - rss_before
        # 40 directions x (the 128 KiB bound + a receive's 16 KiB), the 4 MiB pool becoming
        # resident, allocator slack. Under AddressSanitizer its allocator's redzones may double
        # the live figure and its (lean) quarantine holds freed chains on top; an unbounded
        # relay still grows far past that (the floods are endless).
        bound = 40 * 144 + 4096 + 4096
        if p.uses_asan():
            bound = 2 * bound + quarantine_slack_kb(p)
        self.assertLess(growth, bound, "stalled tunnels grew memory past their bounds")
        for ws in stalled:
            ws.abort()

    def test_on_is_refused_where_the_kernel_refuses_a_ring(self):
        # io_uring_setup refused (EPERM) by a seccomp filter, as a container profile does.
        d = self.tmpdir()
        for mode in ("on", "auto"):
            path = os.path.join(d, "%s.yaml" % mode)
            with open(path, "w") as f:
                f.write(to_yaml(ws_proxy_config(self.backend.address, io_uring=mode, workers=1,
                                                listeners=["127.0.0.1:%d" % free_port()])) + "\n")
            proc = subprocess.Popen([portico_bin(), "-c", path], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=uring_probe.deny_io_uring)
            if mode == "on":
                _, err = proc.communicate(timeout=20 * slow_factor())
                self.assertNotEqual(proc.returncode, 0, "io_uring: on started without a ring")
                self.assertIn("io_uring: on, but this process cannot make a ring: io_uring_setup: "
                              "Operation not permitted", err)
                continue
            # auto: starts on epoll and says so once per worker.
            try:
                line = ""
                deadline = time.monotonic() + 10 * slow_factor()
                while "io_uring" not in line and time.monotonic() < deadline:
                    line = proc.stderr.readline()  # the worker's line may follow "started"
                self.assertIn("io_uring unavailable, tunnels on epoll", line)
            finally:
                proc.terminate()
                proc.communicate(timeout=20)

    def test_on_fails_the_start_when_a_workers_ring_does_not_fit(self):
        # The probe ring on the main thread fitted, but a worker's own (its ring and eventfd) did
        # not: it started on epoll with a warning. Under `on` every limit either starts with each
        # worker on io_uring or exits 1 with Portico's message.
        import resource
        d = self.tmpdir()
        path = os.path.join(d, "on.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(ws_proxy_config(self.backend.address, io_uring="on", workers=4,
                                            listeners=["127.0.0.1:%d" % free_port()])) + "\n")
        outcomes = {}
        for n in range(16, 80):
            def limit(n=n):
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
            proc = subprocess.Popen([portico_bin(), "-c", path], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=limit)
            err = ""
            for line in proc.stderr:  # up to "started" (workers report their ring before it), or the exit
                err += line
                if "started with" in line:
                    proc.terminate()
            proc.wait(timeout=20 * slow_factor())
            started = "started with" in err
            outcomes[n] = (started, proc.returncode, err)
            with self.subTest(nofile=n):
                self.assertNotIn("tunnels on epoll", err)
                if started:
                    self.assertEqual(err.count("plaintext WebSocket tunnels on io_uring"), 4, err[-800:])
                else:
                    self.assertEqual(proc.returncode, 1, err[-800:])
                    self.assertIn("[error]", err)
            if started:
                break
        self.assertTrue(any(started for started, _, _ in outcomes.values()), "no limit started: raise the range")
        self.assertFalse(outcomes[16][0], "the lowest limit started: lower the range")


if __name__ == "__main__":
    main()
