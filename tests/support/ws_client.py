# SPDX-License-Identifier: Apache-2.0
"""A raw-socket WebSocket (RFC 6455) client for precise tests: exact frames, chopped writes,
invalid frames, and a strict reader of what the server sends.

    ws = WsConnection.connect(port, "/echo")               # handshake checked (101 + accept)
    ws.send_frame(OP_TEXT, b"hi", fin=False)                 # any frame: rsv, mask, lengths
    ws.send_frame(OP_CONT, b"!", chop=1)                     # written one byte at a time
    op, data = ws.recv_message()                             # reassembled; pings answered
    code, reason = ws.expect_close()                         # the server's close frame, then EOF

    r = handshake_response(port, "/echo", headers={"Sec-WebSocket-Version": "8"})   # failures

Frames from the server are checked as they are parsed (no mask, known opcode, minimal length
encoding, control frames <= 125 bytes and FIN set); a violation raises WsProtocolError, so a test
fails when Portico breaks the protocol towards the client. recv_* raise ConnectionClosed at EOF
and socket.timeout when nothing arrives in time.
"""

import base64
import hashlib
import os
import socket
import struct
import time

import http_client
from http_client import ConnectionClosed, HttpResponse  # noqa: F401  (re-exported)

__all__ = [
    "OP_CONT", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG", "GUID",
    "make_key", "accept_for", "mask_bytes", "build_frame", "close_payload", "parse_close",
    "Frame", "WsConnection", "WsProtocolError", "HandshakeError", "ConnectionClosed",
    "handshake_request", "handshake_response", "upgrade_headers",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KNOWN_OPS = {OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG}


class WsProtocolError(Exception):
    """The server sent something RFC 6455 forbids."""


class HandshakeError(Exception):
    """The server did not upgrade (or upgraded wrongly); .response is the HttpResponse."""

    def __init__(self, msg, response=None):
        super().__init__(msg)
        self.response = response


def make_key():
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key):
    """The Sec-WebSocket-Accept a server must answer for key (RFC 6455 4.2.2)."""
    if isinstance(key, str):
        key = key.encode("latin-1")
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode("ascii")


def mask_bytes(data, key):
    """data XOR the 4-byte key repeated (fast for megabytes: one big-integer XOR)."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None, length=None,
                length_bytes=None):
    """The bytes of one frame.

    opcode: 0-15 (any, also reserved ones). rsv: the 3 RSV bits as a number 0-7 (4 = RSV1).
    mask: client frames are masked (mask_key: 4 bytes, random by default). length: the length
    written in the header instead of len(payload) (a lie, for invalid frames). length_bytes:
    force the 0/2/8-byte extended length form (0 means the 7-bit field).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if length_bytes is None:
        length_bytes = 0 if n < 126 else (2 if n < 65536 else 8)
    if length_bytes == 0:
        head = struct.pack("!BB", b0, mbit | n)
    elif length_bytes == 2:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        mask_key = mask_key if mask_key is not None else os.urandom(4)
        return head + mask_key + mask_bytes(payload, mask_key)
    return head + payload


def close_payload(code=None, reason=b""):
    """A close frame body: empty when code is None, else 2-byte code + reason (str or bytes)."""
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


def parse_close(payload):
    """(code, reason bytes) of a close frame body; code None when the body is empty."""
    if len(payload) < 2:
        return None, b""
    return struct.unpack("!H", payload[:2])[0], payload[2:]


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload", "masked")

    def __init__(self, fin, rsv, opcode, payload, masked):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.payload = payload
        self.masked = masked

    @property
    def close_code(self):
        return parse_close(self.payload)[0]

    @property
    def close_reason(self):
        return parse_close(self.payload)[1]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return "<Frame op=%d fin=%d rsv=%d len=%d %r>" % (self.opcode, self.fin, self.rsv,
                                                          len(self.payload), p)


def upgrade_headers(key=None, version="13", protocols=None, extensions=None, origin=None,
                    extra=None):
    """The handshake headers as a list of (name, value); None values are left out."""
    hdrs = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key if key is not None else make_key()),
            ("Sec-WebSocket-Version", version)]
    if protocols:
        hdrs.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    if extensions:
        hdrs.append(("Sec-WebSocket-Extensions", extensions))
    if origin:
        hdrs.append(("Origin", origin))
    hdrs.extend(extra or [])
    return [(k, v) for k, v in hdrs if v is not None]


def handshake_request(client, path="/", headers=None, host="localhost", method="GET"):
    """Sends a request with exactly `headers` (list of pairs; see upgrade_headers) on an
    http_client.RawClient."""
    client.request(method, path, headers=headers, host=host)


def handshake_response(port, path="/", headers=None, host="localhost", timeout=10.0,
                       method="GET"):
    """Sends one handshake-like request on a fresh connection and reads the response (head
    only for 101, head and body otherwise). Returns (HttpResponse, RawClient); the caller closes
    the client."""
    c = http_client.RawClient(port, timeout=timeout)
    try:
        handshake_request(c, path, headers if headers is not None else upgrade_headers(),
                          host=host, method=method)
        head = c.read_head()
        if head.status == 101:
            return head, c
        # Not upgraded: read the rest as an ordinary response by re-parsing with the body.
        c.buf[0:0] = head.raw_head
        return c.read_response(method=method), c
    except BaseException:
        c.close()
        raise


class WsConnection:
    """One client WebSocket over a connected socket. Not thread-safe."""

    def __init__(self, sock, rbuf=b"", response=None, timeout=10.0):
        self.sock = sock
        self.buf = bytearray(rbuf)
        self.response = response         # the 101 HttpResponse
        self.timeout = timeout
        self.eof = False
        self.close_sent = False
        self.close_received = None       # the server's close Frame once read
        self.frames_received = 0

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def connect(cls, port, path="/", host="127.0.0.1", protocols=None, extensions=None,
                origin=None, headers=None, timeout=10.0, key=None, host_header="localhost",
                check_accept=True, rcvbuf=None, early_data=b""):
        """Connects and upgrades; raises HandshakeError (with .response) unless the answer is
        101 with the right Sec-WebSocket-Accept (check_accept). early_data: bytes (frames)
        written in the same write as the request, before the 101 arrives."""
        key = key or make_key()
        c = http_client.RawClient(port, host=host, timeout=timeout, rcvbuf=rcvbuf)
        try:
            hdrs = upgrade_headers(key=key, protocols=protocols, extensions=extensions,
                                   origin=origin, extra=headers)
            c.send(c.request("GET", path, headers=hdrs, host=host_header, send=False)
                   + early_data)
            r = c.read_head()
            if r.status != 101:
                c.buf[0:0] = r.raw_head
                try:
                    r = c.read_response()
                except Exception:
                    pass
                raise HandshakeError("expected 101, got %d %s" % (r.status, r.reason), r)
            if check_accept and r.header("Sec-WebSocket-Accept") != accept_for(key):
                raise HandshakeError("Sec-WebSocket-Accept %r, expected %r"
                                     % (r.header("Sec-WebSocket-Accept"), accept_for(key)), r)
        except BaseException:
            c.close()
            raise
        return cls(c.sock, bytes(c.buf), response=r, timeout=timeout)

    @property
    def protocol(self):
        return self.response.header("Sec-WebSocket-Protocol") if self.response else None

    @property
    def extensions(self):
        return self.response.header("Sec-WebSocket-Extensions") if self.response else None

    # -- sending --------------------------------------------------------------------------
    def send_raw(self, data, chop=None, delay=0.0):
        """Writes bytes, optionally in pieces of `chop` bytes with `delay` seconds between."""
        self.sock.settimeout(self.timeout)
        if not chop:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), chop):
            self.sock.sendall(data[i:i + chop])
            if delay:
                time.sleep(delay)

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                   length=None, length_bytes=None, chop=None, delay=0.0):
        """Builds (see build_frame) and writes one frame."""
        data = build_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, mask_key=mask_key,
                           length=length, length_bytes=length_bytes)
        if opcode == OP_CLOSE:
            self.close_sent = True
        self.send_raw(data, chop=chop, delay=delay)

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_ping(self, data=b"", **kw):
        self.send_frame(OP_PING, data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def send_message(self, opcode, data, fragment=None, chop=None):
        """A message as one frame, or split into frames of `fragment` bytes."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not fragment or len(data) <= fragment:
            self.send_frame(opcode, data, chop=chop)
            return
        pieces = [data[i:i + fragment] for i in range(0, len(data), fragment)]
        out = []
        for i, p in enumerate(pieces):
            out.append(build_frame(opcode if i == 0 else OP_CONT, p, fin=i == len(pieces) - 1))
        self.send_raw(b"".join(out), chop=chop)

    # -- receiving ------------------------------------------------------------------------
    def _fill(self, deadline):
        if self.eof:
            raise ConnectionClosed("connection closed")
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no frame from the server in time (buffered %d bytes)"
                                 % len(self.buf))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            raise ConnectionClosed("connection closed by the server (buffered %d bytes)"
                                   % len(self.buf))
        self.buf += data

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def recv_frame(self, timeout=None):
        """The next frame from the server (checked: unmasked, known opcode, minimal length,
        control frames final and <= 125 bytes)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
        masked, n = bool(b1 & 0x80), b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
            if n < 126:
                raise WsProtocolError("server used a 16-bit length for %d bytes" % n)
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
            if n < 65536 or n >> 63:
                raise WsProtocolError("server used a 64-bit length for %d bytes" % n)
        key = None
        if masked:
            self._need(pos + 4, deadline)
            key = bytes(self.buf[pos:pos + 4])
            pos += 4
        self._need(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if masked:
            payload = mask_bytes(payload, key)
        self.frames_received += 1
        frame = Frame(fin, rsv, opcode, payload, masked)
        if masked:
            raise WsProtocolError("server frame is masked: %r" % frame)
        if opcode not in _KNOWN_OPS:
            raise WsProtocolError("server frame has reserved opcode: %r" % frame)
        if opcode >= 8 and (not fin or n > 125):
            raise WsProtocolError("bad server control frame: %r" % frame)
        if opcode == OP_CLOSE:
            self.close_received = frame
        return frame

    def recv_message(self, timeout=None, auto_pong=True, allow_rsv=False):
        """The next data message, reassembled: (OP_TEXT|OP_BINARY, bytes). Pings are answered
        (auto_pong) and skipped, pongs skipped. A close frame returns (OP_CLOSE, payload).
        Raises WsProtocolError on bad fragmentation or RSV bits (unless allow_rsv)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        op = None
        parts = []
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f.rsv and not allow_rsv:
                raise WsProtocolError("server frame with RSV bits: %r" % f)
            if f.opcode == OP_PING:
                if auto_pong and not self.close_sent:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                return OP_CLOSE, f.payload
            if f.opcode == OP_CONT:
                if op is None:
                    raise WsProtocolError("continuation frame without a message: %r" % f)
            else:
                if op is not None:
                    raise WsProtocolError("new message inside a fragmented one: %r" % f)
                op = f.opcode
            parts.append(f.payload)
            if f.fin:
                return op, b"".join(parts)

    def recv_text(self, timeout=None):
        """The next message, which must be text; returns str."""
        op, data = self.recv_message(timeout)
        if op != OP_TEXT:
            raise WsProtocolError("expected a text message, got opcode %d %r" % (op, data[:80]))
        return data.decode("utf-8")

    def expect_close(self, timeout=None, reply=True, eof_timeout=None):
        """Reads until the server's close frame (data messages before it are collected in
        self.before_close) and returns (code, reason bytes); code None for an empty close
        body. Replies with a close frame (reply, unless one was sent) and waits for the TCP
        connection to end (eof_timeout, default the same timeout): raises AssertionError when
        the server keeps it open, then closes the socket. Raises ConnectionClosed when EOF
        comes without a close frame.
        """
        timeout = timeout if timeout is not None else self.timeout
        deadline = time.monotonic() + timeout
        self.before_close = []
        while True:
            op, data = self.recv_message(max(0.0, deadline - time.monotonic()))
            if op == OP_CLOSE:
                break
            self.before_close.append((op, data))
        code, reason = parse_close(data)
        if reply and not self.close_sent:
            try:
                self.send_close(code if code not in (None, 1005, 1006, 1015) else None)
            except OSError:
                pass
        if not self.wait_eof(eof_timeout if eof_timeout is not None else timeout):
            raise AssertionError("server sent close %r but kept the TCP connection open" % code)
        # Like a real client, close our end once the server's FIN arrived (a tunnel relays
        # half-closes: the backend waits for this FIN).
        self.close()
        return code, reason

    def wait_eof(self, timeout=5.0):
        """True when the server closes the TCP connection within timeout (bytes arriving
        meanwhile are discarded)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            self.buf.clear()
            try:
                self._fill(deadline)
            except ConnectionClosed:
                return True
            except socket.timeout:
                return False
        return True

    def read_until_eof(self, timeout=5.0):
        """All frames until EOF: returns (frames, eof_seen). Frames that fail the protocol
        checks end the read with the exception."""
        deadline = time.monotonic() + timeout
        frames = []
        try:
            while True:
                frames.append(self.recv_frame(max(0.0, deadline - time.monotonic())))
        except ConnectionClosed:
            return frames, True
        except socket.timeout:
            return frames, False

    def fail_reason(self, timeout=None):
        """After sending something invalid: the close code the server answered with, reading
        past data messages (kept in self.before_close); 'eof' when the TCP connection ended
        without a close frame. Also waits for EOF (AssertionError if it stays open)."""
        try:
            code, _ = self.expect_close(timeout)
            return code
        except ConnectionClosed:
            return "eof"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Drops the TCP connection with a reset (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()
