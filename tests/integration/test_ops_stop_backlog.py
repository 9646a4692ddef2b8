# SPDX-License-Identifier: Apache-2.0
"""A graceful stop serves the connections waiting in the listen queues: the kernel completes a
client's handshake before Portico accepts it, so closing the listening sockets at once reset
every connection queued there. The stop accepts them first, answers their requests (HTTP/1.1 and
HTTP/2 with prior knowledge), then closes them and exits.

The queue is filled deterministically: Portico is SIGSTOPped, the clients connect and send
their requests (the kernel queues them), then SIGTERM and SIGCONT."""

import os
import signal
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from h2_client import H2Client  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, slow_factor  # noqa: E402

QUEUED = 24


def answer(sock, timeout):
    """What came back on `sock` until it closed: b"" on a reset or nothing at all."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except OSError:
        return b""


class StopServesTheListenQueue(PorticoTestCase):
    def test_connections_queued_at_sigterm_are_answered_not_reset(self):
        backend = self.start_backend(name="b")
        p = self.start_portico(make_config(
            routes=[{"path": "/healthz", "handler": "health"}, {"path": "/", "upstream": "app"}],
            upstreams={"app": {"servers": [backend.address]}},
            listeners=["127.0.0.1:0", {"address": "127.0.0.1:0", "http2": True}],
            workers=1, shutdown_timeout="10s"))
        h1_port, h2_port = p.addresses[0][1], p.addresses[1][1]
        os.kill(p.pid, signal.SIGSTOP)
        try:
            queued = []
            for i in range(QUEUED):
                s = socket.create_connection(("127.0.0.1", h1_port), timeout=5)
                self.addCleanup(s.close)
                path = "/healthz" if i % 2 else "/echo/%d" % i
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
                queued.append(s)
            h2 = H2Client(h2_port)
            self.addCleanup(h2.close)
            sid = h2.request(path="/echo/h2")
            os.kill(p.pid, signal.SIGTERM)
        finally:
            os.kill(p.pid, signal.SIGCONT)
        # Read to the end: each closes after its answer, none is kept by the stop.
        answers = [answer(s, 10 * slow_factor()) for s in queued]
        served = [a for a in answers if a.startswith(b"HTTP/1.1 200")]
        self.assertEqual(len(served), QUEUED, "%d of %d queued connections were reset or not answered"
                         % (QUEUED - len(served), QUEUED))
        r = h2.response(sid, 10 * slow_factor())
        self.assertTrue(r["ended"], "the HTTP/2 request queued at the stop was not answered: %r" % r)
        self.assertEqual(h2.status(sid), 200)
        self.assertEqual(p.wait(15), 0)


if __name__ == "__main__":
    main()
