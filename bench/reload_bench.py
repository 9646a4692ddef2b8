#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Reload benchmark: HTTP requests/s and WebSocket messages/s while the proxy reloads its
configuration every second, against the same load without reloads, for Portico (SIGHUP) and
nginx (SIGHUP to the master, what `nginx -s reload` sends). Failed requests and dropped
WebSockets are counted for both; Portico must have none (the script exits 1 otherwise).

    /usr/bin/python3 bench/reload_bench.py                     # builds Release into build-reload-bench/
    PORTICO_BIN=build-bench/portico /usr/bin/python3 bench/reload_bench.py --duration 60
    /usr/bin/python3 bench/reload_bench.py --contenders portico --duration 10 --rounds 1
    /usr/bin/python3 bench/reload_bench.py --write-results     # also (re)writes the "## Reload"
                                                               # section of bench/RESULTS.md

One run = one proxy, one phase ("steady": no reload, "reloading": a reload every --interval
seconds), --duration seconds of two loads at once through the proxy to one backend:
  HTTP       wrk, 1 thread, --http-conns keep-alive connections, GET / (a 3-byte 200 answer);
             wrk counts as errors: connect/read/write failures, timeouts and non-2xx/3xx.
  WebSocket  bench/ws_load (C++, its own epoll loop) in echo mode: --ws-conns connections held for
             the whole run, each sending --ws-size-byte messages one at a time and checking each
             echo; any connection that ends before the run does, or a wrong echo, is an error.
The backend is `ws_load server` (HTTP 200 "ok" and a WebSocket echo, one thread). Both proxies
run --workers workers and keep connections to the backend alive. Each reload writes a
configuration that differs from the last one (one extra route/location, toggled) so that the
proxy really builds a new one. The phases alternate (steady, reloading, reloading, steady, ...)
for --rounds rounds per proxy; medians are reported, errors summed.

nginx is measured honestly as configured by most users: no worker_shutdown_timeout, so old
workers keep serving their upgraded connections after a reload, and the script reports how
many nginx processes are alive at the end of a reloading run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

CONTENDERS = ["portico", "nginx"]
RESULTS = bl.RESULTS_FILE
SECTION = "## Reload"


# --------------------------------------------------------------------------------------------
# the WebSocket load client


# --------------------------------------------------------------------------------------------
# proxies: each has a config with a toggle, so that every reload loads something new


@dataclass
class Proxy:
    name: str
    svc: bl.Service
    port: int
    write_config: "callable"   # write_config(flip: bool): the next configuration on disk
    reloaded_lines: "callable"  # number of reloads the proxy reports done so far (or None)
    flip: bool = False

    def reload(self) -> None:
        self.flip = not self.flip
        self.write_config(self.flip)
        os.kill(self.svc.pid, signal.SIGHUP)  # nginx: the master, like `nginx -s reload`


def start_portico(binary: Path, backend_port: int, workers: int, mode: str) -> Proxy:
    port = bl.free_port()

    def text(flip: bool) -> str:
        extra = "  - path: /flip/\n    handler: health\n" if flip else ""
        return bl.portico_head(port, workers=workers, level="info", extra="shutdown_timeout: 5s\n") + f"""upstreams:
  backend:
    servers: [127.0.0.1:{backend_port}]
routes:
{extra}  - path: /
    upstream: backend
    websocket:
      mode: {mode}
"""
    svc = bl.start_portico("portico", binary, text(False), ready_port=port)
    conf = svc.workdir / "portico.yaml"

    def write(flip: bool) -> None:
        tmp = conf.with_suffix(".new")
        tmp.write_text(text(flip))
        os.replace(tmp, conf)

    def reloaded() -> int:
        log = svc.log_path.read_text(errors="replace")
        failed = log.count("reload failed")
        if failed:
            raise RuntimeError(f"portico refused a reload:\n{svc.log_tail()}")
        return log.count("configuration reloaded")
    return Proxy("portico", svc, port, write, reloaded)


def start_nginx(backend_port: int, workers: int) -> Proxy:
    port = bl.free_port()

    def block(flip: bool) -> str:
        extra = "location /flip/ { return 204; }" if flip else ""
        return f"""
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        {extra}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}"""
    svc = bl.start_nginx("nginx", workers, block(False), ready_port=port)
    conf = svc.workdir / "nginx.conf"
    base = conf.read_text()

    def write(flip: bool) -> None:
        # the same boilerplate benchlib wrote, with the toggled server block
        text = base.replace(block(False).strip(), block(flip).strip())
        if flip and text == base:
            raise RuntimeError("could not toggle the nginx configuration")
        tmp = conf.with_suffix(".new")
        tmp.write_text(text)
        os.replace(tmp, conf)

    def reloaded() -> None:
        return None  # the error log is at warn: nginx does not tell; processes are counted
    return Proxy("nginx", svc, port, write, reloaded)


# --------------------------------------------------------------------------------------------
# runs


@dataclass
class Run:
    proxy: str
    phase: str
    round: int
    http_rps: float
    http_requests: int
    http_errors: dict
    ws_msgs: float
    ws_ops: int
    ws_errors: int
    ws_dropped: int
    reloads_sent: int
    reloads_done: int | None
    processes_end: int
    rss_end_mb: float
    http_p99_ms: float
    ws_p99_ms: float
    extra: dict = field(default_factory=dict)


def count_errors(d: dict) -> int:
    return d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]


def one_run(args, ws_load: Path, proxy: Proxy, phase: str, rnd: int) -> Run:
    if args.max_foreign >= 0:
        bl.wait_quiet(args.max_foreign, timeout=args.quiet_timeout, own=[proxy.svc])
    else:
        bl.acquire_run_lock()  # never measure while another benchmark does
    try:
        echo = bl.LoadClient(ws_load, "echo", proxy.port, ["--path", "/ws", "-c", str(args.ws_conns),
                                                           "-s", str(args.ws_size), "-d", str(args.duration)])
        ready = echo.ready(60)
        if ready.get("failed"):
            raise RuntimeError(f"{proxy.name}: {ready['failed']} WebSockets failed to open")
        done0 = proxy.reloaded_lines()
        wrk_out: dict = {}

        def http() -> None:
            try:
                wrk_out["r"] = bl.run_wrk(f"http://127.0.0.1:{proxy.port}/",
                                          connections=args.http_conns, duration=args.duration)
            except Exception as e:  # noqa: BLE001 - reported by the caller
                wrk_out["e"] = e

        t_http = threading.Thread(target=http, daemon=True)
        echo.start()
        t_http.start()
        start = time.monotonic()
        sent = 0
        if phase == "reloading":
            # the first reload one interval in, the last one an interval before the end
            while True:
                due = start + (sent + 1) * args.interval
                if due > start + args.duration - args.interval * 0.5:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                proxy.reload()
                sent += 1
        t_http.join(args.duration + 90)
        ws = echo.result(args.duration + 60)
        procs = len(proxy.svc.pids())
        rss = proxy.svc.rss() / 2**20
        echo.close()
    finally:
        bl.release_run_lock()
    if "e" in wrk_out or "r" not in wrk_out:
        raise RuntimeError(f"wrk: {wrk_out.get('e')}")
    r = wrk_out["r"]
    time.sleep(0.5)
    done = proxy.reloaded_lines()
    run = Run(proxy.name, phase, rnd, r.rps, r.requests,
              {k: r.raw[k] for k in ("connect", "read", "write", "status", "timeout")},
              ws["ops_per_s"], ws["ops"], ws["errors"], args.ws_conns - ws["open"], sent,
              None if done is None else done - done0, procs, rss, r.p99_ms, ws["p99_us"] / 1000)
    bl.log(f"{proxy.name:<8} {phase:<9} round {rnd + 1}: HTTP {run.http_rps:8.0f} req/s "
           f"errors {count_errors(run.http_errors)} {run.http_errors}; WS {run.ws_msgs:8.0f} msg/s "
           f"errors {run.ws_errors} dropped {run.ws_dropped}; reloads {sent}"
           f"{'' if run.reloads_done is None else f' (done {run.reloads_done})'}; "
           f"processes at end {procs}")
    return run


def settle(proxy: Proxy, workers: int, timeout: float = 60.0) -> int:
    """After a run: waits until old nginx workers have left (their WebSockets are closed);
    returns the process count."""
    want = workers + 1 if proxy.name == "nginx" else 1
    deadline = time.monotonic() + timeout
    while True:
        n = len(proxy.svc.pids())
        if n <= want or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# report


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def report(args, runs: list[Run], command: str, versions: str) -> str:
    out = [SECTION, "",
           f"Command: `{command}`", "",
           f"Machine: {bl.machine_summary()}. {versions}. Each proxy {args.workers} worker(s); "
           f"one backend (`ws_load server`); every run {args.duration:g} s of HTTP (wrk, 1 thread, "
           f"{args.http_conns} keep-alive connections) and WebSocket echo ({args.ws_conns} "
           f"connections, {args.ws_size}-byte messages, one in flight each) at the same time; "
           f"\"reloading\" = a reload every {args.interval:g} s (Portico: SIGHUP with a changed "
           f"file; nginx: SIGHUP to the master, as `nginx -s reload`, with a changed file). "
           f"Portico's WebSocket route is in {args.portico_mode} mode. "
           f"{args.rounds} round(s) per phase, medians; errors are sums over all runs.", ""]
    rows = []
    for name in [c for c in CONTENDERS if any(r.proxy == c for r in runs)]:
        st = [r for r in runs if r.proxy == name and r.phase == "steady"]
        rl = [r for r in runs if r.proxy == name and r.phase == "reloading"]
        h_st, h_rl = bl.median(r.http_rps for r in st), bl.median(r.http_rps for r in rl)
        w_st, w_rl = bl.median(r.ws_msgs for r in st), bl.median(r.ws_msgs for r in rl)
        herr_st = sum(count_errors(r.http_errors) for r in st)
        herr_rl = sum(count_errors(r.http_errors) for r in rl)
        kinds = {}
        for r in rl:
            for k, v in r.http_errors.items():
                kinds[k] = kinds.get(k, 0) + v
        kinds_s = ", ".join(f"{k} {v}" for k, v in kinds.items() if v) or "-"
        sent = sum(r.reloads_sent for r in rl)
        done = [r.reloads_done for r in rl if r.reloads_done is not None]
        rows.append([name, f"{h_st:.0f}", f"{h_rl:.0f}", fmt_ratio(h_rl, h_st),
                     f"{herr_st} / {herr_rl} ({kinds_s})",
                     f"{w_st:.0f}", f"{w_rl:.0f}", fmt_ratio(w_rl, w_st),
                     f"{sum(r.ws_dropped for r in st)} / {sum(r.ws_dropped for r in rl)}",
                     f"{sum(r.ws_errors for r in st)} / {sum(r.ws_errors for r in rl)}",
                     f"{sent}" + (f" ({sum(done)} confirmed)" if done else ""),
                     f"{max(r.processes_end for r in rl)}",
                     f"{bl.median(r.rss_end_mb for r in st):.0f} / "
                     f"{bl.median(r.rss_end_mb for r in rl):.0f}"])
    out.append(bl.markdown_table(
        ["proxy", "HTTP req/s steady", "HTTP req/s reloading", "ratio",
         "HTTP errors steady / reloading (kinds)", "WS msg/s steady", "WS msg/s reloading",
         "ratio", "WS dropped steady / reloading", "WS errors steady / reloading",
         "reloads", "processes at end of a reloading run", "RSS MiB steady / reloading"], rows))
    out.append("")
    out.append("p99 latency (ms), steady / reloading: " + "; ".join(
        f"{name} HTTP {bl.median(r.http_p99_ms for r in runs if r.proxy == name and r.phase == 'steady'):.2f}"
        f" / {bl.median(r.http_p99_ms for r in runs if r.proxy == name and r.phase == 'reloading'):.2f},"
        f" WS {bl.median(r.ws_p99_ms for r in runs if r.proxy == name and r.phase == 'steady'):.2f}"
        f" / {bl.median(r.ws_p99_ms for r in runs if r.proxy == name and r.phase == 'reloading'):.2f}"
        for name in CONTENDERS if any(r.proxy == name for r in runs)) + ".")
    out.append("")
    out.append("Every run, in the order measured (HTTP req/s, WS msg/s): " + "; ".join(
        f"{name} " + ", ".join(f"{r.phase} {r.http_rps:.0f}/{r.ws_msgs:.0f}"
                               for r in runs if r.proxy == name)
        for name in CONTENDERS if any(r.proxy == name for r in runs)) + ".")
    out.append("")
    ng = [r for r in runs if r.proxy == "nginx" and r.phase == "reloading"]
    if ng:
        reads = sum(r.http_errors["read"] for r in ng)
        total = sum(r.http_requests for r in ng)
        if reads:
            out.append(f"nginx while reloading: {reads} wrk read errors in {total} requests "
                       f"({reads / max(total, 1):.4%}). On each reload the old worker closes its "
                       "idle keep-alive connections; wrk had already written its next request on "
                       "some of them, which then get no answer (wrk counts a read error and "
                       "reconnects).")
        procs = max(r.processes_end for r in ng)
        if procs > args.workers + 1:
            out.append(f"nginx keeps an old worker (\"shutting down\") alive for as long as a "
                       f"WebSocket it relays stays open: {procs} nginx processes at the end of a "
                       f"reloading run instead of {args.workers + 1}; with connections opened "
                       "between reloads, one more per reload.")
            out.append(f"While it reloads, nginx with {args.workers} worker(s) therefore runs "
                       "more worker processes than configured: the old one keeps the WebSockets, "
                       "the new one takes the HTTP connections wrk reopens, and the two loads no "
                       "longer share one process. That, not the reloads, is why its WebSocket "
                       "rate can rise while reloading.")
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per run (default 30)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between reloads (1)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per proxy and phase (2)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--http-conns", type=int, default=32)
    ap.add_argument("--ws-conns", type=int, default=32)
    ap.add_argument("--ws-size", type=int, default=64)
    ap.add_argument("--portico-bin", default=os.environ.get("PORTICO_BIN"))
    ap.add_argument("--portico-mode", default="tunnel", choices=["tunnel", "frames"],
                    help="Portico's websocket.mode for the echo (tunnel: bytes, like nginx)")
    ap.add_argument("--build-dir", default=str(bl.REPO_ROOT / "build-reload-bench"))
    ap.add_argument("--ws-load", help="a built ws_load binary (default: compile it)")
    ap.add_argument("--max-foreign", type=float, default=0.3,
                    help="wait until other processes use at most this much of a core before a "
                         "run (-1: don't wait)")
    ap.add_argument("--quiet-timeout", type=float, default=120.0)
    ap.add_argument("--write-results", action="store_true",
                    help=f"write the section into {RESULTS.relative_to(bl.REPO_ROOT)}")
    args = ap.parse_args()
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if set(names) - set(CONTENDERS):
        ap.error(f"unknown contenders {set(names) - set(CONTENDERS)}")
    bl.raise_nofile_limit()
    build = Path(args.build_dir)
    ws_load = Path(args.ws_load).resolve() if args.ws_load else bl.build_ws_load(build)
    binary = Path(args.portico_bin).resolve() if args.portico_bin else None
    if "portico" in names and binary is None:
        binary = bl.build_portico(build)

    backend_port = bl.free_port()
    backend = bl.Service("backend", [str(ws_load), "server", "--listen", str(backend_port)],
                         bl.make_workdir("reload-backend"), port=backend_port).start()
    backend.wait_ready(lambda: bl.wait_port(backend_port))

    runs: list[Run] = []
    for name in names:
        proxy = (start_portico(binary, backend_port, args.workers, args.portico_mode)
                 if name == "portico"
                 else start_nginx(backend_port, args.workers))
        # warm-up: connections to the backend, the page cache, the allocator
        bl.run_wrk(f"http://127.0.0.1:{proxy.port}/", connections=args.http_conns, duration=2)
        phases = []
        for rnd in range(args.rounds):
            phases += [("steady", rnd), ("reloading", rnd)] if rnd % 2 == 0 else \
                      [("reloading", rnd), ("steady", rnd)]
        for phase, rnd in phases:
            runs.append(one_run(args, ws_load, proxy, phase, rnd))
            n = settle(proxy, args.workers)
            if name == "nginx" and n > args.workers + 1:
                bl.log(f"nginx: {n} processes still alive 60 s after the run")
        if not proxy.svc.alive():
            raise RuntimeError(f"{name} died:\n{proxy.svc.log_tail()}")
        proxy.svc.stop()
    backend.stop()

    command = "/usr/bin/python3 bench/reload_bench.py " + " ".join(sys.argv[1:])
    wrk_words = bl.tool_version(["wrk", "-v"]).split()
    versions = f"{bl.tool_version(['nginx', '-v'])}; wrk {wrk_words[1] if len(wrk_words) > 1 else '?'}"
    text = report(args, runs, command.strip(), versions)
    print(text)
    if args.write_results:
        bl.write_results_section("Reload", text)
        bl.log(f"wrote the {SECTION!r} section of {RESULTS}")
    bad = [r for r in runs if r.proxy == "portico" and
           (count_errors(r.http_errors) or r.ws_errors or r.ws_dropped or
            (r.reloads_done is not None and r.reloads_done != r.reloads_sent))]
    if bad:
        bl.log(f"FAIL: Portico lost requests or WebSockets, or missed reloads, in {len(bad)} run(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
