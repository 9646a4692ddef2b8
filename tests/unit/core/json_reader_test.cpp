// SPDX-License-Identifier: Apache-2.0
#include "portico/core/json_reader.h"

#include <catch2/catch.hpp>

#include <string>

using namespace portico::core;

TEST_CASE("json reader reads a GRIP control message and a publish body", "[core][json]") {
    auto control = parseJson(R"({"type":"subscribe","channel":"room"})");
    REQUIRE(control);
    CHECK(*control->findString("type") == "subscribe");
    CHECK(*control->findString("channel") == "room");
    CHECK(control->findString("missing") == nullptr);

    auto publish = parseJson(R"( {"items":[{"channel":"a","formats":{"ws-message":{"content":"hi \u00e9\ud83d\ude00"}}}]} )");
    REQUIRE(publish);
    const JsonValue* items = publish->find("items");
    REQUIRE(items);
    REQUIRE(items->isArray());
    REQUIRE(items->array.size() == 1);
    const JsonValue* message = items->array[0].find("formats")->find("ws-message");
    CHECK(*message->findString("content") == "hi \xc3\xa9\xf0\x9f\x98\x80");
}

TEST_CASE("json reader reads numbers, literals and escapes", "[core][json]") {
    auto v = parseJson(R"([0, -1.5e2, true, false, null, "a\"\\\/\b\f\n\r\t"])");
    REQUIRE(v);
    CHECK(v->array[0].number == 0);
    CHECK(v->array[1].number == -150);
    CHECK(v->array[2].boolean);
    CHECK(v->array[4].kind == JsonValue::Kind::Null);
    CHECK(v->array[5].string == "a\"\\/\b\f\n\r\t");
}

TEST_CASE("json reader refuses malformed text with an offset", "[core][json]") {
    for (const char* bad : {"", "{", "{\"a\"}", "{\"a\":1,}", "[1,]", "01", "1.", "-", "\"\x01\"", "\"\\x\"",
                            "\"\\ud800\"", "\"\\udc00\"", "tru", "{} {}", "{'a':1}", "[1 2]"}) {
        INFO(bad);
        std::size_t offset = 999;
        CHECK_FALSE(parseJson(bad, &offset));
        CHECK(offset <= std::string(bad).size());
    }
}

TEST_CASE("json reader bounds nesting depth", "[core][json]") {
    CHECK(parseJson(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')));
    CHECK_FALSE(parseJson(std::string(kMaxJsonDepth + 2, '[') + std::string(kMaxJsonDepth + 2, ']')));
}
