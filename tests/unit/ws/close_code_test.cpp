// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/close_code.h"

#include <catch2/catch.hpp>

#include <string>

using namespace portico::ws;

TEST_CASE("close codes valid on the wire follow RFC 6455 7.4 and Autobahn 7.7/7.9", "[ws][close]") {
    for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999})
        CHECK(isValidCloseCodeOnWire(static_cast<std::uint16_t>(code)));
    for (int code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
        CHECK_FALSE(isValidCloseCodeOnWire(static_cast<std::uint16_t>(code)));
    int valid = 0;
    for (int code = 0; code < 65536; ++code) valid += isValidCloseCodeOnWire(static_cast<std::uint16_t>(code));
    CHECK(valid == 4 + 8 + 2000);
}

TEST_CASE("close payload parsing returns the code to fail with", "[ws][close]") {
    ClosePayload out;
    auto parse = [&out](const std::string& p) {
        return parseClosePayload(reinterpret_cast<const std::uint8_t*>(p.data()), p.size(), out);
    };
    CHECK(parse("") == 0);
    CHECK(out.code == close_code::kNoStatus);
    CHECK(parse("\x03") == close_code::kProtocolError);
    const std::string normal("\x03\xE8", 2);
    CHECK(parse(normal) == 0);
    CHECK(out.code == 1000);
    CHECK(out.reason.empty());
    const std::string going = std::string("\x03\xE9", 2) + "going";  // out.reason views into it
    CHECK(parse(going) == 0);
    CHECK(out.code == 1001);
    CHECK(out.reason == "going");
    CHECK(parse(std::string("\x03\xED", 2)) == close_code::kProtocolError);  // 1005
    CHECK(parse(std::string("\x00\x00", 2)) == close_code::kProtocolError);
    CHECK(parse(std::string("\x03\xE8", 2) + "\xC3") == close_code::kInvalidPayload);
    CHECK(parse(std::string("\x03\xE8", 2) + "\xED\xA0\x80") == close_code::kInvalidPayload);
}
