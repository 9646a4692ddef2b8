# SPDX-License-Identifier: Apache-2.0
"""GRIP over the WebSocket-over-HTTP bridge, as Pushpin 1.36 reads it: `Sec-WebSocket-Extensions:
grip` on the OPEN answer, c: control messages (subscribe, unsubscribe, set-meta, keep-alive,
close, detach), the m: prefix stripped and unprefixed messages dropped; publishing through
`handler: publish` (Pushpin's API, Bearer token or HS256 JWT) and the pubsub route's
POST /live/<channel>; Grip-Sig on requests when websocket.http.sig_key is set. With a Redis
backplane (pubsub.backplane), GRIP channels span the nodes: a publish on one node reaches a
bridged WebSocket on another."""

import base64
import hashlib
import socket
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, run_portico, slow_factor  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from woh_backend import WohBackend  # noqa: E402
from ws_client import WsConnection  # noqa: E402

TOKEN = "pub-token"
JWT_KEY = "jwt-secret"
SIG_KEY = "sig-secret"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, key):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(key.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64url(sig))


def verify_jwt(token, key):
    head, body, sig = token.split(".")
    expected = b64url(hmac.new(key.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest())
    if expected != sig:
        return None
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def grip_config(app_address, prefix_route=True, **http):
    routes = []
    if prefix_route:
        routes.append({"path": "/live/", "handler": "pubsub", "pubsub": {"publish_token": TOKEN},
                       "websocket": {"ping_interval": 0}})
    routes.append({"path": "/publish/", "handler": "publish",
                   "publish": {"token": TOKEN, "jwt_key": JWT_KEY, "iss": "app"}})
    routes.append({"path": "/", "upstream": "app",
                   "websocket": {"mode": "http", "ping_interval": 0,
                                 "http": dict({"request_timeout": "3s", "sig_key": SIG_KEY}, **http)}})
    return make_config(upstreams={"app": {"servers": [app_address]}}, routes=routes)


class GripApp:
    """The OPEN answer turns GRIP on (the path picks the prefix) and subscribes to "room";
    a TEXT "cmd:<json>" is answered with the control message c:<json>; other TEXTs with
    m:echo:<text> and an unprefixed message (which must be dropped)."""

    def __call__(self, req):
        out = []
        headers = []
        for typ, content in req.events:
            if typ == "OPEN":
                ext = 'grip; message-prefix=""' if "noprefix" in req.path else "grip"
                if "nogrip" not in req.path:
                    headers.append(("Sec-WebSocket-Extensions", ext))
                out += [("OPEN", None), ("TEXT", 'c:{"type":"subscribe","channel":"room"}'),
                        ("TEXT", "m:welcome"), ("TEXT", "dropped: no prefix")]
            elif typ == "TEXT":
                text = content.decode()
                if text.startswith("cmd:"):
                    out.append(("TEXT", "c:" + text[4:]))
                    out.append(("TEXT", "m:done " + text[4:]))
                else:
                    out.append(("TEXT", "m:echo:" + text))
                    out.append(("TEXT", "plain:" + text))
                    meta = req.header("Meta-User")
                    if meta:
                        out.append(("TEXT", "m:meta=" + meta))
        return 200, headers, out


class Grip(PorticoTestCase):
    test_timeout = 120

    def setUp(self):
        super().setUp()
        self.app = WohBackend(GripApp()).start()
        self.addCleanup(self.app.stop)

    def start(self, **kw):
        self.p = self.start_portico(grip_config(self.app.address, **kw))

    def connect(self, path="/chat"):
        ws = WsConnection.connect(self.p.port, path, timeout=10 * slow_factor())
        self.addCleanup(ws.close)
        return ws

    def publish(self, channel, content=None, content_bin=None, auth="Bearer " + TOKEN, body=None):
        fmt = {"content": content} if content is not None else {"content-bin": content_bin}
        payload = body if body is not None else json.dumps(
            {"items": [{"channel": channel, "formats": {"ws-message": fmt}}]}).encode()
        hdrs = [("Content-Type", "application/json")]
        if auth:
            hdrs.append(("Authorization", auth))
        return http_request(self.p.port, "POST", "/publish/", headers=hdrs, body=payload)

    def test_prefix_control_and_publish(self):
        self.start()
        ws = self.connect()
        self.assertEqual(ws.recv_text(), "welcome", "m: stripped; the unprefixed message dropped")
        ws.send_text("hi")
        self.assertEqual(ws.recv_text(), "echo:hi")
        # Subscribed by the OPEN answer: both publish paths reach the socket.
        r = self.publish("room", content="from the publish API")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(ws.recv_text(), "from the publish API")
        r = self.publish("room", content_bin=base64.b64encode(b"\x00\x01").decode())
        self.assertEqual(r.status, 200)
        self.assertEqual(ws.recv_message(), (2, b"\x00\x01"))
        r = http_request(self.p.port, "POST", "/live/room", body=b"from /live/",
                         headers=[("Authorization", "Bearer " + TOKEN)])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(ws.recv_text(), "from /live/")
        # Unsubscribe: a control message acts before the next event of its answer.
        ws.send_text('cmd:{"type":"unsubscribe","channel":"room"}')
        self.assertEqual(ws.recv_text(), 'done {"type":"unsubscribe","channel":"room"}')
        self.publish("room", content="not for you")
        ws.send_text("after")
        self.assertEqual(ws.recv_text(), "echo:after")
        # Another channel, subscribed mid-session.
        ws.send_text('cmd:{"type":"subscribe","channel":"other"}')
        ws.recv_text()
        self.publish("other", content="other news")
        self.assertEqual(ws.recv_text(), "other news")

    def test_empty_prefix_sends_everything_but_control(self):
        self.start()
        ws = self.connect("/noprefix")
        self.assertEqual(ws.recv_text(), "m:welcome")
        self.assertEqual(ws.recv_text(), "dropped: no prefix")

    def test_without_grip_control_messages_reach_the_client(self):
        self.start()
        ws = self.connect("/nogrip")
        self.assertEqual(ws.recv_text(), 'c:{"type":"subscribe","channel":"room"}')
        self.assertEqual(ws.recv_text(), "m:welcome")
        self.assertEqual(ws.recv_text(), "dropped: no prefix")
        self.publish("room", content="nobody")  # the c: message subscribed nothing
        ws.send_text("x")
        self.assertEqual(ws.recv_text(), "m:echo:x")
        self.assertEqual(ws.recv_text(), "plain:x")

    def test_set_meta_keep_alive_and_close(self):
        self.start()
        ws = self.connect()
        ws.recv_text()
        ws.send_text('cmd:{"type":"set-meta","name":"User","value":"bob"}')
        ws.recv_text()
        ws.send_text("who")
        self.assertEqual(ws.recv_text(), "echo:who")
        self.assertEqual(ws.recv_text(), "meta=bob")
        # t0 before the command: the keep-alive cannot come sooner than 1 s after it, however
        # late this process reads the answer on a loaded machine.
        t0 = time.monotonic()
        ws.send_text('cmd:{"type":"keep-alive","content":"ka","timeout":1}')
        ws.recv_text()
        self.assertEqual(ws.recv_text(timeout=5 * slow_factor()), "ka")
        self.assertGreater(time.monotonic() - t0, 0.7)
        ws.send_text('cmd:{"type":"close","code":4003,"reason":"done"}')
        code, reason = ws.expect_close()
        self.assertEqual((code, reason), (4003, b"done"))

    def test_set_meta_values_are_checked(self):
        # A set-meta value became a request header as it was: CR LF in it injected headers into
        # the app's requests, and one over the 8 KiB that Set-Meta-* headers keep was sent once,
        # then the WebSocket closed 1011 for "bad response headers". Both are ignored now.
        self.start()
        ws = self.connect()
        ws.recv_text()
        for value in ("bob", "eve\r\nX-Injected: yes", "v" * 9000):
            ws.send_text("cmd:" + json.dumps({"type": "set-meta", "name": "User", "value": value}))
            ws.recv_text()
        ws.send_text("who")
        self.assertEqual(ws.recv_text(), "echo:who")
        self.assertEqual(ws.recv_text(), "meta=bob")
        last = self.app.requests[-1]
        self.assertIsNone(last.header("X-Injected"))
        self.assertEqual(last.header("Meta-User"), "bob")

    def test_detach_keeps_subscriptions_and_silences_the_app(self):
        self.start()
        ws = self.connect()
        self.assertEqual(ws.recv_text(), "welcome")
        ws.send_text('cmd:{"type":"detach"}')
        self.assertEqual(ws.recv_text(), 'done {"type":"detach"}', "events after the detach still reach the client")
        before = len(self.app.requests)
        ws.send_text("nobody hears this")  # an echo of it would arrive before the publish
        self.assertEqual(self.publish("room", content="still subscribed").status, 200)
        self.assertEqual(ws.recv_text(), "still subscribed")
        ws.send_close(1000)
        self.assertEqual(ws.expect_close()[0], 1000)
        # Nothing more went to the app: no TEXT, no keep-alive, no CLOSE.
        time.sleep(0.5 * slow_factor())
        self.assertEqual(len(self.app.requests), before, [q.events for q in self.app.requests[before:]])

    def test_send_delayed_flush_delayed_and_interval_keep_alive(self):
        self.start()
        ws = self.connect()
        ws.recv_text()
        # send-delayed: held for `timeout` seconds, then sent as is (no prefix).
        t0 = time.monotonic()
        ws.send_text('cmd:{"type":"send-delayed","content":"late","timeout":1}')
        self.assertEqual(ws.recv_text(), 'done {"type":"send-delayed","content":"late","timeout":1}')
        self.assertEqual(ws.recv_text(timeout=5), "late")
        self.assertGreater(time.monotonic() - t0, 0.7)
        # flush-delayed sends the held message at once; a second send-delayed flushes the first.
        ws.send_text('cmd:{"type":"send-delayed","content":"first","timeout":60}')
        ws.recv_text()
        ws.send_text('cmd:{"type":"send-delayed","content":"second","timeout":60}')
        self.assertEqual(ws.recv_text(), "first")
        ws.recv_text()
        t0 = time.monotonic()
        ws.send_text('cmd:{"type":"flush-delayed"}')
        self.assertEqual(ws.recv_text(), "second")
        self.assertEqual(ws.recv_text(), 'done {"type":"flush-delayed"}')
        self.assertLess(time.monotonic() - t0, 5 * slow_factor(), "flush-delayed waited for the 60 s timeout")
        # keep-alive in "interval" mode comes every second even while a message goes to the
        # client every 0.3 s (which would keep an "idle" one from ever firing).
        ws.send_text('cmd:{"type":"keep-alive","content":"tick","timeout":1,"mode":"interval"}')
        ws.recv_text()
        t0 = time.monotonic()
        ticks = 0
        while ticks < 2 and time.monotonic() - t0 < 6 * slow_factor():
            ws.send_text("busy")
            while True:
                got = ws.recv_text(timeout=5)
                if got == "echo:busy":
                    break
                self.assertEqual(got, "tick")
                ticks += 1
            time.sleep(0.3)
        self.assertGreaterEqual(ticks, 2, "an interval keep-alive is not pushed back by traffic")

    def test_grip_sig_on_every_request(self):
        self.start()
        ws = self.connect()
        ws.recv_text()
        reqs = self.app.wait_for(lambda r: len(r) >= 1)
        claims = verify_jwt(reqs[0].header("Grip-Sig"), SIG_KEY)
        self.assertIsNotNone(claims, "Grip-Sig is an HS256 JWT signed with sig_key")
        self.assertGreater(claims["exp"], time.time())
        self.assertEqual(reqs[0].header("Sec-WebSocket-Extensions"), "grip")

    def test_publish_authentication(self):
        self.start()
        ws = self.connect()
        ws.recv_text()
        now = int(time.time())
        for auth in (None, "Bearer wrong", "Basic " + TOKEN,
                     "Bearer " + make_jwt({"iss": "app", "exp": now + 60}, "other-key"),
                     "Bearer " + make_jwt({"iss": "someone", "exp": now + 60}, JWT_KEY),
                     "Bearer " + make_jwt({"iss": "app", "exp": now - 10}, JWT_KEY)):
            r = self.publish("room", content="forged", auth=auth)
            self.assertEqual(r.status, 401, auth)
        r = self.publish("room", content="signed", auth="Bearer " + make_jwt({"iss": "app", "exp": now + 60}, JWT_KEY))
        self.assertEqual(r.status, 200)
        self.assertEqual(ws.recv_text(), "signed", "no 401'd publish reached the socket before")
        self.assertEqual(self.publish("room", body=b"{not json").status, 400)
        self.assertEqual(self.publish("room", body=b'{"items": 3}').status, 400)
        self.assertEqual(http_request(self.p.port, "GET", "/publish/").status, 405)

    def test_grip_channels_without_a_pubsub_route(self):
        self.start(prefix_route=False)
        ws = self.connect()
        ws.recv_text()
        self.assertEqual(self.publish("room", content="own namespace").status, 200)
        self.assertEqual(ws.recv_text(), "own namespace")

    def test_check_warns_about_an_open_publish_route(self):
        path = os.path.join(self.tmpdir(), "p.yaml")
        with open(path, "w") as f:
            f.write("listeners: [{address: 127.0.0.1:0}]\nroutes:\n  - path: /publish/\n    handler: publish\n")
        r = run_portico(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("handler: publish without publish.token or publish.jwt_key", r.stderr)



class GripAcrossNodes(PorticoTestCase):
    """Two Portico nodes on one redis-server: GRIP subscriptions go through the backplane."""
    test_timeout = 120

    def test_publish_on_one_node_reaches_a_bridged_socket_on_another(self):
        redis = RedisServer()
        self.addCleanup(redis.cleanup)
        redis.start()
        app = WohBackend(GripApp()).start()
        self.addCleanup(app.stop)
        nodes = []
        for _ in range(2):
            cfg = grip_config(app.address)
            cfg["pubsub"] = {"backplane": {"redis": redis.url, "key_prefix": "griptest",
                                           "connect_timeout": "1s", "publish_timeout": "1s"}}
            nodes.append(self.start_portico(cfg))
        a, b = nodes
        ws = WsConnection.connect(a.port, "/chat", timeout=10 * slow_factor())
        self.addCleanup(ws.close)
        self.assertEqual(ws.recv_text(), "welcome")
        hdrs = [("Content-Type", "application/json"), ("Authorization", "Bearer " + TOKEN)]

        def publish_api(content):
            body = json.dumps({"items": [{"channel": "room", "formats": {"ws-message": {"content": content}}}]})
            return http_request(b.port, "POST", "/publish/", headers=hdrs, body=body.encode())

        # The subscription is live once Redis confirms it: publish until one arrives. Node B's
        # workers may still be connecting to Redis (a publish then answers 503, "not published").
        got = None
        for i in range(50):
            r = publish_api("hello %d" % i)
            if r.status == 503:
                time.sleep(0.1)
                continue
            self.assertEqual(r.status, 200, r.body)
            try:
                got = ws.recv_text(timeout=0.2 * slow_factor())
                break
            except socket.timeout:
                continue
        self.assertIsNotNone(got, "no publish on node B reached the bridged socket on node A")
        self.assertTrue(got.startswith("hello "), got)
        self.assertEqual(publish_api("second").status, 200)
        # Later publishes of the loop may still arrive first.
        while got != "second":
            got = ws.recv_text(timeout=5 * slow_factor())
        r = http_request(b.port, "POST", "/live/room", body=b"from node B's /live/",
                         headers=[("Authorization", "Bearer " + TOKEN)])
        self.assertEqual(r.status, 200, r.body)
        self.assertGreaterEqual(json.loads(r.body)["seq"], 2, r.body)
        self.assertEqual(ws.recv_text(timeout=5 * slow_factor()), "from node B's /live/")
        # Unsubscribed through a control message: nothing more arrives.
        ws.send_text('cmd:{"type":"unsubscribe","channel":"room"}')
        self.assertEqual(ws.recv_text(), 'done {"type":"unsubscribe","channel":"room"}')
        self.assertEqual(publish_api("not for you").status, 200)
        ws.send_text("after")
        self.assertEqual(ws.recv_text(), "echo:after")


if __name__ == "__main__":
    main()
