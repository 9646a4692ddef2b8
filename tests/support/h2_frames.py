# SPDX-License-Identifier: Apache-2.0
"""HTTP/2 frames built by hand, for conformance tests that must send what a well-behaved client
never would (python3-h2 refuses to): a frame is its 9-byte header and a payload (RFC 9113 4.1),
header blocks come from python3-hpack's encoder or are raw HPACK bytes. RawH2 sends them on a
plain socket (or over TLS, given an `ssl_context` offering h2) and records every frame the server
answers with, so that a test asserts on the exact GOAWAY / RST_STREAM / SETTINGS / PING /
WINDOW_UPDATE that came back."""

import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# Flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# Error codes (RFC 9113 7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM = range(12)
# Settings (RFC 9113 6.5.2)
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)


def frame(type_, flags=0, stream_id=0, payload=b""):
    """One frame: 24-bit length, type, flags, 31-bit stream id (the reserved bit as given)."""
    return struct.pack("!I", len(payload))[1:] + bytes([type_, flags]) + struct.pack("!I", stream_id) + payload


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack("!HI", k, v) for k, v in pairs))


def ping(data=b"12345678", ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def window_update(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack("!I", increment))


def rst_stream(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack("!I", code))


def goaway(last_stream_id=0, code=NO_ERROR, stream_id=0):
    return frame(GOAWAY, 0, stream_id, struct.pack("!II", last_stream_id, code))


def data(stream_id, payload, end=False):
    return frame(DATA, END_STREAM if end else 0, stream_id, payload)


class RawH2:
    """A client connection speaking frames. With `handshake`, sends the preface and an empty
    SETTINGS, reads the server's SETTINGS and acknowledges it. `frames` holds every frame read
    as (type, flags, stream_id, payload); `closed` says the server closed the connection."""

    def __init__(self, port, handshake=True, timeout=5.0, client_settings=(), ssl_context=None,
                 server_hostname=None, rcvbuf=None):
        if rcvbuf is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:  # set before the connect: the window scale is agreed in the handshake
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
        if ssl_context is not None:  # h2 over TLS: the context offers ALPN h2
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.authority = "127.0.0.1:%d" % port
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.frames = []
        self.closed = False
        self._buf = b""
        self.server_settings = {}
        if handshake:
            self.send(PREFACE + settings(*client_settings))
            first = self.next_frame(timeout)
            if first is None or first[0] != SETTINGS or first[1] & ACK:
                raise AssertionError("the server's first frame is not SETTINGS: %r" % (first,))
            payload = first[3]
            for i in range(0, len(payload), 6):
                k, v = struct.unpack("!HI", payload[i:i + 6])
                self.server_settings[k] = v
            self.send(settings(ack=True))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, *chunks):
        try:
            self.sock.sendall(b"".join(chunks))
        except OSError:
            self.closed = True

    # ---- requests ----

    def fields(self, path="/", method="GET", extra=()):
        return [(":method", method), (":scheme", "http"), (":authority", self.authority), (":path", path)] + \
            list(extra)

    def block(self, fields):
        """The HPACK block of `fields` (the connection's encoder: its dynamic table moves on)."""
        return self.encoder.encode(fields)

    def headers(self, stream_id, block, end_stream=True, end_headers=True, flags=0):
        if not isinstance(block, (bytes, bytearray)):
            block = self.block(block)
        flags |= (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, stream_id, bytes(block))

    def request(self, stream_id, path="/", method="GET", extra=(), end_stream=True):
        self.send(self.headers(stream_id, self.fields(path, method, extra), end_stream=end_stream))

    # ---- reading ----

    def next_frame(self, timeout=5.0):
        """The next frame, or None when the connection closed or nothing came in `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self._buf) >= 9:
                length = struct.unpack("!I", b"\0" + self._buf[:3])[0]
                if len(self._buf) >= 9 + length:
                    type_, flags = self._buf[3], self._buf[4]
                    stream_id = struct.unpack("!I", self._buf[5:9])[0] & 0x7FFFFFFF
                    f = (type_, flags, stream_id, self._buf[9:9 + length])
                    self._buf = self._buf[9 + length:]
                    self.frames.append(f)
                    return f
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self._buf += chunk

    def wait_for(self, pred, timeout=5.0):
        """Reads frames until one satisfies pred (returned), the connection closes or time runs
        out (None). Frames already read are looked at first."""
        for f in self.frames:
            if pred(f):
                return f
        deadline = time.monotonic() + timeout
        while True:
            f = self.next_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                return None
            if pred(f):
                return f

    def goaway(self, timeout=5.0):
        """(last_stream_id, error_code) of the server's GOAWAY, or None."""
        f = self.wait_for(lambda f: f[0] == GOAWAY, timeout)
        return None if f is None else struct.unpack("!II", f[3][:8])

    def rst(self, stream_id, timeout=5.0):
        """The error code of the server's RST_STREAM on stream_id, or None."""
        f = self.wait_for(lambda f: f[0] == RST_STREAM and f[2] == stream_id, timeout)
        return None if f is None else struct.unpack("!I", f[3])[0]

    def wait_closed(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.next_frame(deadline - time.monotonic())
        return self.closed

    def response(self, stream_id, timeout=5.0):
        """(status, headers, body) of the response on stream_id, once it ended (None if not)."""
        ended = self.wait_for(lambda f: f[2] == stream_id and f[0] in (DATA, HEADERS) and f[1] & END_STREAM or
                              f[0] == RST_STREAM and f[2] == stream_id, timeout)
        if ended is None or ended[0] == RST_STREAM:
            return None
        headers, body = None, b""
        for type_, flags, sid, payload in self.frames:
            if sid != stream_id:
                continue
            if type_ == HEADERS and headers is None:
                headers = self.decoder.decode(payload)
            elif type_ == DATA:
                body += payload
        status = int(dict(headers or [])[":status"]) if headers else 0
        return status, headers, body

    def alive(self, timeout=3.0):
        """Whether the connection still answers a PING (after a stream error, say)."""
        marker = b"alive?%02d" % (len(self.frames) % 100)
        self.send(ping(marker))
        return self.wait_for(lambda f: f[0] == PING and f[1] & ACK and f[3] == marker, timeout) is not None
