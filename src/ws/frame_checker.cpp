// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_checker.h"

#include <event2/buffer.h>

#include "portico/ws/close_code.h"

namespace portico::ws {

FrameChecker::FrameChecker(Role sender, std::uint8_t allowed_rsv, std::uint64_t max_message_bytes)
    : max_message_bytes_(max_message_bytes),
      allowed_rsv_(static_cast<std::uint8_t>(allowed_rsv & 0x7)),
      expect_masked_(sender == Role::Client) {}

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
