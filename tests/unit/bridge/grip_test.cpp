// SPDX-License-Identifier: Apache-2.0
#include "portico/bridge/grip.h"

#include <catch2/catch.hpp>

#include <string>

using namespace portico::bridge;

TEST_CASE("grip extension: found by name, message-prefix read as token or quoted string", "[bridge][grip]") {
    CHECK_FALSE(findGripExtension(""));
    CHECK_FALSE(findGripExtension("permessage-deflate"));
    CHECK_FALSE(findGripExtension("gripx"));
    CHECK(findGripExtension("grip")->message_prefix == "m:");
    CHECK(findGripExtension("permessage-deflate, Grip")->message_prefix == "m:");
    CHECK(findGripExtension("grip; message-prefix=\"\"")->message_prefix.empty());
    CHECK(findGripExtension("grip;message-prefix=x:")->message_prefix == "x:");
    CHECK(findGripExtension("grip; other=1; message-prefix=\"p\\\"q\"")->message_prefix == "p\"q");
}

TEST_CASE("grip control messages: the types Pushpin reads", "[bridge][grip]") {
    std::string error;
    auto sub = parseControlMessage(R"({"type":"subscribe","channel":"room"})", error);
    REQUIRE(sub);
    CHECK(sub->type == ControlMessage::Type::Subscribe);
    CHECK(sub->channel == "room");
    CHECK(parseControlMessage(R"({"type":"unsubscribe","channel":"room"})", error)->type == ControlMessage::Type::Unsubscribe);
    CHECK(parseControlMessage(R"({"type":"detach"})", error)->type == ControlMessage::Type::Detach);
    auto meta = parseControlMessage(R"({"type":"set-meta","name":"user","value":"bob"})", error);
    REQUIRE(meta);
    CHECK((meta->name == "user" && meta->value == "bob"));
    auto ka = parseControlMessage(R"({"type":"keep-alive","content-bin":"AAE=","timeout":5})", error);
    REQUIRE(ka);
    CHECK(ka->content == std::string("\x00\x01", 2));
    CHECK(ka->message_type == ControlMessage::MessageType::Binary);
    CHECK(ka->timeout == 5);
    // Pushpin 1.36's defaults: 55 s for keep-alive (also for 0), mode idle unless "interval".
    CHECK(parseControlMessage(R"({"type":"keep-alive","content":"x"})", error)->timeout == 55);
    CHECK(parseControlMessage(R"({"type":"keep-alive","content":"x","timeout":0})", error)->timeout == 55);
    CHECK_FALSE(parseControlMessage(R"({"type":"keep-alive","content":"x"})", error)->interval);
    CHECK_FALSE(parseControlMessage(R"({"type":"keep-alive","content":"x","mode":"idle"})", error)->interval);
    CHECK(parseControlMessage(R"({"type":"keep-alive","content":"x","mode":"interval"})", error)->interval);
    auto delayed = parseControlMessage(R"({"type":"send-delayed","content":"later","message-type":"pong"})", error);
    REQUIRE(delayed);
    CHECK(delayed->type == ControlMessage::Type::SendDelayed);
    CHECK((delayed->content == "later" && delayed->message_type == ControlMessage::MessageType::Pong));
    CHECK(delayed->timeout == 1);  // Pushpin's default for send-delayed
    CHECK(parseControlMessage(R"({"type":"send-delayed","content":"x","timeout":3})", error)->timeout == 3);
    CHECK(parseControlMessage(R"({"type":"flush-delayed"})", error)->type == ControlMessage::Type::FlushDelayed);
    auto close = parseControlMessage(R"({"type":"close","code":4000,"reason":"bye"})", error);
    REQUIRE(close);
    CHECK((close->code == 4000 && close->reason == "bye"));
}

TEST_CASE("grip control messages: malformed ones are refused with a reason", "[bridge][grip]") {
    for (const char* bad : {"", "[]", "{}", R"({"type":1})", R"({"type":"subscribe"})",
                            R"({"type":"subscribe","channel":""})", R"({"type":"subscribe","channel":"a\nb"})",
                            R"({"type":"set-meta","name":"a b"})", R"({"type":"keep-alive","content-bin":"!"})",
                            R"({"type":"keep-alive","timeout":-1})", R"({"type":"keep-alive","message-type":"x"})",
                            R"({"type":"send-delayed","timeout":1.5})", R"({"type":"send-delayed","content-bin":"!"})",
                            R"({"type":"close","code":1005})",
                            R"({"type":"set-meta","name":"User","value":"bob\r\nX-Injected: yes"})",
                            R"({"type":"set-meta","name":"User","value":"a\u0000b"})",
                            R"({"type":"keep-alive","content-bin":"/w==","message-type":"text"})",
                            R"({"type":"send-delayed","content-bin":"wA==","message-type":"text"})", R"({"type":"session","id":"x"})", R"({"type":"nope"})"}) {
        INFO(bad);
        std::string error;
        CHECK_FALSE(parseControlMessage(bad, error));
        CHECK_FALSE(error.empty());
    }
    std::string error;
    CHECK_FALSE(parseControlMessage(R"({"type":"subscribe","channel":")" + std::string(201, 'x') + "\"}", error));
}
