# SPDX-License-Identifier: Apache-2.0
"""The dwebsocket-style chat as a plain Django view under gunicorn's sync workers: Portico holds
every WebSocket (`websocket: {mode: http}`) and hands the view each socket's events as an
ordinary POST (Pushpin's WebSocket-over-HTTP), so no worker waits on any socket and 2 workers
serve a thousand. The view parses and writes the event format itself. Run from this folder:

    gunicorn -w 2 -k sync -b 127.0.0.1:8000 app:application

OPEN: accept, turn GRIP on and subscribe the WebSocket to the channel "all". TEXT
"broadcast:<text>": publish <text> to "all" through Portico's publish API (every open
WebSocket gets it) and answer "sent"; any other TEXT is answered "you said <text>". CLOSE is
answered with CLOSE. PORTICO_PUBLISH (http://127.0.0.1:8080/publish/) and PUBLISH_TOKEN
(change-me) name portico.yaml's `handler: publish` route and its token.
"""

import json
import os
import urllib.request

from django.conf import settings

PUBLISH_URL = os.environ.get("PORTICO_PUBLISH", "http://127.0.0.1:8080/publish/")
PUBLISH_TOKEN = os.environ.get("PUBLISH_TOKEN", "change-me")

settings.configure(DEBUG=False, ROOT_URLCONF=__name__, SECRET_KEY="example-only", ALLOWED_HOSTS=["*"],
                   DATABASES={}, INSTALLED_APPS=[], MIDDLEWARE=[])

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

EVENTS = "application/websocket-events"


# The event format: "TYPE HEXLEN\r\nCONTENT\r\n", or "TYPE\r\n" without content.
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
    req = urllib.request.Request(PUBLISH_URL, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + PUBLISH_TOKEN})
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
