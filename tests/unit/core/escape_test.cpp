// SPDX-License-Identifier: Apache-2.0
// core::appendEscaped: what reaches a terminal or a log from a file or the network.

#include <catch2/catch.hpp>

#include <string>

#include "portico/core/escape.h"

using portico::core::appendEscaped;
using portico::core::escaped;

TEST_CASE("printable ASCII is copied as it is", "[core][escape]") {
    CHECK(escaped("routes[0].path: /a?b=c \"x\"") == "routes[0].path: /a?b=c \"x\"");
    CHECK(escaped("") == "");
}

TEST_CASE("control bytes, DEL, bytes from 0x80 and the backslash become \\xHH", "[core][escape]") {
    struct Case {
        std::string in;
        std::string out;
    };
    for (const Case& c : {Case{std::string("\0", 1), "\\x00"}, Case{"\x01", "\\x01"}, Case{"\t", "\\x09"},
                          Case{"\n", "\\x0A"}, Case{"\x1b[31m", "\\x1B[31m"}, Case{"\x1f", "\\x1F"},
                          Case{"\x7f", "\\x7F"}, Case{"\x80", "\\x80"}, Case{"\xc2\x9b", "\\xC2\\x9B"},
                          Case{"\xff", "\\xFF"}, Case{"\\", "\\x5C"}, Case{" ~", " ~"}}) {
        INFO(c.out);
        CHECK(escaped(c.in) == c.out);
    }
}

TEST_CASE("a NUL neither ends nor hides what follows it", "[core][escape]") {
    const std::string in("a\0b\0\0c", 6);
    CHECK(escaped(in) == "a\\x00b\\x00\\x00c");
}

TEST_CASE("extra bytes to escape are added, and appendEscaped appends", "[core][escape]") {
    std::string out = "\"";
    appendEscaped(out, "say \"hi\"\\", "\"");
    CHECK(out == "\"say \\x22hi\\x22\\x5C");
}

TEST_CASE("percent-decoding takes either case and refuses a '%' without two hex digits", "[core][escape]") {
    std::string out = "x";
    CHECK(portico::core::appendPercentDecoded(out, "a%2fb%2Fc%41%e9"));
    CHECK(out == "xa/b/cA\xe9");
    for (const char* bad : {"%", "%4", "a%g1", "%%41", "%4 "}) {
        INFO(bad);
        std::string o;
        CHECK_FALSE(portico::core::appendPercentDecoded(o, bad));
    }
}
