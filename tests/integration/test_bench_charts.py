# SPDX-License-Identifier: Apache-2.0
"""bench/charts.py (issue 13, "Benchmarks people can read"): one SVG per workload from the
recorded results in bench/results/, each naming every contender of its workload; the charts in
bench/charts/ are those files and bench/RESULTS.md shows each of them. Draws from recorded
samples only: no benchmark runs here."""

import json
import os
import re
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ET

from portico_harness import PorticoTestCase, main, source_dir

BENCH = os.path.join(source_dir(), "bench")

try:
    import matplotlib  # noqa: F401
    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False


def contenders():
    """Chart file name -> the contenders its recorded results hold."""
    with open(os.path.join(BENCH, "results", "http_proxy.json")) as f:
        http = json.load(f)
    with open(os.path.join(BENCH, "results", "ws_echo.json")) as f:
        ws = json.load(f)
    sys.path.insert(0, BENCH)
    try:
        import charts
    finally:
        sys.path.pop(0)
    want = {}
    for workers, per in http["results"].items():
        n = int(workers)
        want["http-proxy-%d-worker%s.svg" % (n, "s" if n > 1 else "")] = set(per)
    for scenario, per in ws["echo"].items():
        want[charts.WS_SCENARIOS[scenario][0] + ".svg"] = set(per)
    want["ws-idle-memory.svg"] = set(ws["idle"])
    return want


@unittest.skipUnless(HAVE_MATPLOTLIB, "python3-matplotlib is not installed (scripts/install-deps.sh bench)")
class BenchCharts(PorticoTestCase):
    def test_one_chart_per_workload_naming_every_contender(self):
        out = self.tmpdir()
        r = subprocess.run([sys.executable, os.path.join(BENCH, "charts.py"), "--out", out],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = contenders()
        self.assertEqual(sorted(os.listdir(out)), sorted(want))
        for name, names in want.items():
            with self.subTest(chart=name):
                root = ET.parse(os.path.join(out, name)).getroot()
                self.assertTrue(root.tag.endswith("svg"))
                text = " ".join(t.strip() for t in root.itertext() if t.strip())
                for contender in names:
                    self.assertRegex(text, r"(^|\s)%s(\s|$)" % re.escape(contender))
                self.assertIn("median of", text)

    def test_committed_charts_are_shown_in_results(self):
        committed = sorted(os.listdir(os.path.join(BENCH, "charts")))
        self.assertEqual(committed, sorted(contenders()))
        with open(os.path.join(BENCH, "RESULTS.md")) as f:
            results = f.read()
        for name in committed:
            with self.subTest(chart=name):
                self.assertIn("](charts/%s)" % name, results)


if __name__ == "__main__":
    main()
