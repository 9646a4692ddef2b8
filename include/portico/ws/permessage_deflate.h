// SPDX-License-Identifier: Apache-2.0
#pragma once
// permessage-deflate (RFC 7692): negotiation of the Sec-WebSocket-Extensions offer, and the
// per-connection compressor/decompressor on zlib raw DEFLATE.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "portico/config/config.h"
#include "portico/ws/byte_buffer.h"

struct z_stream_s;

namespace portico::ws {

inline constexpr std::string_view kPermessageDeflate = "permessage-deflate";

// The agreed parameters of one connection (RFC 7692 7.1). "server_*" govern what the server
// compresses (and the client inflates), "client_*" the other direction.
struct DeflateParams {
    bool server_no_context_takeover = false;  // the server resets its compressor after each message
    bool client_no_context_takeover = false;  // the client resets its compressor after each message
    std::uint8_t server_max_window_bits = 15;  // 8..15: LZ77 window of the server's compressor
    std::uint8_t client_max_window_bits = 15;  // 8..15: LZ77 window of the client's compressor
};

// What a built-in endpoint is willing to agree to: a route's `websocket.permessage_deflate`.
using DeflateConfig = config::PermessageDeflateSettings;

struct DeflateAgreement {
    DeflateParams params;
    std::string response;  // the Sec-WebSocket-Extensions value to send back
};

// Server side of the negotiation (RFC 7692 5, 7.1): `offers` is the client's
// Sec-WebSocket-Extensions value (several headers joined with ", "). Goes through the
// permessage-deflate offers in order and accepts the first valid one, or returns nullopt to
// decline them all (the handshake then goes on without the extension). An offer is invalid, and
// skipped, when it has an unknown parameter, a parameter twice, a value where none is allowed,
// or a window size that is not 8..15 written in decimal without leading zeros.
std::optional<DeflateAgreement> negotiateDeflate(std::string_view offers, const DeflateConfig& config);

// Client side: parses the server's Sec-WebSocket-Extensions response (must be a single
// permessage-deflate element). Returns nullopt when it is absent or invalid.
std::optional<DeflateParams> parseDeflateResponse(std::string_view response);

// The RSV bits a relay must let through given the extensions the upstream's 101 agreed to
// (`response_extensions`, its Sec-WebSocket-Extensions value): kRsv1 for permessage-deflate, all
// three for any extension we do not know (we cannot judge its bits), 0 for none.
std::uint8_t allowedRsvBits(std::string_view response_extensions);

// Owners of zlib streams: deflateEnd/inflateEnd, then free the z_stream itself.
struct DeflateStreamDeleter {
    void operator()(z_stream_s* stream) const;
};
struct InflateStreamDeleter {
    void operator()(z_stream_s* stream) const;
};

// Compresses whole messages per RFC 7692 7.2.1. The zlib state (about 2^(window+2) +
// 2^(mem_level+9) bytes: 256 KiB at 15/8) is allocated on the first message, not at
// construction. Without context takeover it is the Deflater's only during a message: it is then
// reset and kept among its thread's spares (a few per worker) for the next message of any
// connection, so an idle connection holds no zlib state.
class Deflater {
public:
    // `window_bits` 8..15 (8 runs as 9, see the .cpp), `no_context_takeover` resets the state after
    // every message, `level` and `mem_level` as for zlib's deflateInit2.
    Deflater(int window_bits, bool no_context_takeover, int level = 1, int mem_level = 8);

    // Appends the compressed form of `data` (DEFLATE blocks ending in a sync flush whose
    // 00 00 FF FF tail is removed) to `out`. Returns false on a zlib failure: with context
    // takeover the Deflater is then unusable (the peer's window would miss the message: close the
    // connection 1011); without it only this message failed (send it uncompressed), and the next
    // one starts from a fresh stream.
    bool compress(const std::uint8_t* data, std::size_t len, ByteBuffer& out);
    bool noContextTakeover() const { return no_context_takeover_; }
    // Scratch space for callers that compress then frame (Codec::encodeMessage).
    ByteBuffer& scratch() { return scratch_; }

private:
    bool init();
    bool fail();

    std::unique_ptr<z_stream_s, DeflateStreamDeleter> stream_;
    ByteBuffer scratch_;
    int window_bits_;
    int level_;
    int mem_level_;
    bool no_context_takeover_;
    bool broken_ = false;
};

// A compressor's settings for messages compressed once and sent to many receivers (pub/sub
// fan-out): those of a server connection that agreed permessage-deflate without server context
// takeover, whose every message is compressed alone, so that bytes compressed for one such
// receiver suit every receiver whose sameCompressor() is true (the same window, level and
// memory: the same bytes out).
struct SharedDeflate {
    std::uint8_t window_bits = 15;  // the agreed server_max_window_bits (8 runs as 9)
    std::uint8_t level = 1;         // zlib level
    std::uint8_t mem_level = 8;     // zlib memLevel
    std::size_t min_bytes = 256;    // shorter messages go uncompressed
    bool sameCompressor(const SharedDeflate& other) const {
        return window_bits == other.window_bits && level == other.level && mem_level == other.mem_level;
    }
    // A compressor for one message at a time (its zlib state comes from the thread's spares).
    Deflater deflater() const { return Deflater(window_bits, true, level, mem_level); }
};

// Decompresses messages per RFC 7692 7.2.2, with an output bound so that a small compressed
// message cannot expand without limit (a "zip bomb" is a 1009). The zlib state (about 7 KiB plus
// a 2^window window) exists from the first compressed message on; without context takeover only
// until the message's end, when it goes back to its thread's spares as the Deflater's does.
// Such a state held between a message's first payload bytes and its end is counted per thread
// (inflatingNow()): a client could otherwise start a compressed message on every connection it
// may open and go quiet, each holding its state. The owner checks overLimit() when a message
// stays half-way (the end of a read) and gives the state up with abandon().
class Inflater {
public:
    enum class Status : std::uint8_t { Ok, TooBig, Corrupt };

    // `window_bits` 8..15: the sender's agreed max window; `no_context_takeover` resets the state
    // after each message (the sender promised not to refer back); `max_inflating`: the thread's
    // messages in progress (without context takeover) at most, this one included; 0 = no bound.
    Inflater(int window_bits, bool no_context_takeover, std::size_t max_inflating = 0);
    ~Inflater();
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    // Messages without context takeover whose decompression state is held on this thread now.
    static std::size_t inflatingNow();
    // This Inflater holds a message's state (no context takeover) that, when it started, made the
    // thread hold more than max_inflating such states (this one's bound; messages already under
    // way are never failed by a later one, whatever its connection's bound).
    bool overLimit() const;
    // Gives the current message's state back (no context takeover) and refuses everything after
    // (Corrupt): for a connection that is being failed.
    void abandon();

    // Decompresses the next `len` bytes of the current message's payload, appending to `out`.
    // TooBig as soon as out.size() would exceed `max_size`; Corrupt on invalid DEFLATE data.
    Status inflate(const std::uint8_t* data, std::size_t len, ByteBuffer& out, std::size_t max_size);
    // Ends the current message: inflates the 00 00 FF FF tail the sender removed, then resets the
    // state when there is no context takeover.
    Status finish(ByteBuffer& out, std::size_t max_size);

private:
    bool init();
    Status run(const std::uint8_t* data, std::size_t len, ByteBuffer& out, std::size_t max_size);
    void release();  // the state goes back to the spares (no context takeover), uncounted

    std::unique_ptr<z_stream_s, InflateStreamDeleter> stream_;
    std::size_t max_inflating_;
    int window_bits_;
    bool no_context_takeover_;
    bool counted_ = false;  // stream_ is counted in the thread's inflatingNow()
    bool over_ = false;     // counting it took the thread past max_inflating_ (overLimit)
    bool ended_ = false;  // the message's DEFLATE data had a final block: ignore the rest of it
    bool fed_ = false;    // the current message has had payload bytes
    bool broken_ = false;
};

}  // namespace portico::ws
