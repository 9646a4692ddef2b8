// SPDX-License-Identifier: Apache-2.0
// EndpointSession::queueShared (a pub/sub delivery written from the frame shared by every
// subscriber) against everything else the session writes: a Pong, a Ping, the app's own
// message, a replay's frames and the Close go after the shared frames queued before them, with or
// without a socket that refuses bytes; queuedBytes() counts them; a session that ends with
// shared frames referenced in its output lets go of them.

#include <catch2/catch.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <cstring>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "portico/core/shared_bytes.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"
#include "portico/ws/codec.h"
#include "portico/ws/frame_header.h"

using namespace portico;

namespace {

struct Owner final : ws::SessionOwner {
    std::string ended;
    void onSessionEnd(const char* reason, const ws::SessionCounts&) override { ended = reason; }
};

struct NoApp final : handlers::EndpointApp {
    void onMessage(handlers::EndpointSession&, bool, std::string_view) override {}
};

struct Frame {
    ws::Opcode opcode;
    std::uint8_t rsv;
    std::string payload;
};

// A session on one end of a socketpair; the test is the client on the other (`peer`).
struct Client {
    net::EventLoop loop;
    Owner owner;
    core::UniqueFd peer;
    std::unique_ptr<handlers::EndpointSession> session;
    net::Stream* stream = nullptr;  // the session's
    std::string received;  // bytes read from the session, not yet parsed

    explicit Client(int sndbuf = 0, std::optional<ws::DeflateParams> deflate = std::nullopt) {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        if (sndbuf > 0) ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        peer = core::UniqueFd(fds[1]);
        config::WebSocketSettings settings;
        settings.ping_interval = config::Duration(0);
        auto owned = std::make_unique<net::Stream>(loop.base(), core::UniqueFd(fds[0]), nullptr);
        stream = owned.get();
        session = std::make_unique<handlers::EndpointSession>(owner, loop, std::move(owned), settings, deflate,
                                                              std::make_unique<NoApp>());
        session->start();
    }
    void run() { event_base_loop(loop.base(), EVLOOP_NONBLOCK); }
    // A masked frame from the client.
    void send(ws::Opcode opcode, std::string_view payload) {
        const std::uint8_t mask[4] = {1, 2, 3, 4};
        core::EvbufferPtr frame(evbuffer_new());
        REQUIRE(ws::appendFrame(frame.get(), opcode, true, 0, payload.data(), payload.size(), mask));
        std::string bytes(evbuffer_get_length(frame.get()), '\0');
        evbuffer_remove(frame.get(), bytes.data(), bytes.size());
        REQUIRE(::write(peer.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    }
    // Reads (running the loop, which sends what waits) until `count` frames came.
    std::vector<Frame> frames(std::size_t count) {
        std::vector<Frame> out;
        char buffer[65536];
        for (int round = 0; round < 20000 && out.size() < count; ++round) {
            ssize_t n;
            while ((n = ::read(peer.get(), buffer, sizeof buffer)) > 0) received.append(buffer, static_cast<std::size_t>(n));
            ws::FrameHeader h;
            while (out.size() < count &&
                   ws::parseFrameHeader(reinterpret_cast<const std::uint8_t*>(received.data()), received.size(), h) > 0 &&
                   received.size() >= h.header_length + h.payload_length) {
                out.push_back({h.opcode, h.rsv, received.substr(h.header_length, h.payload_length)});
                received.erase(0, h.header_length + h.payload_length);
            }
            if (out.size() < count) run();
        }
        return out;
    }
};

core::SharedBytesRef message(std::string_view text) { return ws::Codec::encodeShared(true, text.data(), text.size()); }

std::vector<std::string> describe(const std::vector<Frame>& frames) {
    std::vector<std::string> out;
    for (const Frame& f : frames) {
        std::string what(ws::toString(f.opcode));
        if (f.opcode == ws::Opcode::Text || f.opcode == ws::Opcode::Ping || f.opcode == ws::Opcode::Pong)
            what += ":" + (f.payload.size() > 16 ? std::to_string(f.payload.size()) + "B" : f.payload);
        out.push_back(what);
    }
    return out;
}

}  // namespace

TEST_CASE("a Pong answered while shared frames wait for their flush goes after them", "[handlers][endpoint]") {
    Client c;
    c.session->queueShared(message("one"));
    c.session->queueShared(message("two"));
    CHECK(c.session->queuedBytes() == 2 * 5);  // counted though not in the output yet
    c.send(ws::Opcode::Ping, "are you there");
    c.run();  // the ping is read (and answered) before any flush
    c.session->flush();
    CHECK(describe(c.frames(3)) == std::vector<std::string>{"text:one", "text:two", "pong:are you there"});
}

// A subscriber that also sends (a chat client, a client's keep-alive Ping): what it sends and
// the codec does not answer leaves the shared frames out of the output, for the flush's one
// sendmsg; an answer (a Pong) still goes after them.
TEST_CASE("a client's message leaves the shared frames batched; a Pong still joins them first", "[handlers][endpoint]") {
    Client c;
    c.session->queueShared(message("one"));
    c.session->queueShared(message("two"));
    c.send(ws::Opcode::Text, "hello");
    c.run();  // read and delivered to the app, which answers nothing
    CHECK(c.stream->outputLength() == 0);
    CHECK(c.session->queuedBytes() == 2 * 5);  // still in the shared slots
    c.send(ws::Opcode::Ping, "p");
    c.run();  // the codec answers: the shared frames join the output first
    c.session->queueShared(message("three"));
    c.session->flush();
    CHECK(describe(c.frames(4)) == std::vector<std::string>{"text:one", "text:two", "pong:p", "text:three"});
}

// Out of memory moving the shared frames into the output (a frozen output refuses appends as a
// failed allocation would): the session ends as on a write error, from the loop.
TEST_CASE("shared frames that cannot join the output end the session as a write error", "[handlers][endpoint]") {
    Client c;
    c.session->queueShared(message("one"));
    evbuffer_freeze(c.stream->output(), 0);
    c.session->sendText("app");
    evbuffer_unfreeze(c.stream->output(), 0);  // before the buffer goes back to the thread's spares
    CHECK(c.owner.ended.empty());  // not from inside the call
    for (int i = 0; i < 10 && c.owner.ended.empty(); ++i) c.run();
    CHECK(c.owner.ended == "client connection error");
}

TEST_CASE("the app's writes, pings and the Close go after the shared frames queued before them", "[handlers][endpoint]") {
    Client c;
    c.session->queueShared(message("one"));
    c.session->sendText("app");  // the built-in echo's path: the codec writes the output
    c.session->queueShared(message("two"));
    CHECK(c.session->sendPing("p"));
    c.session->queueShared(message("three"));
    core::EvbufferPtr replay(evbuffer_new());  // a replay slice (sendEncoded)
    REQUIRE(ws::Codec::encodeMessage(replay.get(), true, "four", 4, nullptr));
    c.session->sendEncoded(replay.get());
    c.session->queueShared(message("five"));
    c.session->close(1000, "bye");
    CHECK(describe(c.frames(8)) == std::vector<std::string>{"text:one", "text:app", "text:two", "ping:p", "text:three",
                                                            "text:four", "text:five", "close"});
}

TEST_CASE("under backpressure shared frames, the app's frames and the Close keep their order", "[handlers][endpoint]") {
    Client c(4096);
    const std::string big(200 * 1024, 'b');
    c.session->queueShared(message(big));
    c.session->flush();  // the socket takes part: the rest waits in the output (referenced)
    REQUIRE(c.session->queuedBytes() > 0);
    c.session->queueShared(message("after big"));
    c.send(ws::Opcode::Ping, "ping");
    c.run();
    c.session->queueShared(message("after pong"));
    c.session->flush();
    c.session->sendText("app");
    c.session->queueShared(message("last"));
    c.session->close(1001);
    CHECK(describe(c.frames(6)) ==
          std::vector<std::string>{"text:" + std::to_string(big.size()) + "B", "text:after big", "pong:ping",
                                   "text:after pong", "text:app", "text:last"});
    CHECK(describe(c.frames(1)) == std::vector<std::string>{"close"});
}

TEST_CASE("a session that ends with shared frames queued and referenced lets go of them", "[handlers][endpoint]") {
    const core::SharedBytesRef big = message(std::string(1024 * 1024, 'x'));
    const core::SharedBytesRef small = message("small");
    {
        Client referenced(4096), queued;
        referenced.session->queueShared(big);
        referenced.session->flush();
        CHECK(big->holders() == 2);  // the output's reference to what the socket did not take
        queued.session->queueShared(small);
        CHECK(small->holders() == 2);  // queued, not written yet
        referenced.peer = core::UniqueFd();  // both clients go away
        queued.peer = core::UniqueFd();
        for (int i = 0; i < 20 && (referenced.owner.ended.empty() || queued.owner.ended.empty()); ++i) {
            referenced.run();
            queued.run();
        }
        CHECK_FALSE(referenced.owner.ended.empty());
        CHECK_FALSE(queued.owner.ended.empty());
        referenced.session.reset();
        queued.session.reset();
        referenced.run();
        queued.run();
    }
    // The loops and the sockets are gone: under ASan, no use after free, and nothing leaked.
    CHECK(big->holders() == 1);
    CHECK(small->holders() == 1);
}

// A frame shared by all subscribers cannot be compressed with each one's context: it goes
// uncompressed (RSV1 clear, allowed under permessage-deflate), while the session's own messages
// are compressed, in order.
TEST_CASE("a permessage-deflate session gets the shared frames uncompressed, in order", "[handlers][endpoint]") {
    Client c(0, ws::DeflateParams{});
    const std::string text(200, 'a');
    c.session->queueShared(message(text));
    c.session->sendText(text);
    c.session->queueShared(message("two"));
    c.session->flush();
    const std::vector<Frame> frames = c.frames(3);
    REQUIRE(frames.size() == 3);
    CHECK((frames[0].rsv == 0 && frames[0].payload == text));
    CHECK(frames[1].rsv == ws::kRsv1);  // compressed by the session's own deflater
    CHECK(frames[1].payload.size() < text.size());
    CHECK((frames[2].rsv == 0 && frames[2].payload == "two"));
}
