# SPDX-License-Identifier: Apache-2.0
"""Small helpers for pubsub tests: publish, channel info, subscribe (optionally with the
portico.pubsub.v1 subprotocol) and read its JSON frames, on one Portico node."""

import json

from http_client import http_request
from ws_client import OP_TEXT, WsConnection

SUBPROTOCOL = "portico.pubsub.v1"


class PubSubNode:
    """One Portico serving `handler: pubsub` under `prefix` on `port`."""

    def __init__(self, port, prefix="/live/", token=None):
        self.port, self.prefix, self.token = port, prefix, token

    def publish(self, channel, body, key=None, timeout=10.0):
        hdrs = [("Content-Type", "text/plain")]
        if self.token:
            hdrs.append(("Authorization", "Bearer %s" % self.token))
        if key is not None:
            hdrs.append(("Idempotency-Key", key))
        return http_request(self.port, "POST", self.prefix + channel, headers=hdrs, body=body,
                            timeout=timeout)

    def info(self, channel):
        r = http_request(self.port, "GET", self.prefix + channel)
        assert r.status == 200, r
        return r.json()

    def subscribe(self, channel, query="", json_frames=False, **kw):
        protocols = [SUBPROTOCOL] if json_frames else None
        return WsConnection.connect(self.port, self.prefix + channel + query, protocols=protocols, **kw)


def recv_json(ws, timeout=None):
    """The next message of a portico.pubsub.v1 subscriber, decoded."""
    op, data = ws.recv_message(timeout=timeout)
    assert op == OP_TEXT, (op, data)
    return json.loads(data.decode("utf-8"))
