// SPDX-License-Identifier: Apache-2.0
#pragma once
// A failure-injection seam for zlib's compressor, in the tests only: the test binary defines
// deflateInit2_ and deflate itself (the library's calls bind to the executable's definitions),
// passing through to zlib's own (dlsym RTLD_NEXT) except while a ZlibDeflateFailure lives on the
// calling thread: then a new stream cannot be made (Z_MEM_ERROR, as with no memory left) and a
// kept one refuses to compress (Z_STREAM_ERROR). Nothing of it is in Portico's own code.

namespace portico::test {

class ZlibDeflateFailure {
public:
    ZlibDeflateFailure();
    ~ZlibDeflateFailure();
    ZlibDeflateFailure(const ZlibDeflateFailure&) = delete;
    ZlibDeflateFailure& operator=(const ZlibDeflateFailure&) = delete;
    // The zlib calls refused since this one began.
    static int refused();
};

}  // namespace portico::test
