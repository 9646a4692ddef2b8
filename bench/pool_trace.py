# SPDX-License-Identifier: Apache-2.0
"""Upstream pool churn per event-loop pass, from the kernel's syscall tracepoints (perf).

Used by `tls_bench.py --diagnose pool`. Every proxy here reads its TLS clients with read(2) and
its plain upstream connections with recv/recvfrom(2), so a pass (one epoll_wait return to the
next) is a sequence of client reads (a request, or the EAGAIN after one), upstream reads (a
response coming back: a connection the pool gets back), connects (opens) and closes. From that:

- requests and responses per pass (their distribution is the load's batching shape: with more
  clients than `keepalive` a pass that reads more requests than the pool holds must open);
- opens per 1,000 requests and the share made in a pass that also closed one;
- `opens_if_responses_first`: the opens a pool of the same size would have made had each pass
  handled its upstream responses before its client requests (replayed from the trace), to
  tell the order within a pass from the batching itself;
- `opens_if_close_at_pass_end` / `opens_if_close_at_once`: the same replay with the surplus
  closed when the pass ends (Portico) or at once, oldest first (nginx), in the traced order.

No Portico code: the figures are the same for any proxy in the benchmark."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import benchlib as bl

EVENTS = ("syscalls:sys_exit_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,"
          "syscalls:sys_exit_read,syscalls:sys_exit_recvfrom,"
          "syscalls:sys_enter_connect,syscalls:sys_enter_close")


@dataclass
class Pass:
    """One loop pass: the order of what it did. 'R' a client request read, 'U' an upstream
    response read, 'C' a connect, 'X' a close."""
    ops: list[str] = field(default_factory=list)


def parse(text: str) -> list[Pass]:
    """perf script -F tid,event,trace lines -> passes (the proxy's worker threads merged: one
    worker in this benchmark). A read/recv that returned <= 0 (EAGAIN, EOF) is no request or
    response."""
    passes: list[Pass] = []
    cur = Pass()
    pending: dict[str, str] = {}  # tid -> 'R'/'U' between enter and exit
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        tid, ev = parts[0], parts[1]
        if "sys_exit_epoll_wait" in ev:
            passes.append(cur)
            cur = Pass()
        elif "sys_enter_read" in ev:
            pending[tid] = "R"
        elif "sys_enter_recvfrom" in ev:
            pending[tid] = "U"
        elif "sys_exit_read" in ev or "sys_exit_recvfrom" in ev:
            kind = pending.pop(tid, None)
            ret = int(line.rsplit("0x", 1)[1], 16) if "0x" in line else 0
            if kind and 0 < ret < 1 << 63:
                cur.ops.append(kind)
        elif "sys_enter_connect" in ev:
            cur.ops.append("C")
        elif "sys_enter_close" in ev:
            cur.ops.append("X")
    passes.append(cur)
    return [p for p in passes if p.ops]


def replay(passes: list[Pass], keepalive: int, order: str, close: str) -> int:
    """Opens a pool of `keepalive` idle connections makes over the traced requests/responses.
    order: 'traced' or 'responses_first' (within each pass); close: 'pass_end' (surplus closed
    when the pass ends) or 'at_once' (on return, when the pool is full). Starts with a full pool
    and every traced response's connection in use (the first responses need one: counted
    from the trace's first pass)."""
    idle = keepalive
    opens = 0
    for p in passes:
        ops = [o for o in p.ops if o in "RU"]
        if order == "responses_first":
            ops = sorted(ops, key=lambda o: o != "U")
        for o in ops:
            if o == "R":
                if idle:
                    idle -= 1
                else:
                    opens += 1
            else:
                idle += 1
                if close == "at_once" and idle > keepalive:
                    idle = keepalive
        idle = min(idle, keepalive)
    return opens


def figures(passes: list[Pass], keepalive: int) -> dict[str, float]:
    requests = sum(p.ops.count("R") for p in passes)
    n = max(requests, 1)
    connects = sum(p.ops.count("C") for p in passes)
    in_closing = sum(min(p.ops.count("C"), p.ops.count("X")) for p in passes)
    per_pass = sorted(p.ops.count("R") for p in passes)
    busy = [r for r in per_pass if r]

    def pct(q: float) -> int:
        return busy[min(len(busy) - 1, int(q * len(busy)))] if busy else 0

    over = sum(1 for r in busy if r > keepalive)
    return {
        "requests": requests,
        "passes_per_1k": 1000 * len(passes) / n,
        "requests_per_pass_p50": pct(0.5), "requests_per_pass_p90": pct(0.9), "requests_per_pass_max": pct(1.0),
        "passes_over_keepalive_pct": 100 * over / max(len(busy), 1),
        "opens_per_1k": 1000 * connects / n,
        "opens_in_closing_pass_pct": 100 * in_closing / max(connects, 1),
        "replay_pass_end_per_1k": 1000 * replay(passes, keepalive, "traced", "pass_end") / n,
        "replay_at_once_per_1k": 1000 * replay(passes, keepalive, "traced", "at_once") / n,
        "replay_responses_first_per_1k": 1000 * replay(passes, keepalive, "responses_first", "pass_end") / n,
    }


def trace(svc: bl.Service, load: Callable[[], bl.LoadResult], keepalive: int) -> tuple[dict[str, float], bl.LoadResult]:
    data = Path(svc.workdir) / "pool.data"
    rec = bl._attach(["perf", "record", "-q", "-o", str(data), "-e", EVENTS,
                      "-p", ",".join(str(p) for p in svc.pids())], Path(svc.workdir) / "perf-pool.log")
    try:
        r = load()
    finally:
        bl._detach(rec)
    text = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid,event,trace"],
                          capture_output=True, text=True).stdout
    dump = os.environ.get("POOL_TRACE_DUMP")  # a directory: each proxy's passes, one line each
    passes = parse(text)
    if dump:
        (Path(dump) / f"{svc.name}.passes").write_text("\n".join("".join(p.ops) for p in passes))
    return figures(passes, keepalive), r


def describe(name: str, fig: dict[str, float]) -> str:
    return (f"{name}: {fig['requests']:.0f} requests, {fig['passes_per_1k']:.0f} passes / 1k; requests per pass "
            f"p50 {fig['requests_per_pass_p50']:.0f} p90 {fig['requests_per_pass_p90']:.0f} "
            f"max {fig['requests_per_pass_max']:.0f}, {fig['passes_over_keepalive_pct']:.1f}% of passes read more "
            f"requests than keepalive; opens / 1k requests {fig['opens_per_1k']:.0f} "
            f"({fig['opens_in_closing_pass_pct']:.1f}% in a pass that closed one); the same passes replayed "
            f"(opens / 1k): surplus closed at pass end {fig['replay_pass_end_per_1k']:.0f}, at once "
            f"{fig['replay_at_once_per_1k']:.0f}, responses handled first {fig['replay_responses_first_per_1k']:.0f}")
