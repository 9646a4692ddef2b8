# SPDX-License-Identifier: Apache-2.0
"""WebSocket proxying through Portico to real backends, in tunnel and frames modes.

Backends: Node express-ws, Django Channels under daphne, python3-websockets (tests/peers/).
Clients: python3-websockets, node ws and the raw client (ws_client). For every backend x mode:
text, binary and 1 MiB messages, subprotocol and permessage-deflate passthrough, close codes
carried both ways, a backend or client dropping mid-stream, pipelined messages and a slow
reader (Portico's memory stays bounded)."""

import hashlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import ws_client  # noqa: E402
from portico_harness import LEAN_ASAN_ENV, RssSampler, main, slow_factor  # noqa: E402
from ws_client import OP_BINARY, OP_PING, OP_PONG, OP_TEXT  # noqa: E402
from ws_peers import (WsTestCase, py_connect, py_echo_roundtrip, py_run,  # noqa: E402
                      run_node_client, start_ws_backend, ws_proxy_config, ws_url)

MiB = 1024 * 1024


def _binary(n, seed=0):
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB, not compressible
    return (block * (n // len(block) + 1))[:n]


def _text(n):
    s = ("Grüße, κόσμε! 0123456789 " * (n // 20 + 1)).encode("utf-8")[:n]
    return s.decode("utf-8", "ignore")


def not_for(kind, reason):
    """Marks a test as not applicable to one backend kind; setUp skips it before starting
    anything."""
    def mark(fn):
        fn.not_for = dict(getattr(fn, "not_for", {}), **{kind: reason})
        return fn
    return mark


class _ProxyCases:
    """Mixed into one class per (backend kind, mode); see the bottom of the file."""

    kind = None
    mode = None
    test_timeout = 90

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.backend = start_ws_backend(cls._ClassCleanups(cls), cls.kind)

    class _ClassCleanups:
        def __init__(self, cls):
            self.cls = cls

        def addCleanup(self, fn, *a, **kw):
            self.cls.addClassCleanup(fn, *a, **kw)

    def setUp(self):
        super().setUp()
        reason = getattr(getattr(self, self._testMethodName), "not_for", {}).get(self.kind)
        if reason:
            self.skipTest(reason)
        # LEAN_ASAN_ENV: a small ASan quarantine, so RSS means live buffers (memory tests).
        self.p = self.start_portico(ws_proxy_config(self.backend.address, mode=self.mode),
                                    env=LEAN_ASAN_ENV)
        self.url = ws_url(self.p.port, "/ws/%s" % self._testMethodName)

    def own_backend(self, **kw):
        """A backend only this test uses (for drops that end the process) and a Portico to it."""
        b = self.start_ws_backend(self.kind, **kw)
        p = self.start_portico(ws_proxy_config(b.address, mode=self.mode))
        return b, p

    def backend_close_event(self, path, timeout=5.0):
        return self.backend.wait_event(
            lambda e: e["event"] == "close" and self._opened_on(e["id"], path), timeout)

    def _opened_on(self, conn_id, path):
        return any(e["event"] == "open" and e["id"] == conn_id and e["path"].startswith(path)
                   for e in self.backend.events())

    # -- messages -------------------------------------------------------------------------
    def test_python_client_text_binary_and_1mib(self):
        msgs = ["hello", "", b"\x00\x01\x02binary\xff", _text(4000), _binary(70000, 1),
                _binary(MiB, 2), _text(MiB)]
        if self.kind == "django":
            msgs.remove("")  # daphne never sends an empty message (PEERS.md)
        res = py_echo_roundtrip(self.url, msgs)
        self.assertEqual(len(res["echoes"]), len(msgs))
        for sent, got in zip(msgs, res["echoes"]):
            self.assertEqual(type(sent), type(got), "message type changed")
            self.assertTrue(sent == got, "echo differs for a %d-byte %s message"
                            % (len(sent), type(sent).__name__))
        self.assertEqual(res["close_code"], 1000)

    def test_node_client_text_binary_and_1mib(self):
        res = run_node_client({"url": self.url, "messages": [
            {"type": "text", "data": "hi"}, {"type": "binary", "size": 125},
            {"type": "binary", "size": 65536}, {"type": "text", "size": 70000},
            {"type": "binary", "size": MiB}, {"type": "text", "size": MiB}]})
        self.assertTrue(res["open"], res)
        self.assertIsNone(res["error"], res)
        self.assertEqual(len(res["echoes"]), 6, res)
        self.assertTrue(res["all_ok"], res)
        self.assertEqual(res["close"]["code"], 1000, res)

    def test_raw_client_fragmented_message_and_ping(self):
        ws = self.ws_connect(self.p.port, "/ws/raw")
        ws.send_frame(OP_TEXT, b"frag", fin=False)
        ws.send_frame(OP_PING, b"in-between")
        ws.send_frame(ws_client.OP_CONT, b"mented", fin=True)
        got_pong = False
        while True:
            f = ws.recv_frame()
            if f.opcode == OP_PONG:
                self.assertEqual(f.payload, b"in-between")
                got_pong = True
                continue
            self.assertIn(f.opcode, (OP_TEXT, ws_client.OP_CONT), f)
            if f.fin:
                break
        self.assertTrue(got_pong or self.kind == "django",
                        "no pong for a ping sent inside a fragmented message")
        ws.send_text("after")
        self.assertEqual(ws.recv_text(), "after")

    def test_first_frame_in_the_handshake_packet(self):
        frame = ws_client.build_frame(OP_TEXT, b"early")
        ws = self.ws_connect(self.p.port, "/ws/early", early_data=frame)
        self.assertEqual(ws.recv_text(), "early")

    def test_pipelined_small_messages_keep_their_order(self):
        ws = self.ws_connect(self.p.port, "/ws/pipelined")
        n = 2000
        ws.send_raw(b"".join(ws_client.build_frame(OP_TEXT, b"m%05d" % i) for i in range(n)))
        for i in range(n):
            self.assertEqual(ws.recv_text(), "m%05d" % i)

    # -- negotiation passthrough ----------------------------------------------------------
    def test_subprotocol_passthrough(self):
        res = run_node_client({"url": self.url, "protocols": ["chat.v1", "chat.v2"],
                               "messages": [{"type": "text", "data": "x"}]})
        self.assertEqual(res["protocol"], "chat.v2", res)
        self.assertTrue(res["all_ok"], res)
        res = py_echo_roundtrip(self.url, ["y"], subprotocols=["chat.v1"])
        self.assertEqual(res["subprotocol"], "chat.v1")
        ws = self.ws_connect(self.p.port, "/ws/none", protocols=["other"])
        self.assertIsNone(ws.protocol, "a protocol nobody agreed to was answered")

    @not_for("django", "daphne does not implement permessage-deflate")
    def test_permessage_deflate_passthrough(self):
        msgs = ["compress me " * 5000, _binary(100000, 3), "z" * 10]
        res = py_echo_roundtrip(self.url, msgs, compression="deflate")
        self.assertIn("permessage-deflate", res["extensions"] or "", res)
        self.assertEqual(res["echoes"], msgs)
        ev = self.backend.wait_event(lambda e: e["event"] == "open" and "permessage-deflate"
                                     in e.get("extensions", "") and e["path"].startswith(
                                         "/ws/test_permessage_deflate_passthrough"))
        self.assertIsNotNone(ev, "the backend did not agree to permessage-deflate: %r"
                             % self.backend.events()[-5:])
        res = run_node_client({"url": self.url, "deflate": True, "messages": [
            {"type": "text", "size": 200000}, {"type": "binary", "size": 1000}]})
        self.assertIn("permessage-deflate", res["extensions_header"] or "", res)
        self.assertTrue(res["all_ok"], res)

    @not_for("django", "daphne never agrees to an extension (covered by python/node)")
    def test_no_extension_when_the_backend_declines(self):
        b, p = self.own_backend(deflate=False)
        res = py_echo_roundtrip(ws_url(p.port, "/ws/nodeflate"), ["a" * 1000],
                                compression="deflate")
        self.assertIsNone(res["extensions"], "Portico answered an extension the backend "
                          "did not agree to")
        self.assertEqual(res["echoes"], ["a" * 1000])

    # -- closing --------------------------------------------------------------------------
    def test_client_close_code_reaches_backend(self):
        ws = self.ws_connect(self.p.port, "/ws/client-close")
        ws.send_text("ping?")
        self.assertEqual(ws.recv_text(), "ping?")
        ws.send_close(4000, "bye")
        code, _ = ws.expect_close()
        self.assertIn(code, (4000, 1000, None), "answer to our close")
        ev = self.backend_close_event("/ws/client-close")
        self.assertIsNotNone(ev, "backend saw no close: %r" % self.backend.events()[-5:])
        self.assertEqual(ev["code"], 4000, ev)
        if self.kind != "django":
            self.assertEqual(ev["reason"], "bye", ev)

    def test_backend_close_code_reaches_client(self):
        ws = self.ws_connect(self.p.port, "/ws/backend-close")
        ws.send_text("__close__:4001:server says bye")
        code, reason = ws.expect_close()
        self.assertEqual(code, 4001)
        if self.kind != "django":
            self.assertEqual(reason, b"server says bye")

    def test_backend_drop_ends_the_client(self):
        # __drop__ ends daphne: the Django case gets a backend of its own.
        p = self.own_backend()[1] if self.kind == "django" else self.p
        ws = self.ws_connect(p.port, "/ws/drop")
        ws.send_text("still there?")
        self.assertEqual(ws.recv_text(), "still there?")
        ws.send_text("__drop__")
        if self.mode == "tunnel":
            frames, eof = ws.read_until_eof(5 * slow_factor())
            self.assertTrue(eof, "tunnel: client connection stayed open after the backend "
                            "dropped")
            self.assertEqual(frames, [], "tunnel: bytes the backend never sent arrived")
        else:
            code = ws.fail_reason(5 * slow_factor())
            self.assertIn(code, (1001, 1011),
                          "frames: expected close 1001/1011 after the backend dropped")

    def test_client_drop_reaches_backend(self):
        ws = self.ws_connect(self.p.port, "/ws/client-drop")
        ws.send_text("x")
        self.assertEqual(ws.recv_text(), "x")
        ws.abort()
        ev = self.backend_close_event("/ws/client-drop")
        self.assertIsNotNone(ev, "backend never saw the client go: %r"
                             % self.backend.events()[-5:])
        if self.mode == "frames":
            self.assertIn(ev["code"], (1001, 1011), ev)
        else:
            self.assertIn(ev["code"], (1006, 1005, 1001, 1011), ev)

    def test_client_fin_without_close_reaches_backend(self):
        ws = self.ws_connect(self.p.port, "/ws/client-fin")
        ws.send_text("x")
        self.assertEqual(ws.recv_text(), "x")
        ws.close()
        self.assertIsNotNone(self.backend_close_event("/ws/client-fin"),
                             "backend never saw the client go")

    # -- flow control ---------------------------------------------------------------------
    @not_for("django", "daphne is too slow for 64 MiB in a test")
    def test_slow_reader_keeps_portico_memory_bounded(self):
        ws = self.ws_connect(self.p.port, "/ws/slow-reader", rcvbuf=65536)
        total, size = 64 * MiB, MiB
        payload = _binary(size, 9)
        frame = ws_client.build_frame(OP_BINARY, payload)
        errors = []

        def writer():
            try:
                for _ in range(total // size):
                    ws.send_raw(frame)
            except Exception as e:  # reported below
                errors.append(e)

        base = self.p.rss_kb()
        with RssSampler(self.p.pid) as rss:
            t = threading.Thread(target=writer, daemon=True)
            t.start()
            time.sleep(2.0)  # a slow reader: nothing read for 2 s while the writer pushes
            want = hashlib.sha256(payload).digest()
            for i in range(total // size):
                op, data = ws.recv_message(timeout=30 * slow_factor())
                self.assertEqual(op, OP_BINARY)
                self.assertEqual(hashlib.sha256(data).digest(), want, "message %d differs" % i)
            t.join(30)
        self.assertFalse(errors, errors)
        grown = rss.max_kb - base
        print("\n  %s/%s slow reader: RSS %d KB before, max %d KB (+%d KB) for %d MiB relayed"
              % (self.kind, self.mode, base, rss.max_kb, grown, total // MiB))
        limit = 48 * 1024 * (3 if self.p.uses_asan() else 1)
        self.assertLess(grown, limit, "Portico buffered %d KB for one slow reader" % grown)


def _make(kind, mode):
    name = "%s%s" % (kind.capitalize(), mode.capitalize())
    cls = type(name, (_ProxyCases, WsTestCase), {"kind": kind, "mode": mode})
    cls.__qualname__ = name
    return cls


for _kind in ("node", "django", "python"):
    for _mode in ("tunnel", "frames"):
        _c = _make(_kind, _mode)
        globals()[_c.__name__] = _c
del _c, _kind, _mode


class ModeDefaults(WsTestCase):
    test_timeout = 60

    def test_route_without_websocket_block_tunnels(self):
        b = self.start_ws_backend("python")
        p = self.start_portico(ws_proxy_config(b.address, mode=None))
        ws = self.ws_connect(p.port, "/ws/default")
        # A frame the backend would not accept from a client in frames mode (unmasked) still
        # passes: tunnel is the default, bytes are not inspected. python websockets answers
        # the unmasked frame with its own close 1002.
        ws.send_frame(OP_TEXT, b"masked ok")
        self.assertEqual(ws.recv_text(), "masked ok")
        ws.send_frame(OP_TEXT, b"unmasked", mask=False)
        code = ws.fail_reason(5 * slow_factor())
        self.assertEqual(code, 1002, "the backend's own 1002 should come through the tunnel")
        ev = b.wait_event(lambda e: e["event"] == "close")
        self.assertIsNotNone(ev)

    def test_python_websockets_client_through_two_routes(self):
        py = self.start_ws_backend("python")
        node = self.start_ws_backend("node")
        from portico_harness import make_config
        p = self.start_portico(make_config(
            upstreams={"py": {"servers": [py.address]}, "node": {"servers": [node.address]}},
            routes=[{"path": "/py/", "upstream": "py", "websocket": {"mode": "frames"}},
                    {"path": "/node/", "upstream": "node"}]))

        async def run():
            async with py_connect(ws_url(p.port, "/py/a")) as a, \
                    py_connect(ws_url(p.port, "/node/b")) as b:
                for i in range(50):
                    await a.send("a%d" % i)
                    await b.send(b"b%d" % i)
                    self.assertEqual(await a.recv(), "a%d" % i)
                    self.assertEqual(await b.recv(), b"b%d" % i)
        py_run(run())
        self.assertTrue(py.wait_event(lambda e: e["event"] == "open" and e["path"] == "/py/a"))
        self.assertTrue(node.wait_event(lambda e: e["event"] == "open"
                                        and e["path"] == "/node/b"))


if __name__ == "__main__":
    main()
