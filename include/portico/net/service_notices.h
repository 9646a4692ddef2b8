// SPDX-License-Identifier: Apache-2.0
#pragma once
// What systemd hears (sd_notify) about reloads and the stop. Type=notify-reload wants every
// RELOADING=1 answered by a READY=1 (in the order the reloads were handed out; two reloads
// handed out together read RELOADING, RELOADING, READY, READY, which systemd accepts), and nothing of a reload after STOPPING=1: a
// failed reload's READY=1 waits for the reloads handed out before it (an early one ended the
// reloading state while they were still applied), and a stop ends the reloads that are
// still pending before it says STOPPING=1 (without, systemd saw RELOADING=1 and then the stop).

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

namespace portico::net {

struct Snapshot;

class ServiceNotices {
public:
    // `send` passes one message on (the Server: sd_notify; tests collect them).
    explicit ServiceNotices(std::function<void(const std::string&)> send) : send_(std::move(send)) {}

    // Start-up is done: READY=1.
    void ready() { send_("READY=1"); }
    // A reload begins (SIGHUP taken): RELOADING=1 with MONOTONIC_USEC `now_usec` (CLOCK_MONOTONIC,
    // as systemd compares it with the time it sent the signal).
    void reloading(std::uint64_t now_usec);
    // The reload begun last was handed to the workers as `next`: announced once every worker
    // applied it (applied()).
    void handedOut(std::shared_ptr<const Snapshot> next);
    // The reload begun last was refused, the running configuration kept: READY=1 now, or after
    // the reloads handed out before it are announced.
    void refused();
    // Every worker has applied `generation`: calls `announce` with each reload handed out up to
    // it, oldest first, each followed by its READY=1 (and the refusals queued behind it).
    // Nothing once stopping() was called.
    void applied(std::uint64_t generation, const std::function<void(const Snapshot&)>& announce);
    // The stop begins: each reload not announced yet (the workers drop it) gets its READY=1 with
    // a STATUS= that says so, then STOPPING=1. Returns how many reloads were dropped.
    std::size_t stopping();

    bool reloadsPending() const { return !pending_.empty(); }

private:
    std::function<void(const std::string&)> send_;
    // Reloads begun and not answered yet, oldest first; null: one that was refused.
    std::deque<std::shared_ptr<const Snapshot>> pending_;
    bool stopping_ = false;
};

}  // namespace portico::net
