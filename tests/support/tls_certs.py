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
"""

import datetime
import os
import subprocess
import sys

__all__ = ["TestPki", "Issued", "standard_set", "openssl"]

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
    return issued


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: tls_certs.py DIR\n")
        sys.exit(2)
    standard_set(sys.argv[1])
    print("ok")
