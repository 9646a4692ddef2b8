// SPDX-License-Identifier: Apache-2.0
// Fuzz target: bytes from a client, through what ClientConnection does with them. MessageParser
// in request mode (parse(), resume() after each message, finish() at the end), the request head
// checks (checkRequestHead, analyzeUpgrade, the permessage-deflate offer), and the head Portico
// writes upstream, which is parsed again: whatever the client sent, what we forward must be one
// unambiguous request with the method, target, Host and framing we decided on.
//
// Input: byte 0 cuts the rest into pieces (fuzz_support.h sliceSize), the rest is the stream.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <event2/buffer.h>

#include "fuzz_support.h"
#include "message_reader.h"
#include "portico/core/handles.h"
#include "portico/http/header_rewrite.h"
#include "portico/http/message_parser.h"
#include "portico/http/request_checks.h"
#include "portico/ws/handshake.h"
#include "portico/ws/permessage_deflate.h"

namespace {

using portico::http::HeadAction;
using portico::http::MessageParser;
using portico::http::ParseError;
using portico::http::ParseStatus;

constexpr std::size_t kMaxHeadBytes = 1024;  // small, so that 431 is reached often
constexpr std::size_t kMaxBodyBytes = 4096;  // onBody refuses beyond it, like a 413

std::size_t countHeaders(const portico::http::HeaderList& headers, std::string_view name) {
    std::size_t n = 0;
    for (const auto& h : headers) n += portico::http::equalsIgnoreCase(h.name, name);
    return n;
}

// What the upstream would read from the head we write for `request` (already checked).
void checkUpstreamHead(const portico::http::RequestHead& request, const MessageParser& client) {
    portico::http::UpstreamRequestInfo info;
    info.target = request.target;
    info.client_ip = "192.0.2.1";
    if (client.chunked()) {
        info.framing = portico::http::BodyFraming::Chunked;
    } else if (client.hasContentLength() && client.contentLength() > 0) {
        info.framing = portico::http::BodyFraming::ContentLength;
        info.content_length = client.contentLength();
    }
    std::string head;
    portico::http::appendUpstreamRequestHead(head, request, info);

    // One complete head, nothing left over (no second request), no error.
    portico::fuzz::MessageReader upstream(MessageParser::Kind::Request, true);
    std::size_t left = 0;
    const ParseStatus status = upstream.read(head, left);
    FUZZ_CHECK(status == ParseStatus::MessageComplete || status == ParseStatus::Upgrade);
    FUZZ_CHECK(upstream.heads == 1);
    FUZZ_CHECK(left == 0);
    const auto& seen = upstream.parser.request();
    FUZZ_CHECK(seen.method == request.method);
    FUZZ_CHECK(seen.target == request.target);
    FUZZ_CHECK(countHeaders(seen.headers, "Host") == 1);
    FUZZ_CHECK(portico::http::findHeader(seen.headers, "Host")->value ==
               portico::http::findHeader(request.headers, "Host")->value);
    FUZZ_CHECK(upstream.parser.chunked() == (info.framing == portico::http::BodyFraming::Chunked));
    FUZZ_CHECK(upstream.parser.hasContentLength() == (info.framing == portico::http::BodyFraming::ContentLength));
    if (upstream.parser.hasContentLength()) FUZZ_CHECK(upstream.parser.contentLength() == info.content_length);
}

class Client final : public MessageParser::Handler {
public:
    Client() : parser(MessageParser::Kind::Request, this, kMaxHeadBytes) {}

    HeadAction onHead() override {
        auto& request = parser.request();
        FUZZ_CHECK(!request.method.empty());
        FUZZ_CHECK(parser.headBytes() <= kMaxHeadBytes);
        for (const auto& h : request.headers) FUZZ_CHECK(!h.name.empty());
        FUZZ_CHECK(!(parser.chunked() && parser.hasContentLength()));  // RFC 9112 6.1: never both
        // RFC 9112 6.1: Transfer-Encoding in a message older than HTTP/1.1 is refused.
        const bool before_1_1 = request.version_major < 1 || (request.version_major == 1 && request.version_minor < 1);
        FUZZ_CHECK(!(before_1_1 && countHeaders(request.headers, "Transfer-Encoding") > 0));
        (void)parser.keepAlive();
        body_bytes = 0;

        // ClientConnection::onHead: HTTP/1.0 without Host gets the local address.
        const auto verdict =
            portico::http::checkRequestHead(request, request.version_minor == 0 ? "127.0.0.1:8080" : "");
        if (!verdict.ok()) {
            FUZZ_CHECK(verdict.status >= 400 && verdict.status < 600);
            return HeadAction::Abort;
        }
        FUZZ_CHECK(request.version_major == 1);
        FUZZ_CHECK(countHeaders(request.headers, "Host") == 1);
        FUZZ_CHECK(portico::http::isValidHost(portico::http::findHeader(request.headers, "Host")->value));
        const std::string_view path = request.path();
        if (request.target != "*") {
            FUZZ_CHECK(!path.empty() && path.front() == '/');
            // Normalized: no empty, "." or ".." segment is left for a later hop to resolve.
            FUZZ_CHECK(path.find("//") == std::string_view::npos);
            FUZZ_CHECK(path.find("/./") == std::string_view::npos && path.find("/../") == std::string_view::npos);
            FUZZ_CHECK(!path.ends_with("/.") && !path.ends_with("/.."));
            std::string again;
            FUZZ_CHECK(portico::http::normalizePath(path, again) == portico::http::PathVerdict::Ok);
            FUZZ_CHECK(again == path);  // normalizing is idempotent
        }

        const auto upgrade = portico::ws::analyzeUpgrade(request);
        if (upgrade.kind == portico::ws::UpgradeKind::WebSocket) {
            FUZZ_CHECK(portico::ws::isValidKey(upgrade.key));
            portico::ws::DeflateConfig config;
            if (auto agreed = portico::ws::negotiateDeflate(upgrade.extensions, config)) {
                // What we answer must be what a client reads back as the same agreement.
                auto parsed = portico::ws::parseDeflateResponse(agreed->response);
                FUZZ_CHECK(parsed.has_value());
                FUZZ_CHECK(parsed->server_max_window_bits == agreed->params.server_max_window_bits);
                FUZZ_CHECK(parsed->client_max_window_bits == agreed->params.client_max_window_bits);
                FUZZ_CHECK(parsed->server_no_context_takeover == agreed->params.server_no_context_takeover);
                FUZZ_CHECK(parsed->client_no_context_takeover == agreed->params.client_no_context_takeover);
            }
            const std::string accept = portico::ws::buildAcceptResponse(upgrade.key, "", "");
            FUZZ_CHECK(accept.ends_with("\r\n\r\n"));
        } else if (upgrade.kind == portico::ws::UpgradeKind::Invalid) {
            FUZZ_CHECK(upgrade.status == 400 || upgrade.status == 426);
        }

        checkUpstreamHead(request, parser);
        // As ClientConnection: the body of every request is read by its framing, HEAD included
        // (RFC 9110 9.3.2 gives it no meaning, but skipping it would parse it as a request).
        return HeadAction::Continue;
    }
    bool onBody(const char* data, std::size_t length) override {
        FUZZ_CHECK(data != nullptr && length > 0);
        body_bytes += length;
        if (parser.hasContentLength()) FUZZ_CHECK(body_bytes <= parser.contentLength());
        return body_bytes <= kMaxBodyBytes;
    }
    void onMessageComplete() override {
        if (parser.hasContentLength() && !parser.chunked()) FUZZ_CHECK(body_bytes == parser.contentLength());
    }

    MessageParser parser;
    std::size_t body_bytes = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    portico::fuzz::FuzzInput input(data, size);
    const std::uint8_t selector = input.byte();
    const std::string_view stream = input.rest();
    const std::size_t slice = portico::fuzz::sliceSize(selector, stream.size());

    Client client;
    portico::core::EvbufferPtr buffer(evbuffer_new());
    std::size_t offset = 0;
    bool done = false;
    while (!done) {
        if (offset < stream.size()) {
            const std::size_t n = std::min(slice, stream.size() - offset);
            evbuffer_add(buffer.get(), stream.data() + offset, n);
            offset += n;
        }
        for (;;) {
            const std::size_t before = evbuffer_get_length(buffer.get());
            const ParseStatus status = client.parser.parse(buffer.get());
            FUZZ_CHECK(evbuffer_get_length(buffer.get()) <= before);
            if (status == ParseStatus::MessageComplete) {
                FUZZ_CHECK(!client.parser.inMessage());
                client.parser.resume();
                continue;
            }
            if (status == ParseStatus::NeedMore) {
                FUZZ_CHECK(evbuffer_get_length(buffer.get()) == 0);  // NeedMore consumed everything
                FUZZ_CHECK(client.parser.error() == ParseError::None);
                break;
            }
            if (status == ParseStatus::Upgrade) {
                // ClientConnection declines upgrades it has no endpoint for and goes on as HTTP.
                FUZZ_CHECK(client.parser.isUpgradeRequested());
                client.parser.resume();
                continue;
            }
            FUZZ_CHECK(status == ParseStatus::Error);
            FUZZ_CHECK(client.parser.error() != ParseError::None);
            FUZZ_CHECK(client.parser.errorReason() != nullptr);
            FUZZ_CHECK(client.parser.parse(buffer.get()) == ParseStatus::Error);  // errors are final
            done = true;
            break;
        }
        if (offset >= stream.size()) done = true;
    }
    if (client.parser.error() == ParseError::None) {
        // A request is never delimited by close (RFC 9112 6.3): EOF cannot complete one.
        FUZZ_CHECK(client.parser.finish() != ParseStatus::MessageComplete);
    }
    return 0;
}
