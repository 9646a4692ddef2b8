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
