# SPDX-License-Identifier: Apache-2.0
"""Reload under load (issue 5): with steady HTTP traffic (keep-alive clients and clients that
open a connection per request, through an upstream) and WebSocket echo sessions exchanging
continuously (built-in echo, frames mode and tunnel mode to a backend, plus sessions opened and
closed all along), SIGHUP every second loses no request (every request gets its 200) and no
WebSocket (none closed, every message echoed in order).

Environment (defaults keep a CI run near 20 s of reloads):
  PORTICO_RELOAD_SECONDS   how long to reload for (20; the issue's full run is 60)
  PORTICO_RELOAD_INTERVAL  seconds between two SIGHUPs (1)
  PORTICO_RELOAD_HTTP      keep-alive HTTP client threads (4)
  PORTICO_RELOAD_WS        WebSocket echo sessions held open the whole run (6)
"""

import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import ws_client  # noqa: E402
from http_client import ConnectionClosed, RawClient  # noqa: E402
from portico_harness import main, make_config, slow_factor, to_yaml  # noqa: E402
from ws_client import OP_BINARY, OP_TEXT  # noqa: E402
from ws_peers import WsTestCase  # noqa: E402

SECONDS = float(os.environ.get("PORTICO_RELOAD_SECONDS", "20"))
INTERVAL = float(os.environ.get("PORTICO_RELOAD_INTERVAL", "1"))
HTTP_THREADS = int(os.environ.get("PORTICO_RELOAD_HTTP", "4"))
WS_SESSIONS = int(os.environ.get("PORTICO_RELOAD_WS", "6"))
_RELOADED_RE = re.compile(r"configuration reloaded \(generation (\d+)\)")


class Tally:
    """Counts and failures shared by the load threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []       # (seconds since start, what, detail)
        self.max_latency = {}
        self.t0 = time.monotonic()

    def ok(self, kind, latency):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if latency > self.max_latency.get(kind, 0):
                self.max_latency[kind] = latency

    def fail(self, what, detail):
        with self.lock:
            self.failures.append((round(time.monotonic() - self.t0, 2), what, str(detail)[:300]))


class ReloadUnderLoad(WsTestCase):
    test_timeout = SECONDS + 120

    def config(self, flip):
        """Two configurations that differ in what a reload must swap: the upstream's servers and
        balancing, and an extra route."""
        servers = [self.h1.address] if flip else [self.h1.address, self.h2.address]
        routes = [{"path": "/metrics", "handler": "metrics"},
                  {"path": "/echo", "handler": "echo"},
                  {"path": "/frames/", "upstream": "ws", "websocket": {"mode": "frames"}},
                  {"path": "/tunnel/", "upstream": "ws", "websocket": {"mode": "tunnel"}},
                  {"path": "/api/", "upstream": "app"}]
        if flip:
            routes.insert(0, {"path": "/flip/", "handler": "health"})
        return make_config(routes=routes, access="off",
                           upstreams={"app": {"servers": servers,
                                              "balance": "round_robin" if flip else "least_conn"},
                                      "ws": {"servers": [self.wsb.address]}})

    def setUp(self):
        super().setUp()
        self.h1 = self.start_backend(name="h1")
        self.h2 = self.start_backend(name="h2")
        self.wsb = self.start_ws_backend("python", deflate=False)

    # -- load threads -----------------------------------------------------------------------
    def http_keepalive(self, port, stop, tally, n):
        c = None
        i = 0
        while not stop.is_set():
            try:
                if c is None:
                    c = RawClient(port, timeout=10 * slow_factor())
                i += 1
                t = time.monotonic()
                r = c.roundtrip("GET", "/api/k%d/%d" % (n, i))
                if r.status != 200 or not r.body:
                    tally.fail("http keep-alive", "request %d: %d %r" % (i, r.status, r.body[:100]))
                else:
                    tally.ok("http keep-alive", time.monotonic() - t)
                if "close" in r.connection_tokens():
                    tally.fail("http keep-alive", "request %d: Connection: close from Portico" % i)
                    c.close()
                    c = None
            except (OSError, ConnectionClosed, socket.timeout, ValueError) as e:
                tally.fail("http keep-alive", "request %d: %r" % (i, e))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def http_fresh(self, port, stop, tally):
        i = 0
        while not stop.is_set():
            i += 1
            t = time.monotonic()
            try:
                c = RawClient(port, timeout=10 * slow_factor())
                try:
                    r = c.roundtrip("GET", "/api/fresh/%d" % i,
                                    headers=[("Connection", "close")])
                finally:
                    c.close()
                if r.status != 200:
                    tally.fail("http fresh connection", "request %d: %d" % (i, r.status))
                else:
                    tally.ok("http fresh connection", time.monotonic() - t)
            except (OSError, ConnectionClosed, socket.timeout, ValueError) as e:
                tally.fail("http fresh connection", "request %d: %r" % (i, e))

    def ws_session(self, port, path, stop, tally, name):
        kind = "ws " + path.strip("/").split("/")[0]
        try:
            ws = ws_client.WsConnection.connect(port, path, timeout=10 * slow_factor())
        except Exception as e:  # noqa: BLE001
            tally.fail(kind, "%s: connect: %r" % (name, e))
            return
        i = 0
        try:
            while not stop.is_set():
                i += 1
                t = time.monotonic()
                if i % 10 == 0:
                    msg = os.urandom(20000)
                    ws.send_binary(msg)
                    expected = (OP_BINARY, msg)
                else:
                    msg = "%s #%d" % (name, i)
                    ws.send_text(msg)
                    expected = (OP_TEXT, msg.encode())
                got = ws.recv_message()
                if got != expected:
                    tally.fail(kind, "%s message %d: echo %r" % (name, i, got[1][:60]))
                    return
                tally.ok(kind, time.monotonic() - t)
            ws.send_close(1000, b"done")
            code, _ = ws.expect_close(timeout=10 * slow_factor())
            if code != 1000:
                tally.fail(kind, "%s: close answered with %r" % (name, code))
        except Exception as e:  # noqa: BLE001
            tally.fail(kind, "%s after %d messages: %r" % (name, i, e))
        finally:
            ws.close()

    def ws_churn(self, port, stop, tally):
        """Opens an echo WebSocket, exchanges one message, closes it; again and again."""
        i = 0
        while not stop.is_set():
            i += 1
            t = time.monotonic()
            try:
                ws = ws_client.WsConnection.connect(port, "/echo", timeout=10 * slow_factor())
                try:
                    ws.send_text("churn %d" % i)
                    got = ws.recv_message()
                    ws.send_close(1000)
                    code, _ = ws.expect_close()
                finally:
                    ws.close()
                if got != (OP_TEXT, b"churn %d" % i) or code != 1000:
                    tally.fail("ws churn", "session %d: %r, close %r" % (i, got, code))
                else:
                    tally.ok("ws churn", time.monotonic() - t)
            except Exception as e:  # noqa: BLE001
                tally.fail("ws churn", "session %d: %r" % (i, e))

    # -- the test ---------------------------------------------------------------------------
    def test_sighup_every_interval_under_load_loses_nothing(self):
        p = self.start_portico(self.config(False), stop_timeout=30)
        stop = threading.Event()
        tally = Tally()
        threads = []
        for n in range(HTTP_THREADS):
            threads.append(threading.Thread(target=self.http_keepalive,
                                            args=(p.port, stop, tally, n), daemon=True))
        threads.append(threading.Thread(target=self.http_fresh, args=(p.port, stop, tally),
                                        daemon=True))
        paths = ["/echo", "/frames/s", "/tunnel/s"]
        for n in range(WS_SESSIONS):
            path = paths[n % len(paths)]
            threads.append(threading.Thread(target=self.ws_session,
                                            args=(p.port, path, stop, tally, "session%d" % n),
                                            daemon=True))
        threads.append(threading.Thread(target=self.ws_churn, args=(p.port, stop, tally),
                                        daemon=True))
        for t in threads:
            t.start()
        time.sleep(1.0)  # every client is connected and exchanging
        outcomes = []
        deadline = time.monotonic() + SECONDS
        k = 0
        snapshot_counts = []
        while time.monotonic() < deadline:
            k += 1
            with open(p.config_path + ".new", "w") as f:
                f.write(to_yaml(self.config(k % 2 == 1)) + "\n")
            os.replace(p.config_path + ".new", p.config_path)
            start = len(p.stderr_lines())
            sent = time.monotonic()
            p.send_signal(signal.SIGHUP)
            line = p.wait_stderr(lambda l: "configuration reloaded" in l or "reload failed" in l,
                                 timeout=10, start=start)
            outcomes.append(line)
            with tally.lock:
                snapshot_counts.append(sum(tally.counts.values()))
            if not p.alive():
                break
            time.sleep(max(0.0, INTERVAL - (time.monotonic() - sent)))
        time.sleep(1.0)  # traffic after the last reload too
        stop.set()
        for t in threads:
            t.join(30 * slow_factor())
        stuck = [t.name for t in threads if t.is_alive()]

        summary = "%d reloads in %.0fs; completed %r; max latency %s; failures (first 20) %r" % (
            k, SECONDS, tally.counts,
            {key: round(v, 3) for key, v in tally.max_latency.items()}, tally.failures[:20])
        sys.stderr.write("\n[reload under load] " + summary + "\n")
        self.assertTrue(p.alive(), "portico died during the reloads: " + summary)
        self.assertEqual(stuck, [], "load threads stuck: " + summary)
        self.assertEqual(tally.failures, [], summary)
        bad = [(i + 1, l) for i, l in enumerate(outcomes)
               if l is None or not _RELOADED_RE.search(l)]
        self.assertEqual(bad, [], "reloads that did not succeed: %r" % bad[:5])
        gens = [int(_RELOADED_RE.search(l).group(1)) for l in outcomes]
        self.assertEqual(gens, list(range(1, k + 1)), "generations %r" % gens)
        # every kind of traffic made progress between reloads, not only before the first
        for kind in ["http keep-alive", "http fresh connection", "ws churn"] + \
                sorted({"ws " + x.strip("/").split("/")[0] for x in paths[:WS_SESSIONS]}):
            self.assertGreater(tally.counts.get(kind, 0), 0, "no %s completed: %s" % (kind, summary))
        stalls = [b - a for a, b in zip(snapshot_counts, snapshot_counts[1:]) if b == a]
        self.assertEqual(stalls, [], "an interval between two reloads completed nothing: " + summary)
        self.assertGreaterEqual(k, max(1, int(SECONDS / INTERVAL) - 2))
        # the proxy agrees: every upstream answer was a 2xx
        mc = RawClient(p.port)
        try:
            m = mc.roundtrip("GET", "/metrics").body.decode()
        finally:
            mc.close()
        bad_series = [l for l in m.splitlines()
                      if l.startswith("portico_requests_total") and 'route="*/api/"' in l
                      and 'status="2xx"' not in l]
        self.assertEqual(bad_series, [], "non-2xx answers counted by Portico")
        self.assertIn('portico_reloads_total{outcome="ok"} %d' % k, m)


if __name__ == "__main__":
    main()
