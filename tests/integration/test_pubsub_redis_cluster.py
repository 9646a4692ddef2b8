# SPDX-License-Identifier: Apache-2.0
"""The Redis backplane against a real Redis Cluster (3 masters started by the test on
127.0.0.1): found at connect, sharded pub/sub (SSUBSCRIBE on the channel's master, SPUBLISH in
the publish script), the same seq across nodes for channels on every master, a slot moved to
another master (MOVED followed, the shard channel resubscribed, nothing lost), and a master
restarted under a continuous publisher: every subscriber ends with its full sequence or an
explicit history_lost, never a silent gap. Subscription churn on ever-new channels keeps the
node's memory bounded (hiredis 0.14 kept a callback per SSUBSCRIBE/SUNSUBSCRIBE)."""

import json
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import main, read_rss_kb, slow_factor  # noqa: E402
from pubsub_client import recv_json  # noqa: E402
from pubsub_redis_case import BackplaneCase, ContinuousPublisher, redis_key  # noqa: E402
from redis_cluster import RedisCluster  # noqa: E402
from ws_peers import wait_for  # noqa: E402


class RedisClusterBackplane(BackplaneCase):
    test_timeout = 180

    def start_cluster(self, **kw):
        cluster = RedisCluster(masters=3, **kw)
        self.addCleanup(cluster.cleanup)
        return cluster.start()

    def channel_per_master(self, cluster):
        """One channel name served by each master, in the order of cluster.nodes."""
        found = {}
        i = 0
        while len(found) < len(cluster.nodes):
            name = "room%d" % i
            found.setdefault(cluster.node_of(redis_key(name)).port, name)
            i += 1
        return [found[n.port] for n in cluster.nodes]

    def test_sharded_pubsub_on_every_master_same_seq_across_nodes(self):
        cluster = self.start_cluster()
        a, b = self.start_nodes(cluster, 2)
        channels = self.channel_per_master(cluster)
        subs = {c: a.subscribe(c, "?since=0", json_frames=True) for c in channels}
        for c in channels:
            self.subscribed(a, c, 1)
        for c in channels:
            answers = [b.publish(c, b"%s-%d" % (c.encode(), i)).json() for i in (1, 2)]
            self.assertEqual([x["seq"] for x in answers], [1, 2])
            got = [recv_json(subs[c]) for _ in range(2)]
            self.assertEqual([(m["seq"], m["epoch"], m["data"]) for m in got],
                             [(i, answers[0]["epoch"], "%s-%d" % (c, i)) for i in (1, 2)])
            self.assertEqual(a.info(c)["seq"], 2)
        for node, c in zip(cluster.nodes, channels):
            # The keys live on the channel's master, with TTLs; the subscription is a shard
            # channel there (SSUBSCRIBE), not a classic one.
            for suffix in (":meta", ":stream"):
                self.assertGreater(node.command("TTL", redis_key(c, suffix)), 0, (c, suffix))
            shard = node.command("PUBSUB", "SHARDNUMSUB", redis_key(c))
            self.assertGreaterEqual(shard[1], 1, shard)

    def migrate(self, cluster, channel, source, target, finish=True):
        """Moves `channel`'s slot from `source` to `target`, keys and all, as redis-cli --cluster
        reshard does; without `finish` the slot stays MIGRATING/IMPORTING (ASK)."""
        slot = source.command("CLUSTER", "KEYSLOT", redis_key(channel))
        source_id, target_id = source.command("CLUSTER", "MYID"), target.command("CLUSTER", "MYID")
        target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        keys = source.command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        self.assertEqual(len(keys), 2, keys)
        source.command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        if finish:
            self.finish_migration(cluster, slot, source, target)
        return slot

    def finish_migration(self, cluster, slot, source, target):
        target_id = target.command("CLUSTER", "MYID")
        for node in [target, source] + [n for n in cluster.nodes if n not in (source, target)]:  # redis-cli's order
            node.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        cluster.wait_ok()

    def one_subscriber_one_message(self):
        """A cluster, two nodes, a channel on the first master with a subscriber on node a that
        got seq 1 (published on node b). Returns (cluster, a, b, channel, ws, epoch)."""
        cluster = self.start_cluster()
        a, b = self.start_nodes(cluster, 2)
        channel = self.channel_per_master(cluster)[0]
        ws = a.subscribe(channel, "?since=0", json_frames=True)
        self.subscribed(a, channel, 1)
        epoch = b.publish(channel, b"before").json()["epoch"]
        self.assertEqual(recv_json(ws)["seq"], 1)
        return cluster, a, b, channel, ws, epoch

    def test_an_ask_during_a_migration_is_followed_then_the_slot_moves(self):
        cluster, a, b, channel, ws, epoch = self.one_subscriber_one_message()
        source, target = cluster.nodes[0], cluster.nodes[1]
        slot = self.migrate(cluster, channel, source, target, finish=False)
        # The keys are on the target, the slot still the source's: the source answers ASK, the
        # script runs on the target after ASKING, in the same epoch.
        answers = [node.publish(channel, b"during %d" % i).json() for i, node in enumerate((a, b))]
        self.assertEqual([(x["seq"], x["epoch"]) for x in answers], [(2, epoch), (3, epoch)])
        self.finish_migration(cluster, slot, source, target)
        # Shard messages published on the target did not reach the subscription on the source;
        # the slot's move resubscribes it there and history brings them, in order, once.
        self.assertEqual(b.publish(channel, b"after").json()["seq"], 4)
        data, lost = self.read_to(ws, (epoch, 4), timeout=15, after=1)
        self.assertEqual((data, lost), (["during 0", "during 1", "after"], 0))

    def test_a_moved_slot_is_followed_and_its_subscribers_miss_nothing(self):
        cluster, a, b, channel, ws, epoch = self.one_subscriber_one_message()
        source, target = cluster.nodes[0], cluster.nodes[1]
        self.migrate(cluster, channel, source, target)
        # Publishes through either node reach the new master (MOVED), in the same epoch; the
        # subscriber follows its shard channel there and gets every message once, in order.
        self.assertEqual(b.publish(channel, b"after").status, 200)
        for i in range(5):
            self.assertEqual(a.publish(channel, b"m%d" % i).status, 200)
        final = (epoch, a.info(channel)["seq"])
        data, lost = self.read_to(ws, final, timeout=15, after=1)
        self.assertEqual((data[0], data[-5:], lost), ("after", ["m%d" % i for i in range(5)], 0))
        self.assertEqual(target.command("PUBSUB", "SHARDNUMSUB", redis_key(channel))[1], 1)
        self.assertEqual(source.command("PUBSUB", "SHARDNUMSUB", redis_key(channel))[1], 0)
        self.assertEqual(self.metric(a, "portico_pubsub_backplane_reconnects_total"), 0,
                         "a moved slot is followed without reconnecting")

    def test_a_moved_slot_is_followed_while_the_first_master_holds_max_pending_bytes(self):
        # The slot map is read again (CLUSTER SLOTS) through the first master that is up. With
        # publishes unanswered there filling max_pending_bytes the CLUSTER SLOTS was refused,
        # and the flag saying a refresh was on its way stayed set for good: no MOVED read the
        # map again, and the moved channel's subscriber got nothing more.
        cluster = self.start_cluster()
        (a,) = self.start_nodes(cluster, 1, workers=1, backplane={"max_pending_bytes": 600})
        seed = cluster.nodes[0]
        first = next(n for n in cluster.nodes if n.port == seed.command("CLUSTER", "SLOTS")[0][2][1])
        source, target = [n for n in cluster.nodes if n is not first]
        channels = dict(zip([n.port for n in cluster.nodes], self.channel_per_master(cluster)))
        channel, stalled = channels[source.port], channels[first.port]
        # Refused while the SCRIPT LOADs of the login are unanswered (they count in the budget).
        self.assertTrue(wait_for(lambda: a.publish(channel, b"before").status == 200, timeout=5))
        ws = a.subscribe(channel, "?since=0", json_frames=True)
        self.addCleanup(ws.close)
        # Replayed once Redis confirmed the subscription (info, polled by subscribed(), would
        # find the budget taken by the replay).
        first_message = recv_json(ws)
        epoch = first_message["epoch"]
        self.assertEqual((first_message["seq"], first_message["data"]), (1, "before"))
        # Writes wait on the first master for 2 s: one publish (~500 bytes) stays unanswered.
        self.assertEqual(first.command("CLIENT", "PAUSE", 2000, "WRITE"), "OK")
        self.assertEqual(a.publish(stalled, b"x" * 200, timeout=5).status, 503)  # publish_timeout: 1 s
        slot = self.migrate(cluster, channel, source, target, finish=False)
        # The first master learns the slot's new owner before the source drops the subscription
        # (and the backplane reads the map through the first master).
        target_id = target.command("CLUSTER", "MYID")
        for node in (target, first, source):
            node.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        cluster.wait_ok()
        time.sleep(1.5)  # the pause over
        # A publish beside the catch-up's replay on the target is refused at once (not stored).
        seqs = []
        for i in range(3):
            self.assertTrue(wait_for(lambda: self.published(a, channel, b"m%d" % i, seqs), timeout=5))
        data, lost = self.read_to(ws, (epoch, seqs[-1]), timeout=10, after=1)
        self.assertEqual((data, lost), (["m0", "m1", "m2"], 0))

    @staticmethod
    def published(node, channel, body, seqs):
        r = node.publish(channel, body)
        if r.status == 200:
            seqs.append(r.json()["seq"])
        return r.status == 200

    def test_a_master_restarted_under_load_every_subscriber_full_sequence_or_history_lost(self):
        cluster = self.start_cluster()
        nodes = self.start_nodes(cluster, 2)
        channels = self.channel_per_master(cluster)
        subs = [(c, n.subscribe(c, "?since=0", json_frames=True)) for n in nodes for c in channels]
        for n in nodes:
            for c in channels:
                self.subscribed(n, c, 1)
        publisher = ContinuousPublisher(lambda i: (nodes[i % 2], channels[i % 3]))
        time.sleep(0.5)
        # The configured seed itself: the nodes find the cluster through the other masters.
        restarted = cluster.nodes[0]
        restarted.kill()
        partial = "ok\nbackplane: partial\nbackplane_down: 127.0.0.1:%d\n" % restarted.port
        self.assertTrue(wait_for(lambda: self.health(nodes[0]) == partial, timeout=5), self.health(nodes[0]))
        time.sleep(1.0)
        restarted.start()
        cluster.wait_ok()
        for n in nodes:
            self.wait_up(n, timeout=20)
        before = len(publisher.accepted)
        self.assertTrue(wait_for(lambda: len(publisher.accepted) > before + 30, timeout=10), "no publishes after")
        publisher.stop()
        finals = {c: (nodes[0].info(c)["epoch"], nodes[0].info(c)["seq"]) for c in channels}
        outcomes = {}
        for c, ws in subs:
            data, lost = self.read_to(ws, finals[c], timeout=15)
            outcomes.setdefault(c, []).append(lost)
        # The restarted master kept nothing (no persistence): its channel's subscribers were
        # told; the other masters' channels lost nothing.
        self.assertTrue(all(n >= 1 for n in outcomes[channels[0]]), outcomes)
        self.assertEqual(outcomes[channels[1]] + outcomes[channels[2]], [0, 0, 0, 0], outcomes)

    def test_one_master_down_the_other_shards_keep_working_then_it_catches_up(self):
        # Without full coverage the other masters keep serving while one is down (with it,
        # Redis itself refuses every command after cluster-node-timeout).
        cluster = self.start_cluster(persistent=True, full_coverage=False)
        a, b = self.start_nodes(cluster, 2)
        channels = self.channel_per_master(cluster)
        subs = {c: a.subscribe(c, "?since=0", json_frames=True) for c in channels}
        for c in channels:
            self.subscribed(a, c, 1)
        epochs = {}
        for c in channels:
            epochs[c] = b.publish(c, b"before").json()["epoch"]
            self.assertEqual(recv_json(subs[c])["seq"], 1)
        # Not the configured seed (test_a_master_restarted_under_load stops that one).
        stopped, down_channel = cluster.nodes[1], channels[1]
        stopped.kill()
        down = "127.0.0.1:%d" % stopped.port
        for n in (a, b):
            self.assertTrue(wait_for(lambda: self.health(n) == "ok\nbackplane: partial\nbackplane_down: %s\n" % down,
                                     timeout=5), self.health(n))
        for c in (channels[0], channels[2]):
            r = b.publish(c, b"during")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual((recv_json(subs[c])["data"], r.json()["seq"]), ("during", 2))
        started = time.monotonic()
        r = b.publish(down_channel, b"not now")
        self.assertEqual(r.status, 503)
        self.assertLess(time.monotonic() - started, 1.0 + 1.0 * slow_factor(), "503 later than publish_timeout")
        status = json.loads(http_request(b.port, "GET", "/status").body)["pubsub"]["backplane"]
        self.assertEqual(status["state"], "partial")
        self.assertEqual(sorted((s["address"], s["state"]) for s in status["shards"]),
                         sorted(("127.0.0.1:%d" % n.port, "down" if n is stopped else "up") for n in cluster.nodes))
        self.assertEqual(self.metric(b, 'portico_pubsub_backplane_shard_up{shard="%s"}' % down), 0)
        self.assertEqual(self.metric(b, 'portico_pubsub_backplane_shard_up{shard="127.0.0.1:%d"}' % cluster.nodes[0].port), 1)
        self.assertEqual(self.metric(b, "portico_pubsub_backplane_up"), 0)
        # the line is read off the pipe by a thread of ours: waited for, then the retries counted
        self.assertIsNotNone(b.process.wait_stderr(lambda line: "is down" in line), b.process.stderr_text())
        time.sleep(1.0)  # a few reconnect attempts
        downs = [line for line in b.process.stderr_lines() if "is down" in line]
        self.assertEqual(len(downs), 1, downs)
        self.assertIn("shard %s is down" % down, downs[0])
        # Back with its data: each node resubscribes the channel when its own reconnect comes;
        # what b publishes meanwhile reaches a's subscriber live or from history, once, in order.
        stopped.start()
        cluster.wait_ok()  # a restarted master answers CLUSTERDOWN until it has met the others
        self.wait_up(b, timeout=20)
        for i in range(5):
            self.assertEqual(b.publish(down_channel, b"m%d" % i).status, 200)
        self.wait_up(a, timeout=20)
        data, lost = self.read_to(subs[down_channel], (epochs[down_channel], 6), timeout=15, after=1)
        self.assertEqual((data, lost), (["m%d" % i for i in range(5)], 0))
        for c in (channels[0], channels[2]):
            self.assertEqual(b.publish(c, b"end").json()["seq"], 3)
            self.assertEqual(self.read_to(subs[c], (epochs[c], 3), after=2), (["end"], 0))
        # logged by a worker, read off the pipe by a thread of ours: waited for, not looked up
        self.assertIsNotNone(b.process.wait_stderr(lambda line: "shard %s is back" % down in line),
                             b.process.stderr_text())
        self.assertEqual(self.metric(a, "portico_pubsub_backplane_reconnects_total"), 2, "one per worker")

    def churn(self, node, names, batch=200):
        """Subscribes to each of `names` and leaves at once: a WebSocket handshake on a raw
        socket, closed when its 101 came (`batch` at a time)."""
        for start in range(0, len(names), batch):
            sel = selectors.DefaultSelector()
            for name in names[start:start + batch]:
                s = socket.create_connection(("127.0.0.1", node.port))
                s.sendall(("GET /live/%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           % name).encode())
                sel.register(s, selectors.EVENT_READ, [b""])
            deadline = time.monotonic() + 30
            while sel.get_map() and time.monotonic() < deadline:
                for key, _ in sel.select(1):
                    got = key.fileobj.recv(4096)
                    key.data[0] += got
                    if b"\r\n\r\n" in key.data[0] or not got:
                        self.assertIn(b" 101 ", key.data[0].split(b"\r\n")[0])
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
            self.assertFalse(sel.get_map(), "handshakes without an answer")
            sel.close()

    def test_subscription_churn_on_new_channels_keeps_memory_bounded(self):
        cluster = self.start_cluster()
        a, b = self.start_nodes(cluster, 2)
        callbacks = "portico_pubsub_backplane_subscribe_callbacks"
        self.churn(a, ["warm%d" % i for i in range(2000)])
        self.assertTrue(wait_for(lambda: a.info("warm1999")["subscribers"] == 0, timeout=10))
        before = read_rss_kb(a.process.proc.pid)
        self.churn(a, ["churn%d" % i for i in range(20000)])
        # Every SSUBSCRIBE and SUNSUBSCRIBE was answered: hiredis holds nothing for them (it
        # held two callbacks per channel until the connection closed).
        self.assertTrue(wait_for(lambda: self.metric(a, callbacks) == 0, timeout=10), self.metric(a, callbacks))
        grown = read_rss_kb(a.process.proc.pid) - before
        if not a.process.uses_asan():  # its quarantine holds what was freed
            self.assertLess(grown, 4096, "RSS grew %d KiB over 20,000 channels" % grown)
        # Subscriptions still work on every master, across nodes.
        cluster_channels = self.channel_per_master(cluster)
        subs = {c: a.subscribe(c, "?since=0", json_frames=True) for c in cluster_channels}
        for c in cluster_channels:
            self.subscribed(a, c, 1)
            seq = b.publish(c, b"after churn").json()["seq"]
            self.assertEqual(recv_json(subs[c])["seq"], seq)
        self.assertEqual(self.metric(a, "portico_pubsub_backplane_reconnects_total"), 0)


if __name__ == "__main__":
    main()
