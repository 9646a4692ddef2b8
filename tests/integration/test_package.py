# SPDX-License-Identifier: Apache-2.0
"""The Debian package: scripts/build-deb.sh builds it, apt installs it, the installed daemon runs
as the portico user the way portico.service starts it (systemd is not PID 1 here), serves the
demo page and a WebSocket echo, and a purge leaves nothing of it behind.

Needs root, dpkg and apt-get (CI runs as root on Debian 12); skipped otherwise, and skipped for a
sanitizer build of PORTICO_BIN (the package is built from the sources with its own flags, so the
Release run already covers it). This test changes the machine: it installs the package (purging
one installed before) and purges it at the end; the portico system user stays, as Debian leaves
it. The package build is a full compile: this test takes minutes.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import http_client
import ws_client
from notify_socket import NotifySocket
from portico_harness import binary_uses_asan, main, source_dir

PACKAGE = "portico"
CONFIG = "/etc/portico/portico.yaml"
ACCESS_LOG = "/var/log/portico/access.log"
DEMO_ROOT = "/usr/share/portico/www"
SCHEMA = "/usr/share/portico/portico.schema.json"  # generated at build time by portico --schema
UNIT_PATHS = ("/lib/systemd/system/portico.service", "/usr/lib/systemd/system/portico.service")
BUILD_TIMEOUT = 1800   # seconds: a full compile on a busy 2-CPU machine
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT_OPTS = ["-o", "DPkg::Lock::Timeout=300", "-y", "--no-install-recommends"]

# What the unit file must say (issue 5); values compared after splitting on whitespace.
UNIT_REQUIRED = {
    "Type": "notify",
    "ExecStartPre": "/usr/sbin/portico -t -c /etc/portico/portico.yaml",
    "ExecStart": "/usr/sbin/portico -c /etc/portico/portico.yaml",
    "User": "portico",
    "Group": "portico",
    "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
    "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
    "LimitNOFILE": "1048576",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "LogsDirectory": "portico",
    "RuntimeDirectory": "portico",
    "Restart": "on-failure",
}
CAP_NET_BIND_SERVICE = 10


def run(cmd, timeout=600, env=None, check=True):
    """Runs cmd (a list); returns CompletedProcess with text stdout/stderr combined in .out."""
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout, env=e)
    r.out = r.stdout
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s" % (" ".join(cmd), r.returncode, r.out[-6000:]))
    return r


def package_status():
    """dpkg's status of the package ("install ok installed", "deinstall ok config-files", ...),
    or "" when dpkg does not know it."""
    r = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], check=False)
    return r.out.strip() if r.returncode == 0 else ""


def purge_if_present():
    if package_status():
        run(["apt-get", "purge"] + APT_OPTS + [PACKAGE], env=APT_ENV)


def free_privileged_port():
    """A port below 1024 that 127.0.0.1 can bind now (we are root), or 0 if none is free."""
    for port in range(990, 700, -7):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return 0


class DebianPackage(unittest.TestCase):
    """One package build shared by the steps below; they run in name order (test_1 ... test_9)
    and the last one purges."""

    maxDiff = 4000
    deb = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("installing a package needs root")
        for tool in ("dpkg", "dpkg-query", "dpkg-deb", "apt-get", "setpriv"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest("%s is not installed" % tool)
        if binary_uses_asan():
            raise unittest.SkipTest("sanitizer run: the package build does not use PORTICO_BIN "
                                    "and is covered by the Release run")
        cls.root = source_dir()
        purge_if_present()
        cls.addClassCleanup(cls._cleanup)

        # No unit tests (CI runs them itself) and no -dbgsym package: only the compile is left.
        env = {"DEB_BUILD_OPTIONS": "nocheck noddebs parallel=%d" % max(1, os.cpu_count() or 1)}
        started = time.monotonic()
        r = run([os.path.join(cls.root, "scripts", "build-deb.sh")], timeout=BUILD_TIMEOUT,
                env=env, check=False)
        if r.returncode != 0:
            raise AssertionError("scripts/build-deb.sh exited %d:\n%s" % (r.returncode, r.out[-8000:]))
        print("package built in %.0fs" % (time.monotonic() - started), flush=True)
        lines = [l.strip() for l in r.out.splitlines() if l.strip()]
        cls.deb = lines[-1] if lines else ""
        if not (cls.deb.endswith(".deb") and os.path.isfile(cls.deb)):
            raise AssertionError("build-deb.sh did not end with the .deb path; output:\n%s"
                                 % r.out[-3000:])
        if os.path.dirname(os.path.abspath(cls.deb)) != os.path.join(cls.root, "build-deb"):
            raise AssertionError("the .deb is not in build-deb/: %s" % cls.deb)
        cls.build_output = r.out

        # The way the issue says an operator installs it: apt with the file's path.
        run(["apt-get", "install"] + APT_OPTS + [os.path.abspath(cls.deb)], env=APT_ENV)

    @classmethod
    def _cleanup(cls):
        purge_if_present()

    # -- what was built ------------------------------------------------------------------------
    def deb_paths(self):
        r = run(["dpkg-deb", "-c", self.deb])
        return {line.split()[-1].lstrip(".").rstrip("/") for line in r.out.splitlines()
                if line.strip() and "->" not in line}

    def test_1_build_leaves_no_debian_folder_in_the_repository(self):
        self.assertFalse(os.path.exists(os.path.join(self.root, "debian")),
                         "build-deb.sh left debian/ in the repository root")
        self.assertRegex(os.path.basename(self.deb), r"^portico_[0-9][^_]*_[a-z0-9]+\.deb$")

    def test_1_lintian_reports_no_errors(self):
        report = os.path.join(self.root, "build-deb", "lintian.txt")
        if not os.path.exists(report):
            self.skipTest("lintian is not installed")
        with open(report) as f:
            text = f.read()
        errors = [l for l in text.splitlines() if l.startswith("E: ")]
        self.assertEqual(errors, [], "lintian errors:\n" + text)

    def test_1_package_holds_the_files_debian_expects(self):
        paths = self.deb_paths()
        for p in ("/usr/sbin/portico", CONFIG, DEMO_ROOT + "/index.html",
                  "/etc/logrotate.d/portico", "/usr/share/man/man8/portico.8.gz",
                  "/usr/share/man/man5/portico.yaml.5.gz", "/usr/share/doc/portico/copyright",
                  SCHEMA):
            self.assertIn(p, paths)
        self.assertTrue(any(p in paths for p in UNIT_PATHS), "no systemd unit in %s" % sorted(paths))
        # Every file of conf/www is packaged.
        www = os.path.join(self.root, "conf", "www")
        for name in os.listdir(www):
            self.assertIn(DEMO_ROOT + "/" + name, paths)

    def test_1_control_fields(self):
        r = run(["dpkg-deb", "-f", self.deb, "Package", "Depends", "Architecture", "Version"])
        fields = dict(line.split(": ", 1) for line in r.out.strip().splitlines())
        self.assertEqual(fields["Package"], PACKAGE)
        depends = [d.strip().split()[0] for d in fields["Depends"].split(",")]
        self.assertIn("adduser", depends)
        # ${shlibs:Depends} resolved the libraries the binary links
        for lib in ("libc6", "libssl3", "libyaml-cpp0.7"):
            self.assertIn(lib, depends)
        self.assertTrue(any(d.startswith("libevent-core") for d in depends), depends)

    # -- what was installed --------------------------------------------------------------------
    def test_2_configuration_is_a_conffile_pointing_at_the_packaged_demo(self):
        r = run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE])
        self.assertIn(CONFIG, r.out)
        with open(CONFIG) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^\s*root:\s*%s\s*$" % re.escape(DEMO_ROOT))
        self.assertRegex(text, r"(?m)^\s*- address:\s*127\.0\.0\.1:8080\s*$")
        self.assertRegex(text, r"(?m)^\s*access:\s*%s\s*$" % re.escape(ACCESS_LOG))
        self.assertTrue(os.path.isfile(os.path.join(DEMO_ROOT, "index.html")))

    def test_2_config_check_passes(self):
        r = run(["/usr/sbin/portico", "-t", "-c", CONFIG])
        self.assertIn("configuration OK", r.out)
        # The same check as the portico user (the unit's ExecStartPre): it can read everything.
        r = run(["setpriv", "--reuid=portico", "--regid=portico", "--init-groups", "--",
                 "/usr/sbin/portico", "-t", "-c", CONFIG])
        self.assertIn("configuration OK", r.out)

    def test_2_version_matches_the_package(self):
        version = run(["dpkg-query", "-W", "-f=${Version}", PACKAGE]).out.strip()
        r = run(["/usr/sbin/portico", "--version"])
        self.assertIn(version.split("-")[0], r.out)

    def test_2_portico_system_user_and_log_folder(self):
        user = pwd.getpwnam("portico")
        self.assertLess(user.pw_uid, 1000, "portico is not a system user")
        self.assertIn(os.path.basename(user.pw_shell), ("nologin", "false"))
        st = os.stat("/var/log/portico")
        self.assertEqual(st.st_uid, user.pw_uid)

    def test_2_logrotate_reopens_with_sigusr1(self):
        with open("/etc/logrotate.d/portico") as f:
            text = f.read()
        self.assertIn("/var/log/portico/", text)
        self.assertRegex(text, r"systemctl kill (-s|--signal=)\s*USR1 portico\.service")
        self.assertIn("postrotate", text)

    def test_3_systemd_unit(self):
        unit = next((p for p in UNIT_PATHS if os.path.exists(p)), None)
        self.assertIsNotNone(unit, "portico.service is not installed")
        settings = {}
        with open(unit) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith(("#", ";", "[")) and "=" in line:
                    key, value = line.split("=", 1)
                    settings.setdefault(key.strip(), []).append(" ".join(value.split()))
        for key, value in UNIT_REQUIRED.items():
            with self.subTest(key=key):
                self.assertIn(value, settings.get(key, []), "%s=%r" % (key, settings.get(key)))
        self.assertIn("/bin/kill -HUP $MAINPID", settings.get("ExecReload", []))
        self.assertIn("multi-user.target", settings.get("WantedBy", []))
        if shutil.which("systemd-analyze"):
            # Without systemd running, verify still parses the unit: no unknown or bad settings.
            r = run(["systemd-analyze", "verify", unit], check=False)
            bad = [l for l in r.out.splitlines()
                   if re.search(r"Unknown key|Unknown section|Failed to parse|Invalid|ignoring", l)]
            self.assertEqual(bad, [], r.out)

    # -- the installed daemon, started like the unit starts it ----------------------------------
    def test_4_daemon_runs_as_portico_serves_the_demo_and_a_websocket(self):
        work = tempfile.mkdtemp(prefix="portico-package-")
        self.addCleanup(shutil.rmtree, work, True)
        os.chmod(work, 0o755)   # the daemon reads its configuration as the portico user

        # The installed configuration with the listener moved off 8080 (it may be busy), to a
        # port below 1024 when one is free: that needs the unit's CAP_NET_BIND_SERVICE.
        port = free_privileged_port()
        with open(CONFIG) as f:
            text = f.read()
        copy_text, n = re.subn(r"127\.0\.0\.1:8080\b", "127.0.0.1:%d" % port, text)
        self.assertEqual(n, 1, "expected one 127.0.0.1:8080 listener in %s" % CONFIG)
        config = os.path.join(work, "portico.yaml")
        with open(config, "w") as f:
            f.write(copy_text)
        os.chmod(config, 0o644)

        notify = NotifySocket(work)
        self.addCleanup(notify.close)
        user = pwd.getpwnam("portico")
        # User=, Group=, AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges=
        cmd = ["setpriv", "--reuid=portico", "--regid=portico", "--init-groups",
               "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
               "--bounding-set=-all,+net_bind_service", "--no-new-privs",
               "--", "/usr/sbin/portico", "-c", config]
        env = dict(os.environ, NOTIFY_SOCKET=notify.path)
        err_path = os.path.join(work, "stderr.log")
        err = open(err_path, "w+")
        self.addCleanup(err.close)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=env, cwd="/")

        def stderr_text():
            with open(err_path, errors="replace") as f:
                return f.read()

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.addCleanup(stop)

        # Listening, then READY=1 (Type=notify).
        deadline = time.monotonic() + 20
        m = None
        while m is None:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", stderr_text())
            if m:
                break
            if proc.poll() is not None:
                self.fail("portico exited %s:\n%s" % (proc.returncode, stderr_text()))
            if time.monotonic() > deadline:
                self.fail("portico did not report its listener:\n%s" % stderr_text())
            time.sleep(0.1)
        bound = int(m.group(1))
        if port:
            self.assertEqual(bound, port)
        seen = notify.wait_for("READY=1")

        # It runs as portico with CAP_NET_BIND_SERVICE and nothing else.
        with open("/proc/%d/status" % proc.pid) as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        self.assertEqual(status["Uid"].split()[0], str(user.pw_uid))
        self.assertEqual(status["Gid"].split()[0], str(user.pw_gid))
        self.assertEqual(int(status["CapEff"], 16), 1 << CAP_NET_BIND_SERVICE)
        self.assertEqual(status.get("NoNewPrivs", "1").strip(), "1")

        # The demo page, byte for byte, and the health check.
        r = http_client.http_request(bound, "GET", "/")
        self.assertEqual(r.status, 200, r)
        with open(os.path.join(DEMO_ROOT, "index.html"), "rb") as f:
            self.assertEqual(r.body, f.read())
        self.assertEqual(http_client.http_request(bound, "GET", "/healthz").status, 200)

        # A WebSocket message through the built-in echo.
        ws = ws_client.WsConnection.connect(bound, "/echo")
        self.addCleanup(ws.close)
        ws.send_text("hello from the installed package")
        self.assertEqual(ws.recv_text(), "hello from the installed package")

        # systemctl reload (ExecReload= sends HUP): RELOADING=1 then READY=1, the open WebSocket
        # survives and new requests are served.
        proc.send_signal(signal.SIGHUP)
        seen = notify.wait_for("RELOADING=1", seen)
        seen = notify.wait_for("READY=1", seen)
        ws.send_text("still here after the reload")
        self.assertEqual(ws.recv_text(), "still here after the reload")
        self.assertEqual(http_client.http_request(bound, "GET", "/healthz").status, 200)

        # The access log goes to /var/log/portico, written as portico.
        self.wait_for_access_line("/healthz")
        self.assertEqual(os.stat(ACCESS_LOG).st_uid, user.pw_uid)

        # What logrotate does: rename the file, then postrotate sends USR1 and the daemon opens
        # a new file; the next request is logged there.
        os.rename(ACCESS_LOG, ACCESS_LOG + ".1")
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not os.path.exists(ACCESS_LOG):
            self.assertIsNone(proc.poll(), "SIGUSR1 stopped portico:\n%s" % stderr_text())
            self.assertLess(time.monotonic(), deadline, "SIGUSR1 did not reopen %s" % ACCESS_LOG)
            time.sleep(0.05)
        self.assertEqual(http_client.http_request(bound, "GET", "/healthz?rotated").status, 200)
        self.wait_for_access_line("/healthz?rotated")
        self.assertEqual(os.stat(ACCESS_LOG).st_uid, user.pw_uid)

        # systemctl stop: SIGTERM, STOPPING=1, the WebSocket gets 1001, exit 0.
        proc.send_signal(signal.SIGTERM)
        code, _ = ws.expect_close(timeout=15)
        self.assertEqual(code, 1001)
        self.assertEqual(proc.wait(30), 0, stderr_text())
        notify.wait_for("STOPPING=1", seen)

    def wait_for_access_line(self, target, timeout=10.0):
        """Waits until ACCESS_LOG has a line naming the request target `target`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(ACCESS_LOG, errors="replace") as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            if any(target in line for line in text.splitlines()):
                return
            if time.monotonic() > deadline:
                self.fail("no access log line for %s in %s:\n%s" % (target, ACCESS_LOG, text[-2000:]))
            time.sleep(0.05)

    # -- purge ----------------------------------------------------------------------------------
    def test_9_purge_leaves_nothing_behind(self):
        installed = run(["dpkg", "-L", PACKAGE]).out.split()
        self.assertIn("/usr/sbin/portico", installed)
        run(["apt-get", "purge"] + APT_OPTS + [PACKAGE], env=APT_ENV)

        self.assertEqual(package_status(), "", "dpkg still knows portico after the purge")
        r = run(["dpkg", "-L", PACKAGE], check=False)
        self.assertNotEqual(r.returncode, 0, r.out)
        leftovers = [p for p in installed if p.startswith(("/etc/portico", "/usr/share/portico",
                                                           "/usr/share/doc/portico"))
                     or "portico" in os.path.basename(p)]
        leftovers = [p for p in leftovers if os.path.lexists(p)]
        self.assertEqual(leftovers, [])
        for p in ("/usr/sbin/portico", "/etc/portico", "/usr/share/portico",
                  "/usr/share/doc/portico", "/etc/logrotate.d/portico", "/var/log/portico",
                  "/etc/systemd/system/multi-user.target.wants/portico.service",
                  "/var/lib/systemd/deb-systemd-helper-enabled/portico.service.dsh-also",
                  "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/portico.service",
                  ) + UNIT_PATHS:
            self.assertFalse(os.path.lexists(p), "%s is left after the purge" % p)
        info = [f for f in os.listdir("/var/lib/dpkg/info") if f.startswith(PACKAGE + ".")]
        self.assertEqual(info, [], "dpkg metadata left: %s" % info)


if __name__ == "__main__":
    main()
