# SPDX-License-Identifier: Apache-2.0
"""The Redis backplane against a Redis that misbehaves rather than one that is simply down: a
Redis that takes connections but refuses the subscription (SUBSCRIBE renamed away, as an ACL
denial would) is retried at the backoff's pace, not in a loop; a Redis that refuses writes
(maxmemory reached) answers 503 with a rate-limited log line; huge published messages. Each test
starts its own redis-server on a run-time port and stops it by PID."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from portico_harness import main, slow_factor  # noqa: E402
from pubsub_client import PubSubNode, recv_json  # noqa: E402
from pubsub_redis_case import BackplaneCase, ContinuousPublisher, node_config, redis_key  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from tcp_freezer import TcpFreezer  # noqa: E402
from ws_peers import wait_for  # noqa: E402


class RedisFaults(BackplaneCase):
    def start_redis(self, *extra_args):
        r = RedisServer(extra_args=extra_args)
        self.addCleanup(r.cleanup)
        return r.start()

    def start_node(self, redis, **pubsub):
        p = self.start_portico(node_config(redis.url, **pubsub))
        node = PubSubNode(p.port)
        node.process = p
        return node

    def test_a_redis_that_refuses_the_subscription_is_retried_with_backoff(self):
        # The connections come up (PING answers), then SUBSCRIBE is refused. The backoff started
        # from its first step at every login, so each worker reconnected ~13 times a second
        # forever (3 SCRIPT LOADs each time); now it grows to its 5 s cap.
        redis = self.start_redis("--rename-command", "SUBSCRIBE", '""')
        node = self.start_node(redis)
        self.assertTrue(wait_for(lambda: self.health(node) == "ok\nbackplane: down\n", timeout=5))
        time.sleep(4)
        first = self.metric(node, "portico_pubsub_backplane_reconnects_total")
        time.sleep(4)
        later = self.metric(node, "portico_pubsub_backplane_reconnects_total")
        # Two workers, each at most once per 2.5 s at the cap (jitter: half to all of 5 s), and
        # a little slack for the steps before it.
        self.assertLessEqual(later - first, 8, "reconnects in 4 s with a refused SUBSCRIBE")
        refused = [line for line in node.process.stderr_lines() if "unknown command 'SUBSCRIBE'" in line]
        self.assertTrue(refused, "the refusal is not in the error log")
        self.assertLessEqual(len(refused), 2, "logged once per outage, not once per reconnect")

    def test_a_redis_that_wants_a_password_we_do_not_send_is_named_in_the_log(self):
        # PING answered NOAUTH: the connection waited for connect_timeout and the log said "no
        # connection within connect_timeout", hiding Redis's answer.
        redis = self.start_redis()
        self.assertEqual(redis.command("CONFIG", "SET", "requirepass", "secret"), "OK")
        node = self.start_node(redis)
        line = node.process.wait_stderr(lambda l: "is down" in l, timeout=5)
        self.assertIsNotNone(line, node.process.stderr_text()[-2000:])
        self.assertIn("NOAUTH", line)
        self.assertEqual(self.health(node), "ok\nbackplane: down\n")

    def test_a_redis_at_maxmemory_answers_503_and_the_log_says_so_once_in_a_while(self):
        # noeviction at maxmemory: Redis refuses the publish script's first write (OOM). Every
        # refusal was a warning line of its own: a publisher at 1,000/s wrote 1,000 lines a
        # second. Now one line per 5 s per worker, with the number not logged.
        redis = self.start_redis("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
        node = self.start_node(redis, max_message_bytes="256KiB")
        self.wait_up(node)
        body = os.urandom(48 * 1024)
        statuses = [node.publish("room%d" % (i % 4), body, timeout=10).status for i in range(120)]
        self.assertIn(200, statuses)
        # Redis's memory moves with its buffers: a publish now and then still fits.
        refused = [s for s in statuses if s == 503]
        self.assertGreater(len(refused), 60, statuses)
        self.assertEqual(set(statuses), {200, 503})
        self.assertGreaterEqual(self.metric(node, "portico_pubsub_backplane_publish_failures_total"), len(refused))
        self.assertEqual(self.health(node), "ok\nbackplane: up\n", "Redis answers: the backplane is up")
        lines = [line for line in node.process.stderr_lines() if "OOM" in line]
        self.assertTrue(lines, "the refusal is not in the error log")
        self.assertLessEqual(len(lines), 4, "one line per refused publish: %d" % len(lines))
        self.assertIn("answered 503", lines[0])

    def test_publishes_to_a_stalled_redis_hold_at_most_max_pending_bytes(self):
        # Redis stopped (SIGSTOP): its sockets stay open and take nothing. Every publish was
        # written into hiredis's output buffer and stayed there after its 503 until the probe
        # found the connection silent (5-10 s): ~500 MB for 200 clients posting 250 KB. Now a
        # publish beyond max_pending_bytes unanswered is answered 503 at once.
        redis = self.start_redis()
        p = self.start_portico(node_config(redis.url, max_message_bytes="256KiB",
                                           backplane={"max_pending_bytes": "1MiB"}))
        node = PubSubNode(p.port)
        node.process = p
        self.wait_up(node)
        self.assertEqual(node.publish("room", b"before").status, 200)
        os.kill(redis.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: redis.proc and os.kill(redis.proc.pid, signal.SIGCONT))
        body = os.urandom(200 * 1024)
        answers = []
        # The probe finds a stopped Redis 5 to 10 s after the stop; everything here is before.
        deadline = time.monotonic() + 2.5

        def publisher(i):
            while time.monotonic() < deadline:
                started = time.monotonic()
                status = node.publish("room%d" % i, body, timeout=10).status
                answers.append((status, time.monotonic() - started))

        threads = [threading.Thread(target=publisher, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        self.assertEqual(self.health(node), "ok\nbackplane: up\n", "the probe came first: too slow a machine")
        self.assertEqual({status for status, _ in answers}, {503})
        # A 503 after publish_timeout (1 s here) takes at least that; one at once well under it.
        at_once = [elapsed for _, elapsed in answers if elapsed < 0.9]
        # Two workers hold at most 1 MiB each (5 publishes of 200 KB): the rest are refused at once.
        self.assertGreater(len(at_once), len(answers) - 16, "refused only after publish_timeout: %r" % answers[:20])
        self.assertTrue(node.process.wait_stderr(lambda l: "max_pending_bytes" in l, timeout=2))
        os.kill(redis.proc.pid, signal.SIGCONT)
        self.assertTrue(wait_for(lambda: node.publish("room", b"after").status == 200, timeout=15))

    def test_a_slow_redis_kept_at_max_pending_bytes_is_still_probed(self):
        # The probe (and the other control commands: CLUSTER SLOTS, EXPIRE, SCRIPT LOAD) went
        # through the publishes' budget: with a publish always unanswered (0.3 s a reply) the
        # probe was refused at every tick, and the next tick called a healthy Redis silent
        # (in-flight publishes 503, resubscribe, backoff). One publish (~450 bytes) fits in
        # 600 bytes, a probe beside it did not.
        redis = self.start_redis()
        relay = TcpFreezer(redis.port, reply_delay=0.3)
        self.addCleanup(relay.close)
        p = self.start_portico(node_config("redis://127.0.0.1:%d" % relay.port, workers=1,
                                           backplane={"max_pending_bytes": 600}))
        node = PubSubNode(p.port)
        node.process = p
        self.wait_up(node)
        publisher = ContinuousPublisher(lambda i: (node, "room"))
        self.addCleanup(publisher.stop)
        # Two probe ticks (every 5 s): the first probe refused, the second tick found it missing.
        time.sleep(11.5)
        publisher.stop()
        self.assertEqual(self.metric(node, "portico_pubsub_backplane_silent_total"), 0,
                         "a healthy Redis called silent: " + node.process.stderr_text()[-1500:])
        self.assertEqual(self.health(node), "ok\nbackplane: up\n")
        self.assertGreater(len(publisher.accepted), 10)

    def test_a_quiet_channel_with_subscribers_keeps_its_keys_while_others_fill_max_pending_bytes(self):
        # The TTL renewal (EXPIRE every third of the TTL) went through the publishes' budget and
        # marked the channel renewed before sending: refused under load, the keys of a channel
        # with subscribers and no publishes expired (its history gone, a new epoch).
        redis = self.start_redis()
        relay = TcpFreezer(redis.port, reply_delay=0.3)
        self.addCleanup(relay.close)
        p = self.start_portico(node_config("redis://127.0.0.1:%d" % relay.port, workers=1,
                                           history_ttl="3s", channel_idle_timeout="3s",
                                           backplane={"max_pending_bytes": 600}))
        node = PubSubNode(p.port)
        node.process = p
        self.wait_up(node)
        # Refused while the SCRIPT LOADs of the login are unanswered.
        self.assertTrue(wait_for(lambda: node.publish("quiet", b"kept").status == 200, timeout=5))
        ws = node.subscribe("quiet", "?since=0", json_frames=True)
        self.addCleanup(ws.close)
        # Replayed once Redis confirmed the subscription (info, polled by subscribed(), would
        # find the budget taken by the replay).
        self.assertEqual(recv_json(ws)["data"], "kept")
        publisher = ContinuousPublisher(lambda i: (node, "busy"))
        self.addCleanup(publisher.stop)
        time.sleep(7)
        publisher.stop()
        self.assertGreater(len(publisher.accepted), 5)
        for suffix in (":meta", ":stream"):
            self.assertGreater(int(redis.command("TTL", redis_key("quiet", suffix))), 0,
                               "quiet%s expired under load" % suffix)


if __name__ == "__main__":
    main()
