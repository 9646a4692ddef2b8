# SPDX-License-Identifier: Apache-2.0
"""A Django view that serves a WebSocket the way dwebsocket does, under `runserver`: it takes the
request's socket, answers 101 itself and speaks frames on it, and when the client closes, the
view returns an HttpResponse like any other view, which runserver then writes on the socket,
after the Close. Behind a `frames` route Portico ends the session at the Close and the client
never sees those bytes. Run it from this folder:

    /usr/bin/python3 app.py runserver --noreload 127.0.0.1:8000
"""

import base64
import hashlib
import struct
import sys

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="example-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
)
django.setup()

from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(sock):
    """(fin, opcode, payload) of one client frame (RFC 6455 5.2: client frames are masked)."""
    b0, b1 = read_exact(sock, 2)
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", read_exact(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", read_exact(sock, 8))
    mask = read_exact(sock, 4) if b1 & 0x80 else b"\0\0\0\0"
    payload = bytes(c ^ mask[i % 4] for i, c in enumerate(read_exact(sock, length)))
    return bool(b0 & 0x80), b0 & 0x0F, payload


def send_frame(sock, fin, opcode, payload):
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 65536:
        head += bytes([126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([127]) + struct.pack("!Q", len(payload))
    sock.sendall(head + payload)


def echo(request):
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return HttpResponse("hello from Django runserver behind Portico\n",
                            content_type="text/plain")
    # What dwebsocket does under runserver: the socket under the request's input stream.
    sock = request.META["wsgi.input"].stream.raw._sock
    key = request.headers["Sec-WebSocket-Key"]
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
    try:
        while True:
            fin, opcode, payload = read_frame(sock)
            if opcode == 0x8:  # Close: answer it, the session is over
                send_frame(sock, True, 0x8, payload[:2])
                break
            if opcode == 0x9:
                send_frame(sock, True, 0xA, payload)
            elif opcode in (0x0, 0x1, 0x2):
                send_frame(sock, fin, opcode, payload)
    except (EOFError, OSError):
        pass
    # dwebsocket's views return a response too: runserver writes it after the Close.
    return HttpResponse("")


urlpatterns = [path("", echo), path("ws/echo", echo)]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
