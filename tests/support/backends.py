# SPDX-License-Identifier: Apache-2.0
"""Real HTTP/1.1 backends on 127.0.0.1 for Portico's integration tests.

HttpBackend is a small threaded HTTP/1.1 server written on raw sockets (not http.server) so
that tests control framing exactly: Content-Length, chunked and close-delimited responses,
keep-alive, slow heads and bodies, and counting of accepted TCP connections. Every response
carries "X-Backend: NAME" so balancing and fail-over tests can tell servers apart.

Built-in endpoints, chosen by the last path segment (/stream, /api/v1/stream, ...; query
parameters in brackets):
  /stream   [n=BYTES, mode=length|chunked|close, chunk=BYTES]  n bytes of pattern_bytes()
  /slow     [delay=SECONDS, where=head|body, n=BYTES]           delay before head or body
  /status   [code=INT]                                          that status (no body for 1xx/204/304)
  /close    answers with "Connection: close" and closes the connection
  /headers  [h=Name:Value, repeated]                            adds those response headers
  anything else: echo. JSON object describing the request as received:
     {"backend", "conn_id", "request_no", "method", "target", "path", "query", "version",
      "headers": [[name, value], ...], "body": str (latin-1, at most 1 MiB kept),
      "body_len", "body_sha256", "chunked": bool}

Custom endpoints: backend.route("/prefix", handler). A handler gets (request, conn) and returns
a Response, or TAKEN when it took the socket over (WebSocket tests: it then owns conn.sock and
must close it; conn.rbuf holds bytes already read past the request head and body).

Usage:
    b = HttpBackend(name="a"); b.start(); ...; b.stop()
    or in a unittest.TestCase: b = start_backend(self, name="a")  (stops on cleanup)
"""

import fcntl
import hashlib
import json
import random
import socket
import struct
import termios
import threading
import time
import urllib.parse

__all__ = [
    "HttpBackend", "Request", "Response", "TAKEN", "start_backend", "free_port",
    "spans_outside_ephemeral_range",
    "BlackholeListener", "TcpServer",
    "pattern_bytes", "pattern_sha256", "PATTERN_BLOCK", "wait_receive_queue_full", "take",
]

# 64 KiB deterministic block; stream bodies are this block repeated (and cut at n bytes).
PATTERN_BLOCK = bytes(range(256)) * 256
TAKEN = object()  # returned by a custom handler that took the socket over

_MAX_HEAD = 256 * 1024
_KEEP_BODY = 1024 * 1024
_sha_cache = {}
_sha_lock = threading.Lock()


def wait_receive_queue_full(sock, steady=0.2):
    """Returns once what the kernel holds for `sock` to read is not empty and has not grown for
    `steady` seconds: the sender's window is shut, so it holds bytes it cannot send."""
    queued, since = -1, time.monotonic()
    while True:
        time.sleep(0.05)
        now = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]
        if now != queued or now == 0:
            queued, since = now, time.monotonic()
        elif time.monotonic() - since >= steady:
            return


def take(sock, n):
    """Reads `n` bytes from `sock`; returns False at EOF before them."""
    while n > 0:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return False
        n -= len(chunk)
    return True


def pattern_bytes(n):
    """The first n bytes of the endless PATTERN_BLOCK stream (use only for small n)."""
    reps = n // len(PATTERN_BLOCK) + 1
    return (PATTERN_BLOCK * reps)[:n]


def pattern_sha256(n):
    """hex sha256 of pattern_bytes(n), computed in blocks (fine for hundreds of MB), cached."""
    with _sha_lock:
        if n in _sha_cache:
            return _sha_cache[n]
    h = hashlib.sha256()
    full, rest = divmod(n, len(PATTERN_BLOCK))
    for _ in range(full):
        h.update(PATTERN_BLOCK)
    h.update(PATTERN_BLOCK[:rest])
    digest = h.hexdigest()
    with _sha_lock:
        _sha_cache[n] = digest
    return digest


def _ephemeral_ports():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def spans_outside_ephemeral_range(reach=0):
    """[(first, end)] spans of ports p at or above 10000 for which p and p + reach both lie
    outside the kernel's ephemeral range (reach: a second port a server derives from its own,
    as Redis Cluster's bus does with + 10000); spans under 1000 ports are left out."""
    low, high = _ephemeral_ports()
    spans = ((10000, low - reach), (high + 1, 65536 - reach))
    return [(r0, r1) for r0, r1 in spans if r1 - r0 >= 1000]


def free_port(host="127.0.0.1"):
    """A port that nothing listens on right now (connections to it are refused).

    Chosen outside the kernel's ephemeral range: a port the kernel picked for a bind to port 0
    and let go was handed out again, to a Portico listener on port 0 that then shared it with
    the listener the test named after it (CI); any client's connect() can take one of those
    too, between the choice and the bind."""
    spans = spans_outside_ephemeral_range()
    for _ in range(100):
        if not spans:
            break
        r0, r1 = random.choice(spans)
        port = random.randrange(r0, r1)
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Request:
    """A request as the backend received it."""

    def __init__(self):
        self.method = ""
        self.target = ""
        self.path = ""
        self.query = {}          # name -> [values]
        self.version = ""
        self.headers = []        # [(name, value)] in received order, names as sent
        self.body = b""          # at most 1 MiB kept
        self.body_len = 0
        self.body_sha256 = ""
        self.chunked = False
        self.trailers = []       # [(name, value)] of a chunked body's trailer section
        self.conn_id = 0
        self.request_no = 0      # 1-based index of this request on its connection
        self.client = None       # (host, port) of the peer (Portico)
        self.received_at = 0.0

    def header(self, name, default=None):
        """Value of the first header `name` (case-insensitive), or default."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    def header_all(self, name):
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def q(self, name, default=None):
        vals = self.query.get(name)
        return vals[0] if vals else default

    def wants_close(self):
        tokens = [t.strip().lower() for v in self.header_all("Connection") for t in v.split(",")]
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


class Response:
    """What a handler returns.

    body: bytes, or an iterable of bytes (streamed). framing: "length" (Content-Length; needs
    bytes or `length`), "chunked", or "close" (no length, connection closed after the body).
    delay_head / delay_body: seconds to wait before sending the head / the body.
    """

    def __init__(self, status=200, headers=None, body=b"", framing="length", length=None,
                 reason=None, close=False, delay_head=0.0, delay_body=0.0, trailers=None):
        self.status = status
        self.reason = reason
        self.headers = list(headers or [])
        self.body = body
        self.framing = framing
        self.length = length
        self.close = close
        self.delay_head = delay_head
        self.delay_body = delay_body
        self.trailers = list(trailers or [])


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
            304: "Not Modified", 400: "Bad Request", 404: "Not Found",
            500: "Internal Server Error", 503: "Service Unavailable"}


class _Closed(Exception):
    pass


class BackendConnection:
    """One accepted TCP connection. Handlers that take it over use .sock and .rbuf."""

    def __init__(self, backend, sock, addr, conn_id):
        self.backend = backend
        self.sock = sock
        self.addr = addr
        self.conn_id = conn_id
        self.rbuf = bytearray()

    # -- reading -------------------------------------------------------------------------
    def _fill(self):
        data = self.sock.recv(256 * 1024)
        if not data:
            raise _Closed()
        self.rbuf += data

    def read_until(self, marker, limit):
        while True:
            i = self.rbuf.find(marker)
            if i >= 0:
                out = bytes(self.rbuf[:i + len(marker)])
                del self.rbuf[:i + len(marker)]
                return out
            if len(self.rbuf) > limit:
                raise _Closed()
            self._fill()

    def read_exact(self, n):
        while len(self.rbuf) < n:
            self._fill()
        out = bytes(self.rbuf[:n])
        del self.rbuf[:n]
        return out

    def read_some(self, max_n):
        if not self.rbuf:
            self._fill()
        out = bytes(self.rbuf[:max_n])
        del self.rbuf[:max_n]
        return out

    # -- writing -------------------------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)
        self.backend._count_sent(len(data))


class HttpBackend:
    """A threaded HTTP/1.1 server on 127.0.0.1 (port 0 = any free port).

    name: identity sent as "X-Backend". idle_timeout: close a keep-alive connection idle for
    that many seconds (None = never). keepalive: False answers every request with
    "Connection: close".
    hold: a threading.Event; until it is set the listener's queue is one connection long and
    nothing is accepted, so connects hang (SYNs dropped, retried by the kernel): an upstream that
    takes no byte, and whose kernel takes none either (an established connection's socket
    buffers would absorb megabytes).
    Counters (read them any time): connections (TCP connections accepted), requests (list of
    Request), bytes_sent (body and head bytes written on all connections).
    """

    def __init__(self, name="backend", host="127.0.0.1", port=0, idle_timeout=None,
                 keepalive=True, hold=None):
        self.name = name
        self.hold = hold
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.keepalive = keepalive
        self.connections = 0
        self.active_connections = 0
        self.requests = []
        self.bytes_sent = 0
        self._routes = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks = set()
        self._threads = []
        self._lsock = None
        self._accept_thread = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(0 if self.hold is not None else 512)
        self._lsock = s
        self.port = s.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name="backend-%s-accept" % self.name)
        self._accept_thread.start()
        return self

    def stop(self):
        """Closes the listener and every connection; waits briefly for the threads."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self._lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._lsock.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(5)
        for t in list(self._threads):
            t.join(2)

    @property
    def address(self):
        """"127.0.0.1:PORT" for a Portico upstream's servers list."""
        return "%s:%d" % (self.host, self.port)

    def route(self, prefix, handler):
        """Registers handler(request, conn) -> Response | TAKEN for paths starting with prefix.
        Custom routes are tried in registration order before the built-in endpoints."""
        self._routes.append((prefix, handler))

    def request_count(self):
        with self._lock:
            return len(self.requests)

    def reset_counters(self):
        with self._lock:
            self.connections = 0
            self.requests = []
            self.bytes_sent = 0

    def _count_sent(self, n):
        with self._lock:
            self.bytes_sent += n

    # -- serving -------------------------------------------------------------------------
    def _accept_loop(self):
        if self.hold is not None:
            while not self.hold.wait(0.1):
                if self._stop.is_set():
                    return
            self._lsock.listen(512)
        while not self._stop.is_set():
            try:
                sock, addr = self._lsock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.active_connections += 1
                conn_id = self.connections
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, addr, conn_id), daemon=True,
                                 name="backend-%s-conn%d" % (self.name, conn_id))
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
            t.start()

    def _serve(self, sock, addr, conn_id):
        conn = BackendConnection(self, sock, addr, conn_id)
        taken = False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request_no = 0
            while not self._stop.is_set():
                sock.settimeout(self.idle_timeout)
                try:
                    head = conn.read_until(b"\r\n\r\n", _MAX_HEAD)
                except socket.timeout:
                    return
                sock.settimeout(None)
                request_no += 1
                req = self._parse_head(head)
                req.conn_id = conn_id
                req.request_no = request_no
                req.client = addr
                req.received_at = time.monotonic()
                self._read_body(conn, req)
                with self._lock:
                    self.requests.append(req)
                resp = self._dispatch(req, conn)
                if resp is TAKEN:
                    taken = True
                    return
                close = (resp.close or resp.framing == "close" or req.wants_close()
                         or not self.keepalive)
                self._write_response(conn, req, resp, close)
                if close:
                    return
        except (_Closed, OSError, ValueError):
            return
        finally:
            with self._lock:
                self.active_connections -= 1
                self._socks.discard(sock)
            if not taken:
                try:
                    sock.close()
                except OSError:
                    pass

    def _parse_head(self, head):
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise ValueError("bad request line %r" % lines[0])
        req = Request()
        req.method, req.target, req.version = parts
        split = urllib.parse.urlsplit(req.target)
        req.path = split.path
        req.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("bad header line %r" % line)
            req.headers.append((name, value.strip(" \t")))
        return req

    def _read_body(self, conn, req):
        sha = hashlib.sha256()
        kept = bytearray()
        total = 0

        def take(data):
            nonlocal total
            total += len(data)
            sha.update(data)
            if len(kept) < _KEEP_BODY:
                kept.extend(data[:_KEEP_BODY - len(kept)])

        te = ",".join(req.header_all("Transfer-Encoding")).lower()
        if "chunked" in te:
            req.chunked = True
            while True:
                line = conn.read_until(b"\r\n", 4096)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers until an empty line
                    while True:
                        line = conn.read_until(b"\r\n", 65536)
                        if line == b"\r\n":
                            break
                        name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
                        req.trailers.append((name, value.strip()))
                    break
                remaining = size
                while remaining:
                    data = conn.read_some(min(remaining, 1 << 20))
                    take(data)
                    remaining -= len(data)
                if conn.read_exact(2) != b"\r\n":
                    raise ValueError("bad chunk end")
        else:
            cl = req.header("Content-Length")
            remaining = int(cl) if cl is not None else 0
            while remaining:
                data = conn.read_some(min(remaining, 1 << 20))
                take(data)
                remaining -= len(data)
        req.body = bytes(kept)
        req.body_len = total
        req.body_sha256 = sha.hexdigest()

    def _dispatch(self, req, conn):
        for prefix, handler in self._routes:
            if req.path.startswith(prefix):
                return handler(req, conn)
        # built-ins are chosen by the last path segment, so /api/slow works behind a prefix
        name = req.path.rsplit("/", 1)[-1]
        if name == "stream":
            n = int(req.q("n", "0"))
            return Response(body=_pattern_iter(n, int(req.q("chunk", "65536"))),
                            framing=req.q("mode", "length"), length=n)
        if name == "slow":
            delay = float(req.q("delay", "1"))
            n = int(req.q("n", "0"))
            body = pattern_bytes(n) if n else b"slow done"
            if req.q("where", "head") == "body":
                return Response(body=body, delay_body=delay)
            return Response(body=body, delay_head=delay)
        if name == "status":
            code = int(req.q("code", "200"))
            return Response(status=code, body=b"status %d" % code)
        if name == "close":
            return Response(body=b"closing", close=True)
        if name == "headers":
            hdrs = []
            for h in req.query.get("h", []):
                k, _, v = h.partition(":")
                hdrs.append((k, v))
            return Response(headers=hdrs, body=b"headers")
        return self._echo(req)

    def _echo(self, req):
        doc = {
            "backend": self.name, "conn_id": req.conn_id, "request_no": req.request_no,
            "method": req.method, "target": req.target, "path": req.path,
            "query": req.query, "version": req.version,
            "headers": [[k, v] for k, v in req.headers],
            "body": req.body.decode("latin-1"), "body_len": req.body_len,
            "body_sha256": req.body_sha256, "chunked": req.chunked,
            "trailers": [[k, v] for k, v in req.trailers],
        }
        return Response(headers=[("Content-Type", "application/json")],
                        body=json.dumps(doc).encode())

    def _wait(self, seconds):
        if seconds > 0 and self._stop.wait(seconds):
            raise _Closed()

    def _write_response(self, conn, req, resp, close):
        self._wait(resp.delay_head)
        status = resp.status
        reason = resp.reason or _REASONS.get(status, "Status")
        head = ["HTTP/1.1 %d %s" % (status, reason), "X-Backend: %s" % self.name]
        has_body = not (req.method == "HEAD" or status < 200 or status in (204, 304))
        body = resp.body
        framing = resp.framing
        custom = {k.lower() for k, _ in resp.headers}
        if status in (204, 304) or status < 200:
            framing = "none"
        elif framing == "length":
            if "content-length" not in custom:
                n = len(body) if isinstance(body, (bytes, bytearray)) else resp.length
                head.append("Content-Length: %d" % n)
        elif framing == "chunked":
            head.append("Transfer-Encoding: chunked")
        for k, v in resp.headers:
            head.append("%s: %s" % (k, v))
        if close and "connection" not in custom:
            head.append("Connection: close")
        conn.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if not has_body:
            return
        self._wait(resp.delay_body)
        chunks = [body] if isinstance(body, (bytes, bytearray)) else body
        for chunk in chunks:
            if not chunk:
                continue
            if framing == "chunked":
                conn.send(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
            else:
                conn.send(chunk)
        if framing == "chunked":
            trailer = "".join("%s: %s\r\n" % kv for kv in resp.trailers)
            conn.send(b"0\r\n" + trailer.encode("latin-1") + b"\r\n")


def _pattern_iter(n, chunk):
    chunk = max(1, min(chunk, len(PATTERN_BLOCK)))
    mv = memoryview(PATTERN_BLOCK)
    off = 0
    while n > 0:
        take = min(chunk, n, len(PATTERN_BLOCK) - off)
        yield mv[off:off + take]
        n -= take
        off = (off + take) % len(PATTERN_BLOCK)


class BlackholeListener:
    """A listening socket whose accept queue is full, so new TCP connects hang (SYNs dropped):
    for connect-timeout tests. .address is "127.0.0.1:PORT"; close() releases it."""

    def __init__(self, host="127.0.0.1"):
        self._l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._l.bind((host, 0))
        self._l.listen(0)
        self.host = host
        self.port = self._l.getsockname()[1]
        self._fillers = []
        # one connection fills a backlog of 0; a second attempt makes sure it is full
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((host, self.port))
            except (BlockingIOError, OSError):
                pass
            self._fillers.append(s)
        time.sleep(0.05)

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def close(self):
        for s in self._fillers:
            s.close()
        self._l.close()


class TcpServer:
    """A raw TCP server on 127.0.0.1 that runs handler(sock) on a thread per connection (the
    handler owns the socket and must close it). For backends that misbehave on purpose.
    .connections counts accepted connections."""

    def __init__(self, handler, host="127.0.0.1", port=0):
        self.handler = handler
        self._l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._l.bind((host, port))
        self._l.listen(128)
        self.host = host
        self.port = self._l.getsockname()[1]
        self.connections = 0
        self._socks = []
        self._stopped = False
        threading.Thread(target=self._loop, daemon=True).start()

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def _loop(self):
        while True:
            try:
                s, _ = self._l.accept()
            except OSError:
                return
            self.connections += 1
            self._socks.append(s)
            threading.Thread(target=self._run, args=(s,), daemon=True).start()

    def _run(self, s):
        try:
            self.handler(s)
        except OSError:
            pass

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        try:
            self._l.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._l.close()
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


def start_backend(testcase, **kwargs):
    """Starts an HttpBackend and registers its stop with testcase.addCleanup."""
    b = HttpBackend(**kwargs).start()
    testcase.addCleanup(b.stop)
    return b
