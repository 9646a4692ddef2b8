// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the full WebSocket codec of the built-in endpoints, with permessage-deflate, as
// the echo endpoint uses it: the peer's bytes are fed in pieces, every message is echoed back (a
// Ping with it), and then everything our codec wrote is decoded by a second Codec playing the
// peer. Whatever the peer sent:
//  - a delivered message fits max_message_bytes and a text message is valid UTF-8;
//  - our output is valid WebSocket: the peer's codec never fails on it, reads back exactly the
//    messages we echoed (through our compressor and its decompressor) and our Close code;
//  - after a Close or a failure nothing more is delivered or written.
//
// Input: byte 0: bit 0 permessage-deflate, bit 1 server_no_context_takeover, bit 2
// client_no_context_takeover, bit 3 we are the client (the peer's frames are unmasked), bit 4
// compress even 1-byte messages; byte 1: the window bits (low nibble client_, high nibble
// server_max_window_bits, 8 + n % 8); byte 2: piece size (fuzz_support.h sliceSize); byte 3:
// max_message_bytes = (n + 1) * 256. The rest is the peer's stream.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <event2/buffer.h>

#include "fuzz_support.h"
#include "portico/core/handles.h"
#include "portico/ws/close_code.h"
#include "portico/ws/codec.h"
#include "portico/ws/utf8_validator.h"

namespace {

using namespace portico::ws;

struct Message {
    bool text = false;
    std::string payload;
    bool operator==(const Message&) const = default;
};

// Our side: the echo endpoint.
class Echo final : public CodecHandler {
public:
    explicit Echo(std::size_t max_message) : max_message_(max_message) {}

    void onMessage(bool is_text, std::string_view payload) override {
        FUZZ_CHECK(codec != nullptr && codec->state() == CodecState::Open);
        FUZZ_CHECK(payload.size() <= max_message_);
        if (is_text) FUZZ_CHECK(Utf8Validator::isValid(payload));
        const bool sent = is_text ? codec->sendText(payload) : codec->sendBinary(payload);
        FUZZ_CHECK(sent);
        echoed.push_back({is_text, std::string(payload)});
        FUZZ_CHECK(codec->sendPing(payload.substr(0, kMaxControlPayload)));
    }
    void onClose(std::uint16_t code, std::string_view reason) override {
        FUZZ_CHECK(!closed);
        closed = true;
        FUZZ_CHECK(code == close_code::kNoStatus || isValidCloseCodeOnWire(code));
        FUZZ_CHECK(Utf8Validator::isValid(reason));
        FUZZ_CHECK(codec->state() == CodecState::Closed);
    }

    Codec* codec = nullptr;
    std::vector<Message> echoed;
    bool closed = false;

private:
    std::size_t max_message_;
};

// The peer reading what we wrote.
class Peer final : public CodecHandler {
public:
    void onMessage(bool is_text, std::string_view payload) override { received.push_back({is_text, std::string(payload)}); }
    void onClose(std::uint16_t code, std::string_view) override { close_code_seen = code; }

    std::vector<Message> received;
    std::uint16_t close_code_seen = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    portico::fuzz::FuzzInput input(data, size);
    const std::uint8_t flags = input.byte();
    const std::uint8_t bits = input.byte();
    const std::uint8_t selector = input.byte();
    const std::size_t max_message = (std::size_t{input.byte()} + 1) * 256;
    const std::string_view stream = input.rest();
    const std::size_t slice = portico::fuzz::sliceSize(selector, stream.size());

    CodecOptions ours;
    ours.role = (flags & 8) != 0 ? Role::Client : Role::Server;
    ours.max_message_bytes = max_message;
    ours.deflate_min_bytes = (flags & 16) != 0 ? 1 : 64;
    if ((flags & 1) != 0) {
        DeflateParams params;
        params.server_no_context_takeover = (flags & 2) != 0;
        params.client_no_context_takeover = (flags & 4) != 0;
        params.client_max_window_bits = static_cast<std::uint8_t>(8 + (bits & 0x0F) % 8);
        params.server_max_window_bits = static_cast<std::uint8_t>(8 + (bits >> 4) % 8);
        ours.deflate = params;
    }

    portico::core::EvbufferPtr in(evbuffer_new());
    portico::core::EvbufferPtr out(evbuffer_new());
    Echo echo(max_message);
    Codec codec(ours, echo, out.get());
    echo.codec = &codec;
    for (std::size_t at = 0; at < stream.size() && codec.state() != CodecState::Closed; at += slice) {
        evbuffer_add(in.get(), stream.data() + at, std::min(slice, stream.size() - at));
        const std::size_t before_out = evbuffer_get_length(out.get());
        const CodecState state = codec.feed(in.get());
        FUZZ_CHECK(state == codec.state());
        if (state == CodecState::Closed) {
            FUZZ_CHECK(evbuffer_get_length(in.get()) == 0);  // nothing is read after the end
            const std::size_t after_out = evbuffer_get_length(out.get());
            // Drained input stays drained; no output is added once Closed.
            FUZZ_CHECK(codec.feed(in.get()) == CodecState::Closed);
            FUZZ_CHECK(evbuffer_get_length(out.get()) == after_out);
        } else {
            FUZZ_CHECK(evbuffer_get_length(out.get()) >= before_out);
        }
    }
    if (codec.failed()) {
        const std::uint16_t code = codec.closeCodeSent();
        FUZZ_CHECK(code == close_code::kProtocolError || code == close_code::kInvalidPayload ||
                   code == close_code::kMessageTooBig);
        FUZZ_CHECK(!echo.closed);
    }
    if (codec.state() == CodecState::Open) FUZZ_CHECK(codec.sendClose(close_code::kNormal, "bye"));
    FUZZ_CHECK(!codec.sendText("late") && !codec.sendBinary("late"));  // nothing after our Close

    // The peer reads everything we wrote: it must all be valid.
    CodecOptions theirs;
    theirs.role = ours.role == Role::Server ? Role::Client : Role::Server;
    // Under permessage-deflate the checker bounds the compressed size, which for data that
    // does not compress is a little above the message's.
    theirs.max_message_bytes = 2 * max_message + 1024;
    theirs.deflate = ours.deflate;
    Peer peer;
    portico::core::EvbufferPtr peer_out(evbuffer_new());
    Codec reader(theirs, peer, peer_out.get());
    reader.feed(out.get());
    FUZZ_CHECK(!reader.failed());
    FUZZ_CHECK(reader.state() == CodecState::Closed);  // our Close arrived
    FUZZ_CHECK(evbuffer_get_length(out.get()) == 0);
    FUZZ_CHECK(peer.received == echo.echoed);
    const std::uint16_t sent = codec.closeCodeSent();
    FUZZ_CHECK(peer.close_code_seen == (sent == 0 ? close_code::kNoStatus : sent));
    return 0;
}
