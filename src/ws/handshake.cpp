// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/handshake.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "portico/core/base64.h"
#include "portico/core/sha1.h"

namespace portico::ws {

namespace {

// RFC 6455 1.3: the GUID appended to the key before hashing.
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

constexpr std::array<bool, 256> kBase64Chars = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 256; ++c)
        table[static_cast<std::size_t>(c)] =
            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    return table;
}();
bool isBase64Char(char c) { return kBase64Chars[static_cast<unsigned char>(c)]; }

std::string base64(const unsigned char* data, std::size_t len) {
    return core::base64Encode(std::string_view(reinterpret_cast<const char*>(data), len));
}

// The accept value of `key` into `out`: 28 characters, base64 of the 20-byte digest, no heap.
constexpr std::size_t kAcceptLength = 4 * ((core::kSha1Length + 2) / 3);
using AcceptText = std::array<char, kAcceptLength + 1>;  // EVP_EncodeBlock adds a NUL

std::string_view acceptInto(std::string_view key, AcceptText& out) {
    // RFC 6455 4.2.2 item 5.4: base64(SHA-1(key ++ GUID)); a 24-byte key fits on the stack.
    core::Sha1Digest digest;
    char input[128];
    if (key.size() + kGuid.size() <= sizeof input) {
        std::memcpy(input, key.data(), key.size());
        std::memcpy(input + key.size(), kGuid.data(), kGuid.size());
        digest = core::sha1(std::string_view(input, key.size() + kGuid.size()));
    } else {
        std::string joined;
        joined.reserve(key.size() + kGuid.size());
        joined.append(key).append(kGuid);
        digest = core::sha1(joined);
    }
    EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), digest.data(), static_cast<int>(digest.size()));
    return std::string_view(out.data(), kAcceptLength);
}

}  // namespace

std::string computeAccept(std::string_view key) {
    AcceptText text;
    return std::string(acceptInto(key, text));
}

bool isValidKey(std::string_view key) {
    // 16 bytes encode to 22 significant characters and "==" padding. The 4 unused low bits of the
    // 22nd character are not checked: a lenient decoder would accept them and nothing depends on it.
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    for (std::size_t i = 0; i < 22; ++i)
        if (!isBase64Char(key[i])) return false;
    return true;
}

std::string generateKey() {
    unsigned char nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        // RFC 6455 4.1 wants a random nonce; it is not a secret, so any fallback variation will do.
        for (std::size_t i = 0; i < sizeof nonce; ++i) nonce[i] = static_cast<unsigned char>(std::rand());
    }
    return base64(nonce, sizeof nonce);
}

UpgradeRequest analyzeUpgrade(const http::RequestHead& head) {
    UpgradeRequest req;

    // One pass over the headers gathers everything the checks below need.
    int keys = 0;
    int versions = 0;
    bool version13 = false;
    bool upgrade_websocket = false;   // an Upgrade header holds "websocket"
    bool connection_upgrade = false;  // a Connection header holds "upgrade"
    for (const auto& h : head.headers) {
        switch (http::fieldName(h)) {
            case http::FieldName::Upgrade:
                upgrade_websocket = upgrade_websocket || http::valueHasToken(h.value, "websocket");
                break;
            case http::FieldName::Connection:
                connection_upgrade = connection_upgrade || http::valueHasToken(h.value, "upgrade");
                break;
            case http::FieldName::SecWebSocketKey:
                ++keys;
                req.key = trim(h.value);
                break;
            case http::FieldName::SecWebSocketVersion:
                ++versions;
                version13 = trim(h.value) == "13";
                break;
            case http::FieldName::Origin: req.origin = trim(h.value); break;
            case http::FieldName::SecWebSocketProtocol:
                http::forEachToken(h.value, [&](std::string_view t) { req.subprotocols.push_back(t); });
                break;
            case http::FieldName::SecWebSocketExtensions: {
                const std::string_view v = trim(h.value);
                if (v.empty()) break;
                if (!req.extensions.empty()) req.extensions.append(", ");
                req.extensions.append(v);
                break;
            }
            default: break;
        }
    }

    // RFC 9110 7.8: a server must ignore Upgrade in an HTTP/1.0 request.
    if (head.version_minor < 1) return req;
    // Another protocol (h2c, ...) or none: not ours; the caller proxies it as plain HTTP.
    if (!upgrade_websocket) return req;

    // Every return names `req` (no copy of it for a refusal, no move for the answer).
    auto refuse = [&req](int status, std::string_view why) {
        req.kind = UpgradeKind::Invalid;
        req.status = status;
        req.error = why;
    };
    // RFC 6455 4.2.1: the handshake is a GET with "Connection: Upgrade"; anything else that asks
    // for websocket is a malformed handshake, answered 400 (4.2.2 "such as 400 Bad Request").
    if (head.method != "GET") {
        refuse(400, "websocket upgrade with a method other than GET");
    } else if (!connection_upgrade) {
        refuse(400, "websocket upgrade without Connection: upgrade");
    } else if (keys == 0) {
        // RFC 6455 4.1 item 7 / 11.3.1: exactly one key, base64 of 16 bytes.
        refuse(400, "missing Sec-WebSocket-Key");
    } else if (keys > 1) {
        refuse(400, "repeated Sec-WebSocket-Key");
    } else if (!isValidKey(req.key)) {
        refuse(400, "invalid Sec-WebSocket-Key");
    } else if (versions != 1 || !version13) {
        // RFC 6455 4.2.2: an unsupported version gets 426 and "Sec-WebSocket-Version: 13".
        refuse(426, "unsupported Sec-WebSocket-Version");
    } else {
        req.kind = UpgradeKind::WebSocket;
    }
    return req;
}

namespace {

// What the client's checks of a 101 read from its fields, gathered in one pass.
struct UpgradeResponseFields {
    // RFC 6455 4.1 (the client's checks, item 2): the Upgrade field is "websocket" itself
    // (ASCII case-insensitive), not a list that holds it, and comes once (as the ws library checks).
    int upgrades = 0;
    bool upgrade_websocket = false;
    bool connection_upgrade = false;  // a Connection field holds "upgrade"
    int accepts = 0;                 // Sec-WebSocket-Accept fields
    const http::Header* accept = nullptr;
};

UpgradeResponseFields scanUpgradeResponse(const http::HeaderList& headers) {
    UpgradeResponseFields f;
    for (const auto& h : headers) {
        switch (http::fieldName(h)) {
            case http::FieldName::SecWebSocketAccept:
                ++f.accepts;
                f.accept = &h;
                break;
            case http::FieldName::Upgrade:
                ++f.upgrades;
                f.upgrade_websocket = http::equalsIgnoreCase(trim(h.value), "websocket");
                break;
            case http::FieldName::Connection:
                f.connection_upgrade = f.connection_upgrade || http::valueHasToken(h.value, "upgrade");
                break;
            default: break;
        }
    }
    return f;
}

// RFC 6455 11.3.3: the accept value must not appear more than once.
bool acceptMatches(const UpgradeResponseFields& f, std::string_view key) {
    if (f.accepts != 1) return false;
    AcceptText expected;
    return trim(f.accept->value) == acceptInto(key, expected);
}

}  // namespace

bool checkUpstreamAccept(const http::HeaderList& headers, std::string_view key) {
    return acceptMatches(scanUpgradeResponse(headers), key);
}

bool isValidUpgradeResponse(const http::ResponseHead& head, std::string_view key) {
    // RFC 6455 4.1, the client's checks of the server's handshake, items 1-4: one pass over the
    // fields, then the SHA-1 only for a response that passed the rest.
    if (head.status != 101) return false;
    const UpgradeResponseFields f = scanUpgradeResponse(head.headers);
    return f.upgrades == 1 && f.upgrade_websocket && f.connection_upgrade && acceptMatches(f, key);
}

std::string_view selectSubprotocol(const std::vector<std::string_view>& requested,
                                   const std::vector<std::string>& allowed) {
    for (std::string_view p : requested)
        if (std::find(allowed.begin(), allowed.end(), p) != allowed.end()) return p;
    return {};
}

std::string filterSubprotocols(const std::vector<std::string_view>& requested, const std::vector<std::string>& allowed) {
    std::string out;
    for (std::string_view p : requested) {
        if (std::find(allowed.begin(), allowed.end(), p) == allowed.end()) continue;
        if (!out.empty()) out.append(", ");
        out.append(p);
    }
    return out;
}

std::string buildAcceptResponse(std::string_view key, std::string_view subprotocol, std::string_view extensions) {
    std::string out;
    out.reserve(160 + subprotocol.size() + extensions.size());
    out.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    AcceptText accept;
    out.append(acceptInto(key, accept));
    out.append("\r\n");
    if (!subprotocol.empty()) out.append("Sec-WebSocket-Protocol: ").append(subprotocol).append("\r\n");
    if (!extensions.empty()) out.append("Sec-WebSocket-Extensions: ").append(extensions).append("\r\n");
    out.append("\r\n");
    return out;
}

}  // namespace portico::ws
