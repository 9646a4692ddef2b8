#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Pushes one message to a Portico pub/sub channel: the one POST a plain web app (a view, a
cron job) does to reach every browser subscribed to the channel.

    ./publish.py "the build is green"
    ./publish.py --url http://127.0.0.1:8080/live/news --token change-me "hello"

Prints Portico's answer ({"channel":"news","subscribers":N,"seq":S}); exits 1 on an HTTP error.
"""

import argparse
import sys
import urllib.error
import urllib.request

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("message")
parser.add_argument("--url", default="http://127.0.0.1:8080/live/news")
parser.add_argument("--token", default="change-me")
args = parser.parse_args()

request = urllib.request.Request(args.url, data=args.message.encode("utf-8"), method="POST",
                                 headers={"Authorization": "Bearer " + args.token,
                                          "Content-Type": "text/plain; charset=utf-8"})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.read().decode("utf-8"))
except urllib.error.HTTPError as e:
    print("publish failed: %d %s" % (e.code, e.read().decode("utf-8", "replace")), file=sys.stderr)
    sys.exit(1)
