#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Charts of recorded benchmark results: one SVG per workload, Portico against the other
proxies (nginx, HAProxy, nchan, Pushpin: whichever the run recorded) as bars with the spread of
the rounds, so that a reader sees the comparison at a glance.

    /usr/bin/python3 bench/charts.py                      # bench/results/*.json -> bench/charts/
    /usr/bin/python3 bench/charts.py --results DIR --out DIR

Reads what bench/http_proxy.py and bench/ws_echo.py write with --json (their --charts DIR option
calls this module after a run). Each chart has one panel per figure (throughput, p99 latency,
CPU per operation): a bar is the median of the rounds, the whisker spans the fastest to the
slowest round, and a dot marks each round. Measures nothing. Needs Debian's python3-matplotlib
(scripts/install-deps.sh bench).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

# Text stays text in the SVG (small files, searchable), and ids come from a fixed salt: a
# chart drawn again from the same results is the same file.
plt.rcParams["svg.fonttype"] = "none"
plt.rcParams["svg.hashsalt"] = "portico-bench"

BENCH_DIR = Path(__file__).resolve().parent

# One colour per contender, the same in every chart; Portico's variants share a hue.
COLOURS = {
    "portico": "#1f5fa8", "portico-tunnel": "#1f5fa8", "portico-frames": "#5b93d6",
    "nginx": "#3d9a4a", "nginx-64k": "#7cc487", "haproxy": "#c9742c", "nchan": "#8a5aa8",
    "pushpin": "#b8437a", "relay": "#9a9a9a",
}
# Left to right: Portico first, then the others, the bare relay (the floor) last.
ORDER = ["portico", "portico-tunnel", "portico-frames", "nginx", "nginx-64k", "haproxy", "nchan",
         "pushpin", "relay"]

# A figure: (panel title, value of one recorded round).
Figure = tuple[str, Callable[[dict], float]]


def per_million(sample: dict) -> float:
    """CPU seconds of the proxy per million operations."""
    return sample["cpu_s"] / sample["requests"] * 1e6 if sample["requests"] else float("nan")


THROUGHPUT_P99_CPU = {
    "http": [("requests/s (higher is better)", lambda s: s["rps"]),
             ("p99 latency, ms (lower is better)", lambda s: s["p99_ms"]),
             ("CPU s per 1M requests (lower is better)", per_million)],
    "messages": [("messages/s (higher is better)", lambda s: s["rps"]),
                 ("p99 latency, ms (lower is better)", lambda s: s["p99_ms"]),
                 ("CPU s per 1M messages (lower is better)", per_million)],
    "large": [("MB/s of payload, one way (higher is better)", lambda s: s["extra"]["MB_s"]),
              ("p99 latency, ms (lower is better)", lambda s: s["p99_ms"]),
              ("CPU s per GB (lower is better)",
               lambda s: s["cpu_s"] / (s["requests"] * s["raw"]["size"] / 1e9))],
    "upgrades": [("upgrades/s (higher is better)", lambda s: s["rps"]),
                 ("p99 latency, ms (lower is better)", lambda s: s["p99_ms"]),
                 ("CPU µs per upgrade (lower is better)", lambda s: s["cpu_s"] / s["requests"] * 1e6)],
    "fanout": [("deliveries/s (higher is better)", lambda s: s["rps"]),
               ("delivery p99, ms (lower is better)", lambda s: s["p99_ms"]),
               ("CPU s per 1M deliveries (lower is better)", per_million)],
    "idle": [("RSS KB per idle connection (lower is better)", lambda s: s["per_conn"] / 1000)],
}

# ws_echo.json's scenarios: file name, title, figures. Titles follow bench/RESULTS.md.
WS_SCENARIOS = {
    "small": ("ws-small", "WebSocket echo: 64 connections x 64-byte messages, as fast as echoed", "messages"),
    "paced": ("ws-paced", "WebSocket echo at equal load: 64 connections, 15,000 msg/s offered", "messages"),
    "large": ("ws-large", "WebSocket echo: 1 connection x 65,536-byte messages", "large"),
    "upgrades": ("ws-upgrades", "WebSocket upgrades: 32 clients, connect + upgrade + close, repeated", "upgrades"),
    "fanout1000": ("pubsub-fanout-1x1000", "Pub/sub fan-out: 1 channel x 1,000 subscribers, 64-byte messages", "fanout"),
    "fanout100x10": ("pubsub-fanout-100x10", "Pub/sub fan-out: 100 channels x 10 subscribers, 64-byte messages", "fanout"),
}


def ordered(names) -> list[str]:
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def draw(path: Path, title: str, note: str, per_contender: dict[str, list[dict]], figures: list[Figure]) -> Path:
    """One chart: a panel per figure, a bar per contender (median), whiskers min..max, dots
    per round."""
    names = ordered(per_contender)
    fig, axes = plt.subplots(1, len(figures), figsize=(max(7.5, 4.2 * len(figures) + 0.6), 3.9), squeeze=False)
    for ax, (label, value) in zip(axes[0], figures):
        for x, name in enumerate(names):
            rounds = [value(s) for s in per_contender[name]]
            mid = statistics.median(rounds)
            colour = COLOURS.get(name, "#555555")
            ax.bar(x, mid, width=0.62, color=colour, alpha=0.85, zorder=2)
            ax.errorbar(x, mid, yerr=[[mid - min(rounds)], [max(rounds) - mid]], fmt="none",
                        ecolor="#222222", elinewidth=1, capsize=4, zorder=3)
            ax.scatter([x] * len(rounds), rounds, s=9, color="#222222", alpha=0.55, zorder=4, linewidths=0)
            # The median's figure above the slowest round's whisker, clear of it.
            ax.annotate(f"{mid:,.3g}" if mid < 100 else f"{mid:,.0f}", (x, max(rounds)), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7.5)
        ax.set_title(label, fontsize=9)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.10g}"))
        ax.grid(axis="y", color="#dddddd", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.set_ylim(bottom=0)
        ax.margins(y=0.12)
    fig.suptitle(title, fontsize=11)
    fig.text(0.5, 0.01, note, ha="center", fontsize=7.5, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return path


def spread_note(per_contender: dict[str, list[dict]]) -> str:
    rounds = sorted({len(v) for v in per_contender.values()})
    count = "/".join(str(r) for r in rounds)
    return f"Bars: median of {count} rounds; whiskers: fastest to slowest round; dots: each round."


def http_charts(saved: dict, out: Path) -> list[Path]:
    """bench/http_proxy.py --json: one chart per worker count."""
    written = []
    commit = saved.get("commit", "?")
    for workers, per in sorted(saved["results"].items(), key=lambda kv: int(kv[0])):
        n = int(workers)
        title = f"HTTP reverse proxy, {n} worker{'s' if n > 1 else ''}: wrk -c32, GET through the proxy"
        note = spread_note(per) + f" Portico {commit}. Figures: bench/RESULTS.md."
        written.append(draw(out / f"http-proxy-{n}-worker{'s' if n > 1 else ''}.svg", title, note, per,
                            THROUGHPUT_P99_CPU["http"]))
    return written


def ws_charts(saved: dict, out: Path) -> list[Path]:
    """bench/ws_echo.py --json: one chart per scenario, and one of idle connections' memory."""
    written = []
    for scenario, per in saved.get("echo", {}).items():
        if scenario not in WS_SCENARIOS or not per:
            continue
        name, title, kind = WS_SCENARIOS[scenario]
        note = spread_note(per) + " Figures: bench/RESULTS.md."
        written.append(draw(out / f"{name}.svg", title, note, per, THROUGHPUT_P99_CPU[kind]))
    idle = saved.get("idle") or {}
    if idle:
        note = spread_note(idle) + " Each proxy freshly started per round."
        written.append(draw(out / "ws-idle-memory.svg", "Idle upgraded connections: 5,000 held, one echo each first",
                            note, idle, THROUGHPUT_P99_CPU["idle"]))
    return written


def draw_all(results: Path, out: Path) -> list[Path]:
    written = []
    for file, make in (("http_proxy.json", http_charts), ("ws_echo.json", ws_charts)):
        path = results / file
        if path.exists():
            written += make(json.loads(path.read_text()), out)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(BENCH_DIR / "results"), help="recorded results (default: bench/results)")
    ap.add_argument("--out", default=str(BENCH_DIR / "charts"), help="where the SVGs go (default: bench/charts)")
    args = ap.parse_args()
    written = draw_all(Path(args.results), Path(args.out))
    if not written:
        print(f"charts.py: no results in {args.results}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
