// SPDX-License-Identifier: Apache-2.0
#include "portico/net/tls_buffer_sweep.h"

#include <event2/event.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "portico/core/handles.h"
#include "portico/net/stream.h"

namespace portico::net {

// The streams of one event_base that may hold buffers, and the timer that sweeps them. It exists
// only while the list is not empty, so that it never outlives its base (the streams on a base
// end before it does).
struct TlsBufferSweepList {
    event_base* base;
    core::EventPtr timer;
    std::vector<Stream*> streams;  // each stream's tls_buffer_slot_ is its index here

    void unlist(std::size_t i) {
        streams[i]->tls_buffer_slot_ = TlsBufferSweep::kUnlisted;
        streams[i] = streams.back();
        streams.pop_back();
        if (i < streams.size()) streams[i]->tls_buffer_slot_ = static_cast<std::uint32_t>(i);
    }
    void sweep() {
        for (std::size_t i = 0; i < streams.size();) {
            Stream* stream = streams[i];
            if (stream->tls_io_) {
                stream->tls_io_ = false;  // busy since the last sweep: looked at again next time
                ++i;
            } else if (stream->ssl_ && SSL_free_buffers(stream->ssl_.get()) != 1) {
                ++i;  // a record half read or half written: its buffers are still needed
            } else {
                unlist(i);
            }
        }
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

void onTimer(int, short, void* arg) {
    auto* list = static_cast<TlsBufferSweepList*>(arg);
    list->sweep();
    if (list->streams.empty()) drop(list);
}

}  // namespace

void TlsBufferSweep::add(Stream& stream, event_base* base) {
    TlsBufferSweepList* list = find(base);
    if (list == nullptr) {
        auto made = std::make_unique<TlsBufferSweepList>();
        made->base = base;
        made->timer.reset(event_new(base, -1, EV_PERSIST, &onTimer, made.get()));
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
    if (list->streams.empty()) drop(list);
}

void TlsBufferSweep::sweepNow(event_base* base) {
    if (TlsBufferSweepList* list = find(base)) {
        list->sweep();
        if (list->streams.empty()) drop(list);
    }
}

std::size_t TlsBufferSweep::listed(event_base* base) {
    TlsBufferSweepList* list = find(base);
    return list ? list->streams.size() : 0;
}

}  // namespace portico::net
