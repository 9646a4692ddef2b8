# SPDX-License-Identifier: Apache-2.0
"""Pub/sub deliveries written from the frame shared by every subscriber of a worker (one
sendmsg per subscriber and flush, or one SSL_write per frame over TLS; only what a socket
refuses is copied or referenced): wss:// subscribers with and without permessage-deflate get
every message intact and in order, small and large, read at once or late; a stalled subscriber
still hits queue_bytes (the shared frames queued for it count) and is closed 1008 after the
messages it had, while the others go on."""

import asyncio
import os
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import main, make_config, slow_factor  # noqa: E402
from tls_certs import shared_pki, tls_listener  # noqa: E402
from ws_client import OP_TEXT  # noqa: E402
from ws_peers import WsTestCase, py_connect, py_run, wait_for  # noqa: E402

TOKEN = "shared-token"
SIZES = [10, 100, 5000, 70000, 300]  # below and above the copy threshold and a TLS record


def body(i):
    size = SIZES[i % len(SIZES)]
    head = b"%06d" % i
    return head + b"x" * (size - len(head))


class SharedFrames(WsTestCase):
    test_timeout = 120

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def info(self, port, channel):
        r = http_request(port, "GET", "/live/" + channel)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def test_wss_subscribers_with_and_without_deflate_get_every_message_in_order(self):
        p = self.start_portico(make_config(workers=1, listeners=[tls_listener([self.certs["site-ec"]])], routes=[
            {"path": "/live/", "handler": "pubsub",
             "pubsub": {"publish_token": TOKEN, "client_publish": True, "publish_rate": "off",
                        "queue_bytes": "16MiB", "max_message_bytes": "1MiB"},
             "websocket": {"ping_interval": 0, "max_message_bytes": "1MiB"}}]))
        ctx = ssl.create_default_context(cafile=self.pki.ca_file)
        url = "wss://127.0.0.1:%d/live/room" % p.port
        n = 200
        expected = [body(i).decode() for i in range(n)]

        def connect(**kw):
            return py_connect(url, ssl=ctx, server_hostname="site.test", **kw)

        async def run():
            async with connect() as deflate, connect(compression=None) as plain, \
                    connect(compression=None) as late, connect() as publisher:
                self.assertIsNotNone(deflate.extensions and deflate.extensions[0])  # deflate agreed
                self.assertEqual(plain.extensions, [])

                async def receive(ws):
                    return [await ws.recv() for _ in range(n)]
                readers = [asyncio.ensure_future(receive(ws)) for ws in (deflate, plain)]
                # Subscribed once their sockets are open: each subscription answers at once on
                # the in-process backplane, before the publisher's first message is read.
                await asyncio.sleep(0.2)
                for m in expected:
                    await publisher.send(m)
                got = await asyncio.gather(*readers)
                # The late reader reads only now: what its socket refused waited in Portico.
                got.append(await receive(late))
                return got
        for name, messages in zip(("deflate", "plain", "late"), py_run(run(), timeout=60)):
            self.assertEqual(len(messages), n, name)
            for i, (m, e) in enumerate(zip(messages, expected)):
                self.assertEqual((len(m), m[:6]), (len(e), e[:6]), "%s: message %d" % (name, i))
                self.assertEqual(m, e, "%s: message %d" % (name, i))

    def test_a_stalled_subscriber_hits_queue_bytes_with_shared_frames_queued(self):
        p = self.start_portico(make_config(workers=1, routes=[
            {"path": "/metrics", "handler": "metrics"},
            {"path": "/live/", "handler": "pubsub",
             "pubsub": {"publish_token": TOKEN, "publish_rate": "off", "queue_bytes": "64KiB"},
             "websocket": {"ping_interval": 0}}]))
        stalled = self.ws_connect(p.port, "/live/q", rcvbuf=4096)
        reader = self.ws_connect(p.port, "/live/q")
        self.assertTrue(wait_for(lambda: self.info(p.port, "q")["subscribers"] == 2, timeout=10))
        # 4000-byte messages, small enough to be copied rather than referenced when refused,
        # until the stalled subscriber is closed: beyond 64 KiB plus what the kernel's socket
        # buffers hold (a few MiB on loopback).
        hdrs = [("Authorization", "Bearer %s" % TOKEN)]
        size, n = 4000, 0
        while n < 20000 and (n % 100 or self.info(p.port, "q")["subscribers"] == 2):
            self.assertEqual(http_request(p.port, "POST", "/live/q", headers=hdrs,
                                          body=(b"%06d" % n) + b"." * (size - 6)).status, 200)
            op, data = reader.recv_message(timeout=10 * slow_factor())
            self.assertEqual((op, data[:6], len(data)), (OP_TEXT, b"%06d" % n, size))
            n += 1
        frames, eof = stalled.read_until_eof(20 * slow_factor())
        texts = [f for f in frames if f.opcode == OP_TEXT]
        closes = [f for f in frames if f.opcode == 0x8]
        self.assertTrue(closes, "the stalled subscriber was never closed (%d frames)" % len(frames))
        self.assertEqual(closes[0].close_code, 1008)
        self.assertIs(frames[-1], closes[0], "the Close comes after every message it was sent")
        self.assertTrue(eof)
        # What it got before the Close: the first messages, in order, none missing, and no more
        # than queue_bytes plus the socket buffers (a few hundred KiB on loopback).
        self.assertEqual([f.payload[:6] for f in texts], [b"%06d" % i for i in range(len(texts))])
        self.assertLess(len(texts), n)
        self.assertTrue(wait_for(lambda: self.info(p.port, "q")["subscribers"] == 1, timeout=10))
        m = http_request(p.port, "GET", "/metrics").body.decode()
        self.assertRegex(m, r"(?m)^portico_pubsub_slow_subscribers_closed_total(\{[^}]*\})? 1$")

    def test_a_subscriber_that_sends_between_publishes_gets_every_delivery_in_order(self):
        # Its unsolicited Pongs get no answer (the shared frames stay batched for the flush);
        # its Pings are answered, in order, none missing. Order is promised within one
        # connection only: the publish's 200 on another connection says the message was
        # accepted, not that it was written to this subscriber before its next Ping was read (on
        # io_uring the Ping's receive may complete ahead of the delivery's flush).
        p = self.start_portico(make_config(workers=1, routes=[
            {"path": "/live/", "handler": "pubsub", "pubsub": {"publish_token": TOKEN, "publish_rate": "off"},
             "websocket": {"ping_interval": 0}}]))
        sub = self.ws_connect(p.port, "/live/chat")
        self.assertTrue(wait_for(lambda: self.info(p.port, "chat")["subscribers"] == 1, timeout=10))
        hdrs = [("Authorization", "Bearer %s" % TOKEN)]
        n = 60
        pings = list(range(0, n, 3))
        for i in range(n):
            self.assertEqual(http_request(p.port, "POST", "/live/chat", headers=hdrs, body=body(i)).status, 200)
            sub.send_frame(0xA, b"heartbeat")
            if i in pings:
                sub.send_ping(b"%d" % i)
        texts, pongs = [], []
        while len(texts) < n or len(pongs) < len(pings):
            f = sub.recv_frame(timeout=10 * slow_factor())
            if f.opcode == OP_TEXT:
                self.assertEqual(f.payload, body(int(f.payload[:6])))
                texts.append(int(f.payload[:6]))
            elif f.opcode == 0xA:
                pongs.append(int(f.payload))
            else:
                self.fail("unexpected frame %r" % (f,))
        self.assertEqual(texts, list(range(n)))
        self.assertEqual(pongs, pings)

if __name__ == "__main__":
    main()
