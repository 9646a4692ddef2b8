# SPDX-License-Identifier: Apache-2.0
"""`portico -t` on TLS configurations: an unreadable certificate, key, client_ca or ca, a key
that does not match its certificate and a passphrase-protected key are errors (exit 1, the
file's line and key path, the file named); an expired certificate or one expiring within 14
days is a warning (exit 0). Starting with such an error fails before listening."""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import PorticoTestCase, main, run_portico  # noqa: E402
from tls_certs import shared_pki  # noqa: E402

ERROR_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<key>[^:\s]+): (?P<msg>.+)$")


class TlsCheckTest(PorticoTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def folder(self):
        """A config folder with copies of the files under the names the configs use."""
        d = self.tmpdir()
        for name, issued in self.certs.items():
            shutil.copy(issued.cert, os.path.join(d, name + ".crt"))
            shutil.copy(issued.key, os.path.join(d, name + ".key"))
        shutil.copy(self.certs["locked"].key, os.path.join(d, "locked.key"))  # encrypted
        shutil.copy(self.pki.ca_file, os.path.join(d, "ca.crt"))
        shutil.copy(self.pki.client_ca_file, os.path.join(d, "client-ca.crt"))
        return d

    def check(self, text, folder=None):
        d = folder or self.folder()
        path = os.path.join(d, "portico.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = run_portico(["-t", "-c", path])
        return r, path, d

    def errors(self, stderr):
        out = []
        for line in stderr.splitlines():
            m = ERROR_RE.match(line)
            if m and not line.startswith("warning:"):
                out.append(m.groupdict())
        return out

    @staticmethod
    def config(certificates, extra_tls="", upstream_tls=None):
        lines = ["listeners:", "  - address: 127.0.0.1:0", "    tls:", "      certificates:"]
        for cert, key in certificates:
            lines.append("        - {cert: %s, key: %s}" % (cert, key))
        if extra_tls:
            lines.append("      " + extra_tls)
        if upstream_tls is not None:
            lines += ["upstreams:", "  app:", "    servers: [127.0.0.1:9]",
                      "    tls: %s" % upstream_tls,
                      "routes:", "  - path: /", "    upstream: app"]
        else:
            lines += ["routes:", "  - path: /", "    handler: health"]
        return "\n".join(lines) + "\n"

    def assert_error(self, r, path, line, key, message_parts):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        errors = self.errors(r.stderr)
        match = [e for e in errors if e["key"] == key]
        self.assertTrue(match, "no error at %s in:\n%s" % (key, r.stderr))
        e = match[0]
        self.assertEqual(e["file"], path)
        self.assertEqual(int(e["line"]), line, r.stderr)
        for part in message_parts:
            self.assertIn(part, e["msg"])
        self.assertNotIn("configuration OK", r.stdout)

    def test_good_configuration(self):
        r, _, _ = self.check(self.config([("site-ec.crt", "site-ec.key"),
                                          ("site-rsa.crt", "site-rsa.key"),
                                          ("wild.crt", "wild.key")],
                                         extra_tls="client_ca: client-ca.crt",
                                         upstream_tls="{ca: ca.crt, sni: site.test}"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        self.assertNotIn("warning", r.stderr)

    def test_unreadable_certificate_and_key(self):
        r, path, d = self.check(self.config([("site-ec.crt", "site-ec.key"),
                                             ("missing.crt", "missing.key")]))
        self.assert_error(r, path, 6, "listeners[0].tls.certificates[1].cert",
                          [os.path.join(d, "missing.crt"), "cannot read",
                           "No such file or directory"])
        self.assert_error(r, path, 6, "listeners[0].tls.certificates[1].key",
                          [os.path.join(d, "missing.key"), "cannot read"])
        self.assertIn("2 errors", r.stderr)
        # A directory, and a file that holds no certificate.
        r, path, d = self.check(self.config([(".", "site-ec.key")]))
        self.assert_error(r, path, 5, "listeners[0].tls.certificates[0].cert",
                          ["is a directory"])
        r, path, d = self.check(self.config([("site-ec.key", "site-ec.key")]))
        self.assert_error(r, path, 5, "listeners[0].tls.certificates[0].cert",
                          ["no certificate found"])

    def test_key_that_does_not_match(self):
        r, path, d = self.check(self.config([("site-ec.crt", "site-ec.key"),
                                             ("other.crt", "site-rsa.key")]))
        self.assert_error(r, path, 6, "listeners[0].tls.certificates[1].key",
                          [os.path.join(d, "site-rsa.key"), "does not match",
                           os.path.join(d, "other.crt")])

    def test_a_chain_out_of_order_or_from_another_ca_is_named(self):
        # A chain certificate that did not issue the one before it went out as it was: every
        # client that needs the chain failed to verify, and -t said "configuration OK".
        d = self.folder()
        with open(self.certs["site-ec"].cert) as f:
            pem = f.read()
        blocks = ["-----BEGIN CERTIFICATE-----" + b for b in pem.split("-----BEGIN CERTIFICATE-----")[1:]]
        self.assertEqual(len(blocks), 2, "site-ec.crt: leaf and intermediate")
        with open(self.pki.client_ca_file) as f, open(os.path.join(d, "wrong-ca.crt"), "w") as out:
            out.write(blocks[0] + f.read())
        with open(os.path.join(d, "reversed.crt"), "w") as out:
            out.write(blocks[1] + blocks[0])
        # Leaf, root, intermediate: every certificate is there, the order mixed up.
        with open(self.pki.ca_file) as f, open(os.path.join(d, "mixed.crt"), "w") as out:
            out.write(blocks[0] + f.read() + blocks[1])
        r, path, _ = self.check(self.config([("wrong-ca.crt", "site-ec.key")]), folder=d)
        self.assertEqual(r.returncode, 0, r.stderr)
        warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
        self.assertTrue(any("listeners[0].tls.certificates[0].cert" in w and "did not issue" in w
                            and "CN=site.test" in w and "cannot verify" in w for w in warnings), r.stderr)
        # Out of order: openssl s_client and curl verify it (RFC 8446 4.4.2); it was warned
        # "cannot verify" all the same.
        r, path, _ = self.check(self.config([("mixed.crt", "site-ec.key")]), folder=d)
        self.assertEqual(r.returncode, 0, r.stderr)
        warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
        self.assertEqual(len(warnings), 1, r.stderr)
        self.assertIn("out of order: some older TLS 1.2 clients may fail to verify it", warnings[0])
        self.assertNotIn("cannot verify", warnings[0])
        # The leaf after its issuer: the key matches a later certificate, and the error says so.
        r, path, _ = self.check(self.config([("reversed.crt", "site-ec.key")]), folder=d)
        self.assert_error(r, path, 5, "listeners[0].tls.certificates[0].key",
                          ["does not match", "CN=intermediate", "certificate 2 of the file",
                           "comes first"])

    def test_passphrase_protected_key(self):
        r, path, d = self.check(self.config([("locked.crt", "locked.key")]))
        self.assert_error(r, path, 5, "listeners[0].tls.certificates[0].key",
                          [os.path.join(d, "locked.key"),
                           "passphrase-protected keys are not supported"])

    def test_unreadable_client_ca_and_upstream_ca(self):
        r, path, d = self.check(self.config([("site-ec.crt", "site-ec.key")],
                                            extra_tls="client_ca: nope.pem",
                                            upstream_tls="{ca: gone.pem}"))
        self.assert_error(r, path, 2, "listeners[0].tls.client_ca",
                          [os.path.join(d, "nope.pem"), "cannot read"])
        self.assert_error(r, path, 8, "upstreams.app.tls.ca",
                          [os.path.join(d, "gone.pem"), "cannot read"])

    def test_expiry_warnings(self):
        r, path, d = self.check(self.config([("site-ec.crt", "site-ec.key"),
                                             ("expired.crt", "expired.key"),
                                             ("soon.crt", "soon.key")]))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        warnings = [l for l in r.stderr.splitlines() if l.startswith("warning: ")]
        self.assertEqual(len(warnings), 2, r.stderr)
        self.assertIn("%s:6:" % path, warnings[0])
        self.assertIn("listeners[0].tls.certificates[1].cert", warnings[0])
        self.assertRegex(warnings[0], r"expired\.crt: certificate CN=expired\.test expired on "
                                      r"\d{4}-\d\d-\d\d")
        self.assertIn("%s:7:" % path, warnings[1])
        self.assertIn("listeners[0].tls.certificates[2].cert", warnings[1])
        self.assertIn("expires in 3 days", warnings[1])

    def test_errors_and_warnings_together_report_everything(self):
        r, path, d = self.check(self.config([("expired.crt", "expired.key"),
                                             ("locked.crt", "locked.key"),
                                             ("other.crt", "site-ec.key")]))
        self.assertEqual(r.returncode, 1)
        keys = [e["key"] for e in self.errors(r.stderr)]
        self.assertIn("listeners[0].tls.certificates[1].key", keys)
        self.assertIn("listeners[0].tls.certificates[2].key", keys)
        self.assertIn("expired on", r.stderr)

    def test_start_fails_before_listening(self):
        _, path, _ = self.check(self.config([("site-ec.crt", "missing.key")]))
        r = run_portico(["-c", path], timeout=20)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertNotIn("listening on", r.stderr)
        self.assertIn("listeners[0].tls.certificates[0].key", r.stderr)


if __name__ == "__main__":
    main()
