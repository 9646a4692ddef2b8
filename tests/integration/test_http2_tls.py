# SPDX-License-Identifier: Apache-2.0
"""HTTP/2 over TLS, the edges: RFC 9113 9.2.2 (h2 never over a TLS 1.2 suite HTTP/2 forbids: ALPN
selects http/1.1 instead, with a warning at start naming the `ciphers` key), probed with openssl
s_client, curl --http2 and Python's ssl + python3-h2; `:scheme: http` over TLS is served, and
the upstream hears https; the HTTP/2 floods and stalls bounded over TLS as on h2c."""

import json
import os
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import h2_frames as h  # noqa: E402
from h2_client import H2Client  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, slow_factor  # noqa: E402
from tls_certs import client_context, s_client, shared_pki, tls_connect, tls_listener  # noqa: E402

HTTP_CLOSE = b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"
FORBIDDEN = "ECDHE-ECDSA-AES128-SHA"       # ephemeral, but CBC: on RFC 9113's Appendix A list
ALLOWED = "ECDHE-ECDSA-AES128-GCM-SHA256"  # RFC 9113 9.2.2's mandatory suite


def run(*cmd, timeout=30.0):
    r = subprocess.run(list(cmd), capture_output=True, timeout=timeout * slow_factor())
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    return r


class Http2CipherSuites(PorticoTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def start(self, alpn=("h2", "http/1.1"), ciphers=ALLOWED + ":" + FORBIDDEN):
        listener = tls_listener([self.certs["site-ec"]], alpn=list(alpn), ciphers=ciphers)
        return self.start_portico(make_config(routes=[{"path": "/", "handler": "health"}],
                                              listeners=[listener]))

    def s_client(self, port, *args):
        return s_client(port, "-CAfile", self.pki.ca_file, "-servername", "site.test", *args,
                        input=HTTP_CLOSE, timeout=15 * slow_factor())

    def curl(self, p, *args):
        return run("curl", "-sS", "--http2", "--resolve", "site.test:%d:127.0.0.1" % p.port,
                   "--cacert", self.pki.ca_file, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                   *args, "https://site.test:%d/" % p.port)

    def test_h2_is_not_selected_over_a_forbidden_tls12_suite(self):
        p = self.start()
        # The warning at start names the file, line and column of `ciphers`.
        self.assertRegex(p.stderr_text(),
                         r"warning: \S+:\d+:\d+: listeners\[0\]\.tls\.ciphers: lets TLS 1\.2 clients "
                         r"pick 1 suite HTTP/2 must not use .*ECDHE-ECDSA-AES128-SHA; over one, ALPN "
                         r"selects HTTP/1\.1 instead of h2")

        r = self.s_client(p.port, "-tls1_2", "-cipher", FORBIDDEN, "-alpn", "h2,http/1.1")
        self.assertRegex(r.stdout, r"Cipher is " + FORBIDDEN)
        self.assertIn("ALPN protocol: http/1.1", r.stdout)
        self.assertIn("HTTP/1.1 200", r.stdout)
        # A client offering h2 only: no protocol in common (RFC 7301 3.2), as for an unknown one.
        r = self.s_client(p.port, "-tls1_2", "-cipher", FORBIDDEN, "-alpn", "h2")
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout + r.stderr, r"no application protocol")
        # An allowed TLS 1.2 suite, and TLS 1.3, get h2.
        r = self.s_client(p.port, "-tls1_2", "-cipher", ALLOWED, "-alpn", "h2,http/1.1")
        self.assertIn("ALPN protocol: h2", r.stdout)
        r = self.s_client(p.port, "-tls1_3", "-alpn", "h2,http/1.1")
        self.assertIn("ALPN protocol: h2", r.stdout)

        # curl --http2 (which does not check the suite itself) falls back to HTTP/1.1.
        r = self.curl(p, "--tls-max", "1.2", "--ciphers", FORBIDDEN)
        self.assertEqual((r.returncode, r.out), (0, "1.1 200"), r.err)
        r = self.curl(p, "--tls-max", "1.2", "--ciphers", ALLOWED)
        self.assertEqual((r.returncode, r.out), (0, "2 200"), r.err)

        # Python's ssl: ALPN says http/1.1 over the forbidden suite, h2 over the allowed one,
        # and a python3-h2 client gets its answer there.
        ctx = client_context(self.pki.ca_file, alpn=["h2", "http/1.1"], maximum=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers(FORBIDDEN)
        with tls_connect(p.port, "site.test", ctx) as c:
            self.assertEqual(c.cipher()[0], FORBIDDEN)
            self.assertEqual(c.selected_alpn_protocol(), "http/1.1")
        ctx = client_context(self.pki.ca_file, alpn=["h2", "http/1.1"], maximum=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers(ALLOWED)
        h2 = H2Client(p.port, ssl_context=ctx, server_hostname="site.test")
        self.addCleanup(h2.close)
        self.assertEqual(h2.sock.selected_alpn_protocol(), "h2")
        sid = h2.request(path="/", scheme="https")
        h2.response(sid, 5 * slow_factor())
        self.assertEqual(h2.status(sid), 200)

    def test_a_list_of_allowed_suites_gives_no_warning(self):
        p = self.start(ciphers="ECDHE+AESGCM:ECDHE+CHACHA20")
        self.assertNotIn("tls.ciphers", p.stderr_text())
        r = self.s_client(p.port, "-tls1_2", "-alpn", "h2,http/1.1")
        self.assertIn("ALPN protocol: h2", r.stdout)


class Http2SchemeOverTls(PorticoTestCase):
    """RFC 9113 8.3.1: `:scheme` is the target URI's. A stream saying `http` over TLS is served
    (README: either scheme on any connection, as nginx, HAProxy and h2o serve it): what the
    upstream hears is the connection's scheme, never the client's claim."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def test_scheme_http_over_tls_is_served_as_https(self):
        backend = self.start_backend(name="b")
        p = self.start_portico(make_config(
            routes=[{"path": "/", "upstream": "app"}], upstreams={"app": {"servers": [backend.address]}},
            listeners=[tls_listener([self.certs["site-ec"]], alpn=["h2", "http/1.1"])]))
        c = H2Client(p.port, ssl_context=client_context(self.pki.ca_file, alpn=["h2"]), server_hostname="site.test")
        self.addCleanup(c.close)
        for scheme in ("http", "https"):
            with self.subTest(scheme=scheme):
                sid = c.request(path="/echo/scheme", scheme=scheme,
                                headers=[("x-forwarded-proto", "http")])
                c.response(sid, 5 * slow_factor())
                self.assertEqual(c.status(sid), 200)
                doc = json.loads(bytes(c.responses[sid]["body"]))
                headers = [(k.lower(), v) for k, v in doc["headers"]]
                self.assertEqual([v for k, v in headers if k == "x-forwarded-proto"], ["https"])


class Http2TlsLimits(PorticoTestCase):
    """The HTTP/2 limits hold over TLS too, where frames arrive in TLS records and answers leave
    through SSL_write (test_http2_conformance.py covers them on h2c): rapid reset (CVE-2023-44487),
    CONTINUATION, SETTINGS and PING floods, WINDOW_UPDATE overflow, a client whose windows stay
    shut (each stream reset after client_send_timeout, the memory it held given back) and one that
    reads nothing at all (the connection ends)."""

    # A rate of 1/s: the rapid-reset bound below holds however many TLS reads the burst takes.
    LIMITS = {"client_send_timeout": "2s", "http2_reset_burst": 50, "http2_reset_rate": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend(name="b")
        self.p = self.start_portico(make_config(
            routes=[{"path": "/healthz", "handler": "health"}, {"path": "/", "upstream": "app"}],
            upstreams={"app": {"servers": [self.backend.address]}},
            listeners=[tls_listener([self.certs["site-ec"]], alpn=["h2", "http/1.1"])], workers=1,
            limits=self.LIMITS))

    def connect(self, **kw):
        c = h.RawH2(self.p.port, ssl_context=client_context(self.pki.ca_file, alpn=["h2"]),
                    server_hostname="site.test", **kw)
        self.addCleanup(c.close)
        self.assertEqual(c.sock.selected_alpn_protocol(), "h2")
        return c

    def test_floods_end_the_connection(self):
        floods = [
            ("CONTINUATION", lambda c: [c.headers(1, c.fields("/healthz"), end_headers=False)] +
             [h.frame(h.CONTINUATION, 0, 1, b"")] * 9, h.PROTOCOL_ERROR),
            ("SETTINGS", lambda c: [h.settings((h.INITIAL_WINDOW_SIZE, 65535))] * 500, h.ENHANCE_YOUR_CALM),
            ("PING", lambda c: [h.ping()] * 2000, h.ENHANCE_YOUR_CALM),
            ("WINDOW_UPDATE overflow", lambda c: [h.window_update(0, 0x7fffffff)], h.FLOW_CONTROL_ERROR),
        ]
        for name, frames, code in floods:
            with self.subTest(name):
                c = self.connect()
                c.send(*frames(c))
                got = c.goaway(5 * slow_factor())
                self.assertIsNotNone(got, name)
                if code is not None:
                    self.assertEqual(got[1], code)
                self.assertTrue(c.wait_closed(5 * slow_factor()), name)
        c = self.connect()
        c.request(1, "/healthz")
        self.assertEqual(c.response(1, 5)[0], 200)

    def test_rapid_reset_in_one_read_reaches_the_upstream_at_most_http2_reset_burst_times(self):
        """CVE-2023-44487 with every HEADERS + RST_STREAM pair in one send (one read, here in a few
        TLS records): nghttp2's own limit queued a GOAWAY at the burst but took the streams that
        followed in the same read, and each went upstream (643 of 1000 with a burst of 200),
        streams its GOAWAY then said were not processed (RFC 9113 6.8: a client may retry them)."""
        c = self.connect()
        frames = []
        for i in range(1000):
            frames += [c.headers(1 + 2 * i, c.fields("/echo/reset?sid=%d" % (1 + 2 * i))), h.rst_stream(1 + 2 * i)]
        c.send(*frames)
        got = c.goaway(5 * slow_factor())
        self.assertIsNotNone(got, "no GOAWAY after 1000 reset streams")
        last_stream_id, code = got
        self.assertTrue(c.wait_closed(5 * slow_factor()))
        time.sleep(0.5 * slow_factor())  # requests already on their way upstream arrive
        sids = [int(r.target.rsplit("=", 1)[1]) for r in list(self.backend.requests)]
        self.assertLessEqual(len(sids), 50 + 1)  # http2_reset_burst, and the stream that overflowed it
        self.assertTrue(all(sid <= last_stream_id for sid in sids), (last_stream_id, sorted(sids)[-5:]))
        self.assertEqual(code, h.ENHANCE_YOUR_CALM)  # as for the other floods

    def test_shut_windows_and_a_client_that_reads_nothing(self):
        rss = self.p.rss_kb()
        c = self.connect(client_settings=[(h.INITIAL_WINDOW_SIZE, 0)])
        for i in range(100):
            c.request(1 + 2 * i, "/stream?n=%d" % (20 * 1024 * 1024))
        codes = [c.rst(1 + 2 * i, 10 * slow_factor()) for i in range(100)]
        self.assertEqual(set(codes), {h.CANCEL})
        self.assertTrue(c.alive())
        c.close()
        # 100 streams of 20 MiB each held at most their 128 KiB each while they lasted.
        self.assertLess(self.p.rss_kb() - rss, 100 * 1024)

        # Windows wide open (500 MiB asked for, far beyond what socket buffers hold): only TCP
        # stops the server, and it never moves.
        logged = len(self.p.stderr_lines())
        c = self.connect(client_settings=[(h.INITIAL_WINDOW_SIZE, 0x7fffffff)])
        c.send(*[c.headers(1 + 2 * i, c.fields("/stream?n=%d" % (5 * 1024 * 1024))) for i in range(100)],
               h.window_update(0, 0x7fff0000))
        # client_send_timeout (2s) passes with no byte taken: the connection ends. The client
        # reads nothing before that (a read is progress: a sleep of 4 s raced the third tick).
        self.assertIsNotNone(self.p.wait_stderr(lambda line: "HTTP/2: took no byte for client_send_timeout" in line,
                                                15, start=logged))
        # What the socket buffers hold still comes, then the end.
        self.assertTrue(c.wait_closed(15 * slow_factor()))


class Http2ResetRateAboveBurst(Http2TlsLimits):
    """A reset rate above the burst is a valid setting (both only need to be > 0): a client that
    stays below the rate is never ended, not by Portico's bucket, nor by nghttp2's own limit kept
    behind it, which refills once per whole second (with burst 5 and rate 100 it used to end such
    a client at its 11th reset, with INTERNAL_ERROR; with burst 20 at its 41st, and the client
    sends 60 in about a second). Burst 20, not 5: Portico's bucket sees resets as it reads them,
    and a worker held up 100 ms on a loaded machine read 6 of them at once (GOAWAY
    ENHANCE_YOUR_CALM after 43 streams, once, in the ASan suite)."""

    LIMITS = {"client_send_timeout": "2s", "http2_reset_burst": 20, "http2_reset_rate": 100}

    def test_resets_below_the_rate_keep_the_connection(self):
        c = self.connect()
        for i in range(60):  # about 60 a second, for a second
            c.send(c.headers(1 + 2 * i, c.fields("/healthz")), h.rst_stream(1 + 2 * i))
            time.sleep(0.015)
        self.assertIsNone(c.goaway(0.5 * slow_factor()))
        c.request(121, "/healthz")
        self.assertEqual(c.response(121, 5)[0], 200)

    # The class's other tests ran above with the stricter limits.
    test_floods_end_the_connection = None
    test_rapid_reset_in_one_read_reaches_the_upstream_at_most_http2_reset_burst_times = None
    test_shut_windows_and_a_client_that_reads_nothing = None


if __name__ == "__main__":
    main()
