// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_header.h"

#include <algorithm>
#include <cstring>
#include <random>

#include <event2/buffer.h>
#include <openssl/rand.h>

namespace portico::ws {

namespace {

// Small frames are assembled on the stack and handed to libevent in one evbuffer_add: one chain
// write instead of two for the common chat-sized message.
constexpr std::size_t kSmallFrame = 256;

}  // namespace

std::string_view toString(Opcode op) {
    switch (op) {
        case Opcode::Continuation: return "continuation";
        case Opcode::Text: return "text";
        case Opcode::Binary: return "binary";
        case Opcode::Close: return "close";
        case Opcode::Ping: return "ping";
        case Opcode::Pong: return "pong";
    }
    return "reserved";
}

int peekFrameHeader(evbuffer* buf, FrameHeader& out) {
    std::uint8_t head[kMaxFrameHeaderBytes];
    const ev_ssize_t n = evbuffer_copyout(buf, head, sizeof head);
    if (n <= 0) return 0;
    return parseFrameHeader(head, static_cast<std::size_t>(n), out);
}

std::size_t writeFrameHeader(std::uint8_t out[kMaxFrameHeaderBytes], bool fin, std::uint8_t rsv, Opcode opcode,
                             std::uint64_t length, const std::uint8_t* mask) {
    out[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (static_cast<std::uint8_t>(opcode) & 0x0F));
    const std::uint8_t mask_bit = mask != nullptr ? 0x80 : 0;
    std::size_t n = 0;
    if (length < 126) {
        out[1] = static_cast<std::uint8_t>(mask_bit | length);
        n = 2;
    } else if (length <= 0xFFFF) {
        out[1] = static_cast<std::uint8_t>(mask_bit | 126);
        out[2] = static_cast<std::uint8_t>(length >> 8);
        out[3] = static_cast<std::uint8_t>(length);
        n = 4;
    } else {
        out[1] = static_cast<std::uint8_t>(mask_bit | 127);
        for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(length >> (56 - 8 * i));
        n = 10;
    }
    if (mask != nullptr) {
        std::memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void copyMasked(std::uint8_t* dst, const std::uint8_t* src, std::size_t len, const std::uint8_t mask[4],
                std::uint64_t offset) {
    // The key repeats every 4 bytes; rotate it to `offset` and XOR 8 bytes at a time.
    std::uint8_t key8[8];
    for (std::size_t i = 0; i < 8; ++i) key8[i] = mask[(offset + i) & 3];
    std::uint64_t key64 = 0;
    std::memcpy(&key64, key8, 8);
    std::size_t i = 0;
    for (; i + 16 <= len; i += 16) {
        std::uint64_t a = 0;
        std::uint64_t b = 0;
        std::memcpy(&a, src + i, 8);
        std::memcpy(&b, src + i + 8, 8);
        a ^= key64;
        b ^= key64;
        std::memcpy(dst + i, &a, 8);
        std::memcpy(dst + i + 8, &b, 8);
    }
    for (; i + 8 <= len; i += 8) {
        std::uint64_t a = 0;
        std::memcpy(&a, src + i, 8);
        a ^= key64;
        std::memcpy(dst + i, &a, 8);
    }
    for (; i < len; ++i) dst[i] = static_cast<std::uint8_t>(src[i] ^ key8[i & 7]);
}

void applyMask(std::uint8_t* data, std::size_t len, const std::uint8_t mask[4], std::uint64_t offset) {
    copyMasked(data, data, len, mask, offset);
}

void makeMask(std::uint8_t out[4]) {
    // RFC 6455 10.3: the key must not be predictable. OpenSSL's DRBG is the strong source; should
    // it ever fail, fall back to the OS entropy behind std::random_device rather than a constant.
    if (RAND_bytes(out, 4) == 1) return;
    thread_local std::random_device device;
    const std::uint32_t v = device();
    std::memcpy(out, &v, 4);
}

bool appendFrame(evbuffer* out, Opcode opcode, bool fin, std::uint8_t rsv, const void* data, std::size_t len,
                 const std::uint8_t* mask) {
    const auto* src = static_cast<const std::uint8_t*>(data);
    if (len <= kSmallFrame) {
        std::uint8_t frame[kMaxFrameHeaderBytes + kSmallFrame];
        const std::size_t h = writeFrameHeader(frame, fin, rsv, opcode, len, mask);
        if (len > 0) {
            if (mask != nullptr) {
                copyMasked(frame + h, src, len, mask, 0);
            } else {
                std::memcpy(frame + h, src, len);
            }
        }
        return evbuffer_add(out, frame, h + len) == 0;
    }
    std::uint8_t header[kMaxFrameHeaderBytes];
    const std::size_t h = writeFrameHeader(header, fin, rsv, opcode, len, mask);
    if (evbuffer_add(out, header, h) != 0) return false;
    if (mask == nullptr) return evbuffer_add(out, src, len) == 0;
    // Mask straight into libevent's memory: one pass over the payload.
    evbuffer_iovec vec;
    if (evbuffer_reserve_space(out, static_cast<ev_ssize_t>(len), &vec, 1) < 1 || vec.iov_len < len) return false;
    copyMasked(static_cast<std::uint8_t*>(vec.iov_base), src, len, mask, 0);
    vec.iov_len = len;
    return evbuffer_commit_space(out, &vec, 1) == 0;
}

bool appendCloseFrame(evbuffer* out, std::uint16_t code, std::string_view reason, const std::uint8_t* mask) {
    std::uint8_t payload[kMaxControlPayload];
    std::size_t len = 0;
    if (code != 0) {
        payload[0] = static_cast<std::uint8_t>(code >> 8);
        payload[1] = static_cast<std::uint8_t>(code);
        std::size_t n = std::min(reason.size(), kMaxControlPayload - 2);
        // Never cut a UTF-8 sequence in half (RFC 6455 5.5.1: the reason is UTF-8): step back
        // over continuation bytes when the cut falls inside a character.
        if (n < reason.size()) {
            while (n > 0 && (static_cast<std::uint8_t>(reason[n]) & 0xC0) == 0x80) --n;
        }
        if (n > 0) std::memcpy(payload + 2, reason.data(), n);
        len = 2 + n;
    }
    return appendFrame(out, Opcode::Close, true, 0, payload, len, mask);
}

bool removeUnmasked(evbuffer* in, std::uint8_t* dst, std::size_t len, const std::uint8_t* mask,
                    std::uint64_t offset) {
    if (evbuffer_get_length(in) < len) return false;
    if (len == 0) return true;
    if (mask == nullptr) return evbuffer_remove(in, dst, len) == static_cast<int>(len);
    std::size_t done = 0;
    while (done < len) {
        evbuffer_iovec vec[8];
        const int n = evbuffer_peek(in, static_cast<ev_ssize_t>(len - done), nullptr, vec, 8);
        if (n <= 0) return false;
        std::size_t got = 0;
        for (int i = 0; i < n && i < 8 && done + got < len; ++i) {
            const std::size_t take = std::min(vec[i].iov_len, len - done - got);
            copyMasked(dst + done + got, static_cast<const std::uint8_t*>(vec[i].iov_base), take, mask,
                       offset + done + got);
            got += take;
        }
        evbuffer_drain(in, got);
        done += got;
    }
    return true;
}

}  // namespace portico::ws
