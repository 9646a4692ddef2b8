# SPDX-License-Identifier: Apache-2.0
"""A real redis-server for tests: started on a free 127.0.0.1 port in its own temporary folder,
stopped (SIGKILL for a crash, SIGTERM otherwise) and restarted on the same port by PID."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from backends import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """`persistent`: an append-only file (fsync always) so that data survives a restart."""

    def __init__(self, persistent=False, port=None, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="portico-redis-")
        self.port = port or free_port()
        self.persistent = persistent
        self.extra_args = list(extra_args)
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, timeout=10.0):
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")]
        argv += (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                 else ["--appendonly", "no"])
        argv += self.extra_args
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                pass
            except RuntimeError as e:  # -LOADING while it reads its append-only file
                if not str(e).startswith("LOADING"):
                    raise
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: %s" % self.log_tail())
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)
        self.proc = None

    def stop(self):
        self.kill(signal.SIGTERM)

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, True)

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def command(self, *args, timeout=5.0):
        """One command over RESP; returns a str, an int, a list or None (simple replies only)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            req = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                req += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(req)
            f = s.makefile("rb")
            return _read(f)


    def wait_for_command(self, *words, timeout=10.0):
        """Returns a function that blocks until Redis has run a command whose MONITOR line holds
        every one of `words` (quoted as MONITOR shows them, e.g. '"XRANGE"'), and returns that
        line; the monitor connection opens now, so a command run after this call is seen."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.sendall(b"MONITOR\r\n")
        f = s.makefile("rb")
        if _read(f) != "OK":
            raise RuntimeError("MONITOR refused")

        def wait():
            try:
                while True:
                    line = f.readline().decode("utf-8", "replace")
                    if not line:
                        raise RuntimeError("MONITOR connection closed")
                    if all(w in line for w in words):
                        return line
            finally:
                f.close()
                s.close()
        return wait


def _read(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RuntimeError("bad reply %r" % line)
