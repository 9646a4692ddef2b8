// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a WebSocket byte stream through the frame header parser and the per-direction
// FrameChecker, walked as FrameRelay walks it (peek a header, judge it, copy out a control
// payload, skip a data payload), plus the writer and the (un)masking helpers against the parser:
//  - peekFrameHeader on an evbuffer equals parseFrameHeader on the same bytes;
//  - writeFrameHeader of what was parsed parses back to the same header, never longer;
//  - unmasking in pieces at any offset equals unmasking at once, and masking twice is identity;
//  - the checker answers 0, 1002 or 1009 only, and what it accepts obeys RFC 6455 5.2-5.5.
//
// Input: byte 0: bit 0 the sender is the client (frames must be masked), bits 1-3 the RSV bits a
// negotiated extension allows; byte 1: max_message_bytes in units of 64 (0: 0); byte 2: the piece
// size for the piecewise unmask (0: 1). The rest is the stream.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include <event2/buffer.h>

#include "fuzz_support.h"
#include "portico/core/handles.h"
#include "portico/ws/close_code.h"
#include "portico/ws/frame_checker.h"
#include "portico/ws/frame_header.h"

namespace {

using namespace portico::ws;

bool sameHeader(const FrameHeader& a, const FrameHeader& b) {
    return a.fin == b.fin && a.rsv == b.rsv && a.opcode == b.opcode && a.masked == b.masked &&
           std::memcmp(a.mask, b.mask, 4) == 0 && a.payload_length == b.payload_length;
}

void checkWriterAgrees(const FrameHeader& h) {
    std::uint8_t out[kMaxFrameHeaderBytes];
    const std::size_t n = writeFrameHeader(out, h.fin, h.rsv, h.opcode, h.payload_length, h.masked ? h.mask : nullptr);
    FUZZ_CHECK(n >= 2 && n <= kMaxFrameHeaderBytes && n <= h.header_length);  // minimal encoding
    FrameHeader again;
    FUZZ_CHECK(parseFrameHeader(out, n, again) == static_cast<int>(n));
    FUZZ_CHECK(sameHeader(h, again));
    // One byte short is "need more", never a different header.
    FrameHeader partial;
    FUZZ_CHECK(parseFrameHeader(out, n - 1, partial) == 0);
}

void checkMasking(const std::uint8_t* payload, std::size_t len, const std::uint8_t mask[4], std::size_t piece) {
    std::vector<std::uint8_t> whole(payload, payload + len);
    applyMask(whole.data(), whole.size(), mask, 0);
    std::vector<std::uint8_t> pieces(len);
    for (std::size_t at = 0; at < len; at += piece) {
        const std::size_t n = std::min(piece, len - at);
        copyMasked(pieces.data() + at, payload + at, n, mask, at);
    }
    FUZZ_CHECK(whole == pieces);
    for (std::size_t i = 0; i < len; ++i) FUZZ_CHECK(whole[i] == (payload[i] ^ mask[i & 3]));
    applyMask(whole.data(), whole.size(), mask, 0);
    FUZZ_CHECK(std::equal(whole.begin(), whole.end(), payload));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    portico::fuzz::FuzzInput input(data, size);
    const std::uint8_t flags = input.byte();
    const Role sender = (flags & 1) != 0 ? Role::Client : Role::Server;
    const auto allowed_rsv = static_cast<std::uint8_t>((flags >> 1) & 0x7);
    const std::uint64_t max_message = std::uint64_t{input.byte()} * 64;
    const std::size_t piece = std::max<std::size_t>(1, input.byte());
    const std::string_view stream = input.rest();
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(stream.data());

    FrameChecker checker(sender, allowed_rsv, max_message);
    portico::core::EvbufferPtr in(evbuffer_new());
    evbuffer_add(in.get(), stream.data(), stream.size());
    std::size_t offset = 0;  // position of the frame at the front of `in` within `stream`
    std::uint64_t data_frames_final = 0;
    for (;;) {
        FrameHeader peeked;
        const int peek = peekFrameHeader(in.get(), peeked);
        FrameHeader parsed;
        const int parse = parseFrameHeader(bytes + offset, stream.size() - offset, parsed);
        FUZZ_CHECK(peek == parse);
        if (parse <= 0) {
            // Malformed only for a 64-bit length with its top bit set (RFC 6455 5.2).
            if (parse < 0) FUZZ_CHECK((bytes[offset + 1] & 0x7F) == 127 && (bytes[offset + 2] & 0x80) != 0);
            break;
        }
        FUZZ_CHECK(sameHeader(peeked, parsed));
        FUZZ_CHECK(parsed.header_length == parse && parse >= 2 && parse <= static_cast<int>(kMaxFrameHeaderBytes));
        FUZZ_CHECK(parsed.payload_length >> 63 == 0);
        checkWriterAgrees(parsed);

        const bool in_message_before = checker.inMessage();
        const std::uint16_t code = checker.check(parsed);
        FUZZ_CHECK(code == 0 || code == close_code::kProtocolError || code == close_code::kMessageTooBig);
        if (code != 0) {
            FUZZ_CHECK(parsed.masked != (sender == Role::Client) || code != close_code::kProtocolError ||
                       (parsed.rsv & ~allowed_rsv) != 0 || !isKnownOpcode(parsed.opcode) ||
                       (isControl(parsed.opcode) && (!parsed.fin || parsed.payload_length > kMaxControlPayload ||
                                                     parsed.rsv != 0)) ||
                       (parsed.opcode == Opcode::Continuation) == !in_message_before ||
                       (parsed.opcode == Opcode::Continuation && (parsed.rsv & kRsv1) != 0));
            break;  // the relay fails the connection
        }
        FUZZ_CHECK(parsed.masked == (sender == Role::Client));
        FUZZ_CHECK((parsed.rsv & ~allowed_rsv) == 0);
        FUZZ_CHECK(isKnownOpcode(parsed.opcode));
        const std::size_t available = stream.size() - offset - parsed.header_length;
        if (isControl(parsed.opcode)) {
            FUZZ_CHECK(parsed.fin && parsed.payload_length <= kMaxControlPayload && parsed.rsv == 0);
            FUZZ_CHECK(checker.inMessage() == in_message_before);  // control frames interleave
            std::uint8_t payload[kMaxControlPayload];
            const int copied = copyControlPayload(in.get(), parsed, payload);
            if (available < parsed.payload_length) {
                FUZZ_CHECK(copied == -1);  // the relay waits for the whole control frame
                break;
            }
            FUZZ_CHECK(copied == static_cast<int>(parsed.payload_length));
            const std::uint8_t* raw = bytes + offset + parsed.header_length;
            for (int i = 0; i < copied; ++i) FUZZ_CHECK(payload[i] == (raw[i] ^ parsed.mask[i & 3]));
        } else {
            FUZZ_CHECK((parsed.opcode == Opcode::Continuation) == in_message_before);
            FUZZ_CHECK(checker.inMessage() == !parsed.fin);
            if (parsed.fin) ++data_frames_final;
            FUZZ_CHECK(checker.messages() == data_frames_final);
            FUZZ_CHECK(parsed.payload_length <= max_message);
        }
        if (available < parsed.payload_length) break;
        const auto len = static_cast<std::size_t>(parsed.payload_length);
        checkMasking(bytes + offset + parsed.header_length, len, parsed.mask, piece);

        // What the relay forwards: the payload, unmasked while being removed, in pieces.
        evbuffer_drain(in.get(), parsed.header_length);
        std::vector<std::uint8_t> removed(len);
        for (std::size_t at = 0; at < len; at += piece) {
            const std::size_t n = std::min(piece, len - at);
            FUZZ_CHECK(removeUnmasked(in.get(), removed.data() + at, n, parsed.masked ? parsed.mask : nullptr, at));
        }
        const std::uint8_t* raw = bytes + offset + parsed.header_length;
        for (std::size_t i = 0; i < len; ++i)
            FUZZ_CHECK(removed[i] == (parsed.masked ? raw[i] ^ parsed.mask[i & 3] : raw[i]));
        offset += parsed.header_length + len;
        FUZZ_CHECK(evbuffer_get_length(in.get()) == stream.size() - offset);
    }
    return 0;
}
