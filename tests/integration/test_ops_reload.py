# SPDX-License-Identifier: Apache-2.0
"""SIGHUP reload (issue 5): a new validated configuration for new connections, keep-alive
connections moved to it at their next request, listeners added and removed, an invalid
configuration refused with every error logged (file:line:col) while the old one keeps serving,
WebSockets (tunnel, frames, built-in echo) never cut by a reload, and `reload_drain_timeout`
closing only the WebSockets of older configurations with 1001."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import backends  # noqa: E402
from http_client import ConnectionClosed, http_request  # noqa: E402
from portico_harness import main, make_config, portico_bin, run_portico, slow_factor, to_yaml, with_test_io_uring  # noqa: E402
from ws_client import OP_BINARY, OP_TEXT  # noqa: E402
from ws_peers import WsTestCase, wait_for  # noqa: E402

_RELOADED_RE = re.compile(r"configuration reloaded \(generation (\d+)\)")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def write_config(p, cfg):
    """Replaces the running process's configuration file (atomically) with cfg (dict or text),
    keeping the io_uring mode a *_uring run asked for (PORTICO_TEST_IO_URING)."""
    cfg = with_test_io_uring(cfg)
    text = to_yaml(cfg) + "\n" if isinstance(cfg, dict) else cfg
    tmp = p.config_path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, p.config_path)
    return text


def sighup(tc, p, cfg=None, expect_ok=True, timeout=10.0):
    """Writes cfg (if given), sends SIGHUP and waits for the outcome line on stderr. Returns
    (outcome line, stderr index before the signal). Fails the test when the outcome is not the
    expected one (expect_ok None: either is fine)."""
    if cfg is not None:
        write_config(p, cfg)
    start = len(p.stderr_lines())
    p.send_signal(signal.SIGHUP)
    line = p.wait_stderr(lambda l: "configuration reloaded" in l or "reload failed" in l,
                         timeout=timeout, start=start)
    tc.assertIsNotNone(line, "no reload outcome logged within %.0fs of SIGHUP; stderr:\n%s"
                       % (timeout, "\n".join(p.stderr_lines()[start:])))
    if expect_ok is True:
        tc.assertIn("configuration reloaded", line,
                    "reload failed; stderr:\n%s" % "\n".join(p.stderr_lines()[start:]))
    elif expect_ok is False:
        tc.assertIn("reload failed", line, "an invalid configuration was accepted: %s" % line)
    return line, start


def get(port, path, host="localhost"):
    return http_request(port, "GET", path, host=host)


def metric(text, name, **labels):
    """The value of one sample of the Prometheus text `text` (None when absent)."""
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(4))
    return None


def refused(port, timeout=0.5):
    """True when a TCP connect to 127.0.0.1:port is refused, or is accepted by a listening
    socket that is being closed (reset before any answer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, ConnectionResetError):
            return True
        except OSError:
            return False
        # A live listener answers a request; one whose queue is dropped resets or closes.
        try:
            s.sendall(b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return not s.recv(64)
        except OSError:
            return True
    finally:
        s.close()


class ReloadBase(WsTestCase):
    test_timeout = 90

    def base_config(self, routes, upstreams=None, **kw):
        kw.setdefault("access", "off")
        return make_config(routes=routes, upstreams=upstreams, **kw)


# ---------------------------------------------------------------------------------------------
# HTTP: routes, upstreams, keep-alive, listeners
# ---------------------------------------------------------------------------------------------
class ReloadHttp(ReloadBase):

    def setUp(self):
        super().setUp()
        self.a = self.start_backend(name="a")
        self.b = self.start_backend(name="b")

    def config(self, backend, with_new=False, **kw):
        routes = [{"path": "/metrics", "handler": "metrics"},
                  {"path": "/status", "handler": "status"},
                  {"path": "/api/", "upstream": "app"}]
        if with_new:
            routes.insert(0, {"path": "/new/", "handler": "health"})
        return self.base_config(routes, {"app": {"servers": [backend.address]}}, **kw)

    def test_added_route_answers_new_connections(self):
        p = self.start_portico(self.config(self.a))
        self.assertEqual(get(p.port, "/new/x").status, 404)
        line, _ = sighup(self, p, self.config(self.a, with_new=True))
        self.assertEqual(_RELOADED_RE.search(line).group(1), "1", line)
        # Every fresh connection (both workers take some) must see the new route at once: the
        # reload is applied before it is announced.
        for i in range(20):
            r = get(p.port, "/new/x")
            self.assertEqual(r.status, 200, "connection %d after the reload: %r" % (i, r))
        # and the route removed again by a second reload is gone for new connections
        sighup(self, p, self.config(self.a))
        for i in range(10):
            self.assertEqual(get(p.port, "/new/x").status, 404, "connection %d" % i)
        self.assertEqual(get(p.port, "/api/x").status, 200)

    def test_the_announcement_comes_after_every_worker_applied_the_reload(self):
        # "configuration reloaded" (what an operator and systemd wait for) was logged as soon as
        # the workers were asked: a connection made right after it could reach a worker that had
        # not applied the reload yet and get the old route (seen once under io_uring). Busy
        # workers apply late; every fresh connection after the line must still see the change.
        p = self.start_portico(self.config(self.a))
        stop = threading.Event()

        def busy():
            while not stop.is_set():
                try:
                    get(p.port, "/api/x")
                except (OSError, ConnectionClosed):
                    pass

        loaders = [threading.Thread(target=busy, daemon=True) for _ in range(4)]
        for t in loaders:
            t.start()
        try:
            for n in range(12):
                with_new = n % 2 == 0
                line, _ = sighup(self, p, self.config(self.a, with_new=with_new))
                self.assertEqual(_RELOADED_RE.search(line).group(1), str(n + 1), line)
                for i in range(8):
                    r = get(p.port, "/new/x")
                    self.assertEqual(r.status, 200 if with_new else 404,
                                     "reload %d, connection %d after its announcement: %r" % (n + 1, i, r))
        finally:
            stop.set()
            for t in loaders:
                t.join(10)

    def test_keepalive_connection_moves_to_new_config_at_next_request(self):
        p = self.start_portico(self.config(self.a))
        c = self.client(p.port)
        r = c.roundtrip("GET", "/api/one")
        self.assertEqual((r.status, r.header("X-Backend")), (200, "a"))
        self.assertEqual(c.roundtrip("GET", "/new/x").status, 404)
        # a request in flight during the reload finishes on the configuration it started with
        slow = self.client(p.port)
        slow.request("GET", "/api/slow?delay=%g" % (1.0 * slow_factor()))
        wait_for(lambda: any(q.path == "/api/slow" for q in self.a.requests), timeout=5)
        sighup(self, p, self.config(self.b, with_new=True))
        r = c.roundtrip("GET", "/api/two")
        self.assertEqual((r.status, r.header("X-Backend")), (200, "b"),
                         "the keep-alive connection still routes to the old upstream: %r" % r)
        self.assertEqual(c.roundtrip("GET", "/new/x").status, 200,
                         "the keep-alive connection does not see the route added by the reload")
        r = slow.read_response()
        self.assertEqual((r.status, r.header("X-Backend"), r.body), (200, "a", b"slow done"))
        # same TCP connection all along, still open for more
        self.assertEqual(self.b.requests[-1].path, "/api/two")
        self.assertEqual(c.roundtrip("GET", "/api/three").status, 200)
        self.assertOpen(c)

    def test_last_connection_on_an_old_config_finishes_cleanly(self):
        # One worker, one keep-alive connection with a pooled upstream connection: after the
        # reload this client connection is the last user of the old configuration (and of its
        # upstream pool). Its requests must complete and the process must stay healthy (the
        # sanitizer build checks that nothing is freed under a running callback).
        p = self.start_portico(self.config(self.a, workers=1))
        c = self.client(p.port)
        self.assertEqual(c.roundtrip("GET", "/api/1").status, 200)
        for i in range(3):
            sighup(self, p, self.config(self.b if i % 2 == 0 else self.a))
            for j in range(2):
                r = c.roundtrip("GET", "/api/after-%d-%d" % (i, j))
                self.assertEqual(r.status, 200, r)
        self.assertTrue(p.alive(), "portico died:\n" + p.stderr_text()[-3000:])
        self.assertEqual(get(p.port, "/api/fresh").status, 200)

    def test_listener_added_accepts_and_removed_refuses(self):
        pa, pb = backends.free_port(), backends.free_port()
        # A third port that nothing listens on yet: tests running in parallel take ports too.
        pc = next(x for x in (backends.free_port() for _ in range(20)) if refused(x) and x not in (pa, pb))

        def cfg(*ports):
            return self.config(self.a, listeners=["127.0.0.1:%d" % x for x in ports])

        p = self.start_portico(cfg(pa, pb), listeners=2)
        self.assertEqual(sorted(port for _, port in p.addresses), sorted([pa, pb]))
        self.assertTrue(refused(pc), "port %d taken before the test" % pc)
        old_on_b = self.client(pb)
        self.assertEqual(old_on_b.roundtrip("GET", "/api/before").status, 200)
        _, start = sighup(self, p, cfg(pa, pc))
        self.assertIsNotNone(p.wait_stderr(lambda l: "listening on 127.0.0.1:%d" % pc in l,
                                           timeout=1, start=start),
                             "no 'listening on' line for the added listener")
        for port in (pc, pa):
            for i in range(6):
                r = get(port, "/api/after")
                self.assertEqual(r.status, 200, "port %d, connection %d: %r" % (port, i, r))
        self.assertTrue(wait_for(lambda: refused(pb), timeout=3),
                        "the listener removed by the reload (port %d) still accepts" % pb)
        # a connection accepted on the removed listener before the reload is not cut
        r = old_on_b.roundtrip("GET", "/api/still-here")
        self.assertEqual(r.status, 200, r)
        # and the removed address can be listened on again by a later reload
        sighup(self, p, cfg(pa, pb, pc))
        for port in (pa, pb, pc):
            self.assertEqual(get(port, "/api/again").status, 200, "port %d" % port)

    def test_series_of_removed_routes_and_upstreams_leave_metrics_others_keep_counting(self):
        # The series of a route or upstream a reload removed stayed on /metrics (and in the
        # status JSON) until a restart.
        def scrape_when(pred):
            # A request is counted as it ends, maybe just after its client read the answer.
            return wait_for(lambda: (lambda m: m if pred(m) else None)(get(p.port, "/metrics").body.decode()),
                            timeout=3) or get(p.port, "/metrics").body.decode()

        p = self.start_portico(self.config(self.a, with_new=True))
        for path in ("/new/x", "/new/y", "/api/x", "/api/y"):
            self.assertEqual(get(p.port, path).status, 200, path)
        m = scrape_when(lambda m: metric(m, "portico_requests_total", route="*/api/", status="2xx") == 2
                        and metric(m, "portico_requests_total", route="*/new/", status="2xx") == 2)
        self.assertEqual(metric(m, "portico_requests_total", route="*/new/", status="2xx"), 2, m)
        self.assertEqual(metric(m, "portico_upstream_response_seconds_count", upstream="app"), 2, m)
        renamed = self.base_config([{"path": "/metrics", "handler": "metrics"}, {"path": "/status", "handler": "status"},
                                    {"path": "/api/", "upstream": "app2"}], {"app2": {"servers": [self.a.address]}})
        sighup(self, p, renamed)
        self.assertEqual(get(p.port, "/api/z").status, 200)
        # The removed series go with the last snapshot that used them: a connection of the old
        # configuration still closing (a lingering close, on a loaded machine) holds it a moment.
        m = scrape_when(lambda m: metric(m, "portico_requests_total", route="*/api/", status="2xx") == 3
                        and 'route="*/new/"' not in m and 'upstream="app"' not in m)
        self.assertNotIn('route="*/new/"', m)
        self.assertNotIn('upstream="app"', m)
        self.assertEqual(metric(m, "portico_requests_total", route="*/api/", status="2xx"), 3, m)
        self.assertEqual(metric(m, "portico_upstream_response_seconds_count", upstream="app2"), 1, m)
        status = get(p.port, "/status").body.decode()
        self.assertNotIn('"*/new/"', status)
        self.assertIn('"*/api/"', status)

    def test_reload_that_cannot_bind_a_new_listener_changes_nothing(self):
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy_port = taken.getsockname()[1]
        p = self.start_portico(self.config(self.a))
        cfg = self.config(self.b, with_new=True,
                          listeners=["127.0.0.1:0", "127.0.0.1:%d" % busy_port])
        line, start = sighup(self, p, cfg, expect_ok=False)
        r = get(p.port, "/api/x")
        self.assertEqual((r.status, r.header("X-Backend")), (200, "a"),
                         "a reload that failed was applied in part")
        self.assertEqual(get(p.port, "/new/x").status, 404)
        m = get(p.port, "/metrics").body.decode()
        self.assertEqual(metric(m, "portico_reloads_total", outcome="failed"), 1, m)
        self.assertEqual(metric(m, "portico_reloads_total", outcome="ok"), 0, m)

    def test_reload_switches_certificates_for_new_connections(self):
        import ssl

        import tls_certs
        pki = tls_certs.TestPki(self.tmpdir())
        first = pki.issue("first", ["site.test"])
        second = pki.issue("second", ["site.test"])
        port = backends.free_port()

        def cfg(cert):
            return self.config(self.a, listeners=[
                {"address": "127.0.0.1:%d" % port,
                 "tls": {"certificates": [{"cert": cert.cert, "key": cert.key}]}}])

        def der(cert):
            with open(cert.leaf) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        ctx = ssl.create_default_context(cafile=pki.ca_file)

        def tls_connect():
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="site.test")
            self.addCleanup(s.close)
            return s

        def roundtrip(s, path):
            s.sendall(("GET %s HTTP/1.1\r\nHost: site.test\r\n\r\n" % path).encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "TLS connection closed")
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            n = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))
            while len(body) < n:
                body += s.recv(65536)
            return int(head.split(b" ")[1])

        p = self.start_portico(cfg(first))
        old = tls_connect()
        self.assertEqual(old.getpeercert(binary_form=True), der(first))
        self.assertEqual(roundtrip(old, "/api/1"), 200)
        sighup(self, p, cfg(second))
        for i in range(4):
            s = tls_connect()
            self.assertEqual(s.getpeercert(binary_form=True), der(second),
                             "connection %d after the reload got the old certificate" % i)
            self.assertEqual(roundtrip(s, "/api/new"), 200)
        # the connection made before the reload goes on
        self.assertEqual(roundtrip(old, "/api/2"), 200)
        # a certificate that cannot be loaded refuses the whole reload
        broken = pki.issue("broken", ["site.test"])
        os.unlink(broken.key)
        sighup(self, p, cfg(broken), expect_ok=False)
        s = tls_connect()
        self.assertEqual(s.getpeercert(binary_form=True), der(second))
        self.assertEqual(roundtrip(s, "/api/3"), 200)


# ---------------------------------------------------------------------------------------------
# The request after a reload starts with no state of the one before it
# ---------------------------------------------------------------------------------------------
class ReloadRequestState(ReloadBase):
    """A keep-alive connection whose next request, after a reload, is refused before it is
    routed (bad target, 404, 413, Host error, CONNECT): that request must not be counted against
    the previous request's route, which belongs to the old configuration (it once crashed the
    worker: the stale route indexed the new configuration's counters)."""

    def config(self, extra_first=False):
        # No catch-all route: a path outside these is a 404. A reload that puts a route first
        # moves every other route to another index.
        routes = [{"path": "/healthz", "handler": "health"},
                  {"path": "/metrics", "handler": "metrics"}]
        if extra_first:
            routes.insert(0, {"path": "/new/", "handler": "health"})
        return self.base_config(routes, workers=1, limits={"max_body_bytes": "1KiB"})

    REFUSED = [
        ("asterisk target", b"GET * HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
        ("no route", b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n", 404),
        ("body too large", b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n", 413),
        ("missing Host", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
        ("invalid Host", b"GET /healthz HTTP/1.1\r\nHost: x/../y\r\n\r\n", 400),
        ("CONNECT", b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n", 405),
    ]

    def test_refused_request_after_a_reload_on_a_keepalive_connection(self):
        p = self.start_portico(self.config())
        for i, (what, raw, status) in enumerate(self.REFUSED):
            with self.subTest(what):
                c = self.client(p.port)
                self.assertEqual(c.roundtrip("GET", "/healthz").status, 200)
                sighup(self, p, self.config(extra_first=i % 2 == 0))
                c.send(raw)
                r = c.read_response()
                self.assertEqual(r.status, status, "%s: %r" % (what, r))
                self.assertTrue(p.alive(), "portico died on %s after a reload:\n%s"
                                % (what, p.stderr_text()[-3000:]))
                self.assertEqual(get(p.port, "/healthz").status, 200)

    def test_refused_request_is_not_counted_against_the_previous_route(self):
        p = self.start_portico(self.config())
        c = self.client(p.port)
        for _ in range(2):
            self.assertEqual(c.roundtrip("GET", "/healthz").status, 200)
            self.assertEqual(c.roundtrip("GET", "/nowhere").status, 404)
        c.send(b"GET * HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertEqual(c.read_response().status, 400)
        m = get(p.port, "/metrics").body.decode()
        self.assertEqual(metric(m, "portico_requests_total", route="*/healthz", status="2xx"), 2, m)
        self.assertIsNone(metric(m, "portico_requests_total", route="*/healthz", status="4xx"),
                          "404s and a 400 were counted against /healthz:\n" + m)


# ---------------------------------------------------------------------------------------------
# invalid configurations
# ---------------------------------------------------------------------------------------------
INVALID_TEMPLATE = """\
workers: 2
shutdown_timeout: 3s
log:
  level: info
  access: "off"
listeners:
  - address: "127.0.0.1:0"
upstreams:
  app:
    servers: ["%(server)s"]
routes:
  - path: /metrics
    handler: metrics
  - path: /status
    handler: status
  - path: /new/
    handler: health
  - path: /api/
    upstream: app
    retry_forever: yes
  - path: /ws/
    upstream: app
    websocket:
      mode: sideways
"""


def _position(text, needle):
    """(line, column), 1-based, of the first occurrence of needle in text."""
    for i, line in enumerate(text.splitlines(), 1):
        col = line.find(needle)
        if col >= 0:
            return i, col + 1
    raise ValueError(needle)


class ReloadInvalid(ReloadBase):

    def setUp(self):
        super().setUp()
        self.a = self.start_backend(name="a")
        self.good = self.base_config(
            [{"path": "/metrics", "handler": "metrics"}, {"path": "/status", "handler": "status"},
             {"path": "/api/", "upstream": "app"}],
            {"app": {"servers": [self.a.address]}})
        self.p = self.start_portico(self.good)

    def assertStillOld(self, failed):
        p = self.p
        self.assertTrue(p.alive(), "portico exited after a failed reload")
        self.assertEqual(get(p.port, "/api/x").status, 200)
        self.assertEqual(get(p.port, "/new/x").status, 404,
                         "a route of the refused configuration answers")
        m = get(p.port, "/metrics").body.decode()
        self.assertEqual(metric(m, "portico_reloads_total", outcome="failed"), failed, m)
        self.assertEqual(metric(m, "portico_reloads_total", outcome="ok"), 0, m)
        st = get(p.port, "/status").json()
        self.assertEqual(st["config"]["generation"], 0, st)

    def test_invalid_config_keeps_old_one_and_logs_every_error(self):
        text = INVALID_TEMPLATE % {"server": self.a.address}
        line, start = sighup(self, self.p, text, expect_ok=False)
        errors = "\n".join(self.p.stderr_lines()[start:])
        for needle, key in (("retry_forever", "retry_forever"), ("sideways", "mode")):
            ln, col = _position(text, needle)
            kln, kcol = _position(text, key) if key != needle else (ln, col)
            # the mark of the offending key or of its value, both on that line
            rx = re.compile(r"portico\.yaml:(%d:%d|%d:%d)\b" % (ln, col, kln, kcol))
            self.assertRegex(errors, rx, "the error at line %d (%s) is not reported with its "
                             "file:line:col; stderr:\n%s" % (ln, needle, errors))
        self.assertStillOld(failed=1)
        # a YAML syntax error too
        broken = "routes:\n  - path: /new/\n    handler: [health\n"
        sighup(self, self.p, broken, expect_ok=False)
        self.assertRegex("\n".join(self.p.stderr_lines()), r"portico\.yaml:\d+:\d+",
                         "the YAML syntax error has no position")
        self.assertStillOld(failed=2)
        # a missing file
        os.unlink(self.p.config_path)
        sighup(self, self.p, expect_ok=False)
        self.assertStillOld(failed=3)
        # and the next valid configuration is taken
        cfg = dict(self.good)
        cfg["routes"] = [{"path": "/new/", "handler": "health"}] + self.good["routes"]
        sighup(self, self.p, cfg)
        self.assertEqual(get(self.p.port, "/new/x").status, 200)
        m = get(self.p.port, "/metrics").body.decode()
        self.assertEqual(metric(m, "portico_reloads_total", outcome="ok"), 1, m)
        self.assertEqual(metric(m, "portico_reloads_total", outcome="failed"), 3, m)
        self.assertEqual(get(self.p.port, "/status").json()["config"]["generation"], 1)


# ---------------------------------------------------------------------------------------------
# What an operator changes besides routes: the connection limit, the access log
# ---------------------------------------------------------------------------------------------
def answers(sock, timeout):
    """True when `sock` (a request sent on it) gets a response within timeout seconds."""
    sock.settimeout(timeout)
    try:
        return bool(sock.recv(64))
    except (socket.timeout, OSError):
        return False


class ListenerPorts(ReloadBase):
    """A listener on port 0 next to one that names its port. Portico's sockets share a port with
    SO_REUSEPORT, so when the kernel handed port 0 the very port a later listener names, that
    listener joined it: two listeners in the config, one address (CI, test_a_listener_moved_to_
    every_address_on_the_same_port). Portico runs here in a network namespace of its own whose
    ephemeral range is two ports, LOW and LOW + 1, where the kernel's first pick for a bind to
    port 0 is LOW + 1: a listener on LOW + 1 must be opened before the one on port 0."""

    LOW = 40001

    def setUp(self):
        super().setUp()
        script = "ip link set lo up && echo %d %d > /proc/sys/net/ipv4/ip_local_port_range" % (
            self.LOW, self.LOW + 1)
        probe = subprocess.run(["unshare", "-rn", "sh", "-c", script], capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest("no network namespace of our own: unshare -rn: %s" % probe.stderr.strip())
        self.wrapper = os.path.join(self.tmpdir(), "portico-in-netns")
        with open(self.wrapper, "w") as f:  # exec all the way: the PID the test signals is portico's
            f.write("#!/bin/sh\nexec unshare -rn sh -c '%s && exec \"$0\" \"$@\"' %s \"$@\"\n"
                    % (script, portico_bin()))
        os.chmod(self.wrapper, 0o755)

    def config(self, listeners):
        return self.base_config([{"path": "/", "handler": "health"}], workers=2, listeners=listeners)

    def test_a_listener_on_port_0_does_not_take_a_port_a_later_listener_names(self):
        taken = "127.0.0.1:%d" % (self.LOW + 1)
        p = self.start_portico(self.config(["127.0.0.1:0", taken]), listeners=2, binary=self.wrapper)
        # named in the config's order, each on a port of its own
        self.assertEqual(p.addresses, [("127.0.0.1", self.LOW), ("127.0.0.1", self.LOW + 1)],
                         "\n".join(p.stderr_lines()))

    def test_a_reload_may_not_add_a_listener_on_the_port_the_kernel_gave_a_port_0_listener(self):
        # The new listener joined the running one's socket through SO_REUSEPORT: two listeners in
        # the config, one socket. Refused, naming both; a listener on another address may have it.
        p = self.start_portico(self.config(["127.0.0.1:0"]), listeners=1, binary=self.wrapper)
        taken = "127.0.0.1:%d" % p.addresses[0][1]
        _, start = sighup(self, p, self.config(["127.0.0.1:0", taken]), expect_ok=False)
        lines = p.stderr_lines()[start:]
        self.assertTrue(any("listeners[1] %s" % taken in l and "listener 127.0.0.1:0" in l for l in lines),
                        "\n".join(lines))
        self.assertFalse(any("listening on" in l for l in lines), "\n".join(lines))
        _, start = sighup(self, p, self.config(["127.0.0.1:0", "127.0.0.2:%d" % p.addresses[0][1]]))
        self.assertIsNotNone(p.wait_stderr(lambda l: "listening on 127.0.0.2:%d" % p.addresses[0][1] in l, start=start))

    def test_a_reload_keeps_and_opens_each_of_several_port_0_listeners_on_one_address(self):
        # Listeners were matched by address across reloads, so two on "127.0.0.1:0" were one:
        # going from one to two opened nothing ("configuration reloaded" all the same), and only
        # the last one's kernel port was remembered, so a reload could name the other's and join
        # its socket.
        p = self.start_portico(self.config(["127.0.0.1:0"]), listeners=1, binary=self.wrapper)
        first = p.addresses[0][1]
        _, start = sighup(self, p, self.config(["127.0.0.1:0", "127.0.0.1:0"]))
        opened = p.wait_stderr(lambda l: "listening on 127.0.0.1:" in l, start=start)
        self.assertIsNotNone(opened, "\n".join(p.stderr_lines()[start:]))
        second = ({self.LOW, self.LOW + 1} - {first}).pop()
        self.assertIn("listening on 127.0.0.1:%d" % second, opened)
        for port in (first, second):
            _, start = sighup(self, p, self.config(["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:%d" % port]),
                              expect_ok=False)
            lines = p.stderr_lines()[start:]
            self.assertTrue(any("listeners[2] 127.0.0.1:%d" % port in l for l in lines), "\n".join(lines))

    def test_a_reload_opens_a_listener_that_names_its_port_first(self):
        first = "127.0.0.1:%d" % self.LOW
        p = self.start_portico(self.config([first]), listeners=1, binary=self.wrapper)
        _, start = sighup(self, p, self.config([first, "127.0.0.2:0", "127.0.0.2:%d" % (self.LOW + 1)]))
        named = [l for l in p.stderr_lines()[start:] if "listening on" in l]
        self.assertEqual(len(named), 2, "\n".join(p.stderr_lines()[start:]))
        self.assertIn("listening on 127.0.0.2:%d" % self.LOW, named[0])
        self.assertIn("listening on 127.0.0.2:%d" % (self.LOW + 1), named[1])


class ReloadOperatorSettings(ReloadBase):

    def connect(self, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(s.close)
        return s

    def test_max_connections_follows_a_reload(self):
        routes = [{"path": "/", "handler": "health"}]
        p = self.start_portico(self.base_config(routes, workers=1, limits={"max_connections": 2}))
        held = [self.connect(p.port) for _ in range(2)]
        for s in held:  # accepted: each answers, and stays open (keep-alive)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(answers(s, 5 * slow_factor()))
        waiting = self.connect(p.port)  # in the kernel's backlog: accepting is paused
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(answers(waiting, 0.5), "a connection beyond max_connections was served")
        sighup(self, p, self.base_config(routes, workers=1, limits={"max_connections": 4}))
        self.assertTrue(answers(waiting, 5 * slow_factor()),
                        "max_connections raised by a reload, yet the waiting connection is not served")
        # and lowered again: the two held plus the one served are at the new limit of 3
        sighup(self, p, self.base_config(routes, workers=1, limits={"max_connections": 3}))
        late = self.connect(p.port)
        late.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(answers(late, 0.5), "max_connections lowered by a reload is not held")

    def test_a_port_another_portico_listens_on_is_refused(self):
        # SO_REUSEPORT would let a second process of the same user share the port, silently
        # taking part of the first one's connections.
        routes = [{"path": "/", "handler": "health"}]
        first = self.start_portico(self.base_config(routes, workers=1))
        taken = "127.0.0.1:%d" % first.port
        path = os.path.join(self.tmpdir(), "second.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(self.base_config(routes, workers=1, listeners=[taken])) + "\n")
        try:
            r = run_portico(["-c", path], timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("a second portico started on %s, already listened on by another" % taken)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("bind %s: Address already in use" % taken, r.stderr)
        # nor does a reload add it as a new listener
        second = self.start_portico(self.base_config(routes, workers=1))
        sighup(self, second, self.base_config(routes, workers=1, listeners=["127.0.0.1:0", taken]),
               expect_ok=False)
        self.assertIn("Address already in use", second.stderr_text())
        self.assertEqual(get(first.port, "/").status, 200)

    def test_a_port_this_process_let_go_of_is_probed_again(self):
        # A port that a reload removed, or that a failed reload opened and closed, is no longer
        # ours: another portico may take it, and a later reload adding it must see so (it was
        # remembered as ours for ever, and both processes listened).
        routes = [{"path": "/", "handler": "health"}]

        def cfg(*ports, **kw):
            return self.base_config(routes, workers=1, listeners=["127.0.0.1:0"] + [
                "127.0.0.1:%d" % x for x in ports], **kw)
        removed = next(x for x in (backends.free_port() for _ in range(20)) if refused(x))
        first = self.start_portico(cfg(removed), listeners=2)
        sighup(self, first, cfg())
        self.assertTrue(wait_for(lambda: refused(removed), timeout=3))
        failed = next(x for x in (backends.free_port() for _ in range(20)) if refused(x) and x != removed)
        # opens `failed`, then cannot open its access log: refused, and the socket closed
        sighup(self, first, cfg(failed, access=os.path.join(self.tmpdir(), "none", "access.log")),
               expect_ok=False)
        self.assertTrue(wait_for(lambda: refused(failed), timeout=3))
        for port in (removed, failed):
            second = self.start_portico(cfg(port), listeners=2)
            _, start = sighup(self, first, cfg(port), expect_ok=False)
            self.assertIn("bind 127.0.0.1:%d: Address already in use" % port,
                          "\n".join(first.stderr_lines()[start:]))
            self.assertEqual(get(port, "/").status, 200)
            second.stop()
        self.assertEqual(get(first.port, "/").status, 200)

    def test_a_listener_moved_to_every_address_on_the_same_port(self):
        # 127.0.0.1:P -> 0.0.0.0:P: the new socket is opened while the old one still listens,
        # which the probe for another process must not take for one (156506e).
        routes = [{"path": "/", "handler": "health"}]
        port = next(x for x in (backends.free_port() for _ in range(20)) if refused(x))

        def cfg(host):
            return self.base_config(routes, workers=2, listeners=["127.0.0.1:0", "%s:%d" % (host, port)])
        p = self.start_portico(cfg("127.0.0.1"), listeners=2)
        self.assertEqual(get(port, "/").status, 200)
        sighup(self, p, cfg("0.0.0.0"))

        def serves():
            # The kernel prefers the more specific address until the old socket closes; what it
            # queued there is served (test_limits_connections), one it completes between the
            # last accept and the close is reset: the move takes a moment.
            try:
                return get(port, "/").status == 200
            except (OSError, ConnectionClosed):
                return False
        self.assertTrue(wait_for(lambda: all(serves() for _ in range(4)), timeout=3))
        self.assertTrue(all(serves() for _ in range(8)), "0.0.0.0:%d after the move" % port)

    def test_a_key_that_does_not_match_is_reported_with_file_line_and_key(self):
        import tls_certs
        _, issued = tls_certs.shared_pki()
        routes = [{"path": "/", "handler": "health"}]

        def cfg(cert, key):
            return self.base_config(routes, workers=1, listeners=[
                "127.0.0.1:0", tls_certs.tls_listener([(cert.cert, key.key)])])
        p = self.start_portico(cfg(issued["site-ec"], issued["site-ec"]))
        line, start = sighup(self, p, cfg(issued["site-ec"], issued["other"]), expect_ok=False)
        self.assertRegex("\n".join(p.stderr_lines()[start:]),
                         r"portico\.yaml:\d+:\d+: listeners\[1\]\.tls\.certificates\[0\]\.key: .*"
                         r"does not match the certificate")
        self.assertEqual(get(p.port, "/").status, 200)

    def test_a_reload_refused_for_tls_leaves_sigusr1_reopening_the_log_in_use(self):
        d = self.tmpdir()
        current, other = os.path.join(d, "access.log"), os.path.join(d, "other.log")
        routes = [{"path": "/", "handler": "health"}]
        import tls_certs
        _, issued = tls_certs.shared_pki()
        p = self.start_portico(self.base_config(routes, workers=1, access=current))
        # A new access log and a TLS listener whose key log cannot be opened: refused as a
        # whole. The key log is opened when the TLS contexts are built, after the new access
        # log (a missing certificate is refused before it: checkTlsFiles, as -t does).
        cert = issued["site-ec"]
        bad = self.base_config(routes, workers=1, access=other, listeners=[
            "127.0.0.1:0", tls_certs.tls_listener([(cert.cert, cert.key)],
                                                  keylog_file=os.path.join(d, "none", "keys.log"))])
        _, start = sighup(self, p, bad, expect_ok=False)
        self.assertIn("keylog_file", "\n".join(p.stderr_lines()[start:]))
        self.assertTrue(os.path.exists(other), "the new access log was not opened before the failure: "
                        "this test no longer reaches the case it guards")
        self.assertEqual(get(p.port, "/before").status, 200)
        os.rename(current, current + ".1")  # logrotate
        start = len(p.stderr_lines())
        p.send_signal(signal.SIGUSR1)
        self.assertIsNotNone(p.wait_stderr(lambda l: "reopening the access log" in l, start=start))
        # logged just before the reopen: the reopened file is there once it is done
        self.assertTrue(wait_for(lambda: os.path.exists(current), timeout=3),
                        "SIGUSR1 after a refused reload did not create %s again" % current)
        self.assertEqual(get(p.port, "/after").status, 200)

        def logged(path):
            try:
                with open(path) as f:
                    return "/after" in f.read()
            except FileNotFoundError:
                return False
        self.assertTrue(wait_for(lambda: logged(current), timeout=3),
                        "after a refused reload, SIGUSR1 did not reopen the access log the workers write; "
                        "stderr:\n%s" % p.stderr_text())


# ---------------------------------------------------------------------------------------------
# WebSockets across reloads
# ---------------------------------------------------------------------------------------------
class ReloadWebSockets(ReloadBase):
    test_timeout = 120

    def setUp(self):
        super().setUp()
        self.ws_backend = self.start_ws_backend("python", deflate=False)
        self.http_backend = self.start_backend(name="h")

    def ws_config(self, extra_routes=(), drop_ws=False, **kw):
        routes = list(extra_routes) + [{"path": "/api/", "upstream": "http"}]
        ups = {"http": {"servers": [self.http_backend.address]}}
        if not drop_ws:
            routes = [
                {"path": "/echo", "handler": "echo"},
                {"path": "/tunnel/", "upstream": "app", "websocket": {"mode": "tunnel"}},
                {"path": "/frames/", "upstream": "app", "websocket": {"mode": "frames"}},
            ] + routes
            ups["app"] = {"servers": [self.ws_backend.address]}
        return self.base_config(routes, ups, **kw)

    def exchange(self, sockets, tag):
        for name, ws in sockets.items():
            for i in range(3):
                msg = "%s %s %d" % (name, tag, i)
                ws.send_text(msg)
                self.assertEqual(ws.recv_message(timeout=5 * slow_factor()),
                                 (OP_TEXT, msg.encode()), "%s after %s" % (name, tag))
            blob = os.urandom(70000)
            ws.send_binary(blob)
            self.assertEqual(ws.recv_message(timeout=5 * slow_factor()), (OP_BINARY, blob),
                             "%s after %s (70000-byte message)" % (name, tag))

    def test_websockets_survive_reloads(self):
        p = self.start_portico(self.ws_config())
        sockets = {"echo": self.ws_connect(p.port, "/echo"),
                   "tunnel": self.ws_connect(p.port, "/tunnel/a"),
                   "frames": self.ws_connect(p.port, "/frames/b")}
        self.exchange(sockets, "start")
        # 1: the same routes and one more
        sighup(self, p, self.ws_config(extra_routes=[{"path": "/new/", "handler": "health"}]))
        self.exchange(sockets, "reload 1")
        self.assertEqual(get(p.port, "/new/x").status, 200)
        # 2: every WebSocket route and the upstream they use are removed
        sighup(self, p, self.ws_config(drop_ws=True))
        r = get(p.port, "/echo")
        self.assertEqual(r.status, 404, "the reload did not take effect: %r" % r)
        time.sleep(1.0)
        self.exchange(sockets, "reload 2")
        # 3: a few more in a row, while messages flow
        for i in range(3):
            sighup(self, p, self.ws_config() if i % 2 else self.ws_config(drop_ws=True))
            self.exchange(sockets, "reload %d" % (i + 3))
        # every connection still ends with a clean close handshake through Portico
        for name, ws in sockets.items():
            ws.send_close(1000, b"bye")
            code, _ = ws.expect_close(timeout=5 * slow_factor())
            self.assertEqual(code, 1000, "%s: close code %r" % (name, code))
        # the backend saw its two connections close normally, not with 1001 or a drop
        closes = wait_for(lambda: len(self.ws_backend.close_events()) >= 2 and
                          self.ws_backend.close_events(), timeout=5)
        self.assertEqual(sorted(e["code"] for e in closes), [1000, 1000], closes)

    def test_reload_drain_timeout_closes_only_older_websockets(self):
        seconds = 1.0 * slow_factor()  # 1s, longer for a sanitizer build
        drain = {"reload_drain_timeout": "%dms" % (seconds * 1000)}
        p = self.start_portico(self.ws_config(**drain))
        old = {"echo": self.ws_connect(p.port, "/echo"),
               "frames": self.ws_connect(p.port, "/frames/old"),
               "tunnel": self.ws_connect(p.port, "/tunnel/old")}
        self.exchange(old, "before")
        sighup(self, p, self.ws_config(**drain))
        t_reload = time.monotonic()
        # not cut at the reload itself
        for name, ws in old.items():
            ws.send_text("still there")
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"still there"), name)
        new = {"echo": self.ws_connect(p.port, "/echo"),
               "frames": self.ws_connect(p.port, "/frames/new")}
        early = time.monotonic() - t_reload
        if early > seconds * 0.8:
            self.skipTest("the machine is too slow to check a %.1fs drain (%.2fs to connect)"
                          % (seconds, early))
        results = {}

        def wait_close(name):
            code, _ = old[name].expect_close(timeout=seconds + 5 * slow_factor())
            results[name] = (code, time.monotonic() - t_reload)

        def wait_eof(name):
            eof = old[name].wait_eof(seconds + 5 * slow_factor())
            results[name] = ("eof" if eof else "open", time.monotonic() - t_reload)

        threads = [threading.Thread(target=wait_close, args=(n,), daemon=True)
                   for n in ("echo", "frames")]
        threads.append(threading.Thread(target=wait_eof, args=("tunnel",), daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 10 * slow_factor())
        # frames mode and the built-in get 1001; an old tunnel has no frames to send: its TCP
        # connection is closed
        for name, expected in (("echo", 1001), ("frames", 1001), ("tunnel", "eof")):
            self.assertIn(name, results, "old %s WebSocket: nothing happened" % name)
            got, after = results[name]
            self.assertEqual(got, expected, "old %s WebSocket after reload_drain_timeout: %r"
                             % (name, got))
            self.assertGreaterEqual(after, seconds * 0.9,
                                    "old %s closed %.2fs after the reload" % (name, after))
            self.assertLess(after, seconds + 1.5 * slow_factor(),
                            "old %s closed %.2fs after the reload" % (name, after))
        # the WebSockets opened after the reload stay and keep exchanging
        time.sleep(0.5)
        self.exchange(new, "after the drain")
        for name, ws in new.items():
            ws.send_close(1000)
            self.assertEqual(ws.expect_close(timeout=5 * slow_factor())[0], 1000, name)

    def test_reload_drain_timeout_is_not_postponed_by_later_reloads(self):
        # An operator reloading more often than reload_drain_timeout (configuration management
        # every minute, a drain of 10 minutes) still gets old WebSockets closed that long after
        # the reload that made them old.
        seconds = 1.5 * slow_factor()
        drain = {"reload_drain_timeout": "%dms" % (seconds * 1000)}
        p = self.start_portico(self.ws_config(**drain))
        ws = self.ws_connect(p.port, "/echo")
        sighup(self, p, self.ws_config(**drain))
        t_first = time.monotonic()
        result = {}

        def wait_close():
            try:
                result["code"] = ws.expect_close(timeout=seconds * 4)[0]
            except Exception as e:  # noqa: BLE001 - reported below
                result["code"] = repr(e)
            result["after"] = time.monotonic() - t_first

        t = threading.Thread(target=wait_close, daemon=True)
        t.start()
        # keep reloading every seconds/3 for 3 drain periods
        while time.monotonic() - t_first < seconds * 3 and t.is_alive():
            time.sleep(seconds / 3)
            sighup(self, p, self.ws_config(**drain))
        t.join(seconds * 4)
        self.assertIn("after", result, "the WebSocket from before the first reload was never "
                      "closed while reloads kept coming every %.1fs (reload_drain_timeout %.1fs)"
                      % (seconds / 3, seconds))
        self.assertEqual(result["code"], 1001,
                         "the WebSocket from before the first reload got %r within %.1fs while "
                         "reloads kept coming every %.1fs (reload_drain_timeout %.1fs): later "
                         "reloads postpone the drain" % (result["code"], result["after"],
                                                         seconds / 3, seconds))
        self.assertLess(result["after"], seconds + 1.0 * slow_factor(),
                        "closed %.2fs after the reload that made it old (reload_drain_timeout "
                        "%.1fs): later reloads postponed the drain" % (result["after"], seconds))

    def test_a_shorter_reload_drain_timeout_is_not_postponed_by_an_earlier_longer_one(self):
        # reload_drain_timeout 30s, then a reload with 1s: the WebSockets older than the second
        # reload close 1s after it (they waited for the first one's 30s).
        seconds = 1.0 * slow_factor()
        p = self.start_portico(self.ws_config())
        ws = self.ws_connect(p.port, "/echo")
        sighup(self, p, self.ws_config(reload_drain_timeout="30s"))
        sighup(self, p, self.ws_config(reload_drain_timeout="%dms" % (seconds * 1000)))
        t_reload = time.monotonic()
        code, _ = ws.expect_close(timeout=seconds + 5 * slow_factor())
        self.assertEqual(code, 1001)
        self.assertLess(time.monotonic() - t_reload, seconds + 2 * slow_factor())

    def test_without_drain_timeout_old_websockets_stay(self):
        p = self.start_portico(self.ws_config())
        ws = self.ws_connect(p.port, "/echo")
        sighup(self, p, self.ws_config())
        frames, eof = ws.read_until_eof(2.5)
        self.assertEqual((frames, eof), ([], False),
                         "a reload without reload_drain_timeout touched an old WebSocket")
        self.exchange({"echo": ws}, "2.5s after the reload")


if __name__ == "__main__":
    main()
