// SPDX-License-Identifier: Apache-2.0
#include "portico/handlers/pubsub.h"

#include <catch2/catch.hpp>

#include <string>

#include <event2/buffer.h>

#include "portico/core/handles.h"
#include "portico/http/http1_response_writer.h"

using namespace portico;

TEST_CASE("pubsub answers to HEAD have the head only, errors included", "[pubsub][handlers]") {
    // Found by fuzz_pubsub_publish (tests/fuzz/regressions/pubsub_publish/head-404-with-body):
    // the 404 for a path without a channel carried its body after a HEAD request, which a
    // keep-alive client reads as the next response.
    for (int status : {200, 400, 401, 404, 405, 429, 503}) {
        INFO(status);
        handlers::PubSubAnswer answer;
        answer.status = status;
        if (status == 200) answer.body = "{\"channel\":\"room\",\"seq\":1}\n";
        core::EvbufferPtr out(evbuffer_new());
        http::Http1ResponseWriter writer(out.get());
        handlers::sendPubSubAnswer(writer, answer, /*head_only=*/true);
        const std::uint64_t written = writer.bytes();
        std::string text(evbuffer_get_length(out.get()), '\0');
        evbuffer_remove(out.get(), text.data(), text.size());
        CHECK(written == text.size());
        REQUIRE(text.size() >= 4);
        CHECK(text.substr(text.size() - 4) == "\r\n\r\n");  // ends with the head
        CHECK(text.find("\r\n\r\n") == text.size() - 4);
        CHECK(text.find("Content-Length: 0\r\n") == std::string::npos);  // what a GET would get
    }
}

TEST_CASE("a channel name is the percent-decoded path after the prefix", "[pubsub][handlers]") {
    // "/live/%61" and "/live/a" were two channels; RFC 3986 6.2.2.2 says they are one resource.
    config::Route route;
    route.path = "/live/";
    route.handler = config::HandlerKind::PubSub;
    CHECK(handlers::channelName(route, "/live/a") == "a");
    CHECK(handlers::channelName(route, "/live/%61") == "a");
    CHECK(handlers::channelName(route, "/live/r%6Fom%31") == "room1");
    CHECK(handlers::channelName(route, "/live/room%201") == "room 1");  // as a publish API item names it
    CHECK(handlers::channelName(route, "/live/caf%C3%A9") == "caf\xc3\xa9");
    CHECK(handlers::channelName(route, "/live/" + std::string(200, 'x')) == std::string(200, 'x'));
    CHECK(handlers::channelName(route, "/live/%78" + std::string(199, 'x')) == std::string(200, 'x'));
    for (const char* refused : {"/live/%6", "/live/%zz", "/live/a%", "/live/a%2Fb", "/live/a%2fb", "/live/a/b", "/live/%FF",
                                "/live/%0A", "/live/%00", "/live/%7F"}) {
        INFO(refused);
        CHECK(handlers::channelName(route, refused).empty());
        CHECK(handlers::channelRefusal(route, refused) == 400);
    }
    CHECK(handlers::channelName(route, "/live/" + std::string(201, 'x')).empty());
    CHECK(handlers::channelRefusal(route, "/live/") == 404);
}
