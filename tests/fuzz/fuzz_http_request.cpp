// libFuzzer target: bytes from a client fed to MessageParser in request mode, exactly as
// ClientConnection does (parse(), resume() after each message, finish() at the end).
//
// Not part of the CMake build (libFuzzer needs clang). Build and run it from the repository root;
// it needs only the HTTP parser, its head helpers and llhttp (compiled strict, like
// cmake/llhttp.cmake does):
//
//   mkdir -p build-fuzz/corpus && cd build-fuzz
//   clang -c -O1 -g -w -fsanitize=fuzzer-no-link,address,undefined -DLLHTTP_STRICT_MODE=1 \
//         -I/usr/share/include/llhttp /usr/share/llhttp/llhttp.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c
//   clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -DLLHTTP_STRICT_MODE=1 \
//         -I../include -I/usr/share/include/llhttp ../tests/fuzz/fuzz_http_request.cpp \
//         ../src/http/message_parser.cpp ../src/http/head.cpp ../src/core/handles.cpp \
//         llhttp.o api.o http.o $(pkg-config --libs libevent_core) -o fuzz_http_request
//   ./fuzz_http_request -max_len=4096 -max_total_time=600 corpus
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
