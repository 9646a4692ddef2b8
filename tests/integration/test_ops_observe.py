# SPDX-License-Identifier: Apache-2.0
"""Observability (issue 5): `handler: metrics` serves valid Prometheus text (format 0.0.4) whose
series move with the traffic (connections, requests per route and status class, the upstream
histogram, upstream servers up, WebSockets open/messages/bytes per route, pub/sub, TLS
handshakes, reloads); `handler: status` serves the same as JSON with the configuration's file,
load time and generation; SIGUSR1 reopens the access log file (logrotate)."""

import json
import math
import os
import re
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import main, make_config, to_yaml  # noqa: E402
from ws_client import OP_BINARY  # noqa: E402
from ws_peers import WsTestCase, wait_for  # noqa: E402

# ---------------------------------------------------------------------------------------------
# A strict reader of the Prometheus text exposition format 0.0.4
# (https://prometheus.io/docs/instrumenting/exposition_formats/)
# ---------------------------------------------------------------------------------------------
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$" % _NAME)
_LABEL_RE = re.compile(r'\s*(%s)\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)' % _LABEL_NAME)
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Exposition:
    """Parsed metrics: types {family: type}, helps {family: text}, samples
    {(name, frozenset(labels)): value}."""

    def __init__(self, text):
        self.text = text
        self.types, self.helps, self.samples = {}, {}, {}
        self._parse(text)

    def _fail(self, n, line, why):
        raise AssertionError("metrics line %d %r: %s\n--- whole text ---\n%s"
                             % (n, line, why, self.text))

    @staticmethod
    def _family(name, types):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
                return base
        return name

    def _parse(self, text):
        if text and not text.endswith("\n"):
            raise AssertionError("the metrics text does not end with a line feed")
        seen_families, current = set(), None
        for n, line in enumerate(text.split("\n")[:-1], 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    if not re.fullmatch(_NAME, name):
                        self._fail(n, line, "bad metric name")
                    if parts[1] == "TYPE":
                        if len(parts) != 4 or parts[3] not in _TYPES:
                            self._fail(n, line, "bad TYPE")
                        if name in self.types:
                            self._fail(n, line, "second TYPE for %s" % name)
                        if name in seen_families:
                            self._fail(n, line, "TYPE after samples of %s" % name)
                        self.types[name] = parts[3]
                    else:
                        if name in self.helps:
                            self._fail(n, line, "second HELP for %s" % name)
                        self.helps[name] = parts[3] if len(parts) == 4 else ""
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                self._fail(n, line, "not a sample line")
            name, labels_text, value_text = m.group(1), m.group(2), m.group(3)
            labels = {}
            if labels_text:
                pos = 0
                while pos < len(labels_text):
                    lm = _LABEL_RE.match(labels_text, pos)
                    if not lm or lm.end() == pos:
                        self._fail(n, line, "bad label list at %r" % labels_text[pos:])
                    if lm.group(1) in labels:
                        self._fail(n, line, "label %s twice" % lm.group(1))
                    labels[lm.group(1)] = (lm.group(2).replace("\\n", "\n")
                                           .replace('\\"', '"').replace("\\\\", "\\"))
                    pos = lm.end()
            try:
                value = float(value_text)
            except ValueError:
                self._fail(n, line, "bad value")
            family = self._family(name, self.types)
            if family not in self.types:
                self._fail(n, line, "sample without a TYPE line for %s" % family)
            if family != current and family in seen_families:
                self._fail(n, line, "samples of %s are not grouped together" % family)
            current = family
            seen_families.add(family)
            key = (name, frozenset(labels.items()))
            if key in self.samples:
                self._fail(n, line, "duplicate series")
            if self.types[family] == "counter" and (value < 0 or math.isnan(value)):
                self._fail(n, line, "a counter below zero")
            self.samples[key] = value
        self._check_histograms()

    def _check_histograms(self):
        for family, kind in self.types.items():
            if kind != "histogram":
                continue
            groups = {}
            for (name, labels), v in self.samples.items():
                if name != family + "_bucket":
                    continue
                d = dict(labels)
                if "le" not in d:
                    raise AssertionError("%s bucket without le: %r" % (family, d))
                le = d.pop("le")
                groups.setdefault(frozenset(d.items()), []).append(
                    (math.inf if le == "+Inf" else float(le), v))
            for labels, buckets in groups.items():
                buckets.sort()
                values = [v for _, v in buckets]
                if values != sorted(values):
                    raise AssertionError("%s%r: buckets not cumulative: %r"
                                         % (family, dict(labels), buckets))
                if buckets[-1][0] != math.inf:
                    raise AssertionError("%s%r: no le=\"+Inf\" bucket" % (family, dict(labels)))
                count = self.samples.get((family + "_count", labels))
                if count != buckets[-1][1]:
                    raise AssertionError("%s%r: _count %r != +Inf bucket %r"
                                         % (family, dict(labels), count, buckets[-1][1]))
                if (family + "_sum", labels) not in self.samples:
                    raise AssertionError("%s%r: no _sum" % (family, dict(labels)))

    def get(self, name, **labels):
        """The value of one series, None when absent."""
        return self.samples.get((name, frozenset((k, str(v)) for k, v in labels.items())))

    def series(self, name):
        """[(labels dict, value)] of every series called name."""
        return [(dict(l), v) for (n, l), v in self.samples.items() if n == name]


class ExpositionParserSelfTest(WsTestCase):
    """The reader above must refuse what Prometheus refuses, or the checks below prove nothing."""

    def test_parser_rejects_broken_text(self):
        good = "# HELP a_total x\n# TYPE a_total counter\na_total{r=\"1\"} 2\n"
        self.assertEqual(Exposition(good).get("a_total", r=1), 2)
        for bad in ("a_total 1\n",                                            # no TYPE
                    good + "a_total{r=\"1\"} 3\n",                             # duplicate
                    good.rstrip("\n"),                                         # no final LF
                    "# TYPE a counter\na{r=1} 1\n",                             # unquoted label
                    "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na{x=\"y\"} 1\n",  # not grouped
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                    "h_sum 0\nh_count 1\n"):                                   # not cumulative
            with self.assertRaises(AssertionError, msg=repr(bad)):
                Exposition(bad)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def write_config(p, cfg):
    text = to_yaml(cfg) + "\n" if isinstance(cfg, dict) else cfg
    with open(p.config_path + ".new", "w") as f:
        f.write(text)
    os.replace(p.config_path + ".new", p.config_path)


def sighup(tc, p):
    start = len(p.stderr_lines())
    p.send_signal(signal.SIGHUP)
    line = p.wait_stderr(lambda l: "configuration reloaded" in l or "reload failed" in l,
                         timeout=10, start=start)
    tc.assertIsNotNone(line, "no reload outcome logged")
    tc.assertIn("configuration reloaded", line, "\n".join(p.stderr_lines()[start:]))


EXPECTED_FAMILIES = {
    "portico_connections_accepted_total": "counter",
    "portico_connections_open": "gauge",
    "portico_tls_handshakes_total": "counter",
    "portico_tls_handshake_failures_total": "counter",
    "portico_requests_total": "counter",
    "portico_websocket_connections_open": "gauge",
    "portico_websocket_messages_total": "counter",
    "portico_websocket_bytes_total": "counter",
    "portico_upstream_response_seconds": "histogram",
    "portico_upstream_server_up": "gauge",
    "portico_pubsub_channels": "gauge",
    "portico_pubsub_subscribers": "gauge",
    "portico_reloads_total": "counter",
}


class Observability(WsTestCase):
    test_timeout = 120

    def setUp(self):
        super().setUp()
        self.b = self.start_backend(name="a")
        self.dir = self.tmpdir()
        self.access_path = os.path.join(self.dir, "access.log")

    def config(self, **kw):
        kw.setdefault("access", "off")
        return make_config(
            routes=[{"path": "/metrics", "handler": "metrics"},
                    {"path": "/status", "handler": "status"},
                    {"path": "/echo", "handler": "echo"},
                    {"path": "/live/", "handler": "pubsub", "pubsub": {"publish_token": "t"}},
                    {"path": "/api/", "upstream": "app"}],
            upstreams={"app": {"servers": [self.b.address]}}, **kw)

    scrapes = 0

    def scrape(self, p):
        self.scrapes += 1
        r = http_request(p.port, "GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        ctype = r.header("Content-Type") or ""
        self.assertTrue(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
                        "Content-Type %r" % ctype)
        return Exposition(r.body.decode("utf-8"))

    def status(self, p):
        r = http_request(p.port, "GET", "/status")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("application/json"),
                        r.header("Content-Type"))
        return json.loads(r.body.decode("utf-8"))

    def wait_metric(self, p, name, value, **labels):
        """Polls until the series has `value`; returns the last exposition."""
        last = [None]

        def check():
            last[0] = self.scrape(p)
            return last[0].get(name, **labels) == value
        ok = wait_for(check, timeout=5, interval=0.1)
        self.assertTrue(ok, "%s%r is %r, expected %r" % (name, labels,
                                                         last[0].get(name, **labels), value))
        return last[0]

    # -- metrics ------------------------------------------------------------------------------
    def test_metrics_follow_http_traffic(self):
        p = self.start_portico(self.config())
        m0 = self.scrape(p)
        for fam, kind in EXPECTED_FAMILIES.items():
            self.assertEqual(m0.types.get(fam), kind, "family %s: TYPE %r" % (fam, m0.types.get(fam)))
            self.assertIn(fam, m0.helps, "family %s has no HELP" % fam)
        listeners = m0.series("portico_connections_accepted_total")
        self.assertEqual(len(listeners), 1, listeners)
        listener = listeners[0][0]["listener"]
        self.assertEqual(m0.get("portico_upstream_server_up", upstream="app",
                                server=self.b.address), 1, m0.text)
        route = {"route": "*/api/"}

        def req(m):
            return (m.get("portico_requests_total", status="2xx", **route) or 0,
                    m.get("portico_requests_total", status="4xx", **route) or 0,
                    m.get("portico_requests_total", status="5xx", **route) or 0,
                    m.get("portico_upstream_response_seconds_count", upstream="app") or 0)
        before = req(m0)
        scrapes0 = self.scrapes
        for i in range(10):
            self.assertEqual(http_request(p.port, "GET", "/api/x%d" % i).status, 200)
        self.assertEqual(http_request(p.port, "GET", "/api/status?code=404").status, 404)
        self.assertEqual(http_request(p.port, "GET", "/api/status?code=500").status, 500)
        # A client can read the last response a moment before the worker that wrote it has
        # counted it (another worker may serve the scrape): let the figures settle, then they
        # must be exact.
        last = {}

        def settled():
            last["m"] = self.scrape(p)
            last["d"] = [a - b for a, b in zip(req(last["m"]), before)]
            return last["d"] == [10, 1, 1, 12]
        wait_for(settled, timeout=3, interval=0.05)
        m1 = last["m"]
        self.assertEqual(last["d"], [10, 1, 1, 12],
                         "requests_total 2xx/4xx/5xx and upstream histogram count moved by %r "
                         "for 10 x 200, a 404 and a 500 through the upstream:\n%s"
                         % (last["d"], m1.text))
        s0 = m0.get("portico_upstream_response_seconds_sum", upstream="app")
        s1 = m1.get("portico_upstream_response_seconds_sum", upstream="app")
        self.assertGreater(s1, s0)
        # 12 connections for the requests and one per scrape since m0
        acc = (m1.get("portico_connections_accepted_total", listener=listener)
               - m0.get("portico_connections_accepted_total", listener=listener))
        self.assertEqual(acc, 12 + self.scrapes - scrapes0,
                         "connections_accepted_total moved by %r for %d connections"
                         % (acc, 12 + self.scrapes - scrapes0))
        # the scraper's own connection, plus three idle keep-alive ones
        idle = [self.client(p.port) for _ in range(3)]
        for c in idle:
            self.assertEqual(c.roundtrip("GET", "/api/keep").status, 200)
        self.wait_metric(p, "portico_connections_open", 4, listener=listener)
        for c in idle:
            c.close()
        self.wait_metric(p, "portico_connections_open", 1, listener=listener)
        # series survive a reload (stable keys, monotonic) and count on afterwards
        before_reload = self.scrape(p)
        self.assertEqual(before_reload.get("portico_reloads_total", outcome="ok"), 0)
        sighup(self, p)
        m2 = self.scrape(p)
        self.assertEqual(m2.get("portico_reloads_total", outcome="ok"), 1, m2.text)
        self.assertEqual(m2.get("portico_reloads_total", outcome="failed"), 0, m2.text)
        self.assertEqual(m2.get("portico_requests_total", status="2xx", **route),
                         before_reload.get("portico_requests_total", status="2xx", **route),
                         "requests_total changed across a reload without traffic")
        self.assertEqual(http_request(p.port, "GET", "/api/after").status, 200)
        wait_for(lambda: self.scrape(p).get("portico_requests_total", status="2xx", **route)
                 > m2.get("portico_requests_total", status="2xx", **route), timeout=3)
        m3 = self.scrape(p)
        self.assertEqual(m3.get("portico_requests_total", status="2xx", **route),
                         m2.get("portico_requests_total", status="2xx", **route) + 1)
        self.assertEqual(m3.get("portico_upstream_response_seconds_count", upstream="app"),
                         m2.get("portico_upstream_response_seconds_count", upstream="app") + 1)
        # an upstream server that stops answering is marked down
        self.b.stop()
        for _ in range(3):
            http_request(p.port, "GET", "/api/down")
        m4 = self.scrape(p)
        self.assertEqual(m4.get("portico_upstream_server_up", upstream="app",
                                server=self.b.address), 0, m4.text)

    def test_metrics_follow_websockets_and_pubsub(self):
        p = self.start_portico(self.config())
        route = {"route": "*/echo"}
        m0 = self.scrape(p)
        self.assertEqual(m0.get("portico_websocket_connections_open", **route), 0, m0.text)
        msgs0 = {d: m0.get("portico_websocket_messages_total", direction=d, **route)
                 for d in ("in", "out")}
        bytes0 = {d: m0.get("portico_websocket_bytes_total", direction=d, **route)
                  for d in ("in", "out")}
        sockets = [self.ws_connect(p.port, "/echo") for _ in range(2)]
        self.wait_metric(p, "portico_websocket_connections_open", 2, **route)
        payload = 0
        for ws in sockets:
            for i in range(5):
                data = os.urandom(1000)
                payload += len(data)
                ws.send_binary(data)
                self.assertEqual(ws.recv_message(), (OP_BINARY, data))
        for ws in sockets:
            ws.send_close(1000)
            self.assertEqual(ws.expect_close()[0], 1000)
        m1 = self.wait_metric(p, "portico_websocket_connections_open", 0, **route)
        for d in ("in", "out"):
            moved = m1.get("portico_websocket_messages_total", direction=d, **route) - msgs0[d]
            self.assertEqual(moved, 10, "websocket_messages_total{direction=%s} moved by %r for "
                             "10 messages each way:\n%s" % (d, moved, m1.text))
            moved = m1.get("portico_websocket_bytes_total", direction=d, **route) - bytes0[d]
            self.assertGreaterEqual(moved, payload, "websocket_bytes_total{direction=%s}" % d)
            self.assertLess(moved, payload + 10 * 20 + 200, "websocket_bytes_total{direction=%s}" % d)
        # pub/sub: subscribers on both workers, channels known
        self.assertEqual(m1.get("portico_pubsub_subscribers"), 0)
        subs = [self.ws_connect(p.port, "/live/room") for _ in range(3)]
        m2 = self.wait_metric(p, "portico_pubsub_subscribers", 3)
        self.assertGreaterEqual(m2.get("portico_pubsub_channels"), 1, m2.text)
        self.assertEqual(m2.get("portico_websocket_connections_open", route="*/live/"), 3, m2.text)
        for ws in subs:
            ws.send_close(1000)
            ws.expect_close()
        self.wait_metric(p, "portico_pubsub_subscribers", 0)

    def test_metrics_follow_the_bridge(self):
        # websocket: {mode: http}: requests and events each way, the three kinds of failure,
        # bridged WebSockets open, reading paused by max_batch_bytes; the status JSON agrees.
        from woh_backend import WohBackend

        def app(req):
            out = []
            for typ, content in req.events:
                if typ == "OPEN":
                    out.append(("OPEN", None))
                elif typ == "TEXT" and content == b"drop":
                    return None  # the connection closes without an answer: an error
                elif typ == "TEXT" and content == b"hang":
                    time.sleep(3)  # past request_timeout
                elif typ == "TEXT" and content == b"bad":
                    return 200, [], b"NOPE\r\n"  # an unknown event type
                elif typ == "TEXT":
                    if content == b"slow":
                        time.sleep(0.5)
                    out.append(("TEXT", content[:10]))
            return 200, [], out
        woh = WohBackend(app).start()
        self.addCleanup(woh.stop)
        p = self.start_portico(make_config(
            access="off",
            routes=[{"path": "/metrics", "handler": "metrics"},
                    {"path": "/status", "handler": "status"},
                    {"path": "/chat/", "upstream": "woh",
                     "websocket": {"mode": "http", "ping_interval": 0,
                                   "http": {"request_timeout": "1s", "max_batch_bytes": "1KiB"}}}],
            upstreams={"woh": {"servers": [woh.address]}}))
        route = {"route": "*/chat/"}
        m = self.scrape(p)
        self.assertEqual(m.types.get("portico_bridge_requests_total"), "counter")
        self.assertEqual(m.types.get("portico_bridge_websockets_open"), "gauge")
        self.assertEqual(m.get("portico_bridge_requests_total", **route), 0, m.text)
        a = self.ws_connect(p.port, "/chat/a")
        m = self.wait_metric(p, "portico_bridge_websockets_open", 1, **route)
        self.assertEqual(m.get("portico_bridge_requests_total", **route), 1)
        self.assertEqual(m.get("portico_bridge_events_total", direction="to_app", **route), 1)
        self.assertEqual(m.get("portico_bridge_events_total", direction="from_app", **route), 1)
        a.send_text("hello")
        self.assertEqual(a.recv_text(), "hello")
        m = self.scrape(p)
        self.assertEqual(m.get("portico_bridge_requests_total", **route), 2)
        self.assertEqual(m.get("portico_bridge_events_total", direction="to_app", **route), 2)
        self.assertEqual(m.get("portico_bridge_events_total", direction="from_app", **route), 2)
        self.assertEqual(m.get("portico_bridge_reading_paused_total", **route), 0)
        # While "slow" is answered, 4 KiB queue up: over max_batch_bytes, reading pauses.
        a.send_text("slow")
        for i in range(8):
            a.send_text("%d" % i + "x" * 500)
        self.assertEqual([a.recv_text(timeout=20) for _ in range(9)],
                         ["slow"] + ["%d" % i + "x" * 9 for i in range(8)])
        m = self.scrape(p)
        self.assertGreaterEqual(m.get("portico_bridge_reading_paused_total", **route), 1, m.text)
        for reason in ("error", "timeout", "answer"):
            self.assertEqual(m.get("portico_bridge_request_failures_total", reason=reason, **route), 0)
        # Each kind of failure closes its WebSocket 1011 and counts once.
        for text, reason in (("drop", "error"), ("hang", "timeout"), ("bad", "answer")):
            ws = self.ws_connect(p.port, "/chat/" + text)
            ws.send_text(text)
            self.assertEqual(ws.expect_close(timeout=10)[0], 1011, text)
            self.wait_metric(p, "portico_bridge_request_failures_total", 1, reason=reason, **route)
        m = self.wait_metric(p, "portico_bridge_websockets_open", 1, **route)
        bridge = self.status(p)["routes"]["*/chat/"]["bridge"]
        self.assertEqual(bridge["open"], 1)
        self.assertEqual(bridge["failures"], {"error": 1, "timeout": 1, "answer": 1})
        self.assertEqual(bridge["requests"], m.get("portico_bridge_requests_total", **route))
        self.assertEqual(bridge["events_to_app"], m.get("portico_bridge_events_total", direction="to_app", **route))
        self.assertEqual(bridge["reading_paused"], m.get("portico_bridge_reading_paused_total", **route))
        a.send_close(1000)
        a.expect_close()
        self.wait_metric(p, "portico_bridge_websockets_open", 0, **route)
        # Routes in other modes have no bridge series.
        self.assertNotIn("bridge", self.status(p)["routes"].get("*/status", {}))

    def test_metrics_count_tls_handshakes(self):
        import tls_certs
        pki = tls_certs.TestPki(self.tmpdir())
        site = pki.issue("site", ["site.test"])
        import backends
        # explicit ports (two "127.0.0.1:0" listeners get a series each since the label is the
        # bound address: test_limits_per_ip.ListenerLabelTest)
        plain, tls = backends.free_port(), backends.free_port()
        cfg = self.config(listeners=[{"address": "127.0.0.1:%d" % plain},
                                     {"address": "127.0.0.1:%d" % tls,
                                      "tls": {"certificates": [{"cert": site.cert,
                                                                "key": site.key}]}}])
        p = self.start_portico(cfg, listeners=2)
        tls_port = tls
        m0 = self.scrape(p)
        tls_series = [l for l, _ in m0.series("portico_tls_handshakes_total")]
        self.assertEqual(len(tls_series), 2, m0.series("portico_tls_handshakes_total"))
        ctx = ssl.create_default_context(cafile=pki.ca_file)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="site.test") as s:
                    s.sendall(b"GET /api/tls HTTP/1.1\r\nHost: site.test\r\n"
                              b"Connection: close\r\n\r\n")
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
        # a handshake that completes and a client that leaves without a request (a browser's
        # speculative preconnect): a handshake, not a failure
        ctx12 = ssl.create_default_context(cafile=pki.ca_file)
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        for c in (ctx, ctx12):
            with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw:
                with c.wrap_socket(raw, server_hostname="site.test"):
                    pass  # closed without close_notify, as browsers do
        # plain HTTP on the TLS port: a failed handshake
        with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            raw.settimeout(5)
            try:
                while raw.recv(4096):
                    pass
            except OSError:
                pass
        plain_key, tls_key = "127.0.0.1:%d" % plain, "127.0.0.1:%d" % tls

        def moved(m, name):
            return {l["listener"]: v - m0.get(name, **l) for l, v in m.series(name)}

        expected = ({plain_key: 0, tls_key: 5}, {plain_key: 0, tls_key: 1})
        last = {}

        def settled():
            last["m"] = m = self.scrape(p)
            last["got"] = (moved(m, "portico_tls_handshakes_total"),
                           moved(m, "portico_tls_handshake_failures_total"))
            return last["got"] == expected
        wait_for(settled, timeout=3, interval=0.1)
        self.assertEqual(last["got"], expected,
                         "TLS handshakes / failures moved by %r for 5 completed handshakes (2 of "
                         "them without a request) and 1 plain-HTTP client on the TLS port:\n%s"
                         % (last["got"], last["m"].text))

    # -- status -------------------------------------------------------------------------------
    def test_status_json_has_config_and_generation(self):
        t_start = time.time()
        p = self.start_portico(self.config())
        self.assertEqual(http_request(p.port, "GET", "/api/x").status, 200)
        # (the worker that answered may count the request a moment after the client read it)
        wait_for(lambda: self.status(p)["routes"]["*/api/"]["requests"]["2xx"] == 1, timeout=3)
        s0 = self.status(p)
        cfg = s0["config"]
        self.assertEqual(os.path.realpath(cfg["file"]), os.path.realpath(p.config_path), s0)
        self.assertEqual(cfg["generation"], 0, s0)
        self.assertTrue(t_start - 2 <= cfg["loaded_at"] <= time.time() + 1,
                        "loaded_at %r is not the start time %r" % (cfg["loaded_at"], t_start))
        self.assertEqual(s0["reloads"], {"ok": 0, "failed": 0}, s0)
        self.assertEqual(s0["routes"]["*/api/"]["requests"]["2xx"], 1, s0)
        self.assertEqual(s0["upstreams"]["app"]["servers"], {self.b.address: "up"}, s0)
        # the same figures as the metrics
        m = self.scrape(p)
        s1 = self.status(p)
        self.assertEqual(s1["routes"]["*/api/"]["requests"]["2xx"],
                         m.get("portico_requests_total", route="*/api/", status="2xx"))
        self.assertEqual(s1["upstreams"]["app"]["responses"],
                         m.get("portico_upstream_response_seconds_count", upstream="app"))
        self.assertEqual(sum(l["accepted"] for l in s1["listeners"].values()),
                         sum(v for _, v in m.series("portico_connections_accepted_total")) + 1,
                         "status counts the connections the metrics counted, plus its own")
        # generation and load time move with each reload, a failed one leaves them alone
        time.sleep(1.1)
        sighup(self, p)
        s2 = self.status(p)
        self.assertEqual(s2["config"]["generation"], 1, s2)
        self.assertGreater(s2["config"]["loaded_at"], cfg["loaded_at"], s2)
        self.assertEqual(s2["reloads"], {"ok": 1, "failed": 0}, s2)
        sighup(self, p)
        self.assertEqual(self.status(p)["config"]["generation"], 2)
        write_config(p, "routes: [\n")
        start = len(p.stderr_lines())
        p.send_signal(signal.SIGHUP)
        self.assertIsNotNone(p.wait_stderr(lambda l: "reload failed" in l, start=start))
        s3 = self.status(p)
        self.assertEqual(s3["config"]["generation"], 2, s3)
        self.assertEqual(s3["reloads"], {"ok": 2, "failed": 1}, s3)

    # -- access log ---------------------------------------------------------------------------
    def test_sigusr1_reopens_access_log(self):
        p = self.start_portico(self.config(access=self.access_path))

        def lines(path):
            try:
                with open(path) as f:
                    return [json.loads(l) for l in f if l.strip()]
            except FileNotFoundError:
                return None

        def paths(path):
            return [e.get("path") for e in lines(path) or []]

        self.assertEqual(http_request(p.port, "GET", "/api/before-rotate").status, 200)
        self.assertTrue(wait_for(lambda: "/api/before-rotate" in paths(self.access_path)),
                        "no access line in %s: %r" % (self.access_path, lines(self.access_path)))
        rotated = self.access_path + ".1"
        os.rename(self.access_path, rotated)
        self.assertEqual(http_request(p.port, "GET", "/api/between").status, 200)
        # until SIGUSR1 the old (renamed) file keeps receiving lines
        self.assertTrue(wait_for(lambda: "/api/between" in paths(rotated)),
                        "the renamed file did not get the line written before SIGUSR1")
        self.assertFalse(os.path.exists(self.access_path))
        start = len(p.stderr_lines())
        p.send_signal(signal.SIGUSR1)
        self.assertIsNotNone(p.wait_stderr(lambda l: "reopening the access log" in l,
                                           start=start), "SIGUSR1 was not acknowledged")
        self.assertTrue(wait_for(lambda: os.path.exists(self.access_path), timeout=2),
                        "SIGUSR1 did not create a new access log file")
        self.assertEqual(http_request(p.port, "GET", "/api/after-rotate").status, 200)
        self.assertTrue(wait_for(lambda: "/api/after-rotate" in paths(self.access_path)),
                        "the new file did not get the next line: %r" % lines(self.access_path))
        self.assertEqual(paths(self.access_path), ["/api/after-rotate"])
        self.assertEqual(paths(rotated), ["/api/before-rotate", "/api/between"])
        self.assertTrue(p.alive())


if __name__ == "__main__":
    main()
