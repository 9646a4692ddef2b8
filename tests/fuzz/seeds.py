#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of every fuzz target: tests/fuzz/corpus/<target>/seed-<name>.

Valid and near-valid inputs (one defect each), small, named after what they hold. The files are
committed; run this again after changing a table here (it rewrites only seed-* files, so inputs
libFuzzer added and that were merged into the corpus stay). Each target's input format (the
control bytes in front) is described at the top of tests/fuzz/fuzz_<target>.cpp.
"""

import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- HTTP ---------------------------------------------------------------------------------------

WHOLE, BYTES_1, BYTES_7 = b"\x00", b"\x01", b"\x07"  # fuzz_support.h sliceSize selectors
CRLF = b"\r\n"


def req(*lines, body=b""):
    return CRLF.join(l.encode() if isinstance(l, str) else l for l in lines) + CRLF + CRLF + body


HTTP_REQUEST = {
    "get": WHOLE + req("GET / HTTP/1.1", "Host: example.test"),
    "get-bytewise": BYTES_1 + req("GET /a/b?x=1&y=%20 HTTP/1.1", "Host: example.test:8080", "Accept: */*"),
    "head": WHOLE + req("HEAD /index.html HTTP/1.1", "Host: a"),
    "post-content-length": BYTES_7 + req("POST /api/items HTTP/1.1", "Host: a", "Content-Length: 11",
                                         "Content-Type: application/json", body=b'{"a":[1,2]}'),
    "post-chunked": BYTES_7 + req("POST /up HTTP/1.1", "Host: a", "Transfer-Encoding: chunked",
                                  body=b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"),
    "post-chunked-trailer": WHOLE + req("POST /up HTTP/1.1", "Host: a", "Transfer-Encoding: chunked",
                                        body=b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n"),
    "pipelined": WHOLE + req("GET /1 HTTP/1.1", "Host: a") + req("GET /2 HTTP/1.1", "Host: a", "Connection: close"),
    "http10-no-host": WHOLE + req("GET / HTTP/1.0"),
    "http10-keepalive": WHOLE + req("GET / HTTP/1.0", "Connection: keep-alive", "Host: a"),
    "absolute-form": WHOLE + req("GET http://example.test:8080/p?q HTTP/1.1", "Host: other"),
    "options-star": WHOLE + req("OPTIONS * HTTP/1.1", "Host: a"),
    "connect": WHOLE + req("CONNECT example.test:443 HTTP/1.1", "Host: example.test:443"),
    "websocket": WHOLE + req("GET /ws HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade",
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                             "Sec-WebSocket-Protocol: chat, superchat", "Origin: http://a",
                             "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; "
                             "server_max_window_bits=10, permessage-deflate"),
    "websocket-bad-version": WHOLE + req("GET /ws HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: upgrade",
                                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8"),
    "websocket-with-body": WHOLE + req("GET /ws HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: upgrade",
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                                       "Content-Length: 4", body=b"GET "),
    "h2c-upgrade": WHOLE + req("GET / HTTP/1.1", "Host: a", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings",
                               "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
    "expect-continue": WHOLE + req("PUT /f HTTP/1.1", "Host: a", "Expect: 100-continue", "Content-Length: 2", body=b"ok"),
    "hop-by-hop": WHOLE + req("GET / HTTP/1.1", "Host: a", "Connection: close, X-Secret, Host", "X-Secret: 1",
                              "Keep-Alive: 5", "Proxy-Authorization: x", "TE: trailers"),
    "path-dot-segments": WHOLE + req("GET /api/../admin/./users//x HTTP/1.1", "Host: a"),
    "path-encoded-dots": WHOLE + req("GET /api/%2e%2E/admin/%2F..%5c HTTP/1.1", "Host: a"),
    "path-above-root": WHOLE + req("GET /../../etc/passwd HTTP/1.1", "Host: a"),
    "host-ipv6": WHOLE + req("GET / HTTP/1.1", "Host: [::1]:8080"),
    "host-bad": WHOLE + req("GET / HTTP/1.1", "Host: x/../y"),
    "host-twice": WHOLE + req("GET / HTTP/1.1", "Host: a", "Host: b"),
    # near-valid: each must be refused
    "cl-and-te": WHOLE + req("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Transfer-Encoding: chunked",
                             body=b"0\r\n\r\n"),
    "cl-twice": WHOLE + req("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Content-Length: 6", body=b"hello!"),
    "te-gzip-chunked": WHOLE + req("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
    "te-chunked-twice": WHOLE + req("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked",
                                    "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "te-http10": WHOLE + req("POST / HTTP/1.0", "Host: a", "Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\n\r\n"),
    "obs-fold": WHOLE + req("GET / HTTP/1.1", "Host: a", "X-A: b", " c"),
    "bare-lf": WHOLE + b"GET / HTTP/1.1\nHost: a\n\n",
    "space-before-colon": WHOLE + req("GET / HTTP/1.1", "Host : a"),
    "nul-in-value": WHOLE + req("GET / HTTP/1.1", "Host: a", b"X-A: b\x00c"),
    "http2-line": WHOLE + req("GET / HTTP/2.0", "Host: a"),
    "chunk-size-overflow": WHOLE + req("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked",
                                       body=b"10000000000000000\r\nx\r\n0\r\n\r\n"),
    "long-header": WHOLE + req("GET / HTTP/1.1", "Host: a", "X-Long: " + "v" * 1100),
    "fragment": WHOLE + req("GET /a#frag HTTP/1.1", "Host: a"),
}

HEAD_REQ, HTTP10_CLIENT, WEBSOCKET_REQ = 1, 2, 4  # fuzz_http_response.cpp flags


def resp(flags, *lines, body=b"", selector=WHOLE):
    return selector + bytes([flags]) + CRLF.join(l.encode() for l in lines) + CRLF + CRLF + body


HTTP_RESPONSE = {
    "200-content-length": resp(0, "HTTP/1.1 200 OK", "Content-Length: 5", "Content-Type: text/plain", body=b"hello"),
    "200-chunked": resp(0, "HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                        body=b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", selector=BYTES_7),
    "200-close-delimited": resp(HTTP10_CLIENT, "HTTP/1.0 200 OK", "Content-Type: text/plain", body=b"until close"),
    "200-to-head": resp(HEAD_REQ, "HTTP/1.1 200 OK", "Content-Length: 1234"),
    "204-with-length": resp(0, "HTTP/1.1 204 No Content", "Content-Length: 3", body=b"abc"),
    "304": resp(0, "HTTP/1.1 304 Not Modified", "ETag: \"x\"", "Content-Length: 10"),
    "100-then-200": resp(0, "HTTP/1.1 100 Continue") + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "103-then-200": resp(0, "HTTP/1.1 103 Early Hints", "Link: </s.css>; rel=preload")
    + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "101-websocket": resp(WEBSOCKET_REQ, "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                          "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    + b"\x81\x05hello",
    "101-wrong-accept": resp(WEBSOCKET_REQ, "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                             "Connection: Upgrade", "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    "hop-by-hop": resp(0, "HTTP/1.1 200 OK", "Connection: close, X-Internal", "X-Internal: 1", "Keep-Alive: 5",
                       "Content-Length: 0"),
    "bytewise": resp(0, "HTTP/1.1 404 Not Found", "Content-Length: 9", body=b"not found", selector=BYTES_1),
    # near-valid
    "cl-and-te": resp(0, "HTTP/1.1 200 OK", "Content-Length: 5", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "te-http10": resp(0, "HTTP/1.0 200 OK", "Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\n\r\n"),
    "te-gzip": resp(0, "HTTP/1.1 200 OK", "Transfer-Encoding: gzip", body=b"xxxx"),
    "status-two-digits": resp(0, "HTTP/1.1 20 OK", "Content-Length: 0"),
    "cut-short": resp(0, "HTTP/1.1 200 OK", "Content-Length: 100", body=b"only this"),
}

# ---- WebSocket ----------------------------------------------------------------------------------

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 5.7


def frame(opcode, payload=b"", fin=True, rsv=0, mask=MASK, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def deflate_message(data, wbits=15):
    z = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0
CLIENT_SENDS = 1  # fuzz_ws_frame.cpp: bit 0; RSV1 allowed is 4 << 1

WS_FRAME = {
    "masked-hello": bytes([CLIENT_SENDS, 4, 0]) + frame(TEXT, b"Hello"),
    "unmasked-hello-from-server": bytes([0, 4, 0]) + frame(TEXT, b"Hello", mask=None),
    "fragmented-with-ping": bytes([CLIENT_SENDS, 4, 3]) + frame(TEXT, b"Hel", fin=False) + frame(PING, b"p")
    + frame(CONT, b"lo"),
    "close-1000": bytes([CLIENT_SENDS, 4, 0]) + frame(CLOSE, b"\x03\xe8bye"),
    "length-16bit": bytes([CLIENT_SENDS, 8, 17]) + frame(BINARY, bytes(range(200))),
    "length-64bit": bytes([CLIENT_SENDS, 255, 0]) + frame(BINARY, b"", length=70000)[:14] + b"abc",
    "length-16bit-nonminimal": bytes([CLIENT_SENDS, 4, 0]) + bytes([0x82, 0x80 | 126, 0, 5]) + MASK + b"abcde",
    "compressed-rsv1": bytes([CLIENT_SENDS | (4 << 1), 4, 0]) + frame(TEXT, deflate_message(b"Hello"), rsv=4),
    # near-valid
    "rsv1-not-negotiated": bytes([CLIENT_SENDS, 4, 0]) + frame(TEXT, b"x", rsv=4),
    "reserved-opcode": bytes([CLIENT_SENDS, 4, 0]) + frame(3, b"x"),
    "unmasked-from-client": bytes([CLIENT_SENDS, 4, 0]) + frame(TEXT, b"x", mask=None),
    "ping-fragmented": bytes([CLIENT_SENDS, 4, 0]) + frame(PING, b"x", fin=False),
    "ping-too-long": bytes([CLIENT_SENDS, 4, 0]) + frame(PING, b"x" * 126),
    "continuation-first": bytes([CLIENT_SENDS, 4, 0]) + frame(CONT, b"x"),
    "too-big": bytes([CLIENT_SENDS, 1, 0]) + frame(BINARY, b"x" * 65),
    "length-top-bit": bytes([CLIENT_SENDS, 4, 0]) + bytes([0x82, 0xFF]) + b"\x80" + b"\x00" * 7 + MASK,
}

DEFLATE, SERVER_NCT, CLIENT_NCT, WE_ARE_CLIENT, COMPRESS_ALL = 1, 2, 4, 8, 16  # fuzz_ws_codec.cpp


def codec(flags, frames, bits=0x77, selector=0, max_units=15):
    return bytes([flags, bits, selector, max_units]) + frames


WS_CODEC = {
    "echo-hello": codec(0, frame(TEXT, b"Hello")),
    "fragmented-with-ping": codec(0, frame(TEXT, b"Hel", fin=False) + frame(PING, b"p") + frame(CONT, b"lo")
                                  + frame(BINARY, b"\x00\xff"), selector=3),
    "close-with-reason": codec(0, frame(TEXT, b"hi") + frame(CLOSE, b"\x03\xe8done")),
    "close-empty": codec(0, frame(CLOSE, b"")),
    "utf8-split": codec(0, frame(TEXT, "h\u00e9".encode()[:2], fin=False) + frame(CONT, "h\u00e9".encode()[2:]),
                        selector=1),
    "deflate": codec(DEFLATE, frame(TEXT, deflate_message(b"Hello Hello Hello Hello"), rsv=4)
                     + frame(TEXT, b"plain") + frame(BINARY, deflate_message(bytes(100)), rsv=4)),
    "deflate-fragmented": codec(DEFLATE | COMPRESS_ALL, frame(TEXT, deflate_message(b"abcabcabc" * 20)[:5], fin=False, rsv=4)
                                + frame(CONT, deflate_message(b"abcabcabc" * 20)[5:])),
    "deflate-no-context-takeover": codec(DEFLATE | SERVER_NCT | CLIENT_NCT | COMPRESS_ALL,
                                         frame(TEXT, deflate_message(b"x" * 300, 9), rsv=4) * 2, bits=0x11),
    "deflate-window-8": codec(DEFLATE | COMPRESS_ALL, frame(BINARY, deflate_message(bytes(range(256)) * 3, 9), rsv=4),
                              bits=0x00),
    "we-are-client": codec(WE_ARE_CLIENT | DEFLATE, frame(TEXT, deflate_message(b"from server"), rsv=4, mask=None)
                           + frame(PING, b"", mask=None)),
    # near-valid
    "invalid-utf8": codec(0, frame(TEXT, b"\xc3\x28")),
    "bad-deflate": codec(DEFLATE, frame(TEXT, b"\xff\xff\xff", rsv=4)),
    "deflate-bomb": codec(DEFLATE, frame(BINARY, deflate_message(bytes(1 << 20)), rsv=4), max_units=0),
    "close-code-1005": codec(0, frame(CLOSE, b"\x03\xed")),
    "close-one-byte": codec(0, frame(CLOSE, b"\x03")),
    "rsv2": codec(DEFLATE, frame(TEXT, b"x", rsv=2)),
}

# ---- configuration ------------------------------------------------------------------------------


def read(path):
    with open(os.path.join(HERE, "..", "..", path), "rb") as f:
        return f.read()


CONFIG = {
    "default": read("conf/portico.yaml"),
    "minimal": b"listeners: [{address: 127.0.0.1:8080}]\nroutes: [{path: /, handler: health}]\n",
    "proxy": b"""listeners:
  - address: "*:8080"
upstreams:
  app: {servers: [127.0.0.1:9000, "[::1]:9001"], balance: least_conn, keepalive: 8}
routes:
  - host: "*.example.com"
    path: /api/
    upstream: app
    strip_prefix: true
    set_headers: {X-Env: prod}
  - path: /ws/
    upstream: app
    websocket: {mode: frames, max_message_bytes: 1MiB, rate: {messages: 100/s, bytes: 1MiB/s}}
""",
    "tls": b"""listeners:
  - address: 127.0.0.1:8443
    tls:
      certificates: [{cert: site.crt, key: site.key}]
      min_version: "1.3"
  - address: 127.0.0.1:8080
    redirect_https: 8443
routes: [{path: =/healthz, handler: health}]
""",
    "anchors": b"""x: &l {address: 127.0.0.1:8080}
listeners: [*l, *l]
routes: [{path: /, handler: echo}]
""",
    # near-valid
    "unknown-key": b"listeners: [{address: 127.0.0.1:8080, adress: x}]\nroutes: [{path: /, handler: health}]\n",
    "bad-units": b"limits: {max_body_bytes: 10XB, keepalive_timeout: -1s}\nlisteners: [{address: 127.0.0.1:0}]\n",
    "two-documents": b"listeners: []\n---\nroutes: []\n",
    "unquoted-star": b"listeners:\n  - address: *:8080\n",
    "missing-upstream": b"listeners: [{address: 127.0.0.1:8080}]\nroutes: [{path: /, upstream: nope}]\n",
    "tabs": b"listeners:\n\t- address: 127.0.0.1:8080\n",
    "nested-flow": b"routes: " + b"[" * 50 + b"]" * 50 + b"\n",
}

# ---- pub/sub publish ----------------------------------------------------------------------------

TOKEN, RATE, TWO_CHANNELS, BODY_100 = 1, 2, 4, 8  # fuzz_pubsub_publish.cpp flags
RS = b"\x1e"


def pubsub(flags, *requests, max_units=15, history=3, selector=0):
    return bytes([flags, max_units, history, selector]) + RS.join(requests)


PUBSUB = {
    "post-get": pubsub(0, b"POST room1\n\n\nhello", b"GET room1\n\n\n", b"HEAD room1\n\n\n"),
    "token": pubsub(TOKEN, b"POST room\nBearer s3cret\n\n{\"a\":1}", b"POST room\nBearer wrong\n\nx",
                    b"POST room\n\n\nno token"),
    "binary-body": pubsub(0, b"POST bin\n\n\n\xff\xfe\x00\x01", b"POST bin\n\n\n\xc3\xa9t\xc3\xa9"),
    "rate": pubsub(RATE, b"POST r\n\n\n1", b"POST r\n\n\n2", b"POST r\n\n\n3", b"TICK\n\n\nxx", b"POST r\n\n\n4"),
    "channels": pubsub(TWO_CHANNELS, b"POST a\n\n\n1", b"POST b\n\n\n2", b"POST c\n\n\n3",
                       b"TICK\n\n\n" + b"x" * 200, b"POST c\n\n\n4"),
    "too-big": pubsub(BODY_100, b"POST big\n\n\n" + b"x" * 120, b"POST ok\n\n\n" + b"y" * 90, max_units=1, selector=7),
    "history-rollover": pubsub(0, *[b"POST h\n\n\n%d" % i for i in range(6)], history=2),
    "idempotency-key": pubsub(0, b"POST k\n\nkey-1\nfirst", b"POST k\n\nkey-1\nsecond", b"POST k\n\nkey-2\nthird",
                              b"POST k\n\n" + b"k" * 201 + b"\ntoo long a key"),
    "odd-channels": pubsub(0, b"POST a/b\n\n\nx", b"POST \n\n\nx", b"GET \"q\\\n\n\n", b"DELETE a\n\n\n",
                           b"HEAD \n\n\n", b"POST " + b"n" * 201 + b"\n\n\nx"),
}

TARGETS = {
    "http_request": HTTP_REQUEST,
    "http_response": HTTP_RESPONSE,
    "ws_frame": WS_FRAME,
    "ws_codec": WS_CODEC,
    "config": CONFIG,
    "pubsub_publish": PUBSUB,
}


def main():
    for target, seeds in TARGETS.items():
        folder = os.path.join(HERE, "corpus", target)
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.startswith("seed-"):
                os.remove(os.path.join(folder, name))
        for name, data in seeds.items():
            with open(os.path.join(folder, "seed-" + name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
