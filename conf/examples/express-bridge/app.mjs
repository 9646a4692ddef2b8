// SPDX-License-Identifier: Apache-2.0
// An Express app using @fanoutio/serve-grip for WebSocket-over-HTTP and @fanoutio/grip's
// Publisher, exactly as their READMEs show (README.md in this folder). Portico holds each
// WebSocket (`websocket: {mode: http}`) and POSTs its events to /chat; serve-grip's wsContext
// reads them and writes the answer. Run from this folder:
//
//   node app.mjs                  (PORT, default 8000; GRIP_URL, default below)
//
// GRIP_URL names Portico and the key shared with it: the Publisher POSTs to GRIP_URL's
// /publish/ (portico.yaml's `handler: publish`) with an HS256 JWT signed with the key (iss
// "app"), and Grip-Sig on Portico's requests must be signed with the same key (sig_key).
// serve-grip checks Grip-Sig with a JWT GRIP_URL's key (a key without iss is sent as a Bearer
// token and checks nothing unless the URL adds verify-key=).
//
// POST /chat: accepts the WebSocket only for signed requests (Grip-Sig), subscribes it to
// "room" and greets it; "pub:<text>" publishes <text> to "room" with the Publisher (every
// socket in the room gets it); anything else is echoed with send(); "close" closes the
// WebSocket from the app (code 4000). The tests (tests/integration/test_ws_bridge_express.py,
// test_demo_browser.py, test_examples.py) run this file.
import express from 'express';
import { ServeGrip } from '@fanoutio/serve-grip';
import { WebSocketMessageFormat } from '@fanoutio/grip';

const port = Number(process.env.PORT ?? 8000);
const serveGrip = new ServeGrip({ grip: process.env.GRIP_URL ?? 'http://127.0.0.1:8080/?iss=app&key=change-me' });

const app = express();
app.use(serveGrip);

app.post('/chat', async (req, res) => {
    const ws = req.grip.wsContext;
    if (ws == null) {
        res.statusCode = 400;
        res.end('not a WebSocket-over-HTTP request\n');
        return;
    }
    // serve-grip 2.0.0 computes req.grip.isSigned from an unawaited promise (always true when a
    // Grip-Sig is present), so the signature is checked with the Publisher's own validator.
    const { isSigned } = await serveGrip.getPublisher().validateGripSig(req.headers['grip-sig']);
    if (!isSigned) {
        res.statusCode = 403;
        res.end('not signed by the gateway\n');
        return;
    }
    if (ws.isOpening()) {
        ws.accept();
        ws.subscribe('room');
        ws.send('welcome ' + (req.headers['user-agent'] || ''));
    }
    while (ws.canRecv()) {
        let message;
        try {
            message = ws.recv();
        } catch (e) {
            break;  // DISCONNECT
        }
        if (message == null) {
            ws.close();  // the client closed: answer with a CLOSE
            break;
        }
        if (message.startsWith('pub:')) {
            await serveGrip.getPublisher().publishFormats('room', new WebSocketMessageFormat(message.slice(4)));
            ws.send('published');
        } else if (message === 'close') {
            ws.close(4000);
        } else {
            ws.send('echo:' + message);
        }
    }
    res.end();
});

const server = app.listen(port, '127.0.0.1', () => {
    const a = server.address();
    console.log(`listening on ${a.address}:${a.port}`);
});
