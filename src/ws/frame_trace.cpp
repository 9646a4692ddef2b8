// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_trace.h"

#include <cstdio>

namespace portico::ws {

namespace {

// Appends to a fixed buffer, dropping what does not fit (the line is cut, never overflows).
class LineWriter {
public:
    LineWriter(char* out, std::size_t capacity) : out_(out), capacity_(capacity) {}

    void put(char c) {
        if (length_ + 1 < capacity_) out_[length_++] = c;
    }
    void put(std::string_view text) {
        for (char c : text) put(c);
    }
    void number(const char* key, unsigned long long value) {
        char digits[32];
        int n = std::snprintf(digits, sizeof digits, " %s=%llu", key, value);
        if (n > 0) put(std::string_view(digits, static_cast<std::size_t>(n)));
    }
    // Bytes between quotes, escaped so that the log line stays one printable line.
    void quoted(std::string_view bytes) {
        static constexpr char kHex[] = "0123456789abcdef";
        put('"');
        for (char ch : bytes) {
            const auto c = static_cast<unsigned char>(ch);
            switch (c) {
                case '"': put("\\\""); break;
                case '\\': put("\\\\"); break;
                case '\n': put("\\n"); break;
                case '\r': put("\\r"); break;
                case '\t': put("\\t"); break;
                default:
                    if (c >= 0x20 && c < 0x7f) {
                        put(ch);
                    } else {
                        put("\\x");
                        put(kHex[c >> 4]);
                        put(kHex[c & 0xf]);
                    }
            }
        }
        put('"');
    }
    std::size_t finish() {
        if (capacity_ > 0) out_[length_] = '\0';
        return length_;
    }

private:
    char* out_;
    std::size_t capacity_;
    std::size_t length_ = 0;
};

}  // namespace

std::string_view toString(TraceDirection direction) {
    switch (direction) {
        case TraceDirection::ClientToUpstream: return "client->upstream";
        case TraceDirection::UpstreamToClient: return "upstream->client";
        case TraceDirection::ClientToPortico: return "client->portico";
        case TraceDirection::PorticoToClient: return "portico->client";
        case TraceDirection::UpstreamToPortico: return "upstream->portico";
        case TraceDirection::PorticoToUpstream: return "portico->upstream";
    }
    return "unknown";
}

std::size_t formatFrameTrace(char* out, std::size_t capacity, const TracedFrame& frame) {
    LineWriter line(out, capacity);
    const FrameHeader& h = frame.header;
    line.put(toString(frame.direction));
    line.put(' ');
    line.put(toString(h.opcode));
    if (!isKnownOpcode(h.opcode)) line.number("opcode", static_cast<unsigned>(h.opcode));
    line.number("fin", h.fin ? 1 : 0);
    line.put(" rsv=");
    for (std::uint8_t bit : {kRsv1, kRsv2, kRsv3}) line.put((h.rsv & bit) != 0 ? '1' : '0');
    line.number("mask", h.masked ? 1 : 0);
    line.number("len", h.payload_length);
    if (h.opcode == Opcode::Close) {
        const std::string_view p = frame.close_payload;
        if (p.empty()) {
            line.put(" code=none");
        } else if (p.size() == 1) {
            line.put(" code=malformed");  // RFC 6455 5.5.1: a code is two bytes
        } else {
            line.number("code", (static_cast<unsigned>(static_cast<unsigned char>(p[0])) << 8) |
                                    static_cast<unsigned char>(p[1]));
            line.put(" reason=");
            line.quoted(p.substr(2));
        }
    }
    if (!frame.payload.empty()) {
        line.put(" payload=");
        line.quoted(frame.payload);
        if (frame.payload.size() < h.payload_length) line.put("...");
    }
    return line.finish();
}

}  // namespace portico::ws
