#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What one delivery costs the fan-out node, counted so that the machine's load does not move
the figure: user-space instructions (valgrind --tool=callgrind) and write system calls (strace
-c) of node A per delivered message, at 1 channel x 1,000 subscribers across Redis (the setup
of bench/pubsub_redis.py: subscribers on node A, publishes POSTed to node B, 1 worker each).

    /usr/bin/python3 bench/pubsub_fanout_cost.py [--duration 8] [--build-dir build] [--tool callgrind|strace|both]
        [--local]   # one node, no Redis: bench/ws_echo.py's fanout1000 (the publisher POSTs to
                    # the subscribers' node, one request in flight, a window of 4,000 deliveries)
        [--size 64] # published body bytes
        [--channels 1]  # the 1,000 subscribers spread over this many channels (10 per channel
                    # at 100: the compression of a message is shared by fewer deliveries)
        [--deflate] # subscribers agree permessage-deflate (ws_load --deflate: bodies padded with
                    # words, compressible as text is); payload_bytes_per_delivery is then what
                    # came on the wire, and compressed_share the deliveries that came compressed

The counts cover the measured phase only: callgrind is zeroed (callgrind_control -z) when the
load starts and dumped when it ends; strace is attached to node A for that phase. Run it on two
builds (--build-dir) to compare them.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl  # noqa: E402
from pubsub_redis import start_portico_node, start_redis  # noqa: E402
from ws_echo import TOKEN, start_portico_pubsub  # noqa: E402


# perf stat (natively, little overhead: strace -c slows the node enough to change how many
# messages wait per subscriber): CPU time and system calls of node A during the load.
PERF_EVENTS = ("task-clock,raw_syscalls:sys_enter,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,"
               "syscalls:sys_enter_writev,"
               "syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom")


def calls_to(text: str, functions: tuple[str, ...]) -> int:
    """Calls to `functions` in a callgrind dump (every caller's calls= lines)."""
    names: dict[str, str] = {}
    total, target = 0, False
    for line in text.splitlines():
        d = re.match(r"c?fn=\((\d+)\) (.*)", line)  # fn= and cfn= share the compressed names
        if d:
            names[d.group(1)] = d.group(2)
        if line.startswith("cfn="):
            m = re.match(r"cfn=\((\d+)\)", line)
            name = names.get(m.group(1), "") if m else line[4:].strip()
            target = name.split("'")[0] in functions
        elif line.startswith("calls=") and target:
            total += int(line[6:].split()[0])
            target = False
    return total


def wrapper(workdir: Path, binary: Path, tool: str) -> Path:
    """An executable that runs `binary` under valgrind (callgrind) or as is."""
    script = workdir / f"portico-{tool}.sh"
    if tool == "callgrind":
        out = workdir / "callgrind.out.%p"
        script.write_text(f"#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out} {binary} \"$@\"\n")
    else:
        script.write_text(f"#!/bin/sh\nexec {binary} \"$@\"\n")
    script.chmod(0o755)
    return script


def run(tool: str, build_dir: Path, duration: float, local: bool = False, size: int = 64,
        deflate: bool = False, channels: int = 1) -> dict:
    ws_load = bl.build_ws_load(build_dir)
    workdir = bl.make_workdir("fanout-cost")
    if local:
        node_a = start_portico_pubsub(wrapper(workdir, (build_dir / "portico").resolve(), tool))
        services = [node_a]
        pub_port, window = node_a.port, ["--window", "4000"]  # as ws_echo.py's fanout1000
    else:
        redis = start_redis()
        node_a = start_portico_node(wrapper(workdir, (build_dir / "portico").resolve(), tool), redis.port)
        node_b = start_portico_node(build_dir / "portico", redis.port)
        services = [node_a, node_b, redis]
        pub_port, window = node_b.port, []
    try:
        args = ["-c", "1000", "--channels", str(channels), "--pub-port", str(pub_port), "--token", TOKEN, "-s", str(size),
                "--text", "-d", str(duration)] + window + (["--deflate"] if deflate else [])
        client = bl.LoadClient(ws_load, "pubsub", node_a.port, args)
        try:
            client.ready(timeout=300)
            pid = node_a.pids()[0]
            tracer = None
            if tool == "callgrind":
                subprocess.run(["callgrind_control", "-z", str(pid)], check=True, stdout=subprocess.DEVNULL)
            elif tool == "perf":
                tracer = subprocess.Popen(["perf", "stat", "-x", ",", "-o", str(workdir / "perf.txt"), "-e", PERF_EVENTS,
                                           "-p", str(pid)], stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            else:
                tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", str(workdir / "strace.txt")],
                                          stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            res = client.go(duration + 120)
            if tool == "callgrind":
                subprocess.run(["callgrind_control", "-d", str(pid)], check=True, stdout=subprocess.DEVNULL)
            else:
                tracer.send_signal(2)
                tracer.wait(30)
        finally:
            client.close()
    finally:
        for s in services:
            s.stop()
    delivered = res["ops_total"]  # the whole GO phase, as the counts
    out = {"tool": tool, "size": size, "deflate": deflate, "channels": channels, "deliveries": delivered, "published": res.get("published")}
    if res.get("ops"):
        # Over the measured window (ops): the payload bytes each delivery put on the wire.
        out["payload_bytes_per_delivery"] = round(res.get("payload_bytes", 0) / res["ops"], 1)
        out["compressed_share"] = round(res.get("compressed", 0) / res["ops"], 3)
    if tool == "callgrind":
        dumps = sorted(glob.glob(str(workdir / "callgrind.out.*")), key=os.path.getmtime)
        summary = [d for d in dumps if re.search(r"\.\d+\.\d+$", d) or d.endswith(".1")] or dumps
        text = Path(summary[-1]).read_text(errors="replace")
        m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
        out["instructions"] = int(m.group(1)) if m else None
        out["instructions_per_delivery"] = out["instructions"] / delivered if delivered and m else None
        if delivered:
            # Allocations (malloc, calloc, realloc) and socket writes (send, sendmsg, writev):
            # one write per subscriber and flush, so writes per delivery tell how many messages
            # a flush carried under callgrind's slowdown.
            out["mallocs_per_delivery"] = calls_to(text, ("malloc", "calloc", "realloc")) / delivered
            out["writes_per_delivery"] = calls_to(text, ("send", "sendmsg", "writev")) / delivered
    elif tool == "perf":
        counts = {}
        for line in (workdir / "perf.txt").read_text().splitlines():
            f = line.split(",")
            if len(f) > 2 and f[0].replace(".", "").isdigit():
                counts[f[2].split(":")[-1]] = float(f[0])
        out["perf"] = counts
        per = {k: round(v / delivered, 4) for k, v in counts.items()} if delivered else {}
        out["per_delivery"] = per  # task-clock in ms: CPU ms per delivery (timed, so noisy)
    else:
        calls = {}
        for line in (workdir / "strace.txt").read_text().splitlines():
            f = line.split()
            if len(f) >= 5 and f[-1].isidentifier() and f[3].isdigit() and f[-1] != "total":
                calls[f[-1]] = int(f[3])
        out["syscalls"] = calls
        writes = sum(calls.get(n, 0) for n in ("write", "writev", "sendmsg", "send", "sendto"))
        out["writes_per_delivery"] = writes / delivered if delivered else None
        out["syscalls_per_delivery"] = sum(calls.values()) / delivered if delivered else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--build-dir", type=Path, default=bl.REPO_ROOT / "build")
    ap.add_argument("--tool", choices=["callgrind", "strace", "perf", "both"], default="both")
    ap.add_argument("--local", action="store_true", help="one node without Redis (ws_echo.py's fanout1000)")
    ap.add_argument("--size", type=int, default=64, help="published body bytes")
    ap.add_argument("--deflate", action="store_true", help="subscribers agree permessage-deflate")
    ap.add_argument("--channels", type=int, default=1, help="channels the 1,000 subscribers spread over")
    args = ap.parse_args()
    bl.raise_nofile_limit()
    for tool in (["callgrind", "strace"] if args.tool == "both" else [args.tool]):
        r = run(tool, args.build_dir, args.duration, args.local, args.size, args.deflate, args.channels)
        print(r, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
