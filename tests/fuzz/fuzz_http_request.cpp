// libFuzzer target: bytes from a client fed to MessageParser in request mode, exactly as
// ClientConnection does (parse(), resume() after each message, finish() at the end).
//
// Not part of the CMake build (libFuzzer needs clang). Build it next to a configured tree with
// clang, from the repository root:
//
//   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
//         -DPORTICO_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
//         -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
//         -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined"
//   cmake --build build-fuzz --target portico_lib -j2
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//         tests/fuzz/fuzz_http_request.cpp build-fuzz/libportico_lib.a build-fuzz/libllhttp_static.a \
//         $(pkg-config --libs libevent_core) -o build-fuzz/fuzz_http_request
//   mkdir -p build-fuzz/corpus && build-fuzz/fuzz_http_request -max_len=4096 build-fuzz/corpus
//
// (A quick check without instrumenting the library: compile only this file with
// -fsanitize=fuzzer,address and link the ordinary build's libportico_lib.a; coverage then
// comes from this file alone, so the fuzzer finds much less.)
//
// The first input byte chooses how the rest is cut into evbuffer pieces, so that the parser's
// handling of heads and bodies split anywhere is fuzzed too. Invariants the parser promises are
// checked with __builtin_trap(): a violation is a bug, whatever the bytes were.

#include <cstddef>
#include <cstdint>
#include <string>

#include <event2/buffer.h>

#include "portico/core/handles.h"
#include "portico/http/message_parser.h"

namespace {

using portico::http::HeadAction;
using portico::http::MessageParser;
using portico::http::ParseError;
using portico::http::ParseStatus;

constexpr std::size_t kMaxHeadBytes = 1024;   // small, so that 431 is reached often
constexpr std::size_t kMaxBodyBytes = 4096;   // onBody refuses beyond it, like a 413

void check(bool ok) {
    if (!ok) __builtin_trap();
}

class Sink final : public MessageParser::Handler {
public:
    Sink() : parser(MessageParser::Kind::Request, this, kMaxHeadBytes) {}

    HeadAction onHead() override {
        // What ClientConnection reads from the head: touch it all.
        const auto& request = parser.request();
        check(!request.method.empty());
        check(parser.headBytes() <= kMaxHeadBytes);
        for (const auto& h : request.headers) check(!h.name.empty());
        (void)request.path();
        (void)request.query();
        (void)parser.keepAlive();
        check(!(parser.chunked() && parser.hasContentLength()));  // RFC 9112 6.1: never both
        body_bytes = 0;
        return request.method == "HEAD" ? HeadAction::SkipBody : HeadAction::Continue;
    }
    bool onBody(const char* data, std::size_t length) override {
        check(data != nullptr && length > 0);
        body_bytes += length;
        if (parser.hasContentLength()) check(body_bytes <= parser.contentLength());
        return body_bytes <= kMaxBodyBytes;
    }
    void onMessageComplete() override { ++messages; }

    MessageParser parser;
    std::size_t body_bytes = 0;
    std::size_t messages = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t slice = data[0] == 0 ? size : data[0];  // 1..255 bytes per piece, or all
    ++data;
    --size;

    Sink sink;
    portico::core::EvbufferPtr input(evbuffer_new());
    std::size_t offset = 0;
    bool done = false;
    while (!done) {
        if (offset < size) {
            std::size_t n = size - offset < slice ? size - offset : slice;
            evbuffer_add(input.get(), data + offset, n);
            offset += n;
        }
        for (;;) {
            const std::size_t before = evbuffer_get_length(input.get());
            const ParseStatus status = sink.parser.parse(input.get());
            check(evbuffer_get_length(input.get()) <= before);
            if (status == ParseStatus::MessageComplete) {
                check(!sink.parser.inMessage());
                sink.parser.resume();
                continue;
            }
            if (status == ParseStatus::NeedMore) {
                check(evbuffer_get_length(input.get()) == 0);  // NeedMore consumed everything
                check(sink.parser.error() == ParseError::None);
                break;
            }
            if (status == ParseStatus::Upgrade) {
                // ClientConnection declines upgrades it has no endpoint for and goes on as HTTP.
                check(sink.parser.isUpgradeRequested());
                sink.parser.resume();
                continue;
            }
            check(status == ParseStatus::Error);
            check(sink.parser.error() != ParseError::None);
            check(sink.parser.errorReason() != nullptr);
            check(sink.parser.parse(input.get()) == ParseStatus::Error);  // errors are final
            done = true;
            break;
        }
        if (offset >= size) done = true;
    }
    if (sink.parser.error() == ParseError::None) {
        const ParseStatus end = sink.parser.finish();
        check(end == ParseStatus::NeedMore || end == ParseStatus::MessageComplete || end == ParseStatus::Error);
        // A request is never delimited by close (RFC 9112 6.3): EOF cannot complete one.
        check(end != ParseStatus::MessageComplete);
    }
    return 0;
}
