// SPDX-License-Identifier: Apache-2.0
#pragma once
// OpenSSL's record buffers (about 17 KB to read and 17 KB to write per TLS connection) are kept
// while a connection is busy and freed once it has gone idle, instead of being freed and made
// again around every record (SSL_MODE_RELEASE_BUFFERS: 3.5% of the instructions of an HTTPS
// request, 7% of a wss message), and a connection that is not busy costs what it did with
// RELEASE_BUFFERS alone.
//
// How, without a timer or a syscall per connection: every TLS session starts with
// RELEASE_BUFFERS. A TLS Stream that does I/O sets a flag (Stream::noteTlsIo) and, when it is not
// listed, joins its event_base's list. Once a second a timer shared by that list (one per
// event_base, pending only while the list is not empty) looks at the listed streams:
//  - I/O since the previous sweep, and before it too (two sweep intervals in a row): busy, its
//    buffers are kept from now on (RELEASE_BUFFERS cleared);
//  - no I/O since the previous sweep: idle, its buffers are freed (SSL_free_buffers),
//    RELEASE_BUFFERS is set again and it leaves the list.
// So a connection keeps buffers only after it has been busy for about a second, they go at most
// two sweeps (2 s) after its last I/O, and the sweep walks only streams that did I/O lately,
// never the idle ones. A handshake and one request or message leave a connection as it was
// with RELEASE_BUFFERS alone (no buffers kept: a burst of such connections leaves no holes in
// the heap). SSL_free_buffers refuses while a record is half read or half written (OpenSSL
// 3.0.14+ also while records read ahead are unconsumed, CVE-2024-4741): such a stream stays
// listed and is tried again at the next sweep.

#include <chrono>
#include <cstddef>
#include <cstdint>

struct event_base;

namespace portico::net {

class Stream;

class TlsBufferSweep {
public:
    static constexpr std::chrono::milliseconds kInterval{1000};
    static constexpr std::uint32_t kUnlisted = UINT32_MAX;
    // A sweep that leaves its loop with no stream holding buffers (or the close of the last one
    // listed), after sweeps on its thread
    // freed the kept buffers of at least this many streams (~1 MB) since the last trim, gives
    // free heap pages back to the kernel (malloc_trim): busy connections gone idle together
    // leave the buffers' holes among the connections' own state, which glibc would keep
    // resident. Not while some stay busy: malloc_trim locks every worker's arena in turn.
    static constexpr std::size_t kTrimAfterStreams = 32;

    // `stream` (on `base`) holds buffers from now on: it is listed (its slot is set).
    static void add(Stream& stream, event_base* base);
    // `stream` ends or no longer has TLS: unlisted (its slot is reset).
    static void remove(Stream& stream, event_base* base);
    // One sweep of `base`'s list now, as the timer does every kInterval (tests).
    static void sweepNow(event_base* base);
    // How many streams on `base` are listed, i.e. may hold OpenSSL buffers (tests, benchmarks).
    static std::size_t listed(event_base* base);
    // How many event_bases on this thread have a list (and its timer): none once their streams
    // ended, so none outlives its base (tests).
    static std::size_t lists();
    // How many times sweeps called malloc_trim in this process (tests, benchmarks).
    static std::size_t trims();
};

}  // namespace portico::net
