#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// A scripted node `ws` 8 client for Portico's tests: connects, sends messages, checks that each
// comes back unchanged (echo), optionally closes, and prints one JSON result line on stdout.
//
//   node ws_client.js '{"url":"ws://127.0.0.1:PORT/ws/echo", ...}'
//
// Plan keys (all optional except url):
//   protocols:   ["chat.v1", ...]           offered subprotocols
//   deflate:     false | true | {...}        permessage-deflate offer (ws perMessageDeflate option)
//   headers:     {"Origin": "...", ...}      extra handshake headers
//   messages:    [{"type":"text"|"binary", "size":N} | {"type":"text","data":"..."}]
//                sent one at a time; each must be echoed before the next is sent
//   info:        true                        after the echoes, send "__info__" and keep the
//                                            backend's JSON answer in result.info
//   send_only:   ["__close__:4001:bye"]     text messages sent after the echoes, not awaited
//   close:       {"code":4000,"reason":"bye"}   the client starts the close handshake at the end
//   wait_close:  true                        wait for the server to close (after send_only)
//   timeout_ms:  10000
// Result: {"open", "status", "protocol", "extensions", "extensions_header", "info", "echoes":[{"type","len","ok"}],
//          "all_ok", "close":{"code","reason"} | null, "error": null | "..."}
'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const plan = JSON.parse(process.argv[2] || '{}');
const result = { open: false, status: null, protocol: null, extensions: null,
                 extensions_header: null, info: null, echoes: [],
                 all_ok: true, close: null, error: null };
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

function payload(msg, i) {
  if (msg.data !== undefined) return msg.type === 'binary' ? Buffer.from(msg.data) : msg.data;
  const n = msg.size || 0;
  if (msg.type === 'binary') {
    // Deterministic but not trivially compressible bytes, different per message.
    const seed = crypto.createHash('sha256').update(String(i)).digest();
    const out = Buffer.alloc(n);
    for (let k = 0; k < n; k++) out[k] = seed[k % 32] ^ (k & 0xff) ^ (k >> 8);
    return out;
  }
  // Mixed 1-, 2- and 3-byte UTF-8 characters, cut to exactly n bytes on a character boundary.
  const unit = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789 äöü€');
  const reps = Math.ceil(n / unit.length) + 1;
  const buf = Buffer.alloc(unit.length * reps);
  for (let r = 0; r < reps; r++) unit.copy(buf, r * unit.length);
  let end = n;
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;  // do not split a character
  const s = buf.subarray(0, end).toString('utf8');
  return s + 'x'.repeat(n - end);
}

const timer = setTimeout(() => { result.error = 'timeout'; finish(); }, plan.timeout_ms || 10000);
timer.unref();

const options = { headers: plan.headers || {}, maxPayload: 256 * 1024 * 1024,
                  perMessageDeflate: plan.deflate === undefined ? false : plan.deflate };
const ws = new WebSocket(plan.url, plan.protocols || [], options);
ws.on('error', (err) => { result.error = result.error || String(err && err.message); });
ws.on('unexpected-response', (req, res) => {
  result.status = res.statusCode;
  result.error = 'unexpected-response ' + res.statusCode;
  finish();
});
ws.on('upgrade', (res) => {
  result.status = res.statusCode;
  result.extensions_header = res.headers['sec-websocket-extensions'] || '';
});
ws.on('close', (code, reason) => {
  result.close = { code, reason: reason.toString() };
  finish();
});

const messages = plan.messages || [];
let index = 0;
let expected = null;
let infoPending = false;

function sendNext() {
  if (index < messages.length) {
    const msg = messages[index];
    expected = { type: msg.type === 'binary' ? 'binary' : 'text', data: payload(msg, index) };
    ws.send(expected.data, { binary: expected.type === 'binary' });
    index++;
    return;
  }
  if (plan.info && !infoPending && result.info === null) {
    infoPending = true;
    ws.send('__info__');
    return;
  }
  for (const text of plan.send_only || []) ws.send(text);
  if (plan.close) {
    ws.close(plan.close.code, plan.close.reason || '');
  } else if (!plan.wait_close) {
    ws.close(1000, 'done');
  }
}

ws.on('open', () => {
  result.open = true;
  result.protocol = ws.protocol;
  result.extensions = ws.extensions;
  sendNext();
});

ws.on('message', (data, isBinary) => {
  if (infoPending) {
    infoPending = false;
    try {
      result.info = JSON.parse(data.toString());
    } catch (e) {
      result.info = { unparsed: data.toString() };
    }
    sendNext();
    return;
  }
  if (!expected) {
    result.echoes.push({ type: isBinary ? 'binary' : 'text', len: data.length, ok: false,
                         unexpected: true });
    result.all_ok = false;
    return;
  }
  const type = isBinary ? 'binary' : 'text';
  const want = Buffer.isBuffer(expected.data) ? expected.data : Buffer.from(expected.data);
  const ok = type === expected.type && Buffer.compare(data, want) === 0;
  result.echoes.push({ type, len: data.length, ok });
  if (!ok) result.all_ok = false;
  expected = null;
  sendNext();
});
