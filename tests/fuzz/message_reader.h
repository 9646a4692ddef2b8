// SPDX-License-Identifier: Apache-2.0
#pragma once
// For the fuzz targets: reads bytes Portico wrote (a request head for an upstream, a response
// for a client) with MessageParser, as the peer would, so that a target can check that what
// Portico writes is one well-formed message whatever it was given.

#include <cstddef>
#include <string>
#include <string_view>

#include <event2/buffer.h>

#include "portico/core/handles.h"
#include "portico/http/message_parser.h"

namespace portico::fuzz {

class MessageReader final : public http::MessageParser::Handler {
public:
    // `skip_body`: the message has a head only (a head alone, or the answer to HEAD).
    MessageReader(http::MessageParser::Kind kind, bool skip_body)
        : parser(kind, this, 1 << 20), skip_body_(skip_body) {}

    // Parses all of `wire` (one parse() call, as the bytes would arrive together). Returns what
    // parse() said; `left` is how many bytes it did not consume.
    http::ParseStatus read(std::string_view wire, std::size_t& left) {
        core::EvbufferPtr buffer(evbuffer_new());
        evbuffer_add(buffer.get(), wire.data(), wire.size());
        const http::ParseStatus status = parser.parse(buffer.get());
        left = evbuffer_get_length(buffer.get());
        return status;
    }

    http::HeadAction onHead() override {
        ++heads;
        return skip_body_ ? http::HeadAction::SkipBody : http::HeadAction::Continue;
    }
    bool onBody(const char* data, std::size_t length) override {
        body.append(data, length);
        return true;
    }
    void onMessageComplete() override { ++messages; }

    http::MessageParser parser;
    int heads = 0;
    int messages = 0;
    std::string body;

private:
    bool skip_body_;
};

}  // namespace portico::fuzz
