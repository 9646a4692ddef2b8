// SPDX-License-Identifier: Apache-2.0
#include "portico/bridge/grip.h"

#include <cmath>

#include "portico/core/base64.h"
#include "portico/core/json_reader.h"
#include "portico/http/head.h"
#include "portico/ws/close_code.h"
#include "portico/ws/utf8_validator.h"

namespace portico::bridge {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 6455 9.1: a parameter value is a token or a quoted-string.
std::string unquote(std::string_view value) {
    value = trim(value);
    if (value.size() < 2 || value.front() != '"' || value.back() != '"') return std::string(value);
    std::string out;
    for (std::size_t i = 1; i + 1 < value.size(); ++i) {
        if (value[i] == '\\' && i + 2 < value.size()) ++i;
        out += value[i];
    }
    return out;
}

bool validChannel(std::string_view channel) {
    if (channel.empty() || channel.size() > kMaxChannelBytes) return false;
    for (char c : channel)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
    return true;
}

}  // namespace

std::optional<GripExtension> findGripExtension(std::string_view extensions) {
    // Extensions are separated by commas, parameters by semicolons (RFC 6455 9.1); a quoted
    // prefix holding either is not expected from GRIP apps and not supported.
    std::optional<GripExtension> found;
    http::forEachToken(extensions, [&](std::string_view item) {
        std::size_t semi = item.find(';');
        if (found || !http::equalsIgnoreCase(trim(item.substr(0, semi)), "grip")) return;
        GripExtension grip;
        while (semi != std::string_view::npos) {
            const std::size_t next = item.find(';', semi + 1);
            const std::string_view param =
                item.substr(semi + 1, next == std::string_view::npos ? std::string_view::npos : next - semi - 1);
            const std::size_t eq = param.find('=');
            if (eq != std::string_view::npos && http::equalsIgnoreCase(trim(param.substr(0, eq)), "message-prefix"))
                grip.message_prefix = unquote(param.substr(eq + 1));
            semi = next;
        }
        found = std::move(grip);
    });
    return found;
}

std::optional<ControlMessage> parseControlMessage(std::string_view json, std::string& error) {
    auto parsed = core::parseJson(json);
    if (!parsed || !parsed->isObject()) {
        error = "not a JSON object";
        return std::nullopt;
    }
    const std::string* type = parsed->findString("type");
    if (!type) {
        error = "no \"type\"";
        return std::nullopt;
    }
    ControlMessage m;
    if (*type == "subscribe" || *type == "unsubscribe") {
        m.type = *type == "subscribe" ? ControlMessage::Type::Subscribe : ControlMessage::Type::Unsubscribe;
        const std::string* channel = parsed->findString("channel");
        if (!channel || !validChannel(*channel)) {
            error = "missing or invalid \"channel\"";
            return std::nullopt;
        }
        m.channel = *channel;
    } else if (*type == "detach") {
        m.type = ControlMessage::Type::Detach;
    } else if (*type == "set-meta") {
        m.type = ControlMessage::Type::SetMeta;
        const std::string* name = parsed->findString("name");
        if (!name || name->empty() || name->size() > 64 || !http::isToken(*name)) {
            error = "missing or invalid \"name\"";
            return std::nullopt;
        }
        m.name = *name;
        if (const std::string* value = parsed->findString("value")) m.value = *value;
        // It becomes a request header (Meta-NAME): a CR or LF would end it and start another
        // (header injection into the app's requests), so only a field value is taken (RFC 9110
        // 5.5: no control characters but HTAB).
        for (char c : m.value) {
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F) {
                error = "\"value\" is not a header field value";
                return std::nullopt;
            }
        }
    } else if (*type == "keep-alive" || *type == "send-delayed") {
        // Both carry a message for the client: content or content-bin, message-type, timeout.
        const bool keep_alive = *type == "keep-alive";
        m.type = keep_alive ? ControlMessage::Type::KeepAlive : ControlMessage::Type::SendDelayed;
        if (const std::string* bin = parsed->findString("content-bin")) {
            auto decoded = core::base64Decode(*bin);
            if (!decoded) {
                error = "\"content-bin\" is not base64";
                return std::nullopt;
            }
            m.content = std::move(*decoded);
            m.message_type = ControlMessage::MessageType::Binary;
        } else if (const std::string* content = parsed->findString("content")) {
            m.content = *content;
        }
        if (const std::string* kind = parsed->findString("message-type")) {
            if (*kind == "text") m.message_type = ControlMessage::MessageType::Text;
            else if (*kind == "binary") m.message_type = ControlMessage::MessageType::Binary;
            else if (*kind == "ping") m.message_type = ControlMessage::MessageType::Ping;
            else if (*kind == "pong") m.message_type = ControlMessage::MessageType::Pong;
            else {
                error = "unknown \"message-type\"";
                return std::nullopt;
            }
        }
        // A text frame must be UTF-8 (RFC 6455 8.1): content-bin sent as text could break that,
        // and the client would fail the connection with 1007 for a frame of ours.
        if (m.message_type == ControlMessage::MessageType::Text && !ws::Utf8Validator::isValid(m.content)) {
            error = "text content is not UTF-8";
            return std::nullopt;
        }
        // Pushpin 1.36's defaults (handler/engine.cpp): 55 s for keep-alive, 1 s for
        // send-delayed; 0 means the default there too.
        m.timeout = keep_alive ? kKeepAliveDefaultSeconds : kSendDelayedDefaultSeconds;
        if (const core::JsonValue* timeout = parsed->find("timeout")) {
            if (!timeout->isNumber() || timeout->number < 0 || timeout->number > 86400 ||
                timeout->number != std::floor(timeout->number)) {
                error = "\"timeout\" is not a whole number of seconds (0..86400)";
                return std::nullopt;
            }
            if (timeout->number > 0) m.timeout = static_cast<unsigned>(timeout->number);
        }
        // Pushpin: "interval" sends the keep-alive every `timeout` seconds; anything else is
        // "idle" (after `timeout` seconds without a message to the client).
        if (const std::string* mode = parsed->findString("mode")) m.interval = keep_alive && *mode == "interval";
    } else if (*type == "flush-delayed") {
        m.type = ControlMessage::Type::FlushDelayed;
    } else if (*type == "close") {
        m.type = ControlMessage::Type::Close;
        if (const core::JsonValue* code = parsed->find("code")) {
            if (!code->isNumber() || code->number != std::floor(code->number) || code->number < 0 || code->number > 65535 ||
                !ws::isValidCloseCodeOnWire(static_cast<std::uint16_t>(code->number))) {
                error = "invalid \"code\"";
                return std::nullopt;
            }
            m.code = static_cast<std::uint16_t>(code->number);
        }
        if (const std::string* reason = parsed->findString("reason")) m.reason = *reason;
    } else {
        error = "unsupported type \"" + type->substr(0, 32) + "\"";
        return std::nullopt;
    }
    return m;
}

}  // namespace portico::bridge
