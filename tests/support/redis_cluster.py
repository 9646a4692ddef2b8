# SPDX-License-Identifier: Apache-2.0
"""A real Redis Cluster for tests: N masters (no replicas) on 127.0.0.1, each a RedisServer with
cluster mode on, joined by `redis-cli --cluster create`; a node can be restarted on its port with
its nodes.conf (the same node id and slots)."""

import random
import shutil
import socket
import subprocess
import time

from backends import spans_outside_ephemeral_range
from redis_server import RedisServer

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cluster_ports(n):
    """n ports whose cluster bus ports (port + 10000) are free too, both outside the ephemeral
    range: a node restarted on its port (restart()) finds it free, not taken meanwhile as the
    local port of some connect() (Portico's to the other nodes, the nodes' own bus links)."""
    spans = spans_outside_ephemeral_range(reach=10000)
    if not spans:
        raise RuntimeError("no ports outside the ephemeral range for a Redis Cluster")
    ports = []
    while len(ports) < n:
        r0, r1 = random.choice(spans)
        p = random.randrange(r0, r1)
        if p not in ports and _free(p) and _free(p + 10000):
            ports.append(p)
    return ports


class RedisCluster:
    """`persistent`: each master keeps its data over a restart (append-only file);
    `full_coverage`: Redis's cluster-require-full-coverage (no: the other masters keep serving
    while one is down)."""

    def __init__(self, masters=3, node_timeout_ms=2000, persistent=False, full_coverage=True):
        args = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(node_timeout_ms),
                "--cluster-require-full-coverage", "yes" if full_coverage else "no"]
        self.nodes = [RedisServer(port=p, persistent=persistent, extra_args=args) for p in cluster_ports(masters)]

    @property
    def url(self):
        return self.nodes[0].url

    def start(self, timeout=30.0):
        for n in self.nodes:
            n.start()
        subprocess.run([REDIS_CLI, "--cluster", "create"] + ["127.0.0.1:%d" % n.port for n in self.nodes] +
                       ["--cluster-replicas", "0", "--cluster-yes"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout)
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout=30.0):
        """Until every node says cluster_state:ok and knows every master (every one of them up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all("cluster_state:ok" in n.command("CLUSTER", "INFO") and
                       len(n.command("CLUSTER", "SLOTS")) >= len(self.nodes) for n in self.nodes):
                    return
            except (OSError, RuntimeError):
                pass
            time.sleep(0.1)
        raise RuntimeError("the cluster did not come up")

    def node_of(self, key):
        """The node serving `key`'s slot."""
        slot = self.nodes[0].command("CLUSTER", "KEYSLOT", key)
        for start, end, master, *_ in self.nodes[0].command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return next(n for n in self.nodes if n.port == master[1])
        raise RuntimeError("no node serves slot %d" % slot)

    def restart(self, node):
        node.kill()
        node.start()

    def cleanup(self):
        for n in self.nodes:
            n.cleanup()
