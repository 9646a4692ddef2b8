# SPDX-License-Identifier: Apache-2.0
"""What the Redis backplane tests share: a node's configuration, a test case that starts Portico
nodes against a Redis (one server or a cluster) and reads their health, metrics and channel info,
and the check that a subscriber's sequence has no silent gap."""

import threading
import time

from http_client import http_request
from portico_harness import make_config, slow_factor
from pubsub_client import PubSubNode, recv_json
from ws_peers import WsTestCase, wait_for

PREFIX = "ptest"


def node_config(redis_url, workers=2, client_publish=False, extra_routes=(), backplane=None, **pubsub):
    """`backplane`: settings of pubsub.backplane over the tests' own; `pubsub`: the route's."""
    settings = {"history": 1000, "publish_rate": "off", "client_publish": client_publish}
    settings.update(pubsub)
    plane = {"redis": redis_url, "key_prefix": PREFIX, "connect_timeout": "1s", "publish_timeout": "1s"}
    plane.update(backplane or {})
    return make_config(
        workers=workers,
        pubsub={"backplane": plane},
        routes=list(extra_routes) + [
            {"path": "/live/", "handler": "pubsub", "pubsub": settings, "websocket": {"ping_interval": 0}},
            {"path": "/health", "handler": "health"},
            {"path": "/status", "handler": "status"},
            {"path": "/metrics", "handler": "metrics"}])


def redis_key(channel, suffix=""):
    """The Redis name of a /live/ channel's key (suffix ":meta", ":stream") or pub/sub channel."""
    return PREFIX + ":{/live/\n" + channel + "}" + suffix


class ContinuousPublisher:
    """A thread that POSTs b"p<i>" every 5 ms, to target(i) -> (node, channel), until stop();
    `accepted` holds the seq of each publish answered 200 (a 503 is simply not counted)."""

    def __init__(self, target):
        self.target, self.accepted = target, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        i = 0
        while not self._stop.is_set():
            node, channel = self.target(i)
            try:
                r = node.publish(channel, b"p%d" % i, timeout=5)
            except OSError:
                return  # the test is over (failed) and its nodes are gone
            if r.status == 200:
                self.accepted.append(r.json()["seq"])
            i += 1
            time.sleep(0.005)

    def stop(self):
        self._stop.set()
        self._thread.join(10)


class BackplaneCase(WsTestCase):
    test_timeout = 120

    def start_nodes(self, redis, n, url=None, **pubsub):
        nodes = []
        for _ in range(n):
            p = self.start_portico(node_config(url or redis.url, **pubsub))
            node = PubSubNode(p.port)
            node.process = p
            nodes.append(node)
        for node in nodes:
            self.wait_up(node)
        return nodes

    def wait_up(self, node, timeout=10):
        self.assertTrue(wait_for(lambda: self.health(node) == "ok\nbackplane: up\n", timeout=timeout),
                        self.health(node))

    def health(self, node):
        r = http_request(node.port, "GET", "/health")
        self.assertEqual(r.status, 200)
        return r.body.decode()

    def metric(self, node, name):
        for line in http_request(node.port, "GET", "/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def subscribed(self, node, channel, n):
        # Counted as soon as the subscription is asked for; Redis confirms it a little later,
        # so the tests' subscribers use ?since=0 (everything kept) and miss nothing meanwhile.
        self.assertTrue(wait_for(lambda: node.info(channel)["subscribers"] == n, timeout=10))

    def read_to(self, ws, final, timeout=10, after=0):
        """A portico.pubsub.v1 subscriber's messages up to (epoch, seq) `final`; asserts that
        within an epoch every seq follows the one before, a jump only right after an explicit
        history_lost; `after`: the seq read last. Returns (data of each message, number of
        history_lost). `timeout` (per message) is scaled by slow_factor()."""
        data, lost, prev, last = [], 0, after, None
        timeout *= slow_factor()  # a wait for what Redis and a slot move bring, not a timing claim
        while last != final:
            m = recv_json(ws, timeout=timeout)
            last = (m["epoch"], m["seq"])
            if m.get("type") == "history_lost":
                lost += 1
                prev = m["seq"]
                continue
            self.assertEqual(m["seq"], prev + 1, "a silent gap or a duplicate after %r" % data[-20:])
            prev = m["seq"]
            data.append(m["data"])
        return data, lost
