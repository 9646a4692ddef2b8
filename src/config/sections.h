// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/config: what the section files (sections_*.cpp) share. Pass 1 decodes through
// one table of known keys per section, in the order of portico.yaml (see issue 2's "YAML
// contract", extended by the WebSocket, TLS and operations issues). A table entry only checks
// what its one value can tell; relations between keys are validate.cpp's business.
//
// A table that another section nests (`type::mapping<kLimitsKeys>()`) is declared here with its
// size; the definition (through std::to_array) uses the same constant, so a table whose entry
// count differs from it does not compile.
// Tables nobody else nests stay in their file's anonymous namespace.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "config/decoder.h"
#include "portico/config/config.h"

namespace portico::config::detail {

// ---- small checks every section uses (sections_common.cpp) -------------------------------------

// Reports "must be greater than 0" at `v` unless `positive`.
void requirePositive(Decoder& d, const Item& v, bool positive);
// ASCII lower case (host names, header names and origins compare case-insensitively).
std::string toLower(std::string text);
// A host name as a route or an SNI value names it: labels of letters, digits, '-' and '_'.
bool isHostName(std::string_view host);

inline constexpr std::string_view kTokenPattern = R"([!#$%&'*+.^_`|~0-9A-Za-z-]+)";  // http::isToken
inline constexpr std::string_view kHostNamePattern =
    R"([A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*)";                                  // isHostName
inline constexpr std::string_view kNonEmptyPattern = ".+";  // a key: any string but ""

// ---- log and limits (sections_log_limits.cpp) --------------------------------------------------

inline constexpr std::size_t kLogKeyCount = 3;
extern const std::array<KeyRule<LogSettings>, kLogKeyCount> kLogKeys;
inline constexpr std::size_t kLimitsKeyCount = 20;
extern const std::array<KeyRule<Limits>, kLimitsKeyCount> kLimitsKeys;

// ---- listeners (sections_listeners.cpp) --------------------------------------------------------

inline constexpr std::size_t kListenerKeyCount = 5;
extern const std::array<KeyRule<Listener>, kListenerKeyCount> kListenerKeys;

// ---- upstreams (sections_upstreams.cpp) --------------------------------------------------------

inline constexpr std::string_view kUpstreamNamePattern = "[A-Za-z0-9_-]+";  // isUpstreamName
inline constexpr std::size_t kUpstreamKeyCount = 7;
extern const std::array<KeyRule<Upstream>, kUpstreamKeyCount> kUpstreamKeys;
// `upstreams:` name -> upstream mapping, into c.upstreams.
void decodeUpstreams(Decoder& d, const Item& v, Config& c);

// ---- a route's websocket block (sections_websocket.cpp) ----------------------------------------

inline constexpr std::size_t kWebSocketKeyCount = 15;
extern const std::array<KeyRule<WebSocketSettings>, kWebSocketKeyCount> kWebSocketKeys;

// ---- pub/sub: a route's pubsub and publish blocks, the top-level pubsub (sections_pubsub.cpp) --

inline constexpr std::size_t kPublishKeyCount = 3;
extern const std::array<KeyRule<PublishSettings>, kPublishKeyCount> kPublishKeys;
inline constexpr std::size_t kPubSubKeyCount = 10;
extern const std::array<KeyRule<PubSubSettings>, kPubSubKeyCount> kPubSubKeys;
inline constexpr std::size_t kPubSubLimitsKeyCount = 3;
extern const std::array<KeyRule<PubSubLimits>, kPubSubLimitsKeyCount> kPubSubLimitsKeys;

// ---- routes (sections_routes.cpp) --------------------------------------------------------------

inline constexpr std::size_t kRouteKeyCount = 11;
extern const std::array<KeyRule<Route>, kRouteKeyCount> kRouteKeys;

}  // namespace portico::config::detail
