// SPDX-License-Identifier: Apache-2.0
#include "zlib_deflate_failure.h"

#include <dlfcn.h>
#include <cstdio>
#include <cstdlib>
#include <zlib.h>

namespace portico::test {
namespace {

thread_local bool t_failing = false;
thread_local int t_refused = 0;

// zlib's own definition of `name`, the next one after the executable's.
template <typename Function>
Function zlibs(const char* name) {
    void* symbol = dlsym(RTLD_NEXT, name);
    if (symbol == nullptr) {  // zlib linked statically: nothing to pass the calls on to
        std::fprintf(stderr, "zlib_deflate_failure: no shared zlib %s (%s)\n", name, dlerror());
        std::abort();
    }
    return reinterpret_cast<Function>(symbol);
}

}  // namespace

namespace {
bool refuseDeflate() {
    if (!t_failing) return false;
    ++t_refused;
    return true;
}
}  // namespace

ZlibDeflateFailure::ZlibDeflateFailure() {
    t_failing = true;
    t_refused = 0;
}

ZlibDeflateFailure::~ZlibDeflateFailure() { t_failing = false; }

int ZlibDeflateFailure::refused() { return t_refused; }

}  // namespace portico::test

extern "C" int deflateInit2_(z_streamp strm, int level, int method, int window_bits, int mem_level, int strategy,
                             const char* version, int stream_size) {
    if (portico::test::refuseDeflate()) return Z_MEM_ERROR;
    static const auto next = portico::test::zlibs<decltype(&deflateInit2_)>("deflateInit2_");
    return next(strm, level, method, window_bits, mem_level, strategy, version, stream_size);
}

extern "C" int deflate(z_streamp strm, int flush) {
    if (portico::test::refuseDeflate()) return Z_STREAM_ERROR;
    static const auto next = portico::test::zlibs<decltype(&deflate)>("deflate");
    return next(strm, flush);
}
