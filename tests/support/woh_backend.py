# SPDX-License-Identifier: Apache-2.0
"""A WebSocket-over-HTTP app (Pushpin's protocol) on the standard library, for the bridge's tests.

    app = WohBackend(behaviour)            # behaviour(req) -> (status, headers, events) or None
    app.start(); app.address               # "127.0.0.1:PORT"; HTTP/1.1 with keep-alive
    app.requests                           # every request: WohRequest(path, headers, events)
    app.stop()

Events are (TYPE, bytes-or-None) tuples. parse_events/encode_events are a strict, independent
implementation of the format (the tests' oracle): "TYPE HEXLEN\\r\\nCONTENT\\r\\n" or "TYPE\\r\\n".
A behaviour may return raw bytes as the body instead of events (malformed streams).
"""

import http.server
import socketserver
import threading
import time

from portico_harness import slow_factor

EVENTS = "application/websocket-events"


def encode_events(events):
    # Joined once: `out +=` on bytes copied the whole answer per event, 4 s of the app's CPU for
    # the flood test's 24 MiB (48 events), which timed out the handshake on a loaded machine.
    out = []
    for typ, content in events:
        if content is None:
            out.append(typ.encode() + b"\r\n")
        else:
            if isinstance(content, str):
                content = content.encode()
            out += [b"%s %x\r\n" % (typ.encode(), len(content)), content, b"\r\n"]
    return b"".join(out)


def parse_events(body):
    events = []
    at = 0
    while at < len(body):
        end = body.index(b"\r\n", at)
        line = body[at:end].decode("ascii")
        at = end + 2
        if " " in line:
            typ, hexlen = line.split(" ", 1)
            n = int(hexlen, 16)
            content = body[at:at + n]
            if body[at + n:at + n + 2] != b"\r\n":
                raise ValueError("bad terminator in %r" % body)
            at += n + 2
            events.append((typ, content))
        else:
            events.append((line, None))
    return events


def close_content(code, reason=b""):
    return bytes([code >> 8, code & 0xFF]) + reason


class WohRequest:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.events = parse_events(body) if body else []
        self.time = time.monotonic()

    def header(self, name):
        return self.headers.get(name)

    def types(self):
        return [t for t, _ in self.events]

    def __repr__(self):
        return "WohRequest(%s %s %r)" % (self.method, self.path, self.events)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        app = self.server.app
        req = WohRequest("POST", self.path, {k: v for k, v in self.headers.items()}, body)
        with app.lock:
            app.requests.append(req)
            app.cond.notify_all()
        result = app.behaviour(req)
        if result is None:  # drop the connection without an answer
            self.close_connection = True
            return
        status, headers, events = result
        payload = events if isinstance(events, bytes) else encode_events(events)
        self.send_response(status)
        sent_type = False
        for k, v in headers:
            sent_type = sent_type or k.lower() == "content-type"
            self.send_header(k, v)
        if not sent_type and status == 200:
            self.send_header("Content-Type", EVENTS)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


class WohBackend:
    """`tls`: an Issued certificate (tests/support/tls_certs.py): the app speaks HTTPS."""

    def __init__(self, behaviour, tls=None):
        self.behaviour = behaviour
        self.requests = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.app = self
        if tls is not None:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls.cert, tls.key)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, pred, timeout=5.0):
        """Waits until pred(requests) is true (up to timeout * slow_factor()); returns the
        request list."""
        deadline = time.monotonic() + timeout * slow_factor()
        with self.lock:
            while not pred(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting; requests: %r" % self.requests)
                self.cond.wait(left)
            return list(self.requests)

    def for_connection(self, cid):
        with self.lock:
            return [r for r in self.requests if r.header("Connection-Id") == cid]
