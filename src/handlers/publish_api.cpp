#include "portico/handlers/publish_api.h"

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

PubSubReply servePublishApi(evbuffer* out, PubSubHub& hub, const GripChannels& channels, std::string_view method,
                            std::string_view body, http::KeepAlive keep_alive) {
    if (method != "POST") return {405, http::writeErrorResponse(out, 405, keep_alive, {{"Allow", "POST"}})};
    std::vector<Item> items;
    std::string error;
    if (!readItems(body, items, error)) {
        LOG_INFO("publish: refused a body: %s", error.c_str());
        return {400, http::writeSimpleResponse(out, 400, "text/plain", "400 Bad Request: " + error + "\n", keep_alive)};
    }
    for (Item& item : items) {
        auto result = hub.registry().publish(channels.key(item.channel), std::move(item.payload), item.text,
                                             channels.settings(), nullptr);
        if (result.refused != PubSubRegistry::Refusal::None) {
            const int status = result.refused == PubSubRegistry::Refusal::Rate ? 429 : 503;
            return {status, http::writeErrorResponse(out, status, keep_alive,
                                                     {{"Retry-After", std::to_string(result.retry_after.count())}})};
        }
    }
    return {200, http::writeSimpleResponse(out, 200, "text/plain", "Published\n", keep_alive)};
}

}  // namespace portico::handlers
