#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Opens one WebSocket in headless Chromium (Debian's /usr/bin/chromium through playwright-core),
// sends the plan's text messages once it is open, and reports how the socket closed, as the
// browser saw it:
//
//   node ws_browser_close.js '{"url":"ws://127.0.0.1:PORT/ws/","messages":["hello","bye"]}'
//
// Last line: {"ok":true,"code":1000,"wasClean":true,"reason":"","echoes":[...],"errors":0,
// "extensions":"...","console":[...]} (extensions: what the server's 101 agreed to) (console: the page's console lines, where Chromium reports protocol errors
// such as "Close received after close") or {"ok":false,"error":"..."} (exit 1).
// Plan keys: url, messages (default []), timeout_ms (default 10000), chromium (executable).
'use strict';

const { launch } = require('./browser_session');

const plan = JSON.parse(process.argv[2] || '{}');
const timeout = plan.timeout_ms || 10000;

async function main() {
  const browser = await launch(plan);
  try {
    const page = await browser.newPage();
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    const result = await page.evaluate(([url, messages, ms]) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      const echoes = [];
      let errors = 0;
      let extensions = '';
      const timer = setTimeout(() => resolve({ timeout: true, echoes, errors }), ms);
      ws.onopen = () => {
        extensions = ws.extensions;
        for (const m of messages) ws.send(m);
      };
      ws.onmessage = (e) => echoes.push(typeof e.data === 'string' ? e.data : '<binary>');
      ws.onerror = () => { errors += 1; };
      ws.onclose = (e) => {
        clearTimeout(timer);
        resolve({ code: e.code, wasClean: e.wasClean, reason: e.reason, echoes, errors, extensions });
      };
    }), [plan.url, plan.messages || [], timeout]);
    // Console lines about the socket may arrive just after the close event.
    await page.waitForTimeout(200);
    if (result.timeout) throw new Error('no close event within ' + timeout + ' ms');
    process.stdout.write(JSON.stringify({ ok: true, ...result, console: consoleLines }) + '\n');
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack || err) }) + '\n');
  process.exit(1);
});
