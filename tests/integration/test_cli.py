# SPDX-License-Identifier: Apache-2.0
"""The command line: -t on good and bad files, --version, -h, the default config path."""

import os
import re
import signal
import subprocess

import uring_probe  # noqa: E402
from portico_harness import PorticoTestCase, binary_uses_asan, main, portico_bin, run_portico, slow_factor, source_dir

ERROR_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<key>[^:\s]+): (?P<msg>.+)$")

GOOD = """\
workers: 1
shutdown_timeout: 5s
log:
  level: info
  access: stdout
  access_format: json
limits:
  max_connections: 100
  max_header_bytes: 16KiB
  max_body_bytes: 10MiB
  client_header_timeout: 10s
  keepalive_timeout: 75s
listeners:
  - address: 127.0.0.1:0
upstreams:
  app:
    servers: [127.0.0.1:9, 127.0.0.1:10]
    balance: round_robin
    keepalive: 32
    connect_timeout: 2s
    read_timeout: 60s
routes:
  - host: example.com
    path: /api/
    upstream: app
    strip_prefix: true
    set_headers: {X-Env: prod}
  - path: =/exact
    upstream: app
  - path: /healthz
    handler: health
  - path: /
    handler: static
    root: www
"""

# Every line below is numbered in the comments: the test checks line and column of each error.
BAD = """\
workers: lots
listeners:
  - address: 127.0.0.1:0
  - address: nonsense
upstreams:
  app:
    servers: [127.0.0.1:9]
routes:
  - path: /api/
    upstream: ap
  - path: /
    handler: health
    bogus_key: 1
  - path: /nothing
limits:
  max_body_bytes: 10XB
"""
# (line, acceptable columns (key or value), key path, message fragment or None)
BAD_EXPECTED = [
    (1, {1, 10}, "workers", None),
    (4, {5, 14}, "listeners[1].address", None),
    (10, {5, 15}, "routes[0].upstream", 'no upstream named "ap"'),
    (13, {5, 16}, "routes[1].bogus_key", None),
    (14, {3, 5}, "routes[2]", None),
    (16, {3, 19}, "limits.max_body_bytes", None),
]


class CheckConfig(PorticoTestCase):
    def write(self, text, name="portico.yaml"):
        d = self.tmpdir()
        os.makedirs(os.path.join(d, "www"), exist_ok=True)
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_good_file_prints_configuration_ok_and_exits_0(self):
        path = self.write(GOOD)
        r = run_portico(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, "stdout=%r stderr=%r" % (r.stdout, r.stderr))
        self.assertIn("configuration OK", r.stdout + r.stderr)

    def test_t_after_c_is_accepted_too(self):
        path = self.write(GOOD)
        r = run_portico(["-c", path, "-t"])
        self.assertEqual(r.returncode, 0, "stdout=%r stderr=%r" % (r.stdout, r.stderr))
        self.assertIn("configuration OK", r.stdout + r.stderr)

    def test_shipped_default_config_is_valid(self):
        path = os.path.join(source_dir(), "conf", "portico.yaml")
        self.assertTrue(os.path.exists(path), "conf/portico.yaml is missing")
        r = run_portico(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, "stdout=%r stderr=%r" % (r.stdout, r.stderr))
        self.assertIn("configuration OK", r.stdout + r.stderr)

    def test_bad_file_reports_every_error_with_file_line_col_and_exits_1(self):
        path = self.write(BAD, name="bad.yaml")
        r = run_portico(["-t", "-c", path])
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, "output=%r" % out)
        self.assertNotIn("configuration OK", out)
        errors = []
        for line in out.splitlines():
            m = ERROR_RE.match(line.strip())
            if m:
                errors.append(m)
        self.assertTrue(errors, "no FILE:LINE:COL: key: message lines in %r" % out)
        for m in errors:
            self.assertTrue(m.group("file").endswith("bad.yaml"),
                            "error names file %r, not bad.yaml" % m.group("file"))
        for line, cols, key, fragment in BAD_EXPECTED:
            with self.subTest(key=key):
                matches = [m for m in errors if m.group("key") == key]
                self.assertTrue(matches, "no error for %s; got:\n%s" % (key, out))
                m = matches[0]
                self.assertEqual(int(m.group("line")), line, m.group(0))
                self.assertIn(int(m.group("col")), cols, m.group(0))
                if fragment:
                    self.assertIn(fragment, m.group("msg"))

    def test_example_error_format_from_the_issue(self):
        # portico.yaml:LINE:15: routes[1].upstream: no upstream named "ap"
        text = ("listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  app:\n"
                "    servers: [127.0.0.1:9]\nroutes:\n  - path: /healthz\n    handler: health\n"
                "  - path: /api/\n    upstream: ap\n")
        path = self.write(text)
        r = run_portico(["-t", "-c", path])
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertRegex(out, r'portico\.yaml:10:15: routes\[1\]\.upstream: no upstream named "ap"')

    def test_yaml_syntax_error_has_a_position(self):
        path = self.write("listeners:\n  - address: [127.0.0.1:0\nroutes: {\n")
        r = run_portico(["-t", "-c", path])
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertRegex(out, r"portico\.yaml:\d+:\d+:")

    def test_control_bytes_and_nul_in_keys_are_printed_escaped_and_whole(self):
        # YAML's "\0" and "\e" escapes put a NUL and an ESC into keys. The error line used to end
        # at the NUL ("routes[0].pa", no reason) and to send the ESC to the terminal as is.
        path = self.write('listeners: [{address: 127.0.0.1:0}]\n'
                          'routes:\n'
                          '  - {"pa\\0th": /x, handler: health}\n'
                          '  - {"\\e[2Jwipe": /y, handler: health}\n')
        r = run_portico(["-t", "-c", path])
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertIn("portico.yaml:3:6: routes[0].pa\\x00th: unknown key (did you mean path?)\n", out)
        self.assertIn("portico.yaml:4:6: routes[1].\\x1B[2Jwipe: unknown key\n", out)
        self.assertIn("2 errors", out)
        self.assertNotIn("\x00", out)
        self.assertNotIn("\x1b", out)

    def test_duplicate_listener_is_an_error(self):
        path = self.write("listeners:\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8080\n"
                          "routes:\n  - path: /\n    handler: health\n")
        r = run_portico(["-t", "-c", path])
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertRegex(out, r"portico\.yaml:3:\d+: listeners\[1\]")

    def test_t_checks_that_the_access_log_can_be_opened(self):
        # -t said "configuration OK" and the start failed ("cannot open access log"). Now -t opens
        # an existing file for appending as the start does (nothing written or truncated), and for
        # a missing one checks its folder without creating the file.
        d = self.tmpdir()
        kept = os.path.join(d, "kept.log")
        with open(kept, "w") as f:
            f.write("earlier line\n")
        text = "listeners: [{address: 127.0.0.1:0}]\nlog:\n  access: %s\nroutes: [{path: /, handler: health}]\n"
        for access, error in ((os.path.join(d, "no", "such", "folder", "access.log"), "does not exist"),
                              (d, "Is a directory"),
                              (kept, None),
                              (os.path.join(d, "new.log"), None)):
            with self.subTest(access=access):
                r = run_portico(["-t", "-c", self.write(text % access)])
                out = r.stdout + r.stderr
                if error:
                    self.assertEqual(r.returncode, 1, out)
                    self.assertRegex(out, r"portico\.yaml:3:11: log\.access: cannot open access log .*%s" % error)
                else:
                    self.assertEqual(r.returncode, 0, out)
        self.assertFalse(os.path.exists(os.path.join(d, "new.log")), "-t created the access log")
        with open(kept) as f:
            self.assertEqual(f.read(), "earlier line\n")
        # A FIFO nobody reads yet: -t (systemd's ExecStartPre and ExecReload) hung in open().
        fifo = os.path.join(d, "access.fifo")
        os.mkfifo(fifo)
        r = run_portico(["-t", "-c", self.write(text % fifo)], timeout=10)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_too_few_descriptors_to_start_is_an_error_not_a_crash(self):
        # A worker's wakeup (eventfd) that could not be made aborted the process (a core dump);
        # an event loop that could not be made left event_new working on no base; libevent's
        # evsig_init_ called exit(1) itself when a loop's signal pipe could not be made ("[err]
        # evsig_init_: socketpair", no word from Portico). Every open-file limit too low to
        # start gives exit status 1 and Portico's own message instead, before anything is made.
        #
        # Under the sanitizers: UBSan's vptr check reads the vtable through a pipe of its own
        # (sanitizer_common's IsAccessibleMemoryRange), so with no descriptor free it reports
        # "invalid vptr" for sound objects and halts. Only the limits that leave it two are
        # asserted there: refusals that leave >= 2 free, starts with >= 2 to spare.
        self.check_too_few_descriptors("")

    def test_too_few_descriptors_counts_the_io_uring_rings(self):
        # With io_uring on each worker also makes a ring and its eventfd: a limit that left room
        # for the rest but not for them started, and the workers fell back to epoll ("io_uring
        # unavailable": EMFILE), so `on` silently was not.
        refusal = uring_probe.io_uring_refusal()
        if refusal:
            self.skipTest(refusal)
        self.check_too_few_descriptors("io_uring: on\n")

    def check_too_few_descriptors(self, extra):
        path = self.write(extra + "workers: 2\nlisteners: [{address: 127.0.0.1:0}]\nroutes: [{path: /, handler: health}]\n")
        refused = re.compile(r"too few file descriptors to start 2 workers: (\d+) needed .*, (\d+) free")
        sanitized = binary_uses_asan()
        outcomes = {}
        for n in range(4, 40):
            outcomes[n] = self.start_with_open_file_limit(path, n)
            if outcomes[n][0] is None and n > 4 and outcomes[n - 1][0] is None:
                break  # two starts in a row: every higher limit starts too
        # The descriptors in use before the workers' check, and what the workers need.
        counts = [(n, refused.search(err)) for n, (_, err) in outcomes.items()]
        counts = [(n, int(m.group(1)), int(m.group(2))) for n, m in counts if m]
        if not sanitized:  # every limit's outcome first: what went wrong says more than the count
            for n, (status, err) in outcomes.items():
                with self.subTest(nofile=n):
                    self.assertNotIn("evsig_init_", err)
                    if status is not None:
                        self.assertEqual(status, 1, err[-500:])
                        self.assertRegex(err, "too few|cannot make a ring: (io_uring_setup|eventfd): Too many open files")
        self.assertTrue(counts, "no limit reached the workers' check: the test needs other limits")
        n0, needed, free0 = counts[0]
        in_use = n0 - free0
        for n, (status, err) in outcomes.items():
            with self.subTest(nofile=n):
                spare = n - in_use - (needed if n >= in_use + needed else 0)
                if sanitized and spare < 2:
                    continue  # the sanitizers' own pipe would not fit
                self.assertNotIn("evsig_init_", err)  # never exited by libevent
                self.assertNotIn("runtime error", err)
                if status is None:  # enough descriptors: it started
                    self.assertGreaterEqual(n, in_use + needed, err[-500:])
                    self.assertNotIn("io_uring unavailable", err)
                    continue
                self.assertEqual(status, 1, err[-500:])
                self.assertRegex(err, r"\[error\] (too few file descriptors to start|cannot make an event loop: too few"
                                      r"|.*io_uring: on, but this process cannot make a ring: (io_uring_setup|eventfd): Too many)")

    def start_with_open_file_limit(self, path, n):
        """(exit status, stderr) of a start under RLIMIT_NOFILE n; status None when it started
        (then stopped with SIGTERM)."""
        import resource

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        # EVENT_PRECISE_TIMER made libevent open a timerfd per loop beyond the count (and exit by
        # itself at the signal pipe): Portico's loops ignore libevent's EVENT_* variables.
        env = dict(os.environ, EVENT_PRECISE_TIMER="1")
        proc = subprocess.Popen([portico_bin(), "-c", path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, preexec_fn=limit, env=env)
        try:
            _, err = proc.communicate(timeout=3 * slow_factor())
            return proc.returncode, err
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20 * slow_factor())
            return None, err

    def test_missing_file_exits_1_and_names_it(self):
        path = os.path.join(self.tmpdir(), "nope.yaml")
        r = run_portico(["-t", "-c", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("nope.yaml", r.stdout + r.stderr)

    def test_default_config_path_is_etc_portico(self):
        if os.path.exists("/etc/portico/portico.yaml"):
            self.skipTest("/etc/portico/portico.yaml exists on this machine")
        r = run_portico(["-t"])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("/etc/portico/portico.yaml", r.stdout + r.stderr)

    def test_running_with_a_bad_file_exits_1_without_listening(self):
        path = self.write(BAD, name="bad.yaml")
        r = run_portico(["-c", path], timeout=10)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertNotIn("listening on", r.stderr)


class VersionAndHelp(PorticoTestCase):
    def project_version(self):
        with open(os.path.join(source_dir(), "CMakeLists.txt")) as f:
            m = re.search(r"project\(\s*portico\s+VERSION\s+([0-9.]+)", f.read())
        return m.group(1) if m else None

    def test_version(self):
        r = run_portico(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout + r.stderr
        self.assertIn("portico", out.lower())
        v = self.project_version()
        if v:
            self.assertIn(v, out)

    def test_help(self):
        for flag in ("-h", "--help"):
            with self.subTest(flag=flag):
                r = run_portico([flag])
                self.assertEqual(r.returncode, 0, r.stderr)
                out = r.stdout + r.stderr
                self.assertIn("-c", out)
                self.assertIn("-t", out)
                self.assertIn("--version", out)
                # every option portico(8) documents
                with open(os.path.join(source_dir(), "docs", "man", "portico.8")) as f:
                    man = f.read()
                options = man.split(".SH OPTIONS", 1)[1].split(".SH ", 1)[0]
                options = re.sub(r"\\f[BIRP]", " ", options).replace("\\-", "-")
                for option in sorted(set(re.findall(r"(?<![\w-])--?[a-z]+", options))):
                    self.assertRegex(out, r"(^|[\s,])%s\b" % re.escape(option),
                                     "%s is in portico(8) but not in --help" % option)

    def test_unknown_option_fails(self):
        r = run_portico(["--no-such-option"])
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip(), "no message on stderr")


if __name__ == "__main__":
    main()
