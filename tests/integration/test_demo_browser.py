# SPDX-License-Identifier: Apache-2.0
"""The demo page in conf/www, served by Portico and driven by headless Chromium.

DemoPage checks what the static handler serves (no browser). DemoBrowser runs
tests/peers/demo_browser.js (playwright-core with Debian's /usr/bin/chromium): the page's echo
panel, its chat room between two pages, a message POSTed over HTTP reaching both pages, and the
"Bridged app" panel against conf/examples/express-bridge (serve-grip) behind `mode: http`.
DemoBrowserHttp2 loads the page over HTTPS from a listener with `tls.alpn: [h2, http/1.1]`:
Chromium reports h2, and the page's wss:// echo and chat ride that one TLS connection as
RFC 8441 streams (one TLS handshake; the access log shows them as HTTP/2.0 200s).
DemoBrowser also runs the page with its two pages served by two Portico instances that share one
real redis-server (pubsub.backplane): a message typed on instance A's page appears on instance B's.
DefaultConfig starts the shipped conf/portico.yaml (its listeners moved to port 0) and checks
that it serves the page and the endpoints the page talks to.

Environment: PORTICO_DEMO_SCREENSHOT=/path.png keeps a screenshot of the page.
"""

import base64
import os
import re
import time

import unittest

import backends
from browser_peer import BrowserScript, check_no_external_resources, requires_browser
from portico_harness import PorticoTestCase, main, make_config, slow_factor, source_dir
from redis_server import RedisServer
from tls_certs import shared_pki, tls_listener
from ws_peers import grip_app_available, start_grip_app

TOKEN = "demo-test-token"
WWW = os.path.join(source_dir(), "conf", "www")
DEFAULT_CONFIG = os.path.join(source_dir(), "conf", "portico.yaml")
GRIP_KEY = "demo-grip-key"
PAGE_IDS = ["status", "echo-input", "echo-send", "echo-log", "echo-state", "chat-input",
            "chat-send", "chat-log", "chat-state", "curl-example", "bridge-input", "bridge-send",
            "bridge-log", "bridge-state"]


def demo_config(app_port=None, extra_routes=(), redis_url=None, **kw):
    """The routes of the default conf/portico.yaml (after extra_routes), on a port-0 listener
    unless kw says otherwise, root = conf/www; the bridged /chat goes to the app on app_port (a
    port nothing listens on when None); with `redis_url`, channels go through that Redis
    (pubsub.backplane)."""
    if redis_url:
        kw["pubsub"] = {"backplane": {"redis": redis_url, "key_prefix": "demo"}}
    return make_config(
        **kw,
        upstreams={"app": {"servers": ["127.0.0.1:%d" % (app_port or backends.free_port())]}},
        routes=list(extra_routes) + [
            {"path": "/healthz", "handler": "health"},
            {"path": "/echo", "handler": "echo"},
            {"path": "/live/", "handler": "pubsub",
             "pubsub": {"client_publish": True, "publish_token": TOKEN}},
            {"path": "/chat", "upstream": "app",
             "websocket": {"mode": "http", "http": {"sig_key": GRIP_KEY}}},
            {"path": "/publish/", "handler": "publish", "publish": {"jwt_key": GRIP_KEY, "iss": "app"}},
            {"path": "/", "handler": "static", "root": WWW}])


def websocket_handshake(client, target):
    """Sends an RFC 6455 opening handshake on a RawClient; returns the response head."""
    key = base64.b64encode(os.urandom(16)).decode()
    client.request("GET", target, headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                           ("Sec-WebSocket-Key", key),
                                           ("Sec-WebSocket-Version", "13")])
    return client.read_head()


class DemoPage(PorticoTestCase):
    """The page, its script and style are served with the right types and need nothing else."""

    def setUp(self):
        self.p = self.start_portico(demo_config())
        self.c = self.client(self.p.port)

    def test_page_has_the_stable_ids(self):
        r = self.c.roundtrip("GET", "/")
        self.assertEqual(r.status, 200)
        self.assertIn("text/html", r.header("Content-Type", ""))
        html = r.body.decode("utf-8")
        for element_id in PAGE_IDS:
            self.assertRegex(html, r'id="%s"' % re.escape(element_id))
        self.assertIn('src="demo.js"', html)
        self.assertIn('href="demo.css"', html)

    def test_script_and_style_served_with_their_types(self):
        for target, ctype in [("/demo.js", "javascript"), ("/demo.css", "text/css")]:
            with self.subTest(target=target):
                r = self.c.roundtrip("GET", target)
                self.assertEqual(r.status, 200)
                self.assertIn(ctype, r.header("Content-Type", ""))
                with open(os.path.join(WWW, target[1:]), "rb") as f:
                    self.assertEqual(r.body, f.read())

    def test_no_external_resources(self):
        check_no_external_resources(self, WWW)


@requires_browser
@unittest.skipUnless(grip_app_available(), "tests/peers' @fanoutio packages missing (npm ci)")
class DemoBrowser(PorticoTestCase):
    def test_echo_chat_http_publish_and_bridged_app_in_chromium(self):
        app_port = backends.free_port()
        p = self.start_portico(demo_config(app_port))
        self._run_demo(p, p, app_port, subscribers_per_node=2)

    def test_chat_across_two_instances_sharing_one_redis(self):
        redis = RedisServer()
        self.addCleanup(redis.cleanup)
        redis.start()
        app_port = backends.free_port()
        a = self.start_portico(demo_config(app_port, redis_url=redis.url))
        b = self.start_portico(demo_config(app_port, redis_url=redis.url))
        # Page A on instance A, page B on instance B: the chat, the HTTP publish (to A) and the
        # bridged app's publish (to A's publish route) cross Redis; each node counts its own page.
        self._run_demo(a, b, app_port, subscribers_per_node=1)

    def _run_demo(self, a, b, app_port, subscribers_per_node):
        start_grip_app(self, "http://127.0.0.1:%d/?iss=app&key=%s" % (a.port, GRIP_KEY), app_port)
        plan = {"url": a.url(path="/"), "url_b": b.url(path="/"), "timeout_ms": int(10000 * slow_factor())}
        if os.environ.get("PORTICO_DEMO_SCREENSHOT"):
            plan["screenshot"] = os.environ["PORTICO_DEMO_SCREENSHOT"]
        script = BrowserScript(self, "demo_browser.js", plan)
        published = None
        for msg in script.messages(deadline_s=120):
            if msg.get("want") == "publish":
                published = self._publish(a.port, subscribers_per_node)
                script.send({"text": published})
        result = script.result
        stderr = a.stderr_lines()[-20:] + (b.stderr_lines()[-20:] if b is not a else [])
        self.assertTrue(result["ok"], "browser run failed: %s\nsteps done: %s\nportico stderr:\n%s"
                        % (result.get("error"), result.get("steps"), "\n".join(stderr)))
        self.assertIsNotNone(published, "the browser never asked for the HTTP publish")
        self.assertEqual(script.wait(30), 0)

    def _publish(self, port, subscribers):
        return publish(self, port, subscribers)


def publish(test, port, subscribers=2):
    """POSTs a message to /live/lobby as the curl example does; checks the JSON answer and that
    `subscribers` pages on this node got it."""
    text = "published over HTTP %d" % os.getpid()
    c = test.client(port)
    r = c.roundtrip("POST", "/live/lobby", body=text.encode(),
                    headers=[("Authorization", "Bearer " + TOKEN)])
    test.assertEqual(r.status, 200, r)
    doc = r.json()
    test.assertEqual(doc.get("channel"), "lobby")
    test.assertGreaterEqual(doc.get("subscribers", 0), subscribers)  # the pages on this node
    test.assertIn("seq", doc)
    return text


@requires_browser
@unittest.skipUnless(grip_app_available(), "tests/peers' @fanoutio packages missing (npm ci)")
class DemoBrowserHttp2(PorticoTestCase):
    """The demo over HTTPS with h2 offered: the page, its fetches and its three wss:// sockets
    (echo, chat, and the bridged app behind `mode: http`; two pages: six WebSocket streams)
    share one TLS connection."""

    def test_page_and_websockets_over_one_http2_connection(self):
        _, certs = shared_pki()
        # Listener 0: HTTPS with h2 preferred; listener 1: cleartext, for the test's own POST
        # and metrics (so that they do not count as TLS connections).
        tls = tls_listener([certs["localhost"]], alpn=["h2", "http/1.1"])
        app_port = backends.free_port()
        p = self.start_portico(demo_config(app_port, extra_routes=[{"path": "/metrics", "handler": "metrics"}],
                                           listeners=[tls, "127.0.0.1:0"], workers=1), listeners=2)
        start_grip_app(self, "http://127.0.0.1:%d/?iss=app&key=%s" % (p.addresses[1][1], GRIP_KEY), app_port)
        url = "https://127.0.0.1:%d/" % p.port
        plan = {"url": url, "protocol": "h2", "insecure": True, "timeout_ms": int(10000 * slow_factor())}
        script = BrowserScript(self, "demo_browser.js", plan)
        for msg in script.messages(deadline_s=120):
            if msg.get("want") == "publish":
                script.send({"text": publish(self, p.addresses[1][1])})
        result = script.result
        self.assertTrue(result["ok"], "browser run failed: %s\nsteps done: %s\nportico stderr:\n%s"
                        % (result.get("error"), result.get("steps"), "\n".join(p.stderr_lines()[-20:])))
        self.assertEqual(script.wait(30), 0)
        # Everything the browser did came over one TLS connection.
        metrics = self.client(p.addresses[1][1]).roundtrip("GET", "/metrics").body.decode()
        handshakes = re.search(r'(?m)^portico_tls_handshakes_total\{listener="127\.0\.0\.1:%d"\} (\d+)$' % p.port,
                               metrics)
        self.assertIsNotNone(handshakes, metrics)
        self.assertEqual(int(handshakes.group(1)), 1, "TLS connections from the browser")
        # The sockets were HTTP/2 streams (RFC 8441: 200, not 101), logged once the browser
        # closed them: two pages, each with /echo, /live/lobby and /chat.
        deadline = time.monotonic() + 10 * slow_factor()
        while True:
            entries = p.access_log(timeout=0)
            sockets = [e for e in entries if e.get("method") == "GET" and e.get("path") in ("/echo", "/live/lobby", "/chat")]
            if len(sockets) >= 6 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(len(sockets), 6, entries)
        for e in sockets:
            self.assertEqual((e.get("protocol"), e.get("status")), ("HTTP/2.0", 200), e)
        page = [e for e in entries if e.get("path") == "/"]
        self.assertTrue(page and all(e.get("protocol") == "HTTP/2.0" for e in page), page)


class DefaultConfig(PorticoTestCase):
    """The shipped conf/portico.yaml (listeners moved to 127.0.0.1:0) serves the demo."""

    def setUp(self):
        with open(DEFAULT_CONFIG, encoding="utf-8") as f:
            text = f.read()
        # Every listener address goes to port 0; the config sits next to links to conf/'s
        # other entries, so relative paths (root: www) resolve as they do in conf/.
        text, listeners = re.subn(r"(?m)^(\s*-?\s*address:\s*)\S+", r"\g<1>127.0.0.1:0", text)
        self.assertGreater(listeners, 0, "no listener address in conf/portico.yaml")
        token = re.search(r"(?m)^\s*publish_token:\s*[\"']?([^\"'\s#]+)", text)
        self.token = token.group(1) if token else None
        work = self.tmpdir()
        conf_dir = os.path.dirname(DEFAULT_CONFIG)
        for name in os.listdir(conf_dir):
            if name != "portico.yaml":
                os.symlink(os.path.join(conf_dir, name), os.path.join(work, name))
        self.p = self.start_portico(text, listeners=listeners, workdir=work)

    def test_serves_the_page_and_health(self):
        c = self.client(self.p.port)
        self.assertEqual(c.roundtrip("GET", "/healthz").status, 200)
        r = c.roundtrip("GET", "/")
        self.assertEqual(r.status, 200)
        self.assertIn(b'id="echo-log"', r.body)
        self.assertEqual(c.roundtrip("GET", "/demo.js").status, 200)

    def test_bridges_chat_to_the_express_bridge_example(self):
        # The panel's /chat and the example's app agree: the app's default GRIP_URL names this
        # configuration's publish route and key (checked here without running the app).
        with open(DEFAULT_CONFIG, encoding="utf-8") as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^\s*- path: /chat\b")
        self.assertRegex(text, r"(?m)^\s*mode: http\b")
        with open(os.path.join(source_dir(), "conf", "examples", "express-bridge", "app.mjs")) as f:
            app = f.read()
        url = re.search(r"http://127\.0\.0\.1:8080/\?iss=(\w+)&key=([\w-]+)", app)
        self.assertIsNotNone(url, "the example app's default GRIP_URL")
        self.assertRegex(text, r"(?m)^\s*jwt_key: %s\s*$" % re.escape(url.group(2)))
        self.assertRegex(text, r"(?m)^\s*iss: %s\s*$" % re.escape(url.group(1)))
        self.assertRegex(text, r"(?m)^\s*sig_key: %s\b" % re.escape(url.group(2)))
        self.assertIn("app.post('/chat'", app)

    def test_has_the_endpoints_the_page_uses(self):
        for target in ["/echo", "/live/lobby"]:
            with self.subTest(target=target):
                r = websocket_handshake(self.client(self.p.port), target)
                self.assertEqual(r.status, 101, "%s: %r" % (target, r.raw_head))

    def test_http_publish_needs_the_token(self):
        self.assertIsNotNone(self.token, "no publish_token under the pubsub route")
        r = self.client(self.p.port).roundtrip("POST", "/live/lobby", body=b"hello")
        self.assertIn(r.status, (401, 403), r)
        r = self.client(self.p.port).roundtrip(
            "POST", "/live/lobby", body=b"hello",
            headers=[("Authorization", "Bearer " + self.token)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("channel"), "lobby")


if __name__ == "__main__":
    main()
