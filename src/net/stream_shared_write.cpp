// SPDX-License-Identifier: Apache-2.0
// Writing shared byte blocks (a pub/sub message's frame, encoded once for every subscriber of a
// worker) straight from their memory: ByteStream::writeShared and the socket's sendmsg.

#include <cerrno>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "portico/core/shared_bytes.h"
#include "portico/net/stream.h"

namespace portico::net {

void ByteStream::writeShared(const core::SharedBytesRef* blocks, std::size_t n) {
    evbuffer* out = output();
    for (std::size_t i = 0; i < n; ++i) {
        if (!blocks[i]->appendTo(out)) {
            failWrite(ENOMEM);
            return;
        }
    }
    flush();
}

void Stream::writeShared(const core::SharedBytesRef* blocks, std::size_t n) {
    if (n == 0) return;
    // Behind queued bytes, before the connection is up, or more blocks than the iovec holds:
    // after what is queued, in order. TLS with several blocks: one record for all (writeTls
    // gathers them), not a record and a send per block.
    // On the ring: appended (large blocks referenced) and sent with the rest of the pass.
    if (ringWrites() || tls_ring_bio_ || !canWriteNow() || n > kMaxSharedBlocks || (ssl_ && n > 1)) {
        ByteStream::writeShared(blocks, n);
        return;
    }
    if (ssl_) {
        // SSL_write encrypts from the shared bytes; what the socket refuses waits as below
        // (a large rest referenced: writeTls encrypts it from there, no private copy).
        bool blocked = false;
        const std::size_t sent = writeTlsFrom(reinterpret_cast<const char*>(blocks[0]->data()), blocks[0]->size(), blocked);
        if (sent == blocks[0]->size()) return;
        if (!blocks[0]->appendTo(output(), sent)) {
            failWrite(ENOMEM);
            return;
        }
        sendRest(blocked);
        return;
    }
    iovec iov[kMaxSharedBlocks];
    for (std::size_t i = 0; i < n; ++i) {
        iov[i].iov_base = const_cast<std::uint8_t*>(blocks[i]->data());
        iov[i].iov_len = blocks[i]->size();
    }
    msghdr message{};
    message.msg_iov = iov;
    message.msg_iovlen = n;
    ssize_t k;
    do {
        k = ::sendmsg(fd_.get(), &message, MSG_NOSIGNAL);
    } while (k < 0 && errno == EINTR);
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        sendFailed(errno);  // reported from the loop, as writeNow() does
        return;
    }
    std::size_t first = 0;  // the first block not sent whole, and how much of it went
    std::size_t sent_of_first = 0;
    if (k > 0) {
        bytes_written_ += static_cast<std::uint64_t>(k);
        auto left = static_cast<std::size_t>(k);
        while (first < n && left >= iov[first].iov_len) left -= iov[first++].iov_len;
        sent_of_first = left;
    }
    if (first == n) return;
    // The socket is full (a non-blocking send that took less than offered, or EAGAIN): the rest
    // waits in output() for the write event, copied when small, referenced when large. Not
    // retried at once: that would be a send for an EAGAIN.
    // Out of memory: the connection fails rather than send a frame cut short.
    evbuffer* out = output();
    bool queued = blocks[first]->appendTo(out, sent_of_first);
    for (std::size_t i = first + 1; queued && i < n; ++i) queued = blocks[i]->appendTo(out);
    if (!queued) {
        failWrite(ENOMEM);
        return;
    }
    armWrite();
}

}  // namespace portico::net
