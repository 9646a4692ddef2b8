# SPDX-License-Identifier: Apache-2.0
"""`websocket.mode: frames` checks, and the timers: a frame that breaks RFC 6455 gets the side
at fault the right close code and the other side 1001 (or 1011); max_message_bytes is a 1009;
idle_timeout closes (1001 in frames mode and for built-ins, a TCP close in tunnel mode);
ping_interval makes Portico ping the client."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import ws_client  # noqa: E402
from http_client import http_request  # noqa: E402
from portico_harness import main, make_config, slow_factor  # noqa: E402
from ws_client import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT  # noqa: E402
from ws_peers import (WsTestCase, echo_config, start_raw_python_backend, wait_for,  # noqa: E402
                      ws_proxy_config)

OTHER_SIDE = (1001, 1011)


def _client_frames(data):
    """Parses masked (client-to-server) frames as an upstream received them."""
    frames, pos = [], 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        n, p = b1 & 0x7F, pos + 2
        if n == 126:
            n, p = int.from_bytes(data[p:p + 2], "big"), p + 2
        elif n == 127:
            n, p = int.from_bytes(data[p:p + 8], "big"), p + 8
        key = data[p:p + 4] if b1 & 0x80 else None
        p += 4 if key else 0
        if len(data) < p + n:
            break
        payload = data[p:p + n]
        if key:
            payload = ws_client.mask_bytes(payload, key)
        frames.append(ws_client.Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload,
                                      bool(key)))
        pos = p + n
    return frames


class FramesViolations(WsTestCase):
    """A python3-websockets backend behind a frames route with a small message limit."""

    test_timeout = 60
    limit = 1000

    def setUp(self):
        super().setUp()
        self.b = self.start_ws_backend("python")
        self.p = self.start_portico(ws_proxy_config(self.b.address, mode="frames", websocket={
            "max_message_bytes": self.limit}))

    def connect(self, name):
        self.path = "/ws/" + name
        ws = self.ws_connect(self.p.port, self.path)
        ws.send_text("hello")
        self.assertEqual(ws.recv_text(), "hello")
        return ws

    def backend_close(self):
        def match(e):
            return e["event"] == "close" and any(
                o["event"] == "open" and o["id"] == e["id"] and o["path"] == self.path
                for o in self.b.events())
        ev = self.b.wait_event(match, 5)
        self.assertIsNotNone(ev, "the backend was not closed: %r" % self.b.events()[-4:])
        return ev

    def assert_violation(self, ws, client_code):
        self.assertCloseCode(ws, client_code)
        ev = self.backend_close()
        self.assertIn(ev["code"], OTHER_SIDE, "backend got %r, expected 1001/1011" % ev)

    def test_unmasked_client_frame_is_1002(self):
        ws = self.connect("unmasked")
        ws.send_frame(OP_TEXT, b"no mask", mask=False)
        self.assert_violation(ws, 1002)

    def test_oversized_message_is_1009(self):
        ws = self.connect("oversized")
        ws.send_binary(b"x" * self.limit)  # exactly the limit passes
        op, data = ws.recv_message()
        self.assertEqual((op, len(data)), (OP_BINARY, self.limit))
        ws.send_binary(b"x" * (self.limit + 1))
        self.assert_violation(ws, 1009)

    def test_oversized_fragmented_message_is_1009(self):
        ws = self.connect("oversized-fragments")
        for i in range(3):
            ws.send_frame(OP_TEXT if i == 0 else OP_CONT, b"y" * 400, fin=False)
        ws.send_frame(OP_CONT, b"y", fin=True)
        self.assert_violation(ws, 1009)

    def test_oversized_length_header_fails_before_the_payload(self):
        ws = self.connect("oversized-header")
        # Only the header of a 1 GiB frame: the limit is known from the length field alone.
        ws.send_raw(ws_client.build_frame(OP_BINARY, b"", length=1 << 30)[:14])
        self.assert_violation(ws, 1009)

    def test_rsv_bits_without_extension_are_1002(self):
        for rsv in (1, 2, 4):
            with self.subTest(rsv=rsv):
                ws = self.connect("rsv%d" % rsv)
                ws.send_frame(OP_TEXT, b"rsv", rsv=rsv)
                self.assert_violation(ws, 1002)

    def test_reserved_opcodes_are_1002(self):
        for op in (3, 7, 11, 15):
            with self.subTest(opcode=op):
                ws = self.connect("op%d" % op)
                ws.send_frame(op, b"")
                self.assert_violation(ws, 1002)

    def test_long_control_frame_is_1002(self):
        ws = self.connect("long-ping")
        ws.send_frame(OP_PING, b"p" * 126)
        self.assert_violation(ws, 1002)

    def test_fragmented_control_frame_is_1002(self):
        ws = self.connect("fragmented-ping")
        ws.send_frame(OP_PING, b"p", fin=False)
        self.assert_violation(ws, 1002)

    def test_continuation_without_start_is_1002(self):
        ws = self.connect("cont")
        ws.send_frame(OP_CONT, b"orphan", fin=True)
        self.assert_violation(ws, 1002)

    def test_new_message_inside_a_fragmented_one_is_1002(self):
        ws = self.connect("nested")
        ws.send_frame(OP_TEXT, b"a", fin=False)
        ws.send_frame(OP_TEXT, b"b", fin=True)
        self.assert_violation(ws, 1002)

    def test_invalid_close_code_is_1002(self):
        ws = self.connect("badclose")
        ws.send_close(999)
        self.assertCloseCode(ws, 1002)

    def test_valid_traffic_after_many_checks_still_flows(self):
        ws = self.connect("valid")
        ws.send_message(OP_TEXT, "é" * 300, fragment=7)
        self.assertEqual(ws.recv_text(), "é" * 300)
        ws.send_ping(b"abc")
        while True:
            f = ws.recv_frame()
            if f.opcode == OP_PONG:
                self.assertEqual(f.payload, b"abc")
                break
        ws.send_close(1000)
        self.assertEqual(ws.expect_close()[0], 1000)


class FramesBatches(WsTestCase):
    """Frames that arrive together are checked and forwarded straight from the read (one write
    per direction); what is left of an incomplete frame waits for the rest. These pin the
    order and the bytes through that path."""

    test_timeout = 60

    def test_our_pong_in_the_middle_of_a_batch_is_dropped_and_the_rest_keeps_its_order(self):
        b = self.start_raw_ws_backend("raw_echo")  # records the bytes it reads
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={"ping_interval": "1s"}))
        ws = self.ws_connect(p.port, "/ws/batch")
        # Portico's ping first: the pong answering it is Portico's, dropped from the batch.
        ping = ws.recv_frame(timeout=5 * slow_factor())
        self.assertEqual(ping.opcode, OP_PING)
        first = ws_client.build_frame(OP_TEXT, b"first")
        second = ws_client.build_frame(OP_BINARY, b"second" * 30)
        ws.send_raw(first + ws_client.build_frame(OP_PONG, ping.payload) + second)
        self.assertTrue(wait_for(lambda: len(b.ws_received) >= len(first + second), 5 * slow_factor()),
                        bytes(b.ws_received))
        received = bytes(b.ws_received)
        # Then only Portico's own Close (the echo is a masked server frame: a violation).
        self.assertEqual(received[:len(first + second)], first + second)
        self.assertIn(received[len(first + second):][:1], (b"", b"\x88"), received)

    def test_a_frame_split_across_reads_behind_a_whole_one(self):
        b = start_raw_python_backend(self)
        p = self.start_portico(ws_proxy_config(b.address, mode="frames"))
        ws = self.ws_connect(p.port, "/ws/split")
        whole = ws_client.build_frame(OP_TEXT, b"whole")
        split = ws_client.build_frame(OP_TEXT, b"split" * 40)  # a 2-byte extended length
        ws.send_raw(whole + split[:3])  # the header of the second is not complete
        self.assertEqual(ws.recv_text(), "whole")
        ws.send_raw(split[3:], chop=7, delay=0.01)
        self.assertEqual(ws.recv_text(), "split" * 40)

    def test_a_burst_from_the_upstream_arrives_whole_and_in_order(self):
        b = start_raw_python_backend(self)
        p = self.start_portico(ws_proxy_config(b.address, mode="frames"))
        ws = self.ws_connect(p.port, "/ws/burst")
        ws.send_text("flood:300")
        self.assertEqual([ws.recv_text() for _ in range(300)], ["f%d" % i for i in range(300)])

    def test_data_and_close_in_one_read_go_in_order(self):
        b = self.start_raw_ws_backend("raw_echo")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames"))
        ws = self.ws_connect(p.port, "/ws/last")
        batch = (ws_client.build_frame(OP_TEXT, b"last words") +
                 ws_client.build_frame(ws_client.OP_CLOSE, (1000).to_bytes(2, "big")))
        ws.send_raw(batch + ws_client.build_frame(OP_TEXT, b"after the close"))  # dropped
        self.assertTrue(wait_for(lambda: len(b.ws_received) >= len(batch), 5 * slow_factor()))
        time.sleep(0.2)
        self.assertEqual(bytes(b.ws_received), batch)

    def test_whole_small_messages_then_other_frames_in_one_read_arrive_untouched(self):
        # Small whole messages are taken from the front of a read at once (payloads of 0 to
        # 125 bytes); the frames behind them (a 16-bit length, a fragmented message with a
        # ping inside, small messages again) go the general way, in order and byte for byte.
        # One write of < 1 KiB: one read, forwarded before raw_echo's masked echo can fail it.
        b = self.start_raw_ws_backend("raw_echo")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={"ping_interval": 0}))
        ws = self.ws_connect(p.port, "/ws/mixed")
        f = ws_client.build_frame
        smalls = b"".join(f(OP_BINARY, bytes([i]) * i) for i in range(0, 126, 25))
        mixed = (smalls + f(OP_TEXT, b"x" * 126) + f(OP_TEXT, b"a" * 125, fin=False) + f(OP_PING, b"p")
                 + f(OP_CONT, b"b" * 3) + f(OP_BINARY, b"y" * 125) + f(OP_TEXT, b""))
        ws.send_raw(mixed)
        self.assertTrue(wait_for(lambda: len(b.ws_received) >= len(mixed), 5 * slow_factor()),
                        len(b.ws_received))
        self.assertEqual(bytes(b.ws_received)[:len(mixed)], mixed)

    def test_whole_small_messages_then_long_frames_across_reads_echo_whole(self):
        # Small messages, then frames whose payload spans reads (16- and 64-bit lengths at
        # their bounds), then small ones again, in one write: the long ones go on as their
        # reads come, the messages behind them are taken whole again.
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={"ping_interval": 0}))
        ws = self.ws_connect(p.port, "/ws/long")
        sizes = [0, 125, 126, 65535, 65536, 1, 125]
        messages = [bytes([i + 1]) * n for i, n in enumerate(sizes)]
        ws.send_raw(b"".join(ws_client.build_frame(OP_BINARY, m) for m in messages))
        for m in messages:
            self.assertEqual(ws.recv_message(timeout=10 * slow_factor()), (OP_BINARY, m))

    def test_whole_small_messages_before_a_violation_go_on_then_close(self):
        b = self.start_raw_ws_backend("raw_echo")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={"ping_interval": 0}))
        ws = self.ws_connect(p.port, "/ws/bad")
        good = ws_client.build_frame(OP_TEXT, b"one") + ws_client.build_frame(OP_BINARY, b"two")
        bad = ws_client.build_frame(OP_TEXT, b"rsv", rsv=1)  # RSV3 without an extension
        ws.send_raw(good + bad + ws_client.build_frame(OP_TEXT, b"never"))
        self.assertCloseCode(ws, 1002)
        self.assertTrue(wait_for(lambda: len(b.ws_received) >= len(good) + 4, 5 * slow_factor()))
        received = bytes(b.ws_received)
        self.assertEqual(received[:len(good)], good)
        after = _client_frames(received[len(good):])
        self.assertEqual([(fr.opcode, fr.payload[:2]) for fr in after], [(ws_client.OP_CLOSE, (1001).to_bytes(2, "big"))])


class BuiltinLimits(WsTestCase):
    test_timeout = 30

    def test_echo_max_message_bytes_is_1009(self):
        p = self.start_portico(echo_config(websocket={"max_message_bytes": 1000}))
        ws = self.ws_connect(p.port, "/echo")
        ws.send_binary(b"x" * 1000)
        self.assertEqual(ws.recv_message(), (OP_BINARY, b"x" * 1000))
        ws.send_frame(OP_TEXT, b"y" * 600, fin=False)
        ws.send_frame(OP_CONT, b"y" * 600, fin=True)
        self.assertCloseCode(ws, 1009)

    def test_pubsub_client_message_over_the_limit_is_1009(self):
        from portico_harness import make_config
        p = self.start_portico(make_config(routes=[{
            "path": "/live/", "handler": "pubsub", "pubsub": {"client_publish": True},
            "websocket": {"max_message_bytes": 1000}}]))
        ws = self.ws_connect(p.port, "/live/room")
        ws.send_binary(b"z" * 1001)
        self.assertCloseCode(ws, 1009)


class FramesUpstreamViolations(WsTestCase):
    test_timeout = 30

    def test_masked_server_frame_closes_client_1001(self):
        b = self.start_raw_ws_backend("masked_server_frame")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames"))
        ws = self.ws_connect(p.port, "/ws/x")
        code = ws.fail_reason(5 * slow_factor())
        self.assertIn(code, OTHER_SIDE, "client should get 1001/1011 when the upstream sends "
                      "a masked frame (the upstream is at fault)")
        self.assertEqual(ws.before_close, [], "the masked frame was relayed")

    def test_oversized_server_message_closes_both(self):
        b = self.start_raw_ws_backend("big_server_message", size=5000)
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={
            "max_message_bytes": 1000}))
        ws = self.ws_connect(p.port, "/ws/big")
        code = ws.fail_reason(5 * slow_factor())
        self.assertIn(code, OTHER_SIDE, "client should get 1001/1011 when the upstream's "
                      "message is over max_message_bytes")
        self.assertTrue(wait_for(lambda: b.ws_closed >= 1, timeout=5))
        # The upstream (at fault) was told 1009 before its connection was closed.
        frames = _client_frames(bytes(b.ws_received))
        closes = [f for f in frames if f.opcode == ws_client.OP_CLOSE]
        self.assertTrue(closes, "the upstream got no close frame: %r" % frames)
        self.assertEqual(closes[0].close_code, 1009)

    def test_tunnel_relays_the_same_frame_untouched(self):
        b = self.start_raw_ws_backend("masked_server_frame")
        p = self.start_portico(ws_proxy_config(b.address, mode="tunnel"))
        ws = self.ws_connect(p.port, "/ws/x")
        with self.assertRaises(ws_client.WsProtocolError):
            ws.recv_frame()  # our client refuses masked server frames: it came through as is


class Timers(WsTestCase):
    test_timeout = 60

    def test_frames_idle_timeout_closes_1001_both_ways(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={
            "idle_timeout": "1s", "ping_interval": 0}))
        ws = self.ws_connect(p.port, "/ws/idle")
        ws.send_text("x")
        self.assertEqual(ws.recv_text(), "x")
        t0 = time.monotonic()
        code = ws.fail_reason(5 * slow_factor())
        waited = time.monotonic() - t0
        self.assertEqual(code, 1001)
        self.assertGreater(waited, 0.7, "closed before the idle timeout")
        ev = b.wait_event(lambda e: e["event"] == "close")
        self.assertIsNotNone(ev)
        self.assertIn(ev["code"], OTHER_SIDE, ev)

    def test_traffic_keeps_a_frames_connection_open(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={
            "idle_timeout": "1s", "ping_interval": 0}))
        ws = self.ws_connect(p.port, "/ws/busy")
        for i in range(8):  # 2.4 s of traffic in 0.3 s steps
            ws.send_text("m%d" % i)
            self.assertEqual(ws.recv_text(), "m%d" % i)
            time.sleep(0.3)

    def test_tunnel_idle_timeout_closes_tcp(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode="tunnel", websocket={
            "idle_timeout": "1s"}))
        ws = self.ws_connect(p.port, "/ws/idle")
        ws.send_text("x")
        self.assertEqual(ws.recv_text(), "x")
        frames, eof = ws.read_until_eof(5 * slow_factor())
        self.assertTrue(eof, "tunnel stayed open past its idle timeout")
        self.assertEqual(frames, [], "tunnel mode cannot send frames of its own")
        self.assertIsNotNone(b.wait_event(lambda e: e["event"] == "close"),
                             "the backend connection stayed open")

    def test_echo_idle_timeout_closes_1001(self):
        p = self.start_portico(echo_config(websocket={"idle_timeout": "1s",
                                                      "ping_interval": 0}))
        ws = self.ws_connect(p.port, "/echo")
        self.assertEqual(ws.fail_reason(5 * slow_factor()), 1001)

    def test_a_subscriber_that_only_receives_is_not_idle(self):
        # idle_timeout is "no traffic either way": a pubsub subscriber that never sends but
        # gets a message every 0.3 s was closed 1001 "idle timeout" after 1 s.
        p = self.start_portico(make_config(routes=[{"path": "/live/", "handler": "pubsub",
                                                    "websocket": {"idle_timeout": "1s",
                                                                  "ping_interval": 0}}]))
        ws = self.ws_connect(p.port, "/live/ticks")
        self.assertTrue(wait_for(lambda: http_request(p.port, "GET", "/live/ticks").json()
                                 ["subscribers"] == 1, timeout=5))
        for i in range(8):  # 2.4 s of messages towards the client only
            self.assertEqual(http_request(p.port, "POST", "/live/ticks", body=b"t%d" % i).status, 200)
            self.assertEqual(ws.recv_text(), "t%d" % i)
            time.sleep(0.3)
        self.assertEqual(ws.fail_reason(5 * slow_factor()), 1001, "idle once the messages stop")

    def test_pongs_to_an_upstreams_pings_reach_it(self):
        # Frames mode dropped every client Pong with the payload of Portico's own pings, also
        # when it had not pinged: a Portico behind it (same payload) never got its pongs and
        # closed the WebSocket 1001 "no pong" after two ping intervals.
        inner = self.start_portico(echo_config(path="/ws/", websocket={"ping_interval": "1s"}))
        outer = self.start_portico(ws_proxy_config("127.0.0.1:%d" % inner.port, mode="frames",
                                                   websocket={"ping_interval": 0}))
        ws = self.ws_connect(outer.port, "/ws/chain")
        deadline = time.monotonic() + 4 * slow_factor()
        pings = 0
        while time.monotonic() < deadline:
            try:
                f = ws.recv_frame(timeout=0.5)
            except OSError:  # socket.timeout: nothing this half second
                continue
            self.assertEqual(f.opcode, OP_PING, "the inner Portico closed: %r" % f)
            ws.send_frame(OP_PONG, f.payload)
            pings += 1
        self.assertGreaterEqual(pings, 2)
        ws.send_text("still here")
        self.assertEqual(ws.recv_text(), "still here")

    def test_two_pinging_porticos_in_a_chain_each_get_their_own_pongs(self):
        # Both Porticos of a chain ping the client (frames mode both), and the client answers
        # every ping a while after it came (RFC 6455 5.5.2: "as soon as practical"), in time for
        # either. With one payload for every ping, the outer Portico took the first pong that
        # came while its own ping waited, also the inner's, whose ping then stayed unanswered
        # until the outer's own pong came and went on to it: here the inner's ping at 4 s
        # was answered at 8.4 s, after its next ping was due, and it closed 1001 "no pong".
        # The intervals leave each pong 1.6 s (x slow_factor) to spare on a slow machine.
        sf = slow_factor()
        b = self.start_ws_backend("python")
        inner = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={
            "ping_interval": "%dms" % (4000 * sf), "idle_timeout": "1m"}))
        outer = self.start_portico(ws_proxy_config("127.0.0.1:%d" % inner.port, mode="frames", websocket={
            "ping_interval": "%dms" % (6000 * sf), "idle_timeout": "1m"}))
        ws = self.ws_connect(outer.port, "/ws/chain")
        delay = 2.4 * sf  # each pong this long after its ping
        end = time.monotonic() + 15 * sf  # the inner pings at 4, 8 and 12 s, the outer at 6 and 12
        due = []  # (when, payload) of the pongs owed, in the order of their pings
        pings = []
        while True:
            now = time.monotonic()
            while due and due[0][0] <= now:
                ws.send_frame(OP_PONG, due.pop(0)[1])
            if now >= end:
                break
            wait = min([end] + [when for when, _ in due]) - now
            try:
                f = ws.recv_frame(timeout=max(wait, 0.01))
            except OSError:  # socket.timeout: a pong is due, or the time is up
                continue
            self.assertEqual(f.opcode, OP_PING, "a Portico closed after %d pings: %r" % (len(pings), f))
            due.append((time.monotonic() + delay, f.payload))
            pings.append(f.payload)
        self.assertGreaterEqual(len(pings), 4, pings)
        self.assertEqual(len(set(pings)), len(pings), "every ping has a payload of its own")
        ws.send_text("still here")
        self.assertEqual(ws.recv_text(), "still here")

    def test_frames_ping_interval_pings_the_client(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={
            "ping_interval": "1s", "idle_timeout": "30s"}))
        self._expect_pings(self.ws_connect(p.port, "/ws/pinged"))

    def test_echo_ping_interval_pings_the_client(self):
        p = self.start_portico(echo_config(websocket={"ping_interval": "1s"}))
        self._expect_pings(self.ws_connect(p.port, "/echo"))

    def test_client_that_never_answers_pings_is_closed(self):
        # "Portico pings the client and expects a pong": a client that never answers is gone.
        p = self.start_portico(echo_config(websocket={"ping_interval": "1s",
                                                      "idle_timeout": "1m"}))
        ws = self.ws_connect(p.port, "/echo")
        deadline = time.monotonic() + 8 * slow_factor()
        pings, close = 0, None
        try:
            while time.monotonic() < deadline:
                f = ws.recv_frame(deadline - time.monotonic())  # never answered
                if f.opcode == OP_PING:
                    pings += 1
                elif f.opcode == ws_client.OP_CLOSE:
                    close = f.close_code
                    break
        except ws_client.ConnectionClosed:
            close = "eof"
        except OSError:
            pass
        self.assertGreaterEqual(pings, 1)
        self.assertIsNotNone(close, "a client that ignored %d pings for 8 s is still "
                             "connected" % pings)
        self.assertIn(close, (1001, 1002, 1008, 1011, "eof"))

    def _expect_pings(self, ws):
        pings = 0
        deadline = time.monotonic() + 4.5 * slow_factor()
        while pings < 2 and time.monotonic() < deadline:
            f = ws.recv_frame(deadline - time.monotonic())
            if f.opcode == OP_PING:
                pings += 1
                ws.send_frame(OP_PONG, f.payload)
        self.assertGreaterEqual(pings, 2, "expected a ping about every second")
        ws.send_text("still open")
        while True:
            op, data = ws.recv_message()
            if op == OP_TEXT:
                self.assertEqual(data, b"still open")
                break


class ForwardedAtOnce(WsTestCase):
    """Frames mode forwards what it read in the same loop pass: a message never waits for more
    input, a timer or a later frame. No timing thresholds: with no ping and no idle timer
    running, a held-back frame would only move once the next input arrives, and each check
    sends none before it expects the frame (a frame that waits shows as a recv timeout)."""

    test_timeout = 60

    def setUp(self):
        super().setUp()
        self.quiet = {"ping_interval": 0, "idle_timeout": "10m"}  # no timer can push a frame on

    def test_single_messages_are_echoed_with_no_other_traffic(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket=self.quiet))
        ws = self.ws_connect(p.port, "/ws/single")
        for i in range(5):
            ws.send_text("m%d" % i)
            self.assertEqual(ws.recv_text(timeout=5 * slow_factor()), "m%d" % i)

    def test_complete_client_frame_goes_on_while_the_next_is_incomplete(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket=self.quiet))
        ws = self.ws_connect(p.port, "/ws/split")
        second = ws_client.build_frame(OP_TEXT, b"second")
        ws.send_raw(ws_client.build_frame(OP_TEXT, b"first") + second[:3])  # one write
        self.assertEqual(ws.recv_text(timeout=5 * slow_factor()), "first")
        ws.send_raw(second[3:])
        self.assertEqual(ws.recv_text(timeout=5 * slow_factor()), "second")

    def test_client_frame_split_across_writes_goes_on_when_whole(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket=self.quiet))
        ws = self.ws_connect(p.port, "/ws/pieces")
        ws.send_frame(OP_TEXT, b"in pieces", chop=4, delay=0.1)  # header in two reads, then payload
        self.assertEqual(ws.recv_text(timeout=5 * slow_factor()), "in pieces")

    def test_complete_upstream_frame_goes_on_while_the_next_is_incomplete(self):
        b = self.start_raw_ws_backend("split_server_frames")
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket=self.quiet))
        ws = self.ws_connect(p.port, "/ws/split")
        ws.send_text("start")  # after the handshake: "one" and a piece of "two" come in one read
        self.assertEqual(ws.recv_text(timeout=5 * slow_factor()), "one")
        ws.send_text("go on")  # the backend sends the rest of "two" once this arrives
        self.assertEqual(ws.recv_text(timeout=5 * slow_factor()), "two")


if __name__ == "__main__":
    main()
