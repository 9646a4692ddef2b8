// SPDX-License-Identifier: Apache-2.0
#pragma once
// A failure-injection seam for libevent's allocations, in the tests only: libevent allocates
// through functions the test binary installs at start-up (event_set_mem_functions, before any
// other libevent call), which pass through to malloc/realloc/free except while a
// LibeventAllocFailure lives on the calling thread: then every allocation fails, as event_new
// does with no memory left. Nothing of it is in Portico's own code.

namespace portico::test {

class LibeventAllocFailure {
public:
    LibeventAllocFailure();
    ~LibeventAllocFailure();
    LibeventAllocFailure(const LibeventAllocFailure&) = delete;
    LibeventAllocFailure& operator=(const LibeventAllocFailure&) = delete;
    // The allocations refused since this one began.
    static int refused();
};

}  // namespace portico::test
