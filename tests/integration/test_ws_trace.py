# SPDX-License-Identifier: Apache-2.0
"""`websocket.trace` (issue 13): one log line per frame on a frames route (both directions of
the relay) and on the built-in echo: direction, opcode, FIN, RSV, mask, length, a Close's code
and reason, the first `trace_payload_bytes` of text payloads (escaped); `trace_rate` bounds
the lines per worker and route and reports what it held back ("N trace lines suppressed").
Off by default (no line at all), and a tunnel
route warns that it has no frames to trace."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from http_client import http_request  # noqa: E402
from portico_harness import main, make_config, run_portico, to_yaml  # noqa: E402
from ws_client import OP_CLOSE, OP_PONG  # noqa: E402
from ws_peers import WsTestCase, echo_config, wait_for, ws_proxy_config  # noqa: E402

# "... [info] ws trace ws#3 client 127.0.0.1 route /ws/: client->upstream text fin=1 ..."
TRACE_RE = re.compile(r"\[info\] ws trace (ws#\d+) client 127\.0\.0\.1 route (\S+): (.*)$")


def trace_lines(p, session=None):
    """[(session, route, line)] of the trace lines in p's error log."""
    out = []
    for line in p.stderr_lines():
        m = TRACE_RE.search(line)
        if m and (session is None or m.group(1) == session):
            out.append(m.groups())
    return out


class TraceTest(WsTestCase):
    test_timeout = 60

    def wait_trace(self, p, text, timeout=5.0):
        """Waits for a trace line containing `text`; returns the line (its text after ': ')."""
        found = wait_for(lambda: [l for _, _, l in trace_lines(p) if text in l], timeout)
        self.assertTrue(found, "no trace line with %r in:\n%s" % (text, p.stderr_text()[-4000:]))
        return found[0]

    def test_frames_route_traces_both_directions(self):
        b = self.start_ws_backend("python", deflate=False)
        p = self.start_portico(ws_proxy_config(b.address, mode="frames", websocket={
            "trace": True, "trace_payload_bytes": 16}))
        ws = self.ws_connect(p.port, "/ws/echo")
        ws.send_text("hello \"trace\"\n")
        self.assertEqual(ws.recv_text(), "hello \"trace\"\n")
        ws.send_text("x" * 40)
        self.assertEqual(ws.recv_text(), "x" * 40)
        ws.send_ping(b"are you there")
        pong = ws.recv_frame()
        self.assertEqual((pong.opcode, pong.payload), (OP_PONG, b"are you there"))
        ws.send_close(4001, b"bye now")
        close = ws.recv_frame()
        self.assertEqual(close.opcode, OP_CLOSE)

        up = 'client->upstream text fin=1 rsv=000 mask=1 len=14 payload="hello \\"trace\\"\\n"'
        down = 'upstream->client text fin=1 rsv=000 mask=0 len=14 payload="hello \\"trace\\"\\n"'
        self.wait_trace(p, up)
        self.wait_trace(p, down)
        # A payload longer than trace_payload_bytes is cut and marked.
        self.wait_trace(p, 'client->upstream text fin=1 rsv=000 mask=1 len=40 payload="%s"...'
                        % ("x" * 16))
        self.wait_trace(p, "client->upstream ping fin=1 rsv=000 mask=1 len=13")
        self.wait_trace(p, "upstream->client pong fin=1 rsv=000 mask=0 len=13")
        self.wait_trace(p, 'client->upstream close fin=1 rsv=000 mask=1 len=9 code=4001 '
                           'reason="bye now"')
        self.wait_trace(p, "upstream->client close fin=1 rsv=000 mask=0")
        lines = trace_lines(p)
        self.assertEqual({s for s, _, _ in lines}, {lines[0][0]})  # one session, one label
        self.assertEqual({r for _, r, _ in lines}, {"*/ws/"})
        self.assertEqual(len(lines), 8, "\n".join(l for _, _, l in lines))

    def test_echo_traces_and_rate_limits_with_a_summary(self):
        p = self.start_portico(echo_config(websocket={
            "trace": True, "trace_payload_bytes": 8, "trace_rate": "5/s"}, workers=1))
        ws = self.ws_connect(p.port, "/echo")
        ws.send_text("hi")
        self.assertEqual(ws.recv_text(), "hi")
        self.wait_trace(p, 'client->portico text fin=1 rsv=000 mask=1 len=2 payload="hi"')
        self.wait_trace(p, 'portico->client text fin=1 rsv=000 mask=0 len=2 payload="hi"')
        # 40 pings and their pongs: 80 frames against a budget of 5 a second.
        for i in range(40):
            ws.send_ping(b"%d" % i)
        for i in range(40):
            f = ws.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"%d" % i))
        written = len(trace_lines(p))
        self.assertLessEqual(written, 2 + 5 + 2, "\n".join(l for _, _, l in trace_lines(p)))
        self.assertFalse(any("suppressed" in l for l in p.stderr_lines()))
        # Once tokens are back, the next line is preceded by the count of those held back.
        time.sleep(1.1)
        ws.send_close(1000, b"done")
        close = ws.recv_frame()
        self.assertEqual(close.opcode, OP_CLOSE)
        self.wait_trace(p, 'client->portico close fin=1 rsv=000 mask=1 len=6 code=1000 '
                           'reason="done"')
        summary = [l for l in p.stderr_lines() if "trace lines suppressed" in l]
        self.assertEqual(len(summary), 1, p.stderr_text()[-3000:])
        # Every frame so far is either a line written before the summary or counted in it.
        before = p.stderr_lines()[:p.stderr_lines().index(summary[0])]
        written = len([l for l in before if TRACE_RE.search(l)])
        m = re.search(r"ws trace: (\d+) trace lines suppressed on route \*/echo \(trace_rate 5/s\)",
                      summary[0])
        self.assertTrue(m, summary[0])
        self.assertEqual(int(m.group(1)) + written, 2 + 80, summary[0])
        self.wait_trace(p, "portico->client close fin=1 rsv=000 mask=0 len=2 code=1000")

    def test_pubsub_traces_what_it_fans_out(self):
        p = self.start_portico(make_config(routes=[{
            "path": "/live/", "handler": "pubsub", "pubsub": {"publish_token": "t0ken"},
            "websocket": {"trace": True, "trace_payload_bytes": 32}}]))
        ws = self.ws_connect(p.port, "/live/room")
        self.assertTrue(wait_for(lambda: http_request(p.port, "GET", "/live/room")
                                 .json()["subscribers"] == 1))
        r = http_request(p.port, "POST", "/live/room", body=b"news for all",
                         headers=[("Authorization", "Bearer t0ken"),
                                  ("Content-Type", "text/plain")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(ws.recv_text(), "news for all")
        self.wait_trace(p, 'portico->client text fin=1 rsv=000 mask=0 len=12 '
                           'payload="news for all"')

    def test_off_by_default_and_not_in_tunnel_mode(self):
        b = self.start_ws_backend("python", deflate=False)
        p = self.start_portico(echo_config(extra_routes=[{
            "path": "/ws/", "upstream": "app", "websocket": {"trace": True}}],
            upstreams={"app": {"servers": [b.address]}}))
        self.assertTrue(p.wait_stderr(lambda l: "routes[1].websocket.trace" in l
                                      and "no effect in tunnel mode" in l), p.stderr_text())
        for path in ("/echo", "/ws/echo"):
            ws = self.ws_connect(p.port, path)
            ws.send_text("quiet")
            self.assertEqual(ws.recv_text(), "quiet")
            ws.send_close(1000)
            self.assertEqual(ws.recv_frame().opcode, OP_CLOSE)
        time.sleep(0.2)
        self.assertFalse([l for l in p.stderr_lines() if "ws trace" in l], p.stderr_text())

    def test_config_errors(self):
        path = os.path.join(self.tmpdir(), "bad.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(echo_config(websocket={"trace": True, "trace_payload_bytes": 257,
                                                   "trace_rate": "0/s"})) + "\n")
        r = run_portico(["-t", "-c", path])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("routes[0].websocket.trace_payload_bytes: at most 256 bytes", r.stderr)
        self.assertIn("routes[0].websocket.trace_rate", r.stderr)


if __name__ == "__main__":
    main()
