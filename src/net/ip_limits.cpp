// SPDX-License-Identifier: Apache-2.0
#include "portico/net/ip_limits.h"

#include "portico/core/token_bucket.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cmath>
#include <cstring>
#include <netinet/in.h>
#include <random>
#include <utility>
#include <vector>

namespace portico::net {

namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool isV4Mapped(const std::array<std::uint8_t, 16>& bytes) {
    return std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), bytes.begin());
}

IpKey fromV4(const in_addr& address) {
    IpKey key;
    std::copy(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), key.bytes.begin());
    std::memcpy(key.bytes.data() + 12, &address, 4);
    return key;
}

IpKey fromV6(const in6_addr& address, unsigned prefix) {
    IpKey key;
    std::memcpy(key.bytes.data(), &address, 16);
    if (isV4Mapped(key.bytes)) return key;  // a dual-stack socket's IPv4 client: counted as IPv4
    prefix = std::min(prefix, 128u);
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned keep = prefix > i * 8 ? std::min(8u, prefix - i * 8) : 0;
        key.bytes[i] &= static_cast<std::uint8_t>(keep == 8 ? 0xff : (0xff00u >> keep) & 0xff);
    }
    return key;
}

std::uint64_t randomSeed() {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

}  // namespace

std::string IpKey::toString(unsigned ipv6_prefix) const {
    char text[INET6_ADDRSTRLEN] = "?";
    if (isV4Mapped(bytes)) {
        inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
        return text;
    }
    inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
    return std::string(text) + "/" + std::to_string(ipv6_prefix);
}

std::optional<IpKey> ipKeyOf(const sockaddr* peer, unsigned ipv6_prefix) {
    if (!peer) return std::nullopt;
    if (peer->sa_family == AF_INET) return fromV4(reinterpret_cast<const sockaddr_in*>(peer)->sin_addr);
    if (peer->sa_family == AF_INET6) return fromV6(reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr, ipv6_prefix);
    return std::nullopt;
}

std::optional<IpKey> ipKeyOf(std::string_view address, unsigned ipv6_prefix) {
    char text[INET6_ADDRSTRLEN];
    if (address.empty() || address.size() >= sizeof text) return std::nullopt;
    std::memcpy(text, address.data(), address.size());
    text[address.size()] = '\0';
    in_addr v4{};
    if (inet_pton(AF_INET, text, &v4) == 1) return fromV4(v4);
    in6_addr v6{};
    if (inet_pton(AF_INET6, text, &v6) == 1) return fromV6(v6, ipv6_prefix);
    return std::nullopt;
}

// ---- IpLimits -------------------------------------------------------------------------------

struct IpLimits::Entry {
    std::uint32_t connections = 0;
    std::uint32_t websockets = 0;
    // The upgrade bucket, from the first upgrade under a rate; rebuilt (full) when a reload
    // changes the rate or the burst. The entry's idleness is judged by its own.
    std::optional<core::TokenBucket> bucket;

    bool idle(std::chrono::steady_clock::time_point now) {
        return connections == 0 && websockets == 0 && (!bucket || bucket->full(now));
    }
};

struct IpLimits::Shard {
    std::mutex mutex;
    std::unordered_map<IpKey, Entry, KeyHash> map;
};

std::size_t IpLimits::KeyHash::operator()(const IpKey& key) const {
    // Seeded per process, so that a client choosing its addresses (an IPv6 /64 holder has many)
    // cannot aim them all at one bucket chain.
    std::uint64_t a = 0, b = 0;
    std::memcpy(&a, key.bytes.data(), 8);
    std::memcpy(&b, key.bytes.data() + 8, 8);
    std::uint64_t h = (a ^ seed) * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 29) ^ b) * 0xbf58476d1ce4e5b9ull;
    return static_cast<std::size_t>(h ^ (h >> 32));
}

IpLimits::IpLimits(Clock clock) : clock_(std::move(clock)), hash_{randomSeed()} {
    shards_ = std::make_unique<Shard[]>(kShards);  // default-constructed, then given the seeded hash
    for (std::size_t i = 0; i < kShards; ++i) shards_[i].map = std::unordered_map<IpKey, Entry, KeyHash>(16, hash_);
}

IpLimits::~IpLimits() = default;

const char* IpLimits::toString(Verdict verdict) {
    switch (verdict) {
        case Verdict::Admitted: return "admitted";
        case Verdict::Untracked: return "untracked";
        case Verdict::OverConnections: return "per_ip_connections";
        case Verdict::OverWebSockets: return "per_ip_websockets";
        case Verdict::OverRate: return "per_ip_upgrade_rate";
    }
    return "?";
}

IpLimits::Shard& IpLimits::shardOf(const IpKey& key) {
    // The hash's high bits pick the shard; the map uses all of them for its buckets.
    return shards_[(hash_(key) >> 56) % kShards];
}

bool IpLimits::reserveEntry(std::size_t cap) {
    std::size_t n = entries_.load(std::memory_order_relaxed);
    while (n < cap) {
        if (entries_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
    }
    return false;
}

IpLimits::Entry* IpLimits::findOrCreate(Shard& shard, std::unique_lock<std::mutex>& lock, const IpKey& key,
                                        const config::Limits& limits) {
    if (auto it = shard.map.find(key); it != shard.map.end()) return &it->second;
    if (!reserveEntry(limits.per_ip_table_size)) {
        // Full: sweep (not more often than kSweepInterval), without holding our shard's lock
        // since the sweep takes every shard's in turn.
        const std::int64_t now = clock_().time_since_epoch().count();
        std::int64_t last = last_sweep_.load(std::memory_order_relaxed);
        const std::int64_t interval =
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(kSweepInterval).count();
        if (now - last < interval || !last_sweep_.compare_exchange_strong(last, now)) return nullptr;
        lock.unlock();
        sweep();
        lock.lock();
        if (auto it = shard.map.find(key); it != shard.map.end()) return &it->second;  // created meanwhile
        if (!reserveEntry(limits.per_ip_table_size)) return nullptr;
    }
    return &shard.map.emplace(key, Entry{}).first->second;
}

void IpLimits::eraseIfIdle(Shard& shard, const IpKey& key) {
    auto it = shard.map.find(key);
    if (it == shard.map.end() || !it->second.idle(clock_())) return;
    shard.map.erase(it);
    entries_.fetch_sub(1, std::memory_order_relaxed);
}

template <typename Decide>
IpLimits::Admission IpLimits::admit(const IpKey& key, const config::Limits& limits, Decide decide) {
    Admission result;
    Shard& shard = shardOf(key);
    std::unique_lock lock(shard.mutex);
    Entry* entry = findOrCreate(shard, lock, key, limits);
    if (!entry)
        result.verdict = Verdict::Untracked;
    else
        decide(*entry, result);
    return result;
}

IpLimits::Admission IpLimits::admitConnection(const IpKey& key, const config::Limits& limits) {
    if (limits.per_ip_connections == 0) return {};
    return admit(key, limits, [&](Entry& entry, Admission& result) {
        if (entry.connections >= limits.per_ip_connections) {
            result.verdict = Verdict::OverConnections;
            return;
        }
        ++entry.connections;
        result.lease = Lease(this, key, Kind::Connection);
    });
}

IpLimits::Admission IpLimits::admitUpgrade(const IpKey& key, const config::Limits& limits) {
    const bool rate = limits.per_ip_upgrade_rate > 0;
    if (limits.per_ip_websockets == 0 && !rate) return {};
    return admit(key, limits, [&](Entry& entry, Admission& result) {
        if (limits.per_ip_websockets && entry.websockets >= limits.per_ip_websockets) {
            result.verdict = Verdict::OverWebSockets;
            return;
        }
        if (rate) {
            const auto now = clock_();
            const std::uint64_t burst = std::max<std::size_t>(1, limits.per_ip_upgrade_burst);
            if (!entry.bucket || !entry.bucket->builtWith(limits.per_ip_upgrade_rate, burst)) {
                entry.bucket.emplace(limits.per_ip_upgrade_rate, burst, now);
            }
            if (!entry.bucket->take(1, now)) {
                result.retry_after = std::chrono::ceil<std::chrono::milliseconds>(entry.bucket->wait(1));
                result.verdict = Verdict::OverRate;
                return;
            }
        }
        if (limits.per_ip_websockets) {
            ++entry.websockets;
            result.lease = Lease(this, key, Kind::WebSocket);
        }
    });
}

void IpLimits::release(const IpKey& key, Kind kind) {
    Shard& shard = shardOf(key);
    std::lock_guard lock(shard.mutex);
    auto it = shard.map.find(key);
    if (it == shard.map.end()) return;  // cannot happen: a lease keeps its entry
    std::uint32_t& count = kind == Kind::Connection ? it->second.connections : it->second.websockets;
    if (count > 0) --count;
    eraseIfIdle(shard, key);
}

std::size_t IpLimits::sweep() {
    std::size_t removed = 0;
    for (std::size_t i = 0; i < kShards; ++i) {
        Shard& shard = shards_[i];
        std::lock_guard lock(shard.mutex);
        const auto now = clock_();
        for (auto it = shard.map.begin(); it != shard.map.end();) {
            if (it->second.idle(now)) {
                it = shard.map.erase(it);
                ++removed;
            } else {
                ++it;
            }
        }
    }
    entries_.fetch_sub(removed, std::memory_order_relaxed);
    return removed;
}

// ---- Lease ----------------------------------------------------------------------------------

IpLimits::Lease& IpLimits::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        reset();
        table_ = std::exchange(other.table_, nullptr);
        key_ = other.key_;
        kind_ = other.kind_;
    }
    return *this;
}

void IpLimits::Lease::reset() {
    if (!table_) return;
    std::exchange(table_, nullptr)->release(key_, kind_);
}

}  // namespace portico::net
