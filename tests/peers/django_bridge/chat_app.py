# SPDX-License-Identifier: Apache-2.0
"""A plain Django view under gunicorn (sync workers) handling WebSocket-over-HTTP by hand: the
dwebsocket-style chat of issue 9, without holding a socket. Run:

    PORTICO_PUBLISH=http://127.0.0.1:PORT/publish/ PUBLISH_TOKEN=... \\
        gunicorn -w 2 -k sync -b 127.0.0.1:8000 --chdir tests/peers/django_bridge chat_app:application

OPEN: accept, turn GRIP on and subscribe the WebSocket to "all". TEXT "broadcast:<text>":
publish <text> to "all" through Portico's publish API (every open WebSocket gets it); any other
TEXT is answered "you said <text>". CLOSE is answered with CLOSE.
"""

import json
import os
import urllib.request

from django.conf import settings

settings.configure(DEBUG=False, ROOT_URLCONF=__name__, SECRET_KEY="bridge-test", ALLOWED_HOSTS=["*"],
                   DATABASES={}, INSTALLED_APPS=[], MIDDLEWARE=[])

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

EVENTS = "application/websocket-events"


def parse_events(body):
    events, at = [], 0
    while at < len(body):
        end = body.index(b"\r\n", at)
        line = body[at:end].decode("ascii")
        at = end + 2
        if " " in line:
            typ, hexlen = line.split(" ", 1)
            n = int(hexlen, 16)
            events.append((typ, body[at:at + n]))
            at += n + 2
        else:
            events.append((line, None))
    return events


def encode_events(events):
    out = b""
    for typ, content in events:
        if content is None:
            out += typ.encode() + b"\r\n"
        else:
            out += b"%s %x\r\n" % (typ.encode(), len(content)) + content + b"\r\n"
    return out


def publish(channel, text):
    body = json.dumps({"items": [{"channel": channel, "formats": {"ws-message": {"content": text}}}]}).encode()
    req = urllib.request.Request(os.environ["PORTICO_PUBLISH"], data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + os.environ["PUBLISH_TOKEN"]})
    urllib.request.urlopen(req, timeout=10).read()


def chat(request):
    if request.content_type != EVENTS:
        return HttpResponse("WebSocket-over-HTTP only\n", status=400, content_type="text/plain")
    out = []
    grip = False
    for typ, content in parse_events(request.body):
        if typ == "OPEN":
            grip = True
            out += [("OPEN", None), ("TEXT", b'c:{"type":"subscribe","channel":"all"}')]
        elif typ == "TEXT":
            text = content.decode("utf-8")
            if text.startswith("broadcast:"):
                publish("all", text[len("broadcast:"):])
                out.append(("TEXT", b"m:sent"))
            else:
                out.append(("TEXT", ("m:you said " + text).encode("utf-8")))
        elif typ == "CLOSE":
            out.append(("CLOSE", content))
    response = HttpResponse(encode_events(out), content_type=EVENTS)
    if grip:
        response["Sec-WebSocket-Extensions"] = "grip"
    return response


# Django's CSRF middleware is not installed: MIDDLEWARE is empty.
urlpatterns = [path("chat/", chat)]
application = get_wsgi_application()
