# SPDX-License-Identifier: Apache-2.0
"""A TCP relay on 127.0.0.1 that can go silent: freeze() makes every connection open at that
moment drop what it relays, both ways, while its sockets stay open (a subscription that
delivers nothing, as after a failover behind a proxy); connections made later relay normally."""

import socket
import threading


class TcpFreezer:
    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open = []       # [client, upstream, frozen flag holder]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            state = {"frozen": False}
            with self.lock:
                self.open.append((client, upstream, state))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, state), daemon=True).start()

    def _pump(self, src, dst, state):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass
                return
            if state["frozen"]:
                continue
            try:
                dst.sendall(data)
            except OSError:
                return

    def freeze(self):
        with self.lock:
            for _, _, state in self.open:
                state["frozen"] = True
            return len(self.open)

    def close(self):
        self.closed = True
        self.listener.close()
        with self.lock:
            for c, u, _ in self.open:
                for s in (c, u):
                    try:
                        s.close()
                    except OSError:
                        pass
