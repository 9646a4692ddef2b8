// SPDX-License-Identifier: Apache-2.0
#pragma once
// Callbacks that may run after their owner is gone (a backplane answering later): the owner
// holds a token, the callback a weak reference to it, and does nothing once the token expired.

#include <memory>
#include <utility>

namespace portico::core {

// An owner's token: pending callbacks hold it weakly; destroying (or resetting) it disarms them.
using AliveToken = std::shared_ptr<char>;
inline AliveToken makeAliveToken() { return std::make_shared<char>(); }

// Wraps `callback` so that it does nothing once `alive` has expired (its owner has gone).
template <typename F>
auto guardedBy(const AliveToken& alive, F callback) {
    return [alive = std::weak_ptr<char>(alive), callback = std::move(callback)](auto&&... args) mutable {
        if (!alive.expired()) callback(std::forward<decltype(args)>(args)...);
    };
}

}  // namespace portico::core
