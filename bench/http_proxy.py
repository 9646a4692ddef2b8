#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 reverse-proxy benchmark: nginx vs HAProxy vs Portico in front of one fast backend.

    /usr/bin/python3 bench/http_proxy.py                      # builds Release into build-bench/
    PORTICO_BIN=build/portico /usr/bin/python3 bench/http_proxy.py --rounds 7
    /usr/bin/python3 bench/http_proxy.py --proxies nginx,haproxy   # without Portico

    /usr/bin/python3 bench/http_proxy.py --workers 1 --rounds 1 --diagnose strace,perf
    /usr/bin/python3 bench/http_proxy.py --from-json bench/results/http_proxy.json

One backend (nginx, `return 200` of a short body, keep-alive on) serves all the proxies. For
each worker count, the proxies run side by side on their own ports with the same worker count,
keep-alive to the upstream (32 idle connections per worker) and logging off; with 1 worker the
bare byte relay of bench/ws_load runs too, as the floor. After a warm-up run each,
`wrk --latency` hits them in alternation for --rounds rounds (the order rotates every round).
Before each run the script waits for the machine to be quiet (--max-foreign) and takes the
machine-wide benchmark lock (benchlib.acquire_run_lock). Per run the proxy's CPU (utime+stime
of all its processes, /proc/PID/stat) is sampled before and after and divided by the requests
wrk completed. The medians go to stdout as a markdown table ready for bench/RESULTS.md;
progress goes to stderr. Every process started is stopped on exit, on SIGINT/SIGTERM/SIGHUP
and on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

BODY = "hello from the bench backend\n"  # 29 bytes


STATUS_PATH = "/__bench_status"  # the backend's stub_status: counts upstream connections opened


def start_backend(workers: int) -> bl.Service:
    port = bl.free_port()
    http = f"""
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{ default_type text/plain; return 200 "{BODY.strip()}\\n"; }}
        location = {STATUS_PATH} {{ stub_status; }}
    }}"""
    return bl.start_nginx("backend", workers, http, ready_port=port)


def start_nginx_proxy(workers: int, backend_port: int, keepalive: int, wrap: list[str] = ()) -> bl.Service:
    # reuseport: one listening socket per worker, as Portico does with SO_REUSEPORT, so the
    # kernel spreads wrk's long-lived connections over the workers.
    port = bl.free_port()
    http = f"""
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive {keepalive};
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""
    return bl.start_nginx("nginx", workers, http, ready_port=port, wrap=wrap)


def start_haproxy_proxy(workers: int, backend_port: int, keepalive: int, wrap: list[str] = ()) -> bl.Service:
    port = bl.free_port()
    sections = f"""
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    # pool-max-conn counts idle connections per server over all threads; nginx and Portico
    # count theirs per worker.
    server app 127.0.0.1:{backend_port} pool-max-conn {keepalive * workers}
"""
    return bl.start_haproxy("haproxy", workers, sections, ready_port=port, wrap=wrap)


def start_portico_proxy(workers: int, backend_port: int, keepalive: int, binary: Path,
                        wrap: list[str] = (), io_uring: str = "off", name: str = "portico") -> bl.Service:
    """Portico proxying to the backend; `io_uring: on` (contender portico-uring) puts its plain
    client and upstream sockets on the worker's ring."""
    port = bl.free_port()
    yaml_text = f"""
workers: {workers}
io_uring: {io_uring}
log:
  level: warn
  access: off
listeners:
  - address: 127.0.0.1:{port}
upstreams:
  backend:
    servers: [127.0.0.1:{backend_port}]
    keepalive: {keepalive}
routes:
  - path: /
    upstream: backend
"""
    return bl.start_portico(name, binary, yaml_text, ready_port=port, wrap=wrap)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default="nginx,haproxy,portico,relay",
                    help="comma-separated subset of nginx,haproxy,portico,relay (default: all); "
                         "relay = bench/ws_load's bare byte relay, one connection upstream per "
                         "client connection, single-threaded: the floor, run with 1 worker only; "
                         "also relay-uring: the same relay on io_uring, and portico-uring: Portico "
                         "with `io_uring: on` (not in the default)")
    ap.add_argument("--ws-load", help="ws_load binary for the relay (default: build "
                                      "bench/ws_load/ws_load.cpp into --build-dir/ws_load/)")
    ap.add_argument("--workers", default="1,2", help="worker counts to run (default: 1,2)")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds (default: 5)")
    ap.add_argument("--duration", type=int, default=5.0, help="seconds per wrk run (default: 5)")
    ap.add_argument("--warmup", type=int, default=2.0, help="seconds of warm-up per proxy (default: 2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c (default: 32)")
    ap.add_argument("--keepalive", type=int, default=32,
                    help="idle upstream connections kept per worker (default: 32). Below the "
                         "number of client connections a worker holds, proxies open and close "
                         "upstream connections under load (see the 'upstream conns' column)")
    ap.add_argument("--threads", type=int, default=1, help="wrk -t (default: 1)")
    ap.add_argument("--backend-workers", type=int, default=1, help="backend nginx workers (default: 1)")
    ap.add_argument("--portico-bin", default=os.environ.get("PORTICO_BIN"),
                    help="Portico binary (default: $PORTICO_BIN, else build Release into --build-dir)")
    ap.add_argument("--build-dir", default=str(bl.REPO_ROOT / "build-bench"))
    ap.add_argument("--max-foreign", type=float, default=0.10,
                    help="before each run wait (up to 5 min) until processes outside the benchmark "
                         "use at most this share of a core (default: 0.10; negative: never wait)")
    ap.add_argument("--quiet-timeout", type=float, default=300,
                    help="longest wait for a quiet machine before a run, seconds (default: 300)")
    ap.add_argument("--diagnose", default="",
                    help="after the measured rounds, extra runs per proxy with tools attached: "
                         "comma-separated strace (syscalls per request), perf (CPU profile); "
                         "these runs are slowed by the tools and not part of the table")
    ap.add_argument("--json", help="also write every sample to this JSON file")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: print the report of a run saved with --json")
    ap.add_argument("--charts", metavar="DIR",
                    help="also draw one SVG per worker count into DIR (bench/charts.py; needs python3-matplotlib)")
    args = ap.parse_args()
    charts_dir = args.charts
    args.argv = sys.argv[1:]
    args.commit = bl.git_revision()  # of the source the Portico binary was built from

    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        args = ap.parse_args(saved["argv"])
        args.argv = saved["argv"]
        args.commit = saved.get("commit", "?")
        results = {int(w): {p: [bl.Sample(**d) for d in ss] for p, ss in per.items()}
                   for w, per in saved["results"].items()}
        proxies = list(next(iter(results.values())).keys())
        print_report(results, proxies, args, {}, {})
        draw_charts(saved, charts_dir)
        return 0

    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    unknown = set(proxies) - {"nginx", "haproxy", "portico", "portico-uring", "relay", "relay-uring"}
    if unknown or not proxies:
        ap.error(f"unknown proxies: {', '.join(sorted(unknown))}")
    worker_counts = [int(w) for w in args.workers.split(",")]

    portico_bin = None
    if any(p.startswith("portico") for p in proxies):
        if args.portico_bin:
            portico_bin = Path(args.portico_bin).resolve()
        else:
            bl.log(f"building Portico (Release) in {args.build_dir}")
            portico_bin = bl.build_portico(Path(args.build_dir))
        if not os.access(portico_bin, os.X_OK):
            ap.error(f"no Portico binary at {portico_bin}")

    bl.raise_nofile_limit()
    backend = start_backend(args.backend_workers)
    bl.log(f"backend nginx ({args.backend_workers} worker) on port {backend.port}")

    relay_bin = None
    if any(p.startswith("relay") for p in proxies):
        relay_bin = Path(args.ws_load) if args.ws_load else bl.build_ws_load(Path(args.build_dir))

    starters = {
        "relay": lambda w: bl.start_relay(relay_bin, backend.port),
        "relay-uring": lambda w: bl.start_relay(relay_bin, backend.port, "relay-uring"),
        "nginx": lambda w: start_nginx_proxy(w, backend.port, args.keepalive),
        "haproxy": lambda w: start_haproxy_proxy(w, backend.port, args.keepalive),
        "portico": lambda w: start_portico_proxy(w, backend.port, args.keepalive, portico_bin),
        "portico-uring": lambda w: start_portico_proxy(w, backend.port, args.keepalive, portico_bin,
                                                       io_uring="on", name="portico-uring"),
    }

    def load(port: int, duration: float):
        return lambda: bl.run_wrk(f"http://127.0.0.1:{port}/", threads=args.threads,
                                  connections=args.connections, duration=duration)

    status_reads = 0

    def backend_counters() -> dict[str, float]:
        # every status GET is itself one accepted connection and one request: leave them out.
        nonlocal status_reads
        status_reads += 1
        c = bl.nginx_stub_status(backend.port, STATUS_PATH)
        return {"upstream_conns": c["accepts"] - status_reads,
                "upstream_reqs": c["requests"] - status_reads}

    results: dict[int, dict[str, list[bl.Sample]]] = {}
    syscalls: dict[int, dict[str, dict[str, float]]] = {}  # workers -> proxy -> name -> per req
    profiles: dict[int, dict[str, str]] = {}
    for workers in worker_counts:
        contenders = [p for p in proxies if not p.startswith("relay") or workers == 1]
        services = {p: starters[p](workers) for p in contenders}
        for p, svc in services.items():
            bl.log(f"{p} ({workers} worker{'s' if workers > 1 else ''}) on port {svc.port}, "
                   f"pids {svc.pids()}")
            status, raw = bl.http_get(svc.port)
            if status != 200 or not raw.endswith(BODY.encode()):
                raise RuntimeError(f"{p}: unexpected answer {raw[:200]!r}")
            warm = bl.measure(svc, load(svc.port, args.warmup))
            bl.log(f"warm-up {p}: {warm.rps:.0f} req/s")
        def run_one(p: str, r: int) -> bl.Sample:
            def once() -> bl.Sample:
                if args.max_foreign >= 0:
                    bl.wait_quiet(args.max_foreign, own=[backend, *services.values()],
                                  timeout=args.quiet_timeout)
                return bl.measure(services[p], load(services[p].port, args.duration), r,
                                  backend_counters, helpers=[backend])
            return bl.unless_noisy(once, args.duration, args.max_foreign)

        results[workers] = bl.alternate(contenders, args.rounds, run_one)
        for tool in [t for t in args.diagnose.split(",") if t]:
            for p, svc in services.items():
                bl.log(f"{tool} on {p} ({workers} workers)")
                if tool == "strace":
                    calls, r = bl.strace_counts(svc, load(svc.port, args.duration))
                    syscalls.setdefault(workers, {})[p] = {k: v / r.requests for k, v in calls.items()}
                elif tool == "perf":
                    text, _ = bl.perf_profile(svc, load(svc.port, args.duration))
                    profiles.setdefault(workers, {})[p] = text
                else:
                    raise SystemExit(f"unknown --diagnose tool {tool}")
        for svc in services.values():
            svc.stop()
    backend.stop()

    print_report(results, proxies, args, syscalls, profiles)

    record = {"argv": sys.argv[1:], "commit": args.commit,
              "results": {str(w): {p: [s.__dict__ for s in ss] for p, ss in per.items()}
                          for w, per in results.items()}}
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1))
    draw_charts(json.loads(json.dumps(record)), charts_dir)
    return 0


def draw_charts(record: dict, charts_dir: str | None) -> None:
    """The charts of a run (the same record --json writes) into charts_dir, if given."""
    if charts_dir:
        import charts  # bench/charts.py: only this needs matplotlib
        for path in charts.http_charts(record, Path(charts_dir)):
            print(f"chart: {path}")


def print_report(results: dict[int, dict[str, list[bl.Sample]]], proxies: list[str],
                 args: argparse.Namespace, syscalls: dict, profiles: dict) -> None:
    """The markdown for bench/RESULTS.md on stdout."""
    header = ["Proxy", "Workers", "req/s", "p99 (ms)", "CPU s / 1M req (min-max)",
              "req/s vs nginx", "p99 vs nginx", "CPU vs nginx", "upstream conns opened"]
    rows = []
    errors = 0
    all_samples = [s for per in results.values() for ss in per.values() for s in ss]
    for workers, per in results.items():
        base = per.get("nginx")
        for p in [p for p in proxies if p in per]:
            ss = per[p]
            errors += sum(s.errors for s in ss)
            lo, hi = bl.spread(s.cpu_per_million for s in ss)

            def vs(value) -> str:
                return f"{bl.paired_ratio(ss, base, value):.2f}x" if base else "-"

            rows.append([p, workers, f"{bl.median(s.rps for s in ss):,.0f}",
                         f"{bl.median(s.p99_ms for s in ss):.2f}",
                         f"{bl.median(s.cpu_per_million for s in ss):.2f} ({lo:.1f}-{hi:.1f})",
                         vs(lambda s: s.rps), vs(lambda s: s.p99_ms),
                         vs(lambda s: s.cpu_per_million),
                         f"{bl.median(s.extra.get('upstream_conns', 0) for s in ss):.0f}"])

    cmd = " ".join(shlex.quote(a) for a in ["/usr/bin/python3", "bench/http_proxy.py", *args.argv])
    if args.portico_bin and "PORTICO_BIN" in os.environ and "--portico-bin" not in args.argv:
        cmd = f"PORTICO_BIN={shlex.quote(os.environ['PORTICO_BIN'])} {cmd}"
    rounds = len(next(iter(next(iter(results.values())).values())))
    print(bl.markdown_table(header, rows))
    print()
    print(f"Medians of {rounds} alternating rounds of `wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration:g}s --latency` per row after a {args.warmup:g} s warm-up; one backend "
          f"(nginx, {args.backend_workers} worker, `return 200`, {len(BODY)}-byte body). CPU = "
          f"utime+stime of all the proxy's processes per million requests. The \"vs nginx\" "
          f"columns are medians of per-round ratios (each run against nginx's run in the same "
          f"round). Upstream conns opened = connections the backend accepted during a run "
          f"(median; up to one per client connection comes from requests cut off when wrk stops; "
          f"far more means the proxy churns upstream connections; keepalive {args.keepalive} per "
          f"worker).")
    print(bl.noise_line(all_samples, args.duration))
    print(f"Errors (socket errors + non-2xx) over all runs: {errors}.")
    print(f"Machine: {bl.machine_summary()}. {bl.tool_version(['nginx', '-v'])}; "
          f"{bl.tool_version(['haproxy', '-v'])}; {bl.tool_version(['wrk', '-v'])}.")
    if any(p.startswith("portico") for p in proxies):
        print(f"Portico built from commit {args.commit}"
              f"{' (or the binary given)' if args.portico_bin else ''}.")
    print()
    print(f"Command: `{cmd}`")

    for workers, per in syscalls.items():
        print()
        print(f"Syscalls per request ({workers} worker{'s' if workers > 1 else ''}, one "
              f"{args.duration} s run each under `strace -c -f`):")
        print()
        names = sorted({n for calls in per.values() for n in calls},
                       key=lambda n: -max(c.get(n, 0) for c in per.values()))
        names = [n for n in names if max(c.get(n, 0) for c in per.values()) >= 0.01]
        rows = [[n] + [f"{per[p].get(n, 0):.2f}" for p in per] for n in names]
        rows.append(["**total**"] + [f"{sum(per[p].values()):.2f}" for p in per])
        print(bl.markdown_table(["syscall", *per.keys()], rows))
    for workers, per in profiles.items():
        for p, text in per.items():
            print()
            print(f"perf profile of {p} ({workers} worker{'s' if workers > 1 else ''}), self time, "
                  f"symbols at 1% or more:")
            print("```")
            print(text)
            print("```")



if __name__ == "__main__":
    sys.exit(main())
