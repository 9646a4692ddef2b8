#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Drives headless Chromium (Debian's /usr/bin/chromium through playwright-core) through
// Portico's status page (handler: dashboard) and checks that its figures move under load.
//
//   node dashboard_browser.js '{"url":"http://127.0.0.1:PORT/portico/", "route":"*/echo"}'
//
// Talks to its caller with JSON lines: once the page shows live figures it prints
// {"want":"load","before":{...}}; the caller runs HTTP requests, opens WebSockets on `route`
// and keeps them open, sends messages on them, then writes one line
// {"requests":N,"websockets":K,"messages":M} on stdin. The page must then show at least N more
// requests, K open WebSockets (in the tile, the route's row and the echo mode breakdown) and
// the messages. Last line: {"ok":true,"figures":{...}} (exit 0) or {"ok":false,"error":...}.
//
// Plan keys: url, route (required), servers ({"up": address, "down": address}: the upstream
// servers the page must show in those states), screenshot (optional), timeout_ms (per wait,
// default 10000), chromium (executable, default /usr/bin/chromium).
'use strict';

const { launch, emit, nextStdinJson, watchProblems, finish } = require('./browser_session');

const plan = JSON.parse(process.argv[2] || '{}');
const timeout = plan.timeout_ms || 10000;

// The figures a reader sees, from the page's data-value attributes.
function readFigures(page, route) {
  return page.evaluate((routeKey) => {
    const num = (sel) => {
      const e = document.querySelector(sel);
      return e && e.dataset.value !== '' && e.dataset.value !== undefined ? Number(e.dataset.value) : null;
    };
    const row = document.querySelector('#routes tr[data-key="' + CSS.escape(routeKey) + '"]');
    const cell = (field) => {
      const td = row && row.querySelector('td[data-field="' + field + '"]');
      return td && td.dataset.value !== '' ? Number(td.dataset.value) : null;
    };
    return {
      live: document.getElementById('poll-state').classList.contains('ok'),
      requests_total: num('#tile-requests .total'),
      requests_rate: num('#tile-requests .value'),
      websockets_open: num('#tile-websockets .value'),
      connections_open: num('#tile-connections .value'),
      messages_in_total: num('#tile-messages-in .total'),
      ws_by_mode: document.getElementById('ws-by-mode').textContent,
      echo_open: Number(document.getElementById('ws-by-mode').dataset.echo || 0),
      route_requests: cell('requests'),
      route_ws_open: cell('ws_open'),
      route_mode: row ? row.querySelector('td[data-field="mode"]').textContent : null,
      listener_rows: document.querySelectorAll('#listeners tbody tr[data-key]:not([data-key=""])').length,
      chart_points: document.querySelectorAll('#tile-requests svg polyline').length,
      servers: Object.fromEntries(Array.from(document.querySelectorAll('#upstreams .server'))
          .map((b) => [b.textContent.split(' ')[0], b.dataset.state])),
    };
  }, route);
}

async function waitFor(page, what, predicate) {
  const deadline = Date.now() + timeout;
  let figures;
  for (;;) {
    figures = await readFigures(page, plan.route);
    if (predicate(figures)) return figures;
    if (Date.now() > deadline) {
      throw new Error(what + ' not shown within ' + timeout + ' ms; the page shows ' + JSON.stringify(figures));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

finish(async (result) => {
  const step = (s) => { result.steps.push(s); emit({ step: s }); };
  const problems = [];
  const browser = await launch(plan);
  try {
    const context = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
    const page = await context.newPage();
    watchProblems(page, problems);  // a Content-Security-Policy violation shows up here
    const response = await page.goto(plan.url, { waitUntil: 'load', timeout });
    if (!response || response.status() !== 200) {
      throw new Error('GET ' + plan.url + ' answered ' + (response && response.status()));
    }
    // Two readings: the second is the first with rates.
    const before = await waitFor(page, 'live figures with a rate',
                                 (f) => f.live && f.requests_total !== null && f.requests_rate !== null);
    step('page live');

    emit({ want: 'load', before });
    const load = await nextStdinJson(timeout * 6, 'load');

    const after = await waitFor(page, 'the load', (f) =>
      f.requests_total >= before.requests_total + load.requests &&
      f.websockets_open >= load.websockets && f.route_ws_open >= load.websockets &&
      f.echo_open >= load.websockets &&
      f.messages_in_total >= before.messages_in_total + load.messages);
    step('figures moved');
    // While requests keep coming (the caller's load runs on), the rate is above zero at some
    // reading: the page computes it and does not only copy counters.
    const moving = await waitFor(page, 'a request rate above zero', (f) => f.requests_rate > 0);
    step('request rate shown');
    if (plan.servers) {
      const states = await waitFor(page, 'the upstream servers', (f) =>
        f.servers[plan.servers.up] === 'up' && ['down', 'probing'].includes(f.servers[plan.servers.down]));
      after.servers = states.servers;
      step('upstream servers shown up and down');
    }
    if (after.route_mode !== 'echo') throw new Error('route mode shown as ' + JSON.stringify(after.route_mode));
    if (after.listener_rows < 1) throw new Error('no listener row');
    if (after.chart_points < 1) throw new Error('no chart drawn in the requests tile');
    result.figures = { before, after, rate: moving.requests_rate };

    if (plan.screenshot) {
      await page.screenshot({ path: plan.screenshot, fullPage: true });
      step('screenshot ' + plan.screenshot);
    }
    if (problems.length) throw new Error('browser reported: ' + problems.join('; '));
    result.ok = true;
  } finally {
    await browser.close().catch(() => {});
  }
});
