// SPDX-License-Identifier: Apache-2.0
#include "portico/net/wakeup.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <event2/event.h>
#include <sys/eventfd.h>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"

namespace portico::net {

Wakeup::Wakeup(EventLoop& loop, std::function<void()> on_wake)
    : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), on_wake_(std::move(on_wake)) {
    // Without it no other thread could ever reach this loop (stop, reload): fail at start-up
    // (main reports it and exits 1) rather than hang at shutdown.
    if (!fd_) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno) + ": cannot make a worker's wakeup");
    event_.assign(loop.base(), fd_.get(), EV_READ | EV_PERSIST, &Wakeup::onReadable, this);
    event_add(event_.get(), nullptr);
}

// The event goes before the descriptor (declared after it): no epoll_ctl on a closed descriptor.
Wakeup::~Wakeup() = default;

void Wakeup::notify() {
    const std::uint64_t one = 1;
    // EAGAIN only when the counter is at its maximum: the loop is due to wake anyway.
    while (::write(fd_.get(), &one, sizeof one) < 0 && errno == EINTR) {
    }
}

void Wakeup::onReadable(int fd, short, void* arg) {
    std::uint64_t count = 0;
    while (::read(fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    static_cast<Wakeup*>(arg)->on_wake_();
}

}  // namespace portico::net
