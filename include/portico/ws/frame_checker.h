// SPDX-License-Identifier: Apache-2.0
#pragma once
// Per-direction frame policy: what the `frames` relay (and the codec) enforce on each frame
// header without touching payloads. One FrameChecker per direction of a connection.

#include <cstddef>
#include <cstdint>

#include "portico/ws/close_code.h"
#include "portico/ws/frame_header.h"

struct evbuffer;

namespace portico::ws {

class FrameChecker {
public:
    // `sender`: who sends the frames this checker sees (Client: frames must be masked; Server:
    // frames must not be). `allowed_rsv`: RSV bits a negotiated extension may set (kRsv1 for
    // permessage-deflate, see allowedRsvBits() in permessage_deflate.h; 0 without extensions).
    // `max_message_bytes`: limit on the sum of the payload lengths of one message's frames
    // (under permessage-deflate that is the compressed size); beyond it check() returns 1009.
    FrameChecker(Role sender, std::uint8_t allowed_rsv, std::uint64_t max_message_bytes);

    // Judges the next frame header in sequence and updates the fragmentation state and counters.
    // Returns 0 when the frame is acceptable, otherwise the close code to fail the connection
    // with (the sender is at fault):
    //   1002: wrong masking for the sender; an RSV bit not allowed (RSV1 also only on the first
    //         frame of a data message, never on control frames: RFC 7692 6.1); a reserved opcode;
    //         a control frame that is fragmented or carries more than 125 bytes; a continuation
    //         frame outside a message, or a new text/binary frame inside one.
    //   1009: the message's payload bytes exceed max_message_bytes.
    // After a non-zero result the checker's state is unspecified: the connection is failing.
    std::uint16_t check(const FrameHeader& header);

    // The common frame judged from its first two bytes: a whole message in one frame (FIN, text
    // or binary) with a 7-bit length, outside a fragmented message, all of it within the
    // `available` bytes at `data`. When check() would accept such a frame, updates the state as
    // check() does and returns the frame's size (header and payload, at most 131 bytes);
    // otherwise returns 0 and changes nothing: the caller parses the header and calls check(),
    // which judges every frame (a unit test holds the two to the same verdicts for every first
    // two bytes).
    std::size_t acceptSmallMessage(const std::uint8_t* data, std::size_t available);

    // True between the first and the final frame of a fragmented data message.
    bool inMessage() const { return in_message_; }
    // Whether the current (or last) data message started with RSV1 set (compressed).
    bool messageCompressed() const { return message_compressed_; }

    // Complete data messages since construction (the sessions' message counts). Frames and
    // payload bytes are not counted here: the relays count the bytes they forward.
    std::uint64_t messages() const { return messages_; }
    std::uint64_t maxMessageBytes() const { return max_message_bytes_; }

private:
    std::uint64_t max_message_bytes_;
    std::uint64_t message_bytes_ = 0;
    std::uint64_t messages_ = 0;
    std::uint8_t allowed_rsv_;
    bool expect_masked_;
    bool in_message_ = false;
    bool message_compressed_ = false;
};

// Inline: one call per frame on the relays' hot path.
inline std::uint16_t FrameChecker::check(const FrameHeader& h) {
    // RFC 6455 5.1: a server closes on an unmasked client frame; a client on a masked server frame.
    if (h.masked != expect_masked_) return close_code::kProtocolError;
    // RFC 6455 5.2: RSV bits must be 0 unless an extension defining them was negotiated.
    if ((h.rsv & ~allowed_rsv_) != 0) return close_code::kProtocolError;

    if (isControl(h.opcode)) {
        // RFC 6455 5.5: control frames are never fragmented and carry at most 125 bytes;
        // RFC 7692 6.1: an extension's RSV1 is never set on them; 11-15 are reserved (5.2).
        if (!isKnownOpcode(h.opcode) || !h.fin || h.payload_length > kMaxControlPayload || h.rsv != 0)
            return close_code::kProtocolError;
        return 0;
    }

    switch (h.opcode) {
        case Opcode::Continuation:
            // RFC 6455 5.4: a continuation belongs to a started message. RFC 7692 6.1: RSV1 is
            // only set on a message's first frame.
            if (!in_message_ || (h.rsv & kRsv1) != 0) return close_code::kProtocolError;
            break;
        case Opcode::Text:
        case Opcode::Binary:
            // RFC 6455 5.4: messages do not interleave; a new one cannot start inside another.
            if (in_message_) return close_code::kProtocolError;
            in_message_ = true;
            message_bytes_ = 0;
            message_compressed_ = (h.rsv & kRsv1) != 0;
            break;
        default:
            return close_code::kProtocolError;  // 3-7: reserved non-control opcodes
    }
    // message_bytes_ <= max_message_bytes_ always holds here, so the subtraction cannot wrap.
    if (h.payload_length > max_message_bytes_ - message_bytes_) return close_code::kMessageTooBig;
    message_bytes_ += h.payload_length;
    if (h.fin) {
        in_message_ = false;
        ++messages_;
    }
    return 0;
}

inline std::size_t FrameChecker::acceptSmallMessage(const std::uint8_t* data, std::size_t available) {
    if (available < 2) return 0;
    const std::uint8_t b0 = data[0];
    const std::uint8_t b1 = data[1];
    const std::uint8_t opcode = b0 & 0x0F;
    const std::uint8_t rsv = (b0 >> 4) & 0x7;
    const std::uint8_t len7 = b1 & 0x7F;
    const bool masked = (b1 & 0x80) != 0;
    // FIN, Text or Binary, RSV as allowed, masking as the sender's role asks, a 7-bit length
    // within max_message_bytes, not inside a fragmented message (the rules of check()).
    if ((b0 & 0x80) == 0 || (opcode != 1 && opcode != 2) || (rsv & ~allowed_rsv_) != 0 || masked != expect_masked_ ||
        len7 >= 126 || len7 > max_message_bytes_ || in_message_)
        return 0;
    const std::size_t size = 2u + (masked ? 4u : 0u) + len7;
    if (size > available) return 0;
    message_bytes_ = len7;
    message_compressed_ = (rsv & kRsv1) != 0;
    ++messages_;
    return size;
}

// For the relay, which copies and unmasks only control payloads: copies the payload of the
// control frame `header` (already peeked at the front of `in`, with the whole frame available)
// into `out`, unmasked, without draining `in`. Returns the payload length, or -1 if the payload is
// longer than kMaxControlPayload or not all in `in` yet.
int copyControlPayload(evbuffer* in, const FrameHeader& header, std::uint8_t out[kMaxControlPayload]);

}  // namespace portico::ws
