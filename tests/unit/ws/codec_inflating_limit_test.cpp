// SPDX-License-Identifier: Apache-2.0
// The worker's bound on compressed messages half-received at once (CodecOptions::max_inflating,
// websocket.permessage_deflate.max_inflating_per_worker): each holds its decompressor until it
// ends, so one more left half-way fails its connection with 1013.

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <event2/buffer.h>

#include "portico/core/handles.h"
#include "portico/ws/codec.h"
#include "portico/ws/frame_header.h"
#include "portico/ws/permessage_deflate.h"

using namespace portico;
using namespace portico::ws;

namespace {

constexpr std::uint8_t kMask[4] = {1, 2, 3, 4};

struct Collect : CodecHandler {
    std::vector<std::string> messages;
    void onMessage(bool, std::string_view payload) override { messages.emplace_back(payload); }
};

// A server codec that agreed permessage-deflate without context takeover, with the bound.
struct Conn {
    explicit Conn(std::size_t max_inflating) {
        CodecOptions o;
        DeflateParams p;
        p.server_no_context_takeover = p.client_no_context_takeover = true;
        o.deflate = p;
        o.max_inflating = max_inflating;
        codec = std::make_unique<Codec>(o, handler, out.get());
    }
    CodecState send(Opcode op, bool fin, std::uint8_t rsv, std::string_view payload) {
        core::EvbufferPtr in(evbuffer_new());
        appendFrame(in.get(), op, fin, rsv, payload.data(), payload.size(), kMask);
        return codec->feed(in.get());
    }
    core::EvbufferPtr out{evbuffer_new()};
    Collect handler;
    std::unique_ptr<Codec> codec;
};

std::string compressed(const std::string& message) {
    Deflater d(15, true);
    ByteBuffer z;
    REQUIRE(d.compress(reinterpret_cast<const std::uint8_t*>(message.data()), message.size(), z));
    return std::string(reinterpret_cast<const char*>(z.data()), z.size());
}

}  // namespace

TEST_CASE("codec fails with 1013 a compressed message left half-way beyond the worker's bound",
          "[ws][codec][deflate][limits]") {
    std::string message;
    for (int i = 0; message.size() < 8000; ++i) message += "event " + std::to_string(i) + " happened; ";
    const std::string z = compressed(message);
    const std::string first = z.substr(0, z.size() / 2), rest = z.substr(z.size() / 2);
    const std::size_t base = Inflater::inflatingNow();
    const std::size_t bound = base + 2;
    {
        Conn a(bound), b(bound), c(bound), d(bound);
        CHECK(a.send(Opcode::Text, false, kRsv1, first) == CodecState::Open);
        CHECK(b.send(Opcode::Text, false, kRsv1, first) == CodecState::Open);
        CHECK(Inflater::inflatingNow() == base + 2);
        // A whole message at the bound: taken and given back in the same read.
        CHECK(c.send(Opcode::Text, true, kRsv1, z) == CodecState::Open);
        REQUIRE(c.handler.messages.size() == 1);
        CHECK(c.handler.messages[0] == message);
        // One more left half-way: failed, its decompressor given back at once.
        CHECK(c.send(Opcode::Text, false, kRsv1, first) == CodecState::Closed);
        CHECK(c.codec->closeCodeSent() == 1013);
        CHECK(Inflater::inflatingNow() == base + 2);
        // The others go on; once one ended, another may start.
        CHECK(a.send(Opcode::Continuation, true, 0, rest) == CodecState::Open);
        REQUIRE(a.handler.messages.size() == 1);
        CHECK(a.handler.messages[0] == message);
        CHECK(Inflater::inflatingNow() == base + 1);
        CHECK(d.send(Opcode::Text, false, kRsv1, first) == CodecState::Open);
        CHECK(Inflater::inflatingNow() == base + 2);
        // No bound (0): not refused.
        Conn e(0);
        CHECK(e.send(Opcode::Text, false, kRsv1, first) == CodecState::Open);
        CHECK(Inflater::inflatingNow() == base + 3);
    }
    // Connections gone with messages half-way: nothing stays counted.
    CHECK(Inflater::inflatingNow() == base);
}

// The count is the worker's, across routes with different bounds (or none), and across a reload
// that changes the bound: a message already under way on a connection with a small bound goes
// on when connections with a larger bound push the count past it. Only a message that starts
// over its own connection's bound is refused. Before, the small-bound connection's next partial
// read failed it with 1013.
TEST_CASE("codec: messages under way are not failed by other routes' messages past their bound",
          "[ws][codec][deflate][limits]") {
    std::string message;
    for (int i = 0; message.size() < 8000; ++i) message += "event " + std::to_string(i) + " happened; ";
    const std::string z = compressed(message);
    const std::string first = z.substr(0, z.size() / 3), second = z.substr(z.size() / 3, z.size() / 3),
                      rest = z.substr(2 * (z.size() / 3));
    const std::size_t base = Inflater::inflatingNow();
    {
        Conn small(base + 2), other_small(base + 2), a(0), b(0), c(0);
        CHECK(small.send(Opcode::Text, false, kRsv1, first) == CodecState::Open);
        CHECK(a.send(Opcode::Text, false, kRsv1, first) == CodecState::Open);
        CHECK(b.send(Opcode::Text, false, kRsv1, first) == CodecState::Open);
        CHECK(c.send(Opcode::Text, false, kRsv1, first) == CodecState::Open);
        CHECK(Inflater::inflatingNow() == base + 4);
        // The small-bound connection's message goes on, and ends whole.
        CHECK(small.send(Opcode::Continuation, false, 0, second) == CodecState::Open);
        CHECK(small.send(Opcode::Continuation, true, 0, rest) == CodecState::Open);
        REQUIRE(small.handler.messages.size() == 1);
        CHECK(small.handler.messages[0] == message);
        // A new message on a small-bound connection now starts past its bound: refused.
        CHECK(other_small.send(Opcode::Text, false, kRsv1, first) == CodecState::Closed);
        CHECK(other_small.codec->closeCodeSent() == 1013);
    }
    CHECK(Inflater::inflatingNow() == base);
}
