# SPDX-License-Identifier: Apache-2.0
"""A Channels echo consumer speaking the test peers' protocol (see express_ws_backend.js).

Every message comes back with its type. Text commands: "__close__:CODE:REASON" (Channels 4.0
sends the code only, no reason), "__info__" (JSON {path, protocol, extensions, headers}) and
"__drop__", which ends the whole daphne process at once (ASGI gives no handle on the TCP
connection), so a test using it owns its daphne. Subprotocols: chat.v2 preferred over chat.v1.
Events go to stdout as JSON lines like the other backends.
"""

import itertools
import json
import os
import sys

from channels.generic.websocket import AsyncWebsocketConsumer

SUPPORTED = ["chat.v2", "chat.v1"]
_ids = itertools.count(1)


def log(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _headers(scope):
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class EchoConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.conn_id = next(_ids)
        offered = self.scope.get("subprotocols") or []
        self.chosen = next((p for p in SUPPORTED if p in offered), None)
        query = self.scope.get("query_string", b"").decode("latin-1")
        self.path = self.scope.get("path", "") + ("?" + query if query else "")
        await self.accept(subprotocol=self.chosen)
        log({"event": "open", "id": self.conn_id, "path": self.path,
             "protocol": self.chosen or "", "extensions": ""})

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is not None and text_data.startswith("__"):
            if text_data.startswith("__close__"):
                parts = text_data.split(":")
                code = int(parts[1]) if len(parts) > 1 and parts[1] else 1000
                await self.close(code=code)
                return
            if text_data == "__drop__":
                log({"event": "drop", "id": self.conn_id})
                os._exit(0)
            if text_data == "__info__":
                await self.send(text_data=json.dumps({
                    "path": self.path, "protocol": self.chosen or "", "extensions": "",
                    "headers": _headers(self.scope)}))
                return
        if text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)

    async def disconnect(self, code):
        log({"event": "close", "id": self.conn_id, "code": code, "reason": ""})
