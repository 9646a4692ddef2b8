#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A python3-websockets (Debian, 10.x) echo backend for Portico's tests.

    /usr/bin/python3 py_websockets_backend.py [--host 127.0.0.1] [--port 0] [--no-deflate]
                                              [--max-size BYTES]

Prints "listening on HOST:PORT" on stdout once bound, then one JSON line per WebSocket event
({"event":"open"|"close"|"error", "id", ...}), the same protocol as express_ws_backend.js:
every message is echoed with its type; text commands "__close__:CODE:REASON", "__drop__" and
"__info__" (JSON {path, protocol, extensions, headers}). Subprotocols: chat.v2 preferred over
chat.v1, nothing else selected. permessage-deflate is accepted unless --no-deflate.
"""

import argparse
import ssl
import asyncio
import itertools
import json
import signal
import sys

import websockets
import websockets.server

SUPPORTED = ["chat.v2", "chat.v1"]
_ids = itertools.count(1)


def log(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def select_subprotocol(client_subprotocols, server_subprotocols):
    for p in SUPPORTED:
        if p in client_subprotocols:
            return p
    return None


class Protocol(websockets.server.WebSocketServerProtocol):
    def select_subprotocol(self, client_subprotocols, server_subprotocols):
        return select_subprotocol(client_subprotocols, server_subprotocols)


async def handler(ws, path=None):
    conn_id = next(_ids)
    path = getattr(ws, "path", path)
    ext_header = ws.response_headers.get("Sec-WebSocket-Extensions", "")
    log({"event": "open", "id": conn_id, "path": path, "protocol": ws.subprotocol or "",
         "extensions": ext_header})
    try:
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("__"):
                if msg.startswith("__close__"):
                    parts = msg.split(":")
                    code = int(parts[1]) if len(parts) > 1 and parts[1] else 1000
                    await ws.close(code, ":".join(parts[2:]))
                    break
                if msg == "__drop__":
                    ws.transport.abort()
                    break
                if msg == "__info__":
                    headers = {k.lower(): v for k, v in ws.request_headers.raw_items()}
                    await ws.send(json.dumps({"path": path, "protocol": ws.subprotocol or "",
                                              "extensions": ext_header, "headers": headers}))
                    continue
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    except Exception as e:  # report, never crash the server
        log({"event": "error", "id": conn_id, "message": repr(e)})
    try:
        await asyncio.wait_for(ws.wait_closed(), 5)
    except asyncio.TimeoutError:
        pass
    log({"event": "close", "id": conn_id, "code": ws.close_code, "reason": ws.close_reason or ""})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-deflate", action="store_true")
    ap.add_argument("--max-size", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve wss:// with this pair")
    args = ap.parse_args()
    ssl_context = None
    if args.tls:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(*args.tls)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(0))
    async with websockets.serve(handler, args.host, args.port, create_protocol=Protocol,
                                subprotocols=SUPPORTED,
                                compression=None if args.no_deflate else "deflate",
                                max_size=args.max_size, max_queue=64,
                                ping_interval=None, ssl=ssl_context) as server:
        host, port = server.sockets[0].getsockname()[:2]
        sys.stdout.write("listening on %s:%d\n" % (host, port))
        sys.stdout.flush()
        await stop


if __name__ == "__main__":
    asyncio.run(main())
