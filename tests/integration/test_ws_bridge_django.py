# SPDX-License-Identifier: Apache-2.0
"""Issue 9's headline: a plain Django view under gunicorn with 2 sync workers serves 1,000 open
WebSockets through Portico's `websocket: {mode: http}` (conf/examples/django-bridge/app.py).
The 1,000 handshakes arrive as one burst and queue for the app instead of failing; every
socket gets its answer; one broadcast (the view publishing to Portico's `handler: publish`)
reaches all of them; the app hears every CLOSE."""

import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from backends import free_port  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, slow_factor, source_dir  # noqa: E402
from ws_client import WsConnection  # noqa: E402
from ws_peers import PeerProcess, connect_many, raise_nofile  # noqa: E402

GUNICORN = shutil.which("gunicorn") or "/usr/bin/gunicorn"
EXAMPLE = os.path.join(source_dir(), "conf", "examples", "django-bridge")
TOKEN = "django-token"
SOCKETS = 1000


def wait_port(port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("gunicorn did not listen on %d" % port)


@unittest.skipUnless(os.path.exists(GUNICORN), "Debian gunicorn missing")
class DjangoUnderGunicorn(PorticoTestCase):
    test_timeout = 300

    def test_a_thousand_websockets_on_two_sync_workers(self):
        raise_nofile()
        app_port = free_port()
        self.p = self.start_portico(make_config(
            workers=2,
            limits={"per_ip_connections": 0, "per_ip_websockets": 0},
            upstreams={"django": {"servers": ["127.0.0.1:%d" % app_port]}},
            routes=[{"path": "/publish/", "handler": "publish", "publish": {"token": TOKEN}},
                    {"path": "/chat/", "upstream": "django",
                     "websocket": {"mode": "http", "ping_interval": 0, "http": {"request_timeout": "60s"}}}]))
        env = {"PORTICO_PUBLISH": "http://127.0.0.1:%d/publish/" % self.p.port, "PUBLISH_TOKEN": TOKEN,
               "PYTHONDONTWRITEBYTECODE": "1"}
        app = PeerProcess([GUNICORN, "-w", "2", "-k", "sync", "-b", "127.0.0.1:%d" % app_port, "--backlog", "2048",
                           "--chdir", EXAMPLE, "app:application"],
                          cwd=EXAMPLE, env=env, name="gunicorn")
        app.proc = subprocess.Popen(app.argv, cwd=app.cwd, env=app.env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(app.stop)
        wait_port(app_port, 20 * slow_factor())

        t0 = time.monotonic()
        socks = connect_many(self.p.port, "/chat/", SOCKETS, batch=SOCKETS, timeout=120)
        opened = time.monotonic() - t0
        self.addCleanup(lambda: [s.close() for s in socks])
        self.assertEqual(len(socks), SOCKETS)
        conns = []
        for s in socks:
            s.setblocking(True)
            conns.append(WsConnection(s, timeout=60 * slow_factor()))
        t1 = time.monotonic()
        for i, ws in enumerate(conns):
            ws.send_text("hello %d" % i)
        for i, ws in enumerate(conns):
            self.assertEqual(ws.recv_text(), "you said hello %d" % i)
        answered = time.monotonic() - t1
        # One broadcast through the app's publish reaches every socket.
        t2 = time.monotonic()
        conns[0].send_text("broadcast:hi all")
        first = {conns[0].recv_text(), conns[0].recv_text()}
        self.assertEqual(first, {"sent", "hi all"})
        for ws in conns[1:]:
            self.assertEqual(ws.recv_text(), "hi all")
        fanned = time.monotonic() - t2
        print("\n  %d WebSockets on 2 gunicorn sync workers: opened in %.1f s, %d round trips in %.1f s, "
              "broadcast to all in %.2f s" % (SOCKETS, opened, SOCKETS, answered, fanned))
        for ws in conns[:50]:
            ws.send_close(1000)
            self.assertEqual(ws.expect_close()[0], 1000)
        self.assertTrue(self.p.alive())


if __name__ == "__main__":
    main()
