// SPDX-License-Identifier: Apache-2.0
#pragma once
// `websocket.trace`: the words of one trace line, one frame each. Pure: no I/O, no allocation,
// so the line format is unit-tested on its own (frame_tracer.h decides when a line is written).
//
//   client->upstream text fin=1 rsv=000 mask=1 len=5 payload="hello"
//   upstream->client close fin=1 rsv=000 mask=0 len=5 code=1000 reason="bye"
//   portico->client ping fin=1 rsv=000 mask=0 len=7
//
// RSV bits are RSV1 RSV2 RSV3 in that order. Payload and reason bytes are escaped so that a
// line stays one printable line: \" \\ \n \r \t, other bytes outside 0x20-0x7e as \xHH. A
// payload shown only in part is followed by "...".

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "portico/ws/frame_header.h"

namespace portico::ws {

// Who sent a frame to whom. "portico" is Portico itself: its pings, the Closes it decides, the
// built-in endpoints (echo, pubsub).
enum class TraceDirection : std::uint8_t {
    ClientToUpstream,
    UpstreamToClient,
    ClientToPortico,
    PorticoToClient,
    UpstreamToPortico,
    PorticoToUpstream,
};
std::string_view toString(TraceDirection direction);  // "client->upstream", ...

struct TracedFrame {
    TraceDirection direction = TraceDirection::ClientToUpstream;
    FrameHeader header;              // opcode, fin, rsv, masked, payload_length
    std::string_view payload;        // the first bytes of a text payload, unmasked; empty: none
    std::string_view close_payload;  // a Close frame's whole payload, unmasked (<= 125 bytes)
};

// Longest line formatFrameTrace writes (a 256-byte payload and a 123-byte reason escaped).
inline constexpr std::size_t kMaxTraceLine = 1536;

// Writes the trace line for `frame` into `out` (NUL-terminated, cut to `capacity` - 1) and
// returns its length. A Close shows "code=N reason=\"...\"" (code=none for an empty payload,
// code=malformed for a 1-byte one); the payload is shown only when non-empty.
std::size_t formatFrameTrace(char* out, std::size_t capacity, const TracedFrame& frame);

}  // namespace portico::ws
