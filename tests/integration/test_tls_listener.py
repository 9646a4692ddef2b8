# SPDX-License-Identifier: Apache-2.0
"""TLS on a listener, probed with `openssl s_client` and Python's ssl module: the certificate
SNI selects (exact, wildcard, default), RSA or ECDSA by what the client supports, ALPN,
min_version, client certificates (mTLS), session resumption with tickets and with the cache,
and a failed handshake (plain HTTP on the TLS port) that is logged and counted without
disturbing other connections. Certificates come from tests/support/tls_certs.py (openssl)."""

import os
import re
import signal
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import PorticoTestCase, main, make_config, slow_factor  # noqa: E402
from tls_certs import (client_context, https_request, s_client, shared_pki,  # noqa: E402
                       tls_connect, tls_listener)

HTTP_CLOSE = b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"


def subject_cn(output):
    """The CN of the server certificate in s_client's output."""
    m = re.search(r"^subject=.*CN\s*=\s*([^,\n]+)", output, re.M)
    return m.group(1).strip() if m else None


class TlsListenerTest(PorticoTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def start(self, certificates=("site-ec", "other", "wild"), routes=None, extra=(), **tls):
        routes = routes or [{"path": "/metrics", "handler": "metrics"},
                            {"path": "/", "handler": "health"}]
        listener = tls_listener([self.certs[n] for n in certificates], **tls)
        return self.start_portico(make_config(routes=routes, listeners=[listener] + list(extra)))

    def s_client(self, port, *args, **kw):
        kw.setdefault("timeout", 15 * slow_factor())
        return s_client(port, "-CAfile", self.pki.ca_file, *args, **kw)

    # -- SNI ---------------------------------------------------------------------------------
    def test_sni_selects_the_certificate(self):
        p = self.start()
        cases = [("site.test", "site.test"), ("www.site.test", "site.test"),
                 ("other.test", "other.test"), ("a.wild.test", "*.wild.test"),
                 ("unknown.test", "site.test")]
        for sni, cn in cases:
            with self.subTest(sni=sni):
                r = self.s_client(p.port, "-servername", sni, input=HTTP_CLOSE)
                self.assertEqual(subject_cn(r.stdout), cn, r.stdout[-2000:])
        # Names the certificate covers verify; the default certificate for an unknown name
        # does not (the client decides).
        r = self.s_client(p.port, "-servername", "a.wild.test", "-verify_hostname",
                          "a.wild.test", "-verify_return_error", input=HTTP_CLOSE)
        self.assertIn("Verify return code: 0 (ok)", r.stdout)
        self.assertIn("HTTP/1.1 200", r.stdout)
        r = self.s_client(p.port, "-noservername", input=HTTP_CLOSE)
        self.assertEqual(subject_cn(r.stdout), "site.test")

    def test_rsa_or_ecdsa_by_client_capability(self):
        p = self.start(certificates=("site-rsa", "site-ec"))
        for version in ("-tls1_2", "-tls1_3"):
            with self.subTest(version=version):
                r = self.s_client(p.port, version, "-servername", "site.test", input=HTTP_CLOSE)
                self.assertRegex(r.stdout, r"Peer signature type: ECDSA", r.stdout[-1500:])
                r = self.s_client(p.port, version, "-servername", "site.test", "-sigalgs",
                                  "rsa_pss_rsae_sha256:RSA+SHA256", input=HTTP_CLOSE)
                self.assertRegex(r.stdout, r"Peer signature type: RSA", r.stdout[-1500:])
                self.assertIn("HTTP/1.1 200", r.stdout)

    def test_chain_is_sent(self):
        p = self.start()
        r = self.s_client(p.port, "-servername", "site.test", "-showcerts",
                          "-verify_return_error", input=HTTP_CLOSE)
        self.assertEqual(r.stdout.count("BEGIN CERTIFICATE"), 2, r.stdout[-3000:])
        self.assertIn("Verify return code: 0 (ok)", r.stdout)

    # -- ALPN and versions -------------------------------------------------------------------
    def test_alpn(self):
        p = self.start()
        r = self.s_client(p.port, "-servername", "site.test", "-alpn", "h2,http/1.1",
                          input=HTTP_CLOSE)
        self.assertIn("ALPN protocol: http/1.1", r.stdout)
        self.assertIn("HTTP/1.1 200", r.stdout)
        # No protocol in common: no_application_protocol (RFC 7301 3.2).
        r = self.s_client(p.port, "-servername", "site.test", "-alpn", "h2", input=HTTP_CLOSE)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout + r.stderr, r"no application protocol")
        self.assertNotIn("HTTP/1.1 200", r.stdout)
        # A client without ALPN is served.
        r = self.s_client(p.port, "-servername", "site.test", input=HTTP_CLOSE)
        self.assertIn("No ALPN negotiated", r.stdout)
        self.assertIn("HTTP/1.1 200", r.stdout)

    def test_min_version_refuses_older_clients(self):
        p = self.start(min_version="1.3")
        r = self.s_client(p.port, "-servername", "site.test", "-tls1_2", input=HTTP_CLOSE)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout + r.stderr, r"protocol version|unsupported protocol")
        self.assertNotIn("HTTP/1.1 200", r.stdout)
        r = self.s_client(p.port, "-servername", "site.test", "-tls1_3", input=HTTP_CLOSE)
        self.assertIn("HTTP/1.1 200", r.stdout)
        self.assertIn("TLSv1.3", r.stdout)
        # The default (1.2) accepts TLS 1.2.
        p2 = self.start()
        r = self.s_client(p2.port, "-servername", "site.test", "-tls1_2", input=HTTP_CLOSE)
        self.assertIn("HTTP/1.1 200", r.stdout)

    def test_ciphers_limit_tls12(self):
        p = self.start(ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
        r = self.s_client(p.port, "-servername", "site.test", "-tls1_2", input=HTTP_CLOSE)
        self.assertRegex(r.stdout, r"Cipher\s+: ECDHE-ECDSA-AES256-GCM-SHA384")
        r = self.s_client(p.port, "-servername", "site.test", "-tls1_2", "-cipher",
                          "ECDHE-ECDSA-AES128-GCM-SHA256", input=HTTP_CLOSE)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("HTTP/1.1 200", r.stdout)

    # -- mTLS --------------------------------------------------------------------------------
    def test_client_certificates(self):
        p = self.start(client_ca=self.pki.client_ca_file)
        alice, mallory = self.certs["alice"], self.certs["mallory"]
        for version in ("-tls1_2", "-tls1_3"):
            with self.subTest(version=version):
                r = self.s_client(p.port, version, "-servername", "site.test", "-cert",
                                  alice.cert, "-key", alice.key, input=HTTP_CLOSE)
                self.assertIn("HTTP/1.1 200", r.stdout, r.stdout[-1500:] + r.stderr)
                # The CA names the server asks for.
                self.assertIn("Acceptable client certificate CA names", r.stdout)
                self.assertIn("client-ca", r.stdout)

                # Refused: with TLS 1.2 inside the handshake; with TLS 1.3 the client has
                # finished already and gets the alert (or, when the server's close overtakes
                # it, a reset) instead of a response.
                refused = r"certificate required|handshake failure|unknown ca|alert|errno=104"
                r = self.s_client(p.port, version, "-servername", "site.test", input=HTTP_CLOSE)
                self.assertNotIn("HTTP/1.1 200", r.stdout)
                self.assertRegex(r.stdout + r.stderr, refused)

                r = self.s_client(p.port, version, "-servername", "site.test", "-cert",
                                  mallory.cert, "-key", mallory.key, input=HTTP_CLOSE)
                self.assertNotIn("HTTP/1.1 200", r.stdout)
                self.assertRegex(r.stdout + r.stderr, refused)
        self.assertTrue(p.wait_stderr(lambda l: "TLS handshake failed" in l, timeout=3))

    def test_a_reload_that_drops_a_client_ca_ends_the_sessions_it_let_in(self):
        # The operator takes a CA out of client_ca (same file, new content) and reloads: a
        # client whose certificate that CA issued must not get in by resuming a session from
        # before (a resumption skips the certificate check, and the ticket keys outlive the
        # reload). It resumed, with TLS 1.2 and 1.3, while the session ID context named the
        # file by path only.
        ca_file = os.path.join(self.tmpdir(), "clients.pem")
        with open(self.pki.client_ca_file) as f, open(ca_file, "w") as out:
            out.write(f.read())
        p = self.start(certificates=("site-ec",), client_ca=ca_file)
        alice = self.certs["alice"]
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                with open(self.pki.client_ca_file) as f, open(ca_file, "w") as out:
                    out.write(f.read())
                self._sighup(p)
                sess = os.path.join(self.tmpdir(), "session.pem")
                r = self.s_client(p.port, version, "-servername", "site.test", "-cert",
                                  alice.cert, "-key", alice.key, "-sess_out", sess,
                                  input=HTTP_CLOSE)
                self.assertIn("HTTP/1.1 200", r.stdout, r.stdout[-1500:] + r.stderr)
                # Unchanged CA: the session resumes across a reload.
                self._sighup(p)
                r = self.s_client(p.port, version, "-servername", "site.test", "-sess_in",
                                  sess, "-sess_out", sess, input=HTTP_CLOSE)
                self.assertIn("Reused,", r.stdout)
                self.assertIn("HTTP/1.1 200", r.stdout)
                # The CA replaced by another: no resumption, and no certificate: refused.
                with open(self.pki.other_client_ca) as f, open(ca_file, "w") as out:
                    out.write(f.read())
                self._sighup(p)
                r = self.s_client(p.port, version, "-servername", "site.test", "-sess_in",
                                  sess, input=HTTP_CLOSE)
                self.assertFalse("Reused," in r.stdout, "resumed after the CA was removed")
                self.assertFalse("HTTP/1.1 200" in r.stdout, "served after the CA was removed")

    def _sighup(self, p):
        start = len(p.stderr_lines())
        p.send_signal(signal.SIGHUP)
        line = p.wait_stderr(lambda l: "configuration reloaded" in l or "reload failed" in l,
                             timeout=10, start=start)
        self.assertIsNotNone(line, p.stderr_text()[-2000:])
        self.assertIn("configuration reloaded", line)

    # -- resumption --------------------------------------------------------------------------
    def _resumes(self, port, version, extra=()):
        d = self.tmpdir()
        sess = os.path.join(d, "session.pem")
        r = self.s_client(port, version, "-servername", "site.test", "-sess_out", sess,
                          *extra, input=HTTP_CLOSE)
        self.assertIn("HTTP/1.1 200", r.stdout)
        self.assertTrue(os.path.exists(sess))
        results = []
        for _ in range(2):
            r = self.s_client(port, version, "-servername", "site.test", "-sess_in", sess,
                              "-sess_out", sess, *extra, input=HTTP_CLOSE)
            self.assertIn("HTTP/1.1 200", r.stdout)
            results.append("Reused," in r.stdout)
        return results

    def test_session_tickets_resume_on_every_worker(self):
        p = self.start(certificates=("site-ec",))
        # Two workers: consecutive connections land on either; the shared ticket keys make
        # every one resume, repeatedly (TLS 1.3 gets a fresh ticket each time).
        self.assertEqual(self._resumes(p.port, "-tls1_3"), [True, True])
        self.assertEqual(self._resumes(p.port, "-tls1_2"), [True, True])

    def test_a_session_resumes_only_for_the_names_of_its_certificate(self):
        # RFC 6066 3: a server MUST NOT resume a session for another server name. A session of
        # other.test offered with SNI site.test was resumed (every certificate group shared
        # one session ID context): the client got other.test's session for site.test.
        for tickets in (True, False):
            p = self.start(certificates=("site-ec", "other"), session_tickets=tickets)
            for version in ("-tls1_2", "-tls1_3"):
                with self.subTest(tickets=tickets, version=version):
                    sess = os.path.join(self.tmpdir(), "session.pem")
                    extra = () if tickets else ("-no_ticket",)
                    r = self.s_client(p.port, version, "-servername", "other.test", "-sess_out",
                                      sess, *extra, input=HTTP_CLOSE)
                    self.assertIn("HTTP/1.1 200", r.stdout)
                    r = self.s_client(p.port, version, "-servername", "site.test", "-sess_in", sess,
                                      *extra, input=HTTP_CLOSE)
                    self.assertFalse("Reused," in r.stdout, "other.test's session resumed for site.test")
                    self.assertEqual(subject_cn(r.stdout), "site.test")
                    self.assertIn("HTTP/1.1 200", r.stdout)
                    # The same names (another case, a trailing dot) resume.
                    r = self.s_client(p.port, version, "-servername", "OTHER.test.", "-sess_in", sess,
                                      *extra, input=HTTP_CLOSE)
                    self.assertTrue("Reused," in r.stdout, r.stdout[-1500:])

    def test_session_cache_resumes_without_tickets(self):
        p = self.start(certificates=("site-ec",), session_tickets=False)
        self.assertEqual(self._resumes(p.port, "-tls1_2", ("-no_ticket",)), [True, True])
        self.assertEqual(self._resumes(p.port, "-tls1_3"), [True, True])

    # -- failures ----------------------------------------------------------------------------
    def test_failed_handshake_does_not_disturb_others(self):
        p = self.start(certificates=("site-ec",))
        ctx = client_context(self.pki.ca_file)
        keep = tls_connect(p.port, "site.test", ctx)
        self.addCleanup(keep.close)
        status, _, _ = https_request(keep, target="/")
        self.assertEqual(status, 200)

        # Plain HTTP on the TLS port; garbage; a client that hangs up mid-handshake.
        for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(64), b"\x16\x03\x01"):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5 * slow_factor())
            s.sendall(payload)
            if payload == b"\x16\x03\x01":
                s.close()
                continue
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            s.close()
            if payload.startswith(b"GET"):
                # answered in plain text, as nginx does (test_http_request_checks.py)
                self.assertIn(b"plain HTTP request was sent to HTTPS port", data)
            elif not payload.startswith(b"\x16"):
                self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 400 "), data)

        # Concurrent good clients during the bad ones, and the kept connection, still work.
        errors = []

        def good():
            try:
                c = tls_connect(p.port, "site.test", ctx)
                with c:
                    for _ in range(5):
                        st, _, _ = https_request(c, target="/")
                        if st != 200:
                            errors.append(st)
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(repr(e))

        def bad():
            for _ in range(10):
                try:
                    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
                        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                        s.recv(100)
                except OSError:
                    pass

        threads = [threading.Thread(target=good) for _ in range(4)] + \
            [threading.Thread(target=bad) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * slow_factor())
        self.assertEqual(errors, [])
        status, _, _ = https_request(keep, target="/")
        self.assertEqual(status, 200)

        # Logged at info with the client address and the reason, and counted.
        line = p.wait_stderr(lambda l: "TLS handshake failed" in l, timeout=3)
        self.assertIsNotNone(line, p.stderr_text()[-2000:])
        self.assertIn("127.0.0.1", line)
        self.assertRegex(line, r"http request|wrong version|unexpected|packet length|"
                               r"unsupported protocol|record")
        with tls_connect(p.port, "site.test", ctx) as c:
            _, _, body = https_request(c, target="/metrics")
        m = re.search(rb"portico_tls_handshake_failures_total\{[^}]*\} (\d+)", body)
        self.assertIsNotNone(m, body[:2000])
        self.assertGreaterEqual(int(m.group(1)), 20)
        m = re.search(rb"portico_tls_handshakes_total\{[^}]*\} (\d+)", body)
        self.assertIsNotNone(m)
        self.assertGreaterEqual(int(m.group(1)), 6)

    def test_a_handshake_not_complete_within_client_header_timeout_is_a_failed_handshake(self):
        # A ClientHello sent in part, then nothing: closed after client_header_timeout, as it
        # was, but it went unlogged ("keep-alive timeout" at debug) and uncounted.
        listener = tls_listener([self.certs["site-ec"]])
        p = self.start_portico(make_config(routes=[{"path": "/", "handler": "metrics"}],
                                           listeners=[listener], limits={"client_header_timeout": "1s"}))
        stalled = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=10 * slow_factor())
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(20))
            stalled.append(s)
        started = time.monotonic()
        for s in stalled:
            with s:
                self.assertEqual(s.recv(100), b"")
        self.assertLess(time.monotonic() - started, 1 + 3 * slow_factor())
        line = p.wait_stderr(lambda l: "not complete within client_header_timeout" in l, timeout=3)
        self.assertIsNotNone(line, p.stderr_text()[-2000:])
        self.assertIn("TLS handshake failed", line)
        with tls_connect(p.port, "site.test", client_context(self.pki.ca_file)) as c:
            _, _, body = https_request(c, target="/")
        m = re.search(rb"portico_tls_handshake_failures_total\{[^}]*\} (\d+)", body)
        self.assertEqual(int(m.group(1)), 20, body[:2000])

    def test_python_ssl_client_keepalive_and_large_bodies(self):
        backend = self.start_backend(name="b")
        listener = tls_listener([self.certs["site-ec"]])
        p = self.start_portico(make_config(
            routes=[{"path": "/", "upstream": "app"}],
            upstreams={"app": {"servers": [backend.address]}}, listeners=[listener]))
        ctx = client_context(self.pki.ca_file, alpn=["http/1.1"])
        with tls_connect(p.port, "site.test", ctx) as c:
            self.assertEqual(c.selected_alpn_protocol(), "http/1.1")
            self.assertEqual(c.version(), "TLSv1.3")
            for n in (0, 1, 100000, 3 * 1024 * 1024):
                st, h, body = https_request(c, target="/stream?n=%d" % n)
                self.assertEqual(st, 200)
                self.assertEqual(len(body), n)
            payload = os.urandom(2 * 1024 * 1024)
            st, h, body = https_request(c, method="POST", target="/echo", body=payload)
            self.assertEqual(st, 200)
            import hashlib
            import json
            doc = json.loads(body)
            self.assertEqual(doc["body_len"], len(payload))
            self.assertEqual(doc["body_sha256"], hashlib.sha256(payload).hexdigest())
        self.assertEqual(backend.connections, 1)  # one keep-alive upstream connection


if __name__ == "__main__":
    main()
