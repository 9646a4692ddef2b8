#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Differential check of the HTTP request head parser: Portico against nginx.

The same tricky request streams (duplicate Content-Length, Content-Length with Transfer-Encoding,
obs-fold, bare LF, Transfer-Encoding variants, whitespace before the colon, invalid characters,
absolute-form, long lines, ...) go through Portico and through nginx, each in front of its own
echo backend (tests/support/backends.py) that records every request that reaches it. A stream
that one proxy forwards (or forwards as more requests) and the other refuses is listed: a
disagreement between two parsers is where request smuggling lives.

Exit status: 1 when Portico forwards something nginx refuses and the case is not in the reviewed
table of docs/fuzzing.md ("Reviewed differences"), with the reason it is acceptable; 0 otherwise.
Cases nginx forwards and Portico refuses are listed but do not fail (Portico is the stricter).

    tests/fuzz/differential_http.py [--verbose] [--only NAME...]

Needs the Portico binary (PORTICO_BIN, default build/portico) and nginx (scripts/install-deps.sh
test). nginx runs as our own instance: a private prefix and config under /tmp, a free port,
stopped at exit; the system's nginx is never touched.
"""

import argparse
import os
import re
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path[:0] = [os.path.join(ROOT, "tests", "support"), os.path.join(ROOT, "bench")]

import backends  # noqa: E402
import benchlib  # noqa: E402
import portico_harness  # noqa: E402

DOC = os.path.join(ROOT, "docs", "fuzzing.md")
IDLE = 0.3      # a response is complete when the connection stays quiet this long (s)
PATIENCE = 2.0  # the longest wait for a first byte (s)

# ---- the cases ----------------------------------------------------------------------------------


def head(*lines, body=b""):
    return b"".join((l if isinstance(l, bytes) else l.encode()) + b"\r\n" for l in lines) + b"\r\n" + body


def post(*headers, body=b""):
    return head("POST /p HTTP/1.1", "Host: a", *headers, body=body)


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
CHUNKED_BODY = b"3\r\nabc\r\n0\r\n\r\n"

CASES = [
    # baselines: both must forward
    ("get", head("GET / HTTP/1.1", "Host: a")),
    ("post-content-length", post("Content-Length: 3", body=b"abc")),
    ("post-chunked", post("Transfer-Encoding: chunked", body=CHUNKED_BODY)),
    ("pipelined-two", head("GET /1 HTTP/1.1", "Host: a") + head("GET /2 HTTP/1.1", "Host: a")),
    ("http10-no-host", head("GET / HTTP/1.0")),
    # Content-Length
    ("cl-duplicate-same", post("Content-Length: 3", "Content-Length: 3", body=b"abc")),
    ("cl-duplicate-differ", post("Content-Length: 3", "Content-Length: 40", body=b"abc" + SMUGGLED)),
    ("cl-list", post("Content-Length: 3, 3", body=b"abc")),
    ("cl-plus", post("Content-Length: +3", body=b"abc")),
    ("cl-hex", post("Content-Length: 0x3", body=b"abc")),
    ("cl-leading-zeros", post("Content-Length: 003", body=b"abc")),
    ("cl-space-inside", post("Content-Length: 3 3", body=b"abc")),
    ("cl-negative", post("Content-Length: -1")),
    ("cl-huge", post("Content-Length: 99999999999999999999999")),
    ("cl-empty", post("Content-Length:", body=b"abc")),
    # Content-Length with Transfer-Encoding (RFC 9112 6.1)
    ("cl-and-te", post("Content-Length: 40", "Transfer-Encoding: chunked", body=b"0\r\n\r\n" + SMUGGLED)),
    ("te-and-cl", post("Transfer-Encoding: chunked", "Content-Length: 3", body=CHUNKED_BODY)),
    # Transfer-Encoding variants
    ("te-uppercase", post("Transfer-Encoding: CHUNKED", body=CHUNKED_BODY)),
    ("te-trailing-space", post("Transfer-Encoding: chunked ", body=CHUNKED_BODY)),
    ("te-tab-before", post("Transfer-Encoding:\tchunked", body=CHUNKED_BODY)),
    ("te-vertical-tab", post(b"Transfer-Encoding: \x0bchunked", body=CHUNKED_BODY)),
    ("te-twice", post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked", body=CHUNKED_BODY)),
    ("te-gzip-chunked", post("Transfer-Encoding: gzip, chunked", body=CHUNKED_BODY)),
    ("te-chunked-gzip", post("Transfer-Encoding: chunked, gzip", body=CHUNKED_BODY)),
    ("te-identity", post("Transfer-Encoding: identity", "Content-Length: 3", body=b"abc")),
    ("te-xchunked", post("Transfer-Encoding: xchunked", body=CHUNKED_BODY)),
    ("te-chunked-comma", post("Transfer-Encoding: chunked,", body=CHUNKED_BODY)),
    ("te-quoted", post('Transfer-Encoding: "chunked"', body=CHUNKED_BODY)),
    ("te-underscore-name", post("Transfer_Encoding: chunked", "Content-Length: 3", body=b"abc")),
    ("te-http10", head("POST /p HTTP/1.0", "Host: a", "Transfer-Encoding: chunked", body=CHUNKED_BODY)),
    ("te-space-before-colon", post("Transfer-Encoding : chunked", "Content-Length: 3", body=b"abc")),
    ("te-empty", post("Transfer-Encoding:", body=CHUNKED_BODY)),
    ("te-empty-http10", head("POST /p HTTP/1.0", "Host: a", "Transfer-Encoding:", "Content-Length: 3", body=b"abc")),
    # chunked bodies
    ("chunk-extension", post("Transfer-Encoding: chunked", body=b"3;name=v\r\nabc\r\n0\r\n\r\n")),
    ("chunk-size-leading-zeros", post("Transfer-Encoding: chunked", body=b"0003\r\nabc\r\n0\r\n\r\n")),
    ("chunk-size-0x", post("Transfer-Encoding: chunked", body=b"0x3\r\nabc\r\n0\r\n\r\n")),
    ("chunk-size-space", post("Transfer-Encoding: chunked", body=b"3 \r\nabc\r\n0\r\n\r\n")),
    ("chunk-size-overflow", post("Transfer-Encoding: chunked", body=b"10000000000000003\r\nabc\r\n0\r\n\r\n")),
    ("chunk-bare-lf", post("Transfer-Encoding: chunked", body=b"3\nabc\n0\n\n")),
    ("chunk-data-too-long", post("Transfer-Encoding: chunked", body=b"3\r\nabcdef\r\n0\r\n\r\n")),
    ("chunk-trailer", post("Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")),
    ("chunk-trailer-content-length", post("Transfer-Encoding: chunked",
                                          body=b"3\r\nabc\r\n0\r\nContent-Length: 40\r\n\r\n")),
    # line endings and folding (RFC 9112 2.2, 5.2)
    ("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: a\n\n"),
    ("bare-lf-after-header", b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"),
    ("obs-fold", head("GET / HTTP/1.1", "Host: a", "X-A: b", " c")),
    ("obs-fold-te", post("Content-Length: 3", "X-A: b", " Transfer-Encoding: chunked", body=b"abc")),
    ("first-header-indented", head("GET / HTTP/1.1", " Host: a")),
    # header names and values
    ("space-before-colon", head("GET / HTTP/1.1", "Host : a")),
    ("tab-before-colon", head("GET / HTTP/1.1", "Host\t: a")),
    ("space-in-name", head("GET / HTTP/1.1", "Host: a", "X Y: 1")),
    ("at-in-name", head("GET / HTTP/1.1", "Host: a", "X@Y: 1")),
    ("empty-name", head("GET / HTTP/1.1", "Host: a", ": x")),
    ("no-colon", head("GET / HTTP/1.1", "Host: a", "X-Nothing")),
    ("nul-in-value", head("GET / HTTP/1.1", "Host: a", b"X-A: b\x00c")),
    ("ctl-in-value", head("GET / HTTP/1.1", "Host: a", b"X-A: b\x01c")),
    ("del-in-value", head("GET / HTTP/1.1", "Host: a", b"X-A: b\x7fc")),
    ("high-bytes-in-value", head("GET / HTTP/1.1", "Host: a", b"X-A: caf\xc3\xa9 \xff")),
    ("high-bytes-in-name", head("GET / HTTP/1.1", "Host: a", b"X-\xe9: 1")),
    # request line
    ("http2-version", head("GET / HTTP/2.0", "Host: a")),
    ("http12-version", head("GET / HTTP/1.2", "Host: a")),
    ("http09", b"GET /\r\n"),
    ("lowercase-version", head("GET / http/1.1", "Host: a")),
    ("lowercase-method", head("get / HTTP/1.1", "Host: a")),
    ("unknown-method", head("FOO / HTTP/1.1", "Host: a")),
    ("double-space", head("GET  / HTTP/1.1", "Host: a")),
    ("tab-separator", head("GET\t/\tHTTP/1.1", "Host: a")),
    ("space-in-target", head("GET /a b HTTP/1.1", "Host: a")),
    ("nul-in-target", head(b"GET /a\x00b HTTP/1.1", "Host: a")),
    ("high-bytes-in-target", head(b"GET /caf\xc3\xa9 HTTP/1.1", "Host: a")),
    ("fragment-in-target", head("GET /a#b HTTP/1.1", "Host: a")),
    ("empty-lines-before", b"\r\n\r\n" + head("GET / HTTP/1.1", "Host: a")),
    # request-target forms and Host
    ("absolute-form", head("GET http://b.test/x HTTP/1.1", "Host: a")),
    ("absolute-form-userinfo", head("GET http://u@b.test/x HTTP/1.1", "Host: a")),
    ("absolute-form-https", head("GET https://b.test/x HTTP/1.1", "Host: a")),
    ("authority-form-get", head("GET b.test:80 HTTP/1.1", "Host: a")),
    ("asterisk-get", head("GET * HTTP/1.1", "Host: a")),
    ("connect", head("CONNECT b.test:443 HTTP/1.1", "Host: b.test:443")),
    ("no-host-http11", head("GET / HTTP/1.1")),
    ("two-hosts", head("GET / HTTP/1.1", "Host: a", "Host: b")),
    ("empty-host", head("GET / HTTP/1.1", "Host:")),
    ("host-with-path", head("GET / HTTP/1.1", "Host: a/b")),
    ("host-with-space", head("GET / HTTP/1.1", "Host: a b")),
    ("host-bad-port", head("GET / HTTP/1.1", "Host: a:99999")),
    ("host-ipv6", head("GET / HTTP/1.1", "Host: [::1]:8080")),
    # paths
    ("dot-segments", head("GET /a/../b/./c HTTP/1.1", "Host: a")),
    ("above-root", head("GET /../etc/passwd HTTP/1.1", "Host: a")),
    ("encoded-dots", head("GET /a/%2e%2e/b HTTP/1.1", "Host: a")),
    ("encoded-slash", head("GET /a%2fb HTTP/1.1", "Host: a")),
    ("bad-escape", head("GET /a%zz HTTP/1.1", "Host: a")),
    ("encoded-nul", head("GET /a%00 HTTP/1.1", "Host: a")),
    ("backslash", head("GET /a\\..\\b HTTP/1.1", "Host: a")),
    # sizes
    ("long-target-4k", head("GET /" + "a" * 4096 + " HTTP/1.1", "Host: a")),
    ("long-target-9k", head("GET /" + "a" * 9000 + " HTTP/1.1", "Host: a")),
    ("long-header-7k", head("GET / HTTP/1.1", "Host: a", "X-Long: " + "v" * 7000)),
    ("long-header-9k", head("GET / HTTP/1.1", "Host: a", "X-Long: " + "v" * 9000)),
    ("long-header-20k", head("GET / HTTP/1.1", "Host: a", "X-Long: " + "v" * 20000)),
    ("many-headers", head("GET / HTTP/1.1", "Host: a", *["X-H%d: v" % i for i in range(200)])),
    # the rest
    ("head-with-body", head("HEAD /p HTTP/1.1", "Host: a", "Content-Length: %d" % len(SMUGGLED), body=SMUGGLED)),
    ("get-with-body", head("GET /p HTTP/1.1", "Host: a", "Content-Length: %d" % len(SMUGGLED), body=SMUGGLED)),
    ("expect-continue", post("Expect: 100-continue", "Content-Length: 3", body=b"abc")),
    ("expect-unknown", post("Expect: 200-ok", "Content-Length: 3", body=b"abc")),
    ("connection-names-host", head("GET / HTTP/1.1", "Host: a", "Connection: close, Host")),
    ("upgrade-websocket-with-body", head("GET / HTTP/1.1", "Host: a", "Upgrade: websocket",
                                         "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                         "Sec-WebSocket-Version: 13", "Content-Length: %d" % len(SMUGGLED),
                                         body=SMUGGLED)),
    ("upgrade-h2c", head("GET / HTTP/1.1", "Host: a", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings",
                         "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA")),
]

# ---- running them -------------------------------------------------------------------------------


def send(port, data):
    """Sends `data` on a fresh connection; returns the statuses of the responses read back."""
    raw = b""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as s:
        s.sendall(data)
        deadline = time.monotonic() + PATIENCE
        while True:
            s.settimeout(IDLE if raw else max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            raw += chunk
    return [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.[01] (\d{3}) ", raw)][:4] or ["-"]


class Proxy:
    def __init__(self, name, port, backend):
        self.name, self.port, self.backend = name, port, backend

    def run(self, data):
        self.backend.reset_counters()
        statuses = send(self.port, data)
        time.sleep(0.05)  # a request forwarded at the last moment
        arrived = [(r.method, r.target, r.body_len) for r in self.backend.requests]
        return statuses, arrived


def start_proxies(workdir):
    portico_backend = backends.HttpBackend(name="behind-portico").start()
    nginx_backend = backends.HttpBackend(name="behind-nginx").start()
    config = portico_harness.make_config(
        routes=[{"path": "/", "upstream": "app"}],
        upstreams={"app": {"servers": [portico_backend.address]}},
        workers=1, access="off", level="info")
    portico = portico_harness.Portico(config, workdir).start()
    port = backends.free_port()  # outside the ephemeral range: no connect() takes it before nginx binds
    nginx = benchlib.start_nginx("differential-nginx", 1, f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{nginx_backend.address};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}""", ready_port=port)
    return portico, nginx, [Proxy("portico", portico.port, portico_backend), Proxy("nginx", port, nginx_backend)]


def reviewed_table():
    """{case: reason} from the table under "Reviewed differences" in docs/fuzzing.md."""
    reviewed = {}
    in_section = False
    with open(DOC, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                in_section = "Reviewed differences" in line
                continue
            m = re.match(r"\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line)
            if in_section and m:
                reviewed[m.group(1)] = m.group(2).strip()
    return reviewed


def describe(arrived):
    return "; ".join("%s %s%s" % (m, t[:60], " +%dB" % n if n else "") for m, t, n in arrived) or "nothing"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print every case, not only differences")
    parser.add_argument("--only", nargs="*", help="run these cases only")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.only or c[0] in args.only]
    reviewed = reviewed_table()
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="portico-differential-") as workdir:
        portico, nginx, proxies = start_proxies(workdir)
        try:
            results = []
            for name, data in cases:
                out = {}

                def one(p, data=data, out=out):
                    out[p.name] = p.run(data)

                threads = [threading.Thread(target=one, args=(p,)) for p in proxies]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                results.append((name, out["portico"], out["nginx"]))
        finally:
            nginx.stop()
            portico.stop()
            for p in proxies:
                p.backend.stop()

    portico_only, nginx_only, both = [], [], 0
    for name, (p_status, p_arrived), (n_status, n_arrived) in results:
        line = "%-30s portico %-12s -> %-40s nginx %-12s -> %s" % (
            name, ",".join(map(str, p_status)), describe(p_arrived)[:40],
            ",".join(map(str, n_status)), describe(n_arrived)[:60])
        if len(p_arrived) > len(n_arrived):
            portico_only.append((name, line))
        elif len(n_arrived) > len(p_arrived):
            nginx_only.append((name, line))
        else:
            both += 1
            if args.verbose:
                print("same  " + line)

    print("\nForwarded by Portico, refused by nginx (or forwarded as more requests):")
    unreviewed = []
    for name, line in portico_only:
        reason = reviewed.get(name)
        print("  " + line)
        print("      reviewed: " + reason if reason else "      NOT REVIEWED: add it to docs/fuzzing.md or fix Portico")
        if not reason:
            unreviewed.append(name)
    if not portico_only:
        print("  none")
    print("\nForwarded by nginx, refused by Portico (Portico is stricter; listed for review):")
    for _, line in nginx_only:
        print("  " + line)
    if not nginx_only:
        print("  none")
    stale = sorted(set(reviewed) - {n for n, _ in portico_only})
    if stale and not args.only:
        print("\nReviewed in docs/fuzzing.md but no longer different: " + ", ".join(stale))
    print("\n%d cases in %.1f s: %d alike, %d forwarded by Portico only, %d by nginx only"
          % (len(results), time.monotonic() - started, both, len(portico_only), len(nginx_only)))
    if unreviewed:
        print("FAILED: Portico forwards what nginx refuses, not reviewed: " + ", ".join(unreviewed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
