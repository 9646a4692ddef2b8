# SPDX-License-Identifier: Apache-2.0
"""Signals that come together, as systemd hears them on $NOTIFY_SOCKET (Type=notify-reload):
a stop that comes with a reload wins, with no RELOADING=1 left unanswered before STOPPING=1; and
stop signals sent while the process exits do not end it by the signal."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from notify_socket import NotifySocket  # noqa: E402
from portico_harness import PorticoTestCase, main, make_config  # noqa: E402


class StopAndReload(PorticoTestCase):

    def start_with_notify(self, **kw):
        work = self.tmpdir()
        notify = NotifySocket(work)
        self.addCleanup(notify.close)
        config = make_config(routes=[{"path": "/", "handler": "health"}], access="off", **kw)
        p = self.start_portico(config, env={"NOTIFY_SOCKET": notify.path})
        notify.wait_for("READY=1")
        return p, notify

    def assertEveryReloadAnsweredBeforeStopping(self, lines):
        stopping = lines.index("STOPPING=1")
        open_reloads = 0
        for line in lines[1:stopping]:  # lines[0]: the start-up READY=1
            if line == "RELOADING=1":
                open_reloads += 1
            elif line == "READY=1":
                open_reloads -= 1
        self.assertEqual(open_reloads, 0, "RELOADING=1 unanswered before STOPPING=1: %r" % lines)
        self.assertNotIn("RELOADING=1", lines[stopping:], lines)

    def test_a_sighup_and_a_sigterm_taken_together_stop_without_a_reload(self):
        # Both caught before the loop runs (the process is stopped while they are sent): libevent
        # ran SIGHUP first, which said RELOADING=1 and handed the reload to workers that the
        # SIGTERM right after stopped; READY=1 never came.
        p, notify = self.start_with_notify()
        start = len(p.stderr_lines())
        os.kill(p.pid, signal.SIGSTOP)
        try:
            os.kill(p.pid, signal.SIGHUP)
            os.kill(p.pid, signal.SIGTERM)
        finally:
            os.kill(p.pid, signal.SIGCONT)
        self.assertEqual(p.wait(15), 0, p.stderr_text()[-3000:])
        notify.wait_for("STOPPING=1")
        lines = notify.lines()
        self.assertEveryReloadAnsweredBeforeStopping(lines)
        self.assertNotIn("RELOADING=1", lines, "a reload began with a stop pending: %r" % lines)
        err = "\n".join(p.stderr_lines()[start:])
        self.assertIn("SIGHUP during the graceful stop: not reloading", err)
        self.assertNotIn("SIGHUP: reloading", err)

    def test_a_reload_then_a_stop_each_answered_in_turn(self):
        p, notify = self.start_with_notify()
        p.send_signal(signal.SIGHUP)
        seen = notify.wait_for("RELOADING=1")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(15), 0, p.stderr_text()[-3000:])
        notify.wait_for("STOPPING=1", seen)
        self.assertEveryReloadAnsweredBeforeStopping(notify.lines())


class StopWhileExiting(PorticoTestCase):

    def test_stop_signals_until_the_exit_end_it_with_0(self):
        # Once the loop had ended, the Server freed its signal events, libevent put the default
        # action back, and a SIGTERM in the last moments killed the process by the signal (seen
        # under ASan, whose exit takes a while). Signals sent without pause from the stop to the
        # exit land in that window; before it, each is a "stop now".
        for round_ in range(3):
            config = make_config(routes=[{"path": "/", "handler": "health"}], access="off")
            p = self.start_portico(config, expect_exit=None)
            sent = 0
            while p.proc.poll() is None:  # not reaped: the pid stays this process's
                os.kill(p.pid, signal.SIGTERM)
                sent += 1
                if sent % 64 == 0:
                    time.sleep(0.0005)
            rc = p.wait(10)
            self.assertEqual(rc, 0, "round %d: exit %r after %d SIGTERMs; stderr tail:\n%s"
                             % (round_, rc, sent, "\n".join(p.stderr_lines()[-10:])))
            self.assertIn("stopped", p.stderr_lines()[-1])


if __name__ == "__main__":
    main()
