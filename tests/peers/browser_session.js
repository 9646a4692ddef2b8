// SPDX-License-Identifier: Apache-2.0
// What the headless-Chromium peers share (demo_browser.js, dashboard_browser.js,
// ws_browser_close.js): Debian's /usr/bin/chromium through playwright-core, kept off the
// internet, and the JSON-lines conversation with the Python test that runs them.
'use strict';

const readline = require('readline');
const { chromium } = require('playwright-core');

// Chromium as root, headless, and kept off the internet (no background networking, updates,
// sync or QUIC): it reaches only the page under test. playwright adds --headless and its own
// temporary --user-data-dir.
const kChromiumArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                       '--disable-background-networking', '--disable-component-update',
                       '--disable-sync'];

// plan.chromium: the executable (default /usr/bin/chromium).
function launch(plan) {
  return chromium.launch({ executablePath: plan.chromium || '/usr/bin/chromium', headless: true,
                           args: kChromiumArgs, timeout: 30000 });
}

function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

// Lines the caller writes on stdin, one at a time, in order.
let stdinLines = null;
const pendingLines = [];
const lineWaiters = [];
function nextStdinLine() {
  if (!stdinLines) {
    stdinLines = readline.createInterface({ input: process.stdin });
    stdinLines.on('line', (line) => {
      const waiter = lineWaiters.shift();
      if (waiter) waiter(line); else pendingLines.push(line);
    });
  }
  if (pendingLines.length) return Promise.resolve(pendingLines.shift());
  return new Promise((resolve) => lineWaiters.push(resolve));
}

// The next stdin line as JSON; rejects after `ms` with `what` in the message.
function nextStdinJson(ms, what) {
  return Promise.race([
    nextStdinLine().then((line) => JSON.parse(line)),
    new Promise((resolve, reject) => setTimeout(() => reject(new Error('no ' + what + ' line on stdin')), ms))]);
}

// Script errors, console errors (a Content-Security-Policy violation is one) and failed requests
// of `page` go into `problems`, prefixed with `name`.
function watchProblems(page, problems, name) {
  const prefix = name ? name + ' ' : '';
  page.on('pageerror', (err) => problems.push(prefix + 'page error: ' + err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(prefix + 'console error: ' + msg.text());
  });
  page.on('requestfailed', (req) => problems.push(prefix + 'request failed: ' + req.url()));
}

// Runs `run(result)` (it sets result.ok and anything else to report), then prints `result` as
// the last line and exits 0, or {"ok":false,"error":...} and exits 1.
function finish(run) {
  const result = { ok: false, steps: [] };
  run(result).then(() => {
    emit(result);
    process.exit(0);
  }, (err) => {
    result.ok = false;
    result.error = String(err && err.stack || err);
    emit(result);
    process.exit(1);
  });
}

module.exports = { kChromiumArgs, launch, emit, nextStdinJson, watchProblems, finish };
