// SPDX-License-Identifier: Apache-2.0
// A Stream's TLS set-up: the session's modes, the handshake, the plain-text check of a server's
// first byte and what the handshake agreed (ALPN). Reading and writing records is in stream_tls.cpp.
#include "portico/net/stream.h"

#include <cerrno>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "portico/net/uring/stream_io.h"
#include "portico/tls/errors.h"
#include "portico/tls/socket_bio.h"

namespace portico::net {

void Stream::startTls(tls::SslPtr ssl_owned, bool server, uring::Ring* ring) {
    tls_ring_ = ring;  // taken once the handshake is done (moveTlsToRing)
    if (ring_io_) {
        // Made for a plain socket (the callers decide before: a TLS listener's or upstream's
        // Streams are made without the ring): OpenSSL reads and writes the socket itself, on epoll.
        ring_io_->release(core::UniqueFd());
        ring_io_ = nullptr;
        if (reading_) {
            reading_ = false;
            resumeReading();
        }
    }
    ssl_ = std::move(ssl_owned);
    SSL* ssl = ssl_.get();
    tls_server_ = server;
    // recv/send through a lean BIO (socket_bio.h). Out of memory: the handshake fails with this.
    if (!tls::attachSocket(ssl, fd_.get())) tls_error_ = "out of memory attaching the socket to TLS";
    // Writes resume from an evbuffer that may have moved; records may be written in part.
    // RELEASE_BUFFERS until the connection proves busy: then the sweep clears it, and frees the
    // buffers and sets it again once the connection has gone idle (tls_buffer_sweep.h).
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // Read-ahead: one read(2) takes a record's header and body, and every record the socket
    // holds (nginx sets it too), instead of a read for each header and each body. OpenSSL then
    // holds bytes the socket no longer shows as readable: SSL_has_pending() is asked wherever
    // reading stops or resumes (readTls, handleRead, resumeReading, driveHandshake).
    SSL_set_read_ahead(ssl, 1);
    // Browsers and most clients close without close_notify: that is an end, not an error.
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
    }
    // A server waits for the ClientHello (the read event is on); a client starts once TCP is up.
    handshaking_ = true;
    if (!server && !connecting_) driveHandshake();
}

void Stream::driveHandshake() {
    noteTlsIo();
    tls::clearStaleErrors();
    int rc = SSL_do_handshake(ssl_.get());
    if (rc == 1) {
        handshaking_ = false;
        tls_established_ = true;
        disarmWrite();
        if (tls_ring_) moveTlsToRing();
        if (tls_server_) {
            handler_->onTlsHandshake(*this);
        } else {
            handler_->onConnected(*this);
        }
        if (outputLength() > 0) writeNow();
        // Application data may have come with the last handshake flight.
        if (SSL_has_pending(ssl_.get()) || tls_server_) handleRead();
        return;
    }
    switch (SSL_get_error(ssl_.get(), rc)) {
        case SSL_ERROR_WANT_READ:
            disarmWrite();
            if (!reading_) resumeReading();
            return;
        case SSL_ERROR_WANT_WRITE:
            armWrite();
            return;
        default:
            failTls("handshake");
            return;
    }
}

// RFC 8446 5.1: a TLS connection opens with a handshake record (content type 22). Any other first
// byte is almost always plain HTTP sent to an HTTPS port: peek at it (nothing is consumed) and,
// like nginx, let the owner answer in plain text instead of failing the handshake silently.
bool Stream::startsWithTlsRecord() {
    unsigned char first = 0;
    ssize_t n = ::recv(fd_.get(), &first, 1, MSG_PEEK);
    if (n <= 0) return true;  // nothing yet, EOF or an error: the handshake reports them
    first_byte_checked_ = true;
    constexpr unsigned char kHandshakeRecord = 0x16;
    if (first == kHandshakeRecord) return true;
    ssl_.reset();
    handshaking_ = false;
    tls_error_ = "plain text on a TLS port";
    handler_->onPlainTextOnTls(*this);
    return false;
}

void Stream::failTls(const char* where) {
    if (tls_error_.empty()) tls_error_ = tls::handshakeFailureString(ssl_.get(), where);
    if (tls_error_.empty()) tls_error_ = std::string(where) + " failed";
    handshaking_ = false;
    disarmWrite();
    pauseReading();
    handler_->onError(*this, EPROTO);
}

std::string Stream::alpnProtocol() const {
    if (!ssl_) return {};
    const unsigned char* data = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl_.get(), &data, &length);
    return data ? std::string(reinterpret_cast<const char*>(data), length) : std::string();
}

}  // namespace portico::net
