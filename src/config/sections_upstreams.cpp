// SPDX-License-Identifier: Apache-2.0
// `upstreams:` named server groups: servers, balancing, pooling, timeouts and TLS.

#include "config/sections.h"

#include <array>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>

#include "portico/config/units.h"

namespace portico::config::detail {
namespace {

constexpr std::array<std::pair<std::string_view, Balance>, 3> kBalances{{
    {"round_robin", Balance::RoundRobin},
    {"least_conn", Balance::LeastConn},
    {"ip_hash", Balance::IpHash},
}};

const std::array<KeyRule<UpstreamTls>, 4> kUpstreamTlsKeys{{
    {"verify", type::boolean(), "true",
     "verify the server's chain and host name",
     [](Decoder& d, const Item& v, UpstreamTls& tls) { d.readBool(v, tls.verify); }},
    {"ca", type::path(), "",
     "PEM CA bundle; absent = the system's default store",
     [](Decoder& d, const Item& v, UpstreamTls& tls) { d.readPath(v, tls.ca); }},
    {"sni", type::string(kHostNamePattern), "",
     "server name sent and verified; absent = the server's host when it is a name",
     [](Decoder& d, const Item& v, UpstreamTls& tls) {
         std::string name;
         if (!d.readString(v, name)) return;
         if (!isHostName(name)) {
             d.error(v, "expected a host name");
             return;
         }
         tls.sni = toLower(std::move(name));
     }},
    {"keylog_file", type::path(), "",
     "write TLS secrets in the NSS key log format (for Wireshark); off unless set",
     [](Decoder& d, const Item& v, UpstreamTls& tls) { d.readPath(v, tls.keylog_file); }},
}};

bool isUpstreamName(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    }
    return true;
}

}  // namespace

const std::array<KeyRule<Upstream>, kUpstreamKeyCount> kUpstreamKeys =
    std::to_array<KeyRule<Upstream>>({
    {"servers", type::hostPortList(), "",
     "host:port of each server",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (!v.node.IsNull() && !v.node.IsSequence()) {
             d.error(v, "expected a list of host:port");
             return;
         }
         d.forEachElement(v, [&](const Item& element) {
             std::string text;
             if (!d.readString(element, text)) return;
             auto server = parseHostPort(text);
             if (!server || server->host.empty() || server->port == 0) {
                 d.error(element, "invalid server address \"" + text +
                                      "\" (expected host:port or [v6]:port)");
                 return;
             }
             u.servers.push_back(*server);
         });
     }},
    {"balance", type::choice<kBalances>(), "round_robin",
     "how requests are spread over the servers",
     [](Decoder& d, const Item& v, Upstream& u) {
         d.readChoice(v, kBalances, u.balance);
     }},
    {"keepalive", type::count(), "32",
     "idle pooled connections per worker; 0 = no pooling",
     [](Decoder& d, const Item& v, Upstream& u) { d.readCount(v, u.keepalive); }},
    {"connect_timeout", type::duration().aboveZero(), "2s",
     "504 when connecting takes longer",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (d.readDuration(v, u.connect_timeout)) {
             requirePositive(d, v, u.connect_timeout.count() > 0);
         }
     }},
    {"send_timeout", type::duration().aboveZero(), "60s",
     "504 when the upstream takes no request bytes this long",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (d.readDuration(v, u.send_timeout)) requirePositive(d, v, u.send_timeout.count() > 0);
     }},
    {"read_timeout", type::duration().aboveZero(), "60s",
     "504 when the upstream is silent this long",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (d.readDuration(v, u.read_timeout)) requirePositive(d, v, u.read_timeout.count() > 0);
     }},
    {"tls", type::mapping<kUpstreamTlsKeys>(), "",
     "connect to the servers over TLS (tls: {} for the defaults)",
     [](Decoder& d, const Item& v, Upstream& u) {
         u.tls.emplace();  // `tls: {}` (or an empty `tls:`) means TLS with the defaults
         decodeMapping(d, v, kUpstreamTlsKeys, *u.tls);
     }},
});

void decodeUpstreams(Decoder& d, const Item& v, Config& c) {
    d.forEachEntry(v, [&](const std::string& name, const YAML::Mark& key_mark, const Item& value) {
        // Errors about the upstream as a whole (no servers) point at its name.
        d.remember(value.path, key_mark);
        if (!isUpstreamName(name)) {
            // Names appear in key paths and metrics labels: keep them plain.
            d.error(key_mark, value.path, "an upstream name is letters, digits, - and _");
        }
        Upstream upstream;
        upstream.name = name;
        upstream.mark = toSourceMark(key_mark);
        decodeMapping(d, value, kUpstreamKeys, upstream);
        c.upstreams.emplace(name, std::move(upstream));
    });
}

}  // namespace portico::config::detail
