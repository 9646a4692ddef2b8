# SPDX-License-Identifier: Apache-2.0
"""The built-in `handler: pubsub`: WebSocket subscribers per channel, HTTP POST publishing with
a bearer token, channel info over GET, history replay with ?since=SEQ, client_publish chat
rooms, a slow subscriber closed 1008 without slowing the others, and delivery to subscribers
on every worker thread."""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import main, make_config, slow_factor  # noqa: E402
from ws_client import OP_BINARY, OP_TEXT  # noqa: E402
from ws_peers import WsTestCase, py_connect, py_run, wait_for, ws_url  # noqa: E402

TOKEN = "s3cret-token"


def pubsub_config(workers=2, **pubsub):
    settings = {"publish_token": TOKEN, "history": 100}
    settings.update(pubsub)
    return make_config(workers=workers, routes=[
        {"path": "/live/", "handler": "pubsub", "pubsub": settings,
         "websocket": {"ping_interval": 0}}])


class PubSub(WsTestCase):
    test_timeout = 90

    def start(self, **kw):
        self.p = self.start_portico(pubsub_config(**kw))
        return self.p

    def publish(self, channel, body, token=TOKEN, content_type="text/plain"):
        hdrs = [("Content-Type", content_type)]
        if token is not None:
            hdrs.append(("Authorization", "Bearer %s" % token))
        return http_request(self.p.port, "POST", "/live/" + channel, headers=hdrs, body=body)

    def info(self, channel):
        r = http_request(self.p.port, "GET", "/live/" + channel)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def subscribe(self, channel, query="", **kw):
        return self.ws_connect(self.p.port, "/live/" + channel + query, **kw)

    def wait_subscribers(self, channel, n):
        got = wait_for(lambda: self.info(channel)["subscribers"] == n, timeout=5)
        self.assertTrue(got, "channel %s: %r subscribers, expected %d"
                        % (channel, self.info(channel), n))

    def assertNothing(self, ws, wait=0.3):
        frames, eof = ws.read_until_eof(wait)
        self.assertEqual((frames, eof), ([], False), "expected silence")

    # -- publishing over HTTP ----------------------------------------------------------------
    def test_post_reaches_every_subscriber(self):
        self.start()
        a, b = self.subscribe("room1"), self.subscribe("room1")
        other = self.subscribe("room2")
        self.wait_subscribers("room1", 2)
        r = self.publish("room1", b"hello, room 1")
        self.assertEqual(r.status, 200, r)
        self.assertIn("application/json", r.header("Content-Type", ""))
        doc = r.json()
        self.assertEqual(doc["channel"], "room1")
        self.assertEqual(doc["subscribers"], 2)
        self.assertIsInstance(doc["seq"], int)
        self.assertGreaterEqual(doc["seq"], 1)
        self.assertEqual(a.recv_message(), (OP_TEXT, b"hello, room 1"))
        self.assertEqual(b.recv_message(), (OP_TEXT, b"hello, room 1"))
        self.assertNothing(other)
        r2 = self.publish("room1", b"second")
        self.assertEqual(r2.json()["seq"], doc["seq"] + 1, "per-channel sequence numbers")
        self.assertEqual(a.recv_message(), (OP_TEXT, b"second"))

    def test_percent_encoded_names_are_the_same_channel(self):
        # "/live/%61" and "/live/a" were two channels (RFC 3986 6.2.2.2: the same resource).
        self.start()
        a, room = self.subscribe("%61"), self.subscribe("room%201")
        self.wait_subscribers("a", 1)
        r = self.publish("a", b"to a")
        self.assertEqual((r.status, r.json()["channel"], r.json()["subscribers"]), (200, "a", 1), r)
        self.assertEqual(a.recv_message(), (OP_TEXT, b"to a"))
        r = self.publish("r%6Fom%201", b"to room 1")
        self.assertEqual((r.status, r.json()["channel"], r.json()["subscribers"]), (200, "room 1", 1), r)
        self.assertEqual(room.recv_message(), (OP_TEXT, b"to room 1"))
        for bad in ("a%2Fb", "%FF", "%0A"):
            with self.subTest(name=bad):
                self.assertEqual(self.publish(bad, b"x").status, 400)
                self.assertEqual(http_request(self.p.port, "GET", "/live/" + bad).status, 400)

    def test_binary_body_goes_out_as_binary(self):
        self.start()
        a = self.subscribe("bin")
        self.wait_subscribers("bin", 1)
        body = bytes(range(256))
        self.assertEqual(self.publish("bin", body, content_type="application/octet-stream")
                         .status, 200)
        self.assertEqual(a.recv_message(), (OP_BINARY, body))

    def test_wrong_or_missing_token_is_refused(self):
        self.start()
        a = self.subscribe("room1")
        self.wait_subscribers("room1", 1)
        for token in ("wrong", None, TOKEN + "x", TOKEN[:-1], ""):
            with self.subTest(token=token):
                r = self.publish("room1", b"forged", token=token)
                self.assertIn(r.status, (401, 403), r)
        r = http_request(self.p.port, "POST", "/live/room1", body=b"forged",
                         headers=[("Authorization", "Basic " + TOKEN)])
        self.assertIn(r.status, (401, 403), r)
        self.assertNothing(a)
        self.assertEqual(self.info("room1")["seq"], 0, "a refused publish counted")

    def test_get_without_upgrade_answers_channel_info(self):
        self.start()
        doc = self.info("lobby")
        self.assertEqual(doc["channel"], "lobby")
        self.assertEqual(doc["subscribers"], 0)
        self.assertEqual(doc["seq"], 0)
        subs = [self.subscribe("lobby") for _ in range(3)]
        self.wait_subscribers("lobby", 3)
        self.publish("lobby", b"x")
        self.assertEqual(self.info("lobby")["seq"], 1)
        subs[0].send_close(1000)
        subs[0].expect_close()
        self.wait_subscribers("lobby", 2)

    # -- history -------------------------------------------------------------------------
    def test_since_replays_history_then_goes_live(self):
        self.start()
        seqs = [self.publish("hist", b"m%d" % i).json()["seq"] for i in range(5)]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 5)))
        ws = self.subscribe("hist", "?since=%d" % seqs[1])
        for i in (2, 3, 4):
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"m%d" % i))
        self.wait_subscribers("hist", 1)
        self.publish("hist", b"live")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"live"))
        # Without ?since a subscriber gets only new messages.
        fresh = self.subscribe("hist")
        self.assertNothing(fresh)

    def test_history_keeps_the_last_n(self):
        self.start(history=3)
        for i in range(6):
            self.publish("short", b"m%d" % i)
        ws = self.subscribe("short", "?since=0")
        for i in (3, 4, 5):
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"m%d" % i))
        self.assertNothing(ws)

    # -- chat ----------------------------------------------------------------------------
    def test_client_publish_chat_between_subscribers(self):
        self.start(client_publish=True)
        a, b, c = (self.subscribe("chat") for _ in range(3))
        self.wait_subscribers("chat", 3)
        a.send_text("hi from a")
        self.assertEqual(b.recv_message(), (OP_TEXT, b"hi from a"))
        self.assertEqual(c.recv_message(), (OP_TEXT, b"hi from a"))
        b.send_binary(b"\x00bin from b")
        self.assertEqual(a.recv_message(), (OP_BINARY, b"\x00bin from b"))
        self.assertEqual(c.recv_message(), (OP_BINARY, b"\x00bin from b"))
        r = self.publish("chat", b"from http")
        self.assertEqual(r.json()["subscribers"], 3)
        for ws in (a, b, c):
            op, data = ws.recv_message()
            while data != b"from http":  # the sender may or may not get its own message
                op, data = ws.recv_message()
            self.assertEqual(op, OP_TEXT)

    def test_without_client_publish_subscriber_messages_go_nowhere(self):
        self.start(client_publish=False)
        a, b = self.subscribe("quiet"), self.subscribe("quiet")
        self.wait_subscribers("quiet", 2)
        try:
            a.send_text("should not be relayed")
        except OSError:
            pass
        self.assertNothing(b)

    def test_python_websockets_subscribers(self):
        self.start(client_publish=True)
        url = ws_url(self.p.port, "/live/py")

        async def run():
            async with py_connect(url) as x, py_connect(url) as y:
                await x.send("from x")
                return await y.recv()
        self.assertEqual(py_run(run(), timeout=20), "from x")

    # -- a slow subscriber -----------------------------------------------------------------
    def test_slow_subscriber_is_closed_1008_and_others_keep_receiving(self):
        # publish_rate off: 320 back-to-back publishes are the point here, not the rate limit.
        self.start(queue_bytes="1MiB", workers=1, publish_rate="off")
        slow = self.subscribe("busy", rcvbuf=4096)
        fast = self.subscribe("busy")
        self.wait_subscribers("busy", 2)
        n, size = 320, 64 * 1024   # 20 MiB: more than socket buffers and the queue bound hold
        received = []
        errors = []

        def reader():
            try:
                for _ in range(n):
                    op, data = fast.recv_message(timeout=30 * slow_factor())
                    if op not in (OP_TEXT, OP_BINARY):
                        raise AssertionError("fast subscriber got %r after %d messages"
                                             % ((op, data[:40]), len(received)))
                    received.append(len(data))
            except Exception as e:  # reported below
                errors.append(e)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t0 = time.monotonic()
        for i in range(n):
            # Keep the fast subscriber within a few messages of the publisher: on a loaded
            # machine a Python reader can fall 1 MiB behind for real, and then 1008 is right.
            deadline = time.monotonic() + 30 * slow_factor()
            while len(received) < i - 4 and not errors and time.monotonic() < deadline:
                time.sleep(0.001)
            body = (b"%06d" % i) * (size // 6)
            r = self.publish("busy", body)
            self.assertEqual(r.status, 200, r)
        publish_time = time.monotonic() - t0
        t.join(60 * slow_factor())
        self.assertFalse(errors, errors)
        self.assertEqual(len(received), n, "the fast subscriber missed messages")
        print("\n  %d x %d KiB published in %.2f s with one stalled subscriber"
              % (n, size // 1024, publish_time))
        # The slow one now reads: some messages, then a close 1008, then the TCP close.
        frames, eof = slow.read_until_eof(20 * slow_factor())
        closes = [f for f in frames if f.opcode == 0x8]
        self.assertTrue(closes, "the stalled subscriber was never closed (got %d frames, eof %r)"
                        % (len(frames), eof))
        self.assertEqual(closes[0].close_code, 1008)
        self.assertTrue(eof)
        self.wait_subscribers("busy", 1)

    # -- workers ---------------------------------------------------------------------------
    def test_publish_reaches_subscribers_on_every_worker(self):
        self.start(workers=2)
        subs = [self.subscribe("fanout") for _ in range(60)]
        self.wait_subscribers("fanout", 60)
        for k in range(3):
            r = self.publish("fanout", json.dumps({"n": k}).encode())
            self.assertEqual(r.json()["subscribers"], 60)
            for i, ws in enumerate(subs):
                self.assertEqual(ws.recv_message(), (OP_TEXT, json.dumps({"n": k}).encode()),
                                 "subscriber %d" % i)

    def test_channel_is_the_path_after_the_prefix(self):
        self.start()
        r = http_request(self.p.port, "GET", "/live/")
        self.assertIn(r.status, (400, 404), r)
        a = self.subscribe("room-1_x.y", "?since=0")
        self.wait_subscribers("room-1_x.y", 1)
        self.assertEqual(self.publish("room-1_x.y", b"named").json()["channel"], "room-1_x.y")
        self.assertEqual(a.recv_message(), (OP_TEXT, b"named"))


if __name__ == "__main__":
    main()
