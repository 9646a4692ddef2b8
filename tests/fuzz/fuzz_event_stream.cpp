// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: an app's answer body fed to the bridge's event-stream parser exactly as
// bridge::Bridge reads it (parseEvents over the whole body), plus the GRIP control-message and
// grip-extension parsers on the same bytes.
//
// Built like every target (tests/fuzz/CMakeLists.txt): replayed over corpus/event_stream/ by
// ctest, run by scripts/fuzz.sh.
//
// Invariants the parser promises are checked with __builtin_trap(): a violation is a bug,
// whatever the bytes were.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "portico/bridge/event_stream.h"
#include "portico/bridge/grip.h"

using namespace portico::bridge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    constexpr std::size_t kMax = 1024;
    std::string reencoded;
    std::size_t total = 0;
    const ParseResult r = parseEvents(body, kMax, [&](const Event& e) {
        // Content lies inside the body and within the bound.
        if (e.content.size() > kMax) __builtin_trap();
        if (!e.content.empty() && (e.content.data() < body.data() || e.content.data() + e.content.size() > body.data() + body.size()))
            __builtin_trap();
        if (e.has_content) {
            appendEvent(reencoded, e.type, e.content);
        } else {
            appendEvent(reencoded, e.type);
        }
        total += 1;
        return true;
    });
    if (r.error == ParseError::None) {
        if (r.consumed != body.size()) __builtin_trap();
        // What parsed re-parses to the same events (the serializer writes what the parser reads).
        std::size_t again = 0;
        if (parseEvents(reencoded, kMax, [&](const Event&) { return ++again > 0; }).error != ParseError::None) __builtin_trap();
        if (again != total) __builtin_trap();
    } else if (r.offset > body.size()) {
        __builtin_trap();
    }
    std::string error;
    static_cast<void>(parseControlMessage(body, error));
    static_cast<void>(findGripExtension(body));
    return 0;
}
