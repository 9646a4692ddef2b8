// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/permessage_deflate.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <utility>

#include <zlib.h>

#include "portico/http/head.h"
#include "portico/ws/frame_header.h"

namespace portico::ws {

namespace {

// ---- Sec-WebSocket-Extensions grammar (RFC 6455 9.1) -------------------------------------------
//   extension-list = 1#extension;  extension = token *( ";" param )
//   param = token [ "=" (token | quoted-string) ]

struct ExtensionParam {
    std::string_view name;
    std::string_view value;  // without quotes
    bool has_value = false;
};

struct Extension {
    std::string_view name;
    std::array<ExtensionParam, 8> params{};  // a valid permessage-deflate element has at most 4
    std::size_t param_count = 0;
    bool valid = true;  // false: bad syntax or too many parameters
};

class ExtensionParser {
public:
    explicit ExtensionParser(std::string_view text) : s_(text) {}

    // Parses the next comma-separated element into `out`; false at the end of the header.
    bool next(Extension& out) {
        out = Extension{};
        for (;;) {
            skipSpace();
            if (i_ >= s_.size()) return false;
            if (s_[i_] == ',') {  // empty list elements are allowed and skipped (RFC 9110 5.6.1)
                ++i_;
                continue;
            }
            break;
        }
        out.name = token();
        if (out.name.empty()) return fail(out);
        for (;;) {
            skipSpace();
            if (i_ >= s_.size()) return true;
            if (s_[i_] == ',') {
                ++i_;
                return true;
            }
            if (s_[i_] != ';') return fail(out);
            ++i_;
            skipSpace();
            ExtensionParam p;
            p.name = token();
            if (p.name.empty()) return fail(out);
            skipSpace();
            if (i_ < s_.size() && s_[i_] == '=') {
                ++i_;
                skipSpace();
                p.has_value = true;
                if (i_ < s_.size() && s_[i_] == '"') {
                    if (!quoted(p.value)) return fail(out);
                } else {
                    p.value = token();
                }
                if (p.value.empty()) return fail(out);
            }
            if (out.param_count == out.params.size()) {
                out.valid = false;  // keep scanning: the name is still useful to allowedRsvBits
            } else {
                out.params[out.param_count++] = p;
            }
        }
    }

private:
    void skipSpace() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
    }
    std::string_view token() {
        const std::size_t start = i_;
        while (i_ < s_.size() && http::isTokenChar(s_[i_])) ++i_;
        return s_.substr(start, i_ - start);
    }
    // A quoted-string. The only values RFC 7692 defines are numbers, which must be tokens once
    // unquoted (7.1), so a value with an escape is consumed whole but makes the element invalid.
    bool quoted(std::string_view& value) {
        const std::size_t start = ++i_;
        bool escaped = false;
        while (i_ < s_.size() && s_[i_] != '"') {
            if (s_[i_] == '\\') {
                escaped = true;
                ++i_;
            }
            if (i_ < s_.size()) ++i_;
        }
        if (i_ >= s_.size()) return false;
        value = s_.substr(start, i_ - start);
        ++i_;
        if (escaped) return false;
        for (char c : value)
            if (!http::isTokenChar(c)) return false;
        return true;
    }
    // Marks the element invalid and skips to the next comma outside a quoted string.
    bool fail(Extension& out) {
        out.valid = false;
        bool in_quotes = false;
        while (i_ < s_.size()) {
            const char c = s_[i_++];
            if (in_quotes && c == '\\') {
                if (i_ < s_.size()) ++i_;
            } else if (c == '"') {
                in_quotes = !in_quotes;
            } else if (c == ',' && !in_quotes) {
                break;
            }
        }
        return true;
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

// RFC 7692 7.1.2: "a decimal integer value without leading zeros between 8 and 15, inclusive".
std::optional<std::uint8_t> parseWindowBits(std::string_view v) {
    if (v.size() == 1 && (v[0] == '8' || v[0] == '9')) return static_cast<std::uint8_t>(v[0] - '0');
    if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return static_cast<std::uint8_t>(10 + (v[1] - '0'));
    return std::nullopt;
}

// The parameters of one permessage-deflate element, as written.
struct DeflateElement {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    std::optional<std::uint8_t> server_max_window_bits;
    bool client_max_window_bits_present = false;
    std::optional<std::uint8_t> client_max_window_bits;
};

// Validates a permessage-deflate element (RFC 7692 7: every parameter at most once, known names,
// values only where defined and in range). `response` requires a value for client_max_window_bits.
std::optional<DeflateElement> readDeflateElement(const Extension& ext, bool response) {
    if (!ext.valid) return std::nullopt;
    DeflateElement e;
    bool seen_snct = false, seen_cnct = false, seen_smwb = false, seen_cmwb = false;
    for (std::size_t i = 0; i < ext.param_count; ++i) {
        const ExtensionParam& p = ext.params[i];
        if (http::equalsIgnoreCase(p.name, "server_no_context_takeover")) {
            if (seen_snct || p.has_value) return std::nullopt;
            seen_snct = e.server_no_context_takeover = true;
        } else if (http::equalsIgnoreCase(p.name, "client_no_context_takeover")) {
            if (seen_cnct || p.has_value) return std::nullopt;
            seen_cnct = e.client_no_context_takeover = true;
        } else if (http::equalsIgnoreCase(p.name, "server_max_window_bits")) {
            // RFC 7692 7.1.2.1: a value is required.
            if (seen_smwb || !p.has_value) return std::nullopt;
            seen_smwb = true;
            e.server_max_window_bits = parseWindowBits(p.value);
            if (!e.server_max_window_bits) return std::nullopt;
        } else if (http::equalsIgnoreCase(p.name, "client_max_window_bits")) {
            // RFC 7692 7.1.2.2: optional in an offer, required in a response.
            if (seen_cmwb || (response && !p.has_value)) return std::nullopt;
            seen_cmwb = e.client_max_window_bits_present = true;
            if (p.has_value) {
                e.client_max_window_bits = parseWindowBits(p.value);
                if (!e.client_max_window_bits) return std::nullopt;
            }
        } else {
            return std::nullopt;  // RFC 7692 7: an unknown parameter declines the offer
        }
    }
    return e;
}

std::uint8_t clampBits(std::uint8_t bits) { return std::clamp<std::uint8_t>(bits, 8, 15); }

constexpr std::uint8_t kTail[4] = {0x00, 0x00, 0xFF, 0xFF};

}  // namespace

std::optional<DeflateAgreement> negotiateDeflate(std::string_view offers, const DeflateConfig& config) {
    if (!config.enabled) return std::nullopt;
    ExtensionParser parser(offers);
    Extension ext;
    while (parser.next(ext)) {
        if (!http::equalsIgnoreCase(ext.name, kPermessageDeflate)) continue;
        const auto offer = readDeflateElement(ext, false);
        if (!offer) continue;  // RFC 7692 5: decline this offer, consider the next one

        DeflateAgreement a;
        DeflateParams& p = a.params;
        // 7.1.1.1: a server accepting server_no_context_takeover must include it; it may add it
        // on its own. 7.1.1.2: it may include client_no_context_takeover whether offered or not.
        p.server_no_context_takeover = offer->server_no_context_takeover || config.server_no_context_takeover;
        p.client_no_context_takeover = offer->client_no_context_takeover || config.client_no_context_takeover;

        // 7.1.2.1: our window is at most the client's limit; we may announce a smaller one.
        const std::uint8_t own = clampBits(config.server_max_window_bits);
        p.server_max_window_bits = offer->server_max_window_bits ? std::min(*offer->server_max_window_bits, own) : own;
        const bool send_smwb = offer->server_max_window_bits.has_value() || p.server_max_window_bits < 15;

        // 7.1.2.2: only when offered may we limit the client's window, to at most its value.
        bool send_cmwb = false;
        p.client_max_window_bits = 15;
        if (offer->client_max_window_bits_present) {
            const std::uint8_t wanted = clampBits(config.client_max_window_bits);
            p.client_max_window_bits = std::min(offer->client_max_window_bits.value_or(15), wanted);
            send_cmwb = offer->client_max_window_bits.has_value() || p.client_max_window_bits < 15;
        }

        a.response.assign(kPermessageDeflate);
        if (p.server_no_context_takeover) a.response.append("; server_no_context_takeover");
        if (p.client_no_context_takeover) a.response.append("; client_no_context_takeover");
        if (send_smwb) a.response.append("; server_max_window_bits=").append(std::to_string(p.server_max_window_bits));
        if (send_cmwb) a.response.append("; client_max_window_bits=").append(std::to_string(p.client_max_window_bits));
        return a;
    }
    return std::nullopt;
}

std::optional<DeflateParams> parseDeflateResponse(std::string_view response) {
    ExtensionParser parser(response);
    Extension ext;
    std::optional<DeflateParams> result;
    while (parser.next(ext)) {
        // RFC 7692 7: a response accepts one offer; a second permessage-deflate or anything
        // unknown means the server answered something we did not ask for.
        if (result || !http::equalsIgnoreCase(ext.name, kPermessageDeflate)) return std::nullopt;
        const auto e = readDeflateElement(ext, true);
        if (!e) return std::nullopt;
        DeflateParams p;
        p.server_no_context_takeover = e->server_no_context_takeover;
        p.client_no_context_takeover = e->client_no_context_takeover;
        p.server_max_window_bits = e->server_max_window_bits.value_or(15);
        p.client_max_window_bits = e->client_max_window_bits.value_or(15);
        result = p;
    }
    return result;
}

std::uint8_t allowedRsvBits(std::string_view response_extensions) {
    std::uint8_t bits = 0;
    ExtensionParser parser(response_extensions);
    Extension ext;
    while (parser.next(ext)) {
        if (ext.name.empty()) continue;
        bits |= http::equalsIgnoreCase(ext.name, kPermessageDeflate) ? kRsv1 : (kRsv1 | kRsv2 | kRsv3);
    }
    return bits;
}

// ---- zlib streams ------------------------------------------------------------------------------

void DeflateStreamDeleter::operator()(z_stream_s* stream) const {
    deflateEnd(stream);
    delete stream;
}

void InflateStreamDeleter::operator()(z_stream_s* stream) const {
    inflateEnd(stream);
    delete stream;
}

namespace {

// The zlib streams of messages without context takeover, kept per thread (per worker) from one
// message to the next. Making and ending a stream around every message costs more than the
// message: zlib allocates ~260 KiB to compress at window 15 and mem_level 8 (~40 KiB to
// inflate), and glibc may hand the freed top of its heap back to the kernel, to fault it in again
// at the next message (a 240-byte echo then took ~70 us instead of ~4). A stream is taken for
// one message (a compression: one call; an inflation: until finish()) and given back reset, so
// an idle connection holds none, and what a worker keeps is bounded: at most kSpare streams of
// each kind (deflate: up to ~270 KiB each; inflate: ~40 KiB), the oldest freed first.
template <typename Owner>
class SpareStreams {
public:
    static constexpr std::size_t kSpare = 4;
    using Key = std::array<int, 3>;  // deflate: window bits, level, mem_level; inflate: bits

    // A kept stream made with `key`, or an empty owner.
    Owner take(const Key& key) {
        for (std::size_t i = count_; i-- > 0;) {
            if (slots_[i].key != key) continue;
            Owner stream = std::move(slots_[i].stream);
            for (std::size_t j = i + 1; j < count_; ++j) slots_[j - 1] = std::move(slots_[j]);
            --count_;
            return stream;
        }
        return {};
    }
    // Keeps `stream` (already reset) for the next message made with `key`.
    void give(const Key& key, Owner stream) {
        if (count_ == kSpare) {  // the oldest goes
            for (std::size_t j = 1; j < count_; ++j) slots_[j - 1] = std::move(slots_[j]);
            --count_;
        }
        slots_[count_++] = Slot{key, std::move(stream)};
    }

private:
    struct Slot {
        Key key{};
        Owner stream;
    };
    std::array<Slot, kSpare> slots_{};
    std::size_t count_ = 0;
};

using DeflateStream = std::unique_ptr<z_stream_s, DeflateStreamDeleter>;
using InflateStream = std::unique_ptr<z_stream_s, InflateStreamDeleter>;
thread_local SpareStreams<DeflateStream> t_spare_deflate;
thread_local SpareStreams<InflateStream> t_spare_inflate;
// Inflaters without context takeover holding a stream on this thread: messages half-way
// (Inflater::inflatingNow).
thread_local std::size_t t_inflating = 0;

}  // namespace

Deflater::Deflater(int window_bits, bool no_context_takeover, int level, int mem_level)
    : window_bits_(std::clamp(window_bits, 8, 15)),
      level_(std::clamp(level, 0, 9)),
      mem_level_(std::clamp(mem_level, 1, 9)),
      no_context_takeover_(no_context_takeover) {}

bool Deflater::init() {
    // zlib refuses windowBits 8 for raw deflate (deflateInit2 returns Z_STREAM_ERROR since 1.2.9).
    // 9 is safe where 8 was agreed: zlib never emits a distance beyond window - MIN_LOOKAHEAD
    // (512 - 262 = 250 bytes here), which fits the peer's 256-byte window.
    const int bits = window_bits_ == 8 ? 9 : window_bits_;
    if (no_context_takeover_) {
        stream_ = t_spare_deflate.take({bits, level_, mem_level_});
        if (stream_) return true;
    }
    auto stream = std::make_unique<z_stream>();  // value-initialised: zalloc/zfree/opaque = Z_NULL
    if (deflateInit2(stream.get(), level_, Z_DEFLATED, -bits, mem_level_, Z_DEFAULT_STRATEGY) != Z_OK) return false;
    stream_.reset(stream.release());
    return true;
}

// A failed message. Its stream's state is unknown, so it is freed, not kept among the spares.
// Without context takeover nothing outlives a message, and the next one starts afresh (a
// transient out-of-memory costs one uncompressed message, not every later one); with it the
// peer's window would miss this message for good.
bool Deflater::fail() {
    stream_.reset();
    if (!no_context_takeover_) broken_ = true;
    return false;
}

bool Deflater::compress(const std::uint8_t* data, std::size_t len, ByteBuffer& out) {
    if (broken_) return false;
    if (len > UINT_MAX || (!stream_ && !init())) return fail();
    z_stream* s = stream_.get();
    s->next_in = const_cast<Bytef*>(data);  // zlib's API is not const-correct; it does not write
    s->avail_in = static_cast<uInt>(len);
    const std::size_t start = out.size();
    std::size_t room = deflateBound(s, static_cast<uLong>(len)) + 16;
    // RFC 7692 7.2.1: compress, then flush with an empty stored block (Z_SYNC_FLUSH) so the
    // message ends on a byte boundary with 00 00 FF FF, which is removed.
    for (;;) {
        std::uint8_t* p = out.prepare(room);
        s->next_out = p;
        s->avail_out = static_cast<uInt>(room);
        const int rc = deflate(s, Z_SYNC_FLUSH);
        out.commit(room - s->avail_out);
        if (rc != Z_OK && rc != Z_BUF_ERROR) return fail();
        if (s->avail_out != 0) break;  // flush complete: zlib had room left over
        room = 4096;
    }
    const std::size_t produced = out.size() - start;
    if (produced >= 4 && std::memcmp(out.data() + out.size() - 4, kTail, 4) == 0) out.resize(out.size() - 4);
    // An empty message after an earlier flush makes zlib produce nothing at all, yet the receiver
    // will append 00 00 FF FF: send the single 0x00 of RFC 7692 7.2.3.6 so that the tail completes
    // an empty stored block (the stream is byte-aligned after the previous sync flush).
    if (out.size() == start) {
        const std::uint8_t empty_block = 0x00;
        out.append(&empty_block, 1);
    }
    // Without context takeover nothing needs to survive the message: the stream goes back to the
    // worker's spares (SpareStreams), so an idle connection holds no zlib state.
    if (no_context_takeover_) {
        const int bits = window_bits_ == 8 ? 9 : window_bits_;
        if (deflateReset(s) == Z_OK) t_spare_deflate.give({bits, level_, mem_level_}, std::move(stream_));
        stream_.reset();
    }
    return true;
}

Inflater::Inflater(int window_bits, bool no_context_takeover, std::size_t max_inflating)
    : max_inflating_(max_inflating),
      window_bits_(std::clamp(window_bits, 8, 15)),
      no_context_takeover_(no_context_takeover) {}

Inflater::~Inflater() {
    if (counted_) --t_inflating;  // a message cut short: its state is freed with stream_
}

std::size_t Inflater::inflatingNow() { return t_inflating; }

bool Inflater::init() {
    if (no_context_takeover_) {
        stream_ = t_spare_inflate.take({window_bits_, 0, 0});
        if (!stream_) {
            auto stream = std::make_unique<z_stream>();
            // Raw inflate accepts an 8-bit window (unlike raw deflate).
            if (inflateInit2(stream.get(), -window_bits_) != Z_OK) return false;
            stream_.reset(stream.release());
        }
        ++t_inflating;
        counted_ = true;
        // Judged once, when the message starts, against this connection's own bound: routes
        // (or configurations, across a reload) with a larger bound or none are counted too,
        // and must not fail a message of this one that was already under way.
        over_ = max_inflating_ != 0 && t_inflating > max_inflating_;
        return true;
    }
    auto stream = std::make_unique<z_stream>();
    if (inflateInit2(stream.get(), -window_bits_) != Z_OK) return false;
    stream_.reset(stream.release());
    return true;
}

void Inflater::release() {
    if (inflateReset(stream_.get()) == Z_OK) t_spare_inflate.give({window_bits_, 0, 0}, std::move(stream_));
    stream_.reset();
    if (counted_) --t_inflating;
    counted_ = false;
}

bool Inflater::overLimit() const { return counted_ && over_; }

void Inflater::abandon() {
    if (stream_ && no_context_takeover_) release();
    broken_ = true;
}

Inflater::Status Inflater::run(const std::uint8_t* data, std::size_t len, ByteBuffer& out, std::size_t max_size) {
    if (broken_) return Status::Corrupt;
    if (len > UINT_MAX || (!stream_ && !init())) {
        broken_ = true;
        return Status::Corrupt;
    }
    // RFC 7692 7.2.3.4: a message may end its DEFLATE data with a BFINAL block; what follows it in
    // the message (our appended tail) is ignored and the stream is reset in finish().
    if (ended_) return Status::Ok;
    z_stream* s = stream_.get();
    s->next_in = const_cast<Bytef*>(data);
    s->avail_in = static_cast<uInt>(len);
    for (;;) {
        if (out.size() > max_size) return Status::TooBig;
        // Offer at most one byte more than the limit allows: producing it proves the message is
        // too big without inflating any further (a 1 KiB bomb stops at max_size + 1 bytes).
        const std::size_t room = std::min<std::size_t>(max_size - out.size() + 1, 64 * 1024);
        std::uint8_t* p = out.prepare(room);
        s->next_out = p;
        s->avail_out = static_cast<uInt>(room);
        const int rc = ::inflate(s, Z_SYNC_FLUSH);
        out.commit(room - s->avail_out);
        if (out.size() > max_size) return Status::TooBig;
        if (rc == Z_STREAM_END) {
            ended_ = true;
            return Status::Ok;
        }
        if (rc == Z_BUF_ERROR) return Status::Ok;  // no progress possible: all input used
        if (rc != Z_OK) {
            broken_ = true;
            return Status::Corrupt;  // Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR
        }
        if (s->avail_in == 0 && s->avail_out != 0) return Status::Ok;
    }
}

Inflater::Status Inflater::inflate(const std::uint8_t* data, std::size_t len, ByteBuffer& out, std::size_t max_size) {
    if (len == 0) return broken_ ? Status::Corrupt : Status::Ok;
    fed_ = true;
    return run(data, len, out, max_size);
}

Inflater::Status Inflater::finish(ByteBuffer& out, std::size_t max_size) {
    // RFC 7692 7.2.2: append 00 00 FF FF to the payload, then inflate. A compressed message with
    // an empty payload (which a careless peer may send for an empty message) is taken as empty:
    // the tail alone is not valid DEFLATE and would desynchronise the shared window.
    if (!fed_) return broken_ ? Status::Corrupt : Status::Ok;
    fed_ = false;
    const Status st = run(kTail, sizeof kTail, out, max_size);
    if (st != Status::Ok) return st;
    if (no_context_takeover_) {
        // As in Deflater::compress: back to the worker's spares, none kept by the connection.
        release();
    } else if (ended_ && stream_ && inflateReset(stream_.get()) != Z_OK) {
        broken_ = true;
        return Status::Corrupt;
    }
    ended_ = false;
    return Status::Ok;
}

}  // namespace portico::ws
