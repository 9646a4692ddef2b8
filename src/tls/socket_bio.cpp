// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/socket_bio.h"

#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <sys/socket.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

namespace portico::tls {

namespace {

int socketOf(BIO* bio) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio))); }

// As the socket BIO does after each call: retry flags for the errors it treats as "not now".
int settle(BIO* bio, ssize_t n, bool reading) {
    BIO_clear_retry_flags(bio);
    if (n < 0 && BIO_sock_non_fatal_error(errno)) {
        if (reading) {
            BIO_set_retry_read(bio);
        } else {
            BIO_set_retry_write(bio);
        }
    } else if (n == 0 && reading) {
        BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
    }
    return static_cast<int>(n);
}

int readSocket(BIO* bio, char* out, int length) {
    BIO_clear_retry_flags(bio);
    if (out == nullptr || length <= 0) return 0;
    errno = 0;
    return settle(bio, ::recv(socketOf(bio), out, static_cast<std::size_t>(length), 0), true);
}

int writeSocket(BIO* bio, const char* in, int length) {
    BIO_clear_retry_flags(bio);
    if (in == nullptr || length <= 0) return 0;
    errno = 0;
    return settle(bio, ::send(socketOf(bio), in, static_cast<std::size_t>(length), MSG_NOSIGNAL), false);
}

long control(BIO* bio, int command, long, void* ptr) {
    switch (command) {
        case BIO_C_GET_FD:
            if (ptr != nullptr) *static_cast<int*>(ptr) = socketOf(bio);
            return socketOf(bio);
        case BIO_CTRL_EOF:
            return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
        case BIO_CTRL_FLUSH:  // nothing is buffered here
            return 1;
        case BIO_CTRL_DUP:  // BIO_dup_chain (SSL_dup): the copy reads and writes the same socket
            if (ptr != nullptr) BIO_set_data(static_cast<BIO*>(ptr), BIO_get_data(bio));
            return 1;
        default:  // kernel TLS, pending bytes, close flag...: none of them
            return 0;
    }
}

struct MethodDeleter {
    void operator()(BIO_METHOD* p) const { BIO_meth_free(p); }
};

// Made on first use and kept until exit. A failure (out of memory) is not kept: the next
// connection tries again rather than every later one failing.
BIO_METHOD* makeMethod() {
    // BIO_TYPE_DESCRIPTOR: BIO_find_type (SSL_get_fd) sees a socket.
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "portico socket");
    if (m != nullptr && (BIO_meth_set_read(m, readSocket) != 1 || BIO_meth_set_write(m, writeSocket) != 1 ||
                         BIO_meth_set_ctrl(m, control) != 1)) {
        BIO_meth_free(m);
        m = nullptr;
    }
    return m;
}

BIO_METHOD* method() {
    static std::mutex made_mutex;
    static std::unique_ptr<BIO_METHOD, MethodDeleter> made;
    std::lock_guard lock(made_mutex);
    if (!made) made.reset(makeMethod());
    return made.get();
}

}  // namespace

bool attachSocket(SSL* ssl, int fd) {
    BIO_METHOD* m = method();
    BIO* bio = m != nullptr ? BIO_new(m) : nullptr;
    if (bio == nullptr) return false;
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio);  // one reference for both directions
    return true;
}

}  // namespace portico::tls
