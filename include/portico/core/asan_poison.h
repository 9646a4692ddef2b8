// SPDX-License-Identifier: Apache-2.0
#pragma once
// Memory a pool keeps for reuse (net/uring/send_blocks.h) marked unaddressable under
// AddressSanitizer while it is pooled, so that a use of a block given back (a stale id, a late
// completion's bytes) is reported as a use after free would be. Nothing without ASan.

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define PORTICO_ASAN_POISONS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PORTICO_ASAN_POISONS 1
#endif
#endif

#ifdef PORTICO_ASAN_POISONS
#include <sanitizer/asan_interface.h>
#endif

namespace portico::core {

inline void poisonPooled([[maybe_unused]] const void* data, [[maybe_unused]] std::size_t n) {
#ifdef PORTICO_ASAN_POISONS
    ASAN_POISON_MEMORY_REGION(data, n);
#endif
}

inline void unpoisonPooled([[maybe_unused]] const void* data, [[maybe_unused]] std::size_t n) {
#ifdef PORTICO_ASAN_POISONS
    ASAN_UNPOISON_MEMORY_REGION(data, n);
#endif
}

}  // namespace portico::core

#undef PORTICO_ASAN_POISONS
