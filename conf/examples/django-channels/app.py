# SPDX-License-Identifier: Apache-2.0
"""The smallest Django Channels app: one page over HTTP and a WebSocket echo, on one route
behind Portico. Run it under daphne from this folder:

    /usr/bin/python3 -m daphne -b 127.0.0.1 -p 8000 app:application
"""

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="example-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["channels"],
    DATABASES={},
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def index(request):
    return HttpResponse("hello from Django behind Portico\n", content_type="text/plain")


urlpatterns = [path("", index)]


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


application = ProtocolTypeRouter({
    "http": get_asgi_application(),
    "websocket": URLRouter([path("ws/echo", Echo.as_asgi())]),
})
