// SPDX-License-Identifier: Apache-2.0
// `listeners:` addresses, and the TLS of each (certificates by SNI, versions, ALPN, mTLS).

#include "config/sections.h"

#include <array>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/config/units.h"

namespace portico::config::detail {
namespace {

constexpr std::array<std::pair<std::string_view, TlsVersion>, 2> kTlsVersions{{
    {"1.2", TlsVersion::Tls12},
    {"1.3", TlsVersion::Tls13},
}};
constexpr std::string_view kAlpnPattern = R"(h2|http/1\.[01])";

const std::array<KeyRule<CertificateFiles>, 2> kCertificateKeys{{
    {"cert", type::path(), "",
     "PEM certificate chain, leaf first; its SANs name the hosts it serves",
     [](Decoder& d, const Item& v, CertificateFiles& c) { d.readPath(v, c.cert); }},
    {"key", type::path(), "",
     "PEM private key of cert (no passphrase)",
     [](Decoder& d, const Item& v, CertificateFiles& c) { d.readPath(v, c.key); }},
}};

const std::array<KeyRule<ListenerTls>, 7> kListenerTlsKeys{{
    {"certificates", type::mappingList<kCertificateKeys>(), "",
     "certificate chains: the first is the default, the others are chosen by SNI",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         decodeMappingList(d, v, kCertificateKeys, tls.certificates);
     }},
    {"min_version", type::choice<kTlsVersions>(), "1.2",
     "oldest TLS version accepted",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         d.readChoice(v, kTlsVersions, tls.min_version);
     }},
    {"ciphers", type::string(), "",
     "TLS 1.2 cipher list (OpenSSL syntax); absent = OpenSSL's default",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         if (d.readString(v, tls.ciphers) && tls.ciphers.empty()) {
             d.error(v, "expected an OpenSSL cipher list");
         }
         tls.ciphers_mark = toSourceMark(v.mark);
     }},
    {"alpn", type::stringList(kAlpnPattern), "[http/1.1]",
     "protocols offered by ALPN, in preference order",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         std::vector<std::string> protocols;
         if (!d.readStringList(v, protocols)) return;
         bool ok = true;
         for (std::size_t i = 0; i < protocols.size(); ++i) {
             // RFC 7301 3.2: the server selects among the protocols it offers, in this order: with
             // h2 first browsers speak HTTP/2, other clients HTTP/1.1 on the same listener.
             if (protocols[i] != "h2" && protocols[i] != "http/1.1" && protocols[i] != "http/1.0") {
                 std::string path = indexPath(v.path, i);
                 d.error(d.markOf(path), path,
                         "unsupported protocol \"" + protocols[i] +
                             "\" (Portico speaks h2, http/1.1 and http/1.0)");
                 ok = false;
             }
         }
         if (ok) tls.alpn = std::move(protocols);
     }},
    {"session_tickets", type::boolean(), "true",
     "TLS session resumption with tickets",
     [](Decoder& d, const Item& v, ListenerTls& tls) { d.readBool(v, tls.session_tickets); }},
    {"client_ca", type::path(), "",
     "PEM CA file: require and verify client certificates (mTLS)",
     [](Decoder& d, const Item& v, ListenerTls& tls) { d.readPath(v, tls.client_ca); }},
    {"keylog_file", type::path(), "",
     "write TLS secrets in the NSS key log format (for Wireshark); off unless set",
     [](Decoder& d, const Item& v, ListenerTls& tls) { d.readPath(v, tls.keylog_file); }},
}};

}  // namespace

const std::array<KeyRule<Listener>, kListenerKeyCount> kListenerKeys =
    std::to_array<KeyRule<Listener>>({
    {"address", type::hostPort(), "",
     "host:port, [v6]:port or *:port (every IPv4 address); port 0 = any free port",
     [](Decoder& d, const Item& v, Listener& l) {
         std::string text;
         if (!d.readString(v, text)) return;
         auto address = parseHostPort(text);
         if (!address) {
             d.error(v,
                     "invalid address \"" + text + "\" (expected host:port, [v6]:port or *:port)");
             return;
         }
         l.address = *address;
     }},
    {"redirect_https", type::port(), "",
     "answer every request 308 to https://host:PORT",
     [](Decoder& d, const Item& v, Listener& l) {
         std::uint16_t port = 0;
         if (d.readPort(v, port)) l.redirect_https = port;
     }},
    {"tls", type::mapping<kListenerTlsKeys>(), "",
     "this listener speaks TLS (HTTPS and wss://)",
     [](Decoder& d, const Item& v, Listener& l) {
         l.tls.emplace();
         decodeMapping(d, v, kListenerTlsKeys, *l.tls);
     }},
    {"http2", type::boolean(), "false",
     "cleartext listener: HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1; on TLS use tls.alpn",
     [](Decoder& d, const Item& v, Listener& l) { d.readBool(v, l.http2); }},
    {"http2_extended_connect", type::boolean(), "true",
     "HTTP/2: offer WebSockets over streams (RFC 8441 SETTINGS_ENABLE_CONNECT_PROTOCOL)",
     [](Decoder& d, const Item& v, Listener& l) { d.readBool(v, l.http2_extended_connect); }},
});

}  // namespace portico::config::detail
