// SPDX-License-Identifier: Apache-2.0
#include "portico/net/tls_buffer_sweep.h"

#include <event2/event.h>
#include <openssl/ssl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/net/stream.h"

namespace portico::net {

// The streams of one event_base that may hold buffers, and the timer that sweeps them. It exists
// only while the list is not empty, so that it never outlives its base (the streams on a base
// end before it does).
struct TlsBufferSweepList {
    event_base* base;
    core::InlineEvent timer;
    std::vector<Stream*> streams;  // each stream's tls_buffer_slot_ is its index here

    void unlist(std::size_t i) {
        streams[i]->tls_buffer_slot_ = TlsBufferSweep::kUnlisted;
        streams[i] = streams.back();
        streams.pop_back();
        if (i < streams.size()) streams[i]->tls_buffer_slot_ = static_cast<std::uint32_t>(i);
    }
    // Returns how many streams that had kept their buffers were swept of them.
    std::size_t sweep() {
        std::size_t freed = 0;
        for (std::size_t i = 0; i < streams.size();) {
            Stream* stream = streams[i];
            SSL* ssl = stream->ssl_.get();
            if (stream->tls_io_) {
                // Busy since the last sweep; busy before it too: keep the buffers from now on.
                stream->tls_io_ = false;
                if (stream->tls_warm_ && ssl) SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
                stream->tls_warm_ = true;
                ++i;
            } else if (ssl && SSL_free_buffers(ssl) != 1) {
                ++i;  // a record half read or half written: its buffers are still needed
            } else {
                if (ssl && (SSL_get_mode(ssl) & SSL_MODE_RELEASE_BUFFERS) == 0) {
                    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);  // until it proves busy again
                    ++freed;  // it had kept them
                }
                stream->releaseIdleTls();  // the ring's ciphertext buffers (stream_tls_ring.cpp)
                stream->tls_warm_ = false;
                unlist(i);
            }
        }
        return freed;
    }
};

namespace {

// Usually one entry per thread (a worker's loop); tests may run several loops on one thread.
thread_local std::vector<std::unique_ptr<TlsBufferSweepList>> t_lists;

TlsBufferSweepList* find(event_base* base) {
    for (auto& list : t_lists)
        if (list->base == base) return list.get();
    return nullptr;
}

void drop(TlsBufferSweepList* list) {
    // Freeing the timer inside its own callback is fine: libevent deletes it first.
    std::erase_if(t_lists, [list](const auto& owned) { return owned.get() == list; });
}

// Kept buffer pairs that sweeps on this thread (a worker) freed since its last malloc_trim.
thread_local std::size_t t_freed_since_trim = 0;
std::atomic<std::size_t> g_trims{0};

// One sweep, then what it freed goes back to the kernel when it was much: glibc keeps freed
// chunks that are not at the top of the heap, and buffers that lived a second or two among
// longer-lived allocations (the connections' own state, made at the same time) leave holes that
// would keep the RSS of a burst of connections at its peak. malloc_trim returns the whole pages
// of free chunks (one madvise each), but it walks and locks every arena in turn, the other
// workers' too: it waits for a busy worker's allocations and makes them wait (measured with 4
// workers on 2 cores: a few hundred microseconds of CPU, up to ~100 ms of wall time under load;
// bench/RESULTS.md). So it runs only when a sweep left its loop with no TLS stream holding
// buffers (every connection of the worker that was busy has been idle for a second: a burst
// ended, not while load goes on) and sweeps on this thread freed at least kTrimAfterStreams
// buffer pairs (~1 MB) since its last trim: at most once per burst per worker.
// malloc_trim once the sweeps on this thread freed enough since the last one; called where the
// last listed stream of a loop left its list (gone idle at a sweep, or closed).
void trimIfDue() {
#if defined(__GLIBC__)
    if (t_freed_since_trim >= TlsBufferSweep::kTrimAfterStreams) {
        t_freed_since_trim = 0;
        malloc_trim(0);
        g_trims.fetch_add(1, std::memory_order_relaxed);
    }
#endif
}

void sweepAndTrim(TlsBufferSweepList* list) {
    t_freed_since_trim += list->sweep();
    if (!list->streams.empty()) return;
    drop(list);
    trimIfDue();
}

void onTimer(int, short, void* arg) { sweepAndTrim(static_cast<TlsBufferSweepList*>(arg)); }

}  // namespace

void TlsBufferSweep::add(Stream& stream, event_base* base) {
    TlsBufferSweepList* list = find(base);
    if (list == nullptr) {
        auto made = std::make_unique<TlsBufferSweepList>();
        made->base = base;
        made->timer.assign(base, -1, EV_PERSIST, &onTimer, made.get());
        const timeval every{static_cast<time_t>(kInterval.count() / 1000),
                            static_cast<suseconds_t>(kInterval.count() % 1000 * 1000)};
        event_add(made->timer.get(), &every);
        list = made.get();
        t_lists.push_back(std::move(made));
    }
    stream.tls_buffer_slot_ = static_cast<std::uint32_t>(list->streams.size());
    list->streams.push_back(&stream);
}

void TlsBufferSweep::remove(Stream& stream, event_base* base) {
    TlsBufferSweepList* list = find(base);
    if (list == nullptr || stream.tls_buffer_slot_ >= list->streams.size() ||
        list->streams[stream.tls_buffer_slot_] != &stream) {
        stream.tls_buffer_slot_ = kUnlisted;
        return;
    }
    list->unlist(stream.tls_buffer_slot_);
    // The last busy stream closed instead of going idle: the burst is over as surely as when
    // it goes idle, so the trim (if due) is made here. The list goes now, not at a later sweep:
    // it must not outlive its base (a stream's end may come just before its loop's).
    if (list->streams.empty()) {
        drop(list);
        trimIfDue();
    }
}

void TlsBufferSweep::sweepNow(event_base* base) {
    if (TlsBufferSweepList* list = find(base)) sweepAndTrim(list);
}

std::size_t TlsBufferSweep::trims() { return g_trims.load(std::memory_order_relaxed); }

std::size_t TlsBufferSweep::lists() { return t_lists.size(); }

std::size_t TlsBufferSweep::listed(event_base* base) {
    TlsBufferSweepList* list = find(base);
    return list ? list->streams.size() : 0;
}

}  // namespace portico::net
