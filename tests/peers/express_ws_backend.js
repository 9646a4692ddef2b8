#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// An Express 5 + express-ws 5 (which bundles ws 7) WebSocket echo backend for Portico's tests.
//
//   node express_ws_backend.js [--host 127.0.0.1] [--port 0] [--no-deflate]
//
// Prints "listening on HOST:PORT" on stdout once bound, then one JSON line per WebSocket event:
//   {"event":"open","id":N,"path":"/ws/echo","protocol":"chat.v2","extensions":"..."}
//   {"event":"close","id":N,"code":1000,"reason":"bye"}
//   {"event":"error","id":N,"message":"..."}
//
// Every WebSocket path echoes each message with its type (text or binary). Text commands:
//   __close__:CODE:REASON   the backend starts the close handshake with CODE and REASON
//   __drop__                the backend drops the TCP connection without a close frame
//   __info__                answers JSON {path, protocol, extensions, headers} (headers as received)
// Subprotocols: the backend speaks chat.v2 and chat.v1 (preferring chat.v2) and picks the
// first of those the client offers; nothing else is ever selected.
// Plain HTTP: GET /plain answers "plain"; any other HTTP request answers JSON of what arrived.
'use strict';

const http = require('http');
const express = require('express');
const expressWs = require('express-ws');

function argValue(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const host = argValue('--host', '127.0.0.1');
const port = Number(argValue('--port', '0'));
const deflate = !process.argv.includes('--no-deflate');
const kSupported = ['chat.v2', 'chat.v1'];

function log(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const app = express();
const server = http.createServer(app);
expressWs(app, server, {
  wsOptions: {
    // ws 7 passes an array, ws 8 a Set: accept both.
    handleProtocols: (protocols) => {
      const offered = Array.from(protocols);
      for (const p of kSupported) if (offered.includes(p)) return p;
      return false;
    },
    perMessageDeflate: deflate ? { threshold: 0 } : false,
    maxPayload: 64 * 1024 * 1024,
  },
});

let nextId = 1;

function onSocket(ws, req) {
  const id = nextId++;
  // express-ws routes upgrades through "<url>/.websocket"; report the path the client asked for.
  const path = (req.originalUrl || req.url).replace(/\/\.websocket(?=\?|$)/, '') || '/';
  // Without an 'error' listener a bad frame would crash the whole process (PEERS.md).
  ws.on('error', (err) => log({ event: 'error', id, message: String(err && err.message) }));
  log({ event: 'open', id, path, protocol: ws.protocol || '', extensions: ws.extensions || '' });
  ws.on('message', (data) => {
    // express-ws 5 bundles ws 7: (data) only; a string for text, a Buffer for binary.
    if (typeof data === 'string' && data.startsWith('__')) {
      if (data.startsWith('__close__')) {
        const parts = data.split(':');
        const code = Number(parts[1] || 1000);
        ws.close(code, parts.slice(2).join(':'));
        return;
      }
      if (data === '__drop__') {
        ws.terminate();
        return;
      }
      if (data === '__info__') {
        ws.send(JSON.stringify({ path, protocol: ws.protocol || '', extensions: ws.extensions || '',
                                 headers: req.headers }));
        return;
      }
    }
    ws.send(data);
  });
  ws.on('close', (code, reason) => log({ event: 'close', id, code, reason: String(reason || '') }));
}

app.ws('/*splat', onSocket);
app.ws('/', onSocket);

app.get('/plain', (req, res) => res.type('text/plain').send('plain'));
app.use((req, res) => {
  res.json({ method: req.method, url: req.originalUrl, headers: req.headers });
});

server.listen(port, host, () => {
  const a = server.address();
  process.stdout.write(`listening on ${a.address}:${a.port}\n`);
});

function shutdown() {
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
