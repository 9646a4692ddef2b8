# SPDX-License-Identifier: Apache-2.0
"""Black-box WebSocket conformance on the ground of the Autobahn TestSuite's cases 1-7, 9 and
(built-in echo only) 12-13, run against `handler: echo` and against a `mode: frames` route in
front of a python3-websockets echo backend.

Expectations follow Autobahn's strict reading: a protocol error is a close 1002 (invalid UTF-8
1007) followed by the TCP close; echo frames that were due before the error may arrive first.
Python's strict bytes.decode("utf-8") is the UTF-8 oracle.
"""

import hashlib
import itertools
import os
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import main, make_config, slow_factor  # noqa: E402
from ws_client import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                       build_frame, close_payload)
from ws_peers import WsTestCase, py_connect, py_run, start_ws_backend, ws_url  # noqa: E402

MiB = 1024 * 1024
LIMIT = 32 * MiB


def _is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# Autobahn 6.x ground: valid and invalid sequences. The expected outcome is computed with the
# oracle, never written by hand.
UTF8_CASES = [
    b"", b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
    "κόσμε".encode(), b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
    # first / last sequences of each length
    b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80",
    b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf",
    # other boundaries
    b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf4\x90\x80\x80",
    # 5- and 6-byte forms (never valid)
    b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80", b"\xfb\xbf\xbf\xbf\xbf",
    # lone continuation bytes, runs of them
    b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80\xbf", bytes(range(0x80, 0xc0)),
    # lonely start bytes followed by a space
    b"\xc0 ", b"\xe0 ", b"\xf0 ", b"\xf8 ", b"\xfc ",
    # sequences with the last byte missing
    b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf",
    b"\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf7\xbf\xbf",
    # impossible bytes
    b"\xfe", b"\xff", b"\xfe\xfe\xff\xff",
    # overlong forms
    b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xc1\xbf", b"\xe0\x9f\xbf",
    b"\xf0\x8f\xbf\xbf", b"\xc0\x80", b"\xe0\x80\x80",
    # UTF-16 surrogates, single and paired
    b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf", b"\xed\xb0\x80",
    b"\xed\xbe\x80", b"\xed\xbf\xbf", b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf",
    # noncharacters are valid UTF-8
    b"\xef\xbf\xbe", b"\xef\xbf\xbf", b"\xef\xb7\x90", b"\xf0\x9f\xbf\xbe", b"\xf4\x8f\xbf\xbe",
    # invalid bytes at the end of an otherwise valid text, and valid text after invalid
    "κόσμε".encode() + b"\xed\xa0\x80edited", "κόσμε".encode() + b"\xf4\x90\x80\x80",
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
]


class _Conformance:
    """Cases for one target; subclasses set self.port/self.path (target())."""

    test_timeout = 120
    is_echo = False

    # -- helpers --------------------------------------------------------------------------
    def ws(self, **kw):
        return self.ws_connect(self.port, self.path, **kw)

    def echo_ok(self, ws, op, data, **send_kw):
        ws.send_frame(op, data, **send_kw)
        got_op, got = ws.recv_message()
        self.assertEqual(got_op, op, "opcode of the echo")
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "echo of a %d-byte message differs" % len(data))

    def expect_pong(self, ws, payload):
        while True:
            f = ws.recv_frame()
            if f.opcode == OP_PONG:
                self.assertEqual(f.payload, payload)
                return
            self.assertEqual(f.opcode, OP_PING, "unexpected %r while waiting for a pong" % f)

    def expect_fail(self, ws, code=1002, echoes=()):
        """The server fails the connection with `code` (close frame, then TCP close). Data
        messages before it must be among `echoes` (in order) if any arrive."""
        got = self.assertCloseCode(ws, code)
        before = getattr(ws, "before_close", [])
        self.assertLessEqual(len(before), len(echoes), "unexpected data before close: %r"
                             % [(o, d[:30]) for o, d in before])
        for (op, data), want in zip(before, echoes):
            self.assertEqual((op, data), want)
        return got

    def close_normally(self, ws, code=1000, reason=b""):
        ws.send_close(code, reason)
        return ws.expect_close()

    # -- 1 framing ------------------------------------------------------------------------
    def test_1_framing_every_length_class(self):
        ws = self.ws()
        for op in (OP_TEXT, OP_BINARY):
            for n in (0, 1, 125, 126, 127, 128, 65535, 65536, 65537):
                with self.subTest(op=op, n=n):
                    data = b"*" * n if op == OP_TEXT else bytes(i & 0xFF for i in range(n))
                    self.echo_ok(ws, op, data)
        self.assertEqual(self.close_normally(ws)[0], 1000)

    def test_1_framing_chopped_writes(self):
        ws = self.ws()
        for op in (OP_TEXT, OP_BINARY):
            self.echo_ok(ws, op, b"A" * 65536, chop=997)
            self.echo_ok(ws, op, b"small", chop=1)               # header byte by byte
            self.echo_ok(ws, op, b"B" * 300, chop=1, delay=0.001)  # 16-bit length split

    def test_1_framing_16bit_length_for_small_payload_is_echoed(self):
        # A non-minimal length encoding is not forbidden for clients by RFC 6455 5.2's grammar
        # in practice, but RFC 6455 5.2 says "the minimal number of bytes MUST be used".
        # Accept either an echo or a 1002, never anything else.
        ws = self.ws()
        ws.send_frame(OP_TEXT, b"short", length_bytes=2)
        f = ws.recv_frame()
        if f.opcode == OP_CLOSE:
            self.assertEqual(f.close_code, 1002)
        else:
            self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"short"))

    # -- 2 ping/pong ----------------------------------------------------------------------
    def test_2_ping_payloads_come_back_in_pongs(self):
        ws = self.ws()
        for payload in (b"", b"Hello, world!", bytes([0, 255, 254, 253, 252, 251, 0, 255]),
                        b"*" * 125):
            with self.subTest(n=len(payload)):
                ws.send_ping(payload)
                self.expect_pong(ws, payload)
        ws.send_frame(OP_PING, b"chopped ping", chop=1)
        self.expect_pong(ws, b"chopped ping")
        ws.send_frame(OP_PING, b"slow ping", chop=2, delay=0.05)
        self.expect_pong(ws, b"slow ping")

    def test_2_ping_over_125_bytes_is_1002(self):
        ws = self.ws()
        ws.send_ping(b"*" * 126)
        self.expect_fail(ws)

    def test_2_unsolicited_pong_is_ignored(self):
        ws = self.ws()
        ws.send_frame(OP_PONG, b"unsolicited")
        ws.send_frame(OP_PONG, b"")
        self.echo_ok(ws, OP_TEXT, b"after pongs")

    def test_2_ten_pings_get_pongs(self):
        ws = self.ws()
        payloads = [b"payload-%d" % i for i in range(10)]
        ws.send_raw(b"".join(build_frame(OP_PING, p) for p in payloads))
        seen = []
        deadline = time.monotonic() + 5 * slow_factor()
        while payloads[-1] not in seen and time.monotonic() < deadline:
            f = ws.recv_frame(deadline - time.monotonic())
            self.assertEqual(f.opcode, OP_PONG, f)
            self.assertIn(f.payload, payloads)
            seen.append(f.payload)
        self.assertIn(payloads[-1], seen, "no pong for the last ping")

    # -- 3 reserved bits -------------------------------------------------------------------
    def test_3_rsv_bits_without_extension_are_1002(self):
        cases = [(OP_TEXT, b"Hello, world!", rsv) for rsv in range(1, 8)]
        cases += [(OP_BINARY, b"\x00\xff", 6), (OP_PING, b"ping", 5), (OP_CLOSE,
                                                                       close_payload(1000), 7)]
        for op, data, rsv in cases:
            with self.subTest(op=op, rsv=rsv):
                ws = self.ws()
                ws.send_frame(op, data, rsv=rsv)
                self.expect_fail(ws)

    def test_3_rsv_after_a_valid_message(self):
        ws = self.ws()
        ws.send_text(b"Hello, world!")
        ws.send_frame(OP_TEXT, b"reserved", rsv=2)
        ws.send_ping(b"never answered")
        self.expect_fail(ws, echoes=[(OP_TEXT, b"Hello, world!")])

    # -- 4 opcodes --------------------------------------------------------------------------
    def test_4_reserved_opcodes_are_1002(self):
        for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
            for payload in (b"", b"reserved opcode payload"):
                with self.subTest(op=op, n=len(payload)):
                    ws = self.ws()
                    ws.send_frame(op, payload)
                    self.expect_fail(ws)

    def test_4_reserved_opcode_after_a_message(self):
        ws = self.ws()
        ws.send_text(b"Hello, world!")
        ws.send_frame(5, b"")
        ws.send_ping(b"")
        self.expect_fail(ws, echoes=[(OP_TEXT, b"Hello, world!")])

    # -- 5 fragmentation --------------------------------------------------------------------
    def test_5_fragmented_control_frames_are_1002(self):
        for op in (OP_PING, OP_PONG):
            with self.subTest(op=op):
                ws = self.ws()
                ws.send_frame(op, b"fragment1", fin=False)
                ws.send_frame(OP_CONT, b"fragment2", fin=True)
                self.expect_fail(ws)

    def test_5_fragmented_text_in_every_way(self):
        ws = self.ws()
        for chop, delay in ((None, 0), (1, 0), (None, 0.1)):
            with self.subTest(chop=chop, delay=delay):
                ws.send_frame(OP_TEXT, b"fragment1", fin=False, chop=chop)
                time.sleep(delay)
                ws.send_frame(OP_CONT, b"fragment2", fin=True, chop=chop)
                self.assertEqual(ws.recv_message(), (OP_TEXT, b"fragment1fragment2"))

    def test_5_control_frames_between_fragments(self):
        ws = self.ws()
        for chop, delay in ((None, 0), (1, 0), (None, 0.1)):
            with self.subTest(chop=chop, delay=delay):
                ws.send_frame(OP_TEXT, b"fragment1", fin=False, chop=chop)
                ws.send_frame(OP_PING, b"ping payload", chop=chop)
                time.sleep(delay)
                ws.send_frame(OP_CONT, b"fragment2", fin=True, chop=chop)
                self.expect_pong(ws, b"ping payload")
                self.assertEqual(ws.recv_message(), (OP_TEXT, b"fragment1fragment2"))
        # An unsolicited pong between fragments is fine too.
        ws.send_frame(OP_TEXT, b"a", fin=False)
        ws.send_frame(OP_PONG, b"x")
        ws.send_frame(OP_CONT, b"b", fin=True)
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"ab"))

    def test_5_many_fragments_with_pings(self):
        ws = self.ws()
        parts = [b"fragment%d" % i for i in range(100)]
        out = []
        for i, p in enumerate(parts):
            out.append(build_frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1))
            if i % 10 == 5:
                out.append(build_frame(OP_PING, b"p%d" % i))
        ws.send_raw(b"".join(out))
        op, data = ws.recv_message()  # pongs are skipped
        self.assertEqual((op, data), (OP_TEXT, b"".join(parts)))

    def test_5_continuation_without_a_message_is_1002(self):
        for fin in (True, False):
            for lead in (False, True):
                with self.subTest(fin=fin, after_message=lead):
                    ws = self.ws()
                    echoes = []
                    if lead:
                        ws.send_text(b"fragment1")
                        echoes = [(OP_TEXT, b"fragment1")]
                    ws.send_frame(OP_CONT, b"fragment2", fin=fin)
                    if not fin:
                        ws.send_frame(OP_CONT, b"fragment3", fin=True)
                    self.expect_fail(ws, echoes=echoes)

    def test_5_new_message_inside_a_message_is_1002(self):
        for second in (OP_TEXT, OP_BINARY):
            with self.subTest(second=second):
                ws = self.ws()
                ws.send_frame(OP_TEXT, b"fragment1", fin=False)
                ws.send_frame(second, b"fragment2", fin=True)
                self.expect_fail(ws)

    def test_5_fragmented_binary_and_empty_fragments(self):
        ws = self.ws()
        ws.send_frame(OP_BINARY, b"", fin=False)
        ws.send_frame(OP_CONT, b"\x01\x02", fin=False)
        ws.send_frame(OP_CONT, b"", fin=False)
        ws.send_frame(OP_CONT, b"\x03", fin=True)
        self.assertEqual(ws.recv_message(), (OP_BINARY, b"\x01\x02\x03"))
        if self.is_echo:  # daphne-like backends may drop empty messages; the echo must not
            ws.send_frame(OP_TEXT, b"", fin=False)
            ws.send_frame(OP_CONT, b"", fin=True)
            self.assertEqual(ws.recv_message(), (OP_TEXT, b""))

    # -- 6 UTF-8 --------------------------------------------------------------------------
    def test_6_utf8_whole_messages(self):
        for i, data in enumerate(UTF8_CASES):
            with self.subTest(case=i, data=data[:24]):
                ws = self.ws()
                ws.send_frame(OP_TEXT, data)
                if _is_utf8(data):
                    self.assertEqual(ws.recv_message(), (OP_TEXT, data))
                    self.assertEqual(self.close_normally(ws)[0], 1000)
                else:
                    self.expect_fail(ws, 1007)

    def test_6_utf8_fragmented_per_byte_and_per_codepoint(self):
        for i, data in enumerate(UTF8_CASES):
            if not data:
                continue
            for size in (1, 3):
                with self.subTest(case=i, fragment=size, data=data[:24]):
                    ws = self.ws()
                    pieces = [data[k:k + size] for k in range(0, len(data), size)]
                    frames = [build_frame(OP_TEXT if k == 0 else OP_CONT, p,
                                          fin=k == len(pieces) - 1)
                              for k, p in enumerate(pieces)]
                    try:
                        ws.send_raw(b"".join(frames))
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # failed fast, before we were done writing
                    if _is_utf8(data):
                        self.assertEqual(ws.recv_message(), (OP_TEXT, data))
                    else:
                        self.expect_fail(ws, 1007)

    def test_6_invalid_utf8_fails_fast(self):
        # Autobahn 6.4.x: the first fragment already holds an invalid sequence; the close must
        # come before the message ends.
        for head in (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
                     b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
                     b"\xc0\xaf", b"\xff"):
            with self.subTest(head=head):
                ws = self.ws()
                ws.send_frame(OP_TEXT, head, fin=False)
                self.expect_fail(ws, 1007)

    def test_6_invalid_utf8_split_across_fragments(self):
        # A surrogate (ED A0 80) split over two fragments: each half alone is a valid prefix.
        ws = self.ws()
        ws.send_frame(OP_TEXT, b"ok \xed", fin=False)
        ws.send_frame(OP_CONT, b"\xa0\x80 bad", fin=True)
        self.expect_fail(ws, 1007)
        # A valid 4-byte sequence split the same way passes.
        ws = self.ws()
        ws.send_frame(OP_TEXT, b"ok \xf0\x9f", fin=False)
        ws.send_frame(OP_CONT, b"\x98\x80 fine", fin=True)
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"ok \xf0\x9f\x98\x80 fine"))
        # A message ending inside a sequence is invalid even though every byte so far was ok.
        ws = self.ws()
        ws.send_frame(OP_TEXT, b"cut \xe2\x82", fin=False)
        ws.send_frame(OP_CONT, b"", fin=True)
        self.expect_fail(ws, 1007)

    def test_6_binary_is_never_checked(self):
        ws = self.ws()
        self.echo_ok(ws, OP_BINARY, b"\xff\xfe\xed\xa0\x80\xc0\xaf")

    # -- 7 close handling --------------------------------------------------------------------
    def test_7_close_after_a_message(self):
        ws = self.ws()
        self.echo_ok(ws, OP_TEXT, b"Hello World!")
        self.assertEqual(self.close_normally(ws)[0], 1000)

    def test_7_nothing_is_answered_after_close(self):
        for after in ("close", "ping", "text", "fragment"):
            with self.subTest(after=after):
                ws = self.ws()
                if after == "fragment":
                    ws.send_frame(OP_TEXT, b"fragment1", fin=False)
                ws.send_close(1000)
                try:
                    if after == "close":
                        ws.send_close(1001)
                    elif after == "ping":
                        ws.send_ping(b"no pong please")
                    elif after == "text":
                        ws.send_text(b"no echo please")
                    else:
                        ws.send_frame(OP_CONT, b"fragment2", fin=True)
                except OSError:
                    pass
                frames, eof = ws.read_until_eof(5 * slow_factor())
                self.assertTrue(eof, "the connection stayed open after the close handshake")
                self.assertEqual([f.opcode for f in frames], [OP_CLOSE],
                                 "expected exactly one close frame: %r" % frames)
                self.assertEqual(frames[0].close_code, 1000)

    def test_7_large_message_then_close(self):
        ws = self.ws()
        data = b"BAsd7&jh23" * 26214  # 256 KiB - 4
        ws.send_raw(build_frame(OP_TEXT, data) + build_frame(OP_CLOSE, close_payload(1000)))
        ws.close_sent = True
        code, _ = ws.expect_close(10 * slow_factor())
        self.assertEqual(code, 1000)
        for op, got in ws.before_close:
            self.assertEqual((op, got), (OP_TEXT, data))

    def test_7_close_payloads(self):
        ok = [(close_payload(None), (None, 1000)), (close_payload(1000), (1000,)),
              (close_payload(1000, b"*" * 123), (1000,)),
              (close_payload(1000, "Hello World! κόσμε"), (1000,))]
        bad = [(b"\x03", 1002), (close_payload(1000, b"*" * 124), 1002),
               (close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
                1007)]
        for payload, codes in ok:
            with self.subTest(payload=payload[:10]):
                ws = self.ws()
                ws.send_frame(OP_CLOSE, payload)
                code, _ = ws.expect_close()
                self.assertIn(code, codes)
        for payload, code in bad:
            with self.subTest(payload=payload[:10], expect=code):
                ws = self.ws()
                ws.send_frame(OP_CLOSE, payload, length=None)
                self.expect_fail(ws, code)

    def test_7_valid_close_codes_are_echoed(self):
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000,
                     4999):
            with self.subTest(code=code):
                ws = self.ws()
                ws.send_close(code, b"reason")
                got, _ = ws.expect_close()
                self.assertIn(got, (code, 1000) if not self.is_echo else (code,),
                              "close code %d answered with %r" % (code, got))

    def test_7_invalid_close_codes_are_1002(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
            with self.subTest(code=code):
                ws = self.ws()
                ws.send_close(code)
                self.expect_fail(ws, 1002)

    # -- 9 limits and performance ------------------------------------------------------------
    def test_9_large_messages_up_to_16mib(self):
        ws = self.ws(timeout=60)
        for op in (OP_TEXT, OP_BINARY):
            for n in (64 * 1024, 256 * 1024, MiB, 4 * MiB, 16 * MiB):
                with self.subTest(op=op, n=n):
                    data = (b"\xce\xbaBAsd7&jh23" * (n // 12 + 1))[:n]
                    if op == OP_TEXT:
                        data = data[:n - (n % 12)] if n % 12 else data
                        data = data.decode("utf-8", "ignore").encode("utf-8")
                    t0 = time.monotonic()
                    ws.send_frame(op, data)
                    got_op, got = ws.recv_message(timeout=60 * slow_factor())
                    self.assertEqual(got_op, op)
                    self.assertEqual(hashlib.sha256(got).digest(),
                                     hashlib.sha256(data).digest())
                    if n == 16 * MiB:
                        print("\n  %s: 16 MiB %s echo in %.2f s" % (
                            type(self).__name__, "text" if op == OP_TEXT else "binary",
                            time.monotonic() - t0))

    def test_9_fragmented_4mib_in_every_fragment_size(self):
        ws = self.ws(timeout=60)
        data = bytes(range(256)) * (4 * MiB // 256)
        for fragment in (64, 256, 1024, 4096, 65536, MiB):
            with self.subTest(fragment=fragment):
                ws.send_message(OP_BINARY, data, fragment=fragment)
                op, got = ws.recv_message(timeout=60 * slow_factor())
                self.assertEqual(op, OP_BINARY)
                self.assertTrue(got == data)

    def test_9_many_small_messages(self):
        ws = self.ws(timeout=60)
        for size in (0, 16, 64, 256, 1024):
            with self.subTest(size=size):
                n = 1000
                msgs = [(b"%05d" % i + b"x" * size)[:max(size, 5)] for i in range(n)]
                t0 = time.monotonic()
                ws.send_raw(b"".join(build_frame(OP_BINARY, m) for m in msgs), chop=4096)
                for m in msgs:
                    self.assertEqual(ws.recv_message(), (OP_BINARY, m))
                dt = time.monotonic() - t0
                print("\n  %s: 1000 x %d-byte messages round trip in %.3f s"
                      % (type(self).__name__, size, dt))


class EchoConformance(_Conformance, WsTestCase):
    is_echo = True

    def setUp(self):
        super().setUp()
        self.p = self.start_portico(make_config(routes=[{
            "path": "/echo", "handler": "echo",
            "websocket": {"max_message_bytes": LIMIT, "ping_interval": 0}}]))
        self.port, self.path = self.p.port, "/echo"

    # -- 12/13 permessage-deflate (built-in codec only) --------------------------------------
    def test_12_13_deflate_every_parameter_combination(self):
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        url = ws_url(self.port, self.path)
        sizes = (16, 64, 256, 1024, 4096, 16384, 65536, 131072)
        msgs = []
        for n in sizes:
            msgs.append(("Hello, κόσμε! " * (n // 10 + 1))[:n])                 # compressible
            msgs.append(hashlib.sha256(b"%d" % n).digest() * (n // 32 + 1))   # incompressible
        # Every window size the client can ask for (RFC 7692 7.1.2: 8..15; zlib's raw deflate
        # has no 8-bit window, so 9..15 like Autobahn 13.x) in both directions, with and
        # without each no_context_takeover: 2 x 2 x 8 x 9 = 288 connections.
        combos = list(itertools.product((False, True), (False, True),
                                        (None,) + tuple(range(9, 16)),
                                        (None, True) + tuple(range(9, 16))))

        async def one(snct, cnct, smwb, cmwb):
            factory = ClientPerMessageDeflateFactory(
                server_no_context_takeover=snct, client_no_context_takeover=cnct,
                server_max_window_bits=smwb, client_max_window_bits=cmwb)
            async with py_connect(url, extensions=[factory], compression=None) as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions") or ""
                if "permessage-deflate" not in ext:
                    return "declined"
                for m in msgs:
                    await ws.send(m)
                    got = await ws.recv()
                    if got != m:
                        return "echo differs for a %d-byte %s" % (len(m), type(m).__name__)
                await ws.close()
                return ext

        async def run():
            out = {}
            for c in combos:
                try:
                    out[c] = await one(*c)
                except Exception as e:  # reported per combination
                    out[c] = "error %r" % e
            return out

        t0 = time.monotonic()
        results = py_run(run(), timeout=300)
        print("\n  %d permessage-deflate combinations x %d messages in %.1f s"
              % (len(combos), len(msgs), time.monotonic() - t0))
        failed = {c: r for c, r in results.items()
                  if r == "declined" or r.startswith("error") or r.startswith("echo")}
        self.assertFalse(failed, "permessage-deflate combinations that failed "
                         "(server_nct, client_nct, server_bits, client_bits): %r" % failed)

    def test_12_server_compresses_and_takes_context_over(self):
        # Context takeover as configured (the default gives it up both ways:
        # test_ws_deflate_memory), with the client keeping its own window too.
        p = self.start_portico(make_config(routes=[{
            "path": "/echo", "handler": "echo",
            "websocket": {"ping_interval": 0, "permessage_deflate": {
                "server_no_context_takeover": False, "client_no_context_takeover": False}}}]))
        ws = self.ws_connect(p.port, "/echo", extensions="permessage-deflate; client_max_window_bits")
        ext = ws.extensions or ""
        self.assertIn("permessage-deflate", ext)
        self.assertNotIn("client_no_context_takeover", ext)
        self.assertNotIn("server_no_context_takeover", ext, "the route's takeover setting was not applied")
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = b"The quick brown fox jumps over the lazy dog. " * 20
        sizes = []
        inflater = zlib.decompressobj(-15)
        for _ in range(3):
            payload = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
            self.assertTrue(payload.endswith(b"\x00\x00\xff\xff"))
            ws.send_frame(OP_TEXT, payload[:-4], rsv=4)
            f = ws.recv_frame()
            self.assertEqual(f.opcode, OP_TEXT)
            self.assertEqual(f.rsv, 4, "a %d-byte echo was not compressed" % len(data))
            self.assertEqual(inflater.decompress(f.payload + b"\x00\x00\xff\xff"), data)
            sizes.append(len(f.payload))
        self.assertLess(sizes[1], sizes[0], "context takeover: the repeat should be smaller (%r)" % sizes)

    def test_12_compressed_frame_without_agreement_is_1002(self):
        ws = self.ws()  # no extension offered
        self.assertIsNone(ws.extensions)
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = comp.compress(b"hello") + comp.flush(zlib.Z_SYNC_FLUSH)
        ws.send_frame(OP_TEXT, payload[:-4], rsv=4)
        self.expect_fail(ws)

    def test_12_corrupt_deflate_data_fails(self):
        ws = self.ws(extensions="permessage-deflate")
        ws.send_frame(OP_BINARY, b"\xff\xff\xff\xff\xff garbage", rsv=4)
        code = ws.fail_reason(5 * slow_factor())
        # The built-in codec says 1007 (invalid payload data); behind a frames route the
        # backend's own codec decides.
        self.assertIn(code, (1007,) if self.is_echo else (1002, 1007, 1011), "corrupt compressed data")

    def test_12_deflate_bomb_is_1009(self):
        p = self.start_portico(make_config(routes=[{
            "path": "/echo", "handler": "echo",
            "websocket": {"max_message_bytes": 65536, "ping_interval": 0}}]))
        ws = self.ws_connect(p.port, "/echo", extensions="permessage-deflate")
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = comp.compress(b"\x00" * (16 * MiB)) + comp.flush(zlib.Z_SYNC_FLUSH)
        self.assertLess(len(payload), 65536)
        ws.send_frame(OP_BINARY, payload[:-4], rsv=4)
        self.assertCloseCode(ws, 1009)


class FramesConformance(_Conformance, WsTestCase):
    """The same ground through a frames route to python3-websockets (which answers pings and
    closes itself; Portico's frame checks decide every protocol error before it)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()

        class _Cleanups:
            @staticmethod
            def addCleanup(fn, *a, **kw):
                cls.addClassCleanup(fn, *a, **kw)

        cls.backend = start_ws_backend(_Cleanups, "python", deflate=False)

    def setUp(self):
        super().setUp()
        self.p = self.start_portico(make_config(
            routes=[{"path": "/ws/", "upstream": "app",
                     "websocket": {"mode": "frames", "max_message_bytes": LIMIT,
                                   "ping_interval": 0}}],
            upstreams={"app": {"servers": [self.backend.address]}}))
        self.port, self.path = self.p.port, "/ws/conformance"


if __name__ == "__main__":
    main()
