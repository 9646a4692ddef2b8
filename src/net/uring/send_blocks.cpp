// SPDX-License-Identifier: Apache-2.0
#include "portico/net/uring/send_blocks.h"

#include <new>

namespace portico::net::uring {

// Blocks are handed out in id order until all were made; the memory for all of them is one
// allocation (its pages become resident as blocks are first written). No memory: kNone, and
// the writes go to output() as they did before the pool.
std::uint16_t SendBlocks::makeBlock() {
    if (made_ == kCount) return kNone;
    if (!memory_) {
        memory_.reset(new (std::nothrow) char[static_cast<std::size_t>(kCount) * kSize]);
        if (!memory_) return kNone;
        core::poisonPooled(memory_.get(), static_cast<std::size_t>(kCount) * kSize);  // unpoisoned as taken
    }
    return made_++;
}

}  // namespace portico::net::uring
