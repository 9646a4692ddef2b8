// SPDX-License-Identifier: Apache-2.0
#include "portico/http/message_parser.h"

#include "portico/http/header_rewrite.h"

#include <algorithm>
#include <cstring>

#include <event2/buffer.h>
#include <llhttp.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace portico::http {

namespace {

MessageParser* self(llhttp_t* p) { return static_cast<MessageParser*>(p->data); }

const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
        llhttp_settings_t v;
        llhttp_settings_init(&v);
        v.on_message_begin = [](llhttp_t* p) { return self(p)->onMessageBegin(); };
        v.on_url = [](llhttp_t* p, const char* at, size_t n) { return self(p)->onUrl(at, n); };
        v.on_status = [](llhttp_t* p, const char* at, size_t n) { return self(p)->onStatus(at, n); };
        v.on_header_field = [](llhttp_t* p, const char* at, size_t n) { return self(p)->onHeaderField(at, n); };
        v.on_header_value = [](llhttp_t* p, const char* at, size_t n) { return self(p)->onHeaderValue(at, n); };
        v.on_header_value_complete = [](llhttp_t* p) { return self(p)->onHeaderValueComplete(); };
        v.on_header_field_complete = [](llhttp_t* p) { return self(p)->onHeaderFieldComplete(); };
        v.on_headers_complete = [](llhttp_t* p) { return self(p)->onHeadersComplete(); };
        v.on_body = [](llhttp_t* p, const char* at, size_t n) { return self(p)->onBodyData(at, n); };
        v.on_message_complete = [](llhttp_t* p) { return self(p)->onMessageCompleteCb(); };
        v.on_chunk_header = [](llhttp_t* p) { return self(p)->onChunkHeader(); };
        return v;
    }();
    return s;
}

void trimTrailingWhitespace(std::string& s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
}

}  // namespace

MessageParser::MessageParser(Kind kind, Handler* handler, std::size_t max_head_bytes)
    : kind_(kind), handler_(handler), max_head_bytes_(max_head_bytes), parser_(std::make_unique<llhttp_t>()) {
    endTrailers();  // the field callbacks' list: the head's
    reset();
}

MessageParser::~MessageParser() = default;

void MessageParser::reset() {
    llhttp_init(parser_.get(), kind_ == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE, &settings());
    parser_->data = this;
    error_ = ParseError::None;
    malformed_reason_ = nullptr;
    in_message_ = head_complete_ = skip_fields_ = field_open_ = paused_ = upgrade_paused_ = false;
    value_started_ = value_at_chunk_end_ = in_trailer_pause_ = saw_upgrade_ = saw_transfer_encoding_ = false;
    line_check_.start(LineCheck::Section::Head);
    head_bytes_ = 0;
    declared_length_ = 0;
    head_chunked_ = head_has_length_ = false;
    if (in_trailers_) {  // parsing stopped inside a trailer section (only then has it fields)
        endTrailers();
        trailers_.clear();
    }
}

void MessageParser::forgetMessage() {
    request_.method.clear();
    request_.target.clear();
    request_.version_major = request_.version_minor = 1;
    response_.reason.clear();
    recycleHeaders();
}

void MessageParser::resume() {
    if (!paused_) return;
    paused_ = false;
    head_complete_ = false;  // of the next message
    line_check_.start(LineCheck::Section::Head);
    if (upgrade_paused_) {
        // The upgrade was declined (not a WebSocket, or refused): go on parsing HTTP.
        upgrade_paused_ = false;
        llhttp_resume_after_upgrade(parser_.get());
    } else {
        llhttp_resume(parser_.get());
    }
}

ParseStatus MessageParser::parse(evbuffer* input) {
    if (error_ != ParseError::None) return ParseStatus::Error;
    if (paused_) return upgrade_paused_ ? ParseStatus::Upgrade : ParseStatus::MessageComplete;
    while (evbuffer_get_length(input) > 0) {
        evbuffer_iovec chunk;
        if (evbuffer_peek(input, -1, nullptr, &chunk, 1) < 1) break;
        std::size_t consumed = 0;
        const ParseStatus status = parse(static_cast<const char*>(chunk.iov_base), chunk.iov_len, consumed);
        evbuffer_drain(input, consumed);
        if (status != ParseStatus::NeedMore) return status;
    }
    return ParseStatus::NeedMore;
}

ParseStatus MessageParser::parse(const char* data, std::size_t length, std::size_t& consumed) {
    consumed = 0;
    if (error_ != ParseError::None) return ParseStatus::Error;
    if (paused_) return upgrade_paused_ ? ParseStatus::Upgrade : ParseStatus::MessageComplete;
    while (consumed < length) {
        const char* const piece = data + consumed;
        const std::size_t piece_length = length - consumed;
        chunk_start_ = piece;
        chunk_end_ = piece + piece_length;
        if (line_check_.active() && !line_check_.scan(piece, piece_length)) {
            error_ = ParseError::Malformed;
            return ParseStatus::Error;
        }
        llhttp_errno_t rc = llhttp_execute(parser_.get(), piece, piece_length);
        if (rc == HPE_OK) {
            consumed = length;
            break;
        }
        const char* stop = llhttp_get_error_pos(parser_.get());
        const std::size_t used = stop ? static_cast<std::size_t>(stop - piece) : 0;
        if (rc == HPE_PAUSED && in_trailer_pause_) {
            // Paused after the last chunk's size line: check the trailer section's lines, then
            // go on (the scan above starts on the next pass).
            in_trailer_pause_ = false;
            consumed += used;
            line_check_.start(LineCheck::Section::Trailer);
            llhttp_resume(parser_.get());
            continue;
        }
        if (rc == HPE_PAUSED) {
            consumed += used;
            paused_ = true;
            return ParseStatus::MessageComplete;
        }
        if (rc == HPE_PAUSED_UPGRADE) {
            consumed += used;
            paused_ = upgrade_paused_ = true;
            return ParseStatus::Upgrade;
        }
        if (error_ == ParseError::None) error_ = ParseError::Malformed;
        return ParseStatus::Error;
    }
    return ParseStatus::NeedMore;
}

ParseStatus MessageParser::finish() {
    if (error_ != ParseError::None) return ParseStatus::Error;
    if (!in_message_) return ParseStatus::NeedMore;  // closed between messages: nothing lost
    bool was_in_message = in_message_;
    llhttp_errno_t rc = llhttp_finish(parser_.get());
    if (rc == HPE_PAUSED || (rc == HPE_OK && was_in_message && !in_message_)) {
        paused_ = rc == HPE_PAUSED;
        return ParseStatus::MessageComplete;
    }
    if (rc == HPE_OK && !was_in_message) return ParseStatus::NeedMore;
    if (error_ == ParseError::None) error_ = ParseError::Malformed;
    return ParseStatus::Error;
}

const char* MessageParser::errorReason() const {
    switch (error_) {
        case ParseError::None: return "none";
        case ParseError::HeadTooLarge: return "head too large";
        case ParseError::UnsupportedTransferEncoding: return "unsupported Transfer-Encoding";
        case ParseError::Aborted: return "aborted";
        case ParseError::Malformed:
            if (malformed_reason_ != nullptr) return malformed_reason_;
            break;
    }
    const char* reason = llhttp_get_error_reason(parser_.get());
    return reason ? reason : "malformed message";
}

int MessageParser::malformed(const char* reason) {
    error_ = ParseError::Malformed;
    malformed_reason_ = reason;
    return -1;  // llhttp stops: HPE_USER
}

bool MessageParser::keepAlive() const { return llhttp_should_keep_alive(parser_.get()) != 0; }
bool MessageParser::isUpgradeRequested() const { return parser_->upgrade != 0; }

bool MessageParser::countHead(std::size_t length) {
    head_bytes_ += length;
    if (head_bytes_ <= max_head_bytes_) return true;
    error_ = ParseError::HeadTooLarge;
    return false;
}

int MessageParser::onMessageBegin() {
    in_message_ = true;
    head_complete_ = skip_fields_ = saw_upgrade_ = saw_transfer_encoding_ = false;
    field_open_ = value_started_ = value_at_chunk_end_ = false;
    head_bytes_ = 0;
    declared_length_ = 0;
    head_chunked_ = head_has_length_ = false;
    if (kind_ == Kind::Request) {
        request_.method.clear();
        request_.target.clear();
    } else {
        response_.reason.clear();
    }
    recycleHeaders();
    return 0;
}

void MessageParser::recycleHeaders() {
    // Usually every spare field was taken by the message just parsed: the whole list becomes the
    // spare one at once. The strings are emptied when taken (takeField).
    if (headers_->size() > kMaxSpareHeaders) headers_->resize(kMaxSpareHeaders);
    if (spare_.empty()) {
        spare_.swap(*headers_);
        return;
    }
    for (Header& h : *headers_) {
        if (spare_.size() >= kMaxSpareHeaders) break;
        spare_.push_back(std::move(h));
    }
    headers_->clear();
}

Header& MessageParser::takeField() {
    Header& h = headers_->emplace_back();
    if (spare_.empty()) return h;
    // Only memory worth keeping moves over: a string in its inline buffer costs as much to move
    // as to start anew (and is emptied either way).
    static const std::size_t kInlineCapacity = std::string().capacity();
    Header& spare = spare_.back();
    if (spare.name.capacity() > kInlineCapacity) {
        h.name = std::move(spare.name);
        h.name.clear();
    }
    if (spare.value.capacity() > kInlineCapacity) {
        h.value = std::move(spare.value);
        h.value.clear();
    }
    spare_.pop_back();
    return h;
}

int MessageParser::onUrl(const char* at, std::size_t length) {
    if (!countHead(length)) return -1;
    request_.target.append(at, length);
    return 0;
}

int MessageParser::onStatus(const char* at, std::size_t length) {
    if (!countHead(length)) return -1;
    response_.reason.append(at, length);
    return 0;
}

int MessageParser::onHeaderField(const char* at, std::size_t length) {
    if (!collectingFields()) return 0;  // a response's trailer fields: dropped
    if (!field_open_) {
        if (!countHead(length + 4)) return -1;  // + ": " and CRLF, as on the wire
        takeField().name.assign(at, length);
        field_open_ = true;
        return 0;
    }
    if (!countHead(length)) return -1;  // the rest of a name that came in pieces
    headers_->back().name.append(at, length);
    return 0;
}

int MessageParser::onHeaderFieldComplete() {
    if (!collectingFields()) return 0;
    // RFC 9110 5.1: a field name is a token. llhttp's strict mode (cmake/llhttp.cmake) refuses
    // any other byte in a name (its header_field states' tables are tchar, the known names' too),
    // but passes an empty name (": x"): refused here. Not isToken() per name, which would ask
    // again of every byte what llhttp asked (about 60 instructions a field); the unit test "a
    // field name with a byte that is not a token character" holds llhttp to it, byte by byte.
    Header& field = headers_->back();
    if (field.name.empty()) return malformed("invalid header field name");
    // Classified once, here: the checks, the head writers and the WebSocket handshake read
    // `known` instead of comparing the name again. The two fields the head's checks look for
    // (onHeadersComplete, the caller's upgrade check) are noted, so that a head without them is
    // not searched for them.
    field.known = classifyFieldName(field.name);
    saw_upgrade_ = saw_upgrade_ || field.known == FieldName::Upgrade;
    saw_transfer_encoding_ = saw_transfer_encoding_ || field.known == FieldName::TransferEncoding;
    return 0;
}

int MessageParser::onHeaderValue(const char* at, std::size_t length) {
    if (!collectingFields()) return 0;
    // A value arrives in several pieces only when it straddles the buffers we feed llhttp. A
    // piece that does not continue exactly where the previous buffer ended is an obs-fold line
    // ("X: a\r\n b"), which llhttp joins silently: RFC 9112 5.2 lets us reject it, and we must,
    // as folding is a smuggling vector (a folded Transfer-Encoding).
    if (!field_open_ || (value_started_ && !(value_at_chunk_end_ && at == chunk_start_))) return malformed("folded header line");
    value_started_ = true;
    value_at_chunk_end_ = at + length == chunk_end_;
    if (!countHead(length)) return -1;
    headers_->back().value.append(at, length);
    return 0;
}

int MessageParser::onHeaderValueComplete() {
    if (!collectingFields()) return 0;
    if (!field_open_) {
        error_ = ParseError::Malformed;
        return -1;
    }
    field_open_ = value_started_ = false;  // the next field starts a new header
    trimTrailingWhitespace(headers_->back().value);
    return 0;
}

int MessageParser::onHeadersComplete() {
    head_complete_ = skip_fields_ = true;
    llhttp_t* p = parser_.get();
    declared_length_ = p->content_length;
    head_chunked_ = (p->flags & F_CHUNKED) != 0;
    head_has_length_ = (p->flags & F_CONTENT_LENGTH) != 0;
    if (kind_ == Kind::Request) {
        request_.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
        request_.version_major = p->http_major;
        request_.version_minor = p->http_minor;
    } else {
        response_.status = p->status_code;
        response_.version_minor = p->http_minor;
    }
    // RFC 9112 4: status-code is three digits; llhttp 8.1 takes one or two as well ("HTTP/1.1 20
    // OK"), which we would otherwise relay to the client as a status line no client can read.
    // RFC 9110 15: valid codes are 100-599; llhttp takes up to 999, which a client may not read
    // at all (an HTTP/2 client's :status is three digits too, but 600-999 is not a class).
    // A response on an HTTP/1.1 connection is HTTP/1.x (llhttp also takes "HTTP/2.0 200"; a
    // request with another major version is answered 505 by checkRequestHead).
    if (kind_ == Kind::Response && (p->status_code < 100 || p->status_code > 599))
        return malformed("status code outside 100-599");
    if (kind_ == Kind::Response && p->http_major != 1) return malformed("not an HTTP/1.x status line");
    // RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ). llhttp 8.1 lets other
    // control bytes (NUL, BEL, ...) through, and appendClientResponseHead relays the phrase.
    if (kind_ == Kind::Response && !std::all_of(response_.reason.begin(), response_.reason.end(), [](char c) {
            const auto u = static_cast<unsigned char>(c);
            return c == '\t' || (u >= 0x20 && u != 0x7f);
        }))
        return malformed("control character in the reason phrase");
    // Transfer-Encoding is judged from the fields we collected, not from llhttp's flag, which an
    // empty value ("Transfer-Encoding:") does not set.
    int te_count = 0;
    if (saw_transfer_encoding_)
        for (const auto& h : *headers_) te_count += h.known == FieldName::TransferEncoding;
    if (te_count > 0 || (p->flags & F_TRANSFER_ENCODING)) {
        // RFC 9112 6.1: Transfer-Encoding is HTTP/1.1; "a server or client that receives an
        // HTTP/1.0 message containing a Transfer-Encoding header field MUST treat the message as
        // if the framing is faulty". An HTTP/1.0 hop behind us would ignore it and read the body
        // by Content-Length or until close: refused (400, or 502 from an upstream), as nginx does.
        if (p->http_major < 1 || (p->http_major == 1 && p->http_minor < 1))
            return malformed("Transfer-Encoding in an HTTP/1.0 message");
        // RFC 9112 6.1: a message with both is a smuggling attempt; reject it outright.
        if (p->flags & F_CONTENT_LENGTH) return malformed("both Transfer-Encoding and Content-Length");
        // We only re-frame "chunked"; anything else (gzip, an empty value, a chunked that is not
        // last, ...) is 501 like nginx, rather than forwarding a body whose framing we cannot check.
        const Header* te = findHeader(*headers_, FieldName::TransferEncoding);
        if (te_count != 1 || te == nullptr || !equalsIgnoreCase(te->value, "chunked")) {
            error_ = ParseError::UnsupportedTransferEncoding;
            return -1;
        }
    }
    // RFC 9112 6.3 rule 1: 1xx, 204 and 304 responses end at their head, whatever length
    // they declare (llhttp 8.1 leaves that to us).
    const bool bodiless = kind_ == Kind::Response && ((p->status_code >= 100 && p->status_code < 200 &&
                                                       p->status_code != 101) ||
                                                      p->status_code == 204 || p->status_code == 304);
    switch (handler_->onHead()) {
        case HeadAction::Continue: return bodiless ? 1 : 0;
        case HeadAction::SkipBody: return 1;
        case HeadAction::Abort: error_ = ParseError::Aborted; return -1;
    }
    return 0;
}

int MessageParser::onChunkHeader() {
    if (parser_->content_length != 0) return 0;
    // The last chunk: a request's trailer fields are read as its head's are (the same checks,
    // bounded by max_head_bytes, counted apart from the head) into trailers_.
    if (kind_ == Kind::Request) {
        in_trailers_ = true;
        skip_fields_ = false;
        headers_ = &trailers_;
        head_bytes_ = 0;
    }
    // Pause so that parse() checks the trailer lines before llhttp reads them.
    in_trailer_pause_ = true;
    return HPE_PAUSED;
}

void MessageParser::completeWithTrailers() {
    endTrailers();
    std::erase_if(trailers_, [](const Header& h) { return !isForwardedTrailer(h.name); });
    handler_->onMessageComplete();
    trailers_.clear();  // here, not at every message's start: most messages have none
}

void MessageParser::endTrailers() {
    in_trailers_ = false;
    headers_ = kind_ == Kind::Request ? &request_.headers : &response_.headers;
}

namespace {

// The first CR or LF in [p, end), or end. Sixteen bytes per step where SSE2 is there (every
// x86-64): a head's lines are short, and two memchr calls per line (a CR, then no LF before it)
// cost more in calls than in bytes.
const char* findLineBreak(const char* p, const char* end) {
#ifdef __SSE2__
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i lf = _mm_set1_epi8('\n');
    for (; end - p >= 16; p += 16) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const int hits = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(bytes, cr), _mm_cmpeq_epi8(bytes, lf)));
        if (hits != 0) return p + __builtin_ctz(static_cast<unsigned>(hits));
    }
#endif
    for (; p < end; ++p)
        if (*p == '\r' || *p == '\n') return p;
    return end;
}

}  // namespace

bool LineCheck::scan(const char* data, std::size_t length) {
    // Called on every byte of every head: the bytes inside a line are skipped to the next CR or
    // LF (findLineBreak) instead of one branchy step per byte.
    const char* p = data;
    const char* const end = data + length;
    while (p < end) {
        if (prev_cr_) {
            if (*p++ != '\n') return false;  // a CR not followed by LF
            prev_cr_ = false;
            if (line_empty_ && (seen_line_ || section_ == Section::Trailer)) {
                section_ = Section::None;  // the blank line ends the section
                return true;
            }
            line_empty_ = true;
            continue;
        }
        if (line_empty_) {
            const char c = *p++;
            if (c == '\r') {
                prev_cr_ = true;
                continue;
            }
            if (c == '\n') return false;  // bare LF (RFC 9112 2.2: we choose to reject)
            // RFC 9112 5.2: obs-fold, a line starting with whitespace, is rejected.
            if (c == ' ' || c == '\t') return false;
            line_empty_ = false;
            seen_line_ = true;
            continue;
        }
        // Inside a line: up to its CR, which must come before any LF.
        const char* brk = findLineBreak(p, end);
        if (brk == end) return true;
        if (*brk == '\n') return false;  // bare LF
        prev_cr_ = true;
        p = brk + 1;
    }
    return true;
}

void LineCheck::start(Section section) {
    section_ = section;
    prev_cr_ = false;
    line_empty_ = true;
    seen_line_ = false;
}

int MessageParser::onBodyData(const char* at, std::size_t length) {
    if (handler_->onBody(at, length)) return 0;
    error_ = ParseError::Aborted;
    return -1;
}

int MessageParser::onMessageCompleteCb() {
    in_message_ = false;
    if (in_trailers_) [[unlikely]] {
        completeWithTrailers();
    } else {
        handler_->onMessageComplete();
    }
    // An upgrade pauses by itself (HPE_PAUSED_UPGRADE); everything else waits for resume() so
    // that a pipelined request is not parsed before this one's response is done.
    return parser_->upgrade ? 0 : HPE_PAUSED;
}

}  // namespace portico::http
