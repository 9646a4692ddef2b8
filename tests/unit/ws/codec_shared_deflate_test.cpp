// SPDX-License-Identifier: Apache-2.0
// Fan-out frames compressed once for many receivers (Codec::encodeShared with a SharedDeflate):
// which connections may take them, what goes compressed, and that it inflates to the message.

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include <event2/buffer.h>

#include "portico/core/handles.h"
#include "portico/ws/codec.h"
#include "portico/ws/frame_header.h"
#include "portico/ws/permessage_deflate.h"

using namespace portico;
using namespace portico::ws;

namespace {

struct NoHandler : CodecHandler {
    void onMessage(bool, std::string_view) override {}
};

struct Decoded {
    FrameHeader header;
    std::string payload;  // inflated when RSV1 is set
};

Decoded decode(const core::SharedBytesRef& frame, int window_bits = 15) {
    REQUIRE(frame);
    Decoded d;
    const int h = parseFrameHeader(frame->data(), frame->size(), d.header);
    REQUIRE(h > 0);
    REQUIRE(d.header.fin);
    REQUIRE(static_cast<std::size_t>(h) + d.header.payload_length == frame->size());
    const auto* p = frame->data() + h;
    if (d.header.rsv == 0) {
        d.payload.assign(reinterpret_cast<const char*>(p), d.header.payload_length);
        return d;
    }
    Inflater inflater(window_bits, true);
    ByteBuffer out;
    REQUIRE(inflater.inflate(p, d.header.payload_length, out, 1 << 20) == Inflater::Status::Ok);
    REQUIRE(inflater.finish(out, 1 << 20) == Inflater::Status::Ok);
    d.payload.assign(reinterpret_cast<const char*>(out.data()), out.size());
    return d;
}

std::string compressible(std::size_t n) {
    std::string s;
    while (s.size() < n) s += "price update for symbol ABC: 101.25; ";
    s.resize(n);
    return s;
}

}  // namespace

TEST_CASE("codec offers shared compressed frames only to server connections without server context takeover",
          "[ws][codec][deflate]") {
    NoHandler handler;
    core::EvbufferPtr out(evbuffer_new());
    CodecOptions o;
    SECTION("no deflate") {
        Codec codec(o, handler, out.get());
        CHECK(codec.sharedDeflate() == nullptr);
    }
    SECTION("deflate without server context takeover: its window, level and memory, a floor of 256 bytes") {
        DeflateParams p;
        p.server_no_context_takeover = true;
        p.server_max_window_bits = 10;
        o.deflate = p;
        o.deflate_level = 3;
        o.deflate_mem_level = 7;
        o.deflate_min_bytes = 64;
        Codec codec(o, handler, out.get());
        const SharedDeflate* d = codec.sharedDeflate();
        REQUIRE(d != nullptr);
        CHECK(d->window_bits == 10);
        CHECK(d->level == 3);
        CHECK(d->mem_level == 7);
        CHECK(d->min_bytes == 256);
        o.deflate_min_bytes = 1000;  // a larger min_message_bytes stands
        Codec larger(o, handler, out.get());
        CHECK(larger.sharedDeflate()->min_bytes == 1000);
    }
    SECTION("deflate with server context takeover: its own compressor only") {
        o.deflate = DeflateParams{};
        Codec codec(o, handler, out.get());
        CHECK(codec.sharedDeflate() == nullptr);
    }
    SECTION("client role") {
        DeflateParams p;
        p.server_no_context_takeover = p.client_no_context_takeover = true;
        o.deflate = p;
        o.role = Role::Client;
        Codec codec(o, handler, out.get());
        CHECK(codec.sharedDeflate() == nullptr);
    }
}

TEST_CASE("codec encodes a shared frame compressed when it pays and inflates to the message", "[ws][codec][deflate]") {
    SharedDeflate d;
    for (std::uint8_t bits : {std::uint8_t{8}, std::uint8_t{10}, std::uint8_t{15}}) {
        d.window_bits = bits;
        const std::string m = compressible(5000);
        const auto text = decode(Codec::encodeShared(true, m.data(), m.size(), &d), bits);
        CHECK(text.header.rsv == kRsv1);
        CHECK(text.header.opcode == Opcode::Text);
        CHECK(text.header.payload_length < m.size() / 2);
        CHECK(text.payload == m);
        const auto binary = decode(Codec::encodeShared(false, m.data(), m.size(), &d), bits);
        CHECK(binary.header.rsv == kRsv1);
        CHECK(binary.header.opcode == Opcode::Binary);
        CHECK(binary.payload == m);
    }
    SECTION("below min_bytes: uncompressed") {
        const std::string m = compressible(255);
        const auto f = decode(Codec::encodeShared(true, m.data(), m.size(), &d));
        CHECK(f.header.rsv == 0);
        CHECK(f.payload == m);
    }
    SECTION("incompressible: uncompressed") {
        std::string m;
        std::uint32_t x = 12345;
        for (int i = 0; i < 2000; ++i) m.push_back(static_cast<char>((x = x * 1103515245u + 12345u) >> 24));
        const auto f = decode(Codec::encodeShared(false, m.data(), m.size(), &d));
        CHECK(f.header.rsv == 0);
        CHECK(f.payload == m);
    }
    SECTION("no SharedDeflate: uncompressed") {
        const std::string m = compressible(5000);
        const auto f = decode(Codec::encodeShared(true, m.data(), m.size()));
        CHECK(f.header.rsv == 0);
        CHECK(f.payload == m);
    }
}
