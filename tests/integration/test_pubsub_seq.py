# SPDX-License-Identifier: Apache-2.0
"""Pub/sub sequence numbers on one node: the epoch (random per process start) in publish answers
and channel info, the portico.pubsub.v1 subprotocol (JSON frames with channel, seq, epoch and
data or data_b64), ?since=SEQ&epoch=E resumption and its failure (history_lost with the
subprotocol, close 4410 without), Idempotency-Key on publish, channel names with '/', and seq
order under concurrent publishers on three workers."""

import base64
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import main, make_config  # noqa: E402
from pubsub_client import SUBPROTOCOL, PubSubNode, recv_json  # noqa: E402
from ws_client import OP_BINARY, OP_TEXT, HandshakeError, build_frame  # noqa: E402
from ws_peers import WsTestCase, wait_for  # noqa: E402


def config(workers=2, **pubsub):
    settings = {"history": 100, "publish_rate": "off"}
    settings.update(pubsub)
    return make_config(workers=workers, routes=[
        {"path": "/live/", "handler": "pubsub", "pubsub": settings, "websocket": {"ping_interval": 0}}])


class PubSubSeq(WsTestCase):
    test_timeout = 60

    def start(self, workers=2, **pubsub):
        self.p = self.start_portico(config(workers, **pubsub))
        self.node = PubSubNode(self.p.port)
        return self.node

    def wait_subscribers(self, channel, n):
        self.assertTrue(wait_for(lambda: self.node.info(channel)["subscribers"] == n, timeout=5))

    def test_publish_answer_and_info_carry_seq_and_epoch(self):
        node = self.start()
        first = node.publish("room", b"a").json()
        second = node.publish("room", b"b").json()
        self.assertEqual(set(first), {"channel", "subscribers", "seq", "epoch"})
        self.assertEqual((first["seq"], second["seq"]), (1, 2))
        self.assertRegex(first["epoch"], r"^[0-9a-z]{8}$")
        self.assertEqual(first["epoch"], second["epoch"])
        info = node.info("room")
        self.assertEqual((info["seq"], info["epoch"]), (2, first["epoch"]))
        # Another process start is another epoch: its seq 1 is not this one's.
        other = PubSubNode(self.start_portico(config()).port)
        self.assertNotEqual(other.publish("room", b"x").json()["epoch"], first["epoch"])

    def test_subprotocol_subscriber_gets_json_frames_and_bare_one_gets_bodies(self):
        node = self.start()
        js = node.subscribe("room", json_frames=True)
        self.assertEqual(js.protocol, SUBPROTOCOL)
        bare = node.subscribe("room")
        self.assertIsNone(bare.protocol)
        self.wait_subscribers("room", 2)
        epoch = node.publish("room", "héllo \"q\"\n".encode()).json()["epoch"]
        node.publish("room", b"\xff\x00bin")
        self.assertEqual(recv_json(js), {"channel": "room", "seq": 1, "epoch": epoch, "data": "héllo \"q\"\n"})
        self.assertEqual(recv_json(js), {"channel": "room", "seq": 2, "epoch": epoch,
                                         "data_b64": base64.b64encode(b"\xff\x00bin").decode()})
        self.assertEqual(bare.recv_message(), (OP_TEXT, "héllo \"q\"\n".encode()))
        self.assertEqual(bare.recv_message(), (OP_BINARY, b"\xff\x00bin"))

    def test_since_with_epoch_replays_in_json_then_goes_live(self):
        node = self.start()
        epoch = [node.publish("hist", b"m%d" % i).json()["epoch"] for i in range(1, 6)][0]
        ws = node.subscribe("hist", "?since=2&epoch=" + epoch, json_frames=True)
        self.assertEqual([recv_json(ws)["seq"] for _ in range(3)], [3, 4, 5])
        self.wait_subscribers("hist", 1)
        node.publish("hist", b"live")
        self.assertEqual(recv_json(ws), {"channel": "hist", "seq": 6, "epoch": epoch, "data": "live"})

    def test_wrong_epoch_is_history_lost_then_live_with_the_subprotocol(self):
        node = self.start()
        for i in range(3):
            epoch = node.publish("ep", b"m%d" % i).json()["epoch"]
        ws = node.subscribe("ep", "?since=1&epoch=zzzzzzzz", json_frames=True)
        self.assertEqual(recv_json(ws), {"type": "history_lost", "channel": "ep", "epoch": epoch, "seq": 3})
        self.wait_subscribers("ep", 1)
        node.publish("ep", b"after")
        self.assertEqual(recv_json(ws)["seq"], 4)

    def test_wrong_epoch_without_the_subprotocol_is_close_4410(self):
        node = self.start()
        node.publish("ep", b"m")
        ws = node.subscribe("ep", "?since=1&epoch=zzzzzzzz")
        self.assertEqual(ws.expect_close(), (4410, b"history lost"))

    def test_since_older_than_the_history_is_history_lost(self):
        node = self.start(history=3)
        for i in range(6):
            epoch = node.publish("short", b"m%d" % i).json()["epoch"]
        js = node.subscribe("short", "?since=1", json_frames=True)
        self.assertEqual(recv_json(js), {"type": "history_lost", "channel": "short", "epoch": epoch, "seq": 6})
        bare = node.subscribe("short", "?since=1&epoch=" + epoch)
        self.assertEqual(bare.expect_close(), (4410, b"history lost"))
        # since=0 asks for whatever is kept: no loss to report.
        everything = node.subscribe("short", "?since=0", json_frames=True)
        self.assertEqual([recv_json(everything)["seq"] for _ in range(3)], [4, 5, 6])
        # since beyond the channel's last seq (a position from an earlier process) is lost too.
        future = node.subscribe("short", "?since=99", json_frames=True)
        self.assertEqual(recv_json(future)["type"], "history_lost")

    def test_idempotency_key_answers_the_first_seq_and_delivers_once(self):
        node = self.start()
        ws = node.subscribe("idem", json_frames=True)
        self.wait_subscribers("idem", 1)
        first = node.publish("idem", b"once", key="k-1")
        again = node.publish("idem", b"once", key="k-1")
        self.assertEqual((first.status, again.status), (200, 200))
        self.assertEqual(again.json()["seq"], first.json()["seq"])
        self.assertEqual(node.publish("idem", b"next", key="k-2").json()["seq"], first.json()["seq"] + 1)
        self.assertEqual([recv_json(ws)["data"] for _ in range(2)], ["once", "next"])
        frames, eof = ws.read_until_eof(0.3)
        self.assertEqual((frames, eof), ([], False), "the retried publish was delivered twice")
        # The same key on another channel is another publish.
        self.assertEqual(node.publish("idem2", b"x", key="k-1").json()["seq"], 1)
        self.assertEqual(node.publish("idem", b"x", key="k" * 201).status, 400)

    def test_concurrent_publishers_on_three_workers_deliver_in_seq_order(self):
        # Publishers on several workers at once, subscribers on every worker: each subscriber
        # must get every message live, in seq order. With history 1 a message handed to a worker
        # behind a later one reads as a gap that history cannot fill: history_lost, or close
        # 4410 for a bare subscriber (the registry once posted after releasing its lock: about
        # one round in 10 failed).
        node = self.start(workers=3, history=1, client_publish=True, queue_bytes="16MiB")
        for round_ in range(16):
            self.publish_concurrently(node, "race%d" % round_)

    def publish_concurrently(self, node, channel, publishers=6, per_publisher=5000):
        total = publishers * per_publisher
        # Opened before anything is published; SO_REUSEPORT spreads them over the workers.
        pubs = [node.subscribe(channel, json_frames=True, timeout=30) for _ in range(publishers)]
        readers = [(node.subscribe(channel, json_frames=True, timeout=30), True) for _ in range(4)]
        readers += [(node.subscribe(channel, timeout=30), False) for _ in range(4)]
        for ws in pubs + [ws for ws, _ in readers]:
            self.addCleanup(ws.close)
        self.wait_subscribers(channel, len(pubs) + len(readers))
        results = [None] * len(readers)

        def read(i, ws, json_frames):
            got = []  # seq for portico.pubsub.v1, else the payload; a close or history_lost ends it
            try:
                while len(got) < total:
                    op, data = ws.recv_message()
                    if op not in (OP_TEXT, OP_BINARY):
                        got.append(("close", data))
                        break
                    if not json_frames:
                        got.append(data)
                        continue
                    frame = json.loads(data)
                    got.append(frame.get("seq") if "data" in frame else ("frame", frame))
                    if "data" not in frame:
                        break
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                got.append(("error", repr(e)))
            results[i] = got

        def publish(ws, n):
            # In one write: the worker publishes them back to back, as the others do.
            ws.send_raw(b"".join(build_frame(OP_TEXT, b"p%d-%d" % (n, k)) for k in range(per_publisher)))

        threads = [threading.Thread(target=read, args=(i, ws, j)) for i, (ws, j) in enumerate(readers)]
        threads += [threading.Thread(target=publish, args=(ws, n)) for n, ws in enumerate(pubs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for got, (_, json_frames) in zip(results, readers):
            self.assertIsNotNone(got)
            self.assertEqual(len(got), total, "%s ended with %r" % (channel, got[-1:]))
            if json_frames:
                self.assertEqual(got, list(range(1, total + 1)))
            else:
                # Each publisher's messages in the order it sent them.
                for n in range(publishers):
                    mine = [m for m in got if m.startswith(b"p%d-" % n)]
                    self.assertEqual(mine, [b"p%d-%d" % (n, k) for k in range(per_publisher)])
        self.assertEqual(node.info(channel)["seq"], total)

    def test_channel_names_with_a_slash_are_refused_with_400(self):
        node = self.start()
        self.assertEqual(node.publish("a/b", b"x").status, 400)
        self.assertEqual(http_request(self.p.port, "GET", "/live/a/b").status, 400)
        with self.assertRaises(HandshakeError) as refused:
            node.subscribe("a/b")
        self.assertEqual(refused.exception.response.status, 400)
        self.assertEqual(http_request(self.p.port, "GET", "/live/").status, 404)


if __name__ == "__main__":
    main()
