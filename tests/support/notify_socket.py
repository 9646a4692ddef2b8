# SPDX-License-Identifier: Apache-2.0
"""A stand-in for the socket systemd hands a Type=notify service in $NOTIFY_SOCKET: a test
passes env NOTIFY_SOCKET=<path> to the process and reads what it said (sd_notify)."""

import os
import socket
import threading
import time


class NotifySocket:
    """The socket systemd gives a Type=notify service in $NOTIFY_SOCKET; collects messages."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)   # the daemon runs as portico
        self.sock.settimeout(0.2)
        self.messages = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.extend(data.decode("utf-8", "replace").split("\n"))
                self._cond.notify_all()

    def wait_for(self, line, start=0, timeout=10.0):
        """Waits until `line` ("READY=1") arrives at or after index start; returns its index+1
        or raises AssertionError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.messages)):
                    if self.messages[i] == line:
                        return i + 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s on NOTIFY_SOCKET within %.0fs; got %r"
                                         % (line, timeout, self.messages))
                self._cond.wait(min(left, 0.2))

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def lines(self):
        """Every line received so far (a message of several lines gives several)."""
        with self._cond:
            return list(self.messages)
