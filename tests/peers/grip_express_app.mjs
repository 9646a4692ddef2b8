// An Express app using @fanoutio/serve-grip for WebSocket-over-HTTP and @fanoutio/grip's
// Publisher, exactly as their READMEs show: the peer for tests/integration/test_ws_bridge_express.py.
//
//   GRIP_URL=http://127.0.0.1:PORTICO/?iss=app&key=SECRET node grip_express_app.mjs --port P
//
// POST /chat (through Portico's bridge): accepts the WebSocket only for signed requests
// (Grip-Sig), subscribes it to "room" and greets it; "pub:<text>" publishes <text> to "room"
// with the Publisher (Portico's handler: publish); anything else is echoed with send().
// "close" closes the WebSocket from the app.
import express from 'express';
import { ServeGrip } from '@fanoutio/serve-grip';
import { WebSocketMessageFormat } from '@fanoutio/grip';

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
const serveGrip = new ServeGrip({ grip: process.env.GRIP_URL });

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
