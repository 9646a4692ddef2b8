# SPDX-License-Identifier: Apache-2.0
"""The live status page (issue 13): `handler: dashboard` serves one page embedded in the binary
(HTML, CSS, JavaScript from src/handlers/dashboard/) that reads the `handler: status` JSON at the
route's status_url once a second.

DashboardHandler checks what the handler serves (types, 404 for unknown files, redirects,
methods, headers, status_url) and that nothing of it exists unless routed. StatusFigures checks
the figures the page needs in the status JSON: each route's WebSocket mode, listener requests,
the busiest channels and the publish counter, and messages counted while sessions are open.
DashboardBrowser loads the page in headless Chromium (tests/peers/dashboard_browser.js), runs
HTTP and WebSocket load and checks that the numbers on the page move.

Environment: PORTICO_DASHBOARD_SCREENSHOT=/path.png keeps a screenshot of the page.
"""

import os
import threading

from browser_peer import BrowserScript, check_no_external_resources, requires_browser
from http_client import http_request
from portico_harness import PorticoTestCase, main, make_config, run_portico, slow_factor, source_dir, to_yaml
from ws_peers import WsTestCase, closed_socket_port, wait_for

ASSETS = os.path.join(source_dir(), "src", "handlers", "dashboard")
TOKEN = "dashboard-test-token"


def dashboard_config(dashboard_route=None, extra_routes=(), upstreams=None):
    """The documented layout: the status JSON at /portico/status, the page at /portico/."""
    route = {"path": "/portico/", "handler": "dashboard"}
    route.update(dashboard_route or {})
    return make_config(upstreams=upstreams, routes=[
        {"path": "/portico/status", "handler": "status"},
        route,
        {"path": "/echo", "handler": "echo"},
        {"path": "/live/", "handler": "pubsub", "pubsub": {"publish_token": TOKEN}},
        *extra_routes,
        {"path": "/", "handler": "health"}])


class DashboardHandler(PorticoTestCase):
    def setUp(self):
        self.p = self.start_portico(dashboard_config(extra_routes=[
            {"path": "/ops", "handler": "dashboard", "status_url": "/portico/status"}]))

    def get(self, target, method="GET"):
        return http_request(self.p.port, method, target)

    def test_page_script_and_style_with_their_types(self):
        for target, ctype, name in [("/portico/", "text/html; charset=utf-8", "index.html"),
                                    ("/portico/index.html", "text/html; charset=utf-8", "index.html"),
                                    ("/portico/dashboard.js", "text/javascript; charset=utf-8", "dashboard.js"),
                                    ("/portico/dashboard.css", "text/css; charset=utf-8", "dashboard.css")]:
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("Content-Type"), ctype)
                self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
                self.assertIn("default-src 'self'", r.header("Content-Security-Policy", ""))
                self.assertEqual(r.header("Cache-Control"), "no-cache")
                with open(os.path.join(ASSETS, name), "rb") as f:
                    source = f.read()
                if name == "index.html":
                    # The one source, with the route's status_url filled in.
                    self.assertEqual(r.body, source.replace(b"@STATUS_URL@", b"status"))
                else:
                    self.assertEqual(r.body, source)

    def test_page_reads_the_status_url_of_its_route(self):
        html = self.get("/portico/").body.decode()
        self.assertIn('<meta name="portico-status-url" content="status">', html)
        self.assertNotIn("@STATUS_URL@", html)
        self.assertIn('src="dashboard.js"', html)
        self.assertIn('href="dashboard.css"', html)
        html = self.get("/ops/").body.decode()
        self.assertIn('<meta name="portico-status-url" content="/portico/status">', html)
        # ... and what the default names, relative to /portico/, is the status JSON.
        r = self.get("/portico/status")
        self.assertEqual(r.status, 200)
        self.assertIn("routes", r.json())

    def test_unknown_files_are_404(self):
        for target in ["/portico/nope.js", "/portico/dashboard.js/x", "/portico/DASHBOARD.JS",
                       "/portico/dashboard.js.map",
                       "/portico/index.html.bak", "/portico/sub/dashboard.js"]:
            with self.subTest(target=target):
                self.assertEqual(self.get(target).status, 404)

    def test_prefix_without_its_slash_is_redirected(self):
        r = self.get("/ops")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "/ops/")
        self.assertEqual(self.get("/ops/").status, 200)

    def test_head_and_methods(self):
        r = self.get("/portico/dashboard.js", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertGreater(int(r.header("Content-Length")), 1000)
        r = self.get("/portico/", method="POST")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD")

    def test_no_external_resources(self):
        check_no_external_resources(self, ASSETS)


class DashboardAbsent(PorticoTestCase):
    """Off unless routed: without a dashboard route none of its files is served anywhere."""

    def test_not_served_without_a_route(self):
        p = self.start_portico(make_config(routes=[
            {"path": "/portico/status", "handler": "status"},
            {"path": "/static/", "handler": "static", "root": self.tmpdir()}]))
        for target in ["/", "/portico/", "/portico/dashboard.js", "/dashboard.js",
                       "/static/dashboard.js", "/static/index.html", "/index.html"]:
            with self.subTest(target=target):
                r = http_request(p.port, "GET", target)
                self.assertEqual(r.status, 404, r)
                self.assertNotIn(b"portico-status-url", r.body)


class DashboardConfig(PorticoTestCase):
    """status_url belongs to the dashboard, names a path on this server, and the page needs a
    prefix route (it loads its script and style from below it)."""

    def check(self, route):
        path = os.path.join(self.tmpdir(), "portico.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(make_config(routes=[route])))
        return run_portico(["-t", "-c", path])

    def test_accepted(self):
        for route in [{"path": "/portico/", "handler": "dashboard"},
                      {"path": "/portico/", "handler": "dashboard", "status_url": "/ops/status.json"},
                      {"path": "/portico/", "handler": "dashboard", "status_url": "../status?pretty"}]:
            with self.subTest(route=route):
                r = self.check(route)
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_refused(self):
        cases = [({"path": "/status", "handler": "status", "status_url": "/x"}, "only for handler: dashboard"),
                 ({"path": "=/portico", "handler": "dashboard"}, "needs a prefix path"),
                 ({"path": "/p/", "handler": "dashboard", "status_url": "https://example.com/status"},
                  "a path on this server"),
                 ({"path": "/p/", "handler": "dashboard", "status_url": 'x"><script>'}, "a path on this server"),
                 ({"path": "/p/", "handler": "dashboard", "status_url": ""}, "a path on this server")]
        for route, message in cases:
            with self.subTest(route=route):
                r = self.check(route)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(message, r.stderr)
                self.assertRegex(r.stderr, r"routes\[0\]")


class StatusFigures(WsTestCase):
    """What the page shows comes from the status JSON: the figures added for it."""

    def setUp(self):
        self.p = self.start_portico(dashboard_config())

    def status(self):
        r = http_request(self.p.port, "GET", "/portico/status")
        self.assertEqual(r.status, 200)
        return r.json()

    def test_route_modes_and_listener_requests(self):
        s = self.status()
        self.assertEqual(s["routes"]["*/echo"]["websocket"]["mode"], "echo")
        self.assertEqual(s["routes"]["*/live/"]["websocket"]["mode"], "pubsub")
        self.assertEqual(s["routes"]["*/portico/"]["websocket"]["mode"], "none")
        (listener,) = s["listeners"].values()
        before = listener["requests"]
        for _ in range(3):
            http_request(self.p.port, "GET", "/")
        # A request is counted when its access line is written, which may come just after the
        # client has its response (and on another worker than the status read).
        requests = lambda: next(iter(self.status()["listeners"].values()))["requests"]  # noqa: E731
        self.assertTrue(wait_for(lambda: requests() >= before + 4, timeout=3),  # 3, and a status read
                        "listener requests: %d before, %d after 3 requests" % (before, requests()))

    def test_messages_are_counted_while_the_session_is_open(self):
        ws = self.ws_connect(self.p.port, "/echo")
        for i in range(5):
            ws.send_text("m%d" % i)
            self.assertEqual(ws.recv_text(), "m%d" % i)
        # The session is still open: its counts reach the route within a fold interval.
        route = wait_for(lambda: (lambda r: r if r["messages_in"] >= 5 else None)(
            self.status()["routes"]["*/echo"]["websocket"]), timeout=3)
        self.assertIsNotNone(route, self.status()["routes"]["*/echo"])
        self.assertEqual(route["open"], 1)
        self.assertEqual(route["messages_in"], 5)
        self.assertEqual(route["messages_out"], 5)
        ws.send_close(1000)
        ws.expect_close()
        # At the end nothing is counted twice.
        route = wait_for(lambda: (lambda r: r if r["open"] == 0 else None)(
            self.status()["routes"]["*/echo"]["websocket"]), timeout=3)
        self.assertEqual(route["messages_in"], 5, route)
        self.assertEqual(route["messages_out"], 5, route)

    def test_busiest_channels_and_publishes(self):
        subscribers = [self.ws_connect(self.p.port, "/live/busy") for _ in range(2)]
        subscribers.append(self.ws_connect(self.p.port, "/live/quiet"))
        for _ in range(3):
            r = http_request(self.p.port, "POST", "/live/busy", body=b"hello",
                             headers=[("Authorization", "Bearer " + TOKEN)])
            self.assertEqual(r.status, 200, r)
        pubsub = self.status()["pubsub"]
        self.assertEqual(pubsub["published"], 3)
        self.assertEqual([c["name"] for c in pubsub["top_channels"]], ["/live/busy", "/live/quiet"])
        busy = pubsub["top_channels"][0]
        self.assertEqual((busy["subscribers"], busy["published"], busy["history"]), (2, 3, 3))
        for ws in subscribers:
            ws.close()


@requires_browser
class DashboardBrowser(WsTestCase):
    test_timeout = 180.0
    WEBSOCKETS = 3
    REQUESTS = 20

    def test_numbers_move_under_load(self):
        backend = self.start_backend()
        self.down = "127.0.0.1:%d" % closed_socket_port()
        p = self.start_portico(dashboard_config(
            upstreams={"app": {"servers": [backend.address, self.down]}},
            extra_routes=[{"path": "/app/", "upstream": "app"}]))
        plan = {"url": p.url(path="/portico/"), "route": "*/echo", "servers": {"up": backend.address, "down": self.down},
                "timeout_ms": int(15000 * slow_factor())}
        if os.environ.get("PORTICO_DASHBOARD_SCREENSHOT"):
            plan["screenshot"] = os.environ["PORTICO_DASHBOARD_SCREENSHOT"]
        script = BrowserScript(self, "dashboard_browser.js", plan)
        stop_load = threading.Event()
        self.addCleanup(stop_load.set)
        for msg in script.messages(deadline_s=150):
            if msg.get("want") == "load":
                script.send(self._load(p.port, stop_load))
        result = script.result
        self.assertTrue(result["ok"], "browser run failed: %s\nsteps done: %s\nportico stderr:\n%s"
                        % (result.get("error"), result.get("steps"), "\n".join(p.stderr_lines()[-20:])))
        figures = result["figures"]
        self.assertGreaterEqual(figures["after"]["requests_total"],
                                figures["before"]["requests_total"] + self.REQUESTS)
        self.assertGreaterEqual(figures["after"]["websockets_open"], self.WEBSOCKETS)
        self.assertGreater(figures["rate"], 0)
        self.assertEqual(script.wait(30), 0)

    def _load(self, port, stop):
        """REQUESTS plain requests, WEBSOCKETS echo sessions left open with 2 messages each,
        then a trickle of requests until the test ends (so that the page sees a rate)."""
        for i in range(self.REQUESTS):
            # Half to the upstream: round robin meets the server that is down (and retries).
            self.assertEqual(http_request(port, "GET", "/app/" if i % 2 else "/").status, 200)
        for _ in range(self.WEBSOCKETS):
            ws = self.ws_connect(port, "/echo")
            for text in ("one", "two"):
                ws.send_text(text)
                self.assertEqual(ws.recv_text(), text)

        def trickle():
            while not stop.wait(0.1):
                try:
                    http_request(port, "GET", "/")
                except Exception:  # Portico stopping at the end of the test
                    return
        threading.Thread(target=trickle, daemon=True).start()
        return {"requests": self.REQUESTS, "websockets": self.WEBSOCKETS, "messages": 2 * self.WEBSOCKETS}


if __name__ == "__main__":
    main()
