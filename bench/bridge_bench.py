#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""WebSocket-over-HTTP: Portico's `websocket: {mode: http}` against Pushpin 1.36 (issue 9).

Same app (bench/woh_echo_app.js: a Node WebSocket-over-HTTP echo with keep-alive), same client
(bench/bridge_client.js, Node `ws`), one run, contenders alternating each round:

- chat: CLIENTS WebSockets each doing send -> wait for the echo -> send for SECONDS: messages/s,
  p50/p99 round trip, gateway CPU per message (utime+stime of every gateway process: Portico;
  Pushpin's runner, condure, pushpin-proxy, pushpin-handler and its own zurl);
- idle: IDLE bridged WebSockets opened and held: gateway RSS per WebSocket;
- fanout: FANOUT WebSockets subscribed by the app (GRIP c:subscribe), PUBLISHES publishes
  through each gateway's publish API: deliveries/s and CPU per delivery.

Pushpin runs from its Debian package with its default configuration except paths and ports (a
private run directory, its own zurl whose deny list allows 127.0.0.1, the route
`* 127.0.0.1:APP,over_http`). Portico runs with workers: 1 and the access log off.

    /usr/bin/python3 bench/bridge_bench.py [--rounds 3] [--seconds 5] [--clients 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

BENCH = Path(__file__).resolve().parent
NODE = shutil.which("node") or "/usr/bin/node"
TOKEN = "bench-token"


def start_app(port: int) -> bl.Service:
    svc = bl.Service("woh-app", [NODE, str(BENCH / "woh_echo_app.js"), str(port)], bl.make_workdir("woh-app"), port=port)
    svc.start()
    return svc.wait_ready(lambda: bl.wait_port(port))


def start_portico(binary: Path, app_port: int, port: int) -> bl.Service:
    yaml = f"""workers: 1
log: {{level: warn, access: "off"}}
limits: {{per_ip_connections: 0, per_ip_websockets: 0, max_connections: 20000}}
listeners: [{{address: 127.0.0.1:{port}}}]
upstreams: {{app: {{servers: [127.0.0.1:{app_port}], keepalive: 256}}}}
routes:
  - path: /publish/
    handler: publish
    publish: {{token: {TOKEN}}}
  - path: /
    upstream: app
    websocket: {{mode: http, ping_interval: 0}}
"""
    svc = bl.start_portico("portico", binary, yaml)
    return svc.wait_ready(lambda: bl.wait_port(port))


class Pushpin:
    """Pushpin's runner (condure, pushpin-proxy, pushpin-handler) plus a zurl of its own."""

    def __init__(self, app_port: int, port: int, offset: int):
        self.dir = bl.make_workdir("pushpin")
        run, logs = self.dir / "run", self.dir / "log"
        run.mkdir()
        logs.mkdir()
        zurl_ipc = f"ipc://{run}/zurl-"
        conf = Path("/etc/pushpin/pushpin.conf").read_text()
        replace = {"rundir": str(run), "logdir": str(logs), "http_port": f"{port}", "port_offset": str(offset),
                   "include": str(self.dir / "internal.conf"), "routesfile": str(self.dir / "routes")}
        lines = []
        for line in conf.splitlines():
            key = line.split("=", 1)[0]
            lines.append(f"{key}={replace[key]}" if key in replace and not line.startswith("#") else line)
        (self.dir / "pushpin.conf").write_text("\n".join(lines) + "\n")
        (self.dir / "internal.conf").write_text(
            Path("/usr/lib/pushpin/internal.conf").read_text().replace("ipc:///var/run/zurl/", zurl_ipc))
        zconf = Path("/etc/zurl.conf").read_text().replace("ipc:///var/run/zurl/", zurl_ipc)
        zconf = "\n".join("deny=" if l.startswith("deny=") else l for l in zconf.splitlines()) + "\n"
        (self.dir / "zurl.conf").write_text(zconf)
        (self.dir / "routes").write_text(f"* 127.0.0.1:{app_port},over_http\n")
        self.publish_port = 5561 + offset
        self.port = port
        self.zurl = bl.Service("zurl", ["zurl", f"--config={self.dir / 'zurl.conf'}"], self.dir, keep_dir=True).start()
        self.runner = bl.Service("pushpin", ["pushpin", "--config", str(self.dir / "pushpin.conf")], self.dir,
                                 keep_dir=True).start()
        self.runner.wait_ready(lambda: bl.wait_port(port) and bl.wait_port(self.publish_port))

    def cpu(self) -> float:
        return self.zurl.cpu() + self.runner.cpu()

    def rss(self) -> int:
        return self.zurl.rss() + self.runner.rss()


def node_client(*args: str, timeout: float = 300.0) -> dict:
    out = subprocess.run([NODE, str(BENCH / "bridge_client.js"), *args], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError("client failed: " + out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def publish(port: int, path: str, text: str, token: str | None) -> None:
    body = json.dumps({"items": [{"channel": "bench", "formats": {"ws-message": {"content": text}}}]}).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST")
    urllib.request.urlopen(req, timeout=30).read()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--fanout", type=int, default=1000)
    ap.add_argument("--publishes", type=int, default=20)
    ap.add_argument("--build", default=str(bl.REPO_ROOT / "build"))
    ap.add_argument("--json", default=str(BENCH / "results" / "bridge_bench.json"))
    args = ap.parse_args()
    bl.raise_nofile_limit()
    binary = Path(args.build) / "portico"

    app = start_app(bl.free_port())
    portico_port = bl.free_port()
    portico = start_portico(binary, app.port, portico_port)
    pushpin = Pushpin(app.port, bl.free_port(), offset=20000 + os.getpid() % 20000)
    gateways = {
        "portico": dict(port=portico_port, cpu=portico.cpu, rss=portico.rss, publish=(portico_port, "/publish/", TOKEN)),
        "pushpin": dict(port=pushpin.port, cpu=pushpin.cpu, rss=pushpin.rss,
                        publish=(pushpin.publish_port, "/publish/", None)),
    }
    results: dict[str, dict[str, list]] = {g: {"chat": [], "idle": [], "fanout": []} for g in gateways}
    order = list(gateways)
    for r in range(args.rounds):
        for name in order:
            g = gateways[name]
            # Other sessions share this machine: wait briefly for quiet, then measure anyway
            # (the alternation spreads what noise remains over both gateways).
            bl.wait_quiet(timeout=5.0, own=[app, portico, pushpin.zurl, pushpin.runner])
            # chat
            c0 = g["cpu"]()
            res = node_client("chat", f"ws://127.0.0.1:{g['port']}/chat", str(args.clients), str(args.seconds))
            res["cpu_s"] = g["cpu"]() - c0
            res["rate"] = res["messages"] / res["seconds"]
            res["cpu_us_per_msg"] = res["cpu_s"] / res["messages"] * 1e6
            results[name]["chat"].append(res)
            bl.log(f"round {r} {name} chat: {res['rate']:.0f} msg/s p99 {res['p99_ms']:.2f} ms "
                   f"{res['cpu_us_per_msg']:.1f} us CPU/msg")
            # idle RSS
            time.sleep(1.0)
            base = g["rss"]()
            hold = bl.make_workdir("hold") / "hold"
            hold.write_text("x")
            proc = subprocess.Popen([NODE, str(BENCH / "bridge_client.js"), "idle", f"ws://127.0.0.1:{g['port']}/idle",
                                     str(args.idle), str(hold)], stdout=subprocess.PIPE, text=True)
            line = proc.stdout.readline()
            if not line.startswith("open"):
                raise RuntimeError("idle client failed")
            time.sleep(2.0)
            after = g["rss"]()
            hold.unlink()
            proc.wait(30)
            per = (after - base) / args.idle
            results[name]["idle"].append({"base": base, "after": after, "bytes_per_ws": per})
            bl.log(f"round {r} {name} idle: {per / 1024:.1f} KiB per bridged WebSocket")
            time.sleep(2.0)
            # fanout
            proc = subprocess.Popen([NODE, str(BENCH / "bridge_client.js"), "fanout", f"ws://127.0.0.1:{g['port']}/sub",
                                     str(args.fanout), str(args.publishes)], stdout=subprocess.PIPE, text=True)
            line = proc.stdout.readline()
            if not line.startswith("open"):
                raise RuntimeError("fanout client failed")
            time.sleep(1.0)  # subscriptions are live once the OPEN answers are processed
            c0 = g["cpu"]()
            t0 = time.monotonic()
            port, path, token = g["publish"]
            for i in range(args.publishes):
                publish(port, path, "message %d" % i, token)
            done = json.loads(proc.stdout.readline())
            elapsed = time.monotonic() - t0
            proc.wait(30)
            cpu = g["cpu"]() - c0
            deliveries = args.fanout * args.publishes
            results[name]["fanout"].append({"seconds": elapsed, "deliveries": done["deliveries"],
                                            "rate": deliveries / elapsed, "cpu_us_per_delivery": cpu / deliveries * 1e6})
            bl.log(f"round {r} {name} fanout: {deliveries / elapsed:.0f} deliveries/s "
                   f"{cpu / deliveries * 1e6:.2f} us CPU/delivery")
            time.sleep(2.0)
        order.reverse()
    bl.release_run_lock()
    Path(args.json).parent.mkdir(exist_ok=True)
    Path(args.json).write_text(json.dumps({"args": vars(args), "machine": bl.machine_summary(),
                                           "revision": bl.git_revision(), "results": results}, indent=1))
    print_table(results)


def print_table(results: dict) -> None:
    med = bl.median
    rows = []
    for name, r in results.items():
        rows.append([name, f"{med(x['rate'] for x in r['chat']):,.0f}", f"{med(x['p99_ms'] for x in r['chat']):.2f}",
                     f"{med(x['cpu_us_per_msg'] for x in r['chat']):.1f}",
                     f"{med(x['bytes_per_ws'] for x in r['idle']) / 1024:.1f}",
                     f"{med(x['rate'] for x in r['fanout']):,.0f}",
                     f"{med(x['cpu_us_per_delivery'] for x in r['fanout']):.2f}"])
    print(bl.markdown_table(["Gateway", "chat msg/s", "chat p99 (ms)", "CPU us/msg", "RSS KiB/idle WS",
                             "fan-out deliveries/s", "CPU us/delivery"], rows))
    p, q = results["portico"], results["pushpin"]
    for label, key, sub in (("chat msg/s", "chat", "rate"), ("CPU per message", "chat", "cpu_us_per_msg"),
                            ("RSS per idle WebSocket", "idle", "bytes_per_ws"), ("fan-out rate", "fanout", "rate"),
                            ("CPU per delivery", "fanout", "cpu_us_per_delivery")):
        a, b = med(x[sub] for x in p[key]), med(x[sub] for x in q[key])
        print(f"- {label}: Portico / Pushpin = {a / b:.2f}x" if b else f"- {label}: n/a")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--from-json":
        print_table(json.loads(Path(sys.argv[2]).read_text())["results"])
    else:
        main()
