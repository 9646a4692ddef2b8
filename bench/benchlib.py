# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of Portico's benchmarks: processes, CPU sampling, proxies, load runs, tables.

Used by bench/http_proxy.py and meant for the WebSocket benchmark too. Standard library only;
run with /usr/bin/python3.

What lives here:
- Service: a process we started in its own session, with the CPU seconds (utime+stime) and RSS
  summed over it and every descendant (nginx's master and workers, HAProxy's threads).
- Every Service is stopped on exit, on SIGINT/SIGTERM/SIGHUP and on exceptions (Registry).
- free_port(), wait_port(), http_get(): readiness checks.
- start_nginx(), start_haproxy(), start_portico(): each takes the config body the caller wants
  and adds the boilerplate (pid files, temp paths, logs) inside a private temp directory.
- build_portico(): configures and builds the Release binary.
- run_wrk(): one wrk run with exact figures from a Lua done() hook.
- alternate(): runs every contender once per round, rotating the order each round.
- median(), markdown_table().
- The load tools every WebSocket and TLS comparison runs its peers with, in one place:
  build_ws_load()/build_tls_load() (compiled once per source change), start_ws_backend() (the
  `ws_load server` echo backend), LoadClient (a ws_load/tls_load client run: READY, GO, RESULT),
  as_load_result(), started() (--nice for every process), write_results_section().
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
WS_LOAD_SRC = BENCH_DIR / "ws_load" / "ws_load.cpp"
TLS_LOAD_SRC = BENCH_DIR / "tls_load.cpp"


def log(msg: str) -> None:
    """Progress on stderr so stdout stays the pasteable result."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# /proc sampling


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the comm field (index 0 is field 3, state), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return data[data.rfind(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """root and every live process below it (by ppid), in no particular order."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _read_stat(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: Iterable[int], *, user_only: bool = False) -> float:
    """utime+stime (fields 14 and 15 of /proc/PID/stat, all threads included) summed, seconds;
    user_only: utime alone (the share of the CPU that user-space work, not the kernel, spent)."""
    ticks = 0
    for pid in pids:
        fields = _read_stat(pid)
        if fields is not None:
            ticks += int(fields[11]) + (0 if user_only else int(fields[12]))
    return ticks / CLK_TCK


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident set size (field 24 of /proc/PID/stat) summed, bytes."""
    total = 0
    for pid in pids:
        fields = _read_stat(pid)
        if fields is not None:
            total += int(fields[21]) * PAGE_SIZE
    return total


# --------------------------------------------------------------------------------------------
# processes


class Registry:
    """Every process started through this module; all are stopped at exit or on a signal."""

    services: list["Service"] = []
    _installed = False

    @classmethod
    def add(cls, svc: "Service") -> None:
        cls._install()
        cls.services.append(svc)

    @classmethod
    def stop_all(cls) -> None:
        for svc in reversed(cls.services):
            svc.stop()
        cls.services.clear()

    @classmethod
    def _install(cls) -> None:
        if cls._installed:
            return
        cls._installed = True
        atexit.register(cls.stop_all)

        def on_signal(signum, _frame):
            cls.stop_all()
            sys.exit(128 + signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, on_signal)


def raise_nofile_limit(want: int = 65536) -> None:
    """Open-file limit up to `want` where allowed (root may raise the hard limit), else the soft
    limit up to the hard one; inherited by the processes we start. A proxy holding 10,000
    connections needs 20,000 descriptors and a few more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            pass
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Service:
    """A long-running process in its own session (so its process group is ours to stop).

    name: label for logs and tables; argv: the command; workdir: its private temp directory
    (removed on stop unless keep_dir); log_path: its stdout+stderr.
    """

    name: str
    argv: Sequence[str]
    workdir: Path
    port: int = 0
    keep_dir: bool = False
    env: dict | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)
    log_path: Path | None = field(default=None, init=False)

    def start(self) -> "Service":
        self.log_path = self.workdir / f"{self.name}.log"
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            list(self.argv),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.workdir,
            env=self.env,
        )
        logf.close()
        Registry.add(self)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The process and all its descendants right now."""
        return descendants(self.pid) if self.alive() else []

    def cpu(self) -> float:
        """CPU seconds (user+system) used so far by the process and its descendants."""
        return cpu_seconds(self.pids())

    def rss(self) -> int:
        return rss_bytes(self.pids())

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except (OSError, AttributeError):
            return ""

    def wait_ready(self, check: Callable[[], bool], timeout: float = 10.0) -> "Service":
        """Polls check() until true; raises with the log tail if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if check():
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to the process group, SIGKILL after timeout; idempotent."""
        if self.proc is not None and self.proc.returncode is None:
            pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(pgid, signal.SIGKILL)  # stragglers (workers) even if the leader left
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self in Registry.services:
            Registry.services.remove(self)
        if not self.keep_dir and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)


def make_workdir(name: str) -> Path:
    """A fresh private temp directory, world-traversable (nginx workers run as nobody)."""
    d = Path(tempfile.mkdtemp(prefix=f"portico-bench-{name}-"))
    d.chmod(0o755)
    return d


# --------------------------------------------------------------------------------------------
# readiness


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, host: str = "127.0.0.1") -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 2.0) -> tuple[int, bytes]:
    """One HTTP/1.1 GET with Connection: close; returns (status, raw response). Raises OSError."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    try:
        status = int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return status, data


def nginx_stub_status(port: int, path: str) -> dict[str, float]:
    """nginx `stub_status` counters: active, accepts, handled, requests. The GET itself counts
    as one accepted connection and one request."""
    status, raw = http_get(port, path)
    if status != 200:
        raise RuntimeError(f"stub_status on :{port}{path} answered {status}")
    lines = raw.split(b"\r\n\r\n", 1)[1].decode().splitlines()
    accepts, handled, requests = (int(x) for x in lines[2].split())
    return {"active": int(lines[0].split(":")[1]), "accepts": accepts, "handled": handled,
            "requests": requests}


def http_ok(port: int, path: str = "/") -> Callable[[], bool]:
    """A readiness check: GET path answers 200."""
    return lambda: http_get(port, path)[0] == 200


# --------------------------------------------------------------------------------------------
# servers


def start_nginx(name: str, workers: int, http_block: str, *, ready_port: int | None = None,
                ready_path: str = "/", extra_main: str = "", wrap: Sequence[str] = ()) -> Service:
    """Starts nginx (master + `workers` workers) in a private prefix.

    http_block: the contents of `http { ... }` (servers, upstreams); `PREFIX` in it is replaced
    by the prefix directory. Logging is off (access_log off; error_log at warn in the prefix).
    ready_port: wait for GET ready_path to answer 200 there (default: just start).
    wrap: a command to run nginx under (valgrind ...): then one process, no master, so that the
    tool sees the process that does the work.
    """
    prefix = make_workdir(name)
    for sub in ("logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "tmp", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).chmod(0o777)  # workers run as nobody
    conf = f"""
worker_processes {workers};
error_log {prefix}/logs/error.log warn;
pid {prefix}/logs/nginx.pid;
{extra_main}
events {{ worker_connections 32768; }}  # 10,000 proxied connections take 20,000
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    {http_block.replace("PREFIX", str(prefix))}
}}
"""
    (prefix / "nginx.conf").write_text(conf)
    master = "off" if wrap else "on"
    svc = Service(name, [*wrap, "nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                         "-e", str(prefix / "logs/error.log"),
                         "-g", f"daemon off; master_process {master};"], prefix, port=ready_port or 0)
    svc.start()
    if ready_port:
        svc.wait_ready(http_ok(ready_port, ready_path), timeout=ready_timeout(wrap))
    return svc


def start_haproxy(name: str, threads: int, sections: str, *, ready_port: int | None = None,
                  ready_path: str = "/", extra_global: str = "", wrap: Sequence[str] = ()) -> Service:
    """Starts HAProxy in the foreground with `nbthread threads` and no logging.

    sections: defaults/frontend/backend text appended after the global section.
    wrap: a command to run HAProxy under (valgrind ...).
    """
    workdir = make_workdir(name)
    conf = f"""global
    nbthread {threads}
    maxconn 8000  # 2 fds per connection must fit the open-file limit (20000 here)
    pidfile {workdir}/haproxy.pid
{extra_global}
{sections}
"""
    (workdir / "haproxy.cfg").write_text(conf)
    svc = Service(name, [*wrap, "haproxy", "-db", "-f", str(workdir / "haproxy.cfg")], workdir,
                  port=ready_port or 0)
    svc.start()
    if ready_port:
        svc.wait_ready(http_ok(ready_port, ready_path), timeout=ready_timeout(wrap))
    return svc


def start_portico(name: str, binary: str | Path, yaml_text: str, *, ready_port: int | None = None,
                  ready_path: str = "/", wrap: Sequence[str] = ()) -> Service:
    """Starts `portico -c FILE` in the foreground with yaml_text as FILE (under `wrap`, a
    command such as valgrind, when given)."""
    workdir = make_workdir(name)
    conf = workdir / "portico.yaml"
    conf.write_text(yaml_text)
    svc = Service(name, [*wrap, str(binary), "-c", str(conf)], workdir, port=ready_port or 0)
    svc.start()
    if ready_port:
        svc.wait_ready(http_ok(ready_port, ready_path), timeout=ready_timeout(wrap))
    return svc


def portico_head(port: int, *, workers: int = 1, level: str = "warn", extra: str = "") -> str:
    """The top of every benchmark's Portico configuration: the worker count, no access log, no
    per-address limits (the load comes from one address) and one listener on 127.0.0.1:port.
    extra: more top-level lines placed before `limits:` (e.g. `shutdown_timeout: 5s`); the
    caller appends the listener's own keys (indented 4) and the other sections."""
    return f"""workers: {workers}
{extra}log:
  level: {level}
  access: off
limits:
  max_connections: 20000
  per_ip_connections: 0  # the load comes from one address
  per_ip_websockets: 0
listeners:
  - address: 127.0.0.1:{port}
"""


def ready_timeout(wrap: Sequence[str]) -> float:
    """Seconds a server may take to answer its first request: far longer under valgrind."""
    return 60.0 if wrap else 10.0


def add_run_arguments(ap, rounds: int = 5, duration: float = 5.0, quiet_timeout: float = 300) -> None:
    """The options every comparison shares: --rounds, --duration, --portico-bin (default
    $PORTICO_BIN), --build-dir, --max-foreign, --quiet-timeout and --nice."""
    ap.add_argument("--rounds", type=int, default=rounds, help=f"measured rounds (default: {rounds})")
    ap.add_argument("--duration", type=float, default=duration,
                    help=f"seconds per measured run (default: {duration:g})")
    ap.add_argument("--portico-bin", default=os.environ.get("PORTICO_BIN"),
                    help="Portico binary (default: $PORTICO_BIN, else build Release into --build-dir)")
    ap.add_argument("--build-dir", default=str(REPO_ROOT / "build-bench"))
    ap.add_argument("--max-foreign", type=float, default=0.10,
                    help="before each run wait until processes outside the benchmark use at most this "
                         "share of a core (default: 0.10; negative: never wait)")
    ap.add_argument("--quiet-timeout", type=float, default=quiet_timeout,
                    help=f"seconds to wait for a quiet machine (default: {quiet_timeout:g})")
    ap.add_argument("--nice", type=int, help="autogroup nice (-20..19) for every process started here")


def build_portico(build_dir: Path, source_dir: Path = REPO_ROOT) -> Path:
    """Configures (Release) and builds the portico target; returns the binary's path."""
    subprocess.run(["cmake", "-S", str(source_dir), "-B", str(build_dir),
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, stdout=sys.stderr)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "portico", "-j2"],
                   check=True, stdout=sys.stderr)
    return build_dir / "portico"


# --------------------------------------------------------------------------------------------
# the load tools: ws_load (WebSocket client, echo backend, bare relay) and tls_load


def build_tool(src: Path, out: Path, flags: Sequence[str] = (), libs: Sequence[str] = ()) -> Path:
    """Compiles one C++ source with g++ -std=c++20 -O2 into `out` when the source is newer."""
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = ["g++", "-std=c++20", "-O2", "-Wall", "-Wextra", *flags, "-o", str(out), str(src), *libs]
    log(" ".join(argv))
    subprocess.run(argv, check=True)
    return out


def _uring_libs() -> list[str]:
    """The link flags of liburing (`pkg-config --libs liburing`) when liburing-dev is installed
    (scripts/install-deps.sh bench), else none: ws_load then builds without `relay --uring`."""
    try:
        r = subprocess.run(["pkg-config", "--libs", "liburing"], capture_output=True, text=True)
    except FileNotFoundError:
        return []
    return r.stdout.split() if r.returncode == 0 else []


def build_ws_load(build_dir: Path) -> Path:
    """bench/ws_load/ws_load.cpp into build_dir/ws_load/ws_load (with liburing when installed)."""
    return build_tool(WS_LOAD_SRC, Path(build_dir) / "ws_load" / "ws_load", libs=_uring_libs())


def build_tls_load(build_dir: Path) -> Path:
    """bench/tls_load.cpp into build_dir/tls_load/tls_load."""
    return build_tool(TLS_LOAD_SRC, Path(build_dir) / "tls_load" / "tls_load",
                      ["-Wpedantic", "-Wshadow", "-Wold-style-cast"], ["-lssl", "-lcrypto", "-pthread"])


AUTOGROUP_NICE: int | None = None  # --nice of a benchmark: set on every process it starts
FIFO_PRIORITY: int | None = None  # --fifo of a benchmark: SCHED_FIFO for every process it starts


def prioritize(pid: int) -> None:
    """Gives pid's scheduling autogroup the AUTOGROUP_NICE value. Every process started here is
    in its own session, hence its own autogroup (kernel.sched_autogroup_enabled=1), where plain
    nice(1) has no effect against other sessions; the autogroup's nice does.
    With FIFO_PRIORITY, every thread of pid runs SCHED_FIFO at that priority (threads it makes
    later inherit it): see fifo_help."""
    if AUTOGROUP_NICE is not None:
        try:
            with open(f"/proc/{pid}/autogroup", "w") as f:
                f.write(str(AUTOGROUP_NICE))
        except OSError as e:
            log(f"cannot set the autogroup nice of {pid}: {e}")
    if FIFO_PRIORITY is not None:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(FIFO_PRIORITY))
        except OSError as e:
            log(f"cannot make {pid} SCHED_FIFO: {e}")


def fifo_help() -> str:
    return ("run every process started here (contenders, backend, load client) SCHED_FIFO at this "
            "priority (1-99): each runs as soon as it is woken, ahead of all other load on the "
            "machine and without the fair scheduler's wakeup placement and preemption choices, so "
            "that the latency compared is the one the proxies make, not the scheduler; the kernel's "
            "RT throttling (sched_rt_runtime_us) still leaves the rest of the machine 5%%. CPU per "
            "operation then counts one wakeup per event (no batching): compare it only within such a run")


def started(svc: "Service") -> "Service":
    for pid in svc.pids() or [svc.pid]:  # nginx's and HAProxy's workers, Portico's worker threads
        prioritize(pid)
    return svc


def start_ws_backend(ws_load: Path) -> "Service":
    """`ws_load server` (a C++ epoll WebSocket echo, unmasked replies) on a free port."""
    port = free_port()
    svc = started(Service("backend", [str(ws_load), "server", "--listen", str(port)],
                          make_workdir("ws-backend"), port=port).start())
    return svc.wait_ready(lambda: wait_port(port))


# The bare relay's variants (`ws_load relay`), by contender name: the reference floor of a
# read/write + epoll proxy, the same relay moving bytes with splice(2) through a pipe, and the
# relay built on io_uring (bench/RESULTS.md: "io_uring relay floor").
RELAY_VARIANTS = {"relay": [], "relay-splice": ["--splice"], "relay-uring": ["--uring"]}


def start_relay(ws_load: Path, backend_port: int, name: str = "relay") -> "Service":
    """`ws_load relay` (variant `name` of RELAY_VARIANTS) in front of backend_port, on a free port."""
    port = free_port()
    svc = started(Service(name, [str(ws_load), "relay", "--listen", str(port), "--to", str(backend_port),
                                 *RELAY_VARIANTS[name]], make_workdir(name), port=port).start())
    return svc.wait_ready(http_ok(port))


class LoadClient:
    """One ws_load or tls_load client run with --go-stdin: it sets its connections up and prints
    READY, then on GO runs the load and prints RESULT, then exits when stdin closes (so that
    neither the setup nor the closing is measured). go() = start() + result()."""

    def __init__(self, binary: Path, mode: str, port: int, args: Sequence[str]):
        self.argv = [str(binary), mode, "--port", str(port), "--go-stdin", *args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     start_new_session=True)
        prioritize(self.proc.pid)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def _line(self, prefix: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(prefix + " "):
                    return json.loads(text[len(prefix) + 1:])
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError(f"load client gave no {prefix} within {timeout:.0f} s: {self.argv}")
            if self.sel.select(left):
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    self.proc.wait()
                    raise RuntimeError(f"load client exited ({self.proc.returncode}) before {prefix}: "
                                       f"{' '.join(self.argv)}")
                self.buf += chunk

    def ready(self, timeout: float = 60.0) -> dict:
        return self._line("READY", timeout)

    def start(self) -> None:
        self.proc.stdin.write(b"GO\n")
        self.proc.stdin.flush()

    def result(self, timeout: float) -> dict:
        return self._line("RESULT", timeout)

    def go(self, timeout: float) -> dict:
        self.start()
        return self.result(timeout)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
        self.sel.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def as_load_result(r: dict) -> "LoadResult":
    """A RESULT line as a LoadResult. `requests` is every operation completed after GO (the
    drain included), because the CPU window covers them all; rps counts the window only."""
    return LoadResult(requests=r["ops_total"], seconds=r["seconds"], rps=r["ops_per_s"],
                      p50_ms=r["p50_us"] / 1000, p99_ms=r["p99_us"] / 1000,
                      errors=r["errors"] + r.get("publish_errors", 0), client_cpu_s=r["client_cpu_s"],
                      raw=r)


def quiet_or_lock(max_foreign: float, own: Sequence["Service"], timeout: float = 300.0) -> None:
    """Waits for a quiet machine (max_foreign < 0: does not wait) and returns holding the
    machine-wide benchmark lock, so that a client's setup does not disturb another benchmark's
    measurement either; measure() (or the caller) releases it."""
    if max_foreign >= 0:
        wait_quiet(max_foreign, own=own, timeout=timeout)
    else:
        acquire_run_lock()


def hold_idle(svc: "Service", make_client: Callable[[], "LoadClient"], n: int,
              setup_timeout: float, settle: float = 1.0, busy: float = 0.0) -> dict:
    """Idle memory: with the benchmark lock held (quiet_or_lock), RSS of svc's processes before
    and after the client make_client() starts opens its n connections (one echo each, then
    idle) and `settle` seconds have passed (memory freed lazily: Portico frees an idle TLS
    connection's buffers 1-2 s after its last I/O); releases the lock and stops svc whatever
    happens. busy > 0: the client is a load (wss-echo -d busy) whose measured run goes first and
    whose connections are then held; the settling starts when its RESULT came. Returns the
    figures per connection, and "rss_series": [(seconds after the last connection was ready or
    the load ended, RSS)] sampled every 0.25 s while settling."""
    try:
        time.sleep(0.5)
        rss0 = svc.rss()
        client = make_client()
        try:
            ready = client.ready(timeout=setup_timeout)
            if busy > 0:
                client.go(busy + 60)
            t0 = time.monotonic()
            series = [(0.0, svc.rss())]
            while time.monotonic() - t0 < settle:
                time.sleep(min(0.25, max(0.0, settle - (time.monotonic() - t0))))
                series.append((round(time.monotonic() - t0, 2), svc.rss()))
            rss1, nprocs, cpu = series[-1][1], len(svc.pids()), svc.cpu()
            if busy <= 0:
                client.go(30)
        finally:
            client.close()
    finally:
        release_run_lock()
        svc.stop()
    if ready["failed"]:
        raise RuntimeError(f"{svc.name}: {ready['failed']} of {n} idle connections failed")
    return {"name": svc.name, "rss0": rss0, "rss1": rss1, "per_conn": (rss1 - rss0) / n,
            "procs": nprocs, "setup_s": ready["setup_s"], "cpu_s": cpu, "rss_series": series}


def add_round_arguments(ap, *, rounds: int = 5, duration: float = 5.0, warmup: float = 2.0) -> None:
    """The options of a side-by-side comparison that every benchmark takes the same way:
    --rounds, --duration, --warmup, --drain, --portico-bin and --build-dir."""
    ap.add_argument("--rounds", type=int, default=rounds, help=f"measured rounds (default: {rounds})")
    ap.add_argument("--duration", type=float, default=duration,
                    help=f"seconds per measured run (default: {duration:g})")
    ap.add_argument("--warmup", type=float, default=warmup,
                    help=f"seconds of warm-up per contender (default: {warmup:g})")
    ap.add_argument("--drain", type=float, default=3.0, help="seconds a client waits for outstanding work")
    ap.add_argument("--portico-bin", default=os.environ.get("PORTICO_BIN"),
                    help="Portico binary (default: $PORTICO_BIN, else build Release into --build-dir)")
    ap.add_argument("--build-dir", default=str(REPO_ROOT / "build-bench"))


def write_results_section(heading: str, text: str) -> None:
    """Replaces the "## {heading}" section of bench/RESULTS.md (up to the next "## " heading),
    or appends it; other sections are left as they are."""
    old = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "# Benchmark results\n"
    m = re.search(rf"^## {re.escape(heading)}\s*$", old, re.M)
    if m:
        nxt = re.search(r"^## ", old[m.end():], re.M)
        end = m.end() + nxt.start() if nxt else len(old)
        new = old[:m.start()] + text.rstrip("\n") + "\n\n" + old[end:].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    RESULTS_FILE.write_text(new.rstrip("\n") + "\n")


# --------------------------------------------------------------------------------------------
# load


_WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class LoadResult:
    """What a load client reports for one run; run_wrk() makes one, other clients (the
    WebSocket load generator) should too. `requests` counts operations (requests, messages)."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors + non-2xx/3xx responses
    client_cpu_s: float = 0.0  # the load client's own CPU (utime+stime)
    raw: dict = field(default_factory=dict)


WrkResult = LoadResult


def children_cpu_seconds() -> float:
    """utime+stime of every waited-for child of this Python process so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat: user nice system irq
    softirq steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


LOCK_PATH = "/tmp/portico-bench.lock"
_lock_fd: int | None = None


def acquire_run_lock(say: bool = True) -> bool:
    """Takes the machine-wide benchmark lock (flock on LOCK_PATH) so that two benchmarks never
    measure at the same time; blocks while another one measures (saying so on stderr if `say`).
    Idempotent. Returns whether it had to wait."""
    global _lock_fd
    if _lock_fd is not None:
        return False
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o666)
    waited = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if say:
            log("another benchmark is measuring: waiting for it")
        fcntl.flock(fd, fcntl.LOCK_EX)
        waited = True
    _lock_fd = fd
    return waited


def release_run_lock() -> None:
    global _lock_fd
    if _lock_fd is not None:
        os.close(_lock_fd)  # closing drops the flock
        _lock_fd = None


def wait_quiet(max_busy: float = 0.10, window: float = 1.0, timeout: float = 300.0,
               own: Sequence["Service"] = ()) -> float:
    """Waits until the machine is quiet: over `window` seconds, the CPU used by everything but
    the `own` services is at most max_busy of one core. Other people's compilers on a shared
    2-core machine skew CPU-per-request figures. Returns the seconds waited (gives up after
    timeout and says so).

    Returns holding the benchmark lock (acquire_run_lock); the next measure() releases it, so
    a concurrent benchmark cannot start between the check and the run."""
    start = time.monotonic()
    warned = False
    said_lock = False
    while True:
        said_lock |= acquire_run_lock(say=not said_lock)
        b0, o0 = machine_busy_seconds(), sum(s.cpu() for s in own)
        time.sleep(window)
        busy = (machine_busy_seconds() - b0) - (sum(s.cpu() for s in own) - o0)
        waited = time.monotonic() - start
        if busy / window <= max_busy:
            if waited > window * 1.5:
                log(f"machine quiet again after {waited:.0f} s")
            return waited
        if waited > timeout:
            log(f"machine still busy after {timeout:.0f} s: measuring anyway")
            return waited
        if not warned:
            log(f"machine busy ({busy / window:.0%} of a core outside the benchmark): waiting")
            warned = True
        release_run_lock()  # let another benchmark measure while we wait


def run_wrk(url: str, *, threads: int = 1, connections: int = 64, duration: float = 5.0,
            extra: Sequence[str] = ()) -> WrkResult:
    """One `wrk --latency` run; figures come from a Lua done() hook (exact, not rounded text)."""
    global _wrk_script
    if _wrk_script is None:
        fd, path = tempfile.mkstemp(prefix="portico-bench-wrk-", suffix=".lua")
        os.write(fd, _WRK_LUA.encode())
        os.close(fd)
        _wrk_script = path
        atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--latency",
            "-s", _wrk_script, *extra, url]
    cpu0 = children_cpu_seconds()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    prioritize(proc.pid)  # --nice / --fifo: the load client too, as every process started here
    try:
        stdout, stderr = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    out = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    client_cpu = children_cpu_seconds() - cpu0
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    d = json.loads(line[len("WRKJSON "):])
    secs = d["duration_us"] / 1e6
    errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return LoadResult(d["requests"], secs, d["requests"] / secs, d["p50_us"] / 1000,
                      d["p99_us"] / 1000, errors, client_cpu, d)


_wrk_script: str | None = None


@dataclass
class Sample:
    """One measured load run against one contender."""

    name: str
    round: int
    rps: float
    p99_ms: float
    cpu_s: float  # proxy CPU seconds during the run
    requests: int
    errors: int
    extra: dict = field(default_factory=dict)  # deltas of measure()'s counters
    foreign_cpu_s: float = 0.0  # CPU used during the run by processes outside the benchmark
    user_cpu_s: float = 0.0  # the part of cpu_s spent in user space (the rest is the kernel's)

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")

    @property
    def user_share(self) -> float:
        """The user-space part of the proxy's CPU: what instruction counts can move at most."""
        return self.user_cpu_s / self.cpu_s if self.cpu_s > 0 else float("nan")


def measure(svc: Service, load: Callable[[], LoadResult], round_no: int = 0,
            counters: Callable[[], dict[str, float]] | None = None,
            helpers: Sequence[Service] = ()) -> Sample:
    """Runs load() with the service's CPU (all its processes) sampled just before and after.

    counters: optional extra gauges read before and after (outside the CPU window); their
    differences land in Sample.extra (e.g. the backend's accepted connections).
    helpers: the other services taking part (the backend); with the proxy and the load client
    they are subtracted from the machine's busy time to give Sample.foreign_cpu_s, the noise.
    Holds the machine-wide benchmark lock during the run (see acquire_run_lock).
    """
    acquire_run_lock()
    try:
        c0 = counters() if counters else {}
        pids = svc.pids()
        helper_pids = [p for h in helpers for p in h.pids()]
        busy0, help0 = machine_busy_seconds(), cpu_seconds(helper_pids)
        before, user_before = cpu_seconds(pids), cpu_seconds(pids, user_only=True)
        r = load()
        after, user_after = cpu_seconds(pids), cpu_seconds(pids, user_only=True)
        busy1, help1 = machine_busy_seconds(), cpu_seconds(helper_pids)
    finally:
        release_run_lock()
    if not svc.alive():
        raise RuntimeError(f"{svc.name} died during the run:\n{svc.log_tail()}")
    c1 = counters() if counters else {}
    extra = {k: c1[k] - c0[k] for k in c0 if k in c1}
    foreign = (busy1 - busy0) - (after - before) - (help1 - help0) - r.client_cpu_s
    return Sample(svc.name, round_no, r.rps, r.p99_ms, after - before, r.requests, r.errors,
                  extra, max(foreign, 0.0), user_after - user_before)


def start_contenders(names: Sequence[str], starters: dict[str, Callable[[], "Service"]],
                     notes: list[str]) -> dict[str, "Service"]:
    """Starts each contender; one that does not start is left out with a note (the others still
    run), so a missing peer does not cost the whole comparison."""
    services: dict[str, Service] = {}
    for p in names:
        try:
            services[p] = starters[p]()
        except RuntimeError as e:
            notes.append(f"{p} did not start: {str(e).splitlines()[0]}")
            log(f"{p} did not start: {e}")
            continue
        log(f"{p} on port {services[p].port}, pids {services[p].pids()}")
    return services


def unless_noisy(run: Callable[[], Sample], duration: float, max_foreign: float) -> Sample:
    """run() (which waits for a quiet machine itself) once more, up to 3 times, while outside
    processes took more than twice the max_foreign allowance of a core during it (and at least a
    quarter of a core); max_foreign < 0: once, whatever the noise."""
    for attempt in range(4):
        s = run()
        noisy = s.foreign_cpu_s / duration > max(2 * max_foreign, 0.25)
        if max_foreign < 0 or not noisy or attempt == 3:
            return s
        log(f"{s.name}: {s.foreign_cpu_s:.2f} s of outside CPU during the run: again")
    return s


def alternate(contenders: Sequence[str], rounds: int, run_one: Callable[[str, int], Sample],
              rotate: bool = True) -> dict[str, list[Sample]]:
    """Runs every contender once per round; each round starts one further along the list so no
    contender always follows the same one. Returns the samples per contender."""
    out: dict[str, list[Sample]] = {c: [] for c in contenders}
    n = len(contenders)
    for r in range(rounds):
        order = [contenders[(i + r) % n] for i in range(n)] if rotate else list(contenders)
        for c in order:
            s = run_one(c, r)
            out[c].append(s)
            extra = "".join(f"  {k} {v:g}" for k, v in s.extra.items())
            log(f"round {r + 1}/{rounds} {c:<10} {s.rps:>8.0f} req/s  p99 {s.p99_ms:6.2f} ms  "
                f"cpu {s.cpu_per_million:6.2f} s/1M  user {s.user_share:4.0%}  errors {s.errors}  "
                f"foreign_cpu {s.foreign_cpu_s:.2f} s{extra}")
    return out


# --------------------------------------------------------------------------------------------
# diagnostics: syscalls and profiles while a load runs (both slow the proxy: never mix these
# runs with the measured ones)


def _attach(argv: Sequence[str], out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=open(out, "wb"),
                            start_new_session=True)
    time.sleep(1.0)  # let the tracer attach to every thread
    return proc


def _detach(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def strace_counts(svc: Service, load: Callable[[], LoadResult]) -> tuple[dict[str, int], LoadResult]:
    """Runs load() with `strace -c -f` attached to every process of svc; returns the calls per
    syscall name and the load's result. Needs /usr/bin/strace."""
    out = svc.workdir / "strace.txt"
    argv = ["strace", "-c", "-f", "-o", str(out)]
    for pid in svc.pids():
        argv += ["-p", str(pid)]
    tracer = _attach(argv, svc.workdir / "strace.log")
    try:
        r = load()
    finally:
        _detach(tracer)
    calls: dict[str, int] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        # "% time seconds usecs/call calls [errors] syscall"
        if len(parts) in (5, 6) and parts[-1] != "total" and parts[3].isdigit():
            calls[parts[-1]] = int(parts[3])
    return calls, r


def context_switches(pids: Sequence[int]) -> tuple[int, int]:
    """Voluntary and involuntary context switches so far of every thread of pids."""
    vol = invol = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                for line in Path(f"/proc/{pid}/task/{t}/status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
            except OSError:
                continue
    return vol, invol


def perf_passes(svc: Service, load: Callable[[], LoadResult]) -> tuple[dict[str, float], LoadResult]:
    """Per event-loop pass of svc during load(), from `perf record` of syscall tracepoints (the
    proxy runs its own code; only the kernel records): epoll_wait returns (passes, events per
    pass), syscalls, and connect/close per pass. Returns per-request figures: passes, events per
    pass, syscalls, connects, and `opens_in_closing_pass`, the share of connects made in a pass
    that also closed a socket (a pool closing connections that the same pass then opens again),
    plus context switches (voluntary, involuntary: /proc) per request."""
    data = svc.workdir / "passes.data"
    pids = svc.pids()
    cs0 = context_switches(pids)
    rec = _attach(["perf", "record", "-q", "-o", str(data), "-e",
                   "syscalls:sys_exit_epoll_wait,syscalls:sys_enter_connect,syscalls:sys_enter_close,"
                   "raw_syscalls:sys_enter", "-p", ",".join(str(p) for p in pids)], svc.workdir / "perf.log")
    try:
        r = load()
    finally:
        _detach(rec)
    cs1 = context_switches(pids)
    text = subprocess.run(["perf", "script", "-i", str(data), "-F", "event,trace"],
                          capture_output=True, text=True).stdout
    passes = events = syscalls = connects = in_closing = 0
    pass_connects = pass_closes = 0

    def end_pass() -> None:
        nonlocal in_closing
        in_closing += min(pass_connects, pass_closes)

    for line in text.splitlines():
        if "sys_exit_epoll_wait" in line:
            end_pass()
            passes += 1
            pass_connects = pass_closes = 0
            ret = int(line.rsplit("0x", 1)[1], 16) if "0x" in line else 0
            events += ret if ret < 1 << 31 else 0
        elif "sys_enter_connect" in line:
            connects += 1
            pass_connects += 1
        elif "sys_enter_close" in line:
            pass_closes += 1
        elif "raw_syscalls:sys_enter" in line:
            syscalls += 1
    end_pass()
    n = max(r.requests, 1)
    return {"passes": passes / n, "events_per_pass": events / max(passes, 1), "syscalls": syscalls / n,
            "connects": connects / n, "opens_in_closing_pass": in_closing / max(connects, 1),
            "voluntary_cs": (cs1[0] - cs0[0]) / n, "involuntary_cs": (cs1[1] - cs0[1]) / n}, r


def perf_profile(svc: Service, load: Callable[[], LoadResult], limit: float = 1.0) -> tuple[str, LoadResult]:
    """Runs load() under `perf record -e cpu-clock -g` on every process of svc; returns the
    `perf report` lines (symbols at or above `limit` percent, self time) and the load's result."""
    data = svc.workdir / "perf.data"
    pids = ",".join(str(p) for p in svc.pids())
    rec = _attach(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", str(data),
                   "-p", pids], svc.workdir / "perf.log")
    try:
        r = load()
    finally:
        _detach(rec)
    def report(sort: str, pct: float) -> list[str]:
        rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                              "-g", "none", "--sort", sort, "--percent-limit", str(pct)],
                             capture_output=True, text=True)
        return [l.rstrip(" -") for l in rep.stdout.splitlines()
                if l.strip() and not l.startswith("#")]

    text = ["by object:", *report("dso", 0.5), f"by symbol (>= {limit:g}%):",
            *report("dso,symbol", limit)]
    return "\n".join(text), r


class Callgrind:
    """User-space instructions of a server over one load, counted by valgrind's callgrind: start
    the server under wrap(), then zero() when the load is about to begin and dump() when it
    ended (callgrind_control), and read the dump: total() instructions and top() functions.
    Exact and repeatable on a shared machine, where timed CPU figures move by +-15%."""

    def __init__(self, workdir: Path, name: str):
        self.out = Path(workdir) / f"callgrind.{name}"

    def wrap(self) -> list[str]:
        return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}", "--vgdb=yes"]

    @staticmethod
    def _control(pid: int, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True, timeout=120)

    def zero(self, pid: int) -> None:
        self._control(pid, "-z")

    def dump(self, pid: int) -> Path:
        """Dumps the counters since zero(); returns the newest dump file."""
        self._control(pid, "-d")
        dumps = sorted(self.out.parent.glob(self.out.name + ".*"), key=lambda p: p.stat().st_mtime)
        return dumps[-1] if dumps else self.out

    @staticmethod
    def total(dump: Path) -> int:
        text = subprocess.run(["callgrind_annotate", str(dump)], capture_output=True, text=True).stdout
        return int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))

    # The allocator's entry points: operator new, strdup, libevent's mm_malloc and OpenSSL's
    # CRYPTO_malloc all end in one of these, so each allocation is counted once.
    ALLOCATORS = ("malloc", "calloc", "realloc")

    @staticmethod
    def allocations(dump: Path) -> int:
        """Calls to malloc, calloc and realloc in the dump (callgrind counts every call; a
        name is written out once, later references give its number only)."""
        names: dict[str, str] = {}
        total, callee = 0, ""
        with open(dump, errors="replace") as f:
            for line in f:
                if line.startswith("cfn="):
                    m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                    if m:
                        if m.group(2) is not None:
                            names[m.group(1)] = m.group(2)
                        callee = names.get(m.group(1), "")
                elif line.startswith("fn="):
                    m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                    if m and m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                elif line.startswith("calls=") and callee in Callgrind.ALLOCATORS:
                    total += int(line[6:].split()[0])
        return total

    @staticmethod
    def top(dump: Path, ops: int, n: int = 12) -> list[str]:
        """The n functions with the most instructions of their own, per operation (ops)."""
        text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(dump)],
                              capture_output=True, text=True).stdout
        rows = []
        for line in text.splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S.*)$", line)
            if not m or "PROGRAM TOTALS" in line or float(m.group(2)) > 99.0:
                continue  # the thread's entry points, which callgrind charges everything to
            ir = int(m.group(1).replace(",", ""))
            name = m.group(3).split(" [")[0]
            name = re.sub(r"^\S*:", "", name) if "???" not in name else name
            rows.append(f"{ir / ops:8.0f} Ir {float(m.group(2)):5.1f}%  {name[:110]}")
            if len(rows) >= n:
                break
        return rows


# --------------------------------------------------------------------------------------------
# reporting


def median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def fmt_ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}x" if b else "-"


def target_row(what: str, ok: bool, detail: str) -> list[str]:
    return [what, "met" if ok else "**missed**", detail]


def idle_table(idle: dict[str, list[dict]], digits: int) -> tuple[str, dict[str, float]]:
    """The markdown rows of an idle-memory table from hold_idle()'s records per contender
    (medians; ratios against HAProxy and nginx where measured) and the KB per connection."""
    kb = {p: median(r["per_conn"] for r in recs) / 1000 for p, recs in idle.items() if recs}
    rows = [[p, f"{kb[p]:.{digits}f}", f"{median(r['rss0'] for r in recs) / 2**20:.1f}",
             f"{median(r['rss1'] for r in recs) / 2**20:.1f}", recs[0]["procs"],
             fmt_ratio(kb[p], kb.get("haproxy")), fmt_ratio(kb[p], kb.get("nginx"))]
            for p, recs in idle.items() if recs]
    table = markdown_table(["Proxy", "RSS KB / connection", "RSS before (MiB)", "RSS with conns (MiB)",
                            "processes", "vs HAProxy", "vs nginx"], rows)
    return table, kb


def noise_line(samples: Sequence[Sample], duration: float) -> str:
    """How much CPU processes outside the benchmark took during the runs (share of a core)."""
    foreign = [s.foreign_cpu_s / duration for s in samples] or [0.0]
    return (f"CPU used by processes outside the benchmark during a run: median "
            f"{median(foreign):.0%}, max {max(foreign):.0%} of a core.")


def paired_ratio(samples: Sequence[Sample], base: Sequence[Sample], value: Callable[[Sample], float]) -> float:
    """Median over rounds of value(sample) / value(base sample of the same round). Runs of one
    round are minutes apart at most, so the ratio cancels the slow drift of a shared machine
    that a ratio of medians keeps."""
    return median(paired_ratios(samples, base, value))


def paired_ratios(samples: Sequence[Sample], base: Sequence[Sample], value: Callable[[Sample], float]) -> list[float]:
    """value(sample) / value(base sample of the same round), round by round."""
    by_round = {b.round: value(b) for b in base}
    return [value(s) / by_round[s.round] for s in samples if by_round.get(s.round)]


def fmt_paired(samples: Sequence[Sample], base: Sequence[Sample] | None, value: Callable[[Sample], float]) -> str:
    """The median per-round ratio with its spread, "0.90x (0.84-0.97)"; "-" without a base.
    A machine that switches speed modes between rounds shows up as a wide spread here, where a
    ratio of medians would mix the modes silently."""
    ratios = paired_ratios(samples, base, value) if base else []
    if not ratios:
        return "-"
    lo, hi = spread(ratios)
    return f"{median(ratios):.2f}x ({lo:.2f}-{hi:.2f})"


def spread(xs: Iterable[float]) -> tuple[float, float]:
    xs = list(xs)
    return (min(xs), max(xs)) if xs else (float("nan"), float("nan"))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def machine_summary() -> str:
    """CPU model, core count and kernel, for the results file."""
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Linux {os.uname().release}"


def git_revision(repo: Path = REPO_ROOT) -> str:
    """Short commit of the checkout, with "+changes" when src/, include/ or CMake files differ
    from it (read-only git commands)."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "src",
                                "include", "CMakeLists.txt", "cmake"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"
    return (head or "?") + ("+changes" if dirty else "")


def tool_version(argv: Sequence[str]) -> str:
    """First line of a tool's version output (stdout or stderr)."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"
