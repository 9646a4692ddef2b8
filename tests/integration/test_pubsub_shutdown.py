# SPDX-License-Identifier: Apache-2.0
"""Stop and reload while messages cross between workers (docs/threading.md): two workers,
subscribers on both, WebSocket subscribers publishing as fast as they can (client_publish) and
an HTTP publisher, so every worker posts into the other's inbox (LocalBackplane) while its
loop stops and its hub, backplane and inbox are destroyed. Subscribers that never read keep
their worker busy until shutdown_timeout, so workers stop at different times. Each round a
reload (SIGHUP) and a stop (SIGTERM) under the flood: Portico exits 0, without a crash and
without a sanitizer report (run it on the build-asan binary to see a use-after-free)."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import main, make_config  # noqa: E402
from pubsub_client import PubSubNode  # noqa: E402
from ws_peers import WsTestCase, wait_for  # noqa: E402

ROUNDS = 6


def config():
    return make_config(workers=2, shutdown_timeout="500ms", routes=[
        {"path": "/live/", "handler": "pubsub", "websocket": {"ping_interval": 0},
         # queue_bytes: the subscribers that never read stay until the stop.
         "pubsub": {"history": 50, "publish_rate": "off", "client_publish": True, "queue_bytes": "256MiB"}}])


class Flood:
    """Subscribers of `channel` on `node`: `publishers` publish over their WebSocket as fast as
    they can, `readers` read, `idle` never read; plus one HTTP publisher. `received` counts
    the bytes the readers got."""

    def __init__(self, node, channel, publishers=4, readers=4, idle=2):
        self.node, self.channel = node, channel
        self.received = 0
        self.lock = threading.Lock()
        self.threads = []
        # Opened before any thread starts: each new connection goes to either worker
        # (SO_REUSEPORT), so both have subscribers.
        # portico.pubsub.v1: a reader that falls behind the history (50) is told history_lost
        # and goes on, where a bare one would be closed 4410.
        self.sockets = [node.subscribe(channel, json_frames=True, timeout=10)
                        for _ in range(publishers + readers + idle)]
        self.publishers = self.sockets[:publishers]
        self.readers = self.sockets[:publishers + readers]  # a publisher reads what others publish
        # The idle ones never read: their worker keeps them (queued frames, no Close answer)
        # until shutdown_timeout, while the other worker may be gone already.

    def start(self):
        for ws in self.publishers:
            self._start(self._publish_ws, ws)
        for ws in self.readers:
            self._start(self._read, ws)
        self._start(self._publish_http)

    def _start(self, target, *args):
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _publish_ws(self, ws):
        i = 0
        try:
            while True:
                ws.send_text("w%d" % i)
                i += 1
        except OSError:
            return

    def _publish_http(self):
        i = 0
        while True:
            try:
                self.node.publish(self.channel, b"h%d" % i, timeout=5)
            except Exception:  # refused or cut by the stop: the round is over
                return
            i += 1

    def _read(self, ws):
        # Bytes, not frames: a sender's thread shares the connection.
        while True:
            try:
                data = ws.sock.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.received += len(data)

    def close(self):
        for ws in self.sockets:
            try:
                ws.sock.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(10)


class PubSubShutdown(WsTestCase):
    test_timeout = 240

    def test_stop_and_reload_while_workers_publish_to_each_other(self):
        for round_ in range(ROUNDS):
            p = self.start_portico(config())
            node = PubSubNode(p.port)
            flood = Flood(node, "storm")
            self.addCleanup(flood.close)
            self.assertTrue(wait_for(lambda: node.info("storm")["subscribers"] == 10, timeout=10))
            flood.start()
            self.assertTrue(wait_for(lambda: flood.received > 20000, timeout=15), "no messages flowed")
            if round_ % 2 == 0:
                p.send_signal(signal.SIGHUP)
                self.assertIsNotNone(p.wait_stderr(lambda l: "configuration reloaded" in l, timeout=10))
                before = flood.received
                self.assertTrue(wait_for(lambda: flood.received > before + 20000, timeout=15),
                                "no messages flowed after the reload")
            # Stopped with messages still crossing; a few milliseconds further every round.
            time.sleep(0.005 * round_)
            p.send_signal(signal.SIGTERM)
            rc = p.wait(30)
            flood.close()
            err = "\n".join(p.stderr_lines()[-40:])
            self.assertEqual(rc, 0, "round %d: portico exited with %r:\n%s" % (round_, rc, err))
            self.assertNotIn("Sanitizer", err)
            self.assertNotIn("runtime error", err)


if __name__ == "__main__":
    main()
