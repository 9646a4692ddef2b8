# SPDX-License-Identifier: Apache-2.0
"""ASGI entry point: /plain and JSON describe over HTTP, the echo consumer on every WebSocket
path. Run: cd tests/peers/django_channels && /usr/bin/python3 -m daphne -b 127.0.0.1 -p 0
portico_peer.asgi:application (daphne logs "Listening on TCP address HOST:PORT" on stderr)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portico_peer.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import re_path  # noqa: E402

django_app = get_asgi_application()

from portico_peer.consumers import EchoConsumer  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_app,
    "websocket": URLRouter([re_path(r"", EchoConsumer.as_asgi())]),
})
