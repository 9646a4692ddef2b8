// SPDX-License-Identifier: Apache-2.0
// Fuzz target: publishes over HTTP to a `handler: pubsub` route, as ClientConnection handles
// them: the token checked at the head (publishAuthorized), the body bounded while it arrives
// (publishBodyFits), then servePubSubHttp on the in-process backplane and writePubSubAnswer;
// GET/HEAD and other methods too. Whatever the requests:
//  - every answer is one well-formed HTTP response whose status is the one reported, and a 200
//    carries valid JSON (UTF-8 included, RFC 8259 8.1);
//  - a publish that is answered 200 is kept under the seq it was given (when history keeps
//    anything), with its bytes, as text exactly when it is UTF-8 (unless its Idempotency-Key was
//    seen before: then it is the first publish's), and the frame a subscriber gets for it
//    decodes to the same message;
//  - a body beyond publishLimit() is refused before it is stored.
// The registry runs on a clock the input moves, so rate limits and expiry are reproducible.
//
// Input: byte 0: bit 0 the route has publish_token "s3cret", bit 1 rate limited (1/s, burst 2),
// bit 2 at most 2 channels, bit 3 max_body_bytes (limits) 100; byte 1: max_message_bytes =
// (n + 1) * 16; byte 2: history = n % 8; byte 3: body piece size (fuzz_support.h sliceSize).
// Then requests, each "METHOD SUFFIX\nAUTHORIZATION\nIDEMPOTENCY-KEY\nBODY" ended by 0x1e or the
// input's end; SUFFIX is appended to the route's path "/live/". Method "TICK" advances the clock
// by the body's length in seconds and runs expiry.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <event2/buffer.h>

#include "fuzz_support.h"
#include "message_reader.h"
#include "portico/core/handles.h"
#include "portico/handlers/pubsub.h"
#include "portico/http/http1_response_writer.h"
#include "portico/http/message_parser.h"
#include "portico/net/event_loop.h"
#include "portico/pubsub/local_backplane.h"
#include "portico/pubsub/pubsub_registry.h"
#include "portico/ws/codec.h"
#include "portico/ws/utf8_validator.h"

namespace {

using namespace portico;
using Clock = pubsub::PubSubRegistry::Clock;

// RFC 8259, enough for what Portico writes: values, objects, arrays, strings, numbers, literals.
class JsonCheck {
public:
    explicit JsonCheck(std::string_view text) : s_(text) {}
    bool valid() {
        if (!value(0)) return false;
        skipSpace();
        return at_ == s_.size();
    }

private:
    void skipSpace() {
        while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\n' || s_[at_] == '\r' || s_[at_] == '\t')) ++at_;
    }
    bool eat(char c) {
        skipSpace();
        if (at_ >= s_.size() || s_[at_] != c) return false;
        ++at_;
        return true;
    }
    bool value(int depth) {
        if (depth > 32) return false;
        skipSpace();
        if (at_ >= s_.size()) return false;
        const char c = s_[at_];
        if (c == '"') return string();
        if (c == '{') {
            ++at_;
            if (eat('}')) return true;
            do {
                skipSpace();
                if (!string() || !eat(':') || !value(depth + 1)) return false;
            } while (eat(','));
            return eat('}');
        }
        if (c == '[') {
            ++at_;
            if (eat(']')) return true;
            do {
                if (!value(depth + 1)) return false;
            } while (eat(','));
            return eat(']');
        }
        for (std::string_view literal : {"true", "false", "null"}) {
            if (s_.substr(at_, literal.size()) == literal) {
                at_ += literal.size();
                return true;
            }
        }
        const std::size_t start = at_;
        if (at_ < s_.size() && s_[at_] == '-') ++at_;
        while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
        return at_ > start && s_[at_ - 1] != '-';
    }
    bool string() {
        if (at_ >= s_.size() || s_[at_] != '"') return false;
        const std::size_t start = ++at_;
        while (at_ < s_.size() && s_[at_] != '"') {
            const auto u = static_cast<unsigned char>(s_[at_]);
            if (u < 0x20) return false;
            if (s_[at_] == '\\') {
                ++at_;
                if (at_ >= s_.size()) return false;
                if (s_[at_] == 'u') {
                    for (int i = 1; i <= 4; ++i)
                        if (at_ + i >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[at_ + i]))) return false;
                    at_ += 4;
                } else if (std::string_view("\"\\/bfnrt").find(s_[at_]) == std::string_view::npos) {
                    return false;
                }
            }
            ++at_;
        }
        if (at_ >= s_.size()) return false;
        const bool utf8 = ws::Utf8Validator::isValid(s_.substr(start, at_ - start));
        ++at_;
        return utf8;
    }

    std::string_view s_;
    std::size_t at_ = 0;
};

void checkResponse(evbuffer* out, int status, bool head) {
    std::string wire(evbuffer_get_length(out), '\0');
    evbuffer_remove(out, wire.data(), wire.size());
    fuzz::MessageReader reader(http::MessageParser::Kind::Response, head);
    std::size_t left = 0;
    FUZZ_CHECK(reader.read(wire, left) == http::ParseStatus::MessageComplete);
    FUZZ_CHECK(left == 0);  // exactly one response
    FUZZ_CHECK(reader.messages == 1);
    FUZZ_CHECK(reader.parser.response().status == status);
    if (status == 200 && !head) FUZZ_CHECK(JsonCheck(reader.body).valid());
}

// A subscriber's view of the frame encoded for `payload`.
class FrameReader final : public ws::CodecHandler {
public:
    void onMessage(bool is_text, std::string_view payload) override {
        ++messages;
        text = is_text;
        received.assign(payload);
    }
    int messages = 0;
    bool text = false;
    std::string received;
};

void checkDelivery(const pubsub::Message& message) {
    core::EvbufferPtr frame(evbuffer_new());
    FUZZ_CHECK(ws::Codec::encodeMessage(frame.get(), message.text, message.payload.data(), message.payload.size(), nullptr));
    ws::CodecOptions options;
    options.role = ws::Role::Client;
    options.max_message_bytes = message.payload.size() + 1;
    FrameReader reader;
    core::EvbufferPtr ignored(evbuffer_new());
    ws::Codec codec(options, reader, ignored.get());
    codec.feed(frame.get());
    FUZZ_CHECK(!codec.failed());
    FUZZ_CHECK(reader.messages == 1 && reader.text == message.text && reader.received == message.payload);
}

// The "seq" of a 200 answer's JSON (written by servePubSubHttp: digits after "seq":).
std::uint64_t seqOf(std::string_view json) {
    constexpr std::string_view kSeq = "\"seq\":";
    const std::size_t at = json.find(kSeq);
    FUZZ_CHECK(at != std::string_view::npos);
    std::uint64_t seq = 0;
    for (std::size_t i = at + kSeq.size(); i < json.size() && std::isdigit(static_cast<unsigned char>(json[i])); ++i)
        seq = seq * 10 + static_cast<std::uint64_t>(json[i] - '0');
    return seq;
}

// Path characters that reach the handler: llhttp (strict) and normalizePath let these through.
std::string pathSuffix(std::string_view raw) {
    std::string suffix;
    for (char c : raw)
        if (c > ' ' && c < 0x7f && c != '?' && c != '#') suffix.push_back(c);
    return suffix;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::FuzzInput input(data, size);
    const std::uint8_t flags = input.byte();
    config::Route route;
    route.path = "/live/";
    route.handler = config::HandlerKind::PubSub;
    if ((flags & 1) != 0) route.pubsub.publish_token = "s3cret";
    route.pubsub.publish_rate = (flags & 2) != 0 ? 1 : 0;
    route.pubsub.publish_burst = 2;
    config::PubSubLimits limits;
    limits.max_channels = (flags & 4) != 0 ? 2 : 100;
    limits.history_budget = 64 * 1024;
    const std::size_t max_body_bytes = (flags & 8) != 0 ? 100 : 0;
    route.pubsub.max_message_bytes = (std::size_t{input.byte()} + 1) * 16;
    route.pubsub.history = input.byte() % 8;
    route.pubsub.history_bytes = 16 * 1024;
    const std::uint8_t selector = input.byte();

    Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
    auto registry = std::make_shared<pubsub::PubSubRegistry>(limits, [&now] { return now; });
    net::EventLoop loop;
    handlers::PubSubHub hub(loop, std::make_unique<pubsub::LocalBackplane>(loop, registry));
    const std::size_t limit = handlers::publishLimit(route, max_body_bytes);
    FUZZ_CHECK(limit <= route.pubsub.max_message_bytes && limit <= route.pubsub.queue_bytes);
    std::set<std::pair<std::string, std::string>> keys_seen;  // (channel, Idempotency-Key)

    while (!input.empty()) {
        std::string_view request = input.takeUntil('\x1e');
        fuzz::FuzzInput fields(reinterpret_cast<const std::uint8_t*>(request.data()), request.size());
        const std::string_view method = fields.takeUntil(' ');
        const std::string path = route.path + pathSuffix(fields.takeUntil('\n'));
        const std::string_view authorization = fields.takeUntil('\n');
        const std::string_view idempotency_key = fields.takeUntil('\n');
        const std::string_view body_bytes = fields.rest();
        if (method == "TICK") {
            now += std::chrono::seconds(body_bytes.size());
            registry->expire();
            continue;
        }
        const bool post = method == "POST";
        if (post && !handlers::publishAuthorized(route, authorization)) continue;  // 401 at the head
        // The body arrives in pieces and is refused as soon as it is too big.
        std::string body;
        bool refused = false;
        const std::size_t slice = fuzz::sliceSize(selector, body_bytes.size());
        for (std::size_t at = 0; post && at < body_bytes.size() && !refused; at += slice) {
            const std::string_view piece = body_bytes.substr(at, slice);
            if (!handlers::publishBodyFits(hub, route, max_body_bytes, body.size() + piece.size())) {
                FUZZ_CHECK(body.size() + piece.size() > limit);
                refused = true;
            } else {
                body.append(piece);
            }
        }
        if (refused) continue;  // 413
        FUZZ_CHECK(body.size() <= limit || !post);
        const std::string published = body;
        handlers::PubSubAnswer answer;
        int answers = 0;
        handlers::servePubSubHttp(hub, route, {method, path, authorization, std::move(body), idempotency_key},
                                  [&](const handlers::PubSubAnswer& a) {
                                      answer = a;
                                      ++answers;
                                  });
        FUZZ_CHECK(answers == 1);  // the in-process backplane answers before returning
        core::EvbufferPtr out(evbuffer_new());
        http::Http1ResponseWriter writer(out.get());
        handlers::sendPubSubAnswer(writer, answer, method == "HEAD");
        const std::uint64_t bytes = writer.bytes();
        FUZZ_CHECK(bytes == evbuffer_get_length(out.get()));
        checkResponse(out.get(), answer.status, method == "HEAD");

        const std::string channel = handlers::channelName(route, path);
        if (answer.status == 200) FUZZ_CHECK(!channel.empty());
        if (!post || answer.status != 200) continue;
        const std::string key = handlers::channelKey(route, channel);
        const bool repeated = !idempotency_key.empty() && !keys_seen.emplace(key, std::string(idempotency_key)).second;
        // Without history a channel nobody subscribes to is gone again with its only message.
        if (route.pubsub.history == 0 || repeated) continue;
        const std::uint64_t seq = seqOf(answer.body);
        FUZZ_CHECK(seq >= 1);
        const pubsub::ChannelInfo info = registry->info(key);
        FUZZ_CHECK(info.seq == seq);
        FUZZ_CHECK(info.history >= 1 && info.history <= route.pubsub.history);
        FUZZ_CHECK(info.oldest >= 1 && info.oldest <= info.seq);
        const auto kept = registry->replay(key, seq - 1, std::numeric_limits<std::size_t>::max(), 4);
        FUZZ_CHECK(kept.messages.size() == 1);
        const pubsub::Message& message = *kept.messages.front();
        FUZZ_CHECK(message.seq == seq);
        FUZZ_CHECK(message.payload == published);
        FUZZ_CHECK(message.text == ws::Utf8Validator::isValid(published));
        checkDelivery(message);
    }
    return 0;
}
