// SPDX-License-Identifier: Apache-2.0
#include "portico/handlers/publish_api.h"

#include <memory>
#include <string>
#include <vector>

#include "portico/core/base64.h"
#include "portico/core/json_reader.h"
#include "portico/core/jwt.h"
#include "portico/core/log.h"
#include "portico/http/simple_response.h"
#include "portico/ws/utf8_validator.h"

namespace portico::handlers {

namespace {

constexpr std::string_view kBearer = "Bearer ";

bool sameSecret(std::string_view given, std::string_view secret) {
    if (given.size() != secret.size()) return false;
    unsigned char diff = 0;  // constant time: the token is a secret
    for (std::size_t i = 0; i < secret.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ secret[i]);
    return diff == 0;
}

struct Item {
    std::string channel;
    std::string payload;
    bool text = true;
};

// The API's items, or an error saying what is wrong.
bool readItems(std::string_view body, std::vector<Item>& items, std::string& error) {
    auto json = core::parseJson(body);
    const core::JsonValue* list = json ? json->find("items") : nullptr;
    if (!list || !list->isArray()) {
        error = "expected {\"items\": [...]}";
        return false;
    }
    for (const core::JsonValue& item : list->array) {
        const std::string* channel = item.findString("channel");
        if (!channel || channel->empty() || channel->size() > 200) {
            error = "an item without a valid \"channel\"";
            return false;
        }
        const core::JsonValue* formats = item.find("formats");
        const core::JsonValue* message = formats ? formats->find("ws-message") : nullptr;
        if (!message) continue;  // for a transport Portico does not hold
        Item out;
        out.channel = *channel;
        if (const std::string* bin = message->findString("content-bin")) {
            auto decoded = core::base64Decode(*bin);
            if (!decoded) {
                error = "\"content-bin\" is not base64";
                return false;
            }
            out.payload = std::move(*decoded);
            out.text = false;
        } else if (const std::string* content = message->findString("content")) {
            out.payload = *content;
            out.text = ws::Utf8Validator::isValid(out.payload);
        } else {
            error = "a ws-message without \"content\" or \"content-bin\"";
            return false;
        }
        items.push_back(std::move(out));
    }
    return true;
}

}  // namespace

bool publishApiAuthorized(const config::Route& route, std::string_view authorization, std::int64_t now_unix) {
    const config::PublishSettings& settings = route.publish;
    if (settings.token.empty() && settings.jwt_key.empty()) return true;
    if (authorization.size() <= kBearer.size() || !http::equalsIgnoreCase(authorization.substr(0, kBearer.size()), kBearer))
        return false;
    const std::string_view credential = authorization.substr(kBearer.size());
    if (!settings.token.empty() && sameSecret(credential, settings.token)) return true;
    if (!settings.jwt_key.empty()) {
        const core::JwtVerdict verdict = core::verifyHs256(credential, settings.jwt_key, now_unix, settings.iss);
        if (verdict == core::JwtVerdict::Ok) return true;
        LOG_INFO("publish: JWT refused: %s", core::toString(verdict));
    }
    return false;
}

namespace {

// The items of one request, published one after another: each through the worker's backplane
// (so with Redis they reach every node), the next once the backplane has taken the one before,
// whether it answers at once or later.
struct PublishBatch {
    PubSubHub& hub;
    GripChannels channels;
    std::vector<Item> items;
    PubSubAnswerDone done;
    std::size_t next = 0;
    bool running = false;  // inside run(): an answer now lets its loop go on
    bool waiting = false;  // a publish has not been answered
    bool answered = false;
};

void run(const std::shared_ptr<PublishBatch>& batch) {
    batch->running = true;
    while (!batch->answered && batch->next < batch->items.size()) {
        Item& item = batch->items[batch->next++];
        pubsub::PublishRequest request;
        request.channel = batch->channels.key(item.channel);
        request.payload = std::move(item.payload);
        request.text = item.text;
        request.settings = &batch->channels.settings();
        batch->waiting = true;
        batch->hub.backplane().publish(std::move(request), [batch](const pubsub::PublishResult& result) {
            batch->waiting = false;
            if (result.refused != pubsub::Refusal::None) {
                batch->answered = true;
                const int status = result.refused == pubsub::Refusal::Rate ? 429 : 503;
                batch->done(PubSubAnswer{status, {}, {{"Retry-After", std::to_string(result.retry_after.count())}}});
                return;
            }
            if (!batch->running) run(batch);
        });
        if (batch->waiting) {
            batch->running = false;  // the callback goes on
            return;
        }
    }
    batch->running = false;
    if (batch->answered) return;
    batch->answered = true;
    batch->done(PubSubAnswer{200, "Published\n", {}, "text/plain"});
}

}  // namespace

void servePublishApi(PubSubHub& hub, const GripChannels& channels, std::string_view method, std::string_view body,
                     PubSubAnswerDone done) {
    if (method != "POST") return done(PubSubAnswer{405, {}, {{"Allow", "POST"}}});
    std::vector<Item> items;
    std::string error;
    if (!readItems(body, items, error)) {
        LOG_INFO("publish: refused a body: %s", error.c_str());
        return done(PubSubAnswer{400, "400 Bad Request: " + error + "\n", {}, "text/plain"});
    }
    run(std::make_shared<PublishBatch>(PublishBatch{hub, channels, std::move(items), std::move(done)}));
}

}  // namespace portico::handlers
