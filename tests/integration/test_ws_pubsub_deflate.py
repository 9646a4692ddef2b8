# SPDX-License-Identifier: Apache-2.0
"""Pub/sub messages compressed for subscribers that agreed permessage-deflate without server
context takeover (Portico's default answer): python3-websockets subscribers get the exact
published bytes, text and binary, live and replayed (?since=), in the bare and the
portico.pubsub.v1 forms, with RSV1 set on the wire for a compressible message of at least 256
bytes and clear for a shorter or incompressible one; subscribers with another window size get
their own compressed frame; a subscriber without deflate, or one whose route keeps the server's
compression context, gets every message uncompressed. A bridged WebSocket (websocket mode http)
subscribed through GRIP gets what is published compressed the same way."""

import asyncio
import base64
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import main, make_config  # noqa: E402
from pubsub_client import SUBPROTOCOL  # noqa: E402
from woh_backend import WohBackend  # noqa: E402
from ws_peers import WsTestCase, py_connect, py_run, wait_for  # noqa: E402

TOKEN = "deflate-token"
# (published body, compressed on the wire to a deflate subscriber of the bare form)
MESSAGES = [
    (("Hello, κόσμε! " * 200).encode(), True),           # text, compressible
    (b"\xff\xfe" + bytes(range(256)) * 8, True),          # binary (not UTF-8), compressible
    (b"short text", False),                                # below the 256-byte floor
    (b"y" * 200, False),                                   # compressible, but below the floor
    (b"\xff" + os.urandom(1999), False),                   # binary, incompressible: sent as is
    # Binary whose only repeats are 1,500 bytes back: inside a 2^15 window, out of a 2^10 one.
    # A frame compressed at window 15 and sent to a window-10 subscriber would not inflate there;
    # at window 10 compression does not pay, so that subscriber gets it as is (last in the list).
    ((b"\xfe" + os.urandom(1499)) * 3, True),
]


def publish(test, port, path, body):
    r = http_request(port, "POST", path, headers=[("Authorization", "Bearer " + TOKEN)], body=body)
    test.assertEqual(r.status, 200, r)


def expected(body):
    try:
        return body.decode("utf-8")  # a text message arrives as str
    except UnicodeDecodeError:
        return body


def deflate(seen, **params):
    """A python3-websockets permessage-deflate offer (`params` as for
    ClientPerMessageDeflateFactory) whose extension notes each incoming data frame's RSV1 in
    `seen` before it inflates it (from the first frame on: a replay comes at once)."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    class Recording(ClientPerMessageDeflateFactory):
        def process_response_params(self, *args):
            ext = super().process_response_params(*args)
            decode = ext.decode

            def recording(frame, *, max_size=None):
                if frame.opcode in (1, 2):
                    seen.append(frame.rsv1)
                return decode(frame, max_size=max_size)
            ext.decode = recording
            return ext
    params.setdefault("client_max_window_bits", True)
    return {"extensions": [Recording(**params)], "compression": None}


class DeflateFanOut(WsTestCase):
    test_timeout = 120

    def start(self, workers=1):
        pubsub = {"publish_token": TOKEN, "publish_rate": "off", "history": 100}
        return self.start_portico(make_config(workers=workers, routes=[
            {"path": "/live/", "handler": "pubsub", "pubsub": pubsub, "websocket": {"ping_interval": 0}},
            {"path": "/takeover/", "handler": "pubsub", "pubsub": pubsub,
             "websocket": {"ping_interval": 0, "permessage_deflate": {"server_no_context_takeover": False}}}]))

    def subscribers(self, port, path):
        return http_request(port, "GET", path).json()["subscribers"]

    def test_subscribers_get_the_published_bytes_compressed_where_it_pays(self):
        p = self.start(workers=2)
        base = "ws://127.0.0.1:%d" % p.port
        rsv = {name: [] for name in ("a", "b", "w10", "js", "takeover", "late")}

        async def run():
            async with py_connect(base + "/live/room", **deflate(rsv["a"])) as a, \
                    py_connect(base + "/live/room", **deflate(rsv["b"])) as b, \
                    py_connect(base + "/live/room", **deflate(rsv["w10"], server_max_window_bits=10)) as w10, \
                    py_connect(base + "/live/room", compression=None) as plain, \
                    py_connect(base + "/live/room", subprotocols=[SUBPROTOCOL], **deflate(rsv["js"])) as js, \
                    py_connect(base + "/takeover/room", **deflate(rsv["takeover"])) as takeover:
                ext = {name: ws.response_headers.get("Sec-WebSocket-Extensions") or ""
                       for name, ws in (("a", a), ("w10", w10), ("plain", plain), ("takeover", takeover))}
                self.assertIn("server_no_context_takeover", ext["a"])
                self.assertIn("server_max_window_bits=10", ext["w10"])
                self.assertEqual(ext["plain"], "")
                self.assertIn("permessage-deflate", ext["takeover"])
                self.assertNotIn("server_no_context_takeover", ext["takeover"])
                self.assertTrue(wait_for(lambda: self.subscribers(p.port, "/live/room") == 5, timeout=10))
                self.assertTrue(wait_for(lambda: self.subscribers(p.port, "/takeover/room") == 1, timeout=10))
                for body, _ in MESSAGES:
                    publish(self, p.port, "/live/room", body)
                    publish(self, p.port, "/takeover/room", body)
                got = {}
                for name, ws in (("a", a), ("b", b), ("w10", w10), ("plain", plain), ("js", js),
                                 ("takeover", takeover)):
                    got[name] = [await asyncio.wait_for(ws.recv(), 20) for _ in MESSAGES]
                # A late subscriber replays the history: compressed the same way.
                async with py_connect(base + "/live/room?since=0", **deflate(rsv["late"])) as late:
                    got["late"] = [await asyncio.wait_for(late.recv(), 20) for _ in MESSAGES]
                return got

        got = py_run(run(), timeout=60)
        want = [expected(body) for body, _ in MESSAGES]
        compressed = [c for _, c in MESSAGES]
        for name in ("a", "b", "w10", "plain", "takeover", "late"):
            self.assertEqual(got[name], want, name)
        for name in ("a", "b", "late"):
            self.assertEqual(rsv[name], compressed, name)
        self.assertEqual(rsv["w10"], compressed[:-1] + [False], "window 10: its own compressor's frames")
        self.assertEqual(rsv["takeover"], [False] * len(MESSAGES), "a context-takeover subscriber: uncompressed")
        # The JSON form: the same messages; the large text one compressed, the short one not.
        for body, m in zip((body for body, _ in MESSAGES), got["js"]):
            m = json.loads(m)
            self.assertEqual(m["data"].encode() if "data" in m else base64.b64decode(m["data_b64"]), body)
        self.assertEqual((rsv["js"][0], rsv["js"][2]), (True, False), rsv["js"])


def grip_app(req):
    """A WebSocket-over-HTTP app that turns GRIP on and subscribes the socket to "room"."""
    if any(typ == "OPEN" for typ, _ in req.events):
        return 200, [("Sec-WebSocket-Extensions", "grip")], [
            ("OPEN", None), ("TEXT", 'c:{"type":"subscribe","channel":"room"}'), ("TEXT", "m:ready")]
    return 200, [], []


class DeflateGrip(WsTestCase):
    test_timeout = 60

    def test_a_bridged_socket_gets_its_grip_channels_messages_compressed(self):
        app = WohBackend(grip_app).start()
        self.addCleanup(app.stop)
        p = self.start_portico(make_config(upstreams={"app": {"servers": [app.address]}}, routes=[
            {"path": "/live/", "handler": "pubsub", "pubsub": {"publish_token": TOKEN, "publish_rate": "off"},
             "websocket": {"ping_interval": 0}},
            {"path": "/", "upstream": "app", "websocket": {"mode": "http", "ping_interval": 0}}]))
        rsv = []

        async def run():
            async with py_connect("ws://127.0.0.1:%d/chat" % p.port, **deflate(rsv)) as ws:
                self.assertIn("server_no_context_takeover", ws.response_headers.get("Sec-WebSocket-Extensions"))
                got = [await asyncio.wait_for(ws.recv(), 20)]  # "ready": subscribed by then
                for body, _ in MESSAGES:
                    publish(self, p.port, "/live/room", body)
                    got.append(await asyncio.wait_for(ws.recv(), 20))
                return got

        got = py_run(run(), timeout=60)
        self.assertEqual(got, ["ready"] + [expected(body) for body, _ in MESSAGES])
        # "ready" is the app's own message (below min_message_bytes); the published ones as for a
        # pubsub subscriber.
        self.assertEqual(rsv, [False] + [c for _, c in MESSAGES])


if __name__ == "__main__":
    main()
