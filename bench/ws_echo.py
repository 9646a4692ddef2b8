#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""WebSocket benchmark: nginx, HAProxy and Portico (tunnel and frames) in front of one echo backend,
plus pub/sub fan-out of Portico's `handler: pubsub` against nginx + nchan.

    /usr/bin/python3 bench/ws_echo.py                        # builds Release into build-bench/
    PORTICO_BIN=build-bench/portico /usr/bin/python3 bench/ws_echo.py --rounds 7
    /usr/bin/python3 bench/ws_echo.py --proxies nginx,haproxy,relay --scenarios small,large
    /usr/bin/python3 bench/ws_echo.py --scenarios fanout1000,fanout100x10
    /usr/bin/python3 bench/ws_echo.py --scenarios small --rounds 9 --duration 3 --warmup 1
        --proxies nginx,portico-tunnel,portico-uring --compare-bin /tmp/portico-before  # (one line)
        # many short rounds: a machine that switches speed modes between rounds shows as the
        # spread of the per-round ratios instead of moving a median of few long rounds
    /usr/bin/python3 bench/ws_echo.py --scenarios paced --fifo 10     # latency without the
        # fair scheduler: every process started here SCHED_FIFO (also usable on a busy machine)

Everything is 1 worker / 1 thread per proxy. The load client, the echo backend and the bare relay
are one C++ program, bench/ws_load/ws_load.cpp (its own epoll loop, no Portico code), built here
with g++ -O2 unless --ws-load names a binary. Scenarios:

  small      64 connections x 64-byte messages, one at a time each (send, wait for the echo)
  paced      the same offered at a fixed --paced-rate (msg/s in all) that every proxy sustains:
             CPU per message at equal load, where no proxy gains by batching more under overload
  large      1 connection x 64 KiB messages, one at a time: MB/s of payload one way
  upgrades   32 clients in parallel: connect, upgrade, close handshake, again
  idle       --idle-conns upgraded connections (one echo each) held open: proxy RSS per connection
             (every proxy freshly started for each measurement)
  fanout1000    pub/sub: 1 channel x 1,000 WebSocket subscribers, an HTTP publisher
  fanout100x10  pub/sub: 100 channels x 10 subscribers, 4 HTTP publishers

For every scenario the contenders run in alternation for --rounds rounds (the order rotates each
round) after one warm-up run each; the client sets its connections up first and only then starts
the measured phase, so the proxy's CPU (utime+stime of all its processes from /proc/PID/stat) is
sampled around exactly the measured work. For small and paced, every contender's run is also
divided by nginx's run of the same round: the "vs nginx" columns give the median of these
per-round ratios and their range, and a table lists CPU per message round by round. Medians go to stdout as markdown for bench/RESULTS.md,
progress to stderr. Every process started is stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

ECHO_PROXIES = ["nginx", "haproxy", "portico-tunnel", "portico-frames", "relay"]
# Also on request: portico-uring, the tunnel with `io_uring: on` (plaintext tunnels on a
# per-worker io_uring, src/net/uring/), and portico-frames-uring, frames mode with it; with
# --compare-bin, each portico-* contender again from that binary as <name>-b.
EXTRA_PROXIES = ["portico-uring", "portico-frames-uring"]
# The Portico contenders: name -> (websocket mode, extra top-level config).
PORTICO_CONTENDERS = {
    "portico-tunnel": ("tunnel", ""),
    "portico-frames": ("frames", ""),
    "portico-uring": ("tunnel", "io_uring: on\n"),
    "portico-frames-uring": ("frames", "io_uring: on\n"),
}
PUBSUB_SERVERS = ["nchan", "portico"]
SCENARIOS = ["small", "paced", "large", "upgrades", "idle", "fanout1000", "fanout100x10"]
TOKEN = "benchtoken"
HISTORY = 10  # messages kept per channel by both pub/sub servers


# --------------------------------------------------------------------------------------------
# servers (the load client, the echo backend and --nice are benchlib's: bl.LoadClient,
# bl.start_ws_backend, bl.started)


def start_nginx(backend_port: int, name: str = "nginx", buffer: str | None = None,
                wrap: list[str] | None = None) -> bl.Service:
    port = bl.free_port()
    # nginx relays an upgraded connection through proxy_buffer_size buffers (one page by default).
    extra = (f"proxy_buffer_size {buffer}; proxy_buffers 4 {buffer}; "
             f"proxy_busy_buffers_size {2 * int(buffer.rstrip('k'))}k;") if buffer else ""
    http = f"""
    upstream backend {{ server 127.0.0.1:{backend_port}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            {extra}
        }}
    }}"""
    svc = bl.started(bl.start_nginx(name, 1, http, ready_port=port, wrap=wrap or []))
    svc.port = port
    return svc


def start_haproxy(backend_port: int) -> bl.Service:
    port = bl.free_port()
    sections = f"""
defaults
    mode http
    maxconn 8000
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    server app 127.0.0.1:{backend_port}
"""
    svc = bl.started(bl.start_haproxy("haproxy", 1, sections, ready_port=port))
    svc.port = port
    return svc


portico_head = bl.portico_head  # pubsub_redis.py and ws_counts.py take it from here


def start_portico_ws(binary: Path, backend_port: int, mode: str, wrap: list[str] | None = None,
                     name: str | None = None, extra: str = "") -> bl.Service:
    port = bl.free_port()
    yaml_text = portico_head(port, extra=extra) + f"""upstreams:
  backend:
    servers: [127.0.0.1:{backend_port}]
routes:
  - path: /
    upstream: backend
    websocket:
      mode: {mode}
"""
    svc = bl.started(bl.start_portico(name or f"portico-{mode}", binary, yaml_text, ready_port=port, wrap=wrap or []))
    svc.port = port
    return svc


def start_nchan() -> bl.Service:
    port = bl.free_port()
    http = f"""
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location = / {{ return 200 "ok\\n"; }}
        location ~ ^/pub/(\\w+)$ {{
            nchan_publisher http;
            nchan_channel_id $1;
            nchan_message_buffer_length {HISTORY};
        }}
        location ~ ^/sub/(\\w+)$ {{
            nchan_subscriber websocket;
            nchan_channel_id $1;
            nchan_message_buffer_length {HISTORY};
        }}
    }}"""
    svc = bl.started(bl.start_nginx("nchan", 1, http, ready_port=port,
                                 extra_main="load_module /usr/lib/nginx/modules/ngx_nchan_module.so;"))
    svc.port = port
    return svc


def start_portico_pubsub(binary: Path) -> bl.Service:
    port = bl.free_port()
    yaml_text = portico_head(port) + f"""routes:
  - path: /healthz
    handler: health
  - path: /live/
    handler: pubsub
    pubsub:
      publish_token: {TOKEN}
      history: {HISTORY}
      queue_bytes: 1MiB
      # nchan has no publish limit; the default 100/s per channel would cap 1 x 1,000 at 100k
      # deliveries/s. The bucket is still taken on every publish, it just never runs dry.
      publish_rate: 100000/s
"""
    svc = bl.started(bl.start_portico("portico", binary, yaml_text, ready_port=port,
                                   ready_path="/healthz"))
    svc.port = port
    return svc


PUBSUB_PATHS = {"nchan": ("/sub/", "/pub/"), "portico": ("/live/", "/live/")}


# --------------------------------------------------------------------------------------------
# runs


@dataclass
class Bench:
    args: argparse.Namespace
    ws_load: Path
    portico_bin: Path | None
    backend: bl.Service | None = None
    notes: list[str] = field(default_factory=list)

    def quiet(self, own: list[bl.Service]) -> None:
        bl.quiet_or_lock(self.args.max_foreign, own)

    def echo_like(self, services: dict[str, bl.Service], mode: str, args: list[str],
                  duration: float) -> dict[str, list[bl.Sample]]:
        helpers = [self.backend] if self.backend else []

        def run(p: str, r: int, d: float) -> bl.Sample:
            a = [*args, "-d", str(d)]
            results: list[dict] = []
            self.quiet([services[p], *helpers])
            client = bl.LoadClient(self.ws_load, mode, services[p].port, a)
            try:
                client.ready(timeout=120)

                def load() -> bl.LoadResult:
                    res = client.go(d + self.args.drain + 30)
                    results.append(res)
                    return bl.as_load_result(res)

                s = bl.measure(services[p], load, r, helpers=helpers)
            finally:
                client.close()
            res = results[0]
            s.extra = {"p50_ms": round(res["p50_us"] / 1000, 3), "MB_s": res["mb_per_s"]}
            if mode == "pubsub":
                s.extra.update({"published": res["published"], "lost": res["lost"],
                                "undelivered": res["undelivered"]})
            s.raw = res  # type: ignore[attr-defined]
            return s

        for p, svc in services.items():
            w = run(p, -1, self.args.warmup)
            bl.log(f"warm-up {p}: {w.rps:,.0f} ops/s, errors {w.errors}")
        return bl.alternate(list(services), self.args.rounds, lambda p, r: run(p, r, duration))


def idle_round(bench: Bench, name: str, start, n: int) -> dict:
    """Starts the contender fresh, holds n idle upgraded connections, returns RSS figures."""
    svc = start()
    try:
        bench.quiet([svc, *([bench.backend] if bench.backend else [])])
    except BaseException:
        svc.stop()
        raise
    rec = bl.hold_idle(svc, lambda: bl.LoadClient(bench.ws_load, "idle", svc.port, ["-c", str(n)]), n, 180)
    return {**rec, "name": name}


def sanity(bench: Bench, name: str, svc: bl.Service) -> bool:
    """One short echo exchange through the contender; False (and a note) if it fails."""
    client = bl.LoadClient(bench.ws_load, "echo", svc.port, ["-c", "2", "-s", "100", "-d", "0.3"])
    try:
        client.ready(timeout=10)
        res = client.go(15)
        ok = res["errors"] == 0 and res["ops"] > 0
    except RuntimeError as e:
        bl.log(f"{name}: {e}")
        ok = False
    finally:
        client.close()
    if not ok:
        bench.notes.append(f"{name} failed the sanity echo and was left out")
        bl.log(f"{name}: sanity echo FAILED; leaving it out")
    return ok


def diagnose(bench: Bench, services: dict[str, bl.Service], scen: str, mode: str,
             cargs: list[str]) -> list[str]:
    """For each contender: syscalls per operation (strace -c -f) and a CPU profile (perf record)
    of one run of the scenario. Both slow the proxy, so these runs are never the measured ones."""
    out = [f"### Diagnostics: {scen} (`ws_load {mode} {' '.join(cargs)}`)\n"]
    for p, svc in services.items():
        def load(d: float = 3.0):
            bench.quiet([svc])
            client = bl.LoadClient(bench.ws_load, mode, svc.port, [*cargs, "-d", str(d)])
            try:
                client.ready(timeout=120)
                return bl.as_load_result(client.go(d + bench.args.drain + 30))
            finally:
                client.close()
                bl.release_run_lock()
        calls, r = bl.strace_counts(svc, load)
        ops = max(r.requests, 1)
        per = ", ".join(f"{k} {v / ops:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])
                        if v / ops >= 0.01)
        out.append(f"**{p}**: syscalls per operation ({r.requests} operations under strace): "
                   f"{sum(calls.values()) / ops:.2f} = {per}\n")
        try:
            prof, _ = bl.perf_profile(svc, load, limit=1.5)
            out.append("```\n" + prof + "\n```\n")
        except (OSError, subprocess.SubprocessError) as e:
            out.append(f"(perf failed: {e})\n")
    return out


# --------------------------------------------------------------------------------------------
# reporting


fmt_ratio, target_row = bl.fmt_ratio, bl.target_row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bl.add_round_arguments(ap)
    ap.add_argument("--proxies", default=",".join(ECHO_PROXIES),
                    help=f"echo contenders (default: {','.join(ECHO_PROXIES)}; also nginx-64k: "
                         "nginx with proxy_buffer_size 64k; relay-splice: the relay with splice(2); "
                         "relay-uring: the relay on io_uring; portico-uring: the tunnel with io_uring: on; "
                         "portico-frames-uring: frames mode with io_uring: on)")
    ap.add_argument("--compare-bin",
                    help="a second Portico binary (A/B of a change): every portico-* echo contender in "
                         "--proxies runs again from it as <name>-b, same config, in the same rounds")
    ap.add_argument("--pubsub", default=",".join(PUBSUB_SERVERS), help="pub/sub contenders")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    ap.add_argument("--connections", type=int, default=64, help="small: connections (default: 64)")
    ap.add_argument("--size", type=int, default=64, help="small: message bytes (default: 64)")
    ap.add_argument("--paced-rate", type=int, default=15000,
                    help="paced: messages per second offered in all (default: 15000)")
    ap.add_argument("--large-size", type=int, default=65536, help="large: message bytes (default: 65536)")
    ap.add_argument("--upgrade-concurrency", type=int, default=32, help="upgrades: parallel clients (default: 32)")
    ap.add_argument("--idle-conns", type=int, default=5000, help="idle: connections (default: 5000)")
    ap.add_argument("--subscribers", type=int, default=1000, help="fan-out: subscribers (default: 1000)")
    ap.add_argument("--pub-size", type=int, default=64, help="fan-out: message bytes (default: 64)")
    ap.add_argument("--ws-load", help="a prebuilt ws_load binary (default: built into --build-dir)")
    ap.add_argument("--max-foreign", type=float, default=0.10,
                    help="before each run wait (up to 5 min) until processes outside the benchmark "
                         "use at most this share of a core (default: 0.10; negative: never wait)")
    ap.add_argument("--nice", type=int,
                    help="autogroup nice (-20..19) for every process started here, e.g. -5 on a "
                         "machine others are compiling on (default: unchanged)")
    ap.add_argument("--fifo", type=int, metavar="PRIORITY", help=bl.fifo_help())
    ap.add_argument("--diagnose", action="store_true",
                    help="instead of measuring: strace -c syscall counts per operation and a perf "
                         "profile of each echo contender, for the small and upgrades scenarios "
                         "among --scenarios")
    ap.add_argument("--json", help="also write every sample to this JSON file")
    ap.add_argument("--charts", metavar="DIR",
                    help="also draw one SVG per scenario into DIR (bench/charts.py; needs python3-matplotlib)")
    args = ap.parse_args()
    bl.AUTOGROUP_NICE = args.nice
    bl.FIFO_PRIORITY = args.fifo

    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    pubsubs = [p.strip() for p in args.pubsub.split(",") if p.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if args.compare_bin:
        proxies += [f"{p}-b" for p in proxies if p.startswith("portico-")]
    known_b = {f"{p}-b" for p in PORTICO_CONTENDERS} if args.compare_bin else set()
    bad = (set(proxies) - set(ECHO_PROXIES) - set(EXTRA_PROXIES) - {"nginx-64k", *bl.RELAY_VARIANTS} - known_b) | (set(pubsubs) - set(PUBSUB_SERVERS)) \
        | (set(scenarios) - set(SCENARIOS))
    if bad:
        ap.error(f"unknown names: {', '.join(sorted(bad))}")

    build_dir = Path(args.build_dir)
    ws_load = Path(args.ws_load).resolve() if args.ws_load else bl.build_ws_load(build_dir)
    portico_bin = None
    uses = (proxies if any(s in ("small", "paced", "large", "upgrades", "idle") for s in scenarios) else []) \
        + (pubsubs if any(s.startswith("fanout") for s in scenarios) else [])
    if any(p.startswith("portico") for p in uses):
        if args.portico_bin:
            portico_bin = Path(args.portico_bin).resolve()
        else:
            bl.log(f"building Portico (Release) in {build_dir}")
            portico_bin = bl.build_portico(build_dir)
    bl.raise_nofile_limit()
    bench = Bench(args, ws_load, portico_bin)

    echo_scen = [s for s in scenarios if s in ("small", "paced", "large", "upgrades", "idle")]
    fan_scen = [s for s in scenarios if s.startswith("fanout")]

    starters = {}
    if echo_scen:
        bench.backend = bl.start_ws_backend(ws_load)
        bp = bench.backend.port
        bl.log(f"echo backend (ws_load server) on port {bp}")
        starters = {
            "nginx": lambda: start_nginx(bp),
            "nginx-64k": lambda: start_nginx(bp, "nginx-64k", "64k"),
            "haproxy": lambda: start_haproxy(bp),
            **{name: (lambda name=name: bl.start_relay(ws_load, bp, name)) for name in bl.RELAY_VARIANTS},
        }
        bins = {"": portico_bin, **({"-b": Path(args.compare_bin).resolve()} if args.compare_bin else {})}
        for suffix, binary in bins.items():
            for name, (mode, extra) in PORTICO_CONTENDERS.items():
                starters[name + suffix] = (lambda binary=binary, mode=mode, name=name + suffix, extra=extra:
                                           start_portico_ws(binary, bp, mode, name=name, extra=extra))

    results: dict[str, dict[str, list[bl.Sample]]] = {}
    idle: dict[str, list[dict]] = {}
    out: list[str] = []

    # ---- echo scenarios: contenders side by side, alternating
    running_scen = [s for s in echo_scen if s != "idle"]
    if running_scen:
        services = bl.start_contenders(proxies, starters, bench.notes)
        for p in list(services):
            if not sanity(bench, p, services[p]):
                services.pop(p).stop()
        specs = {
            "small": ("echo", ["-c", str(args.connections), "-s", str(args.size)]),
            "paced": ("echo", ["-c", str(args.connections), "-s", str(args.size), "--rate",
                               str(args.paced_rate)]),
            "large": ("echo", ["-c", "1", "-s", str(args.large_size)]),
            "upgrades": ("upgrades", ["-c", str(args.upgrade_concurrency)]),
        }
        if args.diagnose:
            for scen in running_scen:
                svcs = {p: s for p, s in services.items() if scen == "large" or p != "nginx-64k"}
                print("\n".join(diagnose(bench, svcs, scen, *specs[scen])), flush=True)
            return 0
        for scen in running_scen:
            mode, cargs = specs[scen]
            bl.log(f"== scenario {scen}: ws_load {mode} {' '.join(cargs)} -d {args.duration:g}")
            svcs = {p: s for p, s in services.items() if scen == "large" or p != "nginx-64k"}
            results[scen] = bench.echo_like(svcs, mode, cargs, args.duration)
        for s in services.values():
            s.stop()

    # ---- idle: a fresh process per measurement
    if "idle" in echo_scen:
        names = [p for p in proxies if p != "nginx-64k"]
        bl.log(f"== scenario idle: {args.idle_conns} connections")
        idle = {p: [] for p in names}
        for r in range(args.rounds):
            order = [names[(i + r) % len(names)] for i in range(len(names))]
            for p in order:
                try:
                    rec = idle_round(bench, p, starters[p], args.idle_conns)
                except RuntimeError as e:
                    bl.log(f"idle {p}: {e}")
                    bench.notes.append(f"idle {p} round {r + 1}: {str(e).splitlines()[0]}")
                    continue
                idle[p].append(rec)
                bl.log(f"round {r + 1}/{args.rounds} {p:<15} {rec['per_conn'] / 1024:7.2f} KiB/conn "
                       f"(RSS {rec['rss0'] / 2**20:.1f} -> {rec['rss1'] / 2**20:.1f} MiB, "
                       f"setup {rec['setup_s']:.2f} s)")

    if bench.backend:
        bench.backend.stop()

    # ---- pub/sub fan-out
    for scen in fan_scen:
        channels = 1 if scen == "fanout1000" else max(1, args.subscribers // 10)
        publishers = 1 if channels == 1 else 4
        fan = args.subscribers // channels
        window = max(4 * fan, 1000)
        pstart = {"nchan": start_nchan, "portico": lambda: start_portico_pubsub(portico_bin)}
        services = {}
        for p in pubsubs:
            try:
                services[p] = pstart[p]()
            except RuntimeError as e:
                bench.notes.append(f"{p} (pub/sub) did not start: {str(e).splitlines()[0]}")
                continue
        bl.log(f"== scenario {scen}: {channels} channel(s) x {fan} subscribers, {publishers} publisher(s)")
        per: dict[str, list[bl.Sample]] = {}

        def run(p: str, r: int, d: float) -> bl.Sample:
            sub, pub = PUBSUB_PATHS[p]
            cargs = ["-c", str(args.subscribers), "--channels", str(channels), "--publishers",
                     str(publishers), "--sub-path", sub, "--pub-path", pub, "--token", TOKEN,
                     "-s", str(args.pub_size), "--window", str(window), "-d", str(d)]
            res_holder: list[dict] = []
            bench.quiet([services[p]])
            client = bl.LoadClient(ws_load, "pubsub", services[p].port, cargs)
            try:
                client.ready(timeout=120)

                def load() -> bl.LoadResult:
                    res = client.go(d + args.drain + 30)
                    res_holder.append(res)
                    return bl.as_load_result(res)

                s = bl.measure(services[p], load, r)
            finally:
                client.close()
            res = res_holder[0]
            s.extra = {"p50_ms": round(res["p50_us"] / 1000, 3), "published": res["published"],
                       "lost": res["lost"], "undelivered": res["undelivered"]}
            s.raw = res  # type: ignore[attr-defined]
            return s

        ok = {}
        for p, svc in services.items():
            try:
                w = run(p, -1, args.warmup)
                bl.log(f"warm-up {p}: {w.rps:,.0f} deliveries/s, errors {w.errors}")
                ok[p] = svc
            except RuntimeError as e:
                bench.notes.append(f"{p} failed the {scen} warm-up: {str(e).splitlines()[0]}")
                bl.log(f"{p}: {e}")
        if ok:
            per = bl.alternate(list(ok), args.rounds, lambda p, r: run(p, r, args.duration))
        results[scen] = per
        for s in services.values():
            s.stop()

    # ---- report
    med = lambda ss, f: bl.median(f(s) for s in ss)  # noqa: E731
    targets: list[list[str]] = []
    for scen in ("small", "paced"):
        if scen not in results:
            continue
        per = results[scen]
        base = per.get("nginx")
        rows, by_round = [], []
        for p, ss in per.items():
            rps, p50 = med(ss, lambda s: s.rps), med(ss, lambda s: s.extra["p50_ms"])
            p99, cpu = med(ss, lambda s: s.p99_ms), med(ss, lambda s: s.cpu_per_million)
            lo, hi = bl.spread(s.cpu_per_million for s in ss)
            rows.append([p, f"{rps:,.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{cpu:.2f} ({lo:.1f}-{hi:.1f})",
                         bl.fmt_paired(ss, base, lambda s: s.rps), bl.fmt_paired(ss, base, lambda s: s.p99_ms),
                         bl.fmt_paired(ss, base, lambda s: s.cpu_per_million), sum(s.errors for s in ss)])
            ratios = bl.paired_ratios(ss, base, lambda s: s.cpu_per_million) if base else []
            by_round.append([p] + [f"{s.cpu_per_million:.2f}" for s in ss] +
                            ([f"{bl.median(ratios):.2f}x"] if base else []))
            if base and p.startswith("portico"):
                limit = 1.0 if p.removesuffix("-b") in ("portico-tunnel", "portico-uring") else 1.15
                rate_x = bl.paired_ratio(ss, base, lambda s: s.rps)
                cpu_x = bl.paired_ratio(ss, base, lambda s: s.cpu_per_million)
                p99_x = bl.paired_ratio(ss, base, lambda s: s.p99_ms)
                if scen == "small":
                    targets.append(target_row(f"small msg/s >= nginx ({p})", rate_x >= 1, f"{rate_x:.2f}x"))
                targets.append(target_row(f"{scen} CPU/msg <= {limit:.2f}x nginx ({p})", cpu_x <= limit,
                                          f"{cpu_x:.2f}x"))
                targets.append(target_row(f"{scen} p99 <= nginx ({p})", p99_x <= 1, f"{p99_x:.2f}x"))
        if scen == "small":
            out.append(f"### Small messages: {args.connections} connections x {args.size}-byte "
                       "messages, one at a time each, as fast as echoed\n")
        else:
            out.append(f"### Small messages at equal load: the same, offered at {args.paced_rate:,} "
                       "msg/s in all\n")
        out.append(bl.markdown_table(["Proxy", "msg/s", "p50 (ms)", "p99 (ms)", "CPU s / 1M msg (min-max)",
                                      "msg/s vs nginx", "p99 vs nginx", "CPU vs nginx", "errors"], rows))
        out.append("")
        out.append("The \"vs nginx\" columns: median (min-max) of per-round ratios, each run against "
                   "nginx's run in the same round. CPU s / 1M msg by round:\n")
        rounds = max(len(ss) for ss in per.values())
        out.append(bl.markdown_table(["Proxy"] + [f"r{i + 1}" for i in range(rounds)] +
                                     (["CPU vs nginx"] if base else []), by_round))
        out.append("")
    if "large" in results:
        per = results["large"]
        mb = {p: med(ss, lambda s: s.extra["MB_s"]) for p, ss in per.items()}
        rows = []
        for p, ss in per.items():
            rows.append([p, f"{mb[p]:,.0f}", f"{med(ss, lambda s: s.extra['p50_ms']):.3f}",
                         f"{med(ss, lambda s: s.p99_ms):.3f}",
                         f"{med(ss, lambda s: s.cpu_s / (s.requests * args.large_size) * 1e9 if s.requests else 0):.2f}",
                         fmt_ratio(mb[p], mb.get("haproxy")), fmt_ratio(mb[p], mb.get("nginx")),
                         sum(s.errors for s in ss)])
            if "haproxy" in mb and p.startswith("portico"):
                targets.append(target_row(f"64 KiB MB/s >= HAProxy ({p})", mb[p] >= mb["haproxy"],
                                          fmt_ratio(mb[p], mb["haproxy"]) +
                                          (f"; {fmt_ratio(mb[p], mb['relay'])} of the relay" if "relay" in mb else "")))
        out.append(f"### Large messages: 1 connection x {args.large_size}-byte messages, one at a time\n")
        out.append(bl.markdown_table(["Proxy", "MB/s (payload, one way)", "p50 (ms)", "p99 (ms)",
                                      "CPU s / GB", "vs HAProxy", "vs nginx", "errors"], rows))
        out.append("")
    if "upgrades" in results:
        per = results["upgrades"]
        base = per.get("nginx")
        b = (med(base, lambda s: s.rps), med(base, lambda s: s.cpu_per_million)) if base else None
        rows = []
        for p, ss in per.items():
            rate, cpu = med(ss, lambda s: s.rps), med(ss, lambda s: s.cpu_per_million)
            rows.append([p, f"{rate:,.0f}", f"{cpu:.1f}", f"{med(ss, lambda s: s.extra['p50_ms']):.2f}",
                         f"{med(ss, lambda s: s.p99_ms):.2f}", fmt_ratio(rate, b and b[0]),
                         fmt_ratio(cpu, b and b[1]), sum(s.errors for s in ss)])
            if b and p.startswith("portico"):
                targets.append(target_row(f"upgrades/s >= nginx ({p})", rate >= b[0], fmt_ratio(rate, b[0])))
                targets.append(target_row(f"CPU/upgrade <= nginx ({p})", cpu <= b[1], fmt_ratio(cpu, b[1])))
        out.append(f"### Upgrades: {args.upgrade_concurrency} clients in parallel, each connect + "
                   "upgrade + close handshake, repeated\n")
        out.append(bl.markdown_table(["Proxy", "upgrades/s", "CPU us / upgrade", "p50 (ms)", "p99 (ms)",
                                      "rate vs nginx", "CPU vs nginx", "errors"], rows))
        out.append("")
    if idle:
        table, kb = bl.idle_table(idle, 2)
        for p in kb:
            if "haproxy" in kb and p.startswith("portico"):
                targets.append(target_row(f"idle RSS/conn < HAProxy ({p})", kb[p] < kb["haproxy"],
                                          f"{kb[p]:.2f} KB vs {kb['haproxy']:.2f} KB"))
        out.append(f"### Idle upgraded connections: {args.idle_conns} held, one echo each first\n")
        out.append(table)
        out.append("")
    for scen in fan_scen:
        per = results.get(scen, {})
        if not per:
            continue
        base = per.get("nchan")
        b = (med(base, lambda s: s.rps), med(base, lambda s: s.cpu_per_million)) if base else None
        rows = []
        for p, ss in per.items():
            rate, cpu = med(ss, lambda s: s.rps), med(ss, lambda s: s.cpu_per_million)
            rows.append([p, f"{rate:,.0f}", f"{cpu:.2f}", f"{med(ss, lambda s: s.extra['p50_ms']):.2f}",
                         f"{med(ss, lambda s: s.p99_ms):.2f}", fmt_ratio(rate, b and b[0]),
                         fmt_ratio(cpu, b and b[1]), f"{med(ss, lambda s: s.extra['published']):,.0f}",
                         sum(s.extra["lost"] for s in ss), sum(s.errors for s in ss)])
            if b and p == "portico":
                targets.append(target_row(f"{scen} deliveries/s >= nchan", rate >= b[0], fmt_ratio(rate, b[0])))
                targets.append(target_row(f"{scen} CPU/delivery < nchan", cpu < b[1], fmt_ratio(cpu, b[1])))
        channels = 1 if scen == "fanout1000" else max(1, args.subscribers // 10)
        out.append(f"### Pub/sub fan-out: {channels} channel(s) x {args.subscribers // channels} WebSocket "
                   f"subscribers, {args.pub_size}-byte messages POSTed over HTTP\n")
        out.append(bl.markdown_table(["Server", "deliveries/s", "CPU s / 1M deliveries",
                                      "delivery p50 (ms)", "delivery p99 (ms)", "rate vs nchan",
                                      "CPU vs nchan", "published / run", "lost", "errors"], rows))
        out.append("")
    if targets:
        out.append("### Portico against the targets (issue 3)\n")
        out.append(bl.markdown_table(["Target", "Result", "Portico vs reference"], targets))
        out.append("")

    if args.fifo is not None:
        bench.notes.append(f"every process started here ran SCHED_FIFO at priority {args.fifo} "
                           "(--fifo: no fair-scheduler wakeup placement, no batching under it)")
    all_samples = [s for per in results.values() for ss in per.values() for s in ss]
    cmd = " ".join(shlex.quote(a) for a in ["/usr/bin/python3", "bench/ws_echo.py", *sys.argv[1:]])
    if args.portico_bin and "PORTICO_BIN" in os.environ and "--portico-bin" not in sys.argv:
        cmd = f"PORTICO_BIN={shlex.quote(os.environ['PORTICO_BIN'])} {cmd}"
    out.append(f"Medians of {args.rounds} alternating rounds of {args.duration:g} s after a "
               f"{args.warmup:g} s warm-up each; 1 worker/thread per proxy; one backend "
               "(`ws_load server`, C++ epoll echo) and one load client (`ws_load`, masked client "
               "frames, binary messages); CPU = utime+stime of all the proxy's processes during the "
               "measured phase (connection setup excluded), divided by every operation completed in "
               "it. relay = `ws_load relay`, a bare read/write byte relay (256 KiB buffers, pooled: an idle "
               "connection holds none); relay-splice: the same with splice(2) through a pipe; relay-uring: the "
               "same on io_uring (multishot recv into provided buffers, direct descriptors, one "
               "io_uring_enter per loop iteration). Idle "
               "RSS: sum of the proxy processes' RSS with the connections open minus before, each "
               "proxy freshly started.")
    out.append(bl.noise_line(all_samples, args.duration))
    if bench.notes:
        out.append("Notes: " + "; ".join(bench.notes) + ".")
    out.append(f"Machine: {bl.machine_summary()}. {bl.tool_version(['nginx', '-v'])}; "
               f"{bl.tool_version(['haproxy', '-v'])}.")
    out.append("")
    out.append(f"Command: `{cmd}`")
    print("\n".join(out))

    record = json.dumps({"echo": {sc: {p: [dict(s.__dict__) for s in ss] for p, ss in per.items()}
                                  for sc, per in results.items()}, "idle": idle}, indent=1, default=str)
    if args.json:
        Path(args.json).write_text(record)
    if args.charts:
        import charts  # bench/charts.py: only this needs matplotlib
        for path in charts.ws_charts(json.loads(record), Path(args.charts)):
            print(f"chart: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
