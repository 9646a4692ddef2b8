// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_checker.h"

#include <event2/buffer.h>

#include "portico/ws/close_code.h"

namespace portico::ws {

FrameChecker::FrameChecker(Role sender, std::uint8_t allowed_rsv, std::uint64_t max_message_bytes)
    : max_message_bytes_(max_message_bytes),
      allowed_rsv_(static_cast<std::uint8_t>(allowed_rsv & 0x7)),
      expect_masked_(sender == Role::Client) {}

std::uint16_t FrameChecker::check(const FrameHeader& h) {
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

int copyControlPayload(evbuffer* in, const FrameHeader& header, std::uint8_t out[kMaxControlPayload]) {
    if (header.payload_length > kMaxControlPayload) return -1;
    const auto len = static_cast<std::size_t>(header.payload_length);
    if (evbuffer_get_length(in) < header.header_length + len) return -1;
    if (len == 0) return 0;
    evbuffer_ptr pos;
    if (evbuffer_ptr_set(in, &pos, header.header_length, EVBUFFER_PTR_SET) != 0) return -1;
    if (evbuffer_copyout_from(in, &pos, out, len) != static_cast<ev_ssize_t>(len)) return -1;
    if (header.masked) applyMask(out, len, header.mask, 0);
    return static_cast<int>(len);
}

}  // namespace portico::ws
