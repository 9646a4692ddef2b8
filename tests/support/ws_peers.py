# SPDX-License-Identifier: Apache-2.0
"""Real WebSocket peers for Portico's integration tests, and a TestCase base that cleans up.

Backends (tests/peers/), all speaking the same small protocol: every message is echoed with its
type; text "__close__:CODE:REASON" makes the backend close, "__drop__" drops the TCP connection
without a close frame (Django: ends daphne), "__info__" answers JSON {path, protocol,
extensions, headers}; subprotocols chat.v2 (preferred) and chat.v1; one JSON event line per
open/close on stdout ({"event":"close","id":N,"code":C,"reason":R}).

    class T(WsTestCase):
        def test_x(self):
            b = self.start_ws_backend("node")           # "node" | "django" | "python"
            p = self.start_portico(ws_proxy_config(b.address, mode="frames"))
            ws = self.ws_connect(p.port, "/ws/echo")     # ws_client.WsConnection, closed on cleanup
            res = run_node_client({"url": ws_url(p.port, "/ws/echo"), "messages": [...]})
            b.wait_event(lambda e: e["event"] == "close")

Python websockets clients: py_client(...) runs a coroutine with a connected
websockets client (asyncio), see py_echo_roundtrip.
Raw backends for broken upstreams: start_raw_ws_backend(tc, mode) (HttpBackend + TAKEN).
Every test of a WsTestCase has a timeout (class attribute test_timeout seconds, times
slow_factor()) enforced with SIGALRM, so a hang fails the test instead of blocking CI.
"""

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

import backends
import portico_harness
import ws_client
from portico_harness import PorticoTestCase, make_config, slow_factor

__all__ = [
    "PEERS_DIR", "PeerProcess", "WsTestCase", "TestTimeout", "start_ws_backend",
    "node_available", "run_node_client", "ws_url", "ws_proxy_config", "echo_config",
    "start_raw_ws_backend", "py_connect", "py_run", "py_echo_roundtrip", "raise_nofile",
    "start_raw_python_backend",
    "BACKEND_KINDS", "wait_for", "closed_socket_port", "connect_many",
]

PEERS_DIR = os.path.join(portico_harness.source_dir(), "tests", "peers")
PYTHON = "/usr/bin/python3"
NODE = shutil.which("node") or "/usr/bin/node"
BACKEND_KINDS = ("node", "django", "python")

_LISTEN_RES = (re.compile(r"listening on ([\d.]+):(\d+)", re.I),
               re.compile(r"Listening on TCP address ([\d.]+):(\d+)"),  # daphne
               # Django's runserver (printed just before it binds: poll the port too)
               re.compile(r"Starting development server at http://([\d.]+):(\d+)/"),
               re.compile(r"Listening at: http://([\d.]+):(\d+)"))  # gunicorn


class TestTimeout(Exception):
    pass


def wait_for(pred, timeout=5.0, interval=0.02):
    """Polls pred() until it is truthy (returns its value) or timeout*slow_factor() passes
    (returns the last value)."""
    deadline = time.monotonic() + timeout * slow_factor()
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


# conf/examples/express-bridge: the serve-grip app the bridge's tests and the demo page run.
GRIP_APP_DIR = os.path.join(portico_harness.source_dir(), "conf", "examples", "express-bridge")


def grip_app_available():
    return os.path.exists(NODE) and os.path.isdir(os.path.join(PEERS_DIR, "node_modules", "@fanoutio"))


def link_peer_modules(folder):
    """Makes tests/peers' node_modules visible from `folder`: ES modules resolve packages from
    their own folder up, never through NODE_PATH."""
    link = os.path.join(folder, "node_modules")
    if not os.path.exists(link):
        os.symlink(os.path.join(PEERS_DIR, "node_modules"), link)


def start_grip_app(testcase, grip_url, port=0):
    """Runs conf/examples/express-bridge/app.mjs (copied to a temporary folder next to a link to
    tests/peers/node_modules) on `port` (0: any) with GRIP_URL; stopped on cleanup."""
    folder = testcase.tmpdir()
    shutil.copy(os.path.join(GRIP_APP_DIR, "app.mjs"), folder)
    shutil.copy(os.path.join(GRIP_APP_DIR, "package.json"), folder)  # "type": "module"
    link_peer_modules(folder)
    app = PeerProcess([NODE, "app.mjs"], cwd=folder, env={"PORT": str(port), "GRIP_URL": grip_url},
                      name="serve-grip app")
    testcase.addCleanup(app.stop)
    return app.start()


def node_available():
    return (os.path.exists(NODE)
            and os.path.isdir(os.path.join(PEERS_DIR, "node_modules", "ws"))
            and os.path.isdir(os.path.join(PEERS_DIR, "node_modules", "express-ws")))


def _require_node():
    if not node_available():
        raise unittest.SkipTest("node or tests/peers/node_modules missing (run "
                                "scripts/install-deps.sh, which runs npm ci in tests/peers)")


class PeerProcess:
    """A peer subprocess; its stdout and stderr lines are collected on threads and the port it
    bound is read from a "listening on HOST:PORT" line (either stream)."""

    def __init__(self, argv, cwd=None, env=None, name="peer"):
        self.argv = argv
        self.cwd = cwd
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.name = name
        self.proc = None
        self.host = None
        self.port = None
        self._lines = []     # (stream, line)
        self._cond = threading.Condition()
        self._threads = []

    def start(self, timeout=20.0):
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            t = threading.Thread(target=self._reader, args=(name, stream), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + timeout * slow_factor()
        with self._cond:
            while self.port is None:
                if self.proc.poll() is not None:
                    self._cond.wait(0.3)
                    raise RuntimeError("%s exited with %s before listening:\n%s"
                                       % (self.name, self.proc.returncode, self.output()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("%s did not report its port in time:\n%s"
                                       % (self.name, self.output()))
                self._cond.wait(min(left, 0.1))
        return self

    def _reader(self, name, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                self._lines.append((name, line))
                if self.port is None:
                    for rx in _LISTEN_RES:
                        m = rx.search(line)
                        if m:
                            self.host, self.port = m.group(1), int(m.group(2))
                            break
                self._cond.notify_all()
        stream.close()

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def output(self):
        with self._cond:
            return "\n".join("[%s] %s" % x for x in self._lines[-60:])

    def events(self):
        """The JSON event lines printed so far (dicts with an "event" key)."""
        out = []
        with self._cond:
            lines = [l for s, l in self._lines if s == "out"]
        for line in lines:
            if line.startswith("{"):
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and "event" in doc:
                    out.append(doc)
        return out

    def wait_event(self, pred, timeout=5.0):
        """The first event with pred(event) true, waiting up to timeout; None if none came."""
        deadline = time.monotonic() + timeout * slow_factor()
        while True:
            for e in self.events():
                if pred(e):
                    return e
            with self._cond:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))

    def close_events(self):
        return [e for e in self.events() if e.get("event") == "close"]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    self.proc.kill()
                self.proc.wait(5)
        else:
            # the leader is gone (daphne's __drop__); make sure nothing of its group lingers
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        for t in self._threads:
            t.join(2)


def start_ws_backend(testcase, kind, deflate=True, max_size=None, tls=None):
    """Starts one of the echo backends ("node": express-ws, "django": Channels under daphne,
    "python": python3-websockets) on a free port; stopped on testcase cleanup. tls (python
    only): (cert, key) files to serve wss:// with."""
    if kind == "node":
        _require_node()
        argv = [NODE, os.path.join(PEERS_DIR, "express_ws_backend.js"), "--port", "0"]
        if not deflate:
            argv.append("--no-deflate")
        peer = PeerProcess(argv, cwd=PEERS_DIR, name="express-ws backend")
    elif kind == "django":
        cwd = os.path.join(PEERS_DIR, "django_channels")
        argv = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", "0",
                "portico_peer.asgi:application"]
        env = {"DJANGO_SETTINGS_MODULE": "portico_peer.settings", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": cwd}
        peer = PeerProcess(argv, cwd=cwd, env=env, name="daphne backend")
    elif kind == "python":
        argv = [PYTHON, os.path.join(PEERS_DIR, "py_websockets_backend.py"), "--port", "0"]
        if not deflate:
            argv.append("--no-deflate")
        if max_size:
            argv += ["--max-size", str(max_size)]
        if tls:
            argv += ["--tls", tls[0], tls[1]]
        peer = PeerProcess(argv, cwd=PEERS_DIR, env={"PYTHONUNBUFFERED": "1"},
                           name="python websockets backend")
    else:
        raise ValueError(kind)
    testcase.addCleanup(peer.stop)
    peer.start()
    return peer


def _run_node_peer(script, plan, timeout, run_timeout):
    """Runs tests/peers/`script` with the plan (dict) as its argument; returns its last JSON line."""
    plan = dict(plan)
    plan.setdefault("timeout_ms", int(timeout * 1000 * slow_factor()))
    r = subprocess.run([NODE, os.path.join(PEERS_DIR, script), json.dumps(plan)],
                       capture_output=True, text=True, timeout=run_timeout * slow_factor(),
                       cwd=PEERS_DIR)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise AssertionError("%s printed no result (rc %s):\n%s\n%s"
                             % (script, r.returncode, r.stdout, r.stderr))
    return json.loads(lines[-1])


def run_node_client(plan, timeout=30.0):
    """Runs tests/peers/ws_client.js with the plan (dict, see that file); returns its JSON."""
    _require_node()
    return _run_node_peer("ws_client.js", plan, timeout, timeout + 10)


def browser_available():
    """node, playwright-core in tests/peers/node_modules and /usr/bin/chromium."""
    return node_available() and os.path.exists("/usr/bin/chromium") and os.path.isdir(
        os.path.join(PEERS_DIR, "node_modules", "playwright-core"))


def run_browser_close(url, messages, timeout=15.0):
    """Runs tests/peers/ws_browser_close.js (headless Chromium): one WebSocket to `url` sends
    `messages` and waits for the close. Returns its JSON (code, wasClean, echoes, extensions,
    ...); raises AssertionError unless it ran ("ok")."""
    result = _run_node_peer("ws_browser_close.js", {"url": url, "messages": messages}, timeout, 90)
    if not result.get("ok"):
        raise AssertionError("the browser driver failed: %r" % result)
    return result


def ws_url(port, path="/", host="127.0.0.1"):
    return "ws://%s:%d%s" % (host, port, path)


def ws_proxy_config(backend_address, mode="tunnel", path="/ws/", websocket=None, **kw):
    """A config with upstream "app" (the backend) on route `path` with `websocket.mode`; the
    websocket dict is merged in. mode None leaves the websocket block out."""
    route = {"path": path, "upstream": "app"}
    ws = {} if mode is None else {"mode": mode}
    ws.update(websocket or {})
    if ws:
        route["websocket"] = ws
    return make_config(routes=[route], upstreams={"app": {"servers": [backend_address]}}, **kw)


def echo_config(path="/echo", websocket=None, extra_routes=(), **kw):
    """A config with the built-in echo on `path` (and websocket settings if given)."""
    route = {"path": path, "handler": "echo"}
    if websocket:
        route["websocket"] = dict(websocket)
    return make_config(routes=[route] + list(extra_routes), **kw)


# ---------------------------------------------------------------------------------------------
# Raw broken backends
# ---------------------------------------------------------------------------------------------
def start_upgraded_backend(testcase, serve, name="upgraded", rcvbuf=None):
    """An upstream whose /ws/ paths answer the WebSocket upgrade (a correct 101), then run
    serve(b, conn, sock) on the connection (conn.rbuf: what came behind the request). What
    serve returns is b.end_kind ("eof", ...); a reset it meets makes it "reset", another OSError
    its repr. Then b.ended is set and the socket closed. rcvbuf: SO_RCVBUF before the 101 (a
    fixed buffer, no autotuning). Stopped on cleanup."""
    b = backends.HttpBackend(name=name)
    b.ended = threading.Event()
    b.end_kind = None

    def handler(req, conn):
        key = req.header("Sec-WebSocket-Key") or ""
        sock = conn.sock
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                      % ws_client.accept_for(key)).encode("latin-1"))
        try:
            b.end_kind = serve(b, conn, sock)
        except ConnectionResetError:
            b.end_kind = "reset"
        except OSError as e:
            b.end_kind = repr(e)
        finally:
            b.ended.set()
            sock.close()
        return backends.TAKEN

    b.route("/ws/", handler)
    b.start()
    testcase.addCleanup(b.stop)
    return b


def _tcp_sockets():
    """(local port, remote port, tx_queue, rx_queue, inode) of each IPv4 TCP socket (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            tx, rx = fields[4].split(":")
            yield (int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16), int(tx, 16), int(rx, 16),
                   int(fields[9]))


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the IPv4 socket local_port <-> remote_port, or None: bytes it has
    not had acknowledged (or not sent), and bytes received that nobody read."""
    for local, remote, tx, rx, _ in _tcp_sockets():
        if (local, remote) == (local_port, remote_port):
            return tx, rx
    return None


def held_sockets(pairs):
    """The IPv4 sockets (local port, remote port) in `pairs` that a process still holds (an
    inode: a socket closed and left to the kernel, in FIN_WAIT or TIME_WAIT, has none)."""
    return [(local, remote) for local, remote, _, _, inode in _tcp_sockets() if (local, remote) in pairs and inode]


def start_raw_ws_backend(testcase, mode, name="raw", size=2000, delay=1.0):
    """An HttpBackend whose /ws/ paths answer a WebSocket handshake wrongly or specially:
      "wrong_accept": 101 with a Sec-WebSocket-Accept for another key, then echoes bytes
      "no_accept":    101 without Sec-WebSocket-Accept
      "non101":       403 with a small body and X-Refused: yes (an ordinary HTTP answer)
      "raw_echo":     a correct 101, then every byte read is written back (a TCP echo; a
                      client frame comes back masked, which frames mode must refuse)
      "masked_server_frame": correct 101, then sends a masked frame to the client (server
                      frames must not be masked: frames mode closes the backend 1002)
      "hello_after_101": the 101 and an unmasked text frame "hello" in one write
      "big_101":      as hello_after_101, the 101 carrying X-Pad-<n> fields of about `size`
                      bytes in all (a head larger than what fits in a small buffer)
      "hello_then_reset": as hello_after_101, then the connection is reset (SO_LINGER 0)
      "hello_then_fin": as hello_after_101, then the connection is closed, without a Close
      "big_server_message": correct 101, then one unmasked binary frame of `size` bytes
      "slow_101":     waits `delay` seconds before a correct 101
      "flood":        correct 101, then one unmasked binary frame of `size` bytes written in
                      64 KiB pieces as fast as the connection takes them; b.ws_sent counts the
                      bytes written so far (a proxy that stops reading stops it)
      "split_server_frames": correct 101; once something arrives from the client, an unmasked
                      text frame "one" and the first byte of a second one ("two": its header
                      incomplete) in one write; the rest of "two" once something more arrives
                      (a proxy must not hold "one" back until the frame behind it is whole)
    After the 101 every mode reads until EOF; what it read is appended to b.ws_received
    (bytearray, all connections) and b.ws_closed counts connections that ended; b.ws_ends says
    how each read ended, in order: "eof" (a FIN), "reset" (ECONNRESET: an RST) or "timeout".
    Other paths get HttpBackend's built-ins (echo JSON). Stopped on cleanup."""
    b = backends.HttpBackend(name=name)
    b.ws_received = bytearray()
    b.ws_closed = 0
    b.ws_ends = []
    b.ws_sent = 0
    lock = threading.Lock()

    def handler(req, conn):
        key = req.header("Sec-WebSocket-Key") or ""
        if mode == "non101":
            return backends.Response(403, headers=[("X-Refused", "yes")], body=b"refused\n")
        accept = ws_client.accept_for(key)
        if mode == "wrong_accept":
            accept = ws_client.accept_for(ws_client.make_key())
        head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        if mode != "no_accept":
            head += "Sec-WebSocket-Accept: %s\r\n" % accept
        if mode == "big_101":
            head += "".join("X-Pad-%d: %s\r\n" % (n, "p" * 90) for n in range(size // 100))
        head = (head + "\r\n").encode("latin-1")
        sock = conn.sock
        try:
            if mode == "slow_101":
                time.sleep(delay)
            if mode == "masked_server_frame":
                head += ws_client.build_frame(ws_client.OP_TEXT, b"masked!", mask=True)
            elif mode in ("hello_after_101", "hello_then_reset", "hello_then_fin", "big_101"):
                head += ws_client.build_frame(ws_client.OP_TEXT, b"hello", mask=False)
            elif mode == "big_server_message":
                head += ws_client.build_frame(ws_client.OP_BINARY, b"B" * size, mask=False)
            if mode == "flood":
                head += bytes([0x82, 127]) + size.to_bytes(8, "big")
            later = []  # what split_server_frames writes, a piece per read from the client
            if mode == "split_server_frames":
                two = ws_client.build_frame(ws_client.OP_TEXT, b"two", mask=False)
                one = ws_client.build_frame(ws_client.OP_TEXT, b"one", mask=False)
                later = [one + two[:1], two[1:]]
            sock.sendall(head)
            if mode in ("hello_then_reset", "hello_then_fin"):
                time.sleep(0.2)  # the hello is relayed first
                if mode == "hello_then_reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return backends.TAKEN  # closed by the finally below
            if mode == "flood":
                piece, left = b"F" * 65536, size
                while left > 0:
                    n = sock.send(piece[:left])
                    left -= n
                    with lock:
                        b.ws_sent += n
            early = bytes(getattr(conn, "rbuf", b""))
            with lock:
                b.ws_received += early
            if early and mode in ("raw_echo", "wrong_accept", "no_accept"):
                sock.sendall(early)
            sock.settimeout(30)
            while True:
                data = sock.recv(65536)
                if not data:
                    b.ws_ends.append("eof")
                    break
                with lock:
                    b.ws_received += data
                if mode in ("raw_echo", "wrong_accept", "no_accept"):
                    sock.sendall(data)
                if later:
                    sock.sendall(later.pop(0))
        except ConnectionResetError:
            b.ws_ends.append("reset")
        except socket.timeout:
            b.ws_ends.append("timeout")
        except OSError:
            pass
        finally:
            with lock:
                b.ws_closed += 1
            try:
                sock.close()
            except OSError:
                pass
        return backends.TAKEN

    b.route("/ws/", handler)
    b.start()
    testcase.addCleanup(b.stop)
    return b


def start_raw_python_backend(testcase, after="linger"):
    """tests/peers/raw_ws_backend.py on a free port (stopped on cleanup): echoes text; "bye"
    sends Close 1000 then HTTP junk (dwebsocket-like; `after` "close" then closes TCP, "linger"
    reads on); "flood:N" sends N messages at once. One {"event":"close","received_close":C}
    line per connection."""
    peer = PeerProcess([PYTHON, os.path.join(PEERS_DIR, "raw_ws_backend.py"), "--port", "0",
                        "--after", after], env={"PYTHONUNBUFFERED": "1"}, name="raw ws backend")
    testcase.addCleanup(peer.stop)
    return peer.start()


# ---------------------------------------------------------------------------------------------
# python3-websockets clients
# ---------------------------------------------------------------------------------------------
def py_connect(url, **kw):
    """websockets.connect(url, **kw) with test defaults (no keepalive pings, big max_size)."""
    import websockets
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", 64 * 1024 * 1024)
    kw.setdefault("open_timeout", 10 * slow_factor())
    kw.setdefault("close_timeout", 10 * slow_factor())
    return websockets.connect(url, **kw)


def py_run(coro, timeout=60.0):
    """Runs a coroutine to completion with a timeout (times slow_factor())."""
    async def wrapped():
        return await asyncio.wait_for(coro, timeout * slow_factor())
    return asyncio.run(wrapped())


def py_echo_roundtrip(url, messages, close_code=1000, close_reason="", **connect_kw):
    """Connects with python websockets, sends each message (str or bytes) and awaits its echo.
    Returns dict(echoes=[...], subprotocol, extensions (response header), close_code,
    close_reason) where close_* are what the server answered to our close."""
    async def run():
        out = {"echoes": []}
        async with py_connect(url, **connect_kw) as ws:
            out["subprotocol"] = ws.subprotocol
            out["extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions")
            for m in messages:
                await ws.send(m)
                out["echoes"].append(await ws.recv())
            await ws.close(close_code, close_reason)
            out["close_code"] = ws.close_code
            out["close_reason"] = ws.close_reason
        return out
    return py_run(run())


# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------
def raise_nofile():
    """Raises RLIMIT_NOFILE's soft limit to the hard limit (children inherit it); returns the
    new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------------------------
# TestCase
# ---------------------------------------------------------------------------------------------
class WsTestCase(PorticoTestCase):
    """PorticoTestCase with WebSocket helpers and a per-test timeout (test_timeout seconds)."""

    test_timeout = 60.0

    def setUp(self):
        super().setUp()
        limit = max(1, int(self.test_timeout * slow_factor()))

        def on_alarm(signum, frame):
            raise TestTimeout("test exceeded its %ds timeout" % limit)

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(limit)
        # Registered first, so it runs last: cleanups are covered by the alarm too.
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.alarm, 0)

    def start_ws_backend(self, kind, **kw):
        return start_ws_backend(self, kind, **kw)

    def start_raw_ws_backend(self, mode, **kw):
        return start_raw_ws_backend(self, mode, **kw)

    def ws_connect(self, port, path="/", **kw):
        """A WsConnection (ws_client) closed on cleanup."""
        ws = ws_client.WsConnection.connect(port, path, timeout=kw.pop("timeout", 10.0)
                                            * slow_factor(), **kw)
        self.addCleanup(ws.close)
        return ws

    def handshake(self, port, path="/", headers=None, **kw):
        """handshake_response() whose client is closed on cleanup; returns the response."""
        r, c = ws_client.handshake_response(port, path, headers, **kw)
        self.addCleanup(c.close)
        return r

    def assertCloseCode(self, ws, expected, timeout=5.0, msg=None):
        """Expects the server's close frame with one of the expected codes (an int or a
        tuple), then the TCP close."""
        expected = expected if isinstance(expected, tuple) else (expected,)
        code = ws.fail_reason(timeout * slow_factor())
        self.assertIn(code, expected, msg or "close code %r, expected one of %r (data before "
                      "close: %r)" % (code, expected,
                                      [(o, d[:40]) for o, d in getattr(ws, "before_close", [])]))
        return code

    def free_port(self):
        return backends.free_port()


def closed_socket_port():
    """A port with nothing listening (an upstream that is down)."""
    return backends.free_port()


def connect_many(port, path, count, host="127.0.0.1", batch=500, timeout=60.0):
    """Opens `count` raw WebSocket connections (handshake on each, in batches of pipelined
    non-blocking connects); returns the list of sockets. Raises on any non-101."""
    import selectors
    socks = []
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout * slow_factor()
    pending = {}
    todo = count
    try:
        while todo or pending:
            while todo and len(pending) < batch:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((host, port))
                key = ws_client.make_key()
                req = ("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode()
                pending[s] = [req, bytearray(), ws_client.accept_for(key)]
                sel.register(s, selectors.EVENT_WRITE)
                todo -= 1
            if time.monotonic() > deadline:
                raise TimeoutError("%d handshakes still pending" % len(pending))
            for k, ev in sel.select(1.0):
                s = k.fileobj
                st = pending[s]
                if ev & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect failed: %s" % os.strerror(err))
                    n = s.send(st[0])
                    st[0] = st[0][n:]
                    if not st[0]:
                        sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(4096)
                if not data:
                    raise ConnectionError("closed during the handshake after %d connections"
                                          % len(socks))
                st[1] += data
                if b"\r\n\r\n" in st[1]:
                    head = bytes(st[1]).split(b"\r\n\r\n")[0].decode("latin-1")
                    if not head.startswith("HTTP/1.1 101") or st[2] not in head:
                        raise ConnectionError("bad handshake answer: %r" % head[:200])
                    sel.unregister(s)
                    del pending[s]
                    socks.append(s)
    except BaseException:
        for s in list(pending) + socks:
            s.close()
        raise
    finally:
        sel.close()
    return socks
