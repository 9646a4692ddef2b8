# SPDX-License-Identifier: Apache-2.0
"""A raw-socket HTTP/1.1 client for precise tests: send exact bytes, read exact responses.

    c = RawClient(port)                      # connects to 127.0.0.1:port (closed on cleanup
                                             # when made with raw_client(testcase, port))
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()                    # HttpResponse: status, reason, version, headers, body
    c.request("POST", "/echo", body=b"x")    # builds and sends a request (Host added)
    c.wait_closed(2.0)                       # True when the server closed the connection

read_response(body_sink=f) streams the body into f(bytes) instead of keeping it (for huge
bodies; r.body_len and r.sha256 are still filled when hash_body=True).
"""

import hashlib
import json
import socket
import time

__all__ = ["RawClient", "HttpResponse", "raw_client", "http_request", "ProtocolError",
           "ConnectionClosed"]


class ProtocolError(Exception):
    """The server sent something that is not HTTP/1.1 as expected."""


class ConnectionClosed(Exception):
    """The server closed the connection before a complete response."""


class HttpResponse:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []       # [(name, value)] as received
        self.trailers = []
        self.body = b""
        self.body_len = 0
        self.sha256 = None      # hex digest when read with hash_body=True
        self.framing = ""       # "length" | "chunked" | "close" | "none"
        self.chunk_sizes = []   # sizes of the chunks when chunked
        self.raw_head = b""

    def header(self, name, default=None):
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    def header_all(self, name):
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def has_header(self, name):
        return self.header(name) is not None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def connection_tokens(self):
        return [t.strip().lower() for v in self.header_all("Connection") for t in v.split(",")]

    def __repr__(self):
        return "<HttpResponse %s %d %s, %d body bytes, headers=%r>" % (
            self.version, self.status, self.reason, self.body_len, self.headers)


class RawClient:
    def __init__(self, port, host="127.0.0.1", timeout=10.0, rcvbuf=None, source=None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))  # e.g. "127.0.3.1": another client address on loopback
        self.sock.settimeout(timeout)
        try:
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    # -- sending ---------------------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def request(self, method, target, headers=None, body=None, host="localhost",
                version="HTTP/1.1", send=True):
        """Builds (and sends unless send=False) a request; returns the bytes.

        headers: list of (name, value) or dict. Host is added first unless host is None or a
        Host header is given. Content-Length is added for a bytes body unless a
        Content-Length or Transfer-Encoding header is given.
        """
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in hdrs}
        lines = ["%s %s %s" % (method, target, version)]
        if host is not None and "host" not in names:
            lines.append("Host: %s" % host)
        for k, v in hdrs:
            lines.append("%s: %s" % (k, v))
        if body is not None and "content-length" not in names and \
                "transfer-encoding" not in names:
            lines.append("Content-Length: %d" % len(body))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        if send:
            self.send(data)
        return data

    # -- receiving -------------------------------------------------------------------------
    def _fill(self, timeout=None):
        if self.eof:
            raise ConnectionClosed("connection closed; buffered %r" % bytes(self.buf[:200]))
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise ConnectionClosed("connection closed; buffered %r" % bytes(self.buf[:200]))
        self.buf += data

    def _read_until(self, marker, limit=1 << 20):
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[:i + len(marker)])
                del self.buf[:i + len(marker)]
                return out
            if len(self.buf) > limit:
                raise ProtocolError("no %r within %d bytes" % (marker, limit))
            self._fill()

    def _take(self, n, sink):
        """Moves n body bytes to sink."""
        while n > 0:
            if not self.buf:
                self._fill()
            k = min(n, len(self.buf))
            sink(bytes(self.buf[:k]))
            del self.buf[:k]
            n -= k

    def read_head(self):
        """Reads one response head; returns an HttpResponse without body."""
        head = self._read_until(b"\r\n\r\n", 1 << 20)
        r = HttpResponse()
        r.raw_head = head
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ProtocolError("bad status line %r" % lines[0])
        r.version = parts[0]
        r.status = int(parts[1])
        r.reason = parts[2] if len(parts) > 2 else ""
        for line in lines[1:]:
            if not line:
                continue
            k, sep, v = line.partition(":")
            if not sep:
                raise ProtocolError("bad header line %r" % line)
            r.headers.append((k, v.strip(" \t")))
        return r

    def read_response(self, method="GET", body_sink=None, hash_body=False, skip_1xx=True):
        """Reads one complete response (head and body, framed per RFC 9112 6.3).

        method: of the request it answers (HEAD responses have no body). body_sink(bytes)
        receives the body instead of r.body. Raises ConnectionClosed if the server closes
        before a complete response, socket.timeout when it stalls longer than timeout.
        """
        while True:
            r = self.read_head()
            if skip_1xx and 100 <= r.status < 200 and r.status != 101:
                continue
            break
        sha = hashlib.sha256() if hash_body else None
        parts = []
        total = [0]

        def sink(data):
            total[0] += len(data)
            if sha is not None:
                sha.update(data)
            if body_sink is not None:
                body_sink(data)
            else:
                parts.append(data)

        te = ",".join(r.header_all("Transfer-Encoding")).lower()
        cl = r.header("Content-Length")
        if method == "HEAD" or r.status in (101, 204, 304) or 100 <= r.status < 200:
            r.framing = "none"
        elif te:
            if not te.replace(" ", "").endswith("chunked"):
                raise ProtocolError("response transfer-encoding %r" % te)
            r.framing = "chunked"
            while True:
                line = self._read_until(b"\r\n", 4096)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ProtocolError("bad chunk size line %r" % line)
                if size == 0:
                    while True:
                        t = self._read_until(b"\r\n", 65536)
                        if t == b"\r\n":
                            break
                        k, _, v = t.decode("latin-1").strip().partition(":")
                        r.trailers.append((k, v.strip()))
                    break
                r.chunk_sizes.append(size)
                self._take(size, sink)
                if self._read_until(b"\r\n", 2) != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
        elif cl is not None:
            r.framing = "length"
            if len(set(r.header_all("Content-Length"))) != 1:
                raise ProtocolError("several Content-Length values %r" %
                                    r.header_all("Content-Length"))
            self._take(int(cl), sink)
        else:
            r.framing = "close"
            while True:
                if self.buf:
                    sink(bytes(self.buf))
                    self.buf.clear()
                try:
                    self._fill()
                except ConnectionClosed:
                    break
        r.body_len = total[0]
        if sha is not None:
            r.sha256 = sha.hexdigest()
        if body_sink is None:
            r.body = b"".join(parts)
        return r

    def roundtrip(self, method, target, headers=None, body=None, host="localhost", **kw):
        """request() then read_response(); returns the HttpResponse."""
        self.request(method, target, headers=headers, body=body, host=host)
        return self.read_response(method=method, **kw)

    def wait_closed(self, timeout=2.0):
        """True when the server closes (EOF or reset) within timeout, False if it stays open.
        Bytes that arrive meanwhile are kept in self.buf (see extra())."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._fill(timeout=left)
            except ConnectionClosed:
                return True
            except socket.timeout:
                return False
        return True

    def extra(self):
        """Bytes received but not consumed by a read_response()."""
        return bytes(self.buf)

    def read_available(self, timeout=0.5):
        """Whatever arrives within timeout (stops at EOF); returns bytes."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._fill(timeout=left)
            except (ConnectionClosed, socket.timeout):
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def raw_client(testcase, port, host="127.0.0.1", timeout=10.0, **kw):
    """A RawClient closed on testcase cleanup."""
    c = RawClient(port, host=host, timeout=timeout, **kw)
    testcase.addCleanup(c.close)
    return c


def http_request(port, method="GET", target="/", headers=None, body=None, host="localhost",
                 timeout=10.0):
    """One request on a fresh connection with "Connection: close"; returns the response."""
    c = RawClient(port, timeout=timeout)
    try:
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if not any(k.lower() == "connection" for k, _ in hdrs):
            hdrs.append(("Connection", "close"))
        c.request(method, target, headers=hdrs, body=body, host=host)
        return c.read_response(method=method)
    finally:
        c.close()
