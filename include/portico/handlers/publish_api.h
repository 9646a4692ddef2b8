// SPDX-License-Identifier: Apache-2.0
#pragma once
// `handler: publish`: Pushpin's publish API, so GRIP publishers (@fanoutio/grip, django-grip)
// work against Portico unchanged:
//   POST {"items": [{"channel": "room", "formats": {"ws-message": {"content": "hi"}}}]}
// Each item's ws-message ("content": text, "content-bin": base64, a binary message) goes to the
// GRIP channel (handlers/pubsub.h GripChannels), reaching bridged WebSockets subscribed to it
// and the pubsub route's own subscribers. Items without a ws-message format are skipped (they
// are for HTTP streaming, which Portico does not hold).

#include <cstdint>
#include <string>
#include <string_view>

#include "portico/config/config.h"
#include "portico/handlers/pubsub.h"
#include "portico/http/head.h"


namespace portico::handlers {

// True when `authorization` (the request's Authorization value) is "Bearer TOKEN" with the
// route's publish.token (constant time), or "Bearer JWT" signed HS256 with publish.jwt_key
// (unexpired; naming publish.iss when set); true when the route has neither (open).
bool publishApiAuthorized(const config::Route& route, std::string_view authorization, std::int64_t now_unix);

// Answers a publish through `done` (on this worker's thread, at once or once the backplane
// has answered): 200 "Published" once every item is published; 400 for a body that is not the
// API's JSON (nothing published); 429/503 (with Retry-After) when the backplane refuses an item
// for its channel's rate, max_channels or being unavailable (the items before it were
// published); 405 for anything but POST. Items go through the worker's backplane, as
// POST /live/<channel> does: with Redis they reach every node.
void servePublishApi(PubSubHub& hub, const GripChannels& channels, std::string_view method, std::string_view body,
                     PubSubAnswerDone done);

}  // namespace portico::handlers
