// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/pubsub: the little of Redis Cluster that the backplane needs, without I/O: a
// key's hash slot, the slot map from CLUSTER SLOTS, and MOVED/ASK redirections. hiredis 0.14
// has no cluster support; the backplane keeps one connection pair per master (redis_backplane.h).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct redisReply;

namespace portico::pubsub::cluster {

inline constexpr std::size_t kSlots = 16384;
inline constexpr std::uint16_t kNoOwner = 0xffff;  // a slot no master serves (CLUSTERDOWN)

// The hash slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the first '{' and the
// next '}', when not empty) or of the whole key, modulo 16384 (Redis Cluster specification,
// "Keys hash tags").
std::uint16_t keySlot(std::string_view key);

struct Node {
    bool operator==(const Node&) const = default;
    std::string host;
    std::uint16_t port = 0;
};

struct SlotMap {
    std::vector<Node> masters;         // each once, in the order CLUSTER SLOTS names them
    std::vector<std::uint16_t> owner;  // kSlots entries: an index in masters, or kNoOwner
    // The master serving `slot`, or nullptr.
    const Node* at(std::uint16_t slot) const;
};

// Reads a CLUSTER SLOTS reply ([start, end, [host, port, id...], replicas...]...). A master
// announced without an address ("" or "?") is at `default_host`. False (and `out` unchanged)
// when `reply` is not such an array.
bool parseSlots(const redisReply* reply, std::string_view default_host, SlotMap& out);

// "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381" (an error reply's text).
struct Redirect {
    bool ask = false;  // ASK: this command only, after ASKING; MOVED: the slot moved for good
    std::uint16_t slot = 0;
    Node node;
};
// True when `error` is a redirection (then `out` holds it).
bool parseRedirect(std::string_view error, Redirect& out);

}  // namespace portico::pubsub::cluster
