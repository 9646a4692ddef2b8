#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""WebSocket costs that a busy shared machine cannot blur: instructions (callgrind), syscalls
(strace -c -f) and RSS per idle connection, for Portico (tunnel, frames, the built-in echo) and
nginx measured the same way in the same run.

    /usr/bin/python3 bench/ws_counts.py [--portico-bin build/portico] [--what ir,syscalls,idle]
        [--proxies nginx,portico-tunnel,portico-frames,portico-echo] [--idle-conns 10000]
        (also portico-uring, portico-frames-uring: tunnel and frames with io_uring: on)
        [--tls]    # also idle wss:// (Portico and nginx, TLS 1.3, one self-signed certificate)

- ir: each proxy runs under `valgrind --tool=callgrind`; ws_load sets its connections up, the
  counters are zeroed (callgrind_control -z), the load runs, they are dumped (-d). Instructions
  per 64-byte message relayed (8 connections, one message in flight each; a proxied echo is two
  relayed messages, to the backend and back; the built-in echo answers each message once) and
  per upgrade (4 clients: connect, upgrade, close handshake). User space only. The top
  functions by self cost are printed, and the allocations (calls to malloc, calloc, realloc)
  per operation.
- syscalls: the same loads, natively, with `strace -c -f` attached: syscalls per message and per
  upgrade, by name.
- idle: a fresh proxy per contender, --idle-conns upgraded connections (one echo each first),
  RSS of all its processes with them open minus before, per connection.

Figures land in bench/RESULTS.md ("Counted, not timed"). Every process started is stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import ws_echo as we  # noqa: E402

PROXIES = ["nginx", "portico-tunnel", "portico-frames", "portico-echo"]


def start_portico_echo(binary: Path, wrap: list[str]) -> bl.Service:
    port = bl.free_port()
    yaml_text = we.portico_head(port) + """routes:
  - path: /healthz
    handler: health
  - path: /
    handler: echo
"""
    svc = bl.started(bl.start_portico("portico-echo", binary, yaml_text, ready_port=port, ready_path="/healthz",
                                      wrap=wrap))
    svc.port = port
    return svc


def starters(binary: Path, backend: int, wrap: list[str]) -> dict:
    return {
        "nginx": lambda: we.start_nginx(backend, wrap=wrap),
        "portico-tunnel": lambda: we.start_portico_ws(binary, backend, "tunnel", wrap=wrap),
        "portico-frames": lambda: we.start_portico_ws(binary, backend, "frames", wrap=wrap),
        "portico-echo": lambda: start_portico_echo(binary, wrap),
        # Not in the default list: the tunnel with `io_uring: on` (src/net/uring/).
        "portico-uring": lambda: we.start_portico_ws(binary, backend, "tunnel", wrap=wrap, name="portico-uring",
                                                     extra="io_uring: on\n"),
        "portico-frames-uring": lambda: we.start_portico_ws(binary, backend, "frames", wrap=wrap,
                                                            name="portico-frames-uring", extra="io_uring: on\n"),
    }


LOADS = {
    "message": ("echo", ["-c", "8", "-s", "64"]),
    "upgrade": ("upgrades", ["-c", "4"]),
}


def per_op(name: str, what: str) -> int:
    """Operations per completed ws_load operation: a proxied echo crosses the proxy twice (to
    the backend and back), and is counted per crossing; Portico's built-in echo answers once."""
    return 2 if what == "message" and name != "portico-echo" else 1


def run_load(ws_load: Path, svc: bl.Service, mode: str, cargs: list[str], seconds: float,
             before=None, after=None) -> dict:
    client = bl.LoadClient(ws_load, mode, svc.port, [*cargs, "-d", str(seconds)])
    try:
        client.ready(timeout=300)
        if before:
            before()
        res = client.go(seconds + 120)
        if after:
            after()
        return res
    finally:
        client.close()


def measure_ir(ws_load: Path, start, name: str, what: str, seconds: float, workdir: Path) -> dict:
    mode, cargs = LOADS[what]
    crossings = per_op(name, what)
    cg = bl.Callgrind(workdir, f"{name}.{what}")
    svc = start(cg.wrap())
    dump = None
    try:
        # nginx runs without a master under valgrind: svc.pid is the process that does the work.
        pid = svc.pid

        def after():
            nonlocal dump
            dump = cg.dump(pid)

        res = run_load(ws_load, svc, mode, cargs, seconds, before=lambda: cg.zero(pid), after=after)
    finally:
        svc.stop(timeout=30)
    ops = res["ops_total"]
    if res["errors"]:
        bl.log(f"{name} {what}: {res['errors']} errors under valgrind")
    return {"ops": ops, "ir_per_op": cg.total(dump) / ops / crossings, "top": cg.top(dump, ops * crossings),
            "allocs_per_op": cg.allocations(dump) / ops / crossings, "dump": dump}


def measure_syscalls(ws_load: Path, start, name: str, what: str, seconds: float) -> dict:
    mode, cargs = LOADS[what]
    crossings = per_op(name, what)
    svc = start([])
    try:
        calls, r = bl.strace_counts(svc, lambda: bl.as_load_result(run_load(ws_load, svc, mode, cargs, seconds)))
    finally:
        svc.stop()
    ops = max(r.requests, 1) * crossings
    return {"ops": r.requests, "total": sum(calls.values()) / ops,
            "by_name": {k: v / ops for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v / ops >= 0.005}}


def measure_idle(ws_load: Path, start, n: int) -> dict:
    svc = start([])
    try:
        time.sleep(0.5)
        rss0 = svc.rss()
        client = bl.LoadClient(ws_load, "idle", svc.port, ["-c", str(n)])
        try:
            ready = client.ready(timeout=300)
            time.sleep(1.0)
            rss1 = svc.rss()
            client.go(60)
        finally:
            client.close()
    finally:
        svc.stop()
    held = n - ready["failed"]
    if held < 0.99 * n:
        raise RuntimeError(f"{ready['failed']} of {n} idle connections failed")
    return {"rss0": rss0, "rss1": rss1, "per_conn": (rss1 - rss0) / held, "held": held}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico-bin", default=str(bl.REPO_ROOT / "build" / "portico"))
    ap.add_argument("--ws-load", help="a prebuilt ws_load (default: built into build-bench/)")
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--what", default="ir,syscalls,idle")
    ap.add_argument("--seconds", type=float, default=4.0, help="per counted load run")
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--loads", default="message,upgrade", help="which of the ir/syscalls loads to run")
    args = ap.parse_args()
    bl.raise_nofile_limit()
    ws_load = Path(args.ws_load) if args.ws_load else bl.build_ws_load(bl.REPO_ROOT / "build-bench")
    binary = Path(args.portico_bin).resolve()
    proxies = [p for p in args.proxies.split(",") if p]
    what = set(args.what.split(","))
    backend = bl.start_ws_backend(ws_load)
    workdir = bl.make_workdir("ws-counts")
    print(f"Portico {bl.git_revision()} ({binary}); {bl.tool_version(['nginx', '-v'])}; "
          f"{bl.machine_summary()}")
    try:
        for p in proxies:
            mk = lambda wrap, p=p: starters(binary, backend.port, wrap)[p]()  # noqa: E731
            for load in [x for x in ("message", "upgrade") if x in args.loads.split(",")]:
                if "ir" in what:
                    r = measure_ir(ws_load, mk, p, load, args.seconds, workdir)
                    print(f"\n{p} {load}: {r['ir_per_op']:,.0f} Ir and {r['allocs_per_op']:.1f} allocations per {load} "
                          f"({r['ops']} under callgrind; {r['dump']})")
                    print("\n".join("    " + t for t in r["top"]))
                if "syscalls" in what:
                    r = measure_syscalls(ws_load, mk, p, load, args.seconds)
                    per = ", ".join(f"{k} {v:.2f}" for k, v in r["by_name"].items())
                    print(f"{p} {load}: {r['total']:.2f} syscalls per {load} = {per}")
            if "idle" in what:
                r = measure_idle(ws_load, mk, args.idle_conns)
                print(f"{p} idle: {r['per_conn'] / 1000:.2f} KB per connection "
                      f"(RSS {r['rss0'] / 2**20:.1f} -> {r['rss1'] / 2**20:.1f} MiB, {r['held']} conns)")
            sys.stdout.flush()
    finally:
        backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
