// SPDX-License-Identifier: Apache-2.0
#include "portico/bridge/event_stream.h"

#include <array>

#include "portico/ws/close_code.h"
#include "portico/ws/utf8_validator.h"

namespace portico::bridge {

namespace {

constexpr std::array<std::string_view, 7> kTypeNames = {"OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE", "DISCONNECT"};
// A hex length of more than 16 digits cannot fit 64 bits (and no sane event needs one).
constexpr std::size_t kMaxLengthDigits = 16;

bool lookupType(std::string_view name, EventType& type) {
    for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
        if (kTypeNames[i] == name) {
            type = static_cast<EventType>(i);
            return true;
        }
    }
    return false;
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool isTypeChar(char c) { return c >= 'A' && c <= 'Z'; }

// Checks the content of a parsed event against its type. Returns the error, or None.
ParseError checkContent(const Event& event) {
    switch (event.type) {
        case EventType::Open:
        case EventType::Disconnect:
            return event.content.empty() ? ParseError::None : ParseError::UnexpectedContent;
        case EventType::Text:
            return ws::Utf8Validator::isValid(event.content) ? ParseError::None : ParseError::InvalidUtf8;
        case EventType::Close: {
            // Code 0 is "none": GRIP libraries write it for a close without a code (serve-grip's
            // WebSocketContext.close() packs 0 by default), and Pushpin takes it.
            if (event.content.size() >= 2 && event.content[0] == 0 && event.content[1] == 0)
                return ws::Utf8Validator::isValid(event.content.substr(2)) ? ParseError::None : ParseError::InvalidUtf8;
            ws::ClosePayload close;
            const std::uint16_t failure = ws::parseClosePayload(
                reinterpret_cast<const std::uint8_t*>(event.content.data()), event.content.size(), close);
            if (failure == ws::close_code::kInvalidPayload) return ParseError::InvalidUtf8;
            return failure == 0 ? ParseError::None : ParseError::BadClose;
        }
        case EventType::Binary:
        case EventType::Ping:
        case EventType::Pong:
            return ParseError::None;
    }
    return ParseError::None;
}

}  // namespace

std::string_view toString(EventType type) { return kTypeNames[static_cast<std::size_t>(type)]; }

const char* toString(ParseError error) {
    switch (error) {
        case ParseError::None: return "no error";
        case ParseError::BadTypeLine: return "malformed event line";
        case ParseError::UnknownType: return "unknown event type";
        case ParseError::BadLength: return "malformed event length";
        case ParseError::TooLarge: return "event content too large";
        case ParseError::BadTerminator: return "event content not followed by CRLF (the length lies)";
        case ParseError::UnexpectedContent: return "content on an event that takes none";
        case ParseError::InvalidUtf8: return "TEXT or CLOSE reason not UTF-8";
        case ParseError::BadClose: return "malformed CLOSE code";
    }
    return "?";
}

ParseResult parseEvent(std::string_view in, std::size_t max_content_bytes, Event& event) {
    // The type: upper-case letters up to a space or CR.
    std::size_t at = 0;
    while (at < in.size() && isTypeChar(in[at])) ++at;
    if (at == in.size()) return at >= kMaxTypeLineBytes ? ParseResult{0, ParseError::BadTypeLine, at} : ParseResult{};
    const std::string_view name = in.substr(0, at);
    if (name.empty() || (in[at] != ' ' && in[at] != '\r')) return {0, ParseError::BadTypeLine, at};
    if (!lookupType(name, event.type)) return {0, ParseError::UnknownType, 0};
    event.has_content = in[at] == ' ';
    event.content = {};
    std::uint64_t length = 0;
    if (event.has_content) {
        const std::size_t digits_start = ++at;
        while (at < in.size() && at - digits_start <= kMaxLengthDigits) {
            const int digit = hexValue(in[at]);
            if (digit < 0) break;
            length = length * 16 + static_cast<unsigned>(digit);
            ++at;
        }
        if (at - digits_start > kMaxLengthDigits) return {0, ParseError::BadLength, at};
        if (at == in.size()) return {};
        if (at == digits_start || in[at] != '\r') return {0, ParseError::BadLength, at};
        if (length > max_content_bytes) return {0, ParseError::TooLarge, digits_start};
    }
    // in[at] is the CR of the type line.
    if (at + 1 >= in.size()) return {};
    if (in[at + 1] != '\n') return {0, ParseError::BadTypeLine, at + 1};
    at += 2;
    if (event.has_content) {
        const auto size = static_cast<std::size_t>(length);
        if (in.size() - at < size + 2) {
            // Too short for the content and its CRLF. What is there of the CRLF already must fit.
            if (in.size() - at > size && in[at + size] != '\r') return {0, ParseError::BadTerminator, at + size};
            return {};
        }
        if (in[at + size] != '\r' || in[at + size + 1] != '\n') return {0, ParseError::BadTerminator, at + size};
        event.content = in.substr(at, size);
        at += size + 2;
    }
    if (const ParseError error = checkContent(event); error != ParseError::None) return {0, error, 0};
    return {at, ParseError::None, 0};
}

ParseError truncatedError(std::string_view rest) {
    // A complete type line followed by too little content: the length promised more.
    const std::size_t line_end = rest.find("\r\n");
    return line_end == std::string_view::npos ? ParseError::BadTypeLine : ParseError::BadTerminator;
}

CloseContent closeContent(const Event& event) {
    if (event.type != EventType::Close || event.content.size() < 2) return {};
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(event.content.data());
    return {static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1]), event.content.substr(2)};
}

void appendEvent(std::string& out, EventType type) {
    out += toString(type);
    out += "\r\n";
}

void appendEvent(std::string& out, EventType type, std::string_view content) {
    // Lower-case hex digits, as Pushpin writes them.
    static constexpr char kHex[] = "0123456789abcdef";
    char digits[kMaxLengthDigits];
    std::size_t n = 0;
    std::size_t length = content.size();
    do {
        digits[n++] = kHex[length & 0xF];
        length >>= 4;
    } while (length != 0);
    out += toString(type);
    out += ' ';
    while (n > 0) out += digits[--n];
    out += "\r\n";
    out += content;
    out += "\r\n";
}

void appendClose(std::string& out, std::uint16_t code, std::string_view reason) {
    if (code == 0) {
        appendEvent(out, EventType::Close);
        return;
    }
    std::string content;
    content.reserve(2 + reason.size());
    content += static_cast<char>(code >> 8);
    content += static_cast<char>(code & 0xFF);
    content += reason;
    appendEvent(out, EventType::Close, content);
}

std::size_t encodedSize(EventType type, std::size_t content_bytes) {
    std::size_t digits = 1;
    for (std::size_t n = content_bytes >> 4; n != 0; n >>= 4) ++digits;
    return toString(type).size() + 1 + digits + 2 + content_bytes + 2;
}

}  // namespace portico::bridge
