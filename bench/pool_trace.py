# SPDX-License-Identifier: Apache-2.0
"""Upstream pool churn per event-loop pass, from the kernel's syscall tracepoints (perf).

Used by `tls_bench.py --diagnose pool`. A read or recv on a socket the proxy accepted while
traced is a client's (the load client connects after the tracer attached); on any other socket
it is an upstream's. So a pass (one epoll_wait return to the next) is a sequence of client
reads that returned bytes (a request: one read each, now and then two, which the replays
count as two), upstream reads (a response coming back: a connection the pool gets back),
connects (opens) and closes. From that:

- requests and responses per pass (their distribution is the load's batching shape: with more
  clients than `keepalive` a pass that reads more requests than the pool holds must open);
- opens per 1,000 requests and the share made in a pass that also closed one;
- responses handled first: the opens a pool of the same size would have made had each pass
  handled its upstream responses before its client requests (replayed from the trace), to
  tell the order within a pass from the batching itself;
- the same replay with the surplus closed when the pass ends (Portico before session 9), at
  once, oldest first (nginx), at the end of the next pass (Portico: one more poll that does
  not wait), or only before the loop waits (the floor for a pool that keeps at most
  `keepalive` idle while the loop waits), in the traced order;
- the share of opens made in a pass that began after the loop waited (its epoll_wait took
  over WAITED_US: tracing and preemption make this approximate).

No Portico code: the figures are the same for any proxy in the benchmark."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import benchlib as bl

EVENTS = ("syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait,syscalls:sys_exit_accept4,"
          "syscalls:sys_exit_accept,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,"
          "syscalls:sys_exit_read,syscalls:sys_exit_recvfrom,"
          "syscalls:sys_enter_connect,syscalls:sys_enter_close")


@dataclass
class Pass:
    """One loop pass: the order of what it did. 'R' a client request read, 'U' an upstream
    response read, 'C' a connect, 'X' a close."""
    ops: list[str] = field(default_factory=list)
    waited: bool = False  # the epoll_wait that began it blocked (the loop had nothing to do)


WAITED_US = 30  # an epoll_wait that took longer blocked: nothing was ready when it began


def parse(text: str) -> list[Pass]:
    """perf script -F tid,time,event,trace lines -> passes (the proxy's worker threads merged:
    one worker in this benchmark). A read/recv that returned <= 0 (EAGAIN, EOF) is no request
    or response."""
    passes: list[Pass] = []
    cur = Pass()
    pending: dict[str, str] = {}  # tid -> 'R'/'U' between enter and exit
    clients: set[int] = set()  # sockets accepted while traced
    wait_began = 0.0

    def value(trace: str) -> int:
        return int(trace.rsplit("0x", 1)[1].split(",")[0], 16) if "0x" in trace else -1

    def fd_of(trace: str) -> int:
        return int(trace.split("fd: 0x", 1)[1].split(",")[0], 16) if "fd: 0x" in trace else -1

    for line in text.splitlines():
        parts = line.split(None, 3)  # tid, time:, event:, trace
        if len(parts) < 3:
            continue
        tid, now, ev = parts[0], float(parts[1].rstrip(":")), parts[2]
        trace = parts[3] if len(parts) > 3 else ""
        if "sys_enter_epoll_wait" in ev:
            wait_began = now
        elif "sys_exit_epoll_wait" in ev:
            passes.append(cur)
            cur = Pass(waited=(now - wait_began) * 1e6 > WAITED_US)
        elif "sys_exit_accept" in ev:
            fd = value(trace)
            if 0 <= fd < 1 << 31:
                clients.add(fd)
        elif "sys_enter_read" in ev or "sys_enter_recvfrom" in ev:
            pending[tid] = "R" if fd_of(trace) in clients else "U"
        elif "sys_exit_read" in ev or "sys_exit_recvfrom" in ev:
            kind = pending.pop(tid, None)
            ret = value(trace)
            if kind and 0 < ret < 1 << 63:
                cur.ops.append(kind)
        elif "sys_enter_connect" in ev:
            clients.discard(fd_of(trace))
            cur.ops.append("C")
        elif "sys_enter_close" in ev:
            clients.discard(fd_of(trace))
            cur.ops.append("X")
    passes.append(cur)
    return passes


def replay(passes: list[Pass], keepalive: int, order: str, close: str) -> int:
    """Opens a pool of `keepalive` idle connections makes over the traced requests/responses.
    order: 'traced' or 'responses_first' (within each pass); close: 'pass_end' (surplus closed
    when the pass ends), 'at_once' (on return, when the pool is full: nginx), 'next_pass' (at
    the end of the pass after the one in which the pool went over the limit: Portico now) or
    'at_wait' (only before the loop waits: the floor for any pool that keeps at most
    `keepalive` idle while the loop waits, on these passes). Starts with a full pool
    and every traced response's connection in use (the first responses need one: counted
    from the trace's first pass)."""
    idle = keepalive
    opens = 0
    due = False  # next_pass: a trim armed in an earlier pass runs when this one ends
    for i, p in enumerate(passes):
        ops = [o for o in p.ops if o in "RU"]
        if order == "responses_first":
            ops = sorted(ops, key=lambda o: o != "U")
        armed = False
        for o in ops:
            if o == "R":
                if idle:
                    idle -= 1
                else:
                    opens += 1
            else:
                idle += 1
                if idle > keepalive:
                    if close == "at_once":
                        idle = keepalive
                    armed = True
        waits_next = i + 1 == len(passes) or passes[i + 1].waited
        if close == "at_wait":
            if waits_next:
                idle = min(idle, keepalive)
        elif close == "pass_end" or due or (armed and waits_next):
            # (next_pass, armed: a loop that waits next found nothing in the poll that does not)
            idle = min(idle, keepalive)
            due = False
        elif armed:
            due = True
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
    # Opens in a pass that began after the loop had waited (nothing to do): before that wait the
    # pool had to come down to keepalive whatever its policy, so these are the benchmark's (the
    # proxy waited for its clients while more than keepalive of them were between requests).
    after_wait = sum(p.ops.count("C") for p in passes if p.waited)
    return {
        "opens_after_wait_pct": 100 * after_wait / max(connects, 1),
        "requests": requests,
        "passes_per_1k": 1000 * len(passes) / n,
        "requests_per_pass_p50": pct(0.5), "requests_per_pass_p90": pct(0.9), "requests_per_pass_max": pct(1.0),
        "passes_over_keepalive_pct": 100 * over / max(len(busy), 1),
        "opens_per_1k": 1000 * connects / n,
        "opens_in_closing_pass_pct": 100 * in_closing / max(connects, 1),
        "replay_pass_end_per_1k": 1000 * replay(passes, keepalive, "traced", "pass_end") / n,
        "replay_at_once_per_1k": 1000 * replay(passes, keepalive, "traced", "at_once") / n,
        "replay_responses_first_per_1k": 1000 * replay(passes, keepalive, "responses_first", "pass_end") / n,
        "replay_next_pass_per_1k": 1000 * replay(passes, keepalive, "traced", "next_pass") / n,
        "replay_at_wait_per_1k": 1000 * replay(passes, keepalive, "traced", "at_wait") / n,
    }


def trace(svc: bl.Service, load: Callable[[], bl.LoadResult], keepalive: int) -> tuple[dict[str, float], bl.LoadResult]:
    data = Path(svc.workdir) / "pool.data"
    rec = bl._attach(["perf", "record", "-q", "-o", str(data), "-e", EVENTS,
                      "-p", ",".join(str(p) for p in svc.pids())], Path(svc.workdir) / "perf-pool.log")
    try:
        r = load()
    finally:
        bl._detach(rec)
    text = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid,time,event,trace"],
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
            f"({fig['opens_in_closing_pass_pct']:.1f}% in a pass that closed one, "
            f"{fig['opens_after_wait_pct']:.0f}% in a pass after the loop waited); the same passes replayed "
            f"(opens / 1k): surplus closed at pass end {fig['replay_pass_end_per_1k']:.0f}, at once "
            f"{fig['replay_at_once_per_1k']:.0f}, at the end of the next pass {fig['replay_next_pass_per_1k']:.0f}, "
            f"responses handled first {fig['replay_responses_first_per_1k']:.0f}; only before the loop waits "
            f"(the floor for `keepalive` idle while it waits) {fig['replay_at_wait_per_1k']:.0f}")
