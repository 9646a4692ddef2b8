// SPDX-License-Identifier: Apache-2.0
// Fuzz target: bytes from an upstream, through what HttpExchange does with them. MessageParser in
// response mode (interim 1xx responses, then the final one; a HEAD request skips the body;
// finish() completes a body delimited by close), the WebSocket 101 check, and the head Portico
// writes to the client, which is parsed again: whatever the upstream sent, the client must read
// one response with the same status and the framing we chose.
//
// Input: byte 0 cuts the stream into pieces (fuzz_support.h sliceSize); byte 1 describes the
// request being answered: bit 0 it was HEAD, bit 1 the client speaks HTTP/1.0, bit 2 it was a
// WebSocket handshake with the key of RFC 6455 1.3. The rest is the upstream's stream.

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
#include "portico/ws/handshake.h"

namespace {

using portico::http::BodyFraming;
using portico::http::HeadAction;
using portico::http::MessageParser;
using portico::http::ParseError;
using portico::http::ParseStatus;

constexpr std::size_t kMaxHeadBytes = 1024;
constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";

struct Request {
    bool head = false;
    bool http10 = false;
    bool websocket = false;
};

void checkClientHead(const portico::http::ResponseHead& response, const portico::http::ClientResponseInfo& info) {
    std::string head;
    portico::http::appendClientResponseHead(head, response, info);
    portico::fuzz::MessageReader client(MessageParser::Kind::Response, true);
    std::size_t left = 0;
    const ParseStatus status = client.read(head, left);
    FUZZ_CHECK(status == ParseStatus::MessageComplete || status == ParseStatus::Upgrade);
    FUZZ_CHECK(client.heads == 1);
    FUZZ_CHECK(left == 0);
    FUZZ_CHECK(client.parser.response().status == response.status);
    FUZZ_CHECK(client.parser.chunked() == (info.framing == BodyFraming::Chunked));
    FUZZ_CHECK(client.parser.hasContentLength() == (info.framing == BodyFraming::ContentLength));
    if (info.framing == BodyFraming::ContentLength) FUZZ_CHECK(client.parser.contentLength() == info.content_length);
}

class Upstream final : public MessageParser::Handler {
public:
    explicit Upstream(Request request) : parser(MessageParser::Kind::Response, this, kMaxHeadBytes), request_(request) {}

    HeadAction onHead() override {
        const auto& response = parser.response();
        FUZZ_CHECK(response.status >= 100 && response.status <= 999);  // three digits (RFC 9112 4)
        FUZZ_CHECK(!(parser.chunked() && parser.hasContentLength()));
        FUZZ_CHECK(!(response.version_minor < 1 && parser.chunked()));  // RFC 9112 6.1
        FUZZ_CHECK(!final_seen_);
        body_bytes_ = 0;
        const int status = response.status;
        portico::http::ClientResponseInfo info;
        if (status >= 100 && status < 200 && status != 101) {
            checkClientHead(response, info);  // interim: relayed as is
            return HeadAction::Continue;
        }
        final_seen_ = true;
        if (status == 101) {
            if (!request_.websocket || !portico::ws::isValidUpgradeResponse(response, kKey)) return HeadAction::Abort;
            info.upgrade = true;
            checkClientHead(response, info);
            return HeadAction::Continue;
        }
        // HttpExchange::onHead's choice of framing towards the client.
        info.client_version_minor = request_.http10 ? 0 : 1;
        const bool no_body = request_.head || status == 204 || status == 304;
        if (no_body) {
            if (status != 204 && parser.hasContentLength()) {
                info.framing = BodyFraming::ContentLength;
                info.content_length = parser.contentLength();
            }
        } else if (parser.hasContentLength()) {
            info.framing = BodyFraming::ContentLength;
            info.content_length = parser.contentLength();
        } else {
            info.framing = request_.http10 ? BodyFraming::UntilClose : BodyFraming::Chunked;
        }
        info.keep_alive = info.framing != BodyFraming::UntilClose && !request_.websocket;
        checkClientHead(response, info);
        return request_.head ? HeadAction::SkipBody : HeadAction::Continue;
    }
    bool onBody(const char* data, std::size_t length) override {
        FUZZ_CHECK(data != nullptr && length > 0);
        FUZZ_CHECK(!request_.head);
        const int status = parser.response().status;
        FUZZ_CHECK(status != 204 && status != 304 && (status < 100 || status >= 200));
        body_bytes_ += length;
        if (parser.hasContentLength()) FUZZ_CHECK(body_bytes_ <= parser.contentLength());
        return true;
    }
    void onMessageComplete() override {
        const int status = parser.response().status;
        if (parser.hasContentLength() && !request_.head && status != 204 && status != 304 && status >= 200)
            FUZZ_CHECK(body_bytes_ == parser.contentLength());
    }

    MessageParser parser;

private:
    Request request_;
    std::uint64_t body_bytes_ = 0;
    bool final_seen_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    portico::fuzz::FuzzInput input(data, size);
    const std::uint8_t selector = input.byte();
    const std::uint8_t flags = input.byte();
    const Request request{(flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0};
    const std::string_view stream = input.rest();
    const std::size_t slice = portico::fuzz::sliceSize(selector, stream.size());

    Upstream upstream(request);
    portico::core::EvbufferPtr buffer(evbuffer_new());
    std::size_t offset = 0;
    bool complete = false;  // the final response (or a 101) was parsed: HttpExchange stops here
    bool failed = false;
    while (!complete && !failed) {
        if (offset < stream.size()) {
            const std::size_t n = std::min(slice, stream.size() - offset);
            evbuffer_add(buffer.get(), stream.data() + offset, n);
            offset += n;
        }
        for (;;) {
            const ParseStatus status = upstream.parser.parse(buffer.get());
            if (status == ParseStatus::NeedMore) {
                FUZZ_CHECK(evbuffer_get_length(buffer.get()) == 0);
                break;
            }
            if (status == ParseStatus::Error) {
                FUZZ_CHECK(upstream.parser.error() != ParseError::None);
                FUZZ_CHECK(upstream.parser.parse(buffer.get()) == ParseStatus::Error);
                failed = true;
                break;
            }
            if (status == ParseStatus::Upgrade) {
                FUZZ_CHECK(upstream.parser.response().status == 101);
                complete = true;
                break;
            }
            const int code = upstream.parser.response().status;
            if (code >= 100 && code < 200) {  // interim: the final response follows
                upstream.parser.resume();
                continue;
            }
            complete = true;
            break;
        }
        if (offset >= stream.size()) break;
    }
    if (!complete && !failed) {
        // The upstream closed: a body delimited by close ends here, anything else was cut short.
        const ParseStatus end = upstream.parser.finish();
        FUZZ_CHECK(end == ParseStatus::NeedMore || end == ParseStatus::MessageComplete || end == ParseStatus::Error);
        if (end == ParseStatus::MessageComplete)
            FUZZ_CHECK(!upstream.parser.chunked() && !upstream.parser.hasContentLength());
    }
    return 0;
}
