// SPDX-License-Identifier: Apache-2.0
// The app both gateways bridge to in bench/bridge_bench.py: a WebSocket-over-HTTP echo on
// Node's http module (one process, keep-alive), fast enough that the gateway is what is measured.
//   OPEN -> OPEN (+ GRIP on and c:subscribe to "bench" when the path contains "sub")
//   TEXT x -> TEXT x (m:x with GRIP on); CLOSE -> CLOSE
// Usage: node woh_echo_app.js PORT
'use strict';
const http = require('http');

function parse(body) {
    const events = [];
    let at = 0;
    while (at < body.length) {
        const end = body.indexOf('\r\n', at);
        const line = body.toString('latin1', at, end);
        at = end + 2;
        const sp = line.indexOf(' ');
        if (sp < 0) { events.push([line, null]); continue; }
        const n = parseInt(line.slice(sp + 1), 16);
        events.push([line.slice(0, sp), body.subarray(at, at + n)]);
        at += n + 2;
    }
    return events;
}

function encode(events) {
    const parts = [];
    for (const [type, content] of events) {
        if (content == null) parts.push(Buffer.from(type + '\r\n'));
        else parts.push(Buffer.from(`${type} ${content.length.toString(16)}\r\n`), content, Buffer.from('\r\n'));
    }
    return Buffer.concat(parts);
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        const sub = req.url.includes('sub');
        const out = [];
        const headers = { 'Content-Type': 'application/websocket-events' };
        for (const [type, content] of parse(Buffer.concat(chunks))) {
            if (type === 'OPEN') {
                out.push(['OPEN', null]);
                if (sub) {
                    headers['Sec-WebSocket-Extensions'] = 'grip';
                    out.push(['TEXT', Buffer.from('c:{"type":"subscribe","channel":"bench"}')]);
                }
            } else if (type === 'TEXT') {
                out.push(['TEXT', sub ? Buffer.concat([Buffer.from('m:'), content]) : content]);
            } else if (type === 'CLOSE') {
                out.push(['CLOSE', content]);
            }
        }
        const body = encode(out);
        headers['Content-Length'] = body.length;
        res.writeHead(200, headers);
        res.end(body);
    });
});
server.keepAliveTimeout = 120000;
server.listen(Number(process.argv[2]), '127.0.0.1', () => console.log('listening'));
