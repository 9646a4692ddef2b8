// SPDX-License-Identifier: Apache-2.0
#pragma once
// The WebSocket opening handshake (RFC 6455 4): recognizing an upgrade request, the accept key,
// checking an upstream's 101, choosing a subprotocol, and the 101 response of built-in endpoints.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "portico/http/head.h"

namespace portico::ws {

// Sec-WebSocket-Accept for `key` (RFC 6455 4.2.2): base64(SHA-1(key + the RFC's GUID)).
// computeAccept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
std::string computeAccept(std::string_view key);

// True when `key` is the base64 encoding of exactly 16 bytes (24 characters ending in "==";
// RFC 6455 4.1 item 7). Surrounding spaces/tabs are not accepted: pass the trimmed value.
bool isValidKey(std::string_view key);

// A fresh random Sec-WebSocket-Key (base64 of 16 random bytes), for Portico acting as a client.
std::string generateKey();

enum class UpgradeKind : std::uint8_t {
    None,       // not a WebSocket upgrade: serve as plain HTTP and drop any Upgrade (h2c, ...)
    WebSocket,  // a valid WebSocket opening handshake
    Invalid,    // a WebSocket upgrade attempt that must be refused with UpgradeRequest::status
};

struct UpgradeRequest {
    UpgradeKind kind = UpgradeKind::None;
    // For Invalid: 400 (not GET, no "Connection: upgrade", missing/repeated/bad key) or 426 (the
    // version is not 13; the response must carry "Sec-WebSocket-Version: 13").
    int status = 0;
    std::string_view error;  // static text saying why, for logs; empty when not Invalid
    // The fields below are views into the analyzed RequestHead: valid while it is.
    std::string_view key;                     // Sec-WebSocket-Key, trimmed
    std::string_view origin;                  // Origin, empty when absent
    std::vector<std::string_view> subprotocols;  // Sec-WebSocket-Protocol tokens, client order
    std::string extensions;  // every Sec-WebSocket-Extensions value, joined with ", "
};

// Classifies `head` (RFC 6455 4.2.1):
//  - None: HTTP/1.0 (RFC 9110 7.8: Upgrade in a 1.0 request is ignored), or no "websocket" token
//    in Upgrade (absent, or another protocol such as h2c).
//  - Invalid 400: Upgrade names websocket but the method is not GET, Connection lacks the
//    "upgrade" token, or Sec-WebSocket-Key is missing, repeated or not base64 of 16 bytes.
//  - Invalid 426: Sec-WebSocket-Version missing or not exactly 13 (checked after the key).
//  - WebSocket otherwise. Tokens are matched case-insensitively inside comma lists.
// The optional fields (origin, subprotocols, extensions) are gathered in every case.
UpgradeRequest analyzeUpgrade(const http::RequestHead& head);

// True when `headers` (an upstream's 101 response) hold exactly one Sec-WebSocket-Accept equal to
// computeAccept(key). A mismatch means the upstream is not speaking WebSocket to us: 502.
bool checkUpstreamAccept(const http::HeaderList& headers, std::string_view key);

// The full RFC 6455 4.1 client-side check of an upstream's answer: status 101, Upgrade holding
// "websocket", Connection holding "upgrade", and checkUpstreamAccept().
bool isValidUpgradeResponse(const http::ResponseHead& head, std::string_view key);

// The subprotocol to answer with: the first of `requested` (client preference order) that is in
// `allowed` (exact, case-sensitive match as RFC 6455 4.1 compares them). Empty when none.
std::string_view selectSubprotocol(const std::vector<std::string_view>& requested,
                                   const std::vector<std::string>& allowed);

// The Sec-WebSocket-Protocol value to forward upstream when a route restricts subprotocols: the
// requested ones that are in `allowed`, in client order, joined with ", ". Empty when none.
std::string filterSubprotocols(const std::vector<std::string_view>& requested, const std::vector<std::string>& allowed);

// The complete "101 Switching Protocols" response head (ending with the blank line) for a built-in
// endpoint that accepts `key`. `subprotocol` and `extensions` (a Sec-WebSocket-Extensions value,
// e.g. from negotiateDeflate()) are added when non-empty.
std::string buildAcceptResponse(std::string_view key, std::string_view subprotocol, std::string_view extensions);

}  // namespace portico::ws
