#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A raw-socket WebSocket backend for close and limit tests (no library in the way).

On "bye" it behaves like Django's dwebsocket under `runserver`: the view returns after its
Close frame and the WSGI server then writes an HTTP response onto the upgraded socket. Used to
check that frames mode gives the client one clean Close (RFC 6455 5.5.1).

    /usr/bin/python3 raw_ws_backend.py [--port 0] [--after close|linger]

Every connection: the handshake (101), then each text message is echoed, except:
"flood:N" sends N small text messages in one write (a backend over a rate limit);
"bye" sends Close 1000 and, right behind it in the same write, "HTTP/1.1 200 OK ..." junk.
--after close: then closes TCP at once (runserver without keep-alive); linger (default): reads
until the peer closes. Prints "listening on HOST:PORT", then one JSON line per connection end:
{"event":"close","received_close":CODE or null} (the Close the client side sent us, if any;
a connection ends at our "bye" with --after close, at the peer's Close, or at EOF).
"""

import argparse
import base64
import hashlib
import json
import socket
import struct
import sys
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
JUNK = (b"HTTP/1.1 200 OK\r\nDate: Thu, 03 Dec 2026 20:00:00 GMT\r\nServer: WSGIServer/0.2 "
        b"CPython/3.11\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 0\r\n\r\n")


def log(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def frame(opcode, payload):
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def need(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode("latin-1")

    def frame(self):
        b0, b1 = self.need(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.need(8))[0]
        key = self.need(4) if b1 & 0x80 else None
        payload = bytearray(self.need(n))
        if key:
            for i in range(n):
                payload[i] ^= key[i % 4]
        return b0 & 0x0F, bytes(payload)


def serve(sock, after):
    r = Reader(sock)
    received_close = None
    try:
        head = r.head()
        key = ""
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
        while True:
            opcode, payload = r.frame()
            if opcode == 0x8:
                received_close = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                break
            if opcode == 0x1 and payload == b"bye":
                # dwebsocket: the view returns, the Close goes out, then runserver's response.
                sock.sendall(frame(0x8, struct.pack("!H", 1000)) + JUNK)
                if after == "close":
                    break
                while True:  # linger: read until the peer closes (its Close, if any, noted)
                    opcode, payload = r.frame()
                    if opcode == 0x8 and received_close is None:
                        received_close = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            elif opcode == 0x1 and payload.startswith(b"flood:"):
                sock.sendall(b"".join(frame(0x1, b"f%d" % i) for i in range(int(payload[6:]))))
            elif opcode == 0x1:
                sock.sendall(frame(0x1, payload))
    except (EOFError, OSError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass
        log({"event": "close", "received_close": received_close})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--after", choices=("close", "linger"), default="linger")
    args = ap.parse_args()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.host, args.port))
    lsock.listen(64)
    host, port = lsock.getsockname()[:2]
    sys.stdout.write("listening on %s:%d\n" % (host, port))
    sys.stdout.flush()
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn, args.after), daemon=True).start()


if __name__ == "__main__":
    main()
