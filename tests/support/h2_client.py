# SPDX-License-Identifier: Apache-2.0
"""A raw HTTP/2 client for Portico's tests on python3-h2 (Debian's, /usr/bin/python3): it sends
exactly the frames a test asks for (requests, resets, PINGs, SETTINGS, bad fields) and records
every event, so that tests can assert on the protocol itself (GOAWAY, RST_STREAM, windows)."""

import os
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


class H2Client:
    def __init__(self, port, host="127.0.0.1", ssl_context=None, server_hostname=None, timeout=10.0,
                 validate=True, window=None):
        sock = socket.create_connection((host, port), timeout=timeout)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=validate,
                                           normalize_outbound_headers=validate,
                                           validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(config=config)
        # RFC 9113 6.8: after a GOAWAY the streams up to its last stream id go on. python-h2
        # closes the whole connection instead and refuses their frames; this client keeps it
        # open, so that tests see the streams a graceful GOAWAY lets finish.
        machine = self.conn.state_machine
        machine._transitions = dict(machine._transitions)
        machine._transitions[(h2.connection.ConnectionState.CLIENT_OPEN,
                              h2.connection.ConnectionInputs.RECV_GOAWAY)] = \
            (None, h2.connection.ConnectionState.CLIENT_OPEN)
        self.conn.initiate_connection()
        if window is not None:
            # A client that reads slowly: a small window, given back only by grant().
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.authority = "%s:%d" % (host, port)
        self.responses = {}   # stream id -> {"headers": [...], "body": bytearray, "ended", "reset"}
        self.goaway = None    # the ConnectionTerminated event
        self.remote_settings = {}
        self.closed = False
        self.auto_ack = True  # give the window back for received data at once

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method="GET", path="/", headers=(), body=None, end=True, scheme="http"):
        sid = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", scheme), (":authority", self.authority), (":path", path)]
        fields += list(headers)
        self.conn.send_headers(sid, fields, end_stream=end and body is None)
        self.responses[sid] = {"headers": None, "body": bytearray(), "ended": False, "reset": None}
        if body is not None:
            self.send_body(sid, body, end=end)
        self.flush()
        return sid

    def send_body(self, sid, body, end=True):
        view = memoryview(body)
        while len(view):
            window = self.conn.local_flow_control_window(sid)
            size = min(len(view), window, self.conn.max_outbound_frame_size)
            if size == 0:
                self.pump(0.2)
                continue
            self.conn.send_data(sid, bytes(view[:size]))
            view = view[size:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def reset(self, sid, code=8):
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def grant(self, sid, n):
        self.conn.acknowledge_received_data(n, sid)
        self.flush()

    def pump(self, timeout=0.5):
        """Reads for up to `timeout` seconds (returns early when the socket closes)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return
            except (ConnectionResetError, OSError):
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.closed = True
                return
            for event in events:
                self.on_event(event)
            try:
                self.flush()
            except OSError:
                self.closed = True

    def on_event(self, event):
        r = self.responses.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.ResponseReceived):
            r["headers"] = event.headers
        elif isinstance(event, h2.events.InformationalResponseReceived):
            pass
        elif isinstance(event, h2.events.DataReceived):
            r["body"] += event.data
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            r["ended"] = True
        elif isinstance(event, h2.events.StreamReset):
            if r is not None:
                r["reset"] = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for code, setting in event.changed_settings.items():
                self.remote_settings[int(code)] = setting.new_value

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not pred() and time.monotonic() < deadline and not self.closed:
            self.pump(0.1)
        return pred()

    def done(self, sid):
        r = self.responses[sid]
        return r["ended"] or r["reset"] is not None

    def response(self, sid, timeout=10.0):
        self.wait(lambda: self.done(sid), timeout)
        return self.responses[sid]

    def status(self, sid):
        headers = self.responses[sid]["headers"] or []
        return int(dict(headers).get(":status", 0))

    def send_until_held(self, sid, data, seconds, most=None, hold=0.3):
        """Sends `data` on stream sid again and again while its send window takes it, until the
        window stays shut for `hold` seconds of reading (the receiver stopped giving it back: a
        paused session), `seconds` pass or `most` bytes went. Returns (bytes sent, whether the
        window was held)."""
        sent = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (most is None or sent < most):
            if self.conn.local_flow_control_window(sid) < len(data):
                # Read in short slices and go on at the first WINDOW_UPDATE that lets `data` go:
                # one fixed `hold` per shut window cost the paused-FIN test 13 s of its 16 (43
                # waits), and a loaded machine more.
                held_until = time.monotonic() + hold
                while (self.conn.local_flow_control_window(sid) < len(data) and not self.closed
                       and time.monotonic() < held_until):
                    self.pump(0.02)
                if self.conn.local_flow_control_window(sid) < len(data):
                    return sent, True
                continue
            self.conn.send_data(sid, data)
            self.flush()
            sent += len(data)
        return sent, False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def client_frame(opcode, payload, fin=True):
    """One masked WebSocket frame, as a client sends it (RFC 6455 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        length = bytes([0x80 | n])
    elif n < 65536:
        length = bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        length = bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(payload) if not n else (int.from_bytes(payload, "big") ^ int.from_bytes(
        (mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return bytes([(0x80 if fin else 0) | opcode]) + length + mask + masked


def ws_frames(data, masked=False):
    """The complete WebSocket frames in `data`: [(opcode, payload)], payloads unmasked when the
    frames are `masked` (a client's)."""
    frames, i = [], 0
    key_length = 4 if masked else 0
    while i + 2 <= len(data):
        opcode, n, at = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
        if n == 126:
            n, at = struct.unpack("!H", data[at:at + 2])[0], at + 2
        elif n == 127:
            n, at = struct.unpack("!Q", data[at:at + 8])[0], at + 8
        if at + key_length + n > len(data):
            break
        payload = bytes(data[at + key_length:at + key_length + n])
        if masked and n:
            key = bytes(data[at:at + 4])
            payload = bytes(b ^ key[j % 4] for j, b in enumerate(payload))
        frames.append((opcode, payload))
        i = at + key_length + n
    return frames


def server_frames(data):
    """Unmasked WebSocket frames from the server: [(opcode, payload)] (complete frames only)."""
    return ws_frames(data)
