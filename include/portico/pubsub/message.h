// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a pub/sub channel carries, whichever backplane numbered it.

#include <cstdint>
#include <memory>
#include <string>

namespace portico::pubsub {

struct Message {
    std::uint64_t seq = 0;       // the channel's sequence number, from the backplane
    std::string epoch;           // the channel state's id: seq only compares within one epoch
    bool text = true;
    std::string payload;
    const void* sender = nullptr;  // the local subscriber that published it (not sent back to it)
};
using MessagePtr = std::shared_ptr<const Message>;

struct ChannelInfo {
    std::uint64_t seq = 0;          // the last sequence number given out
    std::string epoch;              // of that sequence
    std::uint64_t oldest = 0;       // the oldest kept message's seq; 0 = none kept
    std::size_t subscribers = 0;    // on every worker of this process
    std::size_t history = 0;        // messages kept
};

// Where the in-process registry posts a message for one worker's subscribers, from any worker's
// thread, in two steps:
// - enqueue() under the registry's lock, in the channel's seq order (a short locked append:
//   no syscall); true when the receiver's loop must be woken for it;
// - wake() after the registry's lock is released, for each enqueue() that answered true.
class Inbox {
public:
    virtual ~Inbox() = default;
    virtual bool enqueue(const std::string& channel, MessagePtr message) = 0;
    virtual void wake() = 0;
};

}  // namespace portico::pubsub
