#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Pub/sub across nodes through one Redis: 2 Portico nodes (`pubsub.backplane`) against 2 nginx
+ nchan 1.3.6 nodes (`nchan_redis_url`, `nchan_use_redis on`) on the same kind of Redis.

Subscribers (ws_load pubsub) connect to node A, publishers POST to node B, so every message
crosses Redis: deliveries/s, CPU per delivery summed over both nodes and redis-server, and
publish-to-delivery latency (p50/p99). Scenarios: 1 channel x 1,000 subscribers and 100
channels x 10. Each contender gets its own fresh redis-server; 1 worker per node.

    /usr/bin/python3 bench/pubsub_redis.py [--rounds 2] [--duration 5] [--build-dir build]
Results: bench/results/pubsub_redis.json and a table on stdout for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl  # noqa: E402
from ws_echo import HISTORY, TOKEN, portico_head  # noqa: E402

SCENARIOS = {"fanout1000": ["-c", "1000", "--channels", "1"],
             "fanout100x10": ["-c", "1000", "--channels", "100"]}
PATHS = {"nchan": ("/sub/", "/pub/"), "portico": ("/live/", "/live/")}


class Cluster:
    """Two nodes and their Redis, measured as one service (CPU summed over every process)."""

    def __init__(self, name: str, nodes: list[bl.Service], redis: bl.Service):
        self.name, self.nodes, self.redis = name, nodes, redis

    def pids(self) -> list[int]:
        return [p for s in (*self.nodes, self.redis) for p in s.pids()]

    def alive(self) -> bool:
        return all(s.alive() for s in (*self.nodes, self.redis))

    def log_tail(self, n: int = 20) -> str:
        return "\n".join(s.log_tail(n) for s in (*self.nodes, self.redis))

    def stop(self) -> None:
        for s in (*self.nodes, self.redis):
            s.stop()


def start_redis() -> bl.Service:
    port = bl.free_port()
    workdir = bl.make_workdir("redis")
    svc = bl.Service("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(workdir)], workdir, port=port)
    svc.start()
    deadline = time.monotonic() + 10
    while not bl.wait_port(port):
        if time.monotonic() > deadline or not svc.alive():
            raise RuntimeError("redis-server did not start:\n" + svc.log_tail())
        time.sleep(0.05)
    svc.port = port
    return bl.started(svc)


def start_portico_node(binary: Path, redis_port: int) -> bl.Service:
    port = bl.free_port()
    yaml_text = portico_head(port) + f"""pubsub:
  backplane:
    redis: redis://127.0.0.1:{redis_port}/0
    key_prefix: bench
routes:
  - path: /healthz
    handler: health
  - path: /live/
    handler: pubsub
    pubsub:
      publish_token: {TOKEN}
      history: {HISTORY}
      publish_rate: off
      queue_bytes: 1MiB
"""
    svc = bl.started(bl.start_portico("portico", binary, yaml_text, ready_port=port, ready_path="/healthz"))
    svc.port = port
    return svc


def start_nchan_node(redis_port: int) -> bl.Service:
    port = bl.free_port()
    redis = f'nchan_redis_url "redis://127.0.0.1:{redis_port}"; nchan_use_redis on;'
    http = f"""
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location = / {{ return 200 "ok\\n"; }}
        location ~ ^/pub/(\\w+)$ {{
            nchan_publisher http; nchan_channel_id $1; nchan_message_buffer_length {HISTORY}; {redis}
        }}
        location ~ ^/sub/(\\w+)$ {{
            nchan_subscriber websocket; nchan_channel_id $1; nchan_message_buffer_length {HISTORY}; {redis}
        }}
    }}"""
    svc = bl.started(bl.start_nginx("nchan", 1, http, ready_port=port,
                                 extra_main="load_module /usr/lib/nginx/modules/ngx_nchan_module.so;"))
    svc.port = port
    return svc


def start_cluster(name: str, portico_bin: Path) -> Cluster:
    redis = start_redis()
    if name == "portico":
        nodes = [start_portico_node(portico_bin, redis.port) for _ in range(2)]
    else:
        nodes = [start_nchan_node(redis.port) for _ in range(2)]
    return Cluster(name, nodes, redis)


def run_one(cluster: Cluster, ws_load: Path, scenario: str, duration: float, round_no: int) -> bl.Sample:
    sub, pub = PATHS[cluster.name]
    args = [*SCENARIOS[scenario], "--pub-port", str(cluster.nodes[1].port), "--sub-path", sub,
            "--pub-path", pub, "--token", TOKEN, "-s", "64", "--text", "-d", str(duration)]
    client = bl.LoadClient(ws_load, "pubsub", cluster.nodes[0].port, args)
    results: list[dict] = []
    try:
        client.ready(timeout=120)

        def load() -> bl.LoadResult:
            res = client.go(duration + 40)
            results.append(res)
            return bl.as_load_result(res)

        s = bl.measure(cluster, load, round_no)  # type: ignore[arg-type]
    finally:
        client.close()
    res = results[0]
    s.extra = {"p50_ms": round(res["p50_us"] / 1000, 3), "published": res["published"], "lost": res["lost"],
               "undelivered": res["undelivered"]}
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--build-dir", type=Path, default=bl.REPO_ROOT / "build")
    args = ap.parse_args()
    bl.raise_nofile_limit()
    ws_load = bl.build_ws_load(args.build_dir)
    portico_bin = args.build_dir / "portico"
    table = []
    out: dict = {}
    for scenario in SCENARIOS:
        samples: dict[str, list[bl.Sample]] = {"nchan": [], "portico": []}
        for r in range(args.rounds):
            for name in (["nchan", "portico"] if r % 2 == 0 else ["portico", "nchan"]):
                cluster = start_cluster(name, portico_bin)
                try:
                    run_one(cluster, ws_load, scenario, 2.0, -1)  # warm-up (Redis, connections)
                    s = run_one(cluster, ws_load, scenario, args.duration, r)
                finally:
                    cluster.stop()
                samples[name].append(s)
                bl.log(f"{scenario} round {r + 1} {name:<8} {s.rps:>9,.0f} deliveries/s  p99 {s.p99_ms:7.2f} ms  "
                       f"cpu {s.cpu_per_million:6.2f} s/1M  lost {s.extra['lost']}  errors {s.errors}")
        row = {}
        for name, ss in samples.items():
            row[name] = {"deliveries_s": bl.median([x.rps for x in ss]),
                         "cpu_s_per_1M": bl.median([x.cpu_per_million for x in ss]),
                         "p50_ms": bl.median([x.extra["p50_ms"] for x in ss]),
                         "p99_ms": bl.median([x.p99_ms for x in ss]),
                         "lost": sum(x.extra["lost"] for x in ss), "errors": sum(x.errors for x in ss)}
        out[scenario] = row
        n, p = row["nchan"], row["portico"]
        for name, v in row.items():
            table.append([scenario, name, f"{v['deliveries_s']:,.0f}", f"{v['cpu_s_per_1M']:.2f}", f"{v['p50_ms']:.2f}",
                          f"{v['p99_ms']:.2f}", f"{v['deliveries_s'] / n['deliveries_s']:.2f}x",
                          f"{v['cpu_s_per_1M'] / n['cpu_s_per_1M']:.2f}x", str(v["lost"]), str(v["errors"])])
        bl.log(f"{scenario}: portico/nchan deliveries {p['deliveries_s'] / n['deliveries_s']:.2f}x, "
               f"CPU per delivery {p['cpu_s_per_1M'] / n['cpu_s_per_1M']:.2f}x")
    (bl.REPO_ROOT / "bench" / "results").mkdir(exist_ok=True)
    (bl.REPO_ROOT / "bench" / "results" / "pubsub_redis.json").write_text(json.dumps(out, indent=2) + "\n")
    print(bl.markdown_table(["scenario", "cluster", "deliveries/s", "CPU s / 1M deliveries", "p50 (ms)", "p99 (ms)",
                             "rate vs nchan", "CPU vs nchan", "lost", "errors"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
