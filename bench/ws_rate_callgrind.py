#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What `websocket.rate` (and `websocket.trace`) cost per message in frames mode, counted in
instructions (callgrind), so the figure does not depend on the machine's load.

    /usr/bin/python3 bench/ws_rate_callgrind.py [--messages 20000] [--batch 100] [--trace]

Runs build/portico (PORTICO_BIN) under valgrind --tool=callgrind twice, 1 worker, a frames
route to tests/peers/raw_ws_backend.py (echo): once without a rate, once with a rate too high to
trip (1000000/s, 1000MiB/s). A raw client sends 32-byte text messages in batches and reads the
echoes. Prints the inclusive instructions of FrameRelay::pump and of the whole process per
relayed message (each message is relayed twice: to the backend and back). --trace adds a run
with `trace: true` (at its default trace_rate, so nearly every line is counted, not written).
Run it with PORTICO_BIN set to two builds to compare them.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

import portico_harness  # noqa: E402
import ws_client  # noqa: E402
from ws_peers import PeerProcess  # noqa: E402


def run(rate, messages, batch, workdir, trace=False):
    backend = PeerProcess(["/usr/bin/python3", os.path.join(ROOT, "tests", "peers", "raw_ws_backend.py"),
                           "--port", "0"], name="raw ws backend").start()
    ws = {"mode": "frames", "ping_interval": 0}
    if rate:
        ws["rate"] = {"messages": "1000000/s", "bytes": "1000MiB/s"}
    if trace:
        ws["trace"] = True
    cfg = portico_harness.make_config(routes=[{"path": "/ws/", "upstream": "app", "websocket": ws}],
                                      upstreams={"app": {"servers": [backend.address]}},
                                      workers=1, access="off")
    conf = os.path.join(workdir, "portico.yaml")
    with open(conf, "w") as f:
        f.write(portico_harness.to_yaml(cfg))
    out = os.path.join(workdir, "callgrind.%s%s" % ("rate" if rate else "norate", ".trace" if trace else ""))
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                          os.environ.get("PORTICO_BIN", os.path.join(ROOT, "build", "portico")), "-c", conf],
                         stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in p.stderr:
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        # Keep reading the error log (trace lines) so that Portico never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
        c = ws_client.WsConnection.connect(port, "/ws/", timeout=60)
        frame = ws_client.build_frame(ws_client.OP_TEXT, b"x" * 32)
        for _ in range(messages // batch):
            c.send_raw(frame * batch)
            for _ in range(batch):
                c.recv_frame(60)
        c.send_close(1000)
        c.read_until_eof(10)
    finally:
        p.terminate()
        p.wait(60)
        backend.stop()
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))
    pump = int(re.search(r"([\d,]+) \([\d.]+%\)\s+\S*FrameRelay::pump", text).group(1).replace(",", ""))
    return total, pump


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--trace", action="store_true", help="also measure websocket.trace: true")
    args = ap.parse_args()
    relayed = 2 * args.messages
    variants = [("no rate", False, False), ("rate", True, False)]
    if args.trace:
        variants.append(("trace", False, True))
    with tempfile.TemporaryDirectory() as d:
        for name, rate, trace in variants:
            total, pump = run(rate, args.messages, args.batch, d, trace)
            print("%-10s pump %5.0f Ir/message, process %5.0f Ir/message"
                  % (name, pump / relayed, total / relayed))


if __name__ == "__main__":
    main()
