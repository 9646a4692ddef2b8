// SPDX-License-Identifier: Apache-2.0
#pragma once
// OpenSSL's record buffers (about 17 KB to read and 17 KB to write per TLS connection) are kept
// while a connection is busy and freed once it has gone idle, instead of being freed and made
// again around every record (SSL_MODE_RELEASE_BUFFERS: 3.5% of the instructions of an HTTPS
// request, 7% of a wss message).
//
// How, without a timer or a syscall per connection: a TLS Stream that does I/O sets a flag
// (Stream::noteTlsIo) and, when its buffers were freed before, joins its event_base's list of
// streams that hold buffers. Once a second a timer shared by that list (one per event_base, armed
// only while the list is not empty) frees the buffers of the listed streams that did no I/O since
// the previous sweep (SSL_free_buffers) and unlists them; the others have their flag cleared.
// So buffers go at most two sweeps (2 s) after a connection's last I/O, and the sweep walks only
// streams that were busy lately, never the idle ones. SSL_free_buffers refuses while a record is
// half read or half written (OpenSSL 3.0.14+ also while records read ahead are unconsumed): such
// a stream stays listed and is tried again at the next sweep.

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

    // `stream` (on `base`) holds buffers from now on: it is listed (its slot is set).
    static void add(Stream& stream, event_base* base);
    // `stream` ends or no longer has TLS: unlisted (its slot is reset).
    static void remove(Stream& stream, event_base* base);
    // One sweep of `base`'s list now, as the timer does every kInterval (tests).
    static void sweepNow(event_base* base);
    // How many streams on `base` are listed, i.e. may hold OpenSSL buffers (tests, benchmarks).
    static std::size_t listed(event_base* base);
};

}  // namespace portico::net
