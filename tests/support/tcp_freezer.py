# SPDX-License-Identifier: Apache-2.0
"""A TCP relay on 127.0.0.1 that can go silent: freeze() makes every connection open at that
moment drop what it relays, both ways, while its sockets stay open (a subscription that
delivers nothing, as after a failover behind a proxy); connections made later relay normally.
In front of Redis it can also be slow for commands only: `reply_delay` seconds on every reply
of a connection that never sent SUBSCRIBE, while subscribe connections relay at once (a
command's answer crossing a message published after it)."""

import queue
import socket
import threading
import time


class TcpFreezer:
    def __init__(self, target_port, reply_delay=0.0):
        self.target_port = target_port
        self.reply_delay = reply_delay
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
            state = {"frozen": False, "subscriber": False}
            with self.lock:
                self.open.append((client, upstream, state))
            threading.Thread(target=self._pump, args=(client, upstream, state, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, state, False), daemon=True).start()

    def _pump(self, src, dst, state, from_client):
        if self.reply_delay and not from_client:
            # Replies wait in a queue, each until reply_delay after it came, in order.
            delayed = queue.Queue()
            threading.Thread(target=self._send_later, args=(delayed, dst, state), daemon=True).start()
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
            if from_client and b"SUBSCRIBE" in data:
                state["subscriber"] = True
            if self.reply_delay and not from_client and not state["subscriber"]:
                delayed.put((time.monotonic() + self.reply_delay, data))
                continue
            try:
                dst.sendall(data)
            except OSError:
                return

    def _send_later(self, delayed, dst, state):
        while True:
            due, data = delayed.get()
            time.sleep(max(0.0, due - time.monotonic()))
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
