// SPDX-License-Identifier: Apache-2.0
#include "portico/net/service_notices.h"

#include "portico/net/snapshot.h"

namespace portico::net {

void ServiceNotices::reloading(std::uint64_t now_usec) {
    send_("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(now_usec));
}

void ServiceNotices::handedOut(std::shared_ptr<const Snapshot> next) { pending_.push_back(std::move(next)); }

void ServiceNotices::refused() {
    if (pending_.empty())
        send_("READY=1");
    else
        pending_.push_back(nullptr);
}

void ServiceNotices::applied(std::uint64_t generation, const std::function<void(const Snapshot&)>& announce) {
    if (stopping_) return;
    while (!pending_.empty() && (!pending_.front() || pending_.front()->generation <= generation)) {
        if (pending_.front()) announce(*pending_.front());
        pending_.pop_front();
        send_("READY=1");
    }
}

std::size_t ServiceNotices::stopping() {
    std::size_t dropped = 0;
    for (; !pending_.empty(); pending_.pop_front()) {
        if (!pending_.front()) {
            send_("READY=1");  // a refusal waiting its turn
            continue;
        }
        ++dropped;
        send_("READY=1\nSTATUS=reload dropped: stopping");
    }
    stopping_ = true;
    send_("STOPPING=1");
    return dropped;
}

}  // namespace portico::net
