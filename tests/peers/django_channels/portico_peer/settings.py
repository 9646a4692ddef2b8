# SPDX-License-Identifier: Apache-2.0
"""Minimal Django settings for the Channels echo backend used by Portico's tests (PEERS.md)."""

SECRET_KEY = "portico-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
ROOT_URLCONF = "portico_peer.urls"
ASGI_APPLICATION = "portico_peer.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
DATABASES = {}
USE_TZ = True
MIDDLEWARE = []
