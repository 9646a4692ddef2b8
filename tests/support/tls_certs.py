# SPDX-License-Identifier: Apache-2.0
"""Test certificates made with the real `openssl` command line (no Python crypto modules).

    pki = TestPki(directory)          # a root CA, an intermediate CA and a client CA
    site = pki.issue("site", ["site.test", "www.site.test"])           # ECDSA P-256 leaf
    rsa = pki.issue("site-rsa", ["site.test", "www.site.test"], key_type="rsa")
    old = pki.issue("old", ["old.test"], expired=True)                  # expired 10 days ago
    soon = pki.issue("soon", ["soon.test"], days=3)                     # expires in 3 days
    locked = pki.issue("locked", ["locked.test"], passphrase="x")       # encrypted key
    alice = pki.issue_client("alice")                                   # for mTLS
    site.cert, site.key, site.leaf   # cert = leaf + intermediate (the chain a server sends)

Files: pki.ca_file (the root, what clients trust), pki.client_ca_file (the client CA, what an
mTLS server trusts), pki.other_client_ca (an unrelated CA whose client certificates must be
refused). Server leaves are signed by the intermediate; client leaves by the client CA.
Dates are set with `openssl ca -startdate/-enddate`, so expired certificates need no faketime.

`standard_set(directory)` issues the set the unit tests use and returns {name: Issued}; run as a
script (`tls_certs.py DIR`) it writes that set into DIR and prints "ok".

Helpers for the integration tests: tls_listener() (a listener entry for make_config),
s_client() (runs `openssl s_client`), client_context() (a Python ssl client context trusting
the test root), https_request() (one request over TLS with http_client-like parsing) and
TlsHttpBackend (backends.HttpBackend behind TLS, for upstream TLS tests).
"""

import datetime
import os
import socket
import ssl
import subprocess
import sys

__all__ = ["TestPki", "Issued", "standard_set", "openssl", "tls_listener", "s_client",
           "client_context", "https_request", "TlsHttpBackend", "shared_pki"]

OPENSSL = os.environ.get("OPENSSL", "openssl")


def openssl(*args, input=None):
    """Runs `openssl ARGS`; raises RuntimeError with its stderr when it fails."""
    p = subprocess.run([OPENSSL] + list(args), input=input, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args),
                                                       p.stderr.decode("utf-8", "replace")))
    return p.stdout


def _asn1_time(dt):
    # openssl ca -startdate/-enddate: YYYYMMDDHHMMSSZ (GeneralizedTime, always accepted)
    return dt.strftime("%Y%m%d%H%M%SZ")


class Issued:
    """Paths of one issued certificate: cert (leaf + chain), leaf (leaf only), key."""

    def __init__(self, name, cert, leaf, key, names):
        self.name = name
        self.cert = cert
        self.leaf = leaf
        self.key = key
        self.names = list(names)

    def __repr__(self):
        return "Issued(%s, %s)" % (self.name, self.names)


class _Ca:
    """One certificate authority managed with `openssl ca` (its own database and serial)."""

    def __init__(self, directory, name, key_type="ec", parent=None):
        self.dir = os.path.join(directory, name)
        os.makedirs(os.path.join(self.dir, "new"), exist_ok=True)
        self.name = name
        self.key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "ca.crt")
        self.conf = os.path.join(self.dir, "ca.cnf")
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("%016X\n" % (int.from_bytes(os.urandom(7), "big") | 1))
        with open(self.conf, "w") as f:
            f.write(_CA_CONF.replace("@DIR@", self.dir))
        _new_key(self.key, key_type)
        subject = "/O=Portico Tests/CN=%s" % name
        if parent is None:
            start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
            csr = os.path.join(self.dir, "ca.csr")
            openssl("req", "-new", "-key", self.key, "-subj", subject, "-out", csr)
            openssl("ca", "-batch", "-notext", "-config", self.conf, "-selfsign", "-keyfile",
                    self.key, "-in", csr, "-out", self.cert, "-extensions", "v3_ca",
                    "-startdate", _asn1_time(start),
                    "-enddate", _asn1_time(start + datetime.timedelta(days=3650)))
        else:
            parent._sign(self.key, subject, self.cert, extensions="v3_ca", days=3000)
        self.parent = parent

    def _sign(self, key, subject, out, extensions, days=None, start=None, end=None,
              sans=()):
        csr = out + ".csr"
        openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
        now = datetime.datetime.now(datetime.timezone.utc)
        start = start or now - datetime.timedelta(hours=1)
        end = end or now + datetime.timedelta(days=days or 30)
        ext = out + ".ext"
        with open(ext, "w") as f:
            f.write("[ext]\n" + _EXTENSIONS[extensions])
            if sans:
                f.write("subjectAltName = %s\n" % ",".join(
                    ("IP:" if _is_ip(n) else "DNS:") + n for n in sans))
        openssl("ca", "-batch", "-notext", "-config", self.conf, "-in", csr, "-out", out,
                "-extfile", ext, "-extensions", "ext",
                "-startdate", _asn1_time(start), "-enddate", _asn1_time(end))


def _is_ip(name):
    return name.replace(".", "").isdigit() or ":" in name


def _new_key(path, key_type, passphrase=None):
    if key_type == "ec":
        args = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    elif key_type == "rsa":
        args = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    else:
        raise ValueError("key_type is ec or rsa")
    openssl(*(args + ["-out", path]))
    os.chmod(path, 0o600)
    if passphrase is not None:
        # The plain key stays next to it (needed to sign the request), the encrypted one is
        # what the test configures.
        openssl("pkey", "-in", path, "-aes256", "-passout", "pass:" + passphrase,
                "-out", path + ".enc")


_CA_CONF = """\
[ca]
default_ca = ca_default
[ca_default]
dir = @DIR@
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
private_key = $dir/ca.key
certificate = $dir/ca.crt
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[policy_any]
organizationName = optional
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_EXTENSIONS = {
    "v3_ca": "basicConstraints = critical,CA:true\nkeyUsage = critical,keyCertSign,cRLSign\n"
             "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    "server": "basicConstraints = critical,CA:false\n"
              "keyUsage = critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\n"
              "authorityKeyIdentifier = keyid\n",
    "client": "basicConstraints = critical,CA:false\nkeyUsage = critical,digitalSignature\n"
              "extendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\n"
              "authorityKeyIdentifier = keyid\n",
}


class TestPki:
    """A root CA, an intermediate that signs server certificates, a client CA for mTLS and an
    unrelated client CA, all under `directory`."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.root = _Ca(directory, "root")
        self.intermediate = _Ca(directory, "intermediate", parent=self.root)
        self.client_ca = _Ca(directory, "client-ca")
        self.other_client_ca_obj = _Ca(directory, "other-client-ca")
        self.ca_file = self.root.cert
        self.client_ca_file = self.client_ca.cert
        self.other_client_ca = self.other_client_ca_obj.cert

    def issue(self, name, names, key_type="ec", days=30, expired=False, passphrase=None,
              ca=None, client=False):
        """A leaf for `names` (DNS or IP SANs; the first is also the CN). expired: valid from
        40 days ago to 10 days ago. passphrase: Issued.key is encrypted with it (aes256).
        Returns Issued; Issued.cert holds the leaf followed by its intermediate."""
        ca = ca or (self.client_ca if client else self.intermediate)
        base = os.path.join(self.dir, name)
        key = base + ".key"
        _new_key(key, key_type, passphrase)
        leaf = base + ".leaf.crt"
        now = datetime.datetime.now(datetime.timezone.utc)
        start = end = None
        if expired:
            start, end = now - datetime.timedelta(days=40), now - datetime.timedelta(days=10)
        ca._sign(key, "/O=Portico Tests/CN=%s" % names[0], leaf,
                 extensions="client" if client else "server", days=days, start=start,
                 end=end, sans=names)
        cert = base + ".crt"
        with open(cert, "w") as out:
            for part in [leaf] + ([ca.cert] if ca.parent is not None else []):
                with open(part) as f:
                    out.write(f.read())
        return Issued(name, cert, leaf, key + ".enc" if passphrase is not None else key, names)

    def issue_client(self, name, key_type="ec", other_ca=False):
        """A client certificate (extendedKeyUsage clientAuth) from the client CA, or from the
        unrelated CA when other_ca."""
        return self.issue(name, [name], key_type=key_type, client=True,
                          ca=self.other_client_ca_obj if other_ca else self.client_ca)


def standard_set(directory):
    """The certificates the unit tests use; returns {name: Issued} and writes ca.crt,
    client-ca.crt and other-client-ca.crt next to them."""
    return _standard_set_with_pki(directory)[1]


def _standard_set_with_pki(directory):
    pki = TestPki(directory)
    issued = {
        "site-ec": pki.issue("site-ec", ["site.test", "www.site.test"]),
        "site-rsa": pki.issue("site-rsa", ["site.test", "www.site.test"], key_type="rsa"),
        "other": pki.issue("other", ["other.test"]),
        "www": pki.issue("www", ["www.site.test", "api.site.test"]),
        "wild": pki.issue("wild", ["*.wild.test"]),
        "expired": pki.issue("expired", ["expired.test"], expired=True),
        "soon": pki.issue("soon", ["soon.test"], days=3),
        "locked": pki.issue("locked", ["locked.test"], passphrase="x"),
        "localhost": pki.issue("localhost", ["localhost", "127.0.0.1"]),
        "alice": pki.issue_client("alice"),
        "mallory": pki.issue_client("mallory", other_ca=True),
    }
    for src, dst in ((pki.ca_file, "ca.crt"), (pki.client_ca_file, "client-ca.crt"),
                     (pki.other_client_ca, "other-client-ca.crt")):
        with open(src) as f, open(os.path.join(directory, dst), "w") as out:
            out.write(f.read())
    return pki, issued


# ---------------------------------------------------------------------------------------------
# Integration test helpers
# ---------------------------------------------------------------------------------------------
_shared = {}


def shared_pki():
    """A TestPki with standard_set() issued, made once per process in a temporary folder that
    is removed at exit. Returns (pki, issued)."""
    if "pki" not in _shared:
        import atexit
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="portico-tls-")
        atexit.register(shutil.rmtree, d, True)
        pki, issued = _standard_set_with_pki(d)
        _shared["pki"] = (pki, issued)
    return _shared["pki"]


def tls_listener(certificates, address="127.0.0.1:0", **tls):
    """A listener entry for portico_harness.make_config(listeners=[...]): `certificates` is a
    list of Issued (or (cert, key) pairs); other keyword arguments go into the tls block
    (min_version="1.3", alpn=[...], client_ca=path, session_tickets=False, ciphers=...)."""
    entries = []
    for c in certificates:
        cert, key = (c.cert, c.key) if isinstance(c, Issued) else c
        entries.append({"cert": cert, "key": key})
    block = {"certificates": entries}
    block.update(tls)
    return {"address": address, "tls": block}


def s_client(port, *args, input=b"", timeout=15.0, host="127.0.0.1"):
    """Runs `openssl s_client -connect HOST:PORT -ign_eof ARGS` with `input` on stdin (sent
    once the handshake is done; s_client then waits until the server closes, so send a
    request with "Connection: close"); returns subprocess.CompletedProcess with text stdout
    and stderr (returncode 0 or 1)."""
    cmd = [OPENSSL, "s_client", "-connect", "%s:%d" % (host, port), "-ign_eof"] + list(args)
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    p.stdout = p.stdout.decode("utf-8", "replace")
    p.stderr = p.stderr.decode("utf-8", "replace")
    return p


def client_context(cafile=None, cert=None, alpn=None, maximum=None, minimum=None):
    """An ssl.SSLContext for a client: trusts `cafile` (verifying the host name), presents
    `cert` (an Issued) when given, offers `alpn`, limits versions (ssl.TLSVersion)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if maximum is not None:
        ctx.maximum_version = maximum
    if minimum is not None:
        ctx.minimum_version = minimum
    return ctx


def tls_connect(port, server_hostname, ctx, host="127.0.0.1", timeout=10.0):
    """A connected, handshaken ssl socket to 127.0.0.1:port with SNI server_hostname."""
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def read_http_response(sock, limit=1 << 24):
    """Reads one HTTP/1.1 response (Content-Length, chunked or close-delimited) from `sock`;
    returns (status, headers dict with lower-case names, body bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response head: %r" % buf[:200])
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(body) < n:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed in the body")
            body += data
        return status, headers, body[:n]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            while b"\r\n" not in body:
                body += sock.recv(65536)
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(body) < size + 2:
                body += sock.recv(65536)
            out += body[:size]
            body = body[size + 2:]
            if size == 0:
                return status, headers, out
    if status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    while len(body) < limit:
        data = sock.recv(65536)
        if not data:
            break
        body += data
    return status, headers, body


def https_request(sock, method="GET", target="/", host="localhost", headers=(), body=None):
    """Sends one request on an (ssl) socket and reads the response: (status, headers, body)."""
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host]
    lines += ["%s: %s" % kv for kv in headers]
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
    return read_http_response(sock)


def make_tls_backend_class():
    """TlsHttpBackend, built on first use so that this file runs without tests/support on the
    path when used as a script."""
    import backends

    class TlsHttpBackend(backends.HttpBackend):
        """backends.HttpBackend behind TLS: `issued` is the server certificate (Issued);
        client_ca (a path) requires client certificates. Records the SNI of every handshake
        in .server_names, failed handshakes' reasons in .tls_errors, and counts handshakes
        and resumed ones (.handshakes, .resumed)."""

        def __init__(self, issued, client_ca=None, **kw):
            super().__init__(**kw)
            self.server_names = []
            self.tls_errors = []
            self.handshakes = 0
            self.resumed = 0
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(issued.cert, issued.key)
            if client_ca:
                ctx.load_verify_locations(client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED

            def on_sni(sslsock, name, context):
                with self._lock:
                    self.server_names.append(name)
            ctx.sni_callback = on_sni
            self.ssl_context = ctx

        def _serve(self, sock, addr, conn_id):
            try:
                sock.settimeout(10)
                tls = self.ssl_context.wrap_socket(sock, server_side=True)
                tls.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                with self._lock:
                    self.tls_errors.append(str(e))
                    self.active_connections -= 1
                    self._socks.discard(sock)
                try:
                    sock.close()
                except OSError:
                    pass
                return
            with self._lock:
                self.handshakes += 1
                if tls.session_reused:
                    self.resumed += 1
                self._socks.discard(sock)
                self._socks.add(tls)
            super()._serve(tls, addr, conn_id)

    return TlsHttpBackend


def TlsHttpBackend(*args, **kw):  # noqa: N802 (a class in effect)
    return make_tls_backend_class()(*args, **kw)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: tls_certs.py DIR\n")
        sys.exit(2)
    standard_set(sys.argv[1])
    print("ok")
