// SPDX-License-Identifier: Apache-2.0
#pragma once
// An HTTP/1.1 message parser over llhttp (strict: no lenient flags), for requests from clients
// and responses from upstreams. It fills a RequestHead/ResponseHead, passes body bytes through
// to its handler without buffering them, and pauses after each message so that pipelined
// requests wait their turn.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "portico/http/head.h"

struct evbuffer;
struct llhttp__internal_s;

namespace portico::http {

enum class ParseStatus {
    NeedMore,         // everything available was consumed; call parse() again when more arrives
    MessageComplete,  // one whole message was parsed; call resume() before parsing the next
    Upgrade,          // a complete message asked to switch protocols; the rest is not HTTP
    Error,            // see error(); the connection must be closed after answering
};

enum class ParseError {
    None,
    Malformed,                     // 400 (or 502 for a response)
    HeadTooLarge,                  // 431
    UnsupportedTransferEncoding,   // 501
    Aborted,                       // the handler refused the message (it answers itself)
};

// What the handler wants after a head: parse the body, or expect none (a response to HEAD).
enum class HeadAction { Continue, SkipBody, Abort };

// The line rules llhttp 8.1 does not enforce even in strict mode, checked on the bytes of a head
// and of a chunked trailer section before llhttp reads them: every LF preceded by CR, no line
// starting with whitespace (obs-fold). Request smuggling defences.
class LineCheck {
public:
    enum class Section { None, Head, Trailer };
    void start(Section section);
    bool active() const { return section_ != Section::None; }
    // Scans `data` up to the blank line that ends the section (then active() is false).
    // Returns false at the first violation.
    bool scan(const char* data, std::size_t length);

private:
    Section section_ = Section::Head;
    bool prev_cr_ = false;
    bool line_empty_ = true;
    bool seen_line_ = false;  // a head may start with empty lines (RFC 9112 2.2)
};

class MessageParser {
public:
    enum class Kind { Request, Response };

    class Handler {
    public:
        virtual HeadAction onHead() = 0;
        // Body bytes (de-chunked). Return false to abort parsing (e.g. 413).
        virtual bool onBody(const char* data, std::size_t length) = 0;
        virtual void onMessageComplete() = 0;

    protected:
        ~Handler() = default;
    };

    MessageParser(Kind kind, Handler* handler, std::size_t max_head_bytes);
    ~MessageParser();
    MessageParser(const MessageParser&) = delete;
    MessageParser& operator=(const MessageParser&) = delete;

    // Parses what `input` holds and drains the bytes it consumed.
    ParseStatus parse(evbuffer* input);
    // The same on bytes that are not in an evbuffer (a socket's read, straight from the
    // stream's scratch area: no copy into an evbuffer chain, no chain allocated and freed):
    // `consumed` is what was parsed. The rest (after MessageComplete, Upgrade or Error) was not
    // looked at: the caller keeps it for later. The parser keeps no pointer into `data`.
    ParseStatus parse(const char* data, std::size_t length, std::size_t& consumed);
    // The peer closed the connection: completes a message delimited by close (MessageComplete),
    // or reports Error when the message was cut short; NeedMore when between messages.
    ParseStatus finish();
    // After MessageComplete: allow the next message.
    void resume();
    // Starts over for a new message on a fresh (or reused) connection.
    void reset();
    // Empties the last message's head (method, target, version, fields): for a parser handed to
    // another connection, whose log line for an error before its first request (a 408, a 400
    // for plain text on a TLS port) must not show the previous connection's request. reset()
    // keeps the head: the bridge still reads its handshake after it.
    void forgetMessage();

    void setMaxHeadBytes(std::size_t bytes) { max_head_bytes_ = bytes; }
    // A parser kept for another connection (net::HttpPhasePool) reports to its new owner.
    void setHandler(Handler* handler) { handler_ = handler; }
    ParseError error() const { return error_; }
    const char* errorReason() const;
    // Bytes of the current head seen so far (for 431).
    std::size_t headBytes() const { return head_bytes_; }
    bool inMessage() const { return in_message_; }
    // The current message's head was parsed (false again after resume()).
    bool headComplete() const { return head_complete_; }

    // Valid from onHead() on, for the current message.
    const RequestHead& request() const { return request_; }
    const ResponseHead& response() const { return response_; }
    RequestHead& request() { return request_; }
    bool keepAlive() const;        // llhttp_should_keep_alive for the current message
    // The framing the head declared (a trailer section cannot change it).
    bool chunked() const { return head_chunked_; }  // Transfer-Encoding: chunked
    bool hasContentLength() const { return head_has_length_; }
    std::uint64_t contentLength() const { return declared_length_; }
    bool isUpgradeRequested() const;      // Connection: upgrade + Upgrade present (or 101)
    // The head has an Upgrade field (whatever its value, whatever Connection says).
    bool hasUpgradeField() const { return saw_upgrade_; }
    // A chunked request's trailer fields (RFC 9112 7.1.2), checked as the head's are, bounded
    // by max_head_bytes (HeadTooLarge, counted apart from the head), those
    // isForwardedTrailer() drops left out: for the upstream's chunked request. Valid during
    // onMessageComplete() (empty otherwise). A response's are dropped.
    const HeaderList& trailers() const { return trailers_; }

    // llhttp callbacks (public only for the C trampolines in message_parser.cpp).
    int onMessageBegin();
    int onUrl(const char* at, std::size_t length);
    int onStatus(const char* at, std::size_t length);
    int onHeaderField(const char* at, std::size_t length);
    int onHeaderValue(const char* at, std::size_t length);
    int onHeaderValueComplete();
    int onHeaderFieldComplete();
    int onHeadersComplete();
    int onBodyData(const char* at, std::size_t length);
    int onMessageCompleteCb();
    int onChunkHeader();

private:
    bool countHead(std::size_t length);
    // Sets error_ to Malformed with `reason` (a string literal) for errorReason(); returns -1.
    int malformed(const char* reason);
    // Field callbacks fill a list: the head's, or a request's trailer section.
    bool collectingFields() const { return !skip_fields_; }
    // Field callbacks go to the head's list again.
    void endTrailers();
    // The end of a message with a trailer section: the handler sees trailers().
    void completeWithTrailers();
    // Moves the current head's fields into spare_ (their strings keep their memory).
    void recycleHeaders();
    // A new field at the end of the current head: a spare one emptied, or a new one.
    Header& takeField();
    // At most this many spare fields are kept for the next message.
    static constexpr std::size_t kMaxSpareHeaders = 32;

    Kind kind_;
    Handler* handler_;
    std::size_t max_head_bytes_;
    std::unique_ptr<llhttp__internal_s> parser_;
    RequestHead request_;
    ResponseHead response_;
    HeaderList* headers_;  // request_.headers or response_.headers, or trailers_ (in_trailers_)
    HeaderList trailers_;
    // The last message's fields, emptied: the next message's take them, so that a long value
    // (a User-Agent, a Date) does not allocate its string again for every message.
    HeaderList spare_;
    std::size_t head_bytes_ = 0;
    std::uint64_t declared_length_ = 0;  // Content-Length, saved before llhttp counts it down
    bool head_chunked_ = false;          // llhttp's flags as the head left them: a trailer
    bool head_has_length_ = false;       // "Content-Length" sets F_CONTENT_LENGTH again
    ParseError error_ = ParseError::None;
    const char* malformed_reason_ = nullptr;  // our own check's words (errorReason), else llhttp's
    bool in_message_ = false;
    bool head_complete_ = false;
    bool field_open_ = false;  // a header name was started and its value is not complete yet
    bool value_started_ = false;       // a piece of the current value was seen
    bool value_at_chunk_end_ = false;  // ... and it ran to the end of the buffer fed to llhttp
    const char* chunk_start_ = nullptr;  // the buffer being fed to llhttp
    const char* chunk_end_ = nullptr;
    bool paused_ = false;
    bool upgrade_paused_ = false;
    bool in_trailer_pause_ = false;  // paused after the last chunk to check the trailer lines
    bool in_trailers_ = false;       // a request's trailer fields are being read
    bool saw_upgrade_ = false;             // the head has an Upgrade field
    bool saw_transfer_encoding_ = false;   // ... a Transfer-Encoding field
    bool skip_fields_ = false;       // after the head, but in a request's trailer section (one
                                     // flag: the field callbacks test it for every piece)
    LineCheck line_check_;  // stopped after a message that asked to switch protocols
};

}  // namespace portico::http
