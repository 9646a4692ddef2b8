// SPDX-License-Identifier: Apache-2.0
// Pass 1: decoding (passes.h). The root table of known keys; each section's table lives in its
// own sections_*.cpp (sections.h).

#include "config/sections.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "config/passes.h"
#include "portico/config/units.h"

namespace portico::config::detail {
namespace {

constexpr std::uint64_t kMaxWorkers = 1024;  // more threads than this is a typo, not a machine

void decodeWorkers(Decoder& d, const Item& v, Config& c) {
    if (v.node.IsScalar()) {
        const std::string& text = v.node.Scalar();
        if (text == "auto") {
            c.workers = 0;
            return;
        }
        auto count = parseCount(text);
        if (count && *count > kMaxWorkers) {
            d.error(v, "at most " + std::to_string(kMaxWorkers) + " workers");
            return;
        }
        if (count && *count > 0) {
            c.workers = static_cast<unsigned>(*count);
            return;
        }
    }
    d.error(v, "expected auto or a positive integer");
}

void decodeDrainTimeout(Decoder& d, const Item& v, Config& c) {
    if (v.node.IsScalar()) {
        if (v.node.Scalar() == "off") {
            c.reload_drain_timeout.reset();
            return;
        }
        if (auto timeout = parseDuration(v.node.Scalar())) {
            c.reload_drain_timeout = *timeout;
            return;
        }
    }
    d.error(v, "expected off or a duration like 10m");
}

constexpr std::array<std::pair<std::string_view, IoUring>, 3> kIoUringModes{{
    {"off", IoUring::Off},
    {"auto", IoUring::Auto},
    {"on", IoUring::On},
}};

const std::array<KeyRule<Config>, 10> kRootKeys{{
    {"workers", type::count("auto").aboveZero().atMost(kMaxWorkers), "auto",
     "worker threads (1..1024); auto = number of CPUs",
     decodeWorkers},
    {"shutdown_timeout", type::duration(), "10s",
     "graceful stop: how long requests in flight may take",
     [](Decoder& d, const Item& v, Config& c) { d.readDuration(v, c.shutdown_timeout); }},
    {"reload_drain_timeout", type::duration("off"), "off",
     "after a reload, close old upgraded connections with 1001 this long later; off = never",
     decodeDrainTimeout},
    {"io_uring", type::choice<kIoUringModes>(), "off",
     "plain TCP sockets (HTTP/1.1 and h2c clients, plain upstreams, WebSocket tunnels) on a per-worker io_uring: off, auto (when the kernel allows), on (required)",
     [](Decoder& d, const Item& v, Config& c) { d.readChoice(v, kIoUringModes, c.io_uring); }},
    {"log", type::mapping<kLogKeys>(), "",
     "error and access logs",
     [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kLogKeys, c.log); }},
    {"limits", type::mapping<kLimitsKeys>(), "",
     "bounds on clients and requests",
     [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kLimitsKeys, c.limits); }},
    {"pubsub", type::mapping<kPubSubLimitsKeys>(), "",
     "the channel registry every pubsub route and worker shares",
     [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kPubSubLimitsKeys, c.pubsub); }},
    {"listeners", type::mappingList<kListenerKeys>(), "",
     "addresses Portico accepts connections on",
     [](Decoder& d, const Item& v, Config& c) { decodeMappingList(d, v, kListenerKeys, c.listeners); }},
    {"upstreams", type::namedMappings<kUpstreamKeys>(kUpstreamNamePattern), "",
     "backend server groups, by name",
     decodeUpstreams},
    {"routes", type::mappingList<kRouteKeys>(), "",
     "first match wins",
     [](Decoder& d, const Item& v, Config& c) { decodeMappingList(d, v, kRouteKeys, c.routes); }},
}};

}  // namespace

SectionDocs rootKeyDocs() {
    return type::docsOf<kRootKeys>();
}

Config decodeConfig(Decoder& decoder, const Item& root) {
    Config config;
    decoder.remember(root.path, root.mark);
    decodeMapping(decoder, root, kRootKeys, config);
    return config;
}

}  // namespace portico::config::detail
