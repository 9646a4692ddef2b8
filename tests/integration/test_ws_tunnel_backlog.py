# SPDX-License-Identifier: Apache-2.0
"""A tunnel's end while bytes are queued in it: the client reads nothing while the upstream
pours bytes in, until Portico holds its bound for the client and stops reading the upstream.
Then the tunnel ends:
  - by its own end (websocket.max_lifetime, reload_drain_timeout): every byte Portico took from
    the upstream reaches the client, in order, then a FIN (the session's graceful end flushes);
  - by a stop (SIGTERM): the process exits at once, cleanly (no leak under ASan), and the
    client gets an in-order prefix of the bytes, then a FIN;
  - by a reset from either peer: the other peer gets a reset (the bytes queued for a reset
    client are dropped with it), and the worker keeps no descriptor of the tunnel.
The same file runs with `io_uring: on` (test_ws_tunnel_backlog_uring), where the relay's queue
is its own heap chunks instead of evbuffers: the outcomes must be the epoll tunnel's."""

import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

import ws_client  # noqa: E402
from portico_harness import main, slow_factor  # noqa: E402
from ws_peers import (WsTestCase, held_sockets, start_upgraded_backend, tcp_queues,  # noqa: E402
                      wait_for, ws_proxy_config)

PATTERN = bytes(i % 251 for i in range(1 << 20))  # a byte's value says where it is (mod 251)


def pattern_at(offset, n):
    start = offset % 251
    return PATTERN[start:start + n]


def start_pouring_backend(testcase):
    """An upstream that answers the upgrade, then writes the pattern (non-blocking) until nothing
    more is taken for a while (b.settled set, b.sent the bytes written). Then it resets the
    connection when b.reset_now is set, or reads until its end (b.end_kind "eof", "reset"; b.ended
    set at either)."""
    settled, reset_now = threading.Event(), threading.Event()

    def serve(b, conn, sock):
        b.ports = (sock.getsockname()[1], sock.getpeername()[1])  # (the backend's, Portico's)
        sock.setblocking(False)
        idle_rounds = 0
        while idle_rounds < 5:  # 0.5 s without a byte taken: Portico stopped reading
            took = 0
            while True:
                try:
                    n = sock.send(pattern_at(b.sent, 65536))
                except BlockingIOError:
                    break
                b.sent += n
                took += n
            idle_rounds = 0 if took else idle_rounds + 1
            time.sleep(0.1)
        settled.set()
        while True:
            if reset_now.is_set():
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return "reset sent"
            try:
                if not sock.recv(65536):
                    return "eof"
            except BlockingIOError:
                time.sleep(0.01)

    b = start_upgraded_backend(testcase, serve, name="pour")
    b.settled, b.reset_now, b.sent = settled, reset_now, 0
    testcase.addCleanup(reset_now.set)
    return b


def read_to_end(ws, timeout):
    """Everything the client connection delivers (what came with the 101 first), then how it
    ended: "eof", "reset" or "timeout"."""
    got, sock = bytearray(ws.buf), ws.sock
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return bytes(got), "eof"
            got += data
    except ConnectionResetError:
        return bytes(got), "reset"
    except socket.timeout:
        return bytes(got), "timeout"


class TunnelBacklog(WsTestCase):
    test_timeout = 120

    def open_backlog(self, websocket=None, **kw):
        """Portico with one tunnel whose client reads nothing and whose upstream poured until
        Portico stopped reading it. Returns (backend, portico, client connection, bytes Portico
        took from the upstream)."""
        b = start_pouring_backend(self)
        p = self.start_portico(ws_proxy_config(b.address, websocket=websocket, workers=1, **kw))
        ws = ws_client.WsConnection.connect(p.port, "/ws/backlog", rcvbuf=4096, timeout=10 * slow_factor())
        self.addCleanup(ws.close)
        self.assertTrue(b.settled.wait(30 * slow_factor()), "the upstream never stopped pouring")
        backend_port, portico_port = b.ports

        def taken_so_far():
            # What Portico did not take: the backend's unsent bytes and Portico's unread ones.
            unsent, _ = tcp_queues(backend_port, portico_port)
            _, unread = tcp_queues(portico_port, backend_port)
            return b.sent - unsent - unread

        # Settled: the same twice in a row (a loaded machine may pause Portico for a while).
        taken, deadline = taken_so_far(), time.monotonic() + 30 * slow_factor()
        while time.monotonic() < deadline:
            time.sleep(0.3 * slow_factor())
            now = taken_so_far()
            if now == taken:
                break
            taken = now
        self.tunnel_sockets = [(p.port, ws.sock.getsockname()[1]), (portico_port, backend_port)]
        # The bound (128 KiB and a read's worth) is queued in Portico itself, not only in the
        # sockets towards the client (its send queue, the client's receive queue), which alone
        # would make `taken` large without any backlog for the end to flush.
        client_port = ws.sock.getsockname()[1]
        unacked, _ = tcp_queues(p.port, client_port) or (0, 0)
        _, unread = tcp_queues(client_port, p.port) or (0, 0)
        in_portico = taken - unacked - unread
        self.assertGreater(in_portico, 64 * 1024,
                           "Portico holds %d of the %d bytes it took: no backlog" % (in_portico, taken))
        return b, p, ws, taken

    def check_prefix(self, got):
        for offset in range(0, len(got), 65536):
            piece = got[offset:offset + 65536]
            self.assertEqual(piece, pattern_at(offset, len(piece)), "the bytes at %d are wrong" % offset)

    def check_flushed_at_the_end(self, b, ws, taken):
        """The session ended (the upstream got its FIN): the client, reading now, gets every
        byte Portico took, then its FIN."""
        self.assertTrue(b.ended.wait(15 * slow_factor()), "the tunnel did not end")
        self.assertEqual(b.end_kind, "eof")
        got, end = read_to_end(ws, 10 * slow_factor())
        self.assertEqual(end, "eof")
        self.check_prefix(got)
        self.assertEqual(len(got), taken, "the bytes queued at the end were not all sent")

    def test_max_lifetime_flushes_the_backlog_then_closes(self):
        b, p, ws, taken = self.open_backlog(websocket={"max_lifetime": "%dms" % (4000 * slow_factor())})
        self.check_flushed_at_the_end(b, ws, taken)
        self.check_no_descriptor_left(p)

    def test_reload_drain_flushes_the_backlog_then_closes(self):
        b, p, ws, taken = self.open_backlog(reload_drain_timeout="300ms")
        start = len(p.stderr_lines())
        p.send_signal(signal.SIGHUP)  # the same file: a new generation all the same
        self.assertIsNotNone(p.wait_stderr(lambda line: "configuration reloaded" in line, timeout=10, start=start))
        self.check_flushed_at_the_end(b, ws, taken)
        self.check_no_descriptor_left(p)

    def test_a_stop_exits_at_once_and_the_client_gets_a_clean_end(self):
        b, p, ws, taken = self.open_backlog()
        started = time.monotonic()
        self.assertEqual(p.stop(timeout=15), 0)
        self.assertLess(time.monotonic() - started, 5 * slow_factor(), "the stop waited on the backlog")
        got, end = read_to_end(ws, 10 * slow_factor())
        self.assertEqual(end, "eof")
        self.check_prefix(got)
        self.assertLessEqual(len(got), taken)
        self.assertTrue(b.ended.wait(5 * slow_factor()))
        self.assertEqual(b.end_kind, "eof")

    def test_a_client_reset_resets_the_upstream(self):
        b, p, ws, taken = self.open_backlog()
        ws.abort()
        self.assertTrue(b.ended.wait(10 * slow_factor()), "the upstream connection stayed open")
        self.assertEqual(b.end_kind, "reset")
        self.check_no_descriptor_left(p)

    def test_an_upstream_reset_resets_the_client(self):
        b, p, ws, taken = self.open_backlog()
        b.reset_now.set()
        self.assertTrue(b.ended.wait(5))
        time.sleep(0.3)  # the reset arrived while Portico was not reading the upstream
        got, end = read_to_end(ws, 10 * slow_factor())
        self.assertEqual(end, "reset", "%d bytes then %s" % (len(got), end))
        self.check_prefix(got)
        self.check_no_descriptor_left(p)

    def check_no_descriptor_left(self, p):
        ok = wait_for(lambda: not held_sockets(self.tunnel_sockets), timeout=10 * slow_factor())
        self.assertTrue(ok, "Portico still holds %r" % held_sockets(self.tunnel_sockets))


if __name__ == "__main__":
    main()
