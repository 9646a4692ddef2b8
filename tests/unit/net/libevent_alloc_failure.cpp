// SPDX-License-Identifier: Apache-2.0
#include "libevent_alloc_failure.h"

#include <cstdlib>
#include <event2/event.h>

namespace portico::test {
namespace {

thread_local bool t_failing = false;
thread_local int t_refused = 0;

void* allocate(std::size_t n) {
    if (t_failing) {
        ++t_refused;
        return nullptr;
    }
    return std::malloc(n);
}

void* reallocate(void* p, std::size_t n) {
    if (t_failing) {
        ++t_refused;
        return nullptr;
    }
    return std::realloc(p, n);
}

// Installed during static initialisation, before the tests make any event_base (libevent asks for
// its memory functions to be set before its first allocation; these pass through anyway).
const bool kInstalled = [] {
    event_set_mem_functions(&allocate, &reallocate, &std::free);
    return true;
}();

}  // namespace

LibeventAllocFailure::LibeventAllocFailure() {
    (void)kInstalled;
    t_failing = true;
    t_refused = 0;
}

LibeventAllocFailure::~LibeventAllocFailure() { t_failing = false; }

int LibeventAllocFailure::refused() { return t_refused; }

}  // namespace portico::test
