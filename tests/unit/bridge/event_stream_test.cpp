// SPDX-License-Identifier: Apache-2.0
#include "portico/bridge/event_stream.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace portico::bridge;

namespace {

struct Parsed {
    std::vector<EventType> types;
    std::vector<std::string> contents;
    ParseResult result;
};

Parsed parseAll(std::string_view body, std::size_t max = 1 << 20) {
    Parsed p;
    p.result = parseEvents(body, max, [&](const Event& e) {
        p.types.push_back(e.type);
        p.contents.emplace_back(e.content);
        return true;
    });
    return p;
}

}  // namespace

TEST_CASE("event stream: every type round-trips through the serializer and the parser", "[bridge][events]") {
    std::string body;
    appendEvent(body, EventType::Open);
    appendEvent(body, EventType::Text, "hello world");
    appendEvent(body, EventType::Binary, std::string("\x00\xff\r\n", 4));
    appendEvent(body, EventType::Ping, "p");
    appendEvent(body, EventType::Pong, "");
    appendClose(body, 1000, "bye");
    appendEvent(body, EventType::Disconnect);
    CHECK(body.substr(0, 25) == "OPEN\r\nTEXT b\r\nhello world");
    const Parsed p = parseAll(body);
    REQUIRE(p.result.error == ParseError::None);
    CHECK(p.result.consumed == body.size());
    CHECK(p.types == std::vector<EventType>{EventType::Open, EventType::Text, EventType::Binary, EventType::Ping,
                                            EventType::Pong, EventType::Close, EventType::Disconnect});
    CHECK(p.contents[1] == "hello world");
    CHECK(p.contents[2] == std::string("\x00\xff\r\n", 4));
    CHECK(p.contents[4].empty());
}

TEST_CASE("event stream: the issue's example and Pushpin's lower-case hex lengths", "[bridge][events]") {
    const Parsed p = parseAll("TEXT B\r\nhello world\r\nTEXT 1a\r\nabcdefghijklmnopqrstuvwxyz\r\n");
    REQUIRE(p.result.error == ParseError::None);
    CHECK(p.contents == std::vector<std::string>{"hello world", "abcdefghijklmnopqrstuvwxyz"});
    std::string out;
    appendEvent(out, EventType::Text, std::string(26, 'x'));
    CHECK(out.substr(0, 9) == "TEXT 1a\r\n");
    CHECK(encodedSize(EventType::Text, 26) == out.size());
    CHECK(encodedSize(EventType::Binary, 0) == std::string("BINARY 0\r\n\r\n").size());
}

TEST_CASE("event stream: a TEXT without content is an empty message", "[bridge][events]") {
    const Parsed p = parseAll("TEXT\r\nTEXT 0\r\n\r\n");
    REQUIRE(p.result.error == ParseError::None);
    CHECK(p.contents == std::vector<std::string>{"", ""});
}

TEST_CASE("event stream: CLOSE content is a 2-byte code and a reason", "[bridge][events]") {
    std::string body;
    appendClose(body, 4001, "gone");
    appendClose(body, 0);
    CHECK(body.substr(body.size() - 7) == "CLOSE\r\n");
    std::vector<CloseContent> closes;
    const ParseResult r = parseEvents(body, 1024, [&](const Event& e) {
        closes.push_back(closeContent(e));
        return true;
    });
    REQUIRE(r.error == ParseError::None);
    REQUIRE(closes.size() == 2);
    CHECK(closes[0].code == 4001);
    CHECK(closes[0].reason == "gone");
    CHECK(closes[1].code == 0);
    // serve-grip's close() without a code writes code 0: no code, not a malformed event.
    Event e;
    const std::string zero_code("CLOSE 2\r\n\0\0\r\n", 13);  // outlives e, which views it
    CHECK(parseEvent(zero_code, 16, e).consumed == 13);
    CHECK(closeContent(e).code == 0);
}

TEST_CASE("event stream: an incomplete event asks for more, never for a guess", "[bridge][events]") {
    Event e;
    for (std::string_view partial : {"", "TE", "TEXT", "TEXT ", "TEXT 5", "TEXT 5\r", "TEXT 5\r\nhel", "TEXT 5\r\nhello",
                                     "TEXT 5\r\nhello\r", "OPEN\r"}) {
        INFO(partial);
        const ParseResult r = parseEvent(partial, 1024, e);
        CHECK(r.error == ParseError::None);
        CHECK(r.consumed == 0);
    }
    const ParseResult whole = parseEvent("TEXT 5\r\nhello\r\nPING\r\n", 1024, e);
    CHECK(whole.consumed == 15);
    CHECK(e.content == "hello");
}

TEST_CASE("event stream: malformed input is refused with the reason and offset", "[bridge][events]") {
    struct Case {
        std::string body;
        ParseError error;
    };
    const std::vector<Case> cases = {
        {"FOO\r\n", ParseError::UnknownType},
        {"text 1\r\nx\r\n", ParseError::BadTypeLine},  // types are upper case
        {"TEXT\n", ParseError::BadTypeLine},
        {"OPEN\rX", ParseError::BadTypeLine},
        {" TEXT 1\r\nx\r\n", ParseError::BadTypeLine},
        {"TEXT  1\r\nx\r\n", ParseError::BadLength},
        {"TEXT 0x1\r\nx\r\n", ParseError::BadLength},
        {"TEXT -1\r\nx\r\n", ParseError::BadLength},
        {"TEXT 1 \r\nx\r\n", ParseError::BadLength},
        {"TEXT 00000000000000001\r\nx\r\n", ParseError::BadLength},  // 17 digits
        {"TEXT 3\r\nx\r\n", ParseError::BadTerminator},              // the length lies (too long)
        {"TEXT 1\r\nxyz\r\n", ParseError::BadTerminator},            // the length lies (too short)
        {"TEXT 2\r\nxy\n\r", ParseError::BadTerminator},
        {"TEXT ffffffffffffffff\r\n", ParseError::TooLarge},        // refused before any content
        {"OPEN 1\r\nx\r\n", ParseError::UnexpectedContent},
        {"DISCONNECT 2\r\nxy\r\n", ParseError::UnexpectedContent},
        {"TEXT 1\r\n\xff\r\n", ParseError::InvalidUtf8},
        {"CLOSE 1\r\n\x03\r\n", ParseError::BadClose},
        {std::string("CLOSE 2\r\n\x03\xed\r\n"), ParseError::BadClose},  // 1005 is never sent
        {std::string("CLOSE 3\r\n\x03\xe8\xc3\r\n"), ParseError::InvalidUtf8},
        {std::string(40, 'A') + "\r\n", ParseError::UnknownType},
        {std::string(40, 'A'), ParseError::BadTypeLine},  // no CRLF within the longest type line
    };
    for (const Case& c : cases) {
        INFO(c.body);
        const Parsed p = parseAll(c.body, 1024);
        CHECK(p.result.error == c.error);
        CHECK(p.types.empty());
    }
}

TEST_CASE("event stream: the content bound applies to the declared length", "[bridge][events]") {
    CHECK(parseAll("BINARY 10\r\n0123456789abcdef\r\n", 15).result.error == ParseError::TooLarge);
    CHECK(parseAll("BINARY 10\r\n0123456789abcdef\r\n", 16).result.error == ParseError::None);
}

TEST_CASE("event stream: a body cut inside an event is truncated at its end", "[bridge][events]") {
    const Parsed line = parseAll("OPEN\r\nTEXT 5");
    CHECK(line.result.error == ParseError::BadTypeLine);
    CHECK(line.result.offset == 12);
    CHECK(line.types == std::vector<EventType>{EventType::Open});  // what came before was read
    const Parsed content = parseAll("OPEN\r\nTEXT 5\r\nhel");
    CHECK(content.result.error == ParseError::BadTerminator);
}

TEST_CASE("event stream: the visitor can stop early", "[bridge][events]") {
    int seen = 0;
    const ParseResult r = parseEvents("PING\r\nPING\r\nFOO\r\n", 16, [&](const Event&) { return ++seen < 2; });
    CHECK(seen == 2);
    CHECK(r.error == ParseError::None);
    CHECK(r.consumed == 12);
}

TEST_CASE("event stream: a malformed event after good ones reports its own offset", "[bridge][events]") {
    const Parsed p = parseAll("OPEN\r\nTEXT 2\r\nhi\r\nNOPE\r\n");
    CHECK(p.result.error == ParseError::UnknownType);
    CHECK(p.result.offset == 18);
    CHECK(p.types.size() == 2);
}
