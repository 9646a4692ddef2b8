// SPDX-License-Identifier: Apache-2.0
// Portico's live status page: polls the status JSON once a second, turns counters into rates
// (the difference between two readings over the time between them) and draws the last two
// minutes as small SVG charts. No libraries: the page must work offline and behind a strict
// Content-Security-Policy (default-src 'self').
'use strict';

(function () {
  const POLL_MS = 1000;
  const HISTORY = 120;  // readings kept per series: two minutes
  const SVG = 'http://www.w3.org/2000/svg';
  const statusUrl = document.querySelector('meta[name="portico-status-url"]').content;

  // ---- series and rates ---------------------------------------------------------------------

  const series = new Map();     // key -> recent values (rates or gauges), oldest first
  let previous = null;          // {time, counters: Map key -> value} of the last reading
  let current = null;           // the same for the reading being drawn

  function remember(key, value) {
    let values = series.get(key);
    if (!values) series.set(key, values = []);
    values.push(value);
    if (values.length > HISTORY) values.shift();
    return value;
  }

  // Per second since the last reading, or null on the first. A counter that went down (its
  // series was recreated, e.g. a channel expired) starts again from zero.
  function rate(key, value) {
    current.counters.set(key, value);
    if (!previous || !previous.counters.has(key)) return remember(key, null);
    const before = previous.counters.get(key);
    const delta = value >= before ? value - before : value;
    return remember(key, delta / ((current.time - previous.time) / 1000));
  }

  function gauge(key, value) { return remember(key, value); }

  // ---- formatting ---------------------------------------------------------------------------

  function count(n) { return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'); }

  function perSecond(r) {
    if (r === null || r === undefined) return '–';
    if (r >= 1e6) return (r / 1e6).toFixed(1) + 'M/s';
    if (r >= 1e4) return (r / 1e3).toFixed(1) + 'k/s';
    return (r >= 100 ? Math.round(r) : r.toFixed(1)) + '/s';
  }

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
    return (i ? n.toFixed(1) : n) + ' ' + units[i];
  }

  // ---- DOM helpers --------------------------------------------------------------------------

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Sets what a figure shows and, in data-value, the raw number (for scripts and tests).
  function setFigure(e, text, raw) {
    e.textContent = text;
    e.dataset.value = raw === null || raw === undefined ? '' : String(raw);
  }

  // A small line chart of `values` (nulls skipped) in `svg`, scaled to its own maximum.
  function chart(svg, values, width, height) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const known = values.filter((v) => v !== null);
    const max = Math.max(1e-9, ...known);
    const step = width / (HISTORY - 1);
    const offset = HISTORY - values.length;
    const points = [];
    values.forEach((v, i) => {
      if (v !== null) points.push([(offset + i) * step, height - 1 - (v / max) * (height - 2)]);
    });
    if (points.length === 0) return;
    const line = points.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' ');
    const area = document.createElementNS(SVG, 'polygon');
    area.setAttribute('points', points[0][0].toFixed(1) + ',' + height + ' ' + line + ' ' +
                      points[points.length - 1][0].toFixed(1) + ',' + height);
    area.setAttribute('class', 'area');
    const polyline = document.createElementNS(SVG, 'polyline');
    polyline.setAttribute('points', line);
    polyline.setAttribute('class', 'line');
    const title = document.createElementNS(SVG, 'title');
    title.textContent = 'peak ' + (known.length ? max.toFixed(1) : '–') + ' over the last ' + values.length + ' s';
    svg.append(area, polyline, title);
  }

  function newChart(width, height) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('class', 'chart');
    svg.setAttribute('aria-hidden', 'true');
    return svg;
  }

  // ---- tiles: the process at a glance ------------------------------------------------------

  const TILES = [
    {id: 'requests', label: 'requests', kind: 'rate'},
    {id: 'connections', label: 'connections open', kind: 'gauge'},
    {id: 'websockets', label: 'WebSockets open', kind: 'gauge'},
    {id: 'messages-in', label: 'messages in', kind: 'rate'},
    {id: 'messages-out', label: 'messages out', kind: 'rate'},
    {id: 'publishes', label: 'publishes', kind: 'rate'},
    {id: 'tls', label: 'TLS handshakes', kind: 'rate'},
    {id: 'errors', label: '5xx responses', kind: 'rate'},
  ];
  const tiles = new Map();

  function buildTiles() {
    const box = document.getElementById('tiles');
    for (const t of TILES) {
      const tile = el('div', 'tile');
      tile.id = 'tile-' + t.id;
      const value = el('div', 'value', '–');
      const total = el('div', 'total', '');
      const svg = newChart(120, 32);
      tile.append(el('div', 'label', t.label), value, total, svg);
      box.append(tile);
      tiles.set(t.id, {value, total, svg, kind: t.kind});
    }
  }

  // `total` is the counter for a rate tile and the value itself for a gauge.
  function setTile(id, total, extra) {
    const t = tiles.get(id);
    const key = 'tile:' + id;
    if (t.kind === 'rate') {
      const r = rate(key, total);
      setFigure(t.value, perSecond(r), r);
      setFigure(t.total, count(total) + ' total' + (extra || ''), total);
    } else {
      gauge(key, total);
      setFigure(t.value, count(total), total);
      setFigure(t.total, extra || '', total);
    }
    chart(t.svg, series.get(key), 120, 32);
  }

  // ---- tables that keep their rows between readings ---------------------------------------

  // columns: [{label, cell(row, td)}]; rows: [{key, ...}]. Rows are found by data-key, so a
  // row (and what a test or a reader looks at) stays in place from one reading to the next.
  function table(id, columns, rows, empty) {
    const t = document.getElementById(id);
    const head = t.tHead;
    if (!head.rows.length) {
      const tr = head.insertRow();
      for (const c of columns) tr.append(el('th', c.numeric ? 'num' : '', c.label));
    }
    const body = t.tBodies[0];
    const seen = new Set();
    for (const row of rows) {
      seen.add(row.key);
      let tr = body.querySelector('tr[data-key="' + CSS.escape(row.key) + '"]');
      if (!tr) {
        tr = body.insertRow();
        tr.dataset.key = row.key;
        for (const c of columns) {
          const td = tr.insertCell();
          td.dataset.field = c.field;
          if (c.numeric) td.className = 'num';
        }
      }
      columns.forEach((c, i) => c.cell(row, tr.cells[i]));
    }
    for (const tr of Array.from(body.rows))
      if (!seen.has(tr.dataset.key)) tr.remove();
    if (!rows.length) {
      const tr = body.insertRow();
      tr.dataset.key = '';
      const td = tr.insertCell();
      td.colSpan = columns.length;
      td.className = 'empty';
      td.textContent = empty;
    }
  }

  const text = (field, label, format, numeric) => ({
    field, label, numeric, cell: (row, td) => setFigure(td, format ? format(row[field]) : row[field], row[field]),
  });
  const rateColumn = (field, label) => text(field, label, perSecond, true);
  const countColumn = (field, label) => text(field, label, count, true);
  const chartColumn = (field, label) => ({
    field, label, cell: (row, td) => {
      let svg = td.firstChild;
      if (!svg) td.append(svg = newChart(100, 20));
      chart(svg, series.get(row[field]) || [], 100, 20);
    },
  });

  // ---- one reading --------------------------------------------------------------------------

  function draw(s) {
    document.getElementById('config-file').textContent = s.config.file;
    document.getElementById('generation').textContent = s.config.generation;
    document.getElementById('loaded-at').textContent =
        new Date(s.config.loaded_at * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    const reloadsFailed = document.getElementById('reloads-failed');
    setFigure(document.getElementById('reloads-ok'), count(s.reloads.ok), s.reloads.ok);
    setFigure(reloadsFailed, count(s.reloads.failed), s.reloads.failed);
    reloadsFailed.classList.toggle('bad', s.reloads.failed > 0);

    // Listeners.
    const listeners = Object.entries(s.listeners).map(([address, l]) => ({
      key: address, address, open: l.open,
      accepted_rate: rate('listener:accepted:' + address, l.accepted),
      requests_rate: rate('listener:requests:' + address, l.requests || 0),
      requests_chart: 'listener:requests:' + address,
      tls_handshakes: l.tls_handshakes,
      tls_rate: rate('listener:tls:' + address, l.tls_handshakes),
      tls_failures: l.tls_failures,
    }));
    table('listeners', [
      text('address', 'listener'), countColumn('open', 'connections open'),
      rateColumn('accepted_rate', 'accepted/s'), rateColumn('requests_rate', 'requests/s'),
      chartColumn('requests_chart', 'requests, 2 min'), countColumn('tls_handshakes', 'TLS handshakes'),
      rateColumn('tls_rate', 'handshakes/s'), countColumn('tls_failures', 'TLS failures'),
    ], listeners, 'no listener has accepted a connection yet');

    // Routes.
    const byMode = {};
    let wsOpen = 0, messagesIn = 0, messagesOut = 0, requests = 0, errors = 0;
    const routes = Object.entries(s.routes).map(([route, r]) => {
      const q = r.requests, w = r.websocket;
      const total = q['1xx'] + q['2xx'] + q['3xx'] + q['4xx'] + q['5xx'];
      requests += total;
      errors += q['5xx'];
      wsOpen += w.open;
      messagesIn += w.messages_in;
      messagesOut += w.messages_out;
      const mode = w.mode || 'none';
      if (mode !== 'none') byMode[mode] = (byMode[mode] || 0) + w.open;
      return {
        key: route, route, requests: total,
        requests_rate: rate('route:requests:' + route, total), requests_chart: 'route:requests:' + route,
        c2xx: q['2xx'], c3xx: q['3xx'], c4xx: q['4xx'], c5xx: q['5xx'],
        c5xx_rate: rate('route:5xx:' + route, q['5xx']),
        mode, ws_open: w.open,
        in_rate: rate('route:in:' + route, w.messages_in), out_rate: rate('route:out:' + route, w.messages_out),
        messages_chart: 'route:out:' + route,
      };
    });
    table('routes', [
      text('route', 'route'), countColumn('requests', 'requests'), rateColumn('requests_rate', 'requests/s'),
      chartColumn('requests_chart', 'requests, 2 min'), countColumn('c2xx', '2xx'), countColumn('c3xx', '3xx'),
      countColumn('c4xx', '4xx'), countColumn('c5xx', '5xx'), rateColumn('c5xx_rate', '5xx/s'),
      text('mode', 'WebSocket mode'), countColumn('ws_open', 'open'),
      rateColumn('in_rate', 'msg in/s'), rateColumn('out_rate', 'msg out/s'),
      chartColumn('messages_chart', 'msg out, 2 min'),
    ], routes, 'no request has been routed yet');
    for (const tr of document.querySelectorAll('#routes tbody tr')) {
      const cell = tr.querySelector('td[data-field="c5xx_rate"]');
      tr.classList.toggle('bad', !!cell && Number(cell.dataset.value) > 0);
    }

    // Upstreams: responses per second, mean response time between two readings, servers.
    const upstreams = Object.entries(s.upstreams).map(([name, u]) => {
      const responses = rate('upstream:responses:' + name, u.responses);
      const seconds = rate('upstream:seconds:' + name, u.response_seconds_sum);
      return {
        key: name, name, responses, servers: u.servers,
        mean_ms: responses > 0 && seconds !== null ? (1000 * seconds) / responses : null,
      };
    });
    table('upstreams', [
      text('name', 'upstream'), rateColumn('responses', 'responses/s'),
      text('mean_ms', 'mean response', (v) => (v === null ? '–' : v.toFixed(1) + ' ms'), true),
      {field: 'servers', label: 'servers', cell: (row, td) => {
        td.textContent = '';
        for (const [server, state] of Object.entries(row.servers)) {
          const badge = el('span', 'server ' + state, server + ' ' + state);
          badge.dataset.state = state;
          td.append(badge);
        }
      }},
    ], upstreams, 'no upstream');

    // Pub/sub.
    const p = s.pubsub;
    setFigure(document.getElementById('channel-count'), count(p.channels), p.channels);
    setFigure(document.getElementById('subscriber-count'), count(p.subscribers), p.subscribers);
    document.getElementById('history-use').textContent =
        count(p.history_messages) + ' messages, ' + bytes(p.history_bytes) + ' of ' + bytes(p.history_budget_bytes);
    const channels = (p.top_channels || []).map((c) => ({
      key: c.name, name: c.name, subscribers: c.subscribers, published: c.published,
      publish_rate: rate('channel:' + c.name, c.published), publish_chart: 'channel:' + c.name, history: c.history,
    }));
    table('channels', [
      text('name', 'channel'), countColumn('subscribers', 'subscribers'), countColumn('published', 'published'),
      rateColumn('publish_rate', 'publishes/s'), chartColumn('publish_chart', 'publishes, 2 min'),
      countColumn('history', 'kept'),
    ], channels, 'no channel');

    // Limits: what was refused, and why.
    const l = s.limits;
    const refused = [
      ['per-IP connections (429 at accept)', l.rejected.per_ip_connections],
      ['per-IP WebSockets (429 to an upgrade)', l.rejected.per_ip_websockets],
      ['per-IP upgrade rate (429)', l.rejected.per_ip_upgrade_rate],
      ['accept() failures', l.accept_errors],
      ['publishes refused: size', p.refused.size], ['publishes refused: rate', p.refused.rate],
      ['publishes refused: channels', p.refused.channels], ['slow subscribers closed', p.slow_closed],
    ].map(([what, n]) => ({key: what, what, n, n_rate: rate('limit:' + what, n)}));
    table('limits', [text('what', 'refused or closed'), countColumn('n', 'total'), rateColumn('n_rate', 'per second')],
          refused, '');

    // Tiles last: they sum what the tables read.
    let open = 0, handshakes = 0;
    for (const x of Object.values(s.listeners)) { open += x.open; handshakes += x.tls_handshakes; }
    setTile('requests', requests);
    setTile('connections', open);
    setTile('websockets', wsOpen);
    setTile('messages-in', messagesIn);
    setTile('messages-out', messagesOut);
    setTile('publishes', p.published || 0);
    setTile('tls', handshakes);
    setTile('errors', errors);
    const modes = Object.entries(byMode).map(([m, n]) => m + ' ' + n);
    const breakdown = document.getElementById('ws-by-mode');
    breakdown.textContent = modes.length ? modes.join(' · ') : 'no WebSocket route';
    for (const [m, n] of Object.entries(byMode)) breakdown.dataset[m] = n;
  }

  // ---- polling ------------------------------------------------------------------------------

  const pollState = document.getElementById('poll-state');

  async function poll() {
    const started = performance.now();
    try {
      const response = await fetch(statusUrl, {cache: 'no-store', headers: {Accept: 'application/json'}});
      if (!response.ok) throw new Error(statusUrl + ' answered ' + response.status);
      const status = await response.json();
      current = {time: performance.now(), counters: new Map()};
      draw(status);
      previous = current;
      pollState.textContent = 'live, updated ' + new Date().toLocaleTimeString();
      pollState.className = 'poll-state ok';
    } catch (error) {
      // Keep the last figures on screen, say they are stale, and keep trying.
      pollState.textContent = 'stale: ' + error.message;
      pollState.className = 'poll-state bad';
    } finally {
      setTimeout(poll, Math.max(0, POLL_MS - (performance.now() - started)));
    }
  }

  buildTiles();
  poll();
})();
