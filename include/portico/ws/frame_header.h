// SPDX-License-Identifier: Apache-2.0
#pragma once
// WebSocket frame headers (RFC 6455 5.2): parse, write, peek from an evbuffer, and (un)mask.
// No I/O and no allocation: the same entry points serve the frame relay, the codec, tests and
// the fuzz target.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

struct evbuffer;

namespace portico::ws {

enum class Opcode : std::uint8_t {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

// Which end of a WebSocket connection. Clients mask every frame they send, servers never do
// (RFC 6455 5.1).
enum class Role : std::uint8_t { Client, Server };

inline constexpr std::size_t kMaxFrameHeaderBytes = 14;  // 2 + 8 (64-bit length) + 4 (mask)
inline constexpr std::size_t kMaxControlPayload = 125;   // RFC 6455 5.5

// RSV bits as they appear in FrameHeader::rsv (bit 2 is RSV1, bit 0 is RSV3).
inline constexpr std::uint8_t kRsv1 = 0x4;  // "Per-Message Compressed" under permessage-deflate
inline constexpr std::uint8_t kRsv2 = 0x2;
inline constexpr std::uint8_t kRsv3 = 0x1;

// Control opcodes have the high bit of the 4-bit opcode set (0x8-0xF), known or not.
constexpr bool isControl(Opcode op) { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }
// True for the six opcodes RFC 6455 defines (0, 1, 2, 8, 9, 10).
constexpr bool isKnownOpcode(Opcode op) {
    const auto v = static_cast<std::uint8_t>(op);
    return v <= 0x2 || (v >= 0x8 && v <= 0xA);
}
// "text", "close", ... or "reserved" for logs.
std::string_view toString(Opcode op);

struct FrameHeader {
    bool fin = false;
    std::uint8_t rsv = 0;  // RSV1..RSV3 as 3 bits: kRsv1 | kRsv2 | kRsv3
    Opcode opcode = Opcode::Continuation;  // may hold a reserved value (3-7, 11-15): check it
    bool masked = false;
    std::uint8_t mask[4] = {0, 0, 0, 0};  // zero when !masked
    std::uint64_t payload_length = 0;     // < 2^63
    std::uint8_t header_length = 0;       // 2..14 bytes
};

// Parses the frame header at `data` (`len` bytes available, any alignment).
// Returns < 0 when malformed (a 64-bit length with its most significant bit set), 0 when more
// bytes are needed, or the header length (2..14) with `out` filled. Non-minimal length
// encodings (e.g. 5 written in the 16-bit form) are accepted, as RFC 6455 5.2 only says "can".
// Opcode, RSV and mask policy are not judged here: see FrameChecker.
// Inline: the relays parse one header per message on their hot path (frame_relay.cpp).
inline int parseFrameHeader(const std::uint8_t* data, std::size_t len, FrameHeader& out) {
    if (len < 2) return 0;
    const std::uint8_t b0 = data[0];
    const std::uint8_t b1 = data[1];
    const std::uint8_t len7 = b1 & 0x7F;
    const bool masked = (b1 & 0x80) != 0;
    // RFC 6455 5.2: 7-bit length, or 126 + 16-bit, or 127 + 64-bit; then the 4-byte key if MASK.
    const std::size_t ext = len7 < 126 ? 0 : (len7 == 126 ? 2 : 8);
    const std::size_t header_length = 2 + ext + (masked ? 4 : 0);
    if (len < header_length) return 0;

    std::uint64_t payload_length = len7;
    if (ext == 2) {
        payload_length = (static_cast<std::uint64_t>(data[2]) << 8) | data[3];
    } else if (ext == 8) {
        payload_length = 0;
        for (int i = 0; i < 8; ++i) payload_length = (payload_length << 8) | data[2 + i];
        // RFC 6455 5.2: "the most significant bit MUST be 0".
        if (payload_length >> 63) return -1;
    }

    out.fin = (b0 & 0x80) != 0;
    out.rsv = static_cast<std::uint8_t>((b0 >> 4) & 0x7);
    out.opcode = static_cast<Opcode>(b0 & 0x0F);
    out.masked = masked;
    if (masked) {
        std::memcpy(out.mask, data + 2 + ext, 4);
    } else {
        std::memset(out.mask, 0, 4);
    }
    out.payload_length = payload_length;
    out.header_length = static_cast<std::uint8_t>(header_length);
    return static_cast<int>(header_length);
}

// Same as parseFrameHeader on the first bytes of `buf`, without draining anything (copies at
// most kMaxFrameHeaderBytes out).
int peekFrameHeader(evbuffer* buf, FrameHeader& out);

// Writes a frame header with the minimal length encoding into `out` and returns its length
// (2..14). `rsv` uses the FrameHeader::rsv bit layout; `length` must be < 2^63; `mask` is
// nullptr for an unmasked frame or 4 bytes that are copied into the header.
std::size_t writeFrameHeader(std::uint8_t out[kMaxFrameHeaderBytes], bool fin, std::uint8_t rsv,
                             Opcode opcode, std::uint64_t length, const std::uint8_t* mask);

// XORs `len` bytes in place with the masking key (RFC 6455 5.3). `offset` is the position of
// data[0] within the frame payload, so a payload can be unmasked in pieces.
void applyMask(std::uint8_t* data, std::size_t len, const std::uint8_t mask[4], std::uint64_t offset = 0);

// Copies `len` bytes from `src` to `dst` while XORing with the key: unmask during the one copy.
// `offset` as for applyMask. `src` and `dst` may be equal but must not otherwise overlap.
void copyMasked(std::uint8_t* dst, const std::uint8_t* src, std::size_t len, const std::uint8_t mask[4],
                std::uint64_t offset = 0);

// Fills `out` with a fresh, unpredictable masking key (RFC 6455 10.3).
void makeMask(std::uint8_t out[4]);

// Appends a complete frame (header and payload) to `out`. `mask` nullptr sends unmasked (server
// role); otherwise the payload is masked with it while being copied (client role). Returns false
// only when libevent cannot allocate.
bool appendFrame(evbuffer* out, Opcode opcode, bool fin, std::uint8_t rsv, const void* data, std::size_t len,
                 const std::uint8_t* mask);

// Appends a Close frame with `code` and `reason` (reason cut to the 123 bytes that fit, at a
// UTF-8 character boundary). `code` 0 sends an empty Close payload. `mask` as for appendFrame.
bool appendCloseFrame(evbuffer* out, std::uint16_t code, std::string_view reason, const std::uint8_t* mask);

// Removes `len` bytes (which must be available) from the front of `in` into `dst`, unmasking them
// with `mask` (nullptr: plain copy) at payload position `offset`. Returns false when `in` held
// fewer than `len` bytes (nothing is consumed then).
bool removeUnmasked(evbuffer* in, std::uint8_t* dst, std::size_t len, const std::uint8_t* mask,
                    std::uint64_t offset);

}  // namespace portico::ws
