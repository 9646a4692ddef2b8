# SPDX-License-Identifier: Apache-2.0
"""Starts the real `portico` binary for integration tests.

    class MyTest(PorticoTestCase):
        def test_x(self):
            b = self.start_backend(name="a")                       # backends.HttpBackend
            p = self.start_portico(make_config(
                upstreams={"app": {"servers": [b.address]}},
                routes=[{"path": "/", "upstream": "app"}]))
            r = self.client(p.port).roundtrip("GET", "/")          # http_client.RawClient

start_portico writes the YAML (from a dict via to_yaml, or text as is) into a temporary
directory, runs `PORTICO_BIN -c FILE`, reads stderr until one "listening on HOST:PORT" line per
listener has arrived, and registers a cleanup that sends SIGTERM and fails the test unless the
process exits 0 (it is killed when it does not exit in time). stdout and stderr are collected
on threads: p.stdout_lines(), p.stderr_text(), p.wait_stdout(pred).

Environment: PORTICO_BIN (the binary; default build/portico under PORTICO_SOURCE_DIR),
PORTICO_SOURCE_DIR (repo root), PORTICO_TEST_SLOW (a factor for timeouts; 3 by default when
the binary is an AddressSanitizer build), PORTICO_TEST_RSS_MB (memory budget, see rss_limit_kb).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import uring_probe

import backends
import http_client

__all__ = ["Portico", "PorticoTestCase", "PorticoError", "make_config", "proxy_config", "to_yaml",
           "portico_bin", "source_dir", "run_portico", "RssSampler", "slow_factor",
           "LEAN_ASAN_ENV", "quarantine_slack_kb", "rss_limit_kb", "read_rss_kb", "with_test_io_uring"]

_LISTEN_RE = re.compile(r"listening on (\[[^\]]*\]|[^\s\[\]]+?):(\d+)\b")


class PorticoError(Exception):
    pass


def source_dir():
    return os.environ.get("PORTICO_SOURCE_DIR") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", ".."))


def portico_bin():
    b = os.environ.get("PORTICO_BIN") or os.path.join(source_dir(), "build", "portico")
    if not os.path.exists(b):
        raise unittest.SkipTest("portico binary not found at %s (set PORTICO_BIN)" % b)
    return b


_asan_cache = {}


def binary_uses_asan(path=None):
    """True when the binary was built with AddressSanitizer (references __asan_init)."""
    try:
        path = path or portico_bin()
    except unittest.SkipTest:
        return False
    if path not in _asan_cache:
        try:
            with open(path, "rb") as f:
                _asan_cache[path] = b"__asan_init" in f.read()
        except OSError:
            _asan_cache[path] = False
    return _asan_cache[path]


def slow_factor():
    """Multiplier for timeouts: PORTICO_TEST_SLOW if set, else 3 for a sanitizer build, else 1."""
    v = os.environ.get("PORTICO_TEST_SLOW")
    if v:
        try:
            return max(1.0, float(v))
        except ValueError:
            pass
    return 3.0 if binary_uses_asan() else 1.0


# ---------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------
def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists/scalars (strings double-quoted). Empty containers are
    written in flow style ({} / [])."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = k if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", str(k)) else json.dumps(str(k))
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, key))
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, dict):
                out.append("%s%s: {}" % (pad, key))
            elif isinstance(v, list):
                out.append("%s%s: []" % (pad, key))
            else:
                out.append("%s%s: %s" % (pad, key, _scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                sub = to_yaml(item, indent + 1).split("\n")
                first = sub[0][len(pad) + 2:]
                out.append("%s- %s" % (pad, first))
                out.extend(sub[1:])
            elif isinstance(item, list) and item:
                out.append("%s-" % pad)
                out.append(to_yaml(item, indent + 1))
            else:
                out.append("%s- %s" % (pad, _scalar(item) if not isinstance(item, (dict, list))
                                       else ("{}" if isinstance(item, dict) else "[]")))
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


def make_config(routes, upstreams=None, listeners=1, workers=2, access="stdout",
                level="info", limits=None, shutdown_timeout="3s", **extra):
    """A config dict: `listeners` port-0 listeners on 127.0.0.1 (or a list of addresses),
    the given upstreams (name -> dict) and routes (list of dicts), log settings, limits
    (dict merged into "limits"), and any other top-level keys. shutdown_timeout is short by
    default so that a test that leaves a request hanging does not stall its cleanup."""
    if isinstance(listeners, int):
        listeners = ["127.0.0.1:0"] * listeners
    cfg = {}
    if workers is not None:
        cfg["workers"] = workers
    if shutdown_timeout is not None:
        cfg["shutdown_timeout"] = shutdown_timeout
    cfg["log"] = {"level": level, "access": access}
    if limits:
        cfg["limits"] = dict(limits)
    cfg["listeners"] = [{"address": a} if isinstance(a, str) else a for a in listeners]
    if upstreams:
        cfg["upstreams"] = upstreams
    cfg["routes"] = routes
    cfg.update(extra)
    return cfg


def proxy_config(backend_addresses, path="/", route_extra=None, upstream_extra=None, **kw):
    """make_config with one upstream "app" over backend_addresses and one route to it."""
    if isinstance(backend_addresses, str):
        backend_addresses = [backend_addresses]
    up = {"servers": list(backend_addresses)}
    up.update(upstream_extra or {})
    route = {"path": path, "upstream": "app"}
    route.update(route_extra or {})
    return make_config(routes=[route], upstreams={"app": up}, **kw)


def with_test_io_uring(config):
    """PORTICO_TEST_IO_URING=on|auto runs a test file's Portico processes with that `io_uring`
    (CTest's *_uring variants of the tunnel tests), unless the test set the key itself."""
    mode = uring_probe.test_mode()
    if not mode:
        return config
    if isinstance(config, dict):
        if "io_uring" not in config and "listeners" in config:
            config = dict(config, io_uring=mode)
        return config
    if "io_uring" not in config and "listeners" in config:
        # At the end: the lines a test's errors name stay where they were.
        config = "%s%sio_uring: %s\n" % (config, "" if config.endswith("\n") else "\n", mode)
    return config


# ---------------------------------------------------------------------------------------------
# The process
# ---------------------------------------------------------------------------------------------
class Portico:
    """One running portico process. Construct, then start(); stop() when done."""

    def __init__(self, config, workdir, listeners=None, args=(), env=None,
                 config_name="portico.yaml", binary=None):
        self.workdir = workdir
        self.config = config
        self.config_path = os.path.join(workdir, config_name)
        config = with_test_io_uring(config)
        self.config = config
        text = to_yaml(config) + "\n" if isinstance(config, dict) else config
        with open(self.config_path, "w") as f:
            f.write(text)
        self.config_text = text
        if listeners is None:
            listeners = len(config.get("listeners", [])) if isinstance(config, dict) else 1
        self.expected_listeners = listeners
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.binary = binary or portico_bin()
        self.proc = None
        self.addresses = []          # [(host, port)] in "listening on" order
        self.returncode = None
        self._out = []
        self._err = []
        self._cond = threading.Condition()
        self._threads = []

    # -- start -------------------------------------------------------------------------------
    def start(self, timeout=15.0):
        timeout *= slow_factor()
        cmd = [self.binary, "-c", self.config_path] + self.args
        # cwd is "/" on purpose: relative paths in the config must resolve against the config
        # file's folder, not the working directory
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env, cwd="/")
        for stream, store in ((self.proc.stdout, self._out), (self.proc.stderr, self._err)):
            t = threading.Thread(target=self._reader, args=(stream, store), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._parse_listening()
                if len(self.addresses) >= self.expected_listeners:
                    break
                if self.proc.poll() is not None:
                    self._cond.wait(0.2)  # let the readers drain
                    raise PorticoError("portico exited with %s before listening:\n%s"
                                       % (self.proc.returncode, self.stderr_text()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PorticoError(
                        "portico did not report %d listener(s) within %.0fs; stderr:\n%s"
                        % (self.expected_listeners, timeout, self.stderr_text()))
                self._cond.wait(min(left, 0.1))
        return self

    def _reader(self, stream, store):
        for line in iter(stream.readline, b""):
            with self._cond:
                store.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                self._cond.notify_all()
        stream.close()

    def _parse_listening(self):
        found = []
        for line in self._err:
            m = _LISTEN_RE.search(line)
            if m and 0 < int(m.group(2)) < 65536:
                host = m.group(1).strip("[]")
                addr = (host, int(m.group(2)))
                if addr not in found:
                    found.append(addr)
        self.addresses = found

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self):
        return self.addresses[0][1]

    @property
    def pid(self):
        return self.proc.pid

    def connect_host(self, i=0):
        host = self.addresses[i][0]
        if host in ("0.0.0.0", "*", ""):
            return "127.0.0.1"
        if host == "::":
            return "::1"
        return host

    def url(self, i=0, path="/"):
        host = self.connect_host(i)
        if ":" in host:
            host = "[%s]" % host
        return "http://%s:%d%s" % (host, self.addresses[i][1], path)

    # -- output ------------------------------------------------------------------------------
    def stdout_lines(self):
        with self._cond:
            return list(self._out)

    def stderr_lines(self):
        with self._cond:
            return list(self._err)

    def stderr_text(self):
        return "\n".join(self.stderr_lines())

    def wait_stdout(self, pred, timeout=5.0, start=0):
        """Waits for a stdout line (index >= start) with pred(line) true; returns it or None."""
        return self._wait_line(self._out, pred, timeout, start)

    def wait_stderr(self, pred, timeout=5.0, start=0):
        return self._wait_line(self._err, pred, timeout, start)

    def _wait_line(self, store, pred, timeout, start):
        deadline = time.monotonic() + timeout * slow_factor()
        with self._cond:
            while True:
                for line in store[start:]:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))

    def access_log(self, timeout=5.0, count=1, start=0):
        """Waits until `count` JSON lines (from index start) are on stdout; returns them parsed
        (non-JSON lines are skipped)."""
        deadline = time.monotonic() + timeout * slow_factor()
        while True:
            entries = []
            for line in self.stdout_lines()[start:]:
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict):
                    entries.append(doc)
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.05)

    # -- process -----------------------------------------------------------------------------
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout * slow_factor())
        except subprocess.TimeoutExpired:
            return None
        for t in self._threads:
            t.join(2)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig and waits; kills (SIGKILL) after timeout. Returns the exit code, or raises
        PorticoError when it had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            rc = self.wait(timeout)
            if rc is None:
                self.kill()
                raise PorticoError("portico did not exit within %.0fs of %s; stderr tail:\n%s"
                                   % (timeout * slow_factor(), signal.Signals(sig).name,
                                      "\n".join(self.stderr_lines()[-30:])))
            return rc
        return self.wait(5)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for t in self._threads:
            t.join(2)

    def rss_kb(self):
        """Current VmRSS of the process in KiB (None if it is gone)."""
        return read_rss_kb(self.proc.pid)

    def uses_asan(self):
        try:
            with open("/proc/%d/maps" % self.proc.pid) as f:
                return "libasan" in f.read()
        except OSError:
            return False


def read_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples a process's VmRSS on a thread: with RssSampler(pid) as s: ...; s.max_kb."""

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            v = read_rss_kb(self.pid)
            if v is not None:
                self.samples.append(v)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        return False

    @property
    def max_kb(self):
        return max(self.samples) if self.samples else 0


# Env for memory tests: keeps AddressSanitizer's quarantine of freed memory small so that RSS
# reflects live buffers (harmless for a normal build).
LEAN_ASAN_QUARANTINE_KB = 8 * 1024 + 256  # what LEAN_ASAN_ENV lets the quarantine hold
LEAN_ASAN_ENV = {"ASAN_OPTIONS": ":".join(
    x for x in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=8",
                "thread_local_quarantine_size_kb=256") if x)}


def quarantine_slack_kb(portico):
    """Freed memory that a sanitizer build under LEAN_ASAN_ENV may still hold (its quarantine):
    an RSS bound on live buffers adds this under ASan, 0 for a normal build."""
    return LEAN_ASAN_QUARANTINE_KB if portico.uses_asan() else 0


def rss_limit_kb(portico, baseline_kb, budget_mb=64):
    """The RSS ceiling for a memory test: budget_mb absolute for a normal build, baseline +
    budget_mb under AddressSanitizer (its shadow memory and allocator make the absolute figure
    meaningless); PORTICO_TEST_RSS_MB overrides the budget."""
    budget_mb = int(os.environ.get("PORTICO_TEST_RSS_MB", budget_mb))
    if portico.uses_asan():
        return baseline_kb + budget_mb * 1024
    return budget_mb * 1024


def run_portico(args, timeout=20.0, cwd=None, env=None):
    """Runs the binary with args to completion; returns subprocess.CompletedProcess (text)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([portico_bin()] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout * slow_factor(),
                          cwd=cwd, env=e)


# ---------------------------------------------------------------------------------------------
# TestCase base
# ---------------------------------------------------------------------------------------------
class PorticoTestCase(unittest.TestCase):
    """unittest.TestCase with helpers that clean up after themselves."""

    maxDiff = 4000

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="portico-test-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def start_portico(self, config, listeners=None, args=(), env=None, expect_exit=0,
                      workdir=None, stop_timeout=15.0, config_name="portico.yaml", binary=None):
        """Starts portico on config (dict or YAML text); on cleanup stops it with SIGTERM and
        fails unless it exits with expect_exit (None: any exit code is fine)."""
        workdir = workdir or self.tmpdir()
        if uring_probe.test_mode() == "on" and uring_probe.io_uring_refusal():
            self.skipTest(uring_probe.io_uring_refusal())
        p = Portico(config, workdir, listeners=listeners, args=args, env=env,
                    config_name=config_name, binary=binary)
        self.addCleanup(self._stop_portico, p, expect_exit, stop_timeout)
        p.start()
        return p

    def _stop_portico(self, p, expect_exit, stop_timeout):
        if p.proc is None:
            return
        try:
            rc = p.stop(timeout=stop_timeout)
        finally:
            p.kill()
        if expect_exit is not None and rc != expect_exit:
            raise AssertionError("portico exited with %r (expected %r); stderr tail:\n%s"
                                 % (rc, expect_exit, "\n".join(p.stderr_lines()[-40:])))

    def start_backend(self, **kwargs):
        return backends.start_backend(self, **kwargs)

    def client(self, port, host="127.0.0.1", timeout=10.0, **kw):
        return http_client.raw_client(self, port, host=host, timeout=timeout * slow_factor(),
                                      **kw)

    def proxy(self, backend_or_addresses, path="/", route_extra=None, upstream_extra=None,
              **kw):
        """Starts portico proxying `path` to the given backend(s) (HttpBackend or addresses)."""
        items = backend_or_addresses if isinstance(backend_or_addresses, (list, tuple)) \
            else [backend_or_addresses]
        addrs = [b.address if isinstance(b, backends.HttpBackend) else b for b in items]
        return self.start_portico(proxy_config(addrs, path=path, route_extra=route_extra,
                                               upstream_extra=upstream_extra, **kw))

    def assertClosed(self, client, timeout=3.0, msg=None):
        """The server closes the connection within timeout * slow_factor(): a bound on the wait,
        not a timing claim."""
        closed = client.wait_closed(timeout * slow_factor())
        self.assertTrue(closed, msg or "server kept the connection open (extra bytes %r)"
                        % client.extra()[:300])

    def assertOpen(self, client, timeout=0.3, msg=None):
        closed = client.wait_closed(timeout)
        self.assertFalse(closed, msg or "server closed the connection")


def main():
    """unittest.main() that exits non-zero on failure (for CTest)."""
    unittest.main(verbosity=2)
