// SPDX-License-Identifier: Apache-2.0
#pragma once
// Per-client-address limits: one table for the whole process (workers are threads, and a client
// spreads its connections over every worker through SO_REUSEPORT), consulted by the accept path
// (concurrent connections) and the upgrade path (concurrent WebSockets, upgrade rate).
//
// The caps come from the caller's configuration snapshot on every call, so a reload applies to
// the next admission; a Lease remembers the address it counted, so it releases the same entry
// whatever changed since.
//
// Cost: the table is split into kShards shards, each with its own mutex, by a seeded hash of the
// address; one admission or release locks one shard for a hash-map lookup. A limit that is off
// (0) costs no lock at all.
//
// Bound: at most limits.per_ip_table_size addresses are tracked at once. An entry goes away when
// it counts no connection and no WebSocket and its upgrade bucket is full again (then it carries
// no information: a fresh entry would be identical). When the table is full, an idle entry whose
// bucket has refilled since is swept; if none is, the new address is admitted untracked (the
// table fails open, see README "Per-client limits": a full table means many distinct addresses
// at once, which per-address limits cannot stop anyway, and limits.max_connections still holds).

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unordered_map>

#include "portico/config/config.h"

namespace portico::net {

// A client address as the limits count it: IPv4 as is, IPv6 masked to a prefix (a household or a
// cloud instance is usually given a whole /64, so counting single IPv6 addresses would let one
// client take 2^64 slots). An IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack listener)
// counts as its IPv4 address.
struct IpKey {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 in its IPv4-mapped form
    bool operator==(const IpKey&) const = default;
    // "192.0.2.1", or "2001:db8::/64" for an IPv6 prefix.
    std::string toString(unsigned ipv6_prefix) const;
};

// The key of `peer` (AF_INET or AF_INET6); nullopt for any other family.
std::optional<IpKey> ipKeyOf(const sockaddr* peer, unsigned ipv6_prefix);
// The key of a textual address ("192.0.2.1", "2001:db8::1"); nullopt if it is not one.
std::optional<IpKey> ipKeyOf(std::string_view address, unsigned ipv6_prefix);

class IpLimits {
public:
    using Clock = std::function<std::chrono::steady_clock::time_point()>;
    static constexpr std::size_t kShards = 16;
    // A full table sweeps for idle entries at most this often: a flood of new addresses at the
    // cap would otherwise pay a walk over the whole table for each connection.
    static constexpr std::chrono::milliseconds kSweepInterval{100};

    // `clock` is injectable for tests.
    explicit IpLimits(Clock clock = &std::chrono::steady_clock::now);
    ~IpLimits();
    IpLimits(const IpLimits&) = delete;
    IpLimits& operator=(const IpLimits&) = delete;

    enum class Kind : std::uint8_t { Connection, WebSocket };

    // One counted connection or WebSocket; releases its count when destroyed or reset. An empty
    // Lease (nothing counted) is valid. The table must outlive it.
    class Lease {
    public:
        Lease() = default;
        Lease(Lease&& other) noexcept { *this = std::move(other); }
        Lease& operator=(Lease&& other) noexcept;
        ~Lease() { reset(); }
        void reset();
        explicit operator bool() const { return table_ != nullptr; }

    private:
        friend class IpLimits;
        Lease(IpLimits* table, const IpKey& key, Kind kind) : table_(table), key_(key), kind_(kind) {}
        IpLimits* table_ = nullptr;
        IpKey key_{};
        Kind kind_ = Kind::Connection;
    };

    enum class Verdict : std::uint8_t {
        Admitted,        // counted (the lease holds the count) or no limit applies
        Untracked,       // admitted without counting: the table is full (it fails open)
        OverConnections, // limits.per_ip_connections reached
        OverWebSockets,  // limits.per_ip_websockets reached
        OverRate,        // limits.per_ip_upgrade_rate: no token; see retry_after
    };
    static const char* toString(Verdict verdict);
    struct Admission {
        Verdict verdict = Verdict::Admitted;
        Lease lease;                             // empty unless something was counted
        std::chrono::milliseconds retry_after{};  // OverRate: until the next token
        bool admitted() const { return verdict == Verdict::Admitted || verdict == Verdict::Untracked; }
    };

    // A new connection from `key` under `limits` (per_ip_connections, per_ip_table_size).
    Admission admitConnection(const IpKey& key, const config::Limits& limits);
    // A WebSocket upgrade request from `key` under `limits` (per_ip_websockets, the upgrade rate,
    // per_ip_table_size). The concurrency cap is checked first, so a refused upgrade over the cap
    // spends no token.
    Admission admitUpgrade(const IpKey& key, const config::Limits& limits);

    // Addresses tracked now.
    std::size_t size() const { return entries_.load(std::memory_order_relaxed); }
    // Removes every entry that counts nothing and whose bucket is full. Returns how many went.
    std::size_t sweep();

private:
    struct Entry;
    struct Shard;
    struct KeyHash {
        std::uint64_t seed;
        std::size_t operator()(const IpKey& key) const;
    };
    Shard& shardOf(const IpKey& key);
    // Locks `key`'s shard, finds or creates its entry and lets `decide(entry, admission)` count;
    // Untracked when the table is full.
    template <typename Decide>
    Admission admit(const IpKey& key, const config::Limits& limits, Decide decide);
    // The entry of `key` in `shard` (locked), created under the table's bound; nullptr when the
    // table is full. Unlocks and relocks `lock` to sweep.
    Entry* findOrCreate(Shard& shard, std::unique_lock<std::mutex>& lock, const IpKey& key, const config::Limits& limits);
    bool reserveEntry(std::size_t cap);
    // Erases `key`'s entry when it carries nothing any more.
    void eraseIfIdle(Shard& shard, const IpKey& key);
    void release(const IpKey& key, Kind kind);

    Clock clock_;
    KeyHash hash_;
    std::unique_ptr<Shard[]> shards_;
    std::atomic<std::size_t> entries_{0};
    // Clock ticks of the last sweep on a full table; far in the past at first.
    std::atomic<std::int64_t> last_sweep_{std::numeric_limits<std::int64_t>::min() / 2};
};

}  // namespace portico::net
