# SPDX-License-Identifier: Apache-2.0
"""Runs a headless-Chromium peer from tests/peers (demo_browser.js, dashboard_browser.js) and
holds the JSON-lines conversation with it: the script prints {"step":...} lines, lines that ask
the test for something ({"want":...}), and last a result with "ok".

    @requires_browser
    class T(PorticoTestCase):
        def test_x(self):
            script = BrowserScript(self, "demo_browser.js", {"url": ...})
            for msg in script.messages(deadline_s=120):
                if msg.get("want") == "publish":
                    script.send({"text": "..."})
            script.result   # the last line; the test fails if there was none in time

The process is killed and reaped on cleanup.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import unittest

from portico_harness import slow_factor, source_dir

PEERS = os.path.join(source_dir(), "tests", "peers")
CHROMIUM = "/usr/bin/chromium"


def requires_browser(cls):
    """Skips a TestCase without Chromium, node or tests/peers' playwright-core."""
    for decorator in (
            unittest.skipUnless(os.path.exists(CHROMIUM), "chromium is not installed"),
            unittest.skipUnless(shutil.which("node"), "node is not installed"),
            unittest.skipUnless(os.path.isdir(os.path.join(PEERS, "node_modules", "playwright-core")),
                                "playwright-core missing: run `npm ci` in tests/peers")):
        cls = decorator(cls)
    return cls


class BrowserScript:
    def __init__(self, testcase, script, plan):
        self.testcase = testcase
        self.script = script
        self.result = None
        self.proc = subprocess.Popen(["node", os.path.join(PEERS, script), json.dumps(plan)], cwd=PEERS,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        testcase.addCleanup(self._reap)
        self._lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=lambda: [self._lines.put(x) for x in self.proc.stdout] + [self._lines.put(None)],
                         daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def messages(self, deadline_s):
        """Yields the script's lines (dicts) up to and including its result (kept in .result);
        fails the test when the script exits without one or gives none within deadline_s
        (times slow_factor())."""
        deadline = time.monotonic() + deadline_s * slow_factor()
        while self.result is None:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.testcase.fail("%s gave no result in time; stderr:\n%s" % (self.script, self._stderr_tail()))
            if line is None:
                self.proc.wait(10)
                self.testcase.fail("%s exited %s without a result; stderr:\n%s"
                                   % (self.script, self.proc.returncode, self._stderr_tail()))
            msg = json.loads(line)
            if "ok" in msg:
                self.result = msg
            yield msg

    def send(self, obj):
        """One JSON line on the script's stdin (the answer to a "want")."""
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout=30):
        return self.proc.wait(timeout)

    def _stderr_tail(self):
        return "".join(self.stderr)[-3000:]

    def _reap(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def check_no_external_resources(testcase, folder):
    """Every file of a page in `folder` (HTML, CSS, JavaScript) loads nothing from another
    origin: src/href/url() and fetch targets stay on the page's own, no @import."""
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            text = f.read()
        with testcase.subTest(file=name):
            testcase.assertNotRegex(text, r'(src|href)\s*=\s*["\']?(https?:)?//')
            testcase.assertNotRegex(text, r'url\(\s*["\']?(https?:)?//')
            testcase.assertNotRegex(text, r'@import')
            testcase.assertNotRegex(text, r'fetch\(\s*["\'](https?:)?//')
