# SPDX-License-Identifier: Apache-2.0
"""limits.max_connections is one count for the whole process (net::ConnectionBudget), exact
whatever the number of workers; and a listener a reload removes or moves to another address
serves the connections the kernel had queued on its socket, within that limit, instead of
resetting them as its socket closes.

Connections wait in a listening socket's queue (completed by the kernel, not accepted) while
Portico is at max_connections: that is how these tests hold them there deterministically."""

import socket
import time

from backends import free_port
from portico_harness import make_config, main, slow_factor
from test_ops_reload import ReloadBase, sighup

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

    def test_a_moved_listener_serves_the_connections_queued_on_its_old_socket(self):
        port = free_port()

        def cfg(host, limit):
            return self.base_config(ROUTES, workers=1, listeners=["%s:%d" % (host, port)],
                                    limits={"max_connections": limit})
        p = self.start_portico(cfg("127.0.0.1", 1))
        held = self.connect(port)  # the one place: accepting pauses
        self.assertTrue(answered(held, 5 * slow_factor()))
        queued = [self.connect(port) for _ in range(3)]  # completed by the kernel, not accepted
        self.assertEqual(self.served_count(queued, 0.5), [], "served beyond max_connections")
        # 127.0.0.1:P -> 0.0.0.0:P with room for them: the old socket closes in the reload
        sighup(self, p, cfg("0.0.0.0", 10))
        served = self.served_count(queued, 5)
        self.assertEqual(len(served), 3, "connections queued on the old socket were reset by the move")
        self.assertTrue(answered(self.connect(port), 5 * slow_factor()), "the new socket does not serve")

    def test_a_removed_listener_serves_its_queue_within_the_limit(self):
        port, other = free_port(), free_port()

        def cfg(ports, limit):
            return self.base_config(ROUTES, workers=1, listeners=["127.0.0.1:%d" % x for x in ports],
                                    limits={"max_connections": limit})
        p = self.start_portico(cfg([other, port], 1), listeners=2)
        held = self.connect(other)
        self.assertTrue(answered(held, 5 * slow_factor()))
        queued = [self.connect(port) for _ in range(4)]
        # room for two more: two are served, the others are reset as the socket closes
        sighup(self, p, cfg([other], 3))
        served = self.served_count(queued, 3)
        self.assertEqual(len(served), 2)
        for s in queued:
            if s not in served:  # reset as the socket closed: not left hanging
                self.assertFalse(answered(s, 1), "a connection beyond the limit was served")


if __name__ == "__main__":
    main()
