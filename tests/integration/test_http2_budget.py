# SPDX-License-Identifier: Apache-2.0
"""HTTP/2: what one client connection may make Portico hold (limits.http2_connection_buffer).
A stream window bounds one stream; a client opens a hundred. Request bodies for upstreams that
do not read: past the budget the connection's window is held back, so the client stops soon
after it, and every body still arrives whole once the upstreams read. Responses the client's
windows do not take: past the budget the upstreams are not read, so Portico holds about the
budget, not a watermark per stream."""

import hashlib
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import h2_frames as h  # noqa: E402
from backends import TcpServer  # noqa: E402
from h2_client import H2Client  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config, slow_factor  # noqa: E402
from ws_peers import _tcp_sockets  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
STREAMS = 64
STREAMS_ON_1MIB = 40  # a 1MiB budget covers 46 streams' windows: Portico advertises no more


def fill_windows(c, granted, sent, streams, limit=None):
    """On a raw connection `c` that never ACKs our SETTINGS: sends DATA on `streams` as far as
    their windows and the connection's let it (`granted` and `sent` by stream id, 0 the
    connection's; each stream at most `limit` bytes), counting WINDOW_UPDATEs, until none came
    for 2 s."""
    seen = 0
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 2 * slow_factor() and not c.closed:
        for f in c.frames[seen:]:
            if f[0] == h.WINDOW_UPDATE:
                granted[f[2]] = granted.get(f[2], 0) + struct.unpack("!I", f[3])[0]
                idle_since = time.monotonic()
        seen = len(c.frames)
        for sid in streams:
            n = min(16384, granted[sid] - sent[sid], granted[0] - sent[0])
            if limit is not None:
                n = min(n, limit - sent[sid])
            if n > 0:
                c.send(h.data(sid, b"x" * n))
                sent[sid] += n
                sent[0] += n
                idle_since = time.monotonic()
        c.next_frame(0.1)


class Http2ConnectionBudget(PorticoTestCase):
    def start(self, backend, limits=None):
        return self.start_portico(make_config(
            routes=[{"path": "/", "upstream": "app"}],
            upstreams={"app": {"servers": [backend.address], "connect_timeout": "60s", "send_timeout": "60s"}},
            listeners=[{"address": "127.0.0.1:0", "http2": True}], workers=1,
            limits=dict({"http2_max_concurrent_streams": 128}, **(limits or {}))))

    def start_held_and_fast(self, limits=None):
        """Portico with /held/ on an upstream whose connects hang until the returned event is
        set, and every other path on one that reads."""
        hold = threading.Event()
        held = self.start_backend(name="held", hold=hold)
        self.addCleanup(hold.set)
        fast = self.start_backend(name="fast")
        p = self.start_portico(make_config(
            routes=[{"path": "/held/", "upstream": "held"}, {"path": "/", "upstream": "fast"}],
            upstreams={"held": {"servers": [held.address], "connect_timeout": "60s", "send_timeout": "60s"},
                       "fast": {"servers": [fast.address]}},
            listeners=[{"address": "127.0.0.1:0", "http2": True}], workers=1, limits=limits))
        return p, hold

    def send_what_windows_take(self, c, bodies, offsets, seconds, idle=1.5):
        """Sends each stream's body as far as its and the connection's windows let it, until no
        window opened for `idle` seconds (None: until all is sent) or `seconds` passed. Returns
        the bytes sent now."""
        sent = 0
        deadline = time.monotonic() + seconds
        idle_since = time.monotonic()
        order = list(bodies)
        while time.monotonic() < deadline and any(offsets[s] < len(b) for s, b in bodies.items()):
            if idle is not None and time.monotonic() - idle_since >= idle * slow_factor():
                break
            moved = False
            # Each pass starts at the next stream: the connection's window (the budget) may carry
            # a frame or two per pass, and a stream the client never sends on would be its own
            # doing (client_body_timeout), not Portico's.
            order = order[1:] + order[:1]
            for sid in order:
                body = bodies[sid]
                left = len(body) - offsets[sid]
                if left == 0:
                    continue
                n = min(left, c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
                if n <= 0:
                    continue
                c.conn.send_data(sid, body[offsets[sid]:offsets[sid] + n], end_stream=n == left)
                offsets[sid] += n
                sent += n
                moved = True
            c.flush()
            c.pump(0.05)
            if moved:
                idle_since = time.monotonic()
        return sent

    def test_request_bodies_for_stalled_upstreams_stop_at_the_connection_budget(self):
        hold = threading.Event()
        backend = self.start_backend(name="held", hold=hold)
        self.addCleanup(hold.set)
        p = self.start(backend, {"http2_connection_buffer": "1MiB"})
        c = H2Client(p.port)
        self.addCleanup(c.close)
        c.pump(0.3)
        rss_before = p.rss_kb()
        bodies, offsets = {}, {}
        for i in range(STREAMS_ON_1MIB):
            body = os.urandom(512 * KiB)
            # Half with a length, half chunked upstream (no content-length).
            headers = [("content-length", str(len(body)))] if i % 2 else []
            sid = c.request("POST", "/echo/%d" % i, headers=headers, end=False)
            bodies[sid], offsets[sid] = body, 0
        sent = self.send_what_windows_take(c, bodies, offsets, 20 * slow_factor())
        grown_kib = p.rss_kb() - rss_before
        # The budget, the connection window (4 x 256KiB + 64KiB) and slack (the upstreams'
        # connects hang: the kernel holds none of it). Without the budget every stream
        # sent its window and a watermark ahead (17MiB sent, RSS +17.9MiB measured; with it
        # 1.7MiB sent, RSS +2.1MiB).
        bound = 1 * MiB + (4 * 256 + 64) * KiB + 1 * MiB
        self.assertLess(sent, bound, "sent %d bytes to upstreams that read nothing" % sent)
        self.assertLess(grown_kib * KiB, bound + 4 * MiB, "RSS grew by %d KiB" % grown_kib)
        # The upstreams read now: every body arrives whole, none cut or dropped.
        hold.set()
        self.send_what_windows_take(c, bodies, offsets, 60 * slow_factor(), idle=None)
        self.assertEqual(sum(offsets.values()), STREAMS_ON_1MIB * 512 * KiB, "a body could not be sent whole")
        self.assertTrue(c.wait(lambda: all(c.done(s) for s in bodies), 30 * slow_factor()))
        for sid, body in bodies.items():
            self.assertEqual(c.status(sid), 200, c.responses[sid])
            doc = json.loads(bytes(c.responses[sid]["body"]))
            self.assertEqual((doc["body_len"], doc["body_sha256"]),
                             (len(body), hashlib.sha256(body).hexdigest()), "stream %d" % sid)

    def test_a_stream_whose_upstream_reads_goes_on_while_others_are_held(self):
        p, hold = self.start_held_and_fast({"http2_connection_buffer": "256KiB", "client_body_timeout": "3s"})
        c = H2Client(p.port)
        self.addCleanup(c.close)
        c.pump(0.3)
        # Two bodies for an upstream that takes nothing fill their windows: over the budget,
        # part of the connection's window is held back.
        bodies, offsets = {}, {}
        for i in range(2):
            sid = c.request("POST", "/held/%d" % i, headers=[("content-length", str(MiB))], end=False)
            bodies[sid], offsets[sid] = os.urandom(MiB), 0
        self.send_what_windows_take(c, bodies, offsets, 10 * slow_factor())
        self.assertLess(sum(offsets.values()), 2 * MiB)
        # A body for an upstream that reads passes meanwhile: what goes on gives its window back.
        started = time.monotonic()
        body = os.urandom(3 * MiB)
        sid = c.request("POST", "/echo/fast", headers=[("content-length", str(len(body)))], end=False)
        c.send_body(sid, body)
        r = c.response(sid, 20 * slow_factor())
        self.assertTrue(r["ended"], "the fast stream stalled behind the held ones")
        self.assertLess(time.monotonic() - started, 20 * slow_factor())
        self.assertEqual(json.loads(bytes(r["body"]))["body_sha256"], hashlib.sha256(body).hexdigest())
        # A stream whose client sends part of a body and stops, with window left on the
        # connection and on the stream: that is the client's doing (408), though window is
        # held back for the others, which wait for us longer than client_body_timeout (no 408).
        idle = c.request("POST", "/echo/idle", headers=[("content-length", str(MiB))], end=False)
        c.conn.send_data(idle, b"x" * KiB)
        c.flush()
        self.assertGreater(c.conn.outbound_flow_control_window, 64 * KiB)
        self.assertTrue(c.wait(lambda: c.done(idle), 4 * 3 * slow_factor()), "the idle stream was never timed out")
        self.assertEqual(c.status(idle), 408)
        self.assertFalse(any(c.done(s) for s in bodies), "a held stream was answered")
        hold.set()
        self.send_what_windows_take(c, bodies, offsets, 30 * slow_factor(), idle=None)
        self.assertTrue(c.wait(lambda: all(c.done(s) for s in bodies), 30 * slow_factor()))
        self.assertEqual([c.status(s) for s in bodies], [200] * len(bodies))
        for s, b in bodies.items():
            self.assertEqual(json.loads(bytes(c.responses[s]["body"]))["body_sha256"], hashlib.sha256(b).hexdigest())

    def test_a_stream_goes_on_beside_32_uploads_whose_upstreams_read_nothing(self):
        # Head-of-line blocking between streams: each of the 32 stalled uploads holds its own
        # stream window (16KiB on the defaults), not the connection's. Before, they took the whole
        # connection window (the budget plus 4 x 256KiB + 64KiB) and the 33rd sent 0 bytes.
        p, _ = self.start_held_and_fast()
        c = H2Client(p.port)
        self.addCleanup(c.close)
        c.pump(0.3)
        bodies, offsets = {}, {}
        for i in range(32):
            sid = c.request("POST", "/held/%d" % i, headers=[("content-length", str(512 * KiB))], end=False)
            bodies[sid], offsets[sid] = os.urandom(512 * KiB), 0
        self.send_what_windows_take(c, bodies, offsets, 20 * slow_factor())
        body = os.urandom(2 * MiB)
        sid = c.request("POST", "/echo/33rd", headers=[("content-length", str(len(body)))], end=False)
        sent = self.send_what_windows_take(c, {sid: body}, {sid: 0}, 60 * slow_factor(), idle=10)
        self.assertEqual(sent, len(body), "the 33rd stream stalled behind 32 uploads that read nothing")
        r = c.response(sid, 30 * slow_factor())
        self.assertTrue(r["ended"])
        self.assertEqual(json.loads(bytes(r["body"]))["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertFalse(any(c.done(s) for s in bodies), "a held stream was answered")

    def test_a_stream_goes_on_beside_64_uploads_whose_upstreams_read_nothing_on_the_defaults(self):
        # On the defaults of before (1MiB, 100 streams, 16KiB windows, a widening pool of 256KiB)
        # about 48 stalled uploads held the whole connection window: beside 64 the 65th sent 0
        # bytes. The advertised windows and the pool now fit in the budget with two to spare.
        # Upstreams that accept and read nothing: what the kernel takes first widens the streams.
        release = threading.Event()

        def never_reads(sock):
            with sock:
                release.wait(120)

        stalled = TcpServer(never_reads)
        stalled._l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)  # inherited at accept
        self.addCleanup(stalled.stop)
        self.addCleanup(release.set)
        fast = self.start_backend(name="fast")
        p = self.start_portico(make_config(
            routes=[{"path": "/stalled/", "upstream": "stalled"}, {"path": "/", "upstream": "fast"}],
            upstreams={"stalled": {"servers": [stalled.address], "send_timeout": "120s"},
                       "fast": {"servers": [fast.address]}},
            listeners=[{"address": "127.0.0.1:0", "http2": True}], workers=1))
        c = H2Client(p.port)
        self.addCleanup(c.close)
        c.pump(0.3)
        bodies, offsets = {}, {}
        for i in range(STREAMS):
            sid = c.request("POST", "/stalled/%d" % i, headers=[("content-length", str(8 * MiB))], end=False)
            bodies[sid], offsets[sid] = b"s" * (8 * MiB), 0
        self.send_what_windows_take(c, bodies, offsets, 60 * slow_factor())
        self.assertTrue(all(offsets[s] < len(b) for s, b in bodies.items()), "an upstream took a whole body: no test")
        body = os.urandom(2 * MiB)
        sid = c.request("POST", "/echo/fast", headers=[("content-length", str(len(body)))], end=False)
        sent = self.send_what_windows_take(c, {sid: body}, {sid: 0}, 60 * slow_factor(), idle=10)
        self.assertEqual(sent, len(body), "the fast stream stalled behind %d uploads that read nothing" % STREAMS)
        r = c.response(sid, 30 * slow_factor())
        self.assertTrue(r["ended"])
        self.assertEqual(json.loads(bytes(r["body"]))["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertFalse(any(c.done(s) for s in bodies), "a held stream was answered")

    def test_a_client_that_never_acks_our_settings_cannot_make_portico_hold_more_than_the_budget(self):
        # The connection window is the request budget, whatever the client does with SETTINGS:
        # this one never ACKs them, so nghttp2 lets each stream use 65535 bytes (the RFC's
        # default), and 64 streams could send 4MiB. Before, the connection window came back at once
        # under the budget and was held only beyond it: about 2.1MiB went in (1MiB + 1088KiB).
        hold = threading.Event()
        held = self.start_backend(name="held", hold=hold)
        self.addCleanup(hold.set)
        p = self.start(held)
        c = h.RawH2(p.port, handshake=False)
        self.addCleanup(c.close)
        c.send(h.PREFACE + h.settings())
        granted = {0: 65535}
        sent = {0: 0}
        for i in range(64):
            sid = 2 * i + 1
            c.request(sid, "/echo/%d" % i, "POST", [("content-length", str(65535))], end_stream=False)
            granted[sid], sent[sid] = 65535, 0
        fill_windows(c, granted, sent, [s for s in granted if s], limit=65535)
        self.assertFalse(c.closed, "the connection ended: %r" % [f for f in c.frames if f[0] == h.GOAWAY])
        # The budget (3MiB on the defaults; 64 streams could send 4MiB), the bytes of the one or
        # two upstreams whose connects the backend's queue lets through (the kernel takes those:
        # a stream's 64KiB each) and slack.
        self.assertLess(sent[0], 3 * MiB + 256 * KiB, "Portico took %d bytes" % sent[0])
        c.send(h.ping())
        self.assertIsNotNone(c.wait_for(lambda f: f[0] == h.PING and f[1] & h.ACK, 5 * slow_factor()))

    def test_data_for_streams_portico_reset_gives_its_connection_window_back(self):
        # DATA nghttp2 ignores (a stream already reset, padding) was never returned: its own
        # return at half the window was undone by each WINDOW_UPDATE Portico submitted, so
        # every request refused mid-body shrank the connection's window for good (60 rounds:
        # 983,067 of 1,048,576 gone).
        backend = self.start_backend(name="b")
        p = self.start(backend)
        c = h.RawH2(p.port)
        self.addCleanup(c.close)
        granted, sent, seen = 65535, 0, 0

        def pump(timeout):
            nonlocal granted, seen
            c.next_frame(timeout)
            for f in c.frames[seen:]:
                if f[0] == h.WINDOW_UPDATE and f[2] == 0:
                    granted += struct.unpack("!I", f[3])[0]
            seen = len(c.frames)

        pump(0.3)
        budget = granted  # 64KiB, then the budget once Portico's first WINDOW_UPDATE is in
        sid = 1
        for _ in range(30):
            # content-length 1, then 16KiB: Portico resets the stream; 48KiB more follow it
            c.request(sid, "/echo/refused", "POST", [("content-length", "1")], end_stream=False)
            for _ in range(4):
                if granted - sent >= 16384:
                    c.send(h.data(sid, b"x" * 16384))
                    sent += 16384
                pump(0.02)
            sid += 2
            # an upload the upstream reads: its window comes back as it goes on
            c.request(sid, "/echo/ok", "POST", [("content-length", str(64 * KiB))], end_stream=False)
            left, deadline = 64 * KiB, time.monotonic() + 10 * slow_factor()
            while left and time.monotonic() < deadline:
                n = min(16384, left, granted - sent)
                if n > 0:
                    c.send(h.data(sid, b"y" * n, end=n == left))
                    sent += n
                    left -= n
                pump(0.02)
            self.assertEqual(left, 0, "the upload stalled: the client's connection window is %d" % (granted - sent))
            sid += 2
        deadline = time.monotonic() + 3 * slow_factor()  # the connection's tick returns the rest
        while time.monotonic() < deadline and budget - (granted - sent) >= budget // 4:
            pump(0.1)
        # What comes back is batched by a quarter of the window: never more is missing.
        self.assertLess(budget - (granted - sent), budget // 4,
                        "the client's connection window is %d of %d" % (granted - sent, budget))
        self.assertTrue(c.alive())

    def test_a_16KiB_data_frame_fits_a_new_stream_on_the_defaults(self):
        # SETTINGS_INITIAL_WINDOW_SIZE is never under one DATA frame of the least
        # SETTINGS_MAX_FRAME_SIZE (h2spec 4.2/1), whatever the budget's share per stream is.
        backend = self.start_backend(name="b")
        p = self.start_portico(make_config(routes=[{"path": "/", "upstream": "app"}],
                                           upstreams={"app": {"servers": [backend.address]}},
                                           listeners=[{"address": "127.0.0.1:0", "http2": True}], workers=1))
        c = h.RawH2(p.port)
        self.addCleanup(c.close)
        self.assertGreaterEqual(c.server_settings.get(0x4, 65535), 16384)
        c.request(1, "/echo/frame", "POST", [("content-length", "16384")], end_stream=False)
        c.send(h.data(1, b"f" * 16384, end=True))
        status, _, answer = c.response(1, 10 * slow_factor())
        self.assertEqual((status, json.loads(answer)["body_len"]), (200, 16384))
        self.assertTrue(c.alive())

    def test_a_stream_waiting_for_the_held_connection_window_is_not_timed_out(self):
        # The advertised windows leave two free whatever the streams hold (settingsMaxStreams),
        # so only a client that never ACKs our SETTINGS (65535 bytes per stream) can have the
        # connection window all held: its first stream sends a little, then six fill theirs.
        hold = threading.Event()
        held = self.start_backend(name="held", hold=hold)
        self.addCleanup(hold.set)
        p = self.start(held, {"http2_connection_buffer": "256KiB", "client_body_timeout": "2s"})
        c = h.RawH2(p.port, handshake=False)
        self.addCleanup(c.close)
        c.send(h.PREFACE + h.settings())
        granted, sent = {0: 65535}, {0: 0}
        c.request(1, "/echo/first", "POST", [("content-length", str(MiB))], end_stream=False)
        c.send(h.data(1, b"f" * (16 * KiB)))
        granted[1], sent[1] = 65535, 16 * KiB
        sent[0] += 16 * KiB
        for i in range(6):
            sid = 3 + 2 * i
            c.request(sid, "/echo/%d" % i, "POST", [("content-length", str(MiB))], end_stream=False)
            granted[sid], sent[sid] = 65535, 0
        fill_windows(c, granted, sent, [s for s in granted if s > 1])
        self.assertLess(granted[0] - sent[0], 16 * KiB, "the connection window is not held")
        self.assertGreater(granted[1] - sent[1], 16 * KiB)
        # Longer than client_body_timeout: the first stream waits for us, not for its client.
        answered = c.wait_for(lambda f: f[2] == 1 and f[0] in (h.HEADERS, h.RST_STREAM), 3.5)
        self.assertIsNone(answered, "answered while its body waited")
        self.assertFalse(c.closed or any(f[0] == h.GOAWAY for f in c.frames), "the connection ended")

    def test_responses_the_client_does_not_take_stop_at_the_connection_budget(self):
        backend = self.start_backend(name="b")
        p = self.start(backend, {"http2_connection_buffer": "1MiB"})
        c = H2Client(p.port, window=65535)
        self.addCleanup(c.close)
        c.auto_ack = False  # the client takes the first window of each stream, then nothing
        c.pump(0.3)
        size = 4 * MiB
        # Written 8 KiB at a time: a write the kernel blocks is counted once done, so what is
        # not counted yet is at most 8 KiB per upstream.
        sids = [c.request(path="/stream?n=%d&i=%d&chunk=8192" % (size, i)) for i in range(STREAMS_ON_1MIB)]
        c.pump(3.0 * slow_factor())
        held = self.bytes_in_portico(backend, p, c, sids)
        # Without the budget each stream's pending bytes stop at its watermark only
        # (64 x 128KiB = 8MiB and more: 9.3MB measured); with it about 1MiB plus a read per
        # stream (1.9MB measured).
        self.assertLess(held, 3 * MiB, "Portico holds %d bytes" % held)
        # Taken now, every response arrives whole.
        c.auto_ack = True
        for sid in sids:
            got = len(c.responses[sid]["body"])
            if got:
                c.grant(sid, got)
        self.assertTrue(c.wait(lambda: all(c.done(s) for s in sids), 60 * slow_factor()))
        self.assertEqual({len(c.responses[s]["body"]) for s in sids}, {size})

    def bytes_in_portico(self, backend, p, c, sids):
        """What the backend sent that is neither in a socket queue nor at the client: the bytes
        Portico holds itself (heads and frame headers make it a little more or less). Read
        until two readings agree: bytes on the move between two queues count twice."""
        backend_port = int(backend.address.rsplit(":", 1)[1])

        def reading():
            c.pump(0.2)
            sent = backend.bytes_sent
            queued = sum(tx + rx for local, remote, tx, rx, _ in _tcp_sockets()
                         if backend_port in (local, remote) or p.port in (local, remote))
            return sent - queued - sum(len(c.responses[s]["body"]) for s in sids)

        last = reading()
        for _ in range(20):
            time.sleep(0.3 * slow_factor())
            now = reading()
            if abs(now - last) < 64 * KiB:
                return now
            last = now
        self.fail("the bytes in Portico never held still (last %d)" % last)

    def read_one_at_a_time(self, c, sids, seconds):
        """Reads each response whole before the next (its window given back as it reads, the
        others' not): how long each took."""
        times = []
        for sid in sids:
            started = time.monotonic()
            granted = 0
            while not c.done(sid) and time.monotonic() - started < seconds:
                got = len(c.responses[sid]["body"])
                if got > granted:
                    c.grant(sid, got - granted)
                    granted = got
                c.pump(0.05)
            times.append(time.monotonic() - started)
        return times

    def test_a_client_reading_one_download_at_a_time_is_not_stalled_by_the_others(self):
        # Once the connection's total is over the budget, only streams that hold bytes of their
        # own pause their upstreams: the one the client reads (its bytes go straight out) goes
        # on. Pausing every stream stalled each until client_send_timeout reset the others
        # (30.4 s for the first; 0.8 s before the budget).
        backend = self.start_backend(name="b")
        p = self.start(backend, {"http2_connection_buffer": "1MiB", "client_send_timeout": "30s"})
        c = H2Client(p.port, window=65535)
        self.addCleanup(c.close)
        c.auto_ack = False
        c.conn.increment_flow_control_window(1 << 30)  # the connection's window: wide (curl, Go)
        c.flush()
        c.pump(0.3)
        size = MiB
        sids = [c.request(path="/stream?n=%d&i=%d" % (size, i)) for i in range(14)]
        c.pump(1.0)
        times = self.read_one_at_a_time(c, sids, 40)
        self.assertEqual([len(c.responses[s]["body"]) for s in sids], [size] * len(sids))
        self.assertTrue(all(c.responses[s]["ended"] and not c.responses[s]["reset"] for s in sids))
        self.assertLess(max(times), 5 * slow_factor(), "a download stalled: %r" % times)

    def test_a_client_reading_slower_than_we_send_is_not_reset_for_client_send_timeout(self):
        # A stream's client_send_timeout counted what nghttp2 packed into DATA frames; with the
        # socket backlogged nghttp2 is asked for none, so a client that read steadily with its
        # windows wide open was reset (RST_STREAM CANCEL after ~3 s at 2 s, reading ~200 KB/s).
        backend = self.start_backend(name="b")
        p = self.start(backend, {"client_send_timeout": "2s"})
        c = h.RawH2(p.port, client_settings=[(h.INITIAL_WINDOW_SIZE, 0x7fffffff)], rcvbuf=32 * KiB)
        self.addCleanup(c.close)
        size = 8 * MiB
        c.send(c.headers(1, c.fields("/stream?n=%d" % size)), h.window_update(0, 0x7fff0000))
        got, start = 0, time.monotonic()
        while time.monotonic() - start < 6:  # three timeouts' worth, at ~200 KB/s
            time.sleep(0.3)
            n = 0
            while n < 64 * KiB:
                chunk = c.sock.recv(64 * KiB - n)
                self.assertTrue(chunk, "the connection closed after %d bytes" % (got + n))
                n += len(chunk)
            got += n
        self.assertLess(got, size, "the response ended before the client fell behind")
        reset = [line for line in p.stderr_lines() if "client_send_timeout" in line]
        self.assertEqual(reset, [], "a client reading %d bytes in %.1f s was taken for stalled"
                         % (got, time.monotonic() - start))

    def test_streams_whose_window_stays_shut_time_out_beside_a_slow_reader(self):
        # 16169de exempted every stream while the socket was backlogged, so one download read
        # slowly kept the socket backlogged and the streams whose windows the client kept shut,
        # with their upstreams, open for ever. Those time out; the one being read does not.
        backend = self.start_backend(name="b")
        p = self.start(backend, {"client_send_timeout": "2s"})
        c = h.RawH2(p.port, client_settings=[(h.INITIAL_WINDOW_SIZE, 0)], rcvbuf=32 * KiB)
        self.addCleanup(c.close)
        c.send(h.window_update(0, 0x7fff0000))
        c.send(c.headers(1, c.fields("/stream?n=%d" % (512 * MiB))), h.window_update(1, 0x7fff0000))
        shut = list(range(3, 3 + 2 * 6, 2))
        for sid in shut:  # window 0: their heads go, never a DATA byte
            c.send(c.headers(sid, c.fields("/stream?n=%d" % (4 * MiB))))
        timed_out = []
        deadline = time.monotonic() + 12 * slow_factor()
        while len(timed_out) < len(shut) and time.monotonic() < deadline:
            time.sleep(0.25)
            n = 0
            while n < 16 * KiB:  # ~64 KB/s: the socket stays backlogged
                chunk = c.sock.recv(16 * KiB - n)
                self.assertTrue(chunk, "the connection closed")
                n += len(chunk)
            timed_out = [line for line in p.stderr_lines() if "took no byte for client_send_timeout" in line]
        self.assertEqual(sorted(int(line.split("stream ")[1].split(":")[0]) for line in timed_out), shut)

    def test_streams_paced_by_the_connection_window_are_not_timed_out(self):
        # Stream windows wide open, the connection's window granted 16 KiB every 0.25 s: nghttp2
        # sends streams of one priority one after another, so one stream stood still for longer
        # than client_send_timeout while the client read steadily (reset at 3.0 s, timeout 2 s).
        backend = self.start_backend(name="b")
        p = self.start(backend, {"client_send_timeout": "2s"})
        c = h.RawH2(p.port, client_settings=[(h.INITIAL_WINDOW_SIZE, 1 << 30)])
        self.addCleanup(c.close)
        c.request(1, "/stream?n=%d" % (64 * MiB))
        c.request(3, "/stream?n=%d" % (64 * MiB))
        got, resets = {1: 0, 3: 0}, []
        start = time.monotonic()
        next_grant = start
        while time.monotonic() - start < 7 and not c.closed:  # three timeouts and more
            f = c.next_frame(0.05)
            if f and f[0] == h.DATA:
                got[f[2]] = got.get(f[2], 0) + len(f[3])
            if f and f[0] == h.RST_STREAM:
                resets.append(f[2])
            if time.monotonic() >= next_grant:
                c.send(h.window_update(0, 16 * KiB))
                next_grant += 0.25
        self.assertFalse(c.closed)
        self.assertEqual(resets, [], "streams reset while the client read steadily: %r" % got)
        self.assertEqual([line for line in p.stderr_lines() if "client_send_timeout" in line], [])

    def test_a_static_file_does_not_count_against_the_budget(self):
        # A file's segments are its pages, not our memory: a 16 MiB file the client reads slowly
        # paused every proxied stream of the connection (a 512 KiB GET beside it took 25 s).
        root = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(root, ignore_errors=True))
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(b"\0" * (16 * MiB))
        backend = self.start_backend(name="b")
        p = self.start_portico(make_config(
            routes=[{"path": "/static/", "handler": "static", "root": root}, {"path": "/", "upstream": "app"}],
            upstreams={"app": {"servers": [backend.address]}},
            listeners=[{"address": "127.0.0.1:0", "http2": True}], workers=1,
            limits={"http2_connection_buffer": "1MiB"}))
        c = H2Client(p.port, window=65535)
        self.addCleanup(c.close)
        c.auto_ack = False
        c.conn.increment_flow_control_window(1 << 30)
        c.flush()
        c.pump(0.3)
        big = c.request(path="/static/big.bin")
        c.pump(0.5)
        api = c.request(path="/stream?n=%d" % (512 * KiB))
        started = time.monotonic()
        granted = {big: 0, api: 0}
        while not c.done(api) and time.monotonic() - started < 30:
            for sid in (big, api):
                got = len(c.responses[sid]["body"])
                if sid == big:
                    got = min(got, granted[big] + 100 * KiB)  # the file at about 1 MiB/s
                if got > granted[sid]:
                    c.grant(sid, got - granted[sid])
                    granted[sid] = got
            c.pump(0.1)
        took = time.monotonic() - started
        self.assertEqual(len(c.responses[api]["body"]), 512 * KiB)
        self.assertLess(took, 5 * slow_factor(), "the proxied GET waited for the file")

    def test_unfinished_publishes_over_the_budget_are_timed_out(self):
        # A publish's message is the client's to end and holds no window back: publishes over
        # the budget are timed out by client_body_timeout like any (they were exempt for ever).
        p = self.start_portico(make_config(
            routes=[{"path": "/live/", "handler": "pubsub"}],
            listeners=[{"address": "127.0.0.1:0", "http2": True}], workers=1,
            limits={"http2_connection_buffer": "1MiB", "client_body_timeout": "2s"}))
        c = H2Client(p.port)
        self.addCleanup(c.close)
        c.pump(0.3)
        sids = [c.request("POST", "/live/ch%d" % i, end=False) for i in range(8)]
        for sid in sids:
            left = 200 * KiB
            started = time.monotonic()
            while left and time.monotonic() - started < 3 * slow_factor():
                n = min(left, c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
                if n <= 0:
                    c.pump(0.1)
                    continue
                c.conn.send_data(sid, b"x" * n)
                c.flush()
                left -= n
        self.assertTrue(c.wait(lambda: all(c.done(s) for s in sids), 8 * slow_factor()),
                        "publishes never timed out: %r" % [c.status(s) for s in sids])
        self.assertEqual([c.status(s) for s in sids], [408] * len(sids))


if __name__ == "__main__":
    main()
