# SPDX-License-Identifier: Apache-2.0
"""TLS to upstreams: a Python ssl-wrapped HTTP backend with a certificate from the test CA.
Verification of chain and host name passes with the right CA and name, fails (502) with the
wrong CA or name, `sni` is sent and verified, `verify: false` connects anyway (and is warned
about), connections are reused, and sessions resume."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import PorticoTestCase, main, make_config, run_portico  # noqa: E402
from tls_certs import TlsHttpBackend, shared_pki, tls_listener  # noqa: E402


class UpstreamTlsTest(PorticoTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def tls_backend(self, cert="localhost", **kw):
        b = TlsHttpBackend(self.certs[cert], name="tls-" + cert, **kw).start()
        self.addCleanup(b.stop)
        return b

    def proxy_tls(self, backend, tls, keepalive=None, listeners=1):
        up = {"servers": [backend.address], "tls": tls}
        if keepalive is not None:
            up["keepalive"] = keepalive
        return self.start_portico(make_config(routes=[{"path": "/", "upstream": "app"}],
                                              upstreams={"app": up}, listeners=listeners))

    def get(self, p, target="/echo"):
        return self.client(p.port).roundtrip("GET", target)

    def test_verification_passes_with_the_ca_and_an_ip_san(self):
        b = self.tls_backend("localhost")  # SANs: localhost, 127.0.0.1
        p = self.proxy_tls(b, {"ca": self.pki.ca_file})
        r = self.get(p)
        self.assertEqual(r.status, 200, r.body[:500])
        self.assertEqual(r.json()["backend"], "tls-localhost")
        # An IP host sends no SNI (RFC 6066 3).
        self.assertEqual(b.server_names, [None])
        self.assertEqual(b.tls_errors, [])

    def test_sni_is_sent_and_verified(self):
        b = self.tls_backend("site-ec")  # SANs: site.test, www.site.test
        p = self.proxy_tls(b, {"ca": self.pki.ca_file, "sni": "www.site.test"})
        r = self.get(p)
        self.assertEqual(r.status, 200, r.body[:500])
        self.assertEqual(b.server_names, ["www.site.test"])

    def test_wrong_name_fails_verification(self):
        b = self.tls_backend("site-ec")
        p = self.proxy_tls(b, {"ca": self.pki.ca_file, "sni": "other.test"})
        r = self.get(p)
        self.assertEqual(r.status, 502)
        self.assertEqual(b.request_count(), 0)
        self.assertTrue(p.wait_stderr(lambda l: "upstream" in l and b.address in l, timeout=3),
                        p.stderr_text()[-2000:])
        # The IP address without an IP SAN fails too.
        p2 = self.proxy_tls(b, {"ca": self.pki.ca_file})
        self.assertEqual(self.get(p2).status, 502)
        self.assertEqual(b.request_count(), 0)

    def test_untrusted_ca_fails_verification(self):
        b = self.tls_backend("localhost")
        p = self.proxy_tls(b, {"ca": self.pki.client_ca_file})
        self.assertEqual(self.get(p).status, 502)
        # The system store does not know the test CA either.
        p2 = self.proxy_tls(b, {})
        self.assertEqual(self.get(p2).status, 502)
        self.assertEqual(b.request_count(), 0)

    def test_verify_false_connects_anyway_and_warns(self):
        b = self.tls_backend("site-ec")
        p = self.proxy_tls(b, {"verify": False, "sni": "nobody.test"})
        r = self.get(p)
        self.assertEqual(r.status, 200, r.body[:500])
        self.assertEqual(b.server_names, ["nobody.test"])
        self.assertTrue(p.wait_stderr(lambda l: "warning" in l.lower() and "verify" in l,
                                      timeout=3), p.stderr_text()[-2000:])
        # -t says so too, and still succeeds.
        r = run_portico(["-t", "-c", p.config_path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("upstreams.app.tls.verify", r.stderr)

    def test_keepalive_and_resumption(self):
        b = self.tls_backend("localhost")
        p = self.proxy_tls(b, {"ca": self.pki.ca_file}, keepalive=4)
        for _ in range(5):
            r = self.get(p)
            self.assertEqual(r.status, 200)
        # One client connection per request, but pooled upstream connections: at most one
        # per worker.
        self.assertLessEqual(b.connections, 2)
        self.assertEqual(b.request_count(), 5)

        # Without pooling every request is a new TLS connection; they resume sessions.
        b2 = self.tls_backend("localhost")
        p2 = self.proxy_tls(b2, {"ca": self.pki.ca_file}, keepalive=0)
        for _ in range(6):
            self.assertEqual(self.get(p2).status, 200)
        self.assertEqual(b2.handshakes, 6)
        self.assertEqual(b2.tls_errors, [])
        # After the first full handshake the others resume (Python's server sends 2 TLS 1.3
        # tickets per full handshake and 1 per resumption; each is used once). One more full
        # handshake is tolerated: with two workers two connections may race for a ticket.
        self.assertGreaterEqual(b2.resumed, 4)

    def test_https_in_and_out(self):
        b = self.tls_backend("localhost")
        listener = tls_listener([self.certs["site-ec"]])
        p = self.proxy_tls(b, {"ca": self.pki.ca_file}, listeners=[listener])
        from tls_certs import client_context, https_request, tls_connect
        with tls_connect(p.port, "site.test", client_context(self.pki.ca_file)) as c:
            status, _, body = https_request(c, target="/echo")
            self.assertEqual(status, 200)
            import json
            doc = json.loads(body)
            self.assertEqual(doc["backend"], "tls-localhost")
            headers = {k.lower(): v for k, v in doc["headers"]}
            self.assertEqual(headers.get("x-forwarded-proto"), "https")
            status, _, body = https_request(c, target="/stream?n=2000000")
            self.assertEqual(status, 200)
            self.assertEqual(len(body), 2000000)


if __name__ == "__main__":
    main()
