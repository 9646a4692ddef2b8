#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Instructions per proxied request, counted rather than timed: nginx, HAProxy and Portico each
run under `valgrind --tool=callgrind` (1 worker / 1 thread) in the same run, and h2load sends
them the same fixed number of requests. A shared machine moves CPU-time figures by +-15% from
run to run; these counts move by well under 1%.

    /usr/bin/python3 bench/req_counts.py [--portico-bin build/portico] [--scenarios h1,h2]
        [--proxies nginx,haproxy,portico] [--requests 20000] [--top 15]

Scenarios (the peers of the timed benchmarks, started by their own scripts' functions):

  h1   HTTP/1.1 keep-alive, `h2load --h1 -c32 -m1` (32 connections, one request in flight
       each, as wrk -c32 in bench/http_proxy.py), that script's proxies (keepalive 32) and
       backend (nginx `return 200`).
  h2   h2 over TLS 1.3, `h2load -c1 -m100` (1 connection x 100 streams), bench/h2_bench.py's
       proxies (tls_bench's, with h2) and backend (`ws_load server`), keepalive 128 (so that
       no request waits for a backend connection).

Per proxy and scenario: the proxy starts under callgrind, a warm-up run opens the upstream
connections, the counters are zeroed (callgrind_control -z), the measured run goes, the counters
are dumped (-d). Instructions per request = the dump's total / the requests that got a 2xx. User
space only (the kernel's share, the bulk of a proxy's CPU, is the same syscalls for all three:
see the strace figures in RESULTS.md). The functions with the most instructions of their own
are printed per request (the profile). Every process started is stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import h2_bench  # noqa: E402  (run_h2load)
import http_proxy  # noqa: E402  (the HTTP/1.1 proxies and backend)
import tls_bench  # noqa: E402  (the TLS proxies, Certificate)

PROXIES = ["nginx", "haproxy", "portico"]
SCENARIOS = ["h1", "h2"]


class Scenario:
    """The backend, the proxies' starters and the load of one scenario."""

    def __init__(self, name: str, binary: Path, build_dir: Path):
        self.name = name
        if name == "h1":
            self.backend = http_proxy.start_backend(1)
            port, ka = self.backend.port, 32
            self.starters = {
                "nginx": lambda wrap: http_proxy.start_nginx_proxy(1, port, ka, wrap),
                "haproxy": lambda wrap: http_proxy.start_haproxy_proxy(1, port, ka, wrap),
                "portico": lambda wrap: http_proxy.start_portico_proxy(1, port, ka, binary, wrap),
            }
            self.load = lambda svc, n: h2_bench.run_h2load(svc.port, 32, 1, requests=n, h1=True)
            self.title = "HTTP/1.1 keep-alive, h2load --h1 -c32 -m1, GET / proxied (keepalive 32)"
        else:
            cert = tls_bench.Certificate(bl.make_workdir("req-counts-cert"))
            self.backend = bl.start_ws_backend(bl.build_ws_load(build_dir))
            port, ka = self.backend.port, 128
            self.starters = {
                "nginx": lambda wrap: tls_bench.start_nginx(cert, port, ka, h2=True, wrap=wrap),
                "haproxy": lambda wrap: tls_bench.start_haproxy(cert, port, ka, h2=True, wrap=wrap),
                "portico": lambda wrap: tls_bench.start_portico(binary, cert, port, ka, h2=True, wrap=wrap),
            }
            self.load = lambda svc, n: h2_bench.run_h2load(svc.port, 1, 100, requests=n)
            self.title = "h2 over TLS 1.3, h2load -c1 -m100, GET / proxied to the HTTP/1.1 backend (keepalive 128)"


def count(scen: Scenario, proxy: str, requests: int, warmup: int, top: int, workdir: Path) -> dict:
    cg = bl.Callgrind(workdir, f"{scen.name}.{proxy}")
    svc = scen.starters[proxy](cg.wrap())
    try:
        scen.load(svc, warmup)
        cg.zero(svc.pid)  # nginx runs without a master under valgrind: the pid does the work
        r = scen.load(svc, requests)
        dump = cg.dump(svc.pid)
    finally:
        svc.stop(timeout=30)
    if r.errors:
        bl.log(f"{scen.name} {proxy}: {r.errors} errors")
    return {"requests": r.requests, "errors": r.errors, "ir": cg.total(dump) / max(r.requests, 1),
            "top": cg.top(dump, max(r.requests, 1), top)}


def report(scen: Scenario, results: dict[str, dict]) -> str:
    out = [f"#### {scen.title}", ""]
    rows = []
    for p, r in results.items():
        ratio = lambda base: f"{r['ir'] / results[base]['ir']:.2f}x" if base in results else "-"  # noqa: E731
        rows.append([p, f"{r['requests']:,}", f"{r['ir']:,.0f}", ratio("nginx"), ratio("haproxy"), r["errors"]])
    out += [bl.markdown_table(["proxy", "requests counted", "instructions / request", "vs nginx",
                               "vs HAProxy", "errors"], rows), ""]
    for p, r in results.items():
        out += [f"{p}, instructions per request by function (self):", "```", *r["top"], "```", ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico-bin", default=str(bl.REPO_ROOT / "build" / "portico"))
    ap.add_argument("--build-dir", default=str(bl.REPO_ROOT / "build-bench"), help="where ws_load is built")
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--requests", type=int, default=20000, help="requests counted per proxy (default: 20000)")
    ap.add_argument("--warmup", type=int, default=1000, help="requests before counting (default: 1000)")
    ap.add_argument("--top", type=int, default=15, help="functions listed per proxy (default: 15)")
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
            scen = Scenario(name, binary, Path(args.build_dir))
            try:
                results = {}
                for p in proxies:
                    bl.log(f"{name}: {p} under callgrind, {args.requests} requests")
                    results[p] = count(scen, p, args.requests, args.warmup, args.top, workdir)
                print(report(scen, results), flush=True)
            finally:
                scen.backend.stop()
    finally:
        bl.Registry.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
