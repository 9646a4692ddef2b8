#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""TLS benchmark: nginx, HAProxy and Portico terminating TLS 1.3 with one ECDSA P-256 certificate.

    /usr/bin/python3 bench/tls_bench.py                       # builds Release into build-bench/
    PORTICO_BIN=build-bench/portico /usr/bin/python3 bench/tls_bench.py --rounds 7
    /usr/bin/python3 bench/tls_bench.py --scenarios full,resumed --proxies nginx,portico
    /usr/bin/python3 bench/tls_bench.py --write               # also replaces "## TLS" in RESULTS.md

Each proxy runs 1 worker / 1 thread with one TLS listener (TLS 1.3 only, session tickets on, the
same self-signed ECDSA P-256 certificate made here with openssl) and three routes: /healthz
answered by the proxy itself, /ws/ tunnelled to a WebSocket backend, / proxied with keep-alive
(32 idle upstream connections) to an HTTP backend. One `ws_load server` (bench/ws_load, a C++ epoll
server: WebSocket echo, and `200 ok` to plain GETs) is the backend of all three. Scenarios:

  full       --hs-conns clients in parallel: connect, full TLS handshake, GET /healthz with
             Connection: close, wait for the server's close, again (bench/tls_load.cpp)
  resumed    the same, offering the newest session ticket (PSK resumption with (EC)DHE)
  keepalive  wrk -t1 -c--connections over https://, GET / proxied to the backend; also counts the
             upstream connections each proxy opened (the backend's accepts, GET /__bench_status):
             with more clients than --keepalive both nginx and Portico open and close upstream
             connections, and how many moves from run to run (bench/RESULTS.md, "HTTPS keep-alive:
             upstream churn" and "... on a quiet machine"); --keepalive 64 (= -c) takes that out.
             Part of it is the benchmark's: a proxy that waits for its clients while more than
             --keepalive of them are between requests must close the surplus first, and opens it
             again when they come back. `--diagnose pool` tells that part (opens in a pass after
             the loop waited) from the pool's policy (the same passes replayed with others)
  wss        --connections wss:// connections, one 64-byte binary message at a time each, echoed
             by the backend through the proxy's tunnel
  idle       --idle-conns wss:// connections (one echo each) held: proxy RSS per connection
             --idle-settle s after the last echo, each proxy freshly started for each measurement

For each scenario the contenders run in alternation for --rounds rounds (the order rotates each
round) after one warm-up run each. The load clients set their connections up before the measured
phase; the proxy's CPU (utime+stime of all its processes, /proc/PID/stat) is sampled around the
measured phase and divided by the operations completed in it. Medians go to stdout as markdown for
bench/RESULTS.md (and into it with --write), progress to stderr. Every process started is stopped
on exit.

The TLS load client is bench/tls_load.cpp (OpenSSL, epoll, no Portico code), built here with one
g++ line; the WebSocket backend is ws_load; both are built by benchlib (build_tls_load, build_ws_load).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import pool_trace  # noqa: E402

RESULTS = bl.RESULTS_FILE
SECTION = "## TLS"
PROXIES = ["nginx", "haproxy", "portico"]
SCENARIOS = ["full", "resumed", "keepalive", "wss", "idle"]
SNI = "bench.test"


# --------------------------------------------------------------------------------------------
# tools


@dataclass
class Certificate:
    """One self-signed ECDSA P-256 certificate in a world-readable directory (nginx's workers run
    as nobody): site.crt, site.key, and site.pem (both, for HAProxy's `crt`)."""

    dir: Path
    crt: Path = field(init=False)
    key: Path = field(init=False)
    pem: Path = field(init=False)

    def __post_init__(self) -> None:
        self.crt, self.key, self.pem = (self.dir / n for n in ("site.crt", "site.key", "site.pem"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.crt), "-days", "30", "-subj", f"/CN={SNI}",
                        "-addext", f"subjectAltName=DNS:{SNI},DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        self.key.chmod(0o644)  # a throw-away benchmark key
        self.pem.write_text(self.crt.read_text() + self.key.read_text())
        self.pem.chmod(0o644)


def https_ok(port: int, path: str = "/healthz") -> Callable[[], bool]:
    """A readiness check: GET path over TLS 1.3 answers 200."""

    def check() -> bool:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname=SNI) as s:
                if s.version() != "TLSv1.3":
                    raise RuntimeError(f"port {port} negotiated {s.version()}")
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: {SNI}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        return data.startswith(b"HTTP/1.1 200")

    return check


# --------------------------------------------------------------------------------------------
# the proxies: one TLS listener, /healthz local, /ws/ tunnelled, / proxied with keep-alive


def start_nginx(cert: Certificate, backend: int, keepalive: int, h2: bool = False,
                wrap: list[str] = ()) -> bl.Service:
    """h2: HTTP/2 offered through ALPN as well (nginx 1.22: `listen ... ssl http2;`).
    wrap: a command to run the proxy under (valgrind ...), here and below."""
    port = bl.free_port()
    http = f"""
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    upstream be {{ server 127.0.0.1:{backend}; keepalive {keepalive}; keepalive_requests 10000000; }}
    upstream wsbe {{ server 127.0.0.1:{backend}; }}
    server {{
        listen 127.0.0.1:{port} ssl{" http2" if h2 else ""};
        ssl_certificate {cert.crt};
        ssl_certificate_key {cert.key};
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location = /healthz {{ default_type text/plain; return 200 "ok\\n"; }}
        location /ws/ {{
            proxy_pass http://wsbe;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
        location / {{
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""
    svc = bl.started(bl.start_nginx("nginx", 1, http, wrap=wrap))
    svc.port = port
    return svc.wait_ready(https_ok(port), timeout=bl.ready_timeout(wrap))


def start_haproxy(cert: Certificate, backend: int, keepalive: int, h2: bool = False,
                  wrap: list[str] = ()) -> bl.Service:
    """h2: `alpn h2,http/1.1` on the bind line."""
    port = bl.free_port()
    sections = f"""
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout tunnel 1h
    timeout http-keep-alive 300s

frontend fe
    bind 127.0.0.1:{port} ssl crt {cert.pem} ssl-min-ver TLSv1.3{" alpn h2,http/1.1" if h2 else ""}
    http-request return status 200 content-type text/plain lf-string "ok" if {{ path /healthz }}
    use_backend wsbe if {{ path_beg /ws/ }}
    default_backend be

backend be
    server app 127.0.0.1:{backend} pool-max-conn {keepalive}

backend wsbe
    server app 127.0.0.1:{backend}
"""
    svc = bl.started(bl.start_haproxy("haproxy", 1, sections, wrap=wrap))
    svc.port = port
    return svc.wait_ready(https_ok(port), timeout=bl.ready_timeout(wrap))


def start_portico(binary: Path, cert: Certificate, backend: int, keepalive: int,
                  name: str = "portico", h2: bool = False, wrap: list[str] = (),
                  io_uring: str = "off") -> bl.Service:
    """h2: `tls.alpn: [h2, http/1.1]`. io_uring: the config key (--io-uring)."""
    port = bl.free_port()
    yaml_text = bl.portico_head(port, extra=f"io_uring: {io_uring}\n") + f"""    tls:
      certificates: [{{cert: {cert.crt}, key: {cert.key}}}]
      min_version: "1.3"
      session_tickets: true{chr(10) + "      alpn: [h2, http/1.1]" if h2 else ""}
upstreams:
  be: {{servers: [127.0.0.1:{backend}], keepalive: {keepalive}}}
  wsbe: {{servers: [127.0.0.1:{backend}]}}
routes:
  - {{path: /healthz, handler: health}}
  - {{path: /ws/, upstream: wsbe, websocket: {{mode: tunnel}}}}
  - {{path: /, upstream: be}}
"""
    svc = bl.started(bl.start_portico(name, binary, yaml_text, wrap=wrap))
    svc.port = port
    return svc.wait_ready(https_ok(port), timeout=bl.ready_timeout(wrap))


# --------------------------------------------------------------------------------------------
# runs


@dataclass
class Bench:
    args: argparse.Namespace
    tls_load: Path
    backend: bl.Service
    starters: dict[str, Callable[[], bl.Service]]
    notes: list[str] = field(default_factory=list)
    status_reads: int = 0  # GET /__bench_status sent to the backend so far

    def quiet(self, own: list[bl.Service]) -> None:
        bl.quiet_or_lock(self.args.max_foreign, own, timeout=self.args.quiet_timeout)

    def client_run(self, svc: bl.Service, mode: str, cargs: list[str], duration: float,
                   round_no: int) -> bl.Sample:
        """One tls_load run: set up, then GO with the proxy's CPU sampled around the measured
        phase (again if the machine was noisy: bl.unless_noisy)."""
        def once() -> bl.Sample:
            self.quiet([svc, self.backend])
            holder: list[dict] = []
            client = bl.LoadClient(self.tls_load, mode, svc.port, [*cargs, "-d", str(duration)])
            try:
                client.ready(timeout=180)

                def load() -> bl.LoadResult:
                    res = client.go(duration + self.args.drain + 60)
                    holder.append(res)
                    return bl.as_load_result(res)

                s = bl.measure(svc, load, round_no, helpers=[self.backend])
            finally:
                client.close()
                bl.release_run_lock()
            res = holder[0]
            s.extra = {"p50_ms": round(res["p50_us"] / 1000, 3),
                       "client_cpu_us": res["client_cpu_s"] / max(res["ops_total"], 1) * 1e6,
                       "resumed": res["resumed"], "full": res["full"]}
            return s
        return bl.unless_noisy(once, duration, self.args.max_foreign)

    def backend_accepts(self) -> dict[str, float]:
        """Connections the backend accepted so far: the proxies' upstream connections opened
        (each status GET is one more: left out)."""
        self.status_reads += 1
        status, raw = bl.http_get(self.backend.port, "/__bench_status")
        if status != 200:
            raise RuntimeError(f"backend status answered {status}")
        return {"upstream_opens": int(raw.split(b"accepts ", 1)[1].split()[0]) - self.status_reads}

    def wrk_run(self, svc: bl.Service, duration: float, round_no: int) -> bl.Sample:
        def once() -> bl.Sample:
            self.quiet([svc, self.backend])
            return bl.measure(svc, lambda: bl.run_wrk(
                f"https://127.0.0.1:{svc.port}/", threads=1, connections=self.args.connections,
                duration=duration), round_no, counters=self.backend_accepts, helpers=[self.backend])
        return bl.unless_noisy(once, duration, self.args.max_foreign)


def scenario_load(bench: Bench, scen: str) -> Callable[[bl.Service, float, int], bl.Sample]:
    a = bench.args
    threads = ["-t", str(a.client_threads)]
    if scen == "full":
        return lambda svc, d, r: bench.client_run(svc, "handshakes", ["-c", str(a.hs_conns), *threads], d, r)
    if scen == "resumed":
        return lambda svc, d, r: bench.client_run(svc, "handshakes",
                                                  ["-c", str(a.hs_conns), "--resume", *threads], d, r)
    if scen == "wss":
        return lambda svc, d, r: bench.client_run(svc, "wss-echo", ["-c", str(a.connections), "-s",
                                                                    str(a.size), *threads], d, r)
    if scen == "keepalive":
        return lambda svc, d, r: bench.wrk_run(svc, d, r)
    raise ValueError(scen)


def idle_round(bench: Bench, name: str, n: int) -> dict:
    """Starts the contender fresh, holds n idle wss:// connections, returns RSS figures."""
    svc = bench.starters[name]()
    try:
        bench.quiet([svc, bench.backend])
    except BaseException:
        svc.stop()
        raise
    busy = bench.args.idle_busy
    mode, extra = ("wss-echo", ["-d", str(busy), "-s", str(bench.args.size)]) if busy > 0 else ("wss-idle", [])
    rec = bl.hold_idle(svc, lambda: bl.LoadClient(bench.tls_load, mode, svc.port,
                                                  ["-c", str(n), "-t", str(bench.args.client_threads), *extra]),
                       n, 300, settle=bench.args.idle_settle, busy=busy)
    if bench.args.idle_series:
        bl.log(f"idle {name}: RSS per connection after the last was ready: " +
               ", ".join(f"{t:g} s {(rss - rec['rss0']) / n / 1024:.1f} KB" for t, rss in rec["rss_series"]))
    return {**rec, "name": name}


def diagnose(bench: Bench, services: dict[str, bl.Service], scen: str, tool: str) -> str:
    """strace -c or perf during one extra run of scen per proxy (never mixed with the measured
    runs: both slow the proxy). Returns a text block."""
    out = []
    for p, svc in services.items():
        holder: list[dict] = []
        bench.quiet([svc, bench.backend])
        if scen == "keepalive":
            load = lambda: bl.run_wrk(f"https://127.0.0.1:{svc.port}/", threads=1,  # noqa: E731
                                      connections=bench.args.connections, duration=bench.args.duration)
        else:
            mode, cargs = {"full": ("handshakes", ["-c", str(bench.args.hs_conns)]),
                           "resumed": ("handshakes", ["-c", str(bench.args.hs_conns), "--resume"]),
                           "wss": ("wss-echo", ["-c", str(bench.args.connections), "-s",
                                                str(bench.args.size)])}[scen]
            client = bl.LoadClient(bench.tls_load, mode, svc.port,
                                      [*cargs, "-d", str(bench.args.duration)])
            client.ready(timeout=120)

            def load() -> bl.LoadResult:
                res = client.go(bench.args.duration + 60)
                holder.append(res)
                return bl.as_load_result(res)
        try:
            if tool == "passes":
                fig, r = bl.perf_passes(svc, load)
                out.append(f"{p} ({scen}, {r.requests} ops): " + ", ".join(
                    f"{k} {v:.3f}" for k, v in fig.items()) + " (per op; events per pass, share of opens)")
            elif tool == "pool":
                if scen != "keepalive":
                    out.append(f"{p} ({scen}): pool is for the keepalive scenario only")
                    continue
                fig, r = pool_trace.trace(svc, load, bench.args.keepalive)
                out.append(pool_trace.describe(f"{p} ({scen})", fig))
            elif tool == "strace":
                calls, r = bl.strace_counts(svc, load)
                per = {k: v / max(r.requests, 1) for k, v in calls.items()}
                top = sorted(per.items(), key=lambda kv: -kv[1])[:12]
                out.append(f"{p} ({scen}, {r.requests} ops): " +
                           ", ".join(f"{k} {v:.2f}" for k, v in top) + " per op")
            else:
                text, r = bl.perf_profile(svc, load)
                out.append(f"--- {p} ({scen}, {r.requests} ops)\n{text}")
        finally:
            if scen != "keepalive":
                client.close()
            bl.release_run_lock()
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# reporting


fmt_ratio, target_row = bl.fmt_ratio, bl.target_row


def report(args, results: dict[str, dict[str, list[bl.Sample]]], idle: dict[str, list[dict]],
           notes: list[str], cmd: str) -> str:
    med = lambda ss, f: bl.median(f(s) for s in ss)  # noqa: E731
    out = [SECTION, ""]
    targets: list[list[str]] = []
    for scen, title in (("full", f"Full handshakes: {args.hs_conns} clients in parallel, each "
                                 "connect + TLS 1.3 handshake + `GET /healthz` (answered by the proxy) "
                                 "+ close, repeated"),
                        ("resumed", f"Resumed handshakes: the same, offering the newest session "
                                    "ticket (PSK + ECDHE)")):
        per = results.get(scen)
        if not per:
            continue
        base = per.get("nginx")
        b = (med(base, lambda s: s.rps), med(base, lambda s: s.cpu_per_million)) if base else None
        rows = []
        for p, ss in per.items():
            rate, cpu = med(ss, lambda s: s.rps), med(ss, lambda s: s.cpu_per_million)
            ccpu = med(ss, lambda s: s.extra["client_cpu_us"])
            res = sum(s.extra["resumed"] for s in ss)
            tot = res + sum(s.extra["full"] for s in ss)
            rows.append([p, f"{rate:,.0f}", f"{cpu:.0f}", f"{med(ss, lambda s: s.extra['p50_ms']):.2f}",
                         f"{med(ss, lambda s: s.p99_ms):.2f}", f"{ccpu:.0f}",
                         f"{100 * res / tot:.1f}%" if tot else "-",
                         fmt_ratio(rate, b and b[0]), fmt_ratio(cpu, b and b[1]),
                         sum(s.errors for s in ss)])
            if b and p == "portico":
                if scen == "full":
                    targets.append(target_row("CPU per full handshake <= nginx", cpu <= b[1],
                                              f"{cpu:.0f} us vs {b[1]:.0f} us ({fmt_ratio(cpu, b[1])})"))
                else:
                    targets.append(target_row("resumed handshakes/s >= nginx", rate >= b[0],
                                              f"{rate:,.0f} vs {b[0]:,.0f} ({fmt_ratio(rate, b[0])}); "
                                              f"CPU {fmt_ratio(cpu, b[1])}"))
        out.append(f"### {title}\n")
        out.append(bl.markdown_table(["Proxy", "handshakes/s", "proxy CPU us / handshake", "p50 (ms)",
                                      "p99 (ms)", "client CPU us / handshake", "resumed",
                                      "rate vs nginx", "CPU vs nginx", "errors"], rows))
        out.append("")
    for scen, unit, title in (
            ("keepalive", "req/s", f"HTTPS keep-alive: `wrk -t1 -c{args.connections}` over https://, "
                                   f"GET / proxied to the backend ({args.keepalive} idle upstream connections kept)"),
            ("wss", "msg/s", f"wss:// echo: {args.connections} connections x {args.size}-byte binary "
                             "messages, one at a time each, tunnelled to the echo backend")):
        per = results.get(scen)
        if not per:
            continue
        base = per.get("nginx")
        b = (med(base, lambda s: s.rps), med(base, lambda s: s.p99_ms),
             med(base, lambda s: s.cpu_per_million)) if base else None
        rows = []
        opens = scen == "keepalive"  # upstream connections opened per 1,000 requests (the backend's accepts)
        for p, ss in per.items():
            rate, p99, cpu = med(ss, lambda s: s.rps), med(ss, lambda s: s.p99_ms), med(ss, lambda s: s.cpu_per_million)
            rows.append([p, f"{rate:,.0f}", f"{p99:.2f}", f"{cpu:.2f}", fmt_ratio(rate, b and b[0]),
                         fmt_ratio(p99, b and b[1]), fmt_ratio(cpu, b and b[2]), sum(s.errors for s in ss)])
            if opens:
                rows[-1].append(", ".join(f"{1000 * s.extra.get('upstream_opens', 0) / max(s.requests, 1):.0f}"
                                          for s in ss))
            if b and p == "portico":
                targets.append(target_row(f"{'HTTPS req/s' if scen == 'keepalive' else 'wss msg/s'} >= nginx",
                                          rate >= b[0], f"{rate:,.0f} vs {b[0]:,.0f} ({fmt_ratio(rate, b[0])}); "
                                          f"CPU {fmt_ratio(cpu, b[2])}"))
        out.append(f"### {title}\n")
        out.append(bl.markdown_table(["Proxy", unit, "p99 (ms)", f"CPU s / 1M", f"{unit} vs nginx",
                                      "p99 vs nginx", "CPU vs nginx", "errors"]
                                     + (["upstream opens / 1k req, per round"] if opens else []), rows))
        out.append("")
    if idle:
        table, kb = bl.idle_table(idle, 1)
        if "portico" in kb and "haproxy" in kb:
            targets.append(target_row("idle wss RSS per connection < HAProxy", kb["portico"] < kb["haproxy"],
                                      f"{kb['portico']:.1f} KB vs {kb['haproxy']:.1f} KB "
                                      f"({fmt_ratio(kb['portico'], kb['haproxy'])})"))
        out.append(f"### Idle wss:// connections: {args.idle_conns} held (one echo each first), each "
                   "proxy freshly started\n")
        out.append(table)
        out.append("")
    if targets:
        out.append("### Portico against the targets (issue 4)\n")
        out.append(bl.markdown_table(["Target", "Result", "Portico vs reference"], targets))
        out.append("")
    all_samples = [s for per in results.values() for ss in per.values() for s in ss]
    out.append(f"Medians of {args.rounds} alternating rounds of {args.duration:g} s after a "
               f"{args.warmup:g} s warm-up each. 1 worker / 1 thread per proxy; TLS 1.3 only, one "
               "self-signed ECDSA P-256 certificate (openssl req -newkey ec), session tickets on "
               "(nginx also `ssl_session_cache shared:SSL:10m`), default groups and ciphers (X25519, "
               "TLS_AES_256_GCM_SHA384). Handshake and wss clients: `tls_load` (bench/tls_load.cpp, "
               f"OpenSSL 3, epoll, {args.client_threads} thread(s), no certificate chain check, "
               "which leaves the CertificateVerify signature check); backend: one `ws_load server`. "
               "CPU = utime+stime of all the proxy's processes during the measured phase "
               "(connection setup excluded), divided by every operation completed in it. Client CPU "
               "per handshake shows what caps the rate: the client shares the 2 cores with the proxy "
               "and the backend. Idle RSS: sum of the proxy processes' RSS with the connections "
               "open minus before.")
    out.append(bl.noise_line(all_samples, args.duration))
    if notes:
        out.append("Notes: " + "; ".join(notes) + ".")
    out.append(f"Machine: {bl.machine_summary()}. {bl.tool_version(['nginx', '-v'])}; "
               f"{bl.tool_version(['haproxy', '-v'])}; {bl.tool_version(['openssl', 'version'])}.")
    out.append("")
    out.append(f"Command: `{cmd}`")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bl.add_round_arguments(ap)
    ap.add_argument("--proxies", default=",".join(PROXIES), help=f"subset of {','.join(PROXIES)}")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    ap.add_argument("--hs-conns", type=int, default=32, help="handshakes: parallel clients (default: 32)")
    ap.add_argument("--connections", type=int, default=64, help="keepalive (wrk -c) and wss connections (default: 64)")
    ap.add_argument("--size", type=int, default=64, help="wss: message bytes (default: 64)")
    ap.add_argument("--idle-conns", type=int, default=5000, help="idle: connections (default: 5000)")
    ap.add_argument("--idle-settle", type=float, default=2.5,
                    help="idle: seconds between the last connection's echo and the RSS reading "
                         "(Portico frees an idle TLS connection's buffers 1-2 s after its last I/O; default: 2.5)")
    ap.add_argument("--idle-busy", type=float, default=0.0,
                    help="idle: first echo on every connection for this many seconds (wss-echo), "
                         "then hold them idle (busy-then-idle memory; default: 0, one echo each)")
    ap.add_argument("--idle-series", action="store_true",
                    help="idle: also log RSS per connection every 0.25 s while settling")
    ap.add_argument("--keepalive", type=int, default=32, help="idle upstream connections per proxy (default: 32)")
    ap.add_argument("--client-threads", type=int, default=1, help="tls_load threads (default: 1)")
    ap.add_argument("--compare-bin",
                    help="a second Portico binary, contender `portico-b` (A/B of a change; same config)")
    ap.add_argument("--max-foreign", type=float, default=0.10,
                    help="before each run wait until processes outside the benchmark use at most this "
                         "share of a core (default: 0.10; negative: never wait)")
    ap.add_argument("--quiet-timeout", type=float, default=300,
                    help="give up waiting for a quiet machine after this many seconds (default: 300)")
    ap.add_argument("--nice", type=int, help="autogroup nice (-20..19) for every process started here")
    ap.add_argument("--diagnose", default="",
                    help="after the measured runs, strace, perf and/or passes (comma-separated) during "
                         "one extra run of each running scenario; printed to stderr. passes: per event-loop "
                         "pass from perf's syscall tracepoints: passes and syscalls per op, events per pass, "
                         "connects per op and the share made in a pass that also closed a socket, "
                         "context switches per op. pool (keepalive): requests per pass, upstream opens and "
                         "the share made after the loop waited, and the same passes replayed with other "
                         "pool policies (bench/pool_trace.py)")
    ap.add_argument("--pin", action="store_true",
                    help="each proxy on CPU 1, the load client, the backend and this script on CPU 0 "
                         "(taskset): the batching shape of a machine whose proxy has a core of its own, "
                         "on a shared one (use with --diagnose pool; see bench/pool_trace.py)")
    ap.add_argument("--io-uring", choices=("off", "on"), default="off",
                    help="Portico's `io_uring` key, for both binaries (default: off)")
    ap.add_argument("--write", action="store_true", help=f"write the section into {RESULTS.name}")
    ap.add_argument("--json", help="also write every sample to this JSON file")
    args = ap.parse_args()
    bl.AUTOGROUP_NICE = args.nice

    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if args.compare_bin:
        proxies.append("portico-b")
    bad = (set(proxies) - set(PROXIES) - {"portico-b"}) | (set(scenarios) - set(SCENARIOS))
    if bad:
        ap.error(f"unknown names: {', '.join(sorted(bad))}")

    if args.pin:
        os.sched_setaffinity(0, {0})  # inherited by the backend and the load clients started below
    build_dir = Path(args.build_dir)
    tls_load = bl.build_tls_load(build_dir)
    ws_load = bl.build_ws_load(build_dir)
    portico_bin = None
    if "portico" in proxies:
        if args.portico_bin:
            portico_bin = Path(args.portico_bin).resolve()
        else:
            bl.log(f"building Portico (Release) in {build_dir}")
            portico_bin = bl.build_portico(build_dir)
    bl.raise_nofile_limit()

    cert = Certificate(bl.make_workdir("tls-cert"))
    backend = bl.start_ws_backend(ws_load)
    bp = backend.port
    bl.log(f"backend (ws_load server) on port {bp}; certificate in {cert.dir}")
    starters = {
        "nginx": lambda: start_nginx(cert, bp, args.keepalive),
        "haproxy": lambda: start_haproxy(cert, bp, args.keepalive),
        "portico": lambda: start_portico(portico_bin, cert, bp, args.keepalive, io_uring=args.io_uring),
        "portico-b": lambda: start_portico(Path(args.compare_bin).resolve(), cert, bp, args.keepalive,
                                           "portico-b", io_uring=args.io_uring),
    }
    bench = Bench(args, tls_load, backend, starters)
    results: dict[str, dict[str, list[bl.Sample]]] = {}
    idle: dict[str, list[dict]] = {}
    diag: list[str] = []

    running = [s for s in scenarios if s != "idle"]
    if running:
        services = bl.start_contenders(proxies, starters, bench.notes)
        if args.pin:
            for svc in services.values():
                for pid in svc.pids():
                    subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], check=True,
                                   stdout=subprocess.DEVNULL)
        for scen in running:
            load = scenario_load(bench, scen)
            bl.log(f"== scenario {scen}")
            ok = {}
            for p, svc in services.items():
                try:
                    w = load(svc, args.warmup, -1)
                except RuntimeError as e:
                    bench.notes.append(f"{p} failed the {scen} warm-up: {str(e).splitlines()[0]}")
                    bl.log(f"{p}: {e}")
                    continue
                bl.log(f"warm-up {p}: {w.rps:,.0f}/s, errors {w.errors}")
                ok[p] = svc
            results[scen] = bl.alternate(list(ok), args.rounds,
                                         lambda p, r: load(ok[p], args.duration, r))
            for tool in [t for t in args.diagnose.split(",") if t]:
                text = diagnose(bench, ok, scen, tool)
                diag.append(f"== {tool} during {scen}\n{text}")
                bl.log(diag[-1])
        for s in services.values():
            s.stop()

    if "idle" in scenarios:
        bl.log(f"== scenario idle: {args.idle_conns} connections")
        idle = {p: [] for p in proxies}
        for r in range(args.rounds):
            order = [proxies[(i + r) % len(proxies)] for i in range(len(proxies))]
            for p in order:
                try:
                    rec = idle_round(bench, p, args.idle_conns)
                except RuntimeError as e:
                    bl.log(f"idle {p}: {e}")
                    bench.notes.append(f"idle {p} round {r + 1}: {str(e).splitlines()[0]}")
                    continue
                idle[p].append(rec)
                bl.log(f"round {r + 1}/{args.rounds} {p:<10} {rec['per_conn'] / 1000:7.2f} KB/conn "
                       f"(RSS {rec['rss0'] / 2**20:.1f} -> {rec['rss1'] / 2**20:.1f} MiB, "
                       f"setup {rec['setup_s']:.2f} s)")
    backend.stop()

    cmd = " ".join(shlex.quote(a) for a in ["/usr/bin/python3", "bench/tls_bench.py", *sys.argv[1:]])
    if args.portico_bin and "PORTICO_BIN" in os.environ and "--portico-bin" not in sys.argv:
        cmd = f"PORTICO_BIN={shlex.quote(os.environ['PORTICO_BIN'])} {cmd}"
    text = report(args, results, idle, bench.notes, cmd)
    print(text)
    if diag:
        print("\n" + "\n".join(diag), file=sys.stderr)
    if args.write:
        bl.write_results_section("TLS", text)
        bl.log(f"wrote the {SECTION!r} section of {RESULTS}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"runs": {sc: {p: [dict(s.__dict__) for s in ss] for p, ss in per.items()}
                      for sc, per in results.items()}, "idle": idle, "diagnostics": diag},
            indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
