// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/permessage_deflate.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <event2/buffer.h>

#include "portico/ws/codec.h"
#include "portico/ws/frame_header.h"

using namespace portico::ws;

namespace {

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    std::uint32_t x = seed;
    for (auto& c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>('A' + (x >> 16) % 8);  // small alphabet: compressible
    }
    return s;
}

bool sameParams(const DeflateParams& a, const DeflateParams& b) {
    return a.server_no_context_takeover == b.server_no_context_takeover &&
           a.client_no_context_takeover == b.client_no_context_takeover &&
           a.server_max_window_bits == b.server_max_window_bits && a.client_max_window_bits == b.client_max_window_bits;
}

struct Collect : CodecHandler {
    std::vector<std::string> messages;
    void onMessage(bool, std::string_view payload) override { messages.emplace_back(payload); }
};

// Sends `messages` both ways between a server codec using `server` and a client codec using
// `client`, and checks each arrives intact.
void roundTrip(const DeflateParams& server, const DeflateParams& client, const std::vector<std::string>& messages) {
    std::unique_ptr<evbuffer, void (*)(evbuffer*)> c2s(evbuffer_new(), evbuffer_free);
    std::unique_ptr<evbuffer, void (*)(evbuffer*)> s2c(evbuffer_new(), evbuffer_free);
    Collect at_server, at_client;
    CodecOptions so;
    so.deflate = server;
    so.deflate_min_bytes = 0;
    CodecOptions co = so;
    co.role = Role::Client;
    co.deflate = client;
    Codec s(so, at_server, s2c.get());
    Codec c(co, at_client, c2s.get());
    for (const auto& m : messages) {
        REQUIRE(c.sendBinary(m));
        REQUIRE(s.sendBinary(m));
    }
    REQUIRE(s.feed(c2s.get()) == CodecState::Open);
    REQUIRE(c.feed(s2c.get()) == CodecState::Open);
    REQUIRE(at_server.messages == messages);
    REQUIRE(at_client.messages == messages);
}

// A configuration that asks for nothing beyond the offer (context takeover kept where the client
// does not give it up): the RFC's answers to each offer as written.
DeflateConfig asOffered() {
    DeflateConfig config;
    config.server_no_context_takeover = false;
    config.client_no_context_takeover = false;
    return config;
}

}  // namespace

TEST_CASE("permessage-deflate negotiation covers every window size and no_context_takeover combination",
          "[ws][deflate]") {
    const std::vector<std::string> messages = {pattern(3000, 1), pattern(3000, 1), pattern(500, 2) + pattern(500, 2)};
    int combinations = 0;
    for (int smwb = 7; smwb <= 15; ++smwb) {           // 7: not offered
        for (int cmwb = 6; cmwb <= 15; ++cmwb) {       // 6: not offered, 7: offered without a value
            for (int flags = 0; flags < 4; ++flags) {
                std::string offer = "permessage-deflate";
                if (flags & 1) offer += "; server_no_context_takeover";
                if (flags & 2) offer += "; client_no_context_takeover";
                if (smwb >= 8) offer += "; server_max_window_bits=" + std::to_string(smwb);
                if (cmwb == 7) offer += "; client_max_window_bits";
                if (cmwb >= 8) offer += "; client_max_window_bits=" + std::to_string(cmwb);
                INFO("offer: " << offer);

                const auto a = negotiateDeflate(offer, asOffered());
                REQUIRE(a.has_value());
                std::string expected = "permessage-deflate";
                if (flags & 1) expected += "; server_no_context_takeover";
                if (flags & 2) expected += "; client_no_context_takeover";
                if (smwb >= 8) expected += "; server_max_window_bits=" + std::to_string(smwb);
                if (cmwb >= 8) expected += "; client_max_window_bits=" + std::to_string(cmwb);
                CHECK(a->response == expected);
                CHECK(a->params.server_no_context_takeover == ((flags & 1) != 0));
                CHECK(a->params.client_no_context_takeover == ((flags & 2) != 0));
                CHECK(a->params.server_max_window_bits == (smwb >= 8 ? smwb : 15));
                CHECK(a->params.client_max_window_bits == (cmwb >= 8 ? cmwb : 15));

                // The client reads the response to the same parameters, and both sides talk.
                const auto client_view = parseDeflateResponse(a->response);
                REQUIRE(client_view.has_value());
                CHECK(sameParams(*client_view, a->params));
                roundTrip(a->params, *client_view, messages);
                ++combinations;
            }
        }
    }
    CHECK(combinations == 9 * 10 * 4);
}

TEST_CASE("permessage-deflate negotiation applies the server's own limits", "[ws][deflate]") {
    DeflateConfig cfg = asOffered();
    cfg.server_max_window_bits = 10;
    cfg.client_max_window_bits = 11;
    auto a = negotiateDeflate("permessage-deflate", cfg);
    REQUIRE(a);
    CHECK(a->response == "permessage-deflate; server_max_window_bits=10");  // cannot limit the client
    CHECK(a->params.server_max_window_bits == 10);
    CHECK(a->params.client_max_window_bits == 15);

    a = negotiateDeflate("permessage-deflate; server_max_window_bits=12; client_max_window_bits", cfg);
    REQUIRE(a);
    CHECK(a->response == "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11");
    a = negotiateDeflate("permessage-deflate; server_max_window_bits=9; client_max_window_bits=9", cfg);
    REQUIRE(a);
    CHECK(a->response == "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9");

    a = negotiateDeflate("permessage-deflate", DeflateConfig{});
    REQUIRE(a);
    CHECK(a->response == "permessage-deflate; server_no_context_takeover; client_no_context_takeover");

    DeflateConfig off;
    off.enabled = false;
    CHECK_FALSE(negotiateDeflate("permessage-deflate", off));
}

TEST_CASE("the default permessage-deflate configuration keeps no zlib state between messages", "[ws][deflate]") {
    // RFC 7692 7.1.1.1 and 7.1.1.2: a server may answer server_no_context_takeover and
    // client_no_context_takeover to any offer, so that neither side's window outlives a message
    // and an idle connection holds no zlib memory. client_max_window_bits only when offered.
    const struct {
        const char* offer;
        const char* response;
    } cases[] = {
        {"permessage-deflate",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
        {"permessage-deflate; client_max_window_bits",  // what browsers and python websockets offer
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
        {"permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; "
         "client_max_window_bits=10"},
        {"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
    };
    for (const auto& c : cases) {
        INFO(c.offer);
        const auto a = negotiateDeflate(c.offer, DeflateConfig{});
        REQUIRE(a);
        CHECK(a->response == c.response);
        CHECK(a->params.server_no_context_takeover);
        CHECK(a->params.client_no_context_takeover);
        const auto client_view = parseDeflateResponse(a->response);
        REQUIRE(client_view);
        CHECK(sameParams(*client_view, a->params));
        roundTrip(a->params, *client_view, {pattern(3000, 1), pattern(3000, 1), std::string()});
    }
    // A smaller client window is asked only of a client that offered the parameter (7.1.2.2).
    DeflateConfig small;
    small.client_max_window_bits = 10;
    auto a = negotiateDeflate("permessage-deflate", small);
    REQUIRE(a);
    CHECK(a->params.client_max_window_bits == 15);
    a = negotiateDeflate("permessage-deflate; client_max_window_bits", small);
    REQUIRE(a);
    CHECK(a->params.client_max_window_bits == 10);
    CHECK(a->response == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                         "client_max_window_bits=10");
}

TEST_CASE("permessage-deflate negotiation declines invalid offers and takes the next valid one", "[ws][deflate]") {
    const char* invalid[] = {
        "permessage-deflate; server_max_window_bits",        // value required
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",     // leading zero
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=",
        "permessage-deflate; server_no_context_takeover=1",  // no value allowed
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; ",
        "permessage-deflate; server_max_window_bits=\"1\\0\"",
    };
    for (const char* offer : invalid) {
        INFO(offer);
        CHECK_FALSE(negotiateDeflate(offer, asOffered()));
        const auto fallback = negotiateDeflate(std::string(offer) + ", permessage-deflate; client_max_window_bits=12", asOffered());
        REQUIRE(fallback);
        CHECK(fallback->response == "permessage-deflate; client_max_window_bits=12");
    }
    // An unterminated quote swallows the rest of the header: nothing can be accepted after it.
    CHECK_FALSE(negotiateDeflate("permessage-deflate; server_max_window_bits=\"10, permessage-deflate", asOffered()));
}

TEST_CASE("permessage-deflate negotiation accepts quoted values and skips other extensions", "[ws][deflate]") {
    auto a = negotiateDeflate("permessage-deflate; server_max_window_bits=\"10\"", asOffered());
    REQUIRE(a);
    CHECK(a->params.server_max_window_bits == 10);
    a = negotiateDeflate("x-webkit-deflate-frame, foo; bar=\"a,b\", PerMessage-Deflate ;client_max_window_bits", asOffered());
    REQUIRE(a);
    CHECK(a->response == "permessage-deflate");
    CHECK_FALSE(negotiateDeflate("x-webkit-deflate-frame", asOffered()));
    CHECK_FALSE(negotiateDeflate("", asOffered()));
}

TEST_CASE("a client rejects a response that is not one valid permessage-deflate", "[ws][deflate]") {
    CHECK(parseDeflateResponse("permessage-deflate; client_max_window_bits=9")->client_max_window_bits == 9);
    CHECK_FALSE(parseDeflateResponse("permessage-deflate; client_max_window_bits"));  // value required here
    CHECK_FALSE(parseDeflateResponse("permessage-deflate, permessage-deflate"));
    CHECK_FALSE(parseDeflateResponse("x-other"));
    CHECK_FALSE(parseDeflateResponse(""));
}

TEST_CASE("relayed extensions decide which RSV bits may pass", "[ws][deflate]") {
    CHECK(allowedRsvBits("") == 0);
    CHECK(allowedRsvBits("permessage-deflate; server_max_window_bits=10") == kRsv1);
    CHECK(allowedRsvBits("x-unknown") == (kRsv1 | kRsv2 | kRsv3));
}

TEST_CASE("deflater and inflater round-trip with context takeover across messages", "[ws][deflate]") {
    for (int bits = 8; bits <= 15; ++bits) {
        for (bool no_takeover : {false, true}) {
            INFO("bits " << bits << " no_context_takeover " << no_takeover);
            Deflater d(bits, no_takeover);
            Inflater inf(bits, no_takeover);
            std::size_t previous = 0;
            for (int i = 0; i < 5; ++i) {
                // Repeats 256 to 600 bytes back: beyond an 8-bit window, and across messages.
                const std::string m = pattern(600, 42) + pattern(600, 42);
                ByteBuffer z;
                REQUIRE(d.compress(reinterpret_cast<const std::uint8_t*>(m.data()), m.size(), z));
                // RFC 7692 7.2.1: the sync-flush tail is removed.
                REQUIRE(z.size() >= 1);
                if (i == 1 && !no_takeover && bits == 15) CHECK(z.size() < previous / 4);
                previous = z.size();
                ByteBuffer plain;
                REQUIRE(inf.inflate(z.data(), z.size(), plain, 1 << 20) == Inflater::Status::Ok);
                REQUIRE(inf.finish(plain, 1 << 20) == Inflater::Status::Ok);
                REQUIRE(plain.view() == m);
            }
        }
    }
}

namespace {

// Messages of many connections without context takeover, interleaved: returns "" when every one
// comes out right, else what went wrong first.
std::string interleavedMessages() {
    // Random bytes repeated once: the only matches are the repeat, 5000 and 3000 bytes back, so
    // a's need a window above 12 bits and b's cannot be used at b's 10.
    const auto noise = [](std::size_t n, std::uint32_t x) {
        std::string s(n, '\0');
        for (auto& c : s) {
            x = x * 1103515245u + 12345u;
            c = static_cast<char>(x >> 24);
        }
        return s + s;
    };
    const std::string a = noise(5000, 7);
    const std::string b = noise(3000, 9);
    const auto bytes = [](const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); };
    // In 16-byte slices, so that references reach into the window of earlier calls: a stream of
    // the wrong window size (either way) fails.
    const auto inflateSliced = [](Inflater& inf, const ByteBuffer& z, ByteBuffer& plain) {
        for (std::size_t at = 0; at < z.size(); at += 16) {
            if (inf.inflate(z.data() + at, std::min<std::size_t>(16, z.size() - at), plain, 1 << 20) !=
                Inflater::Status::Ok)
                return false;
        }
        return inf.finish(plain, 1 << 20) == Inflater::Status::Ok;
    };
    for (int round = 0; round < 3; ++round) {
        const std::string r = "round " + std::to_string(round) + ": ";
        ByteBuffer za, zb;
        if (!Deflater(15, true).compress(bytes(a), a.size(), za)) return r + "compress a";
        if (!Deflater(10, true, 9, 4).compress(bytes(b), b.size(), zb)) return r + "compress b";
        // One connection's message stays half-way while the others come and go.
        Inflater ia(15, true), corrupt(15, true);
        ByteBuffer pa, bad;
        const std::size_t half = za.size() / 2;
        if (ia.inflate(za.data(), half, pa, 1 << 20) != Inflater::Status::Ok) return r + "first half of a";
        for (int i = 0; i < 6; ++i) {  // more than the spares kept, both windows
            Inflater other(i % 2 ? 15 : 10, true);
            ByteBuffer plain;
            if (!inflateSliced(other, i % 2 ? za : zb, plain) || plain.view() != (i % 2 ? a : b))
                return r + "message " + std::to_string(i) + " of another connection";
        }
        // A broken stream is not given back.
        const std::uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff};
        if (corrupt.inflate(garbage, sizeof garbage, bad, 1 << 20) != Inflater::Status::Corrupt) return r + "garbage";
        if (ia.inflate(za.data() + half, za.size() - half, pa, 1 << 20) != Inflater::Status::Ok ||
            ia.finish(pa, 1 << 20) != Inflater::Status::Ok || pa.view() != a)
            return r + "second half of a";
        // A reset spare compresses to the same bytes as a fresh stream.
        ByteBuffer again;
        if (!Deflater(15, true).compress(bytes(a), a.size(), again) || again.view() != za.view())
            return r + "a again";
    }
    return {};
}

}  // namespace

TEST_CASE("without context takeover, interleaved messages of many connections share no state", "[ws][deflate]") {
    // The zlib streams go back to the thread's spares between messages. On a thread of its own,
    // whose spares start empty, so that what is taken when is known.
    std::string failure = "did not run";
    std::thread([&] { failure = interleavedMessages(); }).join();
    CHECK(failure == "");
}

TEST_CASE("a spare decompressor keeps nothing of the connection that used it before", "[ws][deflate]") {
    // Without the reset before a stream goes back to the spares, the next connection's stream
    // starts with the last one's window: a message that only refers back reads the other
    // connection's plaintext (a secret here) instead of failing.
    const std::string secret = "Authorization: Bearer s3cr3t-token-of-connection-a";
    const auto bytes = [](const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); };
    Deflater sender(15, false);  // context takeover: the second message is a reference to the first
    ByteBuffer first, second;
    REQUIRE(sender.compress(bytes(secret), secret.size(), first));
    REQUIRE(sender.compress(bytes(secret), secret.size(), second));
    REQUIRE(second.size() < secret.size() / 4);
    std::string failure = "did not run";
    std::thread([&] {  // a thread of its own: its spares start empty
        Inflater a(15, true);
        ByteBuffer plain;
        if (a.inflate(first.data(), first.size(), plain, 1 << 20) != Inflater::Status::Ok ||
            a.finish(plain, 1 << 20) != Inflater::Status::Ok || plain.view() != secret) {
            failure = "connection a's message";
            return;
        }
        Inflater b(15, true);  // takes a's stream from the spares
        ByteBuffer leaked;
        auto st = b.inflate(second.data(), second.size(), leaked, 1 << 20);
        if (st == Inflater::Status::Ok) st = b.finish(leaked, 1 << 20);
        failure = st == Inflater::Status::Corrupt ? "" : "b read: " + std::string(leaked.view());
    }).join();
    CHECK(failure == "");
}

TEST_CASE("an empty message compresses to a single 0x00 byte", "[ws][deflate]") {
    Deflater d(15, false);
    ByteBuffer z;
    REQUIRE(d.compress(nullptr, 0, z));
    REQUIRE(z.size() == 1);
    CHECK(z.data()[0] == 0x00);
    Inflater inf(15, false);
    ByteBuffer plain;
    CHECK(inf.inflate(z.data(), z.size(), plain, 100) == Inflater::Status::Ok);
    CHECK(inf.finish(plain, 100) == Inflater::Status::Ok);
    CHECK(plain.empty());
}

TEST_CASE("inflating stops one byte past the bound: a zip bomb is TooBig", "[ws][deflate]") {
    Deflater d(15, false, 9);
    const std::string zeros(50 << 20, '\0');
    ByteBuffer z;
    REQUIRE(d.compress(reinterpret_cast<const std::uint8_t*>(zeros.data()), zeros.size(), z));
    CHECK(z.size() < 100000);
    Inflater inf(15, false);
    ByteBuffer plain;
    CHECK(inf.inflate(z.data(), z.size(), plain, 1 << 20) == Inflater::Status::TooBig);
    CHECK(plain.size() == (1 << 20) + 1);
    Inflater exact(15, false);
    ByteBuffer all;
    CHECK(exact.inflate(z.data(), z.size(), all, 50 << 20) == Inflater::Status::Ok);
    CHECK(exact.finish(all, 50 << 20) == Inflater::Status::Ok);
    CHECK(all.size() == zeros.size());
}

TEST_CASE("a message ending with a BFINAL block inflates and the next one still works", "[ws][deflate]") {
    // RFC 7692 7.2.3.4: "Hello" as a final fixed-Huffman block: f3 48 cd c9 c9 07 00 with BFINAL.
    const std::uint8_t final_block[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    const std::uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};  // 7.2.3.1: not final
    Inflater inf(15, false);
    ByteBuffer out;
    REQUIRE(inf.inflate(final_block, sizeof final_block, out, 100) == Inflater::Status::Ok);
    REQUIRE(inf.finish(out, 100) == Inflater::Status::Ok);
    CHECK(out.view() == "Hello");
    out.clear();
    REQUIRE(inf.inflate(hello, sizeof hello, out, 100) == Inflater::Status::Ok);
    REQUIRE(inf.finish(out, 100) == Inflater::Status::Ok);
    CHECK(out.view() == "Hello");
}

TEST_CASE("the RFC 7692 7.2.3.2 example shares the window between messages", "[ws][deflate]") {
    const std::uint8_t first[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    const std::uint8_t second[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    Inflater inf(15, false);
    ByteBuffer out;
    REQUIRE(inf.inflate(first, sizeof first, out, 100) == Inflater::Status::Ok);
    REQUIRE(inf.finish(out, 100) == Inflater::Status::Ok);
    CHECK(out.view() == "Hello");
    out.clear();
    REQUIRE(inf.inflate(second, sizeof second, out, 100) == Inflater::Status::Ok);
    REQUIRE(inf.finish(out, 100) == Inflater::Status::Ok);
    CHECK(out.view() == "Hello");
}

TEST_CASE("corrupt DEFLATE data is reported", "[ws][deflate]") {
    const std::uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    Inflater inf(15, false);
    ByteBuffer out;
    const auto first = inf.inflate(junk, sizeof junk, out, 100);
    const auto end = first == Inflater::Status::Ok ? inf.finish(out, 100) : first;
    CHECK(end == Inflater::Status::Corrupt);
}
