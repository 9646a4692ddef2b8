// SPDX-License-Identifier: Apache-2.0
#pragma once
// Per-direction frame policy: what the `frames` relay (and the codec) enforce on each frame
// header without touching payloads. One FrameChecker per direction of a connection.

#include <cstddef>
#include <cstdint>

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

// For the relay, which copies and unmasks only control payloads: copies the payload of the
// control frame `header` (already peeked at the front of `in`, with the whole frame available)
// into `out`, unmasked, without draining `in`. Returns the payload length, or -1 if the payload is
// longer than kMaxControlPayload or not all in `in` yet.
int copyControlPayload(evbuffer* in, const FrameHeader& header, std::uint8_t out[kMaxControlPayload]);

}  // namespace portico::ws
