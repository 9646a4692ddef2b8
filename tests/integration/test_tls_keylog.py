# SPDX-License-Identifier: Apache-2.0
"""`tls.keylog_file` (issue 13): a wss:// session through Portico, captured on the loopback with
tcpdump, is decrypted by tshark with the key log Portico wrote, and the WebSocket text message
shows in tshark's output, on both legs (client to Portico on the listener's key log, Portico to
a wss:// upstream on the upstream's, here the same file, so one writer serves both). Without
the key log tshark finds nothing, which shows the test can fail. The file is mode 0600 (an
existing wider file is narrowed), and the key log is warned about by `portico -t`, at start-up
and on every reload.

Capturing needs root (CI runs as root); as another user, or without tcpdump/tshark
(scripts/install-deps.sh test), the capture test is skipped and says why."""

import os
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import main, make_config, run_portico, slow_factor, to_yaml  # noqa: E402
from tls_certs import shared_pki, tls_listener  # noqa: E402
from ws_peers import WsTestCase, py_connect, py_run, wait_for  # noqa: E402

KEYLOG_LABELS = ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                 "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET",
                 "CLIENT_RANDOM")


def capture_unavailable():
    """Why a loopback capture cannot run here, or None."""
    missing = [tool for tool in ("tcpdump", "tshark") if shutil.which(tool) is None]
    if missing:
        return "%s not installed (scripts/install-deps.sh test)" % " and ".join(missing)
    if os.geteuid() != 0:
        return "capturing on the loopback with tcpdump needs root (CI runs as root)"
    return None


class Capture:
    """tcpdump on `lo` for some TCP ports into a pcap file, stopped (by PID) on stop()."""

    def __init__(self, path, ports):
        self.path = path
        expression = " or ".join("tcp port %d" % p for p in ports)
        self.stderr_path = path + ".stderr"
        self._stderr = open(self.stderr_path, "wb")
        # --immediate-mode: packets go to tcpdump as they come. With the default buffered
        # (TPACKET ring) mode, on some kernels (this project's CI VMs among them) a capture
        # filter lets nothing through ("N packets received by filter, 0 captured").
        # -U: each packet is written at once, so nothing is lost in a buffer when it stops.
        self.proc = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0",
                                      "-n", "-w", path, expression],
                                     stdout=subprocess.DEVNULL, stderr=self._stderr)
        ok = wait_for(lambda: b"listening on" in self._read_stderr() or self.proc.poll() is not None,
                      timeout=10 * slow_factor())
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise AssertionError("tcpdump did not start: %s" % self._read_stderr().decode())

    def _read_stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # tcpdump flushes and closes the file
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._stderr.close()


def tshark_websocket(pcap, tls_ports, keylog=None):
    """tshark's verbose dissection of the WebSocket frames in `pcap`, the `tls_ports` decoded
    as TLS, decrypted with `keylog` when given."""
    ports = ", ".join(str(p) for p in tls_ports)
    cmd = ["tshark", "-n", "-r", pcap, "-Y", "websocket && tcp.port in {%s}" % ports, "-V"]
    for port in tls_ports:
        cmd += ["-d", "tcp.port==%d,tls" % port]
    if keylog:
        cmd += ["-o", "tls.keylog_file:" + keylog]
    r = subprocess.run(cmd, capture_output=True, timeout=60 * slow_factor())
    if r.returncode != 0:
        raise AssertionError("tshark failed (%d): %s" % (r.returncode, r.stderr.decode()))
    return r.stdout.decode("utf-8", "replace")


class KeyLogTest(WsTestCase):
    test_timeout = 180

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki, cls.certs = shared_pki()

    def config(self, keylog, upstream_address=None, upstream_keylog=None):
        routes = [{"path": "/echo", "handler": "echo"}]
        upstreams = None
        if upstream_address:
            tls = {"ca": self.pki.ca_file}
            if upstream_keylog:
                tls["keylog_file"] = upstream_keylog
            upstreams = {"app": {"servers": [upstream_address], "tls": tls}}
            routes.append({"path": "/ws/", "upstream": "app", "websocket": {"mode": "frames"}})
        return make_config(routes=routes, upstreams=upstreams,
                           listeners=[tls_listener([self.certs["site-ec"]], keylog_file=keylog)])

    def wss_exchange(self, port, path, text):
        ctx = ssl.create_default_context(cafile=self.pki.ca_file)

        async def run():
            # No permessage-deflate: the text travels as it is inside the TLS records.
            async with py_connect("wss://127.0.0.1:%d%s" % (port, path), ssl=ctx,
                                  server_hostname="site.test", compression=None) as ws:
                await ws.send(text)
                echo = await ws.recv()
                await ws.close(1000, "bye")
                return echo
        return py_run(run())

    def test_a_wss_capture_decrypts_with_the_key_log(self):
        reason = capture_unavailable()
        if reason:
            self.skipTest(reason)
        keylog = os.path.join(self.tmpdir(), "keys.log")
        cert = self.certs["localhost"]
        backend = self.start_ws_backend("python", deflate=False, tls=(cert.cert, cert.key))
        p = self.start_portico(self.config(keylog, backend.address, upstream_keylog=keylog))
        upstream_port = int(backend.address.rsplit(":", 1)[1])
        pcap = os.path.join(self.tmpdir(), "wss.pcap")
        capture = Capture(pcap, [p.port, upstream_port])
        self.addCleanup(capture.stop)
        echo_text = "hello wireshark " + uuid.uuid4().hex
        relay_text = "through to the upstream " + uuid.uuid4().hex
        try:
            self.assertEqual(self.wss_exchange(p.port, "/echo", echo_text), echo_text)
            self.assertEqual(self.wss_exchange(p.port, "/ws/echo", relay_text), relay_text)
            time.sleep(0.3)  # the last packets (close_notify, FIN) reach the capture
        finally:
            capture.stop()

        mode = stat.S_IMODE(os.stat(keylog).st_mode)
        self.assertEqual(mode, 0o600, oct(mode))
        with open(keylog) as f:
            lines = f.read().splitlines()
        self.assertTrue(lines)
        for line in lines:  # whole lines in NSS key log format: LABEL CLIENT_RANDOM SECRET
            fields = line.split(" ")
            self.assertEqual(len(fields), 3, line)
            self.assertIn(fields[0], KEYLOG_LABELS, line)
            self.assertRegex(fields[1], r"^[0-9a-f]{64}$", line)
            self.assertRegex(fields[2], r"^[0-9a-f]+$", line)
        # Three handshakes: two client sessions with the listener, one to the upstream; each
        # TLS 1.3 handshake logs five secrets, under its own client random.
        self.assertGreaterEqual(len({line.split(" ")[1] for line in lines}), 3)

        for ports in ([p.port], [upstream_port]):  # the client's leg, then the upstream's
            blind = tshark_websocket(pcap, ports)
            self.assertNotIn(echo_text, blind)  # without the key log: encrypted, nothing to see
            self.assertNotIn(relay_text, blind)
        client_leg = tshark_websocket(pcap, [p.port], keylog)
        self.assertIn("Opcode: Text", client_leg)
        self.assertIn("Text: " + echo_text, client_leg)  # the built-in echo's session
        self.assertIn("Text: " + relay_text, client_leg)
        # Portico to the upstream: the upstream's TLS secrets went to the same file.
        upstream_leg = tshark_websocket(pcap, [upstream_port], keylog)
        self.assertIn("Text: " + relay_text, upstream_leg, upstream_leg[-3000:])
        self.assertNotIn(echo_text, upstream_leg)

    def test_key_log_is_warned_about_and_kept_private(self):
        keylog = os.path.join(self.tmpdir(), "keys.log")
        with open(keylog, "w"):
            pass
        os.chmod(keylog, 0o644)  # left readable by an earlier tool: narrowed on open
        config = self.config(keylog)
        path = os.path.join(self.tmpdir(), "check.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(config) + "\n")
        r = run_portico(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r"warning: .*listeners\[0\]\.tls\.keylog_file.*TLS secrets "
                                   r"are written to this file")

        p = self.start_portico(config)
        self.assertTrue(p.wait_stderr(lambda l: "keylog_file" in l and "TLS secrets" in l),
                        p.stderr_text())
        self.assertEqual(stat.S_IMODE(os.stat(keylog).st_mode), 0o600)
        self.assertEqual(self.wss_exchange(p.port, "/echo", "x"), "x")
        self.assertTrue(wait_for(lambda: os.path.getsize(keylog) > 0))

        # A reload warns again and reopens the file: moved away, it is created anew.
        os.rename(keylog, keylog + ".old")
        mark = len(p.stderr_lines())
        p.send_signal(signal.SIGHUP)
        self.assertTrue(p.wait_stderr(lambda l: "configuration reloaded" in l, start=mark),
                        p.stderr_text())
        self.assertTrue(any("keylog_file" in l and "TLS secrets" in l
                            for l in p.stderr_lines()[mark:]), p.stderr_text())
        self.assertEqual(self.wss_exchange(p.port, "/echo", "y"), "y")
        self.assertTrue(wait_for(lambda: os.path.exists(keylog) and os.path.getsize(keylog) > 0))
        self.assertEqual(stat.S_IMODE(os.stat(keylog).st_mode), 0o600)

    def test_no_key_log_by_default(self):
        p = self.start_portico(make_config(routes=[{"path": "/echo", "handler": "echo"}],
                                           listeners=[tls_listener([self.certs["site-ec"]])]))
        self.assertEqual(self.wss_exchange(p.port, "/echo", "x"), "x")
        self.assertFalse(any("keylog" in l or "TLS secrets" in l for l in p.stderr_lines()),
                         p.stderr_text())


if __name__ == "__main__":
    main()
