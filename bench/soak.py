#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Soak: the real binary under a mixed load for a while, then checks that nothing broke, leaked
or went unlogged. Not part of CI (it takes minutes); its figures go in bench/RESULTS.md.

    /usr/bin/python3 bench/soak.py [--duration 600] [--portico-bin build/portico] [--json FILE]

The mix, all at once for --duration seconds (default 10 minutes), against one Portico (2
workers) proxying to an HTTP backend and a WebSocket backend (python3-websockets), each in a
process of its own:
  - HTTP keep-alive: GETs through the proxy, 200 per connection, then a new connection;
  - uploads: POSTs of 64 KiB - 4 MiB, with Content-Length or chunked, echoed lengths checked;
  - WebSocket chat in each mode: tunnel and frames to the backend, the built-in echo;
    sessions of 20 messages of up to 8 KiB, every echo checked, a clean close;
  - pub/sub fan-out: 4 channels x 5 WebSocket subscribers (sessions of ~20 s), POSTs published
    to them; deliveries counted;
  - slowloris: heads trickled a line at a time (408 after client_header_timeout) and bodies that
    stop half-way (408 after client_body_timeout);
  - clients that never read: a 64 MiB download left unread for 3 s, then closed;
  - SIGHUP with a rewritten configuration every --reload-interval seconds (default 3).
Every request carries an id (`sid=KIND-THREAD-N` in its query) registered by the client once its
head went out, with the statuses it may end with.

Checks once the load stopped and connections settled (exit status 1 if one fails):
  - no crash: the process lived throughout, no sanitizer or fatal line, and SIGTERM ends it with 0;
  - every reload was applied ("configuration reloaded" lines = SIGHUPs sent);
  - RSS back near where it started (at most --rss-slack-mb above its value before the load);
  - no descriptor leak: /proc/PID/fd counts the same as before the load (the backend closes idle
    keep-alive connections after 1 s, so the upstream pools are empty again);
  - every access-log line accounted for: each id the clients sent is logged exactly once with
    an expected status, and no line is left without a known id;
  - the clients saw no unexpected answer (wrong status, wrong echo, missing delivery).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

import benchlib  # noqa: E402
import http_client  # noqa: E402  (tests/support)
import ws_client  # noqa: E402
from benchlib import log  # noqa: E402

TOKEN = "soak-token"
CHANNELS = 4
SUBSCRIBERS_PER_CHANNEL = 5


# --------------------------------------------------------------------------------------------
# Bookkeeping: what the clients did, to hold the access log against


class Ledger:
    """Request ids the clients sent, the statuses each may end with, and what went wrong."""

    def __init__(self):
        self.lock = threading.Lock()
        self.expected: dict[str, set[int] | None] = {}  # None: any status (the client erred)
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []
        self.error_count = 0

    def sent(self, rid: str, statuses: set[int]) -> None:
        with self.lock:
            self.expected[rid] = set(statuses)
            kind = rid.split("-", 1)[0]
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def any_status(self, rid: str) -> None:
        with self.lock:
            if rid in self.expected:
                self.expected[rid] = None

    def error(self, what: str) -> None:
        with self.lock:
            self.error_count += 1
            if len(self.errors) < 30:
                self.errors.append(what)

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n


class Ids:
    """sid values of one client thread: KIND-THREAD-N."""

    def __init__(self, kind: str, thread: int):
        self.prefix = f"{kind}-{thread}-"
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"


# --------------------------------------------------------------------------------------------
# The clients


class Client(threading.Thread):
    """A loop of operations until the deadline; an exception in one is an error, not the end."""

    kind = "?"

    def __init__(self, soak: "Soak", number: int):
        super().__init__(daemon=True, name=f"{self.kind}-{number}")
        self.soak = soak
        self.ledger = soak.ledger
        self.ids = Ids(self.kind, number)
        self.rng = random.Random(f"{self.kind}-{number}")

    current: str | None = None  # the request in flight, for the error path

    def run(self) -> None:
        while time.monotonic() < self.soak.deadline and not self.soak.stopping.is_set():
            try:
                self.once()
            except Exception as e:  # noqa: BLE001 - any failure is counted and the loop goes on
                self.ledger.error(f"{self.name}: {type(e).__name__}: {e}")
                if self.current is not None:
                    self.ledger.any_status(self.current)  # it still owes one access-log line
                time.sleep(0.2)
            self.current = None

    def once(self) -> None:
        raise NotImplementedError

    def begin(self) -> str:
        """A new request id; the caller registers it (Ledger.sent) once its head went out."""
        self.current = self.ids.next()
        return self.current

    def port(self) -> int:
        return self.soak.port


class KeepAliveRequests(Client):
    """Requests one after another on a keep-alive connection, then a new connection."""

    per_connection = 200
    pause = 0.0  # seconds between two requests

    def once(self):
        c = http_client.RawClient(self.port(), timeout=20)
        try:
            for _ in range(self.per_connection):
                if time.monotonic() >= self.soak.deadline:
                    break
                rid = self.begin()
                self.send(c, rid)
                self.ledger.sent(rid, {200})
                self.check(rid, c.read_response())
                self.current = None
                time.sleep(self.pause)
        finally:
            c.close()

    def send(self, c: http_client.RawClient, rid: str) -> None:
        raise NotImplementedError

    def check(self, rid: str, r: http_client.HttpResponse) -> None:
        if r.status != 200:
            self.ledger.error(f"{rid}: {r.status} {r.body[:80]!r}")


class KeepAlive(KeepAliveRequests):
    kind = "ka"

    def send(self, c, rid):
        c.request("GET", f"/api/items/{self.rng.randrange(1000)}?sid={rid}")

    def check(self, rid, r):
        super().check(rid, r)
        if r.status == 200 and rid not in r.json().get("target", ""):
            self.ledger.error(f"{rid}: the backend saw {r.json().get('target')!r}")


class Upload(Client):
    kind = "up"

    def once(self):
        size = self.rng.randrange(64 << 10, 4 << 20)
        chunked = self.rng.random() < 0.5
        body = bytes([self.rng.randrange(256)]) * size
        c = http_client.RawClient(self.port(), timeout=30)
        try:
            rid = self.begin()
            target = f"/api/upload?sid={rid}"
            if chunked:
                c.request("POST", target, headers=[("Transfer-Encoding", "chunked")])
                self.ledger.sent(rid, {200})
                for i in range(0, size, 256 << 10):
                    piece = body[i:i + (256 << 10)]
                    c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                c.send(b"0\r\n\r\n")
            else:
                c.request("POST", target, headers=[("Content-Length", str(size))])
                self.ledger.sent(rid, {200})
                c.send(body)
            r = c.read_response()
            if r.status != 200 or r.json().get("body_len") != size:
                self.ledger.error(f"{rid}: {r.status} {r.body[:120]!r} (sent {size} bytes)")
            self.ledger.count("upload_bytes", size)
        finally:
            c.close()


class WsChat(Client):
    """One WebSocket session per operation: 20 messages, each echo checked, a clean close."""

    kind = "ws"

    def __init__(self, soak, number, path):
        self.kind = "ws" + path.strip("/").split("-")[-1]  # wstunnel, wsframes, wsecho
        super().__init__(soak, number)
        self.path = path

    def once(self):
        rid = self.begin()
        self.ledger.sent(rid, {101})  # the handshake goes out in connect()
        ws = ws_client.WsConnection.connect(self.port(), f"{self.path}chat?sid={rid}", timeout=20)
        try:
            for i in range(20):
                text = f"{rid}:{i}:" + "m" * self.rng.randrange(8 << 10)
                ws.send_text(text)
                if ws.recv_text(20) != text:
                    self.ledger.error(f"{rid}: wrong echo for message {i}")
            self.ledger.count("ws_messages", 20)
            ws.send_close(1000)
            ws.expect_close(20)
        finally:
            ws.close()


class Subscriber(Client):
    """A pub/sub subscriber: sessions of about 20 s on one channel, counting deliveries."""

    kind = "sub"

    def __init__(self, soak, number, channel):
        super().__init__(soak, number)
        self.channel = channel

    def once(self):
        rid = self.begin()
        self.ledger.sent(rid, {101})
        ws = ws_client.WsConnection.connect(self.port(), f"/live/room{self.channel}?sid={rid}", timeout=20)
        try:
            opened = time.monotonic()
            until = min(opened + self.rng.uniform(15, 25), self.soak.deadline)
            got = 0
            while time.monotonic() < until:
                try:
                    ws.recv_text(max(0.1, min(1.0, until - time.monotonic())))
                    got += 1
                except socket.timeout:
                    pass
            self.ledger.count("pubsub_delivered", got)
            if got == 0 and until - opened >= 5:  # the publisher posts to each channel every ~0.1 s
                self.ledger.error(f"{rid}: no message in a {until - opened:.0f} s session")
            ws.send_close(1000)
            ws.expect_close(20)
        finally:
            ws.close()


class Publisher(KeepAliveRequests):
    kind = "pub"
    per_connection = 100
    pause = 0.02

    def send(self, c, rid):
        body = json.dumps({"sid": rid, "text": "x" * self.rng.randrange(200)}).encode()
        c.request("POST", f"/live/room{self.rng.randrange(CHANNELS)}?sid={rid}", body=body,
                  headers=[("Authorization", "Bearer " + TOKEN), ("Content-Type", "application/json")])


class Slowloris(Client):
    """Heads trickled a line at a time, or bodies that stop: both end in 408."""

    kind = "slow"

    def once(self):
        c = http_client.RawClient(self.port(), timeout=20)
        try:
            rid = self.begin()
            if self.rng.random() < 0.5:
                c.send(f"GET /api/slow?sid={rid} HTTP/1.1\r\nHost: soak\r\n")
                self.ledger.sent(rid, {408})
                for i in range(40):  # 10 s at most: client_header_timeout is 2 s
                    readable, _, _ = select.select([c.sock], [], [], 0.25)
                    if readable:
                        break  # the 408: read it before a reset could discard it
                    c.send(f"X-Trickle-{i}: 1\r\n")
            else:
                c.send(f"POST /api/slowbody?sid={rid} HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000\r\n\r\n"
                       + "b" * 100)
                self.ledger.sent(rid, {408})
            r = c.read_response()
            if r.status != 408:
                self.ledger.error(f"{rid}: slow client answered {r.status}")
        finally:
            c.close()


class NeverReads(Client):
    """Asks for 64 MiB and reads none of it for 3 s, then goes away."""

    kind = "nr"

    def once(self):
        c = http_client.RawClient(self.port(), timeout=20, rcvbuf=16 << 10)
        try:
            rid = self.begin()
            c.request("GET", f"/api/stream?n={64 << 20}&sid={rid}")
            self.ledger.sent(rid, {200})
            time.sleep(3)
        finally:
            c.close()  # with unread bytes: a reset


# --------------------------------------------------------------------------------------------
# The run


def config_yaml(soak: "Soak", generation: int) -> str:
    import portico_harness
    cfg = {
        "workers": 2,
        "shutdown_timeout": "5s",
        "log": {"level": "info", "access": str(soak.access_path), "access_format": "json"},
        "limits": {"max_connections": 2000, "client_header_timeout": "2s", "client_body_timeout": "2s",
                   "keepalive_timeout": "5s", "max_body_bytes": "8MiB",
                   "per_ip_connections": 0, "per_ip_websockets": 0},  # one client address
        "listeners": [{"address": f"127.0.0.1:{soak.port}"}],
        "upstreams": {
            "app": {"servers": [soak.http_backend_address], "keepalive": 16, "read_timeout": "10s",
                    "send_timeout": "10s"},
            "ws": {"servers": [soak.ws_backend_address]},
        },
        "routes": [
            {"path": "/api/", "upstream": "app", "set_headers": {"X-Soak-Generation": str(generation)}},
            {"path": "/ws-tunnel/", "upstream": "ws", "websocket": {"mode": "tunnel"}},
            {"path": "/ws-frames/", "upstream": "ws", "websocket": {"mode": "frames"}},
            {"path": "/ws-echo/", "handler": "echo"},
            {"path": "/live/", "handler": "pubsub",
             "pubsub": {"publish_token": TOKEN, "history": 20, "publish_rate": "10000/s"}},
        ],
    }
    return f"# soak configuration, generation {generation}\n" + portico_harness.to_yaml(cfg) + "\n"


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    def __init__(self, args):
        self.args = args
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self.deadline = 0.0
        self.workdir = benchlib.make_workdir("soak")
        self.access_path = self.workdir / "access.log"
        self.config_path = self.workdir / "portico.yaml"
        self.port = benchlib.free_port()
        self.rss: list[int] = []
        self.fds: list[int] = []
        self.reloads_sent = 0

    # -- processes ----------------------------------------------------------------------------
    def start_peers(self) -> None:
        py = "/usr/bin/python3"
        http = benchlib.Service("http-backend", [py, str(Path(__file__).resolve()), "--serve-http-backend"],
                                benchlib.make_workdir("soak-http"))
        http.start()
        self.http_backend_address = self.wait_listening(http)
        ws = benchlib.Service("ws-backend", [py, str(HERE.parent / "tests/peers/py_websockets_backend.py"),
                                             "--port", "0", "--no-deflate"], benchlib.make_workdir("soak-ws"),
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
        ws.start()
        self.ws_backend_address = self.wait_listening(ws)
        self.peers = [http, ws]

    @staticmethod
    def wait_listening(svc: benchlib.Service, timeout: float = 20.0) -> str:
        pattern = re.compile(r"listening on ([\d.]+:\d+)", re.I)
        found: list[str] = []

        def check() -> bool:
            m = pattern.search(svc.log_path.read_text(errors="replace"))
            if m:
                found.append(m.group(1))
            return bool(m)

        svc.wait_ready(check, timeout)
        return found[0]

    def start_portico(self) -> None:
        self.config_path.write_text(config_yaml(self, 0))
        self.portico = benchlib.Service("portico", [str(self.args.portico_bin), "-c", str(self.config_path)],
                                        self.workdir, keep_dir=True)
        self.portico.start()
        self.wait_listening(self.portico)

    # -- background duties --------------------------------------------------------------------
    def sampler(self) -> None:
        while not self.stopping.is_set():
            pid = self.portico.pid
            self.rss.append(benchlib.rss_bytes([pid]))
            try:
                self.fds.append(fd_count(pid))
            except OSError:
                pass
            self.stopping.wait(0.5)

    def reloader(self) -> None:
        generation = 0
        while not self.stopping.wait(self.args.reload_interval):
            if time.monotonic() >= self.deadline:
                return
            generation += 1
            self.config_path.write_text(config_yaml(self, generation))
            os.kill(self.portico.pid, signal.SIGHUP)
            self.reloads_sent += 1

    def clients(self) -> list[Client]:
        out: list[Client] = [KeepAlive(self, i) for i in range(4)]
        out += [Upload(self, i) for i in range(2)]
        for path in ("/ws-tunnel/", "/ws-frames/", "/ws-echo/"):
            out += [WsChat(self, i, path) for i in range(2)]
        out += [Subscriber(self, i, i % CHANNELS) for i in range(CHANNELS * SUBSCRIBERS_PER_CHANNEL)]
        out += [Publisher(self, 0)]
        out += [Slowloris(self, i) for i in range(4)]
        out += [NeverReads(self, i) for i in range(2)]
        return out

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> dict:
        benchlib.raise_nofile_limit()
        self.start_peers()
        self.start_portico()
        pid = self.portico.pid
        time.sleep(1.0)
        rss_start, fds_start = benchlib.rss_bytes([pid]), fd_count(pid)
        log(f"portico pid {pid} on :{self.port}: RSS {rss_start / 2**20:.1f} MiB, {fds_start} fds; "
            f"load for {self.args.duration:.0f} s")
        started = time.monotonic()
        self.deadline = started + self.args.duration
        duties = [threading.Thread(target=self.sampler, daemon=True),
                  threading.Thread(target=self.reloader, daemon=True)]
        for t in duties:
            t.start()
        clients = self.clients()
        for c in clients:
            c.start()
        next_report = started + 30
        while time.monotonic() < self.deadline:
            time.sleep(1)
            if not self.portico.alive():
                log("portico died")
                break
            if time.monotonic() >= next_report:
                next_report += 30
                log(f"{time.monotonic() - started:4.0f} s: RSS {self.rss[-1] / 2**20:.1f} MiB, "
                    f"{self.fds[-1] if self.fds else 0} fds, {self.reloads_sent} reloads, "
                    f"{sum(v for k, v in self.ledger.counts.items() if '_' not in k)} requests, "
                    f"{self.ledger.error_count} errors")
        for c in clients:
            c.join(60)
        stuck = [c.name for c in clients if c.is_alive()]
        load_seconds = time.monotonic() - started
        # Settle: lingering closes (2 s), keep-alive timeouts (5 s), the backend's idle close of
        # pooled connections (1 s).
        settle_deadline = time.monotonic() + self.args.settle
        while time.monotonic() < settle_deadline and fd_count(pid) > fds_start:
            time.sleep(0.5)
        time.sleep(2.0)
        rss_end, fds_end = benchlib.rss_bytes([pid]), fd_count(pid)
        self.stopping.set()
        for t in duties:
            t.join(10)
        alive = self.portico.alive()
        exit_code = self.stop_portico()
        log_text = self.portico.log_path.read_text(errors="replace")
        for peer in self.peers:
            peer.stop()
        access = self.account()
        reloads_applied = log_text.count("configuration reloaded")
        fatal = [l for l in log_text.splitlines()
                 if re.search(r"AddressSanitizer|runtime error|\[error\]|SEGV|terminate called", l)]
        result = {
            "duration_s": round(load_seconds, 1),
            "rss_start_mib": round(rss_start / 2**20, 1),
            "rss_peak_mib": round(max(self.rss or [rss_start]) / 2**20, 1),
            "rss_end_mib": round(rss_end / 2**20, 1),
            "fds_start": fds_start,
            "fds_peak": max(self.fds or [fds_start]),
            "fds_end": fds_end,
            "reloads_sent": self.reloads_sent,
            "reloads_applied": reloads_applied,
            "requests": {k: v for k, v in sorted(self.ledger.counts.items()) if "_" not in k},
            "requests_total": sum(v for k, v in self.ledger.counts.items() if "_" not in k),
            "ws_messages": self.ledger.counts.get("ws_messages", 0),
            "pubsub_delivered": self.ledger.counts.get("pubsub_delivered", 0),
            "upload_mib": round(self.ledger.counts.get("upload_bytes", 0) / 2**20),
            "access": access,
            "client_errors": self.ledger.error_count,
            "client_error_samples": self.ledger.errors,
            "stuck_clients": stuck,
            "alive_at_end": alive,
            "exit_code": exit_code,
            "fatal_lines": fatal[:10],
        }
        checks = {
            "no crash": alive and exit_code == 0 and not fatal,
            "every reload applied": reloads_applied == self.reloads_sent,
            f"RSS back within {self.args.rss_slack_mb} MiB of its start": rss_end - rss_start <= self.args.rss_slack_mb * 2**20,
            "no fd leak": fds_end <= fds_start,
            "every access-log line accounted for": access["missing"] == 0 and access["duplicated"] == 0
            and access["unknown"] == 0 and access["wrong_status"] == 0,
            "clients saw no error": self.ledger.error_count == 0 and not stuck,
        }
        result["checks"] = checks
        return result

    def stop_portico(self) -> int | None:
        proc = self.portico.proc
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(20)
        except Exception:  # noqa: BLE001
            self.portico.stop()
            return None

    def account(self) -> dict:
        """Holds the access log against the ledger."""
        sid = re.compile(r"[?&]sid=([a-z]+-\d+-\d+)")
        seen: dict[str, int] = {}
        unknown, wrong, lines = [], [], 0
        statuses: dict[str, int] = {}
        for line in self.access_path.read_text(errors="replace").splitlines():
            lines += 1
            try:
                entry = json.loads(line)
            except ValueError:
                unknown.append(line[:200])
                continue
            statuses[str(entry.get("status"))] = statuses.get(str(entry.get("status")), 0) + 1
            m = sid.search(entry.get("path", ""))
            rid = m.group(1) if m else None
            if rid is None or rid not in self.ledger.expected:
                unknown.append(line[:200])
                continue
            seen[rid] = seen.get(rid, 0) + 1
            allowed = self.ledger.expected[rid]
            if allowed is not None and entry.get("status") not in allowed:
                wrong.append(f"{rid}: {entry.get('status')} (expected {sorted(allowed)})")
        missing = [rid for rid in self.ledger.expected if rid not in seen]
        duplicated = [rid for rid, n in seen.items() if n > 1]
        return {"lines": lines, "accounted": lines - len(unknown), "by_status": statuses,
                "missing": len(missing), "duplicated": len(duplicated), "unknown": len(unknown),
                "wrong_status": len(wrong), "samples": (missing[:5] + duplicated[:5] + unknown[:5] + wrong[:5])}


def serve_http_backend() -> None:
    """--serve-http-backend: tests/support's HttpBackend in a process of its own (its own GIL);
    idle keep-alive connections are closed after 1 s, so Portico's pools empty once load stops."""
    import backends
    b = backends.HttpBackend(name="soak", idle_timeout=1.0).start()
    print(f"listening on {b.address}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    b.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    ap.add_argument("--portico-bin", type=Path, default=benchlib.REPO_ROOT / "build" / "portico")
    ap.add_argument("--reload-interval", type=float, default=3.0, help="seconds between SIGHUPs")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds allowed for connections to close")
    ap.add_argument("--rss-slack-mb", type=int, default=16, help="allowed RSS growth over the run")
    ap.add_argument("--json", type=Path, help="write the figures there too")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs) even when all is well")
    ap.add_argument("--serve-http-backend", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_http_backend:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        serve_http_backend()
        return 0
    if not args.portico_bin.exists():
        log(f"{args.portico_bin} not found (build it, or pass --portico-bin)")
        return 2
    soak = Soak(args)
    result = soak.run()
    result["portico"] = benchlib.git_revision()
    result["machine"] = benchlib.machine_summary()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    failed = [name for name, ok in result["checks"].items() if not ok]
    for sample in result["client_error_samples"] + result["access"]["samples"] + result["fatal_lines"]:
        log(f"  {sample}")
    for name, ok in result["checks"].items():
        log(f"{'ok  ' if ok else 'FAIL'} {name}")
    if failed or args.keep:
        log(f"configuration, access log and Portico's log kept in {soak.workdir}")
    else:
        shutil.rmtree(soak.workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
