#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""HTTP/2 benchmark: nginx 1.22, HAProxy 2.6 and Portico terminating TLS 1.3 with h2 offered
through ALPN, each proxying GET / to the same HTTP/1.1 backend; h2load is the client.

    /usr/bin/python3 bench/h2_bench.py                        # builds Release into build-bench/
    PORTICO_BIN=build/portico /usr/bin/python3 bench/h2_bench.py --rounds 3 --duration 4
    /usr/bin/python3 bench/h2_bench.py --write                # also replaces "## HTTP/2" in RESULTS.md
    /usr/bin/python3 bench/h2_bench.py --diagnose perf --proxies portico

The proxies are bench/tls_bench.py's (1 worker / 1 thread, one TLS 1.3 listener, the same
self-signed ECDSA P-256 certificate, / proxied with keep-alive to the backend) with h2 added:
nginx `listen ... ssl http2;`, HAProxy `bind ... alpn h2,http/1.1`, Portico
`tls.alpn: [h2, http/1.1]`. The backend is `ws_load server` (bench/ws_load: `200 ok` to every
GET, HTTP/1.1 keep-alive). Scenarios (`h2load -t1`, every connection negotiates h2):

  c32m10   32 connections x 10 concurrent streams each
  c1m100   1 connection x 100 concurrent streams

The contenders run in alternation for --rounds rounds (the order rotates each round) after one
warm-up run each. The proxy's CPU (utime+stime, /proc/PID/stat) is sampled around each run and
divided by the requests completed in it; h2load's own time includes its connection setup (a
few ms here). Medians go to stdout as markdown for bench/RESULTS.md (and into it with --write).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import tls_bench  # noqa: E402  (the proxies' TLS set-up, Certificate)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## HTTP/2"
PROXIES = ["nginx", "haproxy", "portico"]
SCENARIOS = {"c32m10": (32, 10), "c1m100": (1, 100)}


def run_h2load(port: int, connections: int, streams: int, duration: float = 0.0, *, requests: int = 0,
               h1: bool = False, tls: bool | None = None) -> bl.LoadResult:
    """One `h2load -t1` run: for `duration` seconds after a 1 s warm-up, or `requests` requests
    in all. h2 over https:// (offered through ALPN; h2load fails a connection that does not get
    it), or with `h1` HTTP/1.1 keep-alive (`streams` requests in flight per connection: 1 is no
    pipelining), over http:// unless `tls` (then https://, http/1.1 through ALPN). Counts the
    requests that ended in a 2xx."""
    scheme = "https" if (not h1 if tls is None else tls) else "http"
    argv = ["h2load", "-t1", "-c", str(connections), "-m", str(streams),
            *(["-n", str(requests)] if requests else ["-D", str(int(duration)), "--warm-up-time", "1"]),
            *(["--h1"] if h1 else []), f"{scheme}://127.0.0.1:{port}/"]
    cpu0 = bl.children_cpu_seconds()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60 if duration else 1800,
                         start_new_session=True)
    client_cpu = bl.children_cpu_seconds() - cpu0
    text = out.stdout
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored", text)
    status = re.search(r"status codes: (\d+) 2xx", text)
    took = re.search(r"finished in ([\d.]+)(m?s)", text)
    proto = re.search(r"Application protocol: (\S+)", text)
    if out.returncode != 0 or not (done and status and took):
        raise RuntimeError(f"h2load failed ({out.returncode}):\n{text}\n{out.stderr}")
    want = "http/1.1" if h1 else "h2"
    if not proto or proto.group(1) != want:
        raise RuntimeError(f"h2load did not speak {want}:\n{text}")
    secs = float(took.group(1)) / (1000 if took.group(2) == "ms" else 1)
    ok = int(status.group(1))
    errors = int(done.group(3)) - ok + int(done.group(5)) + int(done.group(6))
    # h2load prints the mean and the max of request times, no percentiles: the max stands in
    # for the p99 column here.
    rt = re.search(r"time for request:\s+\S+\s+(\S+)", text)
    worst = _ms(rt.group(1)) if rt else float("nan")
    return bl.LoadResult(ok, secs, ok / secs, float("nan"), worst, errors, client_cpu, {"text": text})


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default=",".join(PROXIES), help=f"subset of {','.join(PROXIES)}")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    bl.add_run_arguments(ap, quiet_timeout=60)
    ap.add_argument("--keepalive", type=int, default=32, help="idle upstream connections per proxy (default: 32)")
    ap.add_argument("--diagnose", default="",
                    help="strace,perf: extra runs per proxy and scenario, after the measured ones "
                         "(syscalls per request; a profile), for every scenario run")
    ap.add_argument("--write", action="store_true", help=f"write the section into {RESULTS.name}")
    args = ap.parse_args()
    bl.AUTOGROUP_NICE = args.nice
    proxies = [p for p in args.proxies.split(",") if p]
    scenarios = [s for s in args.scenarios.split(",") if s]
    build_dir = Path(args.build_dir)
    binary = Path(args.portico_bin) if args.portico_bin else bl.build_portico(build_dir)
    bl.raise_nofile_limit()
    cert = tls_bench.Certificate(bl.make_workdir("h2-cert"))
    backend = bl.start_ws_backend(bl.build_ws_load(build_dir))
    starters = {
        "nginx": lambda: tls_bench.start_nginx(cert, backend.port, args.keepalive, h2=True),
        "haproxy": lambda: tls_bench.start_haproxy(cert, backend.port, args.keepalive, h2=True),
        "portico": lambda: tls_bench.start_portico(binary, cert, backend.port, args.keepalive, h2=True),
    }
    services = {p: starters[p]() for p in proxies}
    load_before = os.getloadavg()
    results: dict[str, dict[str, list[bl.Sample]]] = {}
    try:
        for scen in scenarios:
            conns, streams = SCENARIOS[scen]

            def run_one(name: str, round_no: int, duration: float = args.duration) -> bl.Sample:
                svc = services[name]
                if args.max_foreign >= 0:
                    bl.wait_quiet(args.max_foreign, own=[svc, backend], timeout=args.quiet_timeout)
                return bl.measure(svc, lambda: run_h2load(svc.port, conns, streams, duration), round_no,
                                  helpers=[backend])

            for p in proxies:  # warm-up
                run_one(p, -1, 2)
            bl.log(f"--- {scen}: {conns} connection(s) x {streams} streams")
            results[scen] = bl.alternate(proxies, args.rounds, run_one)
        for tool in [t for t in args.diagnose.split(",") if t]:
            print(diagnose(services, scenarios, tool, args.duration), file=sys.stderr)
    finally:
        bl.Registry.stop_all()
    text = report(args, results, load_before, os.getloadavg())
    print(text)
    if args.write:
        bl.write_results_section(SECTION.removeprefix("## "), text)
    return 0


def diagnose(services: dict[str, bl.Service], scenarios: list[str], tool: str, duration: float) -> str:
    """strace -c (syscalls per request) or perf (a profile), every scenario, during extra runs:
    both slow the proxy, so they are never among the measured ones."""
    out = []
    for name, svc in services.items():
        for scen in scenarios:
            conns, streams = SCENARIOS[scen]
            load = lambda: run_h2load(svc.port, conns, streams, duration)  # noqa: E731
            if tool == "strace":
                calls, r = bl.strace_counts(svc, load)
                top = sorted(((k, v / max(r.requests, 1)) for k, v in calls.items()), key=lambda kv: -kv[1])[:10]
                out.append(f"{name} {scen} ({r.requests} requests): " + ", ".join(f"{k} {v:.2f}" for k, v in top))
            else:
                text, r = bl.perf_profile(svc, load)
                out.append(f"--- {name} ({scen}, {r.requests} requests)\n{text}")
    return "\n".join(out)


def report(args, results: dict[str, dict[str, list[bl.Sample]]], load_before, load_after) -> str:
    med = lambda ss, f: bl.median(f(s) for s in ss)  # noqa: E731
    out = [SECTION, "",
           f"`bench/h2_bench.py --rounds {args.rounds} --duration {args.duration:g} --keepalive {args.keepalive}`, "
           f"{bl.git_revision()}, {bl.machine_summary()}; {bl.tool_version(['h2load', '--version'])}, "
           f"{bl.tool_version(['nginx', '-v'])}, {bl.tool_version(['haproxy', '-v'])}. "
           f"Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min).", ""]
    for scen, per in results.items():
        conns, streams = SCENARIOS[scen]
        out += [f"### h2load -t1 -c{conns} -m{streams} over TLS 1.3 (h2), GET / proxied to the HTTP/1.1 backend", ""]
        base = per.get("haproxy")
        rows = []
        for p, ss in per.items():
            rate, cpu = med(ss, lambda s: s.rps), med(ss, lambda s: s.cpu_per_million)
            lo, hi = bl.spread(s.rps for s in ss)
            ratio_rps = bl.paired_ratio(ss, base, lambda s: s.rps) if base else float("nan")
            ratio_cpu = bl.paired_ratio(ss, base, lambda s: s.cpu_per_million) if base else float("nan")
            rows.append([p, f"{rate:,.0f}", f"{lo:,.0f}-{hi:,.0f}", f"{cpu:.1f}", f"{ratio_rps:.2f}x",
                         f"{ratio_cpu:.2f}x", sum(s.errors for s in ss),
                         f"{med(ss, lambda s: s.foreign_cpu_s):.2f}"])
        out += [bl.markdown_table(["proxy", "req/s (median)", "req/s (range)", "CPU s / 1M req",
                                   "req/s vs HAProxy", "CPU/req vs HAProxy", "errors",
                                   "outside CPU s (median)"], rows), ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
