# SPDX-License-Identifier: Apache-2.0
"""HTTPS and wss:// end to end: curl --resolve through Portico to an HTTP backend (with
X-Forwarded-Proto: https upstream), `redirect_https` on a plain listener, and python3-websockets
over wss:// through a `frames` route to a websockets backend and to the built-in echo."""

import json
import os
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from backends import free_port  # noqa: E402
from portico_harness import main, make_config, slow_factor  # noqa: E402
from tls_certs import client_context, https_request, shared_pki, tls_connect, tls_listener  # noqa: E402
from ws_peers import WsTestCase, py_connect, py_run  # noqa: E402


def curl(*args, timeout=20.0):
    """Runs curl (silent, errors shown); returns CompletedProcess with stdout and stderr
    decoded as UTF-8 (CRLF kept)."""
    r = subprocess.run(["curl", "-sS", "--max-time", str(int(timeout * slow_factor()))]
                       + list(args), capture_output=True, timeout=timeout * slow_factor() + 5)
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    return r


class HttpsTest(WsTestCase):
    test_timeout = 120

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def listener(self, address="127.0.0.1:0", **tls):
        return tls_listener([self.certs["site-ec"], self.certs["other"], self.certs["site-rsa"]],
                            address=address, **tls)

    def test_curl_https_through_to_a_backend(self):
        backend = self.start_backend(name="b1")
        p = self.start_portico(make_config(
            routes=[{"path": "/api/", "upstream": "app", "strip_prefix": True}],
            upstreams={"app": {"servers": [backend.address]}}, listeners=[self.listener()]))
        url = "https://site.test:%d/api/hello?x=1" % p.port
        r = curl("--resolve", "site.test:%d:127.0.0.1" % p.port, "--cacert", self.pki.ca_file,
                 "-D", "-", url)
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, body = r.stdout.partition("\r\n\r\n")
        self.assertTrue(head.startswith("HTTP/1.1 200"), head)
        doc = json.loads(body)
        self.assertEqual(doc["target"], "/hello?x=1")
        headers = {k.lower(): v for k, v in doc["headers"]}
        self.assertEqual(headers.get("x-forwarded-proto"), "https")
        self.assertEqual(headers.get("host"), "site.test:%d" % p.port)

        # The second certificate by SNI, and a POST body, with HTTP/1.1 over ALPN.
        url = "https://other.test:%d/api/post" % p.port
        r = curl("--resolve", "other.test:%d:127.0.0.1" % p.port, "--cacert", self.pki.ca_file,
                 "-w", "\\n%{http_version} %{ssl_verify_result}", "--data-binary", "x" * 5000,
                 url)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, trailer = r.stdout.rpartition("\n")
        self.assertEqual(trailer, "1.1 0")
        doc = json.loads(body)
        self.assertEqual(doc["method"], "POST")
        self.assertEqual(doc["body_len"], 5000)

        # A name the certificates do not cover: curl refuses the default certificate.
        r = curl("--resolve", "nobody.test:%d:127.0.0.1" % p.port, "--cacert",
                 self.pki.ca_file, "https://nobody.test:%d/api/x" % p.port)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"(?i)certificate|subject name|SSL")

    def test_plain_listener_sends_x_forwarded_proto_http(self):
        backend = self.start_backend(name="b1")
        p = self.start_portico(make_config(
            routes=[{"path": "/", "upstream": "app"}],
            upstreams={"app": {"servers": [backend.address]}},
            listeners=["127.0.0.1:0", self.listener()]))
        plain, secure = p.addresses[0][1], p.addresses[1][1]
        r = self.client(plain).roundtrip("GET", "/echo")
        self.assertEqual(dict((k.lower(), v) for k, v in r.json()["headers"])
                         .get("x-forwarded-proto"), "http")
        ctx = client_context(self.pki.ca_file)
        with tls_connect(secure, "site.test", ctx) as c:
            status, _, body = https_request(c, target="/echo",
                                            headers=[("X-Forwarded-Proto", "gopher")])
        self.assertEqual(status, 200)
        protos = [v for k, v in json.loads(body)["headers"] if k.lower() == "x-forwarded-proto"]
        self.assertEqual(protos, ["https"])  # the client's own value is replaced

    def test_redirect_https(self):
        tls_port = free_port()
        p = self.start_portico(make_config(
            routes=[{"path": "/", "handler": "health"}],
            listeners=[{"address": "127.0.0.1:0", "redirect_https": tls_port},
                       self.listener(address="127.0.0.1:%d" % tls_port)]))
        plain = p.addresses[0][1]
        r = self.client(plain).roundtrip("GET", "/some/path?q=1", host="site.test:%d" % plain)
        self.assertEqual(r.status, 308)
        self.assertEqual(r.header("Location"), "https://site.test:%d/some/path?q=1" % tls_port)
        r = self.client(plain).roundtrip("POST", "/form", host="site.test", body=b"a=1")
        self.assertEqual(r.status, 308)
        self.assertEqual(r.header("Location"), "https://site.test:%d/form" % tls_port)
        r = self.client(plain).roundtrip("GET", "/v6", host="[::1]:%d" % plain)
        self.assertEqual(r.header("Location"), "https://[::1]:%d/v6" % tls_port)
        # curl follows it to the TLS listener.
        r = curl("-L", "--resolve", "site.test:%d:127.0.0.1" % plain, "--resolve",
                 "site.test:%d:127.0.0.1" % tls_port, "--cacert", self.pki.ca_file,
                 "-w", "\\n%{http_code} %{url_effective}",
                 "http://site.test:%d/healthz" % plain)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith("200 https://site.test:%d/healthz" % tls_port),
                        r.stdout)

    # -- wss:// ------------------------------------------------------------------------------
    def _wss_roundtrip(self, port, path, messages, server_hostname="site.test"):
        ctx = ssl.create_default_context(cafile=self.pki.ca_file)

        async def run():
            out = []
            async with py_connect("wss://127.0.0.1:%d%s" % (port, path), ssl=ctx,
                                  server_hostname=server_hostname) as ws:
                for m in messages:
                    await ws.send(m)
                    out.append(await ws.recv())
                await ws.close(1000, "bye")
                return out, ws.close_code
        return py_run(run())

    def test_wss_through_a_frames_route(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(make_config(
            routes=[{"path": "/ws/", "upstream": "app", "websocket": {"mode": "frames"}}],
            upstreams={"app": {"servers": [b.address]}}, listeners=[self.listener()]))
        big = os.urandom(512 * 1024)  # under max_message_bytes (1 MiB)
        messages = ["hello", b"\x00\x01binary", "κόσμε" * 1000, big]
        echoes, code = self._wss_roundtrip(p.port, "/ws/echo", messages)
        self.assertEqual(echoes, messages)
        self.assertEqual(code, 1000)
        # The backend saw the proto too.
        info, _ = self._wss_roundtrip(p.port, "/ws/info", ["__info__"])
        headers = json.loads(info[0])["headers"]  # names lower case
        self.assertEqual(headers.get("x-forwarded-proto"), "https")

    def test_wss_tunnel_route(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(make_config(
            routes=[{"path": "/ws/", "upstream": "app"}],
            upstreams={"app": {"servers": [b.address]}}, listeners=[self.listener()]))
        messages = ["a" * 70000, b"b" * 200000]
        echoes, code = self._wss_roundtrip(p.port, "/ws/t", messages, "other.test")
        self.assertEqual(echoes, messages)
        self.assertEqual(code, 1000)

    def test_wss_bursts_of_small_records_all_arrive(self):
        # OpenSSL's read-ahead takes every record the socket holds in one read; those it still
        # holds when a wakeup's reading stops (the socket no longer readable) must be read too.
        b = self.start_ws_backend("python")
        p = self.start_portico(make_config(
            routes=[{"path": "/ws/", "upstream": "app", "websocket": {"mode": "frames"}},
                    {"path": "/t/", "upstream": "app"}, {"path": "/echo", "handler": "echo"}],
            upstreams={"app": {"servers": [b.address]}}, listeners=[self.listener()]))
        ctx = ssl.create_default_context(cafile=self.pki.ca_file)
        messages = ["m%d" % i for i in range(400)]

        async def burst(path):
            async with py_connect("wss://127.0.0.1:%d%s" % (p.port, path), ssl=ctx,
                                  server_hostname="site.test") as ws:
                for m in messages:
                    await ws.send(m)  # no await of the echoes: records pile up at Portico
                out = [await ws.recv() for _ in messages]
                await ws.close(1000, "bye")
                return out
        for path in ("/ws/burst", "/t/burst", "/echo"):
            self.assertEqual(py_run(burst(path)), messages, path)

    def test_wss_builtin_echo(self):
        p = self.start_portico(make_config(
            routes=[{"path": "/echo", "handler": "echo"}], listeners=[self.listener()]))
        messages = ["x", b"y" * 100000, "z" * 65536]
        echoes, code = self._wss_roundtrip(p.port, "/echo", messages)
        self.assertEqual(echoes, messages)
        self.assertEqual(code, 1000)
        # RSA-only client (TLS 1.2, RSA ciphers): the RSA certificate serves it.
        ctx = ssl.create_default_context(cafile=self.pki.ca_file)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")

        async def run():
            async with py_connect("wss://127.0.0.1:%d/echo" % p.port, ssl=ctx,
                                  server_hostname="site.test") as ws:
                await ws.send("rsa")
                got = await ws.recv()
                cipher = ws.transport.get_extra_info("cipher")
                return got, cipher
        got, cipher = py_run(run())
        self.assertEqual(got, "rsa")
        self.assertEqual(cipher[0], "ECDHE-RSA-AES128-GCM-SHA256")


if __name__ == "__main__":
    main()
