# SPDX-License-Identifier: Apache-2.0
"""conf/examples: every example passes `portico -t`, and each one runs with its app as its README
says, on ports chosen at run time (a temporary copy of the folder with the ports of its YAML
rewritten): one HTTP request and one WebSocket message go through Portico to the app.

    django-channels    Django Channels under daphne, HTTP and WebSocket on one route
    express-ws         Express with express-ws
    django-dwebsocket  a dwebsocket-style view under runserver behind a frames route: the client
                       gets a clean close although the app writes an HTTP response after it
    tls-sni            two certificates chosen by SNI, and the HTTP-to-HTTPS redirect
    pubsub-push        pub/sub pushed by one POST from a script (publish.py)
    django-bridge      a plain Django view under gunicorn (2 sync workers) behind `mode: http`
    express-bridge     Express with serve-grip behind `mode: http`, publishing with the Publisher
"""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import unittest

import backends
import tls_certs
import ws_client
from portico_harness import main, run_portico, source_dir, slow_factor
from ws_peers import (NODE, PEERS_DIR, PYTHON, PeerProcess, WsTestCase, grip_app_available,
                      link_peer_modules, node_available, py_connect, py_run, wait_for)

EXAMPLES = os.path.join(source_dir(), "conf", "examples")
NAMES = ("django-channels", "express-ws", "django-dwebsocket", "tls-sni", "pubsub-push", "django-bridge",
         "express-bridge")
GUNICORN = shutil.which("gunicorn") or "/usr/bin/gunicorn"
# The ports the examples are written with: Portico on 8080 (and 8443), the app on 8000.
PORTICO_HTTP, PORTICO_HTTPS, APP = 8080, 8443, 8000


def rewrite_ports(text, ports):
    """The YAML text with each example port (a whole number) replaced by its run-time port."""
    for old, new in ports.items():
        text = re.sub(r"(?<![0-9])%d(?![0-9])" % old, str(new), text)
    return text


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def make_certs(folder):
    r = subprocess.run(["sh", os.path.join(folder, "make-certs.sh")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


class ExamplesTest(WsTestCase):
    test_timeout = 120.0

    def copy_example(self, name):
        """A temporary copy of conf/examples/NAME (what the README's commands run in)."""
        folder = os.path.join(self.tmpdir(), name)
        shutil.copytree(os.path.join(EXAMPLES, name), folder,
                        ignore=shutil.ignore_patterns("node_modules", "certs", "__pycache__"))
        return folder

    def start_example(self, folder, ports, listeners=1):
        """Portico on the folder's portico.yaml with `ports` rewritten, run in the folder."""
        with open(os.path.join(folder, "portico.yaml")) as f:
            text = rewrite_ports(f.read(), ports)
        for old in ports:
            self.assertNotRegex(text, r"(?<![0-9])%d(?![0-9])" % old)
        return self.start_portico(text, workdir=folder, listeners=listeners)

    def start_app(self, argv, folder, name, env=None):
        peer = PeerProcess(argv, cwd=folder, env=dict({"PYTHONUNBUFFERED": "1"}, **(env or {})),
                           name=name)
        self.addCleanup(peer.stop)
        peer.start(timeout=60)
        self.assertTrue(wait_for(lambda: can_connect(peer.port), timeout=20), peer.output())
        return peer

    def get(self, port, path="/", host="localhost"):
        return self.client(port).roundtrip("GET", path, host=host)

    def echo_roundtrip(self, url, text, **kw):
        async def run():
            async with py_connect(url, **kw) as ws:
                await ws.send(text)
                return await ws.recv()
        return py_run(run())

    def check_page_and_echo(self, port, page):
        """GET / through Portico answers `page`; a message on /ws/echo comes back."""
        r = self.get(port)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, page)
        echo = self.echo_roundtrip("ws://127.0.0.1:%d/ws/echo" % port, "hello through Portico")
        self.assertEqual(echo, "hello through Portico")

    # -- portico -t on every example --------------------------------------------------------
    def test_every_example_passes_portico_t(self):
        found = sorted(n for n in os.listdir(EXAMPLES)
                       if os.path.isdir(os.path.join(EXAMPLES, n)))
        self.assertEqual(found, sorted(NAMES))
        for name in NAMES:
            with self.subTest(example=name):
                folder = self.copy_example(name)
                self.assertTrue(os.path.exists(os.path.join(folder, "README.md")))
                if name == "tls-sni":
                    make_certs(folder)  # -t reads the certificates the example names
                r = run_portico(["-t", "-c", os.path.join(folder, "portico.yaml")])
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("configuration OK", r.stdout)

    # -- the examples, running ------------------------------------------------------------
    def test_django_channels_under_daphne(self):
        folder = self.copy_example("django-channels")
        app = self.start_app([PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", "0",
                              "app:application"], folder, "daphne")
        p = self.start_example(folder, {PORTICO_HTTP: 0, APP: app.port})
        self.check_page_and_echo(p.port, b"hello from Django behind Portico\n")

    def test_express_ws(self):
        if not node_available():
            raise unittest.SkipTest("node or tests/peers/node_modules missing")
        folder = self.copy_example("express-ws")
        # The example's package.json asks for the versions tests/peers installs.
        app = self.start_app([NODE, "app.js"], folder, "express app",
                             env={"PORT": "0", "NODE_PATH": os.path.join(PEERS_DIR, "node_modules")})
        p = self.start_example(folder, {PORTICO_HTTP: 0, APP: app.port})
        self.check_page_and_echo(p.port, b"hello from Express behind Portico\n")

    def start_runserver(self, folder):
        port = backends.free_port()
        app = self.start_app([PYTHON, "app.py", "runserver", "--noreload", "127.0.0.1:%d" % port],
                             folder, "runserver")
        self.assertEqual(app.port, port)
        return app

    def test_django_dwebsocket_under_runserver_gets_a_clean_close(self):
        folder = self.copy_example("django-dwebsocket")
        app = self.start_runserver(folder)
        p = self.start_example(folder, {PORTICO_HTTP: 0, APP: app.port})
        r = self.get(p.port)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"hello from Django runserver behind Portico\n")

        ws = self.ws_connect(p.port, "/ws/echo")
        ws.send_text("hello dwebsocket")
        self.assertEqual(ws.recv_message(), (ws_client.OP_TEXT, b"hello dwebsocket"))
        ws.send_close(1000, b"bye")
        frame = ws.recv_frame()
        self.assertEqual((frame.opcode, frame.close_code), (ws_client.OP_CLOSE, 1000))
        # The app wrote "HTTP/1.1 200 OK ..." after its Close: none of it reaches the client,
        # whose connection ends right after the Close (read_until_eof fails on a bad frame).
        frames, eof = ws.read_until_eof(timeout=10 * slow_factor())
        self.assertEqual((frames, eof), ([], True))

    def test_django_dwebsocket_behind_a_tunnel_shows_why_the_example_uses_frames(self):
        # The same app behind a tunnel route: the bytes after the Close reach the client.
        folder = self.copy_example("django-dwebsocket")
        app = self.start_runserver(folder)
        yaml_path = os.path.join(folder, "portico.yaml")
        with open(yaml_path) as f:
            text = f.read()
        with open(yaml_path, "w") as f:
            f.write(text.replace("mode: frames", "mode: tunnel"))
        p = self.start_example(folder, {PORTICO_HTTP: 0, APP: app.port})
        ws = self.ws_connect(p.port, "/ws/echo")
        ws.send_text("x")
        self.assertEqual(ws.recv_message(), (ws_client.OP_TEXT, b"x"))
        ws.send_close(1000)
        self.assertEqual(ws.recv_frame().opcode, ws_client.OP_CLOSE)
        with self.assertRaises(ws_client.WsProtocolError):
            ws.read_until_eof(timeout=10 * slow_factor())

    def bridge_chat(self, port, path, greeting, exchanges):
        """Two WebSockets on `path`: the first `greeting` each gets (None: none), then each
        (text, answers) of `exchanges` sent by the first, which gets `answers` (any order),
        the other getting what is not a reply to it (a broadcast)."""
        a, b = (self.ws_connect(port, path) for _ in range(2))
        if greeting is not None:
            self.assertTrue(a.recv_text().startswith(greeting))
            self.assertTrue(b.recv_text().startswith(greeting))
        for text, answers, broadcast in exchanges:
            a.send_text(text)
            self.assertEqual(sorted(a.recv_text() for _ in answers), sorted(answers), text)
            if broadcast is not None:
                self.assertEqual(b.recv_text(), broadcast)
        a.send_close(1000)
        self.assertEqual(a.expect_close()[0], 1000)

    @unittest.skipUnless(os.path.exists(GUNICORN), "Debian gunicorn missing")
    def test_django_bridge_under_gunicorn(self):
        folder = self.copy_example("django-bridge")
        portico_port = backends.free_port()
        app = self.start_app([GUNICORN, "-w", "2", "-k", "sync", "-b", "127.0.0.1:0", "app:application"],
                             folder, "gunicorn",
                             env={"PORTICO_PUBLISH": "http://127.0.0.1:%d/publish/" % portico_port})
        p = self.start_example(folder, {PORTICO_HTTP: portico_port, APP: app.port})
        self.bridge_chat(p.port, "/chat/", None, [("hello", ["you said hello"], None),
                                                  ("broadcast:hi all", ["sent", "hi all"], "hi all")])

    def test_express_bridge_with_serve_grip(self):
        if not grip_app_available():
            raise unittest.SkipTest("node or tests/peers' @fanoutio packages missing")
        folder = self.copy_example("express-bridge")
        link_peer_modules(folder)  # what `npm install` would put there
        portico_port = backends.free_port()
        app = self.start_app([NODE, "app.mjs"], folder, "express app",
                             env={"PORT": "0", "GRIP_URL": "http://127.0.0.1:%d/?iss=app&key=change-me" % portico_port})
        p = self.start_example(folder, {PORTICO_HTTP: portico_port, APP: app.port})
        self.bridge_chat(p.port, "/chat", "welcome", [("hello", ["echo:hello"], None),
                                                      ("pub:hi room", ["published", "hi room"], "hi room")])

    def test_tls_sni_two_certificates_and_redirect(self):
        folder = self.copy_example("tls-sni")
        make_certs(folder)
        https = backends.free_port()
        p = self.start_example(folder, {PORTICO_HTTPS: https, PORTICO_HTTP: 0}, listeners=2)
        http = next(port for _, port in p.addresses if port != https)

        for name in ("a.example.test", "b.example.test"):
            with self.subTest(name=name):
                cert = os.path.join(folder, "certs", name + ".crt")
                ctx = tls_certs.client_context(cafile=cert)  # trusts only this name's cert
                with socket.create_connection(("127.0.0.1", https), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname=name) as s:
                        self.assertEqual(s.getpeercert()["subjectAltName"], (("DNS", name),))
                        status, _, body = tls_certs.https_request(s, host=name)
                self.assertEqual(status, 200)
                self.assertIn(name.encode() + b" over HTTPS", body)

        ctx = tls_certs.client_context(cafile=os.path.join(folder, "certs", "b.example.test.crt"))
        echo = self.echo_roundtrip("wss://b.example.test:%d/echo" % https, "hello tls",
                                   ssl=ctx, host="127.0.0.1", port=https,
                                   server_hostname="b.example.test")
        self.assertEqual(echo, "hello tls")

        r = self.get(http, "/page?x=1", host="a.example.test:%d" % PORTICO_HTTP)
        self.assertEqual(r.status, 308)
        self.assertEqual(r.header("Location"), "https://a.example.test:%d/page?x=1" % https)

    def test_pubsub_pushed_by_one_post(self):
        folder = self.copy_example("pubsub-push")
        p = self.start_example(folder, {PORTICO_HTTP: 0})
        r = self.get(p.port)
        self.assertEqual(r.status, 200)
        self.assertIn(b"/live/news", r.body)

        async def subscribe_and_publish():
            async with py_connect("ws://127.0.0.1:%d/live/news" % p.port) as ws:
                # The subscription counts once the channel reports it (the upgrade is done).
                published = subprocess.run(
                    [PYTHON, os.path.join(folder, "publish.py"), "--url",
                     "http://127.0.0.1:%d/live/news" % p.port, "the build is green"],
                    capture_output=True, text=True, timeout=30)
                return published, await ws.recv()

        published, message = py_run(subscribe_and_publish())
        self.assertEqual(published.returncode, 0, published.stderr)
        answer = json.loads(published.stdout)
        self.assertEqual((answer["channel"], answer["subscribers"]), ("news", 1))
        self.assertEqual(message, "the build is green")

        bad = subprocess.run([PYTHON, os.path.join(folder, "publish.py"), "--url",
                              "http://127.0.0.1:%d/live/news" % p.port, "--token", "wrong", "x"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("401", bad.stderr)


if __name__ == "__main__":
    main()
