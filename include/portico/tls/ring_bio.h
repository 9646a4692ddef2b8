// SPDX-License-Identifier: Apache-2.0
#pragma once
// The BIO of a TLS connection whose socket the worker's io_uring reads and writes (net::Stream
// on the ring, after its handshake on epoll): OpenSSL reads the ciphertext the ring received
// and writes the ciphertext the ring is to send, and never touches the socket.
//
// Reads: a receive's bytes are lent for the duration of the call that decrypts them (borrow),
// so that a whole record read in one receive is never copied here; what OpenSSL has not taken
// when the loan ends (a record cut by the receive's end, records left for a later pass) is kept
// (keepBorrowed) and read first next time. Nothing received: a retry (SSL_ERROR_WANT_READ); after
// endReceived, the end (OpenSSL's EOF, or the error as errno).
// Writes: always taken, appended to the queue of ciphertext to send (toSend). Its bound is the
// caller's: it encrypts only what its own bounded output holds, a slice at a time.
// Neither buffer is kept while empty past releaseIdle (an idle connection holds none).
// The behaviour OpenSSL sees otherwise is the socket BIO's (socket_bio.h): SSL_get_fd answers,
// nothing is closed by the BIO.

#include <cstddef>

#include "portico/tls/handles.h"

struct evbuffer;

namespace portico::tls {

// Replaces `ssl`'s BIO (after the handshake) with one over buffers, for the socket `fd`.
// False when out of memory: the old BIO stays.
bool attachRingBio(SSL* ssl, int fd);
// Whether `ssl` reads and writes through such a BIO.
bool onRingBio(const SSL* ssl);

// The bytes a receive brought, read by OpenSSL until keepBorrowed() (or the next borrow).
void borrowReceived(SSL* ssl, const char* data, std::size_t n);
// Copies what OpenSSL did not read of the loan; false when out of memory.
bool keepBorrowed(SSL* ssl);
// Appends received bytes (a receive that came while reading was paused); false: out of memory.
bool keepReceived(SSL* ssl, const char* data, std::size_t n);
// Received bytes OpenSSL has not read yet (kept and lent).
std::size_t receivedLength(const SSL* ssl);
// The peer's end: 0 for its FIN, else an errno; OpenSSL reads it after the bytes before it.
void endReceived(SSL* ssl, int error);
bool receivedEnded(const SSL* ssl);

// Where a record goes before the queue, while set: `take` (the ring's send block of the socket,
// net/uring/stream_io.h) is offered every record written while the queue is empty, and what it
// refuses is queued. Set around the calls that encrypt for the ring's next send only (and
// cleared after them: {}), so that no record can go past one queued before it.
struct CiphertextSink {
    bool (*take)(void* arg, const char* data, std::size_t n) = nullptr;
    void* arg = nullptr;
};
void setCiphertextSink(SSL* ssl, CiphertextSink sink);

// The ciphertext waiting to be sent (null while none was ever written or it was released).
evbuffer* toSend(SSL* ssl);
std::size_t toSendLength(const SSL* ssl);

// Frees the buffers that are empty (an idle connection's).
void releaseIdle(SSL* ssl);

}  // namespace portico::tls
