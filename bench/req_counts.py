#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Instructions and syscalls per proxied request, counted rather than timed: nginx, HAProxy and
Portico each run under `valgrind --tool=callgrind` (1 worker / 1 thread) in the same run, and
h2load sends them the same fixed number of requests. A shared machine moves CPU-time figures by
+-15% from run to run; these counts move by well under 1%.

    /usr/bin/python3 bench/req_counts.py [--portico-bin build/portico] [--scenarios h1,h2,https,wss]
        [--proxies nginx,haproxy,portico] [--requests 20000] [--top 15] [--what ir,syscalls]

Scenarios (the peers of the timed benchmarks, started by their own scripts' functions):

  h1     HTTP/1.1 keep-alive, `h2load --h1 -c32 -m1` (32 connections, one request in flight
         each, as wrk -c32 in bench/http_proxy.py), that script's proxies (keepalive 32) and
         backend (nginx `return 200`).
  h2     h2 over TLS 1.3, `h2load -c1 -m100` (1 connection x 100 streams), bench/h2_bench.py's
         proxies (tls_bench's, with h2) and backend (`ws_load server`), keepalive 128 (so that
         no request waits for a backend connection).
  https  HTTP/1.1 keep-alive over TLS 1.3, `h2load --h1 -c64 -m1` to https:// (as wrk -c64 in
         tls_bench.py's keepalive scenario), its proxies and backend, keepalive 32: more
         clients than kept upstream connections, so upstream connections are opened and
         closed too (counted per request, like everything else).
  wss    wss:// echo through the proxy's tunnel (tls_bench.py's wss scenario): tls_load
         wss-echo, 8 connections, one 64-byte message in flight each, for --wss-seconds;
         counted per message echoed.

Per proxy and scenario (--what ir): the proxy starts under callgrind, a warm-up run opens the
upstream connections, the counters are zeroed (callgrind_control -z), the measured run goes, the
counters are dumped (-d). Instructions per request = the dump's total / the requests that got a
2xx; allocations per request = the calls to malloc, calloc and realloc in the same dump. User
space only (the kernel's share, the bulk of a proxy's CPU, is the syscalls: see --what syscalls). The functions with the most instructions of their own are printed per request
(the profile). --what syscalls: the same runs natively with `strace -c -f` attached to the
measured part: syscalls per request by name. Every process started is stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import h2_bench  # noqa: E402  (run_h2load)
import http_proxy  # noqa: E402  (the HTTP/1.1 proxies and backend)
import tls_bench  # noqa: E402  (the TLS proxies, Certificate)

PROXIES = ["nginx", "haproxy", "portico"]
SCENARIOS = ["h1", "h2", "https", "wss"]
WHAT = ["ir", "syscalls"]

# around(load) runs the measured load: zeroes callgrind's counters first, or attaches strace.
Around = Callable[[Callable[[], bl.LoadResult]], bl.LoadResult]


class Scenario:
    """The backend, the proxies' starters and the load of one scenario."""

    def __init__(self, name: str, binary: Path, build_dir: Path, wss_seconds: float):
        self.name = name
        if name == "h1":
            self.backend = http_proxy.start_backend(1)
            port, ka = self.backend.port, 32
            self.starters = {
                "nginx": lambda wrap: http_proxy.start_nginx_proxy(1, port, ka, wrap),
                "haproxy": lambda wrap: http_proxy.start_haproxy_proxy(1, port, ka, wrap),
                "portico": lambda wrap: http_proxy.start_portico_proxy(1, port, ka, binary, wrap),
                "portico-uring": lambda wrap: http_proxy.start_portico_proxy(1, port, ka, binary, wrap,
                                                                             io_uring="on", name="portico-uring"),
            }
            self.load = lambda svc, n: h2_bench.run_h2load(svc.port, 32, 1, requests=n, h1=True)
            self.title = "HTTP/1.1 keep-alive, h2load --h1 -c32 -m1, GET / proxied (keepalive 32)"
            return
        cert = tls_bench.Certificate(bl.make_workdir("req-counts-cert"))
        self.backend = bl.start_ws_backend(bl.build_ws_load(build_dir))
        port, ka, h2 = self.backend.port, (128 if name == "h2" else 32), name == "h2"
        self.starters = {
            "nginx": lambda wrap: tls_bench.start_nginx(cert, port, ka, h2=h2, wrap=wrap),
            "haproxy": lambda wrap: tls_bench.start_haproxy(cert, port, ka, h2=h2, wrap=wrap),
            "portico": lambda wrap: tls_bench.start_portico(binary, cert, port, ka, h2=h2, wrap=wrap),
            # TLS sockets on the ring after their handshake (net/stream_tls_ring.cpp)
            "portico-uring": lambda wrap: tls_bench.start_portico(binary, cert, port, ka, name="portico-uring",
                                                                  h2=h2, wrap=wrap, io_uring="on"),
        }
        if name == "h2":
            self.load = lambda svc, n: h2_bench.run_h2load(svc.port, 1, 100, requests=n)
            self.title = "h2 over TLS 1.3, h2load -c1 -m100, GET / proxied to the HTTP/1.1 backend (keepalive 128)"
        elif name == "https":
            self.load = lambda svc, n: h2_bench.run_h2load(svc.port, 64, 1, requests=n, h1=True, tls=True)
            self.title = ("HTTP/1.1 keep-alive over TLS 1.3, h2load --h1 -c64 -m1, GET / proxied to the "
                          "HTTP/1.1 backend (keepalive 32)")
        elif name == "wss":
            self.tls_load, self.wss_seconds = bl.build_tls_load(build_dir), wss_seconds
            self.title = "wss:// echo through the tunnel, tls_load wss-echo -c8 -s64, per message echoed"
        else:
            raise ValueError(name)

    def run(self, svc: bl.Service, requests: int, warmup: int, around: Around) -> bl.LoadResult:
        """A warm-up, then the measured load inside around()."""
        if self.name != "wss":
            self.load(svc, warmup)
            return around(lambda: self.load(svc, requests))
        client = bl.LoadClient(self.tls_load, "wss-echo", svc.port, ["-c", "8", "-s", "64", "-d",
                                                                     str(self.wss_seconds)])
        try:
            client.ready(timeout=300)  # upgraded, one echo each: the warm-up
            return around(lambda: bl.as_load_result(client.go(self.wss_seconds + 120)))
        finally:
            client.close()


def count(scen: Scenario, proxy: str, requests: int, warmup: int, top: int, workdir: Path) -> dict:
    cg = bl.Callgrind(workdir, f"{scen.name}.{proxy}")
    svc = scen.starters[proxy](cg.wrap())
    try:
        def around(load: Callable[[], bl.LoadResult]) -> bl.LoadResult:
            cg.zero(svc.pid)  # nginx runs without a master under valgrind: the pid does the work
            return load()
        r = scen.run(svc, requests, warmup, around)
        dump = cg.dump(svc.pid)
    finally:
        svc.stop(timeout=30)
    if r.errors:
        bl.log(f"{scen.name} {proxy}: {r.errors} errors")
    ops = max(r.requests, 1)
    return {"requests": r.requests, "errors": r.errors, "ir": cg.total(dump) / ops,
            "allocs": cg.allocations(dump) / ops, "top": cg.top(dump, ops, top)}


def count_syscalls(scen: Scenario, proxy: str, requests: int, warmup: int) -> dict:
    """The same run natively, strace -c -f attached to the measured part."""
    svc = scen.starters[proxy]([])
    calls: dict[str, int] = {}
    try:
        def around(load: Callable[[], bl.LoadResult]) -> bl.LoadResult:
            counted, r = bl.strace_counts(svc, load)
            calls.update(counted)
            return r
        r = scen.run(svc, requests, warmup, around)
    finally:
        svc.stop(timeout=30)
    per = {k: v / max(r.requests, 1) for k, v in calls.items()}
    return {"requests": r.requests, "errors": r.errors, "per": per}


def report(scen: Scenario, results: dict[str, dict]) -> str:
    out = [f"#### {scen.title}", ""]
    rows = []
    for p, r in results.items():
        ratio = lambda base: f"{r['ir'] / results[base]['ir']:.2f}x" if base in results else "-"  # noqa: E731
        rows.append([p, f"{r['requests']:,}", f"{r['ir']:,.0f}", ratio("nginx"), ratio("haproxy"),
                     f"{r['allocs']:.2f}", r["errors"]])
    out += [bl.markdown_table(["proxy", "requests counted", "instructions / request", "vs nginx",
                               "vs HAProxy", "allocations / request", "errors"], rows), ""]
    for p, r in results.items():
        out += [f"{p}, instructions per request by function (self):", "```", *r["top"], "```", ""]
    return "\n".join(out)


def report_syscalls(scen: Scenario, results: dict[str, dict], top: int) -> str:
    names = sorted({k for r in results.values() for k in r["per"]},
                   key=lambda k: -max(r["per"].get(k, 0) for r in results.values()))[:top]
    rows = [[p, f"{r['requests']:,}", f"{sum(r['per'].values()):.2f}",
             *(f"{r['per'].get(k, 0):.2f}" for k in names)] for p, r in results.items()]
    return "\n".join([f"#### {scen.title}: syscalls per request (strace -c -f)", "",
                      bl.markdown_table(["proxy", "requests", "all", *names], rows), ""])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico-bin", default=str(bl.REPO_ROOT / "build" / "portico"))
    ap.add_argument("--build-dir", default=str(bl.REPO_ROOT / "build-bench"), help="where ws_load is built")
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--requests", type=int, default=20000, help="requests counted per proxy (default: 20000)")
    ap.add_argument("--warmup", type=int, default=1000, help="requests before counting (default: 1000)")
    ap.add_argument("--top", type=int, default=15, help="functions listed per proxy (default: 15)")
    ap.add_argument("--what", default="ir", help=f"what to count: {','.join(WHAT)} (default: ir)")
    ap.add_argument("--wss-seconds", type=float, default=5.0, help="length of the wss run (default: 5)")
    args = ap.parse_args()
    bl.raise_nofile_limit()
    binary = Path(args.portico_bin).resolve()
    proxies = [p for p in args.proxies.split(",") if p]
    workdir = bl.make_workdir("req-counts")
    print(f"Portico {bl.git_revision()} ({binary}); {bl.tool_version(['nginx', '-v'])}; "
          f"{bl.tool_version(['haproxy', '-v'])}; {bl.tool_version(['h2load', '--version'])}; "
          f"{bl.machine_summary()}\n")
    try:
        for name in [s for s in args.scenarios.split(",") if s]:
            scen = Scenario(name, binary, Path(args.build_dir), args.wss_seconds)
            try:
                if "ir" in args.what.split(","):
                    results = {}
                    for p in proxies:
                        bl.log(f"{name}: {p} under callgrind, {args.requests} requests")
                        results[p] = count(scen, p, args.requests, args.warmup, args.top, workdir)
                    print(report(scen, results), flush=True)
                if "syscalls" in args.what.split(","):
                    calls = {}
                    for p in proxies:
                        bl.log(f"{name}: {p} under strace, {args.requests} requests")
                        calls[p] = count_syscalls(scen, p, args.requests, args.warmup)
                    print(report_syscalls(scen, calls, args.top), flush=True)
            finally:
                scen.backend.stop()
    finally:
        bl.Registry.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
