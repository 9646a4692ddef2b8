// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/keepalive_ping.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using namespace portico::ws;

namespace {
std::string_view view(const KeepAlivePing::Payload& p) { return {p.data(), p.size()}; }
}  // namespace

TEST_CASE("a keep-alive ping is answered by a pong with its payload, once", "[ws][ping]") {
    KeepAlivePing ping;
    CHECK_FALSE(ping.outstanding());
    const KeepAlivePing::Payload payload = ping.start();
    CHECK(view(payload).substr(0, KeepAlivePing::kPrefix.size()) == "portico-");
    CHECK(ping.outstanding());
    CHECK(ping.answers(view(payload)));
    CHECK(ping.takeAnswer(view(payload)));
    CHECK_FALSE(ping.outstanding());
    CHECK_FALSE(ping.takeAnswer(view(payload)));  // answered already: a second one is not ours
}

// Two Porticos in a chain both ping the client: each takes its own pong and leaves the other's,
// also the fixed "portico" of older versions.
TEST_CASE("a pong answering another pinger's ping is not taken", "[ws][ping]") {
    KeepAlivePing outer, inner;
    const KeepAlivePing::Payload outer_payload = outer.start();
    const KeepAlivePing::Payload inner_payload = inner.start();
    REQUIRE(view(outer_payload) != view(inner_payload));
    CHECK_FALSE(outer.takeAnswer(view(inner_payload)));
    CHECK_FALSE(outer.takeAnswer("portico"));
    CHECK_FALSE(outer.takeAnswer(""));
    CHECK(outer.outstanding());
    CHECK(inner.takeAnswer(view(inner_payload)));
    CHECK(outer.takeAnswer(view(outer_payload)));
}

TEST_CASE("each keep-alive ping has a payload of its own", "[ws][ping]") {
    KeepAlivePing ping;
    const std::string first(view(ping.start()));
    const std::string second(view(ping.start()));
    CHECK(first != second);
    CHECK_FALSE(ping.answers(first));  // a late answer to an earlier ping is not this one's
    CHECK(ping.answers(second));
}
