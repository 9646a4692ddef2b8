// SPDX-License-Identifier: Apache-2.0
// MessageFrames: one message's frames for a worker's listeners, each form encoded once
// uncompressed and once per compressor asked for, every listener of a kind sharing the bytes.

#include <catch2/catch.hpp>

#include <string>

#include "portico/handlers/pubsub.h"
#include "portico/ws/frame_header.h"

using namespace portico;

namespace {

pubsub::Message message(std::size_t size) {
    pubsub::Message m;
    m.seq = 7;
    m.epoch = "e1";
    while (m.payload.size() < size) m.payload += "quote 101.25 for ABC; ";
    m.payload.resize(size);
    return m;
}

std::uint8_t rsv(const core::SharedBytesRef& frame) {
    ws::FrameHeader h;
    REQUIRE(ws::parseFrameHeader(frame->data(), frame->size(), h) > 0);
    return h.rsv;
}

}  // namespace

TEST_CASE("message frames compress each form once per compressor and share it", "[handlers][pubsub][deflate]") {
    const pubsub::Message m = message(3000);
    handlers::MessageFrames frames("room", m);
    ws::SharedDeflate w15;
    ws::SharedDeflate other_floor = w15;
    other_floor.min_bytes = 1000;  // another route's min_message_bytes: the same compressor
    ws::SharedDeflate w10 = w15;
    w10.window_bits = 10;

    const core::SharedBytesRef bare = frames.shared(false);
    const core::SharedBytesRef a = frames.shared(false, &w15);
    CHECK(rsv(bare) == 0);
    CHECK(rsv(a) == ws::kRsv1);
    CHECK(a->size() < bare->size() / 2);
    CHECK(frames.shared(false, &w15).get() == a.get());          // made once
    CHECK(frames.shared(false, &other_floor).get() == a.get());  // same compressor, same bytes
    CHECK(frames.shared(false, nullptr).get() == bare.get());
    const core::SharedBytesRef b = frames.shared(false, &w10);
    CHECK(b.get() != a.get());
    CHECK(rsv(b) == ws::kRsv1);
    const core::SharedBytesRef json = frames.shared(true, &w15);
    CHECK(json.get() != a.get());
    CHECK(rsv(json) == ws::kRsv1);
    CHECK(frames.shared(true, &w15).get() == json.get());
}

TEST_CASE("message frames below a listener's floor go uncompressed, the one frame for all", "[handlers][pubsub][deflate]") {
    const pubsub::Message m = message(230);
    handlers::MessageFrames frames("room", m);
    ws::SharedDeflate d;
    const core::SharedBytesRef bare = frames.shared(false);
    CHECK(frames.shared(false, &d).get() == bare.get());
    // The JSON form is longer (the channel, seq and epoch around it): over 256, compressed.
    CHECK(rsv(frames.shared(true, &d)) == ws::kRsv1);
}
