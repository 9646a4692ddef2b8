# SPDX-License-Identifier: Apache-2.0
"""A peer that closes while Portico holds its bytes back (reading paused: the other side takes
nothing). The FIN is noticed while paused (net::Stream's paused watch): the bytes sent before it
are still delivered while the other side reads, and when the other side takes nothing the
session ends within ws::StalledDelivery::kStall (2 s), not at websocket.idle_timeout.

The client sends until Portico stops reading it: its socket then holds bytes Portico has not
read (the Recv-Q of Portico's socket, read from /proc/net/tcp), and the client's own send queue
is empty (SIOCOUTQ), so its FIN arrives right behind them."""

import fcntl
import os
import socket
import struct
import sys
import termios
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

import ws_client  # noqa: E402
from h2_client import H2Client, client_frame  # noqa: E402
from portico_harness import main, make_config, slow_factor  # noqa: E402
from ws_peers import (WsTestCase, start_upgraded_backend, tcp_queues, wait_for,  # noqa: E402
                      ws_proxy_config)

IDLE_TIMEOUT = 30  # seconds: far beyond what the tests wait for


def start_held_backend(testcase):
    """An upstream that answers the upgrade and reads nothing until b.start_reading is set;
    then it reads to EOF (b.received counts the bytes, b.ended is set at the EOF)."""
    start_reading = threading.Event()

    def serve(b, conn, sock):
        b.received += len(bytes(getattr(conn, "rbuf", b"")))
        start_reading.wait(60)
        sock.settimeout(60)
        while True:
            data = sock.recv(65536)
            if not data:
                return "eof"
            b.received += len(data)
            time.sleep(0.002)  # a slow reader: the last bytes take a while

    # A fixed receive buffer (no autotuning, which goes up to tcp_rmem's 32 MiB here): Portico's
    # output to it fills soon, and it still reads fast once it reads.
    b = start_upgraded_backend(testcase, serve, name="held", rcvbuf=1 << 20)
    b.start_reading = start_reading
    b.received = 0
    testcase.addCleanup(start_reading.set)
    return b


def recv_queue(local_port, remote_port):
    """The Recv-Q of the IPv4 socket local_port <-> remote_port (Portico's side), or None."""
    queues = tcp_queues(local_port, remote_port)
    return queues[1] if queues else None


def unsent(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


class PausedFin(WsTestCase):
    test_timeout = 120

    def open_tunnel(self, mode="tunnel"):
        b = start_held_backend(self)
        ws = {"idle_timeout": "%ds" % IDLE_TIMEOUT}
        p = self.start_portico(ws_proxy_config(b.address, mode=mode, websocket=ws))
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        self.addCleanup(s.close)
        key = ws_client.make_key()
        s.sendall(("GET /ws/x HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n"
                   % key).encode("latin-1"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            self.assertTrue(chunk, "no 101")
            head += chunk
        self.assertIn(b" 101 ", head.split(b"\r\n")[0])
        return b, p, s

    def fill_until_paused(self, p, s, piece):
        """Sends `piece` until Portico stops reading: returns the bytes sent. Each piece is
        acknowledged (the client's send queue empty) before the next: when Portico's socket
        keeps holding unread bytes, its reading is paused and the FIN will arrive behind them."""
        sent = 0
        local_port = s.getsockname()[1]
        deadline = time.monotonic() + 60 * slow_factor()
        while time.monotonic() < deadline:
            s.sendall(piece)
            sent += len(piece)
            if not wait_for(lambda: unsent(s) == 0, timeout=5):
                self.fail("Portico's receive window closed before its pause was seen")
            held = recv_queue(p.port, local_port)
            # Held for 0.3 s, not a read under way. Portico reading it ends the wait at once: a
            # fixed 0.3 s for each piece that Portico had not read yet made the test take 127 s on
            # a loaded machine (about 95 pieces each, a third to all of them waited).
            if held and not wait_for(lambda: recv_queue(p.port, local_port) != held, timeout=0.3):
                return sent
        self.fail("Portico never paused reading the client")

    def check_fin_noticed(self, mode):
        b, p, s = self.open_tunnel(mode)
        piece = ws_client.build_frame(ws_client.OP_BINARY, b"x" * 65000, mask=True) if mode == "frames" \
            else b"x" * 65536
        self.fill_until_paused(p, s, piece)
        s.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        s.settimeout(10 * slow_factor())  # beyond the bound below: a timeout is not a pass
        try:
            while s.recv(65536):
                pass
        except socket.timeout:
            self.fail("the tunnel was still open %.0f s after the client left" % (10 * slow_factor()))
        except OSError:
            pass
        waited = time.monotonic() - started
        # kStall is 2 s (checked every 2 s: at most 4 s), far below idle_timeout.
        self.assertLess(waited, 8 * slow_factor(), "the tunnel was held %.1f s after the client left" % waited)
        lines = p.access_log(count=1)
        self.assertTrue(lines, "no access line for the session")

    def test_tunnel_ends_when_the_upstream_takes_nothing(self):
        self.check_fin_noticed("tunnel")

    def test_frames_relay_ends_when_the_upstream_takes_nothing(self):
        self.check_fin_noticed("frames")

    def test_tunnel_delivers_the_bytes_before_the_fin(self):
        """The upstream starts reading after the client's FIN: it gets every byte, then EOF."""
        b, p, s = self.open_tunnel()
        sent = self.fill_until_paused(p, s, b"y" * 65536)
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.5)  # the FIN is noticed while paused: nothing may be dropped for it
        b.start_reading.set()
        self.assertTrue(b.ended.wait(30 * slow_factor()), "the upstream never saw the end")
        self.assertEqual(b.end_kind, "eof")
        self.assertEqual(b.received, sent)
        s.settimeout(10)
        self.assertEqual(s.recv(10), b"", "the client side was not closed after the relay")

    def test_an_http2_stream_ends_when_the_upstream_takes_nothing(self):
        """RFC 8441: a client's END_STREAM while the session holds its DATA back (no window given
        back) ends the session as a socket's FIN does (http2::StreamBytes tells it at once)."""
        b = start_held_backend(self)
        p = self.start_portico(make_config(
            routes=[{"path": "/ws/", "upstream": "app", "websocket": {"idle_timeout": "%ds" % IDLE_TIMEOUT}}],
            upstreams={"app": {"servers": [b.address]}},
            listeners=[{"address": "127.0.0.1:0", "http2": True}], workers=1))
        c = H2Client(p.port, validate=False)
        self.addCleanup(c.close)
        c.pump(0.3)
        c.conn.increment_flow_control_window(1 << 30)
        c.flush()
        sid = c.request("CONNECT", "/ws/x", headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
                        end=False)
        c.wait(lambda: c.responses[sid]["headers"] is not None or c.done(sid), 10)
        self.assertEqual(c.status(sid), 200)
        _, held = c.send_until_held(sid, client_frame(2, b"h" * 16000), 60 * slow_factor())
        self.assertTrue(held, "the session never paused reading the stream")
        c.conn.end_stream(sid)
        c.flush()
        started = time.monotonic()
        c.wait(lambda: c.done(sid), 15)
        waited = time.monotonic() - started
        self.assertTrue(c.done(sid), "the stream was not ended")
        self.assertLess(waited, 8 * slow_factor(), "the session was held %.1f s after END_STREAM" % waited)


if __name__ == "__main__":
    main()
