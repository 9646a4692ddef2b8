# SPDX-License-Identifier: Apache-2.0
"""limits.max_connections is one count for the whole process (net::ConnectionBudget), exact
whatever the number of workers."""

import socket
import time

from portico_harness import make_config, main, slow_factor
from test_ops_reload import ReloadBase

ROUTES = [{"path": "/", "handler": "health"}]
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def answered(sock, timeout):
    """True when a response arrives on `sock` within timeout seconds (False on EOF or reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class ConnectionLimit(ReloadBase):

    def connect(self, port, host="127.0.0.1"):
        s = socket.create_connection((host, port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(REQUEST)
        return s

    def served_count(self, socks, timeout):
        deadline = time.monotonic() + timeout * slow_factor()
        served = []
        for s in socks:
            if answered(s, max(0.05, deadline - time.monotonic())):
                served.append(s)
        return served

    def test_a_limit_below_the_worker_count_is_exact(self):
        # 4 workers, 2 connections: SO_REUSEPORT spreads 12 connections over every worker; each
        # worker used to admit at least one (4 served).
        p = self.start_portico(self.base_config(ROUTES, workers=4, limits={"max_connections": 2}))
        socks = [self.connect(p.port) for _ in range(12)]
        served = self.served_count(socks, 1.5)
        self.assertEqual(len(served), 2, "max_connections 2 with 4 workers admitted %d" % len(served))
        # A place that comes free is taken by a waiting connection, whichever worker's socket
        # it waits on (the workers that stopped accepting are woken).
        waiting = [s for s in socks if s not in served]
        served[0].close()
        more = self.served_count(waiting, 3)
        self.assertEqual(len(more), 1, "one place came free, %d were served" % len(more))

    def test_the_limit_is_exact_with_as_many_workers_as_connections(self):
        p = self.start_portico(self.base_config(ROUTES, workers=2, limits={"max_connections": 3}))
        socks = [self.connect(p.port) for _ in range(10)]
        self.assertEqual(len(self.served_count(socks, 1.5)), 3)


if __name__ == "__main__":
    main()
