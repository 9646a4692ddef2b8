// SPDX-License-Identifier: Apache-2.0
#pragma once
// The WebSocket-over-HTTP event stream (Pushpin's "application/websocket-events"): the body of
// every request the bridge sends to an app and of every answer it reads back.
//
//   event   = TYPE "\r\n"                                  (no content: OPEN, DISCONNECT, ...)
//           | TYPE " " HEXLEN "\r\n" CONTENT "\r\n"         (HEXLEN bytes of content)
//   TYPE    = OPEN | TEXT | BINARY | PING | PONG | CLOSE | DISCONNECT
//
// CLOSE content is a 2-byte big-endian close code and an optional UTF-8 reason (as a WebSocket
// Close frame, RFC 6455 5.5.1); code 0 means none (GRIP libraries write it). Pure functions: no I/O, no allocation when parsing (events point
// into the bytes parsed), so the same code serves the bridge, the tests and a fuzz target.
//
// The parser is strict where Pushpin is lenient (it reads neither the CRLF after the content
// nor the length's digits closely): bytes from an app are network input, and a stream we cannot
// read exactly is refused rather than guessed at.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace portico::bridge {

enum class EventType : std::uint8_t { Open, Text, Binary, Ping, Pong, Close, Disconnect };
// "OPEN", "TEXT", ... as on the wire.
std::string_view toString(EventType type);

// One parsed event. `content` points into the bytes given to parseEvent().
struct Event {
    EventType type = EventType::Open;
    std::string_view content;
    bool has_content = false;  // written "TYPE HEXLEN\r\n...": a TEXT may be empty either way
};

enum class ParseError : std::uint8_t {
    None,
    BadTypeLine,     // not "TYPE\r\n" or "TYPE HEXLEN\r\n" (bad characters, no CRLF in time)
    UnknownType,     // a well-formed type that is none of the seven
    BadLength,       // HEXLEN is empty, not hex, or longer than 16 digits
    TooLarge,        // the content is longer than the caller's bound
    BadTerminator,   // the content is not followed by "\r\n": the length lies
    UnexpectedContent,  // OPEN or DISCONNECT with content
    InvalidUtf8,     // TEXT content or a CLOSE reason that is not UTF-8
    BadClose,        // CLOSE content of 1 byte, or a code that may not be sent (RFC 6455 7.4)
};
// A short phrase for logs ("unknown event type").
const char* toString(ParseError error);

// The longest type line we read before calling it malformed: "DISCONNECT" or a type, a space
// and 16 hex digits, and CRLF.
inline constexpr std::size_t kMaxTypeLineBytes = 32;

// The result of parsing the event at the front of some bytes (HAProxy's convention):
// consumed > 0: one event parsed from that many bytes; consumed == 0 and error None: the bytes
// are only the start of an event (need more; at the end of a body: truncated);
// error != None: malformed, `consumed` is 0 and `offset` the position of the offending byte.
struct ParseResult {
    std::size_t consumed = 0;
    ParseError error = ParseError::None;
    std::size_t offset = 0;
};

// Parses one event from the front of `in`. Content longer than `max_content_bytes` is an error
// (TooLarge) before any of it is needed, so a lying length cannot make a caller wait or buffer.
ParseResult parseEvent(std::string_view in, std::size_t max_content_bytes, Event& event);

// What a body that ends inside the event starting at `rest` is missing.
ParseError truncatedError(std::string_view rest);

// Calls `visit(const Event&)` for each event of a complete body, in order, until it returns
// false. Returns the first error; a body that ends inside an event is BadTypeLine or
// BadTerminator (truncated) at the offset where it ends.
template <typename Visit>
ParseResult parseEvents(std::string_view body, std::size_t max_content_bytes, Visit&& visit) {
    std::size_t at = 0;
    while (at < body.size()) {
        Event event;
        ParseResult r = parseEvent(body.substr(at), max_content_bytes, event);
        if (r.error != ParseError::None) return {0, r.error, at + r.offset};
        if (r.consumed == 0) return {0, truncatedError(body.substr(at)), body.size()};
        at += r.consumed;
        if (!visit(static_cast<const Event&>(event))) break;
    }
    return {at, ParseError::None, at};
}

// The code and reason of a CLOSE event's content (already checked by parseEvent): code 0 when
// the event carried none.
struct CloseContent {
    std::uint16_t code = 0;
    std::string_view reason;
};
CloseContent closeContent(const Event& event);

// Serializing. Each appends one event to `out`.
void appendEvent(std::string& out, EventType type);                            // "TYPE\r\n"
void appendEvent(std::string& out, EventType type, std::string_view content);  // with content
// CLOSE with `code` (0: none, then "CLOSE\r\n") and `reason`.
void appendClose(std::string& out, std::uint16_t code, std::string_view reason = {});
// Bytes appendEvent(out, type, content) adds for `content_bytes` of content.
std::size_t encodedSize(EventType type, std::size_t content_bytes);

}  // namespace portico::bridge
