// SPDX-License-Identifier: Apache-2.0
#include "portico/core/handles.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <unistd.h>

namespace portico::core {

void EventBaseDeleter::operator()(event_base* p) const { event_base_free(p); }
void EventDeleter::operator()(event* p) const { event_free(p); }
void EvbufferDeleter::operator()(evbuffer* p) const { evbuffer_free(p); }
void ListenerDeleter::operator()(evconnlistener* p) const { evconnlistener_free(p); }

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.release();
    }
    return *this;
}

UniqueFd::~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace portico::core
