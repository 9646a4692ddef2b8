// SPDX-License-Identifier: Apache-2.0
// A TLS Stream's records, once the handshake is done (stream_tls_handshake.cpp): SSL_read into
// the read slot that readPlain uses too, four records a wakeup; SSL_write from output() a
// record at a time, or from the caller's bytes (write() with nothing queued). OpenSSL's BIO
// is the socket's on epoll and the ring's after moveTlsToRing (stream_tls_ring.cpp): these
// calls are the same for both. The plaintext reads and writes are in stream.cpp.
#include "portico/net/stream.h"

#include <algorithm>
#include <cerrno>
#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "portico/tls/errors.h"
#include "net/stream_read_slot.h"

namespace portico::net {

std::size_t Stream::writeTlsFrom(const char* data, std::size_t n, bool& blocked) {
    std::size_t sent = 0;
    blocked = false;
    while (sent < n) {
        noteTlsIo();
        tls::clearStaleErrors();
        const int k = SSL_write(ssl_.get(), data + sent, static_cast<int>(std::min(n - sent, kReadChunk)));
        if (k <= 0) {
            blocked = SSL_get_error(ssl_.get(), k) == SSL_ERROR_WANT_WRITE;
            break;
        }
        sent += static_cast<std::size_t>(k);
    }
    bytes_written_ += sent;
    return sent;
}

bool Stream::writeTls() {
    evbuffer* out = output_.get();
    // One TLS record per call: gather small chains first so a response head and its body do not
    // become several records (and several send calls).
    std::size_t want = std::min<std::size_t>(evbuffer_get_length(out), kReadChunk);
    const unsigned char* data = evbuffer_pullup(out, static_cast<ev_ssize_t>(want));
    noteTlsIo();
    tls::clearStaleErrors();
    int n = SSL_write(ssl_.get(), data, static_cast<int>(want));
    if (n > 0) {
        evbuffer_drain(out, static_cast<std::size_t>(n));
        bytes_written_ += static_cast<std::uint64_t>(n);
        return true;
    }
    switch (SSL_get_error(ssl_.get(), n)) {
        case SSL_ERROR_WANT_WRITE:
            armWrite();
            return false;
        case SSL_ERROR_WANT_READ:
            tls_write_wants_read_ = true;  // retried from handleRead
            return false;
        default:
            tls_error_ = tls::lastErrorString();
            sendFailed(EPIPE);
            return false;
    }
}

std::size_t Stream::readTls(bool& eof, int& error) {
    std::size_t buffered = 0;
    tls_read_more_ = false;
    noteTlsIo();
    for (int round = 0; round < 4; ++round) {
        const bool was_empty = inputLength() == 0;
        ReadSlot slot;  // the scratch area when input() is empty: a TLS read yields one record, 16 KiB at most
        if (!openSlot(slot, was_empty, was_empty, error)) return buffered;
        tls::clearStaleErrors();
        int n = SSL_read(ssl_.get(), slot.into, static_cast<int>(kReadChunk));
        if (n > 0) {
            if (!fillSlot(slot, static_cast<std::size_t>(n), buffered)) {
                tls_read_more_ = tlsPending();
                return buffered;
            }
            // Read-ahead (startTls) takes what the socket holds in one read: when OpenSSL has
            // nothing left, stop here rather than read the socket again for an EAGAIN (the
            // socket is level-triggered: more data wakes us). A record may hold more than we took.
            if (!tlsPending()) return buffered;
            continue;
        }
        closeEmptySlot(slot);
        switch (SSL_get_error(ssl_.get(), n)) {
            case SSL_ERROR_WANT_READ:
                return buffered;
            case SSL_ERROR_WANT_WRITE:
                armWrite();  // a key update or session ticket wants to go out first
                return buffered;
            case SSL_ERROR_ZERO_RETURN:
                eof = true;  // close_notify
                return buffered;
            case SSL_ERROR_SYSCALL:
                // A TCP close without close_notify is common (browsers, curl): treat it as EOF.
                if (errno == 0 || errno == ECONNRESET) {
                    eof = errno == 0;
                    if (errno) error = errno;
                } else {
                    error = errno;
                }
                return buffered;
            default:
                tls_error_ = tls::lastErrorString();
                error = EPROTO;
                return buffered;
        }
    }
    // Four records this wakeup: the rest OpenSSL holds is read in the next iteration (the socket
    // may not be readable again to tell us).
    tls_read_more_ = tlsPending();
    return buffered;
}

}  // namespace portico::net
