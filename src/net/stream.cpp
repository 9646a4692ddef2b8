#include "portico/net/stream.h"

#include <cerrno>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace portico::net {

namespace {
void tuneSocket(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    // Requests and WebSocket messages are small and latency-bound: never wait for Nagle.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
}  // namespace

Stream::Stream(event_base* base, core::UniqueFd fd, StreamHandler* handler)
    : fd_(std::move(fd)), handler_(handler), input_(evbuffer_new()), output_(evbuffer_new()) {
    tuneSocket(fd_.get());
    read_event_.reset(event_new(base, fd_.get(), EV_READ | EV_PERSIST, &Stream::onReadEvent, this));
    write_event_.reset(event_new(base, fd_.get(), EV_WRITE | EV_PERSIST, &Stream::onWriteEvent, this));
    resumeReading();
}

Stream::~Stream() = default;  // events are freed (and so removed) before the fd closes

std::unique_ptr<Stream> Stream::connectTo(event_base* base, const sockaddr* address, socklen_t length,
                                          StreamHandler* handler, int& error) {
    core::UniqueFd fd(::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        error = errno;
        return nullptr;
    }
    tuneSocket(fd.get());
    bool in_progress = false;
    if (::connect(fd.get(), address, length) != 0) {
        if (errno != EINPROGRESS) {
            error = errno;
            return nullptr;
        }
        in_progress = true;
    }
    (void)in_progress;  // a loopback connect may complete at once: report it from the loop anyway
    auto stream = std::make_unique<Stream>(base, std::move(fd), handler);
    stream->connecting_ = true;
    stream->armWrite();
    return stream;
}

void Stream::pauseReading() {
    if (!reading_) return;
    reading_ = false;
    event_del(read_event_.get());
}

void Stream::resumeReading() {
    if (reading_) return;
    reading_ = true;
    event_add(read_event_.get(), nullptr);
}

std::size_t Stream::outputLength() const { return evbuffer_get_length(output_.get()); }

void Stream::armWrite() {
    if (write_armed_) return;
    write_armed_ = true;
    event_add(write_event_.get(), nullptr);
}

void Stream::flush() {
    if (connecting_ || write_armed_ || pending_error_ != 0) return;  // the write event will do it
    writeNow();
}

void Stream::disarmWrite() {
    if (!write_armed_) return;
    write_armed_ = false;
    event_del(write_event_.get());
}

void Stream::writeNow() {
    evbuffer* out = output_.get();
    while (evbuffer_get_length(out) > 0) {
        int n = evbuffer_write(out, fd_.get());
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            armWrite();  // stays armed while the socket is full: no epoll_ctl churn
            return;
        }
        // Report from the loop: the caller of flush() may be in the middle of its own logic.
        pending_error_ = n < 0 ? errno : EPIPE;
        evbuffer_drain(out, evbuffer_get_length(out));
        armWrite();
        return;
    }
    disarmWrite();
    if (shutdown_after_flush_ && !write_shut_) {
        write_shut_ = true;
        ::shutdown(fd_.get(), SHUT_WR);
    }
}

void Stream::shutdownAfterFlush() {
    shutdown_after_flush_ = true;
    flush();
}

void Stream::onReadEvent(int, short, void* arg) { static_cast<Stream*>(arg)->handleRead(); }
void Stream::onWriteEvent(int, short, void* arg) { static_cast<Stream*>(arg)->handleWrite(); }

void Stream::handleRead() {
    evbuffer* in = input_.get();
    std::size_t total = 0;
    bool eof = false;
    int error = 0;
    // Read up to 4 chunks per wakeup: enough for large transfers, fair to other connections.
    for (int round = 0; round < 4; ++round) {
        evbuffer_iovec vec;
        if (evbuffer_reserve_space(in, kReadChunk, &vec, 1) < 1) {
            error = ENOMEM;
            break;
        }
        ssize_t n = ::recv(fd_.get(), vec.iov_base, kReadChunk, 0);
        if (n > 0) {
            vec.iov_len = static_cast<std::size_t>(n);
            evbuffer_commit_space(in, &vec, 1);
            total += static_cast<std::size_t>(n);
            if (static_cast<std::size_t>(n) < kReadChunk) break;
            continue;
        }
        evbuffer_commit_space(in, &vec, 0);
        if (n == 0) {
            eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            error = errno;
        }
        break;
    }
    if (eof || error) pauseReading();  // level-triggered: a closed socket stays readable
    if (total > 0) handler_->onReadable(*this);
    // The handler may have paused us or switched handlers; report the end to the current one.
    if (error) {
        handler_->onError(*this, error);
    } else if (eof) {
        handler_->onEof(*this);
    }
}

void Stream::handleWrite() {
    if (connecting_) {
        int error = 0;
        socklen_t length = sizeof error;
        if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
        if (error != 0) {
            disarmWrite();
            pauseReading();
            handler_->onError(*this, error);
            return;
        }
        connecting_ = false;
        disarmWrite();
        handler_->onConnected(*this);
        // Whoever stopped reading while we were connecting waits for this.
        if (!write_armed_ && pending_error_ == 0 && evbuffer_get_length(output_.get()) <= low_watermark_)
            handler_->onDrained(*this);
        return;
    }
    if (pending_error_ != 0) {
        disarmWrite();
        pauseReading();
        handler_->onError(*this, pending_error_);
        return;
    }
    writeNow();
    if (pending_error_ == 0 && evbuffer_get_length(output_.get()) <= low_watermark_)
        handler_->onDrained(*this);
}

}  // namespace portico::net
