// SPDX-License-Identifier: Apache-2.0
#pragma once
// Stream's read slot, for the files that read into one (stream.cpp: readPlain; stream_tls.cpp:
// readTls). Private to src/net.

#include <event2/buffer.h>

#include "portico/net/stream.h"

namespace portico::net {

// Where one read lands: the thread's scratch area (a direct reader takes it from there, no
// copy) or a reservation at the end of input() (in).
struct Stream::ReadSlot {
    evbuffer* in = nullptr;
    evbuffer_iovec vec{};
    char* into = nullptr;
    bool was_empty = false;
};

}  // namespace portico::net
