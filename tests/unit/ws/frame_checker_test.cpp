// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_checker.h"

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include <event2/buffer.h>

#include "portico/ws/close_code.h"

using namespace portico::ws;

namespace {

FrameHeader header(Opcode op, std::uint64_t len, bool fin = true, bool masked = true, std::uint8_t rsv = 0) {
    FrameHeader h;
    h.fin = fin;
    h.opcode = op;
    h.payload_length = len;
    h.masked = masked;
    h.rsv = rsv;
    return h;
}

}  // namespace

TEST_CASE("frame checker requires masking from clients and none from servers", "[ws][checker]") {
    FrameChecker from_client(Role::Client, 0, 1000);
    CHECK(from_client.check(header(Opcode::Text, 1, true, true)) == 0);
    CHECK(from_client.check(header(Opcode::Text, 1, true, false)) == close_code::kProtocolError);
    FrameChecker from_server(Role::Server, 0, 1000);
    CHECK(from_server.check(header(Opcode::Text, 1, true, false)) == 0);
    CHECK(from_server.check(header(Opcode::Text, 1, true, true)) == close_code::kProtocolError);
}

TEST_CASE("frame checker allows only negotiated RSV bits, and RSV1 only where RFC 7692 puts it", "[ws][checker]") {
    for (std::uint8_t rsv = 1; rsv < 8; ++rsv) {
        FrameChecker none(Role::Client, 0, 1000);
        CHECK(none.check(header(Opcode::Binary, 1, true, true, rsv)) == close_code::kProtocolError);
    }
    FrameChecker deflate(Role::Client, kRsv1, 1000);
    CHECK(deflate.check(header(Opcode::Text, 1, false, true, kRsv1)) == 0);
    CHECK(deflate.messageCompressed());
    CHECK(deflate.check(header(Opcode::Ping, 0, true, true, kRsv1)) == close_code::kProtocolError);
    FrameChecker deflate2(Role::Client, kRsv1, 1000);
    CHECK(deflate2.check(header(Opcode::Text, 1, false, true, kRsv1)) == 0);
    CHECK(deflate2.check(header(Opcode::Continuation, 1, true, true, kRsv1)) == close_code::kProtocolError);
    FrameChecker deflate3(Role::Client, kRsv1, 1000);
    CHECK(deflate3.check(header(Opcode::Text, 1, true, true, kRsv2)) == close_code::kProtocolError);
    FrameChecker unknown_ext(Role::Client, kRsv1 | kRsv2 | kRsv3, 1000);
    CHECK(unknown_ext.check(header(Opcode::Text, 1, true, true, 7)) == 0);
}

TEST_CASE("frame checker rejects every reserved opcode", "[ws][checker]") {
    for (int op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
        FrameChecker c(Role::Client, 0, 1000);
        CHECK(c.check(header(static_cast<Opcode>(op), 0)) == close_code::kProtocolError);
    }
}

TEST_CASE("frame checker enforces control frame rules", "[ws][checker]") {
    for (Opcode op : {Opcode::Ping, Opcode::Pong, Opcode::Close}) {
        FrameChecker c(Role::Client, 0, 1000);
        CHECK(c.check(header(op, 125)) == 0);
        CHECK(c.check(header(op, 0)) == 0);
        CHECK(c.check(header(op, 126)) == close_code::kProtocolError);
        FrameChecker d(Role::Client, 0, 1000);
        CHECK(d.check(header(op, 0, false)) == close_code::kProtocolError);
    }
}

TEST_CASE("frame checker follows fragmentation", "[ws][checker]") {
    FrameChecker c(Role::Client, 0, 1000);
    CHECK(c.check(header(Opcode::Text, 10, false)) == 0);
    CHECK(c.inMessage());
    CHECK(c.check(header(Opcode::Ping, 5)) == 0);  // control frames may interleave
    CHECK(c.check(header(Opcode::Continuation, 10, false)) == 0);
    CHECK(c.check(header(Opcode::Continuation, 10, true)) == 0);
    CHECK_FALSE(c.inMessage());
    CHECK(c.messages() == 1);
    CHECK(c.check(header(Opcode::Continuation, 1)) == close_code::kProtocolError);

    FrameChecker d(Role::Client, 0, 1000);
    CHECK(d.check(header(Opcode::Binary, 1, false)) == 0);
    CHECK(d.check(header(Opcode::Text, 1, true)) == close_code::kProtocolError);
}

TEST_CASE("frame checker limits the sum of a message's fragments", "[ws][checker]") {
    FrameChecker c(Role::Server, 0, 100);
    CHECK(c.check(header(Opcode::Binary, 100, true, false)) == 0);
    CHECK(c.check(header(Opcode::Binary, 60, false, false)) == 0);
    CHECK(c.check(header(Opcode::Continuation, 40, false, false)) == 0);
    CHECK(c.check(header(Opcode::Continuation, 0, false, false)) == 0);
    CHECK(c.check(header(Opcode::Continuation, 1, true, false)) == close_code::kMessageTooBig);
    FrameChecker huge(Role::Server, 0, 100);
    CHECK(huge.check(header(Opcode::Binary, 0x7FFFFFFFFFFFFFFFULL, true, false)) == close_code::kMessageTooBig);
    FrameChecker control_not_counted(Role::Server, 0, 100);
    CHECK(control_not_counted.check(header(Opcode::Binary, 100, false, false)) == 0);
    CHECK(control_not_counted.check(header(Opcode::Ping, 125, true, false)) == 0);
    CHECK(control_not_counted.check(header(Opcode::Continuation, 0, true, false)) == 0);
}

TEST_CASE("copyControlPayload copies and unmasks a close payload without draining", "[ws][checker]") {
    std::unique_ptr<evbuffer, void (*)(evbuffer*)> buf(evbuffer_new(), evbuffer_free);
    const std::uint8_t mask[4] = {9, 8, 7, 6};
    const std::string payload = std::string("\x03\xE8", 2) + "done";
    REQUIRE(appendFrame(buf.get(), Opcode::Close, true, 0, payload.data(), payload.size(), mask));
    FrameHeader h;
    REQUIRE(peekFrameHeader(buf.get(), h) == 6);
    std::uint8_t out[kMaxControlPayload];
    REQUIRE(copyControlPayload(buf.get(), h, out) == static_cast<int>(payload.size()));
    CHECK(std::string(reinterpret_cast<char*>(out), payload.size()) == payload);
    CHECK(evbuffer_get_length(buf.get()) == 6 + payload.size());
    ClosePayload close;
    CHECK(parseClosePayload(out, payload.size(), close) == 0);
    CHECK(close.code == 1000);
    CHECK(close.reason == "done");
    evbuffer_drain(buf.get(), 1);
    CHECK(copyControlPayload(buf.get(), h, out) == -1);  // not all there any more
}

TEST_CASE("acceptSmallMessage gives check()'s verdict for every first two bytes, or defers to it", "[ws][checker]") {
    // For each sender role, allowed RSV, max_message_bytes and state (inside a fragmented
    // message or not): a frame acceptSmallMessage takes must be one check() accepts, with the
    // same state after it; one it leaves (0) must leave the state untouched; and each whole,
    // final, 7-bit text/binary frame that check() accepts outside a message must be taken.
    std::size_t taken = 0;
    for (Role role : {Role::Client, Role::Server})
        for (std::uint8_t rsv : {std::uint8_t{0}, kRsv1})
            for (std::uint64_t max : {std::uint64_t{0}, std::uint64_t{10}, std::uint64_t{1000}})
                for (bool in_message : {false, true})
                    for (int b0 = 0; b0 < 256; ++b0)
                        for (int b1 = 0; b1 < 256; ++b1) {
                            FrameChecker fast(role, rsv, max);
                            FrameChecker slow(role, rsv, max);
                            if (in_message) {  // a first fragment of 1 byte, if max allows one
                                if (max == 0) continue;
                                const FrameHeader first = header(Opcode::Text, 1, false, role == Role::Client);
                                REQUIRE(fast.check(first) == 0);
                                REQUIRE(slow.check(first) == 0);
                            }
                            std::uint8_t frame[2 + 8 + 4 + 127] = {static_cast<std::uint8_t>(b0), static_cast<std::uint8_t>(b1)};
                            FrameHeader h;
                            const int header_length = parseFrameHeader(frame, sizeof frame, h);
                            REQUIRE(header_length > 0);
                            const std::size_t whole = static_cast<std::size_t>(header_length) + h.payload_length;
                            const std::uint16_t verdict = slow.check(h);
                            // One byte short of the frame, then all of it.
                            CHECK(fast.acceptSmallMessage(frame, whole - 1) == 0);
                            CHECK(fast.messages() == 0);
                            const std::size_t size = fast.acceptSmallMessage(frame, whole);
                            if (size != 0) {
                                ++taken;
                                CHECK(size == whole);
                                CHECK(verdict == 0);
                                CHECK(fast.inMessage() == slow.inMessage());
                                CHECK(fast.messageCompressed() == slow.messageCompressed());
                                CHECK(fast.messages() == slow.messages());
                                continue;
                            }
                            CHECK(fast.messages() == 0);
                            CHECK(fast.inMessage() == in_message);
                            const bool small_message = h.fin && (h.opcode == Opcode::Text || h.opcode == Opcode::Binary) &&
                                                       (b1 & 0x7F) < 126 && !in_message;
                            if (small_message) CHECK(verdict != 0);  // taken whenever check() accepts it
                        }
    CHECK(taken > 0);
}
