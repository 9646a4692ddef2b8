// SPDX-License-Identifier: Apache-2.0
// WebSocket load for bench/bridge_bench.py (node + ws from tests/peers/node_modules).
//   node bridge_client.js chat URL CLIENTS SECONDS   -> round trips: {messages, seconds, p50_ms, p99_ms}
//   node bridge_client.js idle URL COUNT HOLD_FILE   -> opens COUNT sockets, prints "open", holds
//                                                       them until HOLD_FILE disappears
//   node bridge_client.js fanout URL COUNT EXPECTED  -> COUNT subscribers; prints "open" when all
//                                                       are open, then {deliveries, seconds} once
//                                                       each got EXPECTED messages
'use strict';
const fs = require('fs');
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', 'tests', 'peers', 'node_modules', 'ws'));

const [mode, url, a, b] = process.argv.slice(2);

function openMany(count, onMessage) {
    return new Promise((resolve, reject) => {
        const sockets = [];
        let open = 0;
        let started = 0;
        const next = () => {
            // At most 50 handshakes in flight: Pushpin answers 502 beyond ~100 queued requests.
            while (started < count && started - open < 50) {
                const ws = new WebSocket(url, { perMessageDeflate: false });
                ws.on('error', reject);
                ws.on('open', () => { open++; if (open === count) resolve(sockets); else next(); });
                if (onMessage) ws.on('message', (data) => onMessage(ws, data));
                sockets.push(ws);
                started++;
            }
        };
        next();
    });
}

async function main() {
    if (mode === 'chat') {
        const clients = Number(a), seconds = Number(b);
        let stopFlag = false;
        const latencies = [];
        const sockets = await openMany(clients, null);
        const payload = 'x'.repeat(64);
        const t0 = process.hrtime.bigint();
        setTimeout(() => { stopFlag = true; }, seconds * 1000);
        await Promise.all(sockets.map((ws) => new Promise((resolve) => {
            let sent = 0n;
            const send = () => { sent = process.hrtime.bigint(); ws.send(payload); };
            ws.on('message', () => {
                latencies.push(Number(process.hrtime.bigint() - sent) / 1e6);
                if (stopFlag) { resolve(); return; }
                send();
            });
            send();
        })));
        const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
        latencies.sort((x, y) => x - y);
        const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
        console.log(JSON.stringify({ messages: latencies.length, seconds: elapsed, p50_ms: q(0.5), p99_ms: q(0.99) }));
        for (const ws of sockets) ws.terminate();
        process.exit(0);
    } else if (mode === 'idle') {
        const sockets = await openMany(Number(a), null);
        console.log('open ' + sockets.length);
        const timer = setInterval(() => {
            if (!fs.existsSync(b)) { clearInterval(timer); for (const ws of sockets) ws.terminate(); process.exit(0); }
        }, 100);
    } else if (mode === 'fanout') {
        const count = Number(a), expected = Number(b);
        let deliveries = 0, done = 0, t0 = null;
        const got = new Map();
        await openMany(count, (ws) => {
            if (t0 === null) t0 = process.hrtime.bigint();
            deliveries++;
            const n = (got.get(ws) || 0) + 1;
            got.set(ws, n);
            if (n === expected && ++done === count) {
                const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
                console.log(JSON.stringify({ deliveries, seconds }));
                process.exit(0);
            }
        });
        console.log('open ' + count);
    }
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
