# SPDX-License-Identifier: Apache-2.0
"""The bridge with the real GRIP libraries: an Express app using @fanoutio/serve-grip (npm)
handles WebSocket-over-HTTP behind Portico's `websocket: {mode: http}`, checks the gateway's
Grip-Sig (isSigned), subscribes through a control message, and publishes with @fanoutio/grip's
Publisher to Portico's `handler: publish` (JWT auth from the GRIP URL's iss and key). The app is
conf/examples/express-bridge/app.mjs."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from backends import free_port  # noqa: E402
from http_client import http_request  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, slow_factor  # noqa: E402
from ws_client import HandshakeError, WsConnection  # noqa: E402
from ws_peers import grip_app_available, start_grip_app  # noqa: E402

import unittest  # noqa: E402

SECRET = "grip-secret"


@unittest.skipUnless(grip_app_available(), "node or @fanoutio packages missing (npm ci in tests/peers)")
class ServeGripApp(PorticoTestCase):
    test_timeout = 120

    def start(self, sig_key=SECRET):
        app_port = free_port()
        http = {"request_timeout": "5s"}
        if sig_key:
            http["sig_key"] = sig_key
        self.p = self.start_portico(make_config(
            upstreams={"app": {"servers": ["127.0.0.1:%d" % app_port]}},
            routes=[{"path": "/publish/", "handler": "publish", "publish": {"jwt_key": SECRET, "iss": "app"}},
                    {"path": "/", "upstream": "app",
                     "websocket": {"mode": "http", "ping_interval": 0, "http": http}}]))
        self.app = start_grip_app(self, "http://127.0.0.1:%d/?iss=app&key=%s" % (self.p.port, SECRET), app_port)

    def connect(self):
        ws = WsConnection.connect(self.p.port, "/chat", timeout=10 * slow_factor(),
                                  headers=[("User-Agent", "grip-test")])
        self.addCleanup(ws.close)
        return ws

    def test_chat_subscribe_and_publish_with_the_real_libraries(self):
        self.start()
        a = self.connect()
        b = self.connect()
        self.assertEqual(a.recv_text(), "welcome grip-test")
        self.assertEqual(b.recv_text(), "welcome grip-test")
        a.send_text("hello")
        self.assertEqual(a.recv_text(), "echo:hello")
        # The Publisher (JWT signed with the GRIP URL's key) reaches both subscribers.
        a.send_text("pub:news for the room")
        got_a = {a.recv_text(), a.recv_text()}
        self.assertEqual(got_a, {"news for the room", "published"})
        self.assertEqual(b.recv_text(), "news for the room")
        # The app closes with a code; the client closes without one (serve-grip answers CLOSE 0).
        a.send_text("close")
        self.assertEqual(a.expect_close()[0], 4000)
        b.send_close(1000)
        self.assertEqual(b.expect_close()[0], 1000)

    def test_unsigned_requests_are_refused_by_the_app(self):
        self.start(sig_key="not-the-apps-key")
        with self.assertRaises(HandshakeError) as e:
            self.connect()
        self.assertEqual(e.exception.response.status, 403)

    def test_publish_without_credentials_is_401(self):
        self.start()
        r = http_request(self.p.port, "POST", "/publish/", body=b'{"items": []}',
                         headers=[("Content-Type", "application/json")])
        self.assertEqual(r.status, 401)


if __name__ == "__main__":
    main()
