// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/ring_bio.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <event2/buffer.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "portico/core/handles.h"

namespace portico::tls {

namespace {

struct RingBioState {
    int fd = -1;
    const char* lent = nullptr;  // borrowReceived's bytes not read yet
    std::size_t lent_length = 0;
    core::EvbufferPtr kept;      // received bytes read before the lent ones
    core::EvbufferPtr to_send;
    CiphertextSink sink;  // setCiphertextSink
    int end_error = 0;
    bool ended = false;
};

RingBioState* stateOf(BIO* bio) { return static_cast<RingBioState*>(BIO_get_data(bio)); }

int readReceived(BIO* bio, char* out, int length) {
    BIO_clear_retry_flags(bio);
    if (out == nullptr || length <= 0) return 0;
    RingBioState* state = stateOf(bio);
    if (state == nullptr) return -1;
    RingBioState& s = *state;
    std::size_t got = 0;
    const auto wanted = static_cast<std::size_t>(length);
    if (s.kept && evbuffer_get_length(s.kept.get()) > 0) {
        const int n = evbuffer_remove(s.kept.get(), out, wanted);
        if (n > 0) got = static_cast<std::size_t>(n);
    }
    if (got < wanted && s.lent_length > 0) {
        const std::size_t n = std::min(wanted - got, s.lent_length);
        std::memcpy(out + got, s.lent, n);
        s.lent += n;
        s.lent_length -= n;
        got += n;
    }
    if (got > 0) return static_cast<int>(got);
    if (!s.ended) {
        BIO_set_retry_read(bio);  // nothing received yet: SSL_ERROR_WANT_READ
        return -1;
    }
    // As the socket BIO after recv: errno tells a reset (SSL_ERROR_SYSCALL), 0 a FIN.
    errno = s.end_error;
    if (s.end_error != 0) return -1;
    BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
    return 0;
}

int writeToSend(BIO* bio, const char* in, int length) {
    BIO_clear_retry_flags(bio);
    RingBioState* state = stateOf(bio);
    if (in == nullptr || length <= 0 || state == nullptr) return 0;
    RingBioState& s = *state;
    const bool queue_empty = !s.to_send || evbuffer_get_length(s.to_send.get()) == 0;
    if (s.sink.take != nullptr && queue_empty && s.sink.take(s.sink.arg, in, static_cast<std::size_t>(length)))
        return length;
    if (!s.to_send) s.to_send.reset(evbuffer_new());
    if (!s.to_send || evbuffer_add(s.to_send.get(), in, static_cast<std::size_t>(length)) != 0) {
        errno = ENOMEM;  // not retried: the connection fails
        return -1;
    }
    return length;
}

long control(BIO* bio, int command, long, void* ptr) {
    const RingBioState* state = stateOf(bio);
    const int fd = state != nullptr ? state->fd : -1;
    switch (command) {
        case BIO_C_GET_FD:
            if (ptr != nullptr) *static_cast<int*>(ptr) = fd;
            return fd;
        case BIO_CTRL_EOF:
            return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
        case BIO_CTRL_FLUSH:  // the ring sends what is queued with the loop pass's other writes
            return 1;
        default:  // kernel TLS, pending bytes, dup (the state is not shared), ...: none of them
            return 0;
    }
}

int create(BIO* bio) {
    auto* state = new (std::nothrow) RingBioState;
    if (state == nullptr) return 0;
    BIO_set_data(bio, state);
    BIO_set_init(bio, 1);
    return 1;
}

int destroy(BIO* bio) {
    delete stateOf(bio);
    BIO_set_data(bio, nullptr);
    return 1;
}

struct MethodDeleter {
    void operator()(BIO_METHOD* p) const { BIO_meth_free(p); }
};

BIO_METHOD* makeMethod(int type) {
    BIO_METHOD* m = BIO_meth_new(type, "portico ring");
    if (m != nullptr && (BIO_meth_set_read(m, readReceived) != 1 || BIO_meth_set_write(m, writeToSend) != 1 ||
                         BIO_meth_set_ctrl(m, control) != 1 || BIO_meth_set_create(m, create) != 1 ||
                         BIO_meth_set_destroy(m, destroy) != 1)) {
        BIO_meth_free(m);
        m = nullptr;
    }
    return m;
}

// As socket_bio.cpp: made on first use, a failure not kept. Its type number is kept apart, so
// that telling our BIO (asked for every record) takes no lock.
std::atomic<int> g_type{0};

BIO_METHOD* method() {
    static std::mutex made_mutex;
    static std::unique_ptr<BIO_METHOD, MethodDeleter> made;
    std::lock_guard lock(made_mutex);
    if (!made) {
        const int type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
        made.reset(makeMethod(type));
        if (made) g_type.store(type, std::memory_order_release);
    }
    return made.get();
}

RingBioState* stateOf(const SSL* ssl) {
    BIO* bio = SSL_get_rbio(ssl);
    const int type = g_type.load(std::memory_order_acquire);
    if (bio == nullptr || type == 0 || BIO_method_type(bio) != type) return nullptr;
    return stateOf(bio);
}

}  // namespace

bool attachRingBio(SSL* ssl, int fd) {
    BIO_METHOD* m = method();
    BIO* bio = m != nullptr ? BIO_new(m) : nullptr;
    RingBioState* state = bio != nullptr ? stateOf(bio) : nullptr;
    if (state == nullptr) {
        BIO_free(bio);
        return false;
    }
    state->fd = fd;
    SSL_set_bio(ssl, bio, bio);  // frees the socket BIO; what OpenSSL read ahead stays in the SSL
    return true;
}

bool onRingBio(const SSL* ssl) { return stateOf(ssl) != nullptr; }

// Each call below is for an SSL on this BIO (the Stream asks onRingBio's answer, kept); on
// another one it does nothing.
void borrowReceived(SSL* ssl, const char* data, std::size_t n) {
    if (RingBioState* s = stateOf(ssl)) {
        s->lent = data;
        s->lent_length = n;
    }
}

bool keepBorrowed(SSL* ssl) {
    RingBioState* s = stateOf(ssl);
    if (s == nullptr) return true;
    const char* rest = std::exchange(s->lent, nullptr);
    const std::size_t n = std::exchange(s->lent_length, 0);
    return n == 0 || keepReceived(ssl, rest, n);
}

bool keepReceived(SSL* ssl, const char* data, std::size_t n) {
    RingBioState* s = stateOf(ssl);
    if (s == nullptr) return false;
    if (!s->kept) s->kept.reset(evbuffer_new());
    return s->kept && evbuffer_add(s->kept.get(), data, n) == 0;
}

std::size_t receivedLength(const SSL* ssl) {
    const RingBioState* s = stateOf(ssl);
    if (s == nullptr) return 0;
    return (s->kept ? evbuffer_get_length(s->kept.get()) : 0) + s->lent_length;
}

void endReceived(SSL* ssl, int error) {
    RingBioState* s = stateOf(ssl);
    if (s == nullptr || s->ended) return;
    s->ended = true;
    s->end_error = error;
}

bool receivedEnded(const SSL* ssl) {
    const RingBioState* s = stateOf(ssl);
    return s != nullptr && s->ended;
}

void setCiphertextSink(SSL* ssl, CiphertextSink sink) {
    if (RingBioState* s = stateOf(ssl)) s->sink = sink;
}

evbuffer* toSend(SSL* ssl) {
    RingBioState* s = stateOf(ssl);
    return s != nullptr ? s->to_send.get() : nullptr;
}

std::size_t toSendLength(const SSL* ssl) {
    const RingBioState* s = stateOf(ssl);
    return s != nullptr && s->to_send ? evbuffer_get_length(s->to_send.get()) : 0;
}

void releaseIdle(SSL* ssl) {
    RingBioState* s = stateOf(ssl);
    if (s == nullptr) return;
    if (s->kept && evbuffer_get_length(s->kept.get()) == 0) s->kept.reset();
    if (s->to_send && evbuffer_get_length(s->to_send.get()) == 0) s->to_send.reset();
}

}  // namespace portico::tls
