// SPDX-License-Identifier: Apache-2.0
// A pub/sub subscriber's history replay to a client that agreed permessage-deflate without server
// context takeover: its messages come compressed as live ones do, and when zlib fails they come
// uncompressed (as live fan-out's do) instead of going missing.

#include <catch2/catch.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "../ws/zlib_deflate_failure.h"
#include "portico/handlers/pubsub.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"
#include "portico/pubsub/local_backplane.h"
#include "portico/ws/frame_header.h"
#include "portico/ws/permessage_deflate.h"

using namespace portico;

namespace {

struct Owner final : ws::SessionOwner {
    void onSessionEnd(const char*, const ws::SessionCounts&) override {}
};

struct Frame {
    ws::Opcode opcode;
    std::uint8_t rsv;
    std::string payload;
};

// A worker with `handler: pubsub` on /live/ whose channel "room" keeps `kept` messages, and a
// subscriber asking for them (since=0) on one end of a socketpair: the test reads the other.
struct Replay {
    static constexpr std::size_t kMessageBytes = 1000;  // compressible, above min_message_bytes
    net::EventLoop loop;
    std::shared_ptr<pubsub::PubSubRegistry> registry = std::make_shared<pubsub::PubSubRegistry>();
    handlers::PubSubHub hub{loop, std::make_unique<pubsub::LocalBackplane>(loop, registry)};
    config::Route route;
    Owner owner;
    core::UniqueFd peer;
    std::unique_ptr<handlers::EndpointSession> session;

    explicit Replay(int kept) {
        route.path = "/live/";
        route.pubsub.publish_rate = 0;
        route.websocket.ping_interval = config::Duration(0);
        for (int i = 0; i < kept; ++i) {
            pubsub::PublishRequest request;
            request.channel = handlers::channelKey(route, "room");
            request.payload = std::string(kMessageBytes, static_cast<char>('a' + i));
            request.text = true;
            request.settings = &route.pubsub;
            hub.backplane().publish(std::move(request), [](const pubsub::PublishResult&) {});
        }
    }
    ~Replay() { session.reset(); }

    // The subscriber's session opens: the replay is written before this returns (the in-process
    // backplane answers at once).
    void subscribe() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        peer = core::UniqueFd(fds[1]);
        ws::DeflateParams deflate;
        deflate.server_no_context_takeover = deflate.client_no_context_takeover = true;
        handlers::SubscribeOptions options;
        options.since = 0;
        session = std::make_unique<handlers::EndpointSession>(
            owner, loop, std::make_unique<net::Stream>(loop.base(), core::UniqueFd(fds[0]), nullptr), route.websocket,
            deflate, handlers::makeSubscriberApp(hub, route, "room", options));
        session->start();
    }

    // Every whole frame the client has been sent so far.
    std::vector<Frame> frames() {
        for (int i = 0; i < 10; ++i) event_base_loop(loop.base(), EVLOOP_NONBLOCK);
        std::string received;
        char buffer[65536];
        ssize_t n;
        while ((n = ::read(peer.get(), buffer, sizeof buffer)) > 0) received.append(buffer, static_cast<std::size_t>(n));
        std::vector<Frame> out;
        ws::FrameHeader h;
        while (ws::parseFrameHeader(reinterpret_cast<const std::uint8_t*>(received.data()), received.size(), h) > 0 &&
               received.size() >= h.header_length + h.payload_length) {
            out.push_back({h.opcode, h.rsv, received.substr(h.header_length, h.payload_length)});
            received.erase(0, h.header_length + h.payload_length);
        }
        return out;
    }
};

}  // namespace

TEST_CASE("a replay to a client with permessage-deflate comes compressed, as live messages do", "[handlers][pubsub]") {
    Replay r(3);
    r.subscribe();
    const std::vector<Frame> frames = r.frames();
    REQUIRE(frames.size() == 3);
    for (const Frame& f : frames) {
        CHECK(f.opcode == ws::Opcode::Text);
        CHECK(f.rsv == ws::kRsv1);
        CHECK(f.payload.size() < Replay::kMessageBytes);
    }
}

TEST_CASE("a replay whose compression fails sends its messages uncompressed, none missing", "[handlers][pubsub]") {
    Replay r(3);
    {
        test::ZlibDeflateFailure failing;
        r.subscribe();
        CHECK(test::ZlibDeflateFailure::refused() > 0);
    }
    const std::vector<Frame> frames = r.frames();
    REQUIRE(frames.size() == 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(frames[i].opcode == ws::Opcode::Text);
        CHECK(frames[i].rsv == 0);
        CHECK(frames[i].payload == std::string(Replay::kMessageBytes, static_cast<char>('a' + i)));
    }
    CHECK(r.session->isOpen());
}
