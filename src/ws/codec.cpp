// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/codec.h"

#include <algorithm>
#include <cstring>

#include <event2/buffer.h>

#include "portico/ws/close_code.h"
#include "portico/ws/frame_tracer.h"

namespace portico::ws {

namespace {

// Reassembly and compression memory above this is returned after each message, so that one big
// message does not pin memory (the reassembly buffer goes entirely once a burst is over: feed()).
constexpr std::size_t kKeepBufferBytes = 64 * 1024;
// Compressed payload goes to the inflater in slices of this size, so its staging buffer stays
// small whatever the frame size.
constexpr std::size_t kInflateSlice = 16 * 1024;
// Fan-out frames (encodeShared) shorter than this go uncompressed whatever
// permessage_deflate.min_message_bytes says: see SharedDeflate.
constexpr std::size_t kSharedDeflateMinBytes = 256;

Role peerOf(Role role) { return role == Role::Server ? Role::Client : Role::Server; }

bool encodeWith(evbuffer* out, Opcode opcode, const void* data, std::size_t len, Deflater* deflater,
                std::size_t min_deflate_bytes, const std::uint8_t* mask) {
    if (deflater != nullptr && len >= min_deflate_bytes) {
        ByteBuffer& z = deflater->scratch();
        z.clear();
        if (!deflater->compress(static_cast<const std::uint8_t*>(data), len, z)) {
            // zlib failed (out of memory, or a stream it broke before): the peer saw nothing of
            // it. Without context takeover no later message refers to this one, so it goes
            // uncompressed (RFC 7692 6), as fan-out does; with takeover the peer's window would
            // miss it, and the caller fails the connection.
            z.clearAndTrim(kKeepBufferBytes);
            if (!deflater->noContextTakeover()) return false;
            return appendFrame(out, opcode, true, 0, data, len, mask);
        }
        // Without context takeover this message left no trace in the compressor, so when
        // compression did not pay we may send the original instead (RFC 7692 6: a message is
        // compressed or not, per message). With takeover, the peer's window must see it compressed.
        if (!deflater->noContextTakeover() || z.size() < len) {
            // RFC 7692 6: RSV1 ("Per-Message Compressed") on the first frame of the message.
            const bool ok = appendFrame(out, opcode, true, kRsv1, z.data(), z.size(), mask);
            z.clearAndTrim(kKeepBufferBytes);
            return ok;
        }
        z.clearAndTrim(kKeepBufferBytes);
    }
    return appendFrame(out, opcode, true, 0, data, len, mask);
}

// One unmasked frame in shared bytes (Codec::encodeShared); null when out of memory.
core::SharedBytesRef sharedFrame(Opcode opcode, std::uint8_t rsv, const void* payload, std::size_t len) {
    std::uint8_t header[kMaxFrameHeaderBytes];
    const std::size_t h = writeFrameHeader(header, true, rsv, opcode, len, nullptr);
    core::SharedBytesRef frame = core::SharedBytes::make(h + len);
    if (!frame) return frame;
    std::memcpy(frame.get()->data(), header, h);
    if (len > 0) std::memcpy(frame.get()->data() + h, payload, len);
    return frame;
}

}  // namespace

std::string_view toString(CodecState state) {
    switch (state) {
        case CodecState::Open: return "open";
        case CodecState::CloseSent: return "close-sent";
        case CodecState::Closed: return "closed";
    }
    return "unknown";
}

// Our compressor follows our side's parameters, our decompressor the peer's.
Codec::Deflate::Deflate(const CodecOptions& options)
    : deflater(options.role == Role::Server ? options.deflate->server_max_window_bits
                                            : options.deflate->client_max_window_bits,
               options.role == Role::Server ? options.deflate->server_no_context_takeover
                                            : options.deflate->client_no_context_takeover,
               options.deflate_level, options.deflate_mem_level),
      inflater(options.role == Role::Server ? options.deflate->client_max_window_bits
                                            : options.deflate->server_max_window_bits,
               options.role == Role::Server ? options.deflate->client_no_context_takeover
                                            : options.deflate->server_no_context_takeover,
               options.max_inflating),
      min_bytes(options.deflate_min_bytes) {
    if (options.role == Role::Server && options.deflate->server_no_context_takeover)
        shared = SharedDeflate{options.deflate->server_max_window_bits, static_cast<std::uint8_t>(options.deflate_level),
                               static_cast<std::uint8_t>(options.deflate_mem_level),
                               std::max(options.deflate_min_bytes, kSharedDeflateMinBytes)};
}

Codec::Codec(const CodecOptions& options, CodecHandler& handler, evbuffer* out)
    : handler_(handler),
      out_(out),
      tracer_(options.tracer),
      checker_(peerOf(options.role), options.deflate ? kRsv1 : 0, options.max_message_bytes),
      deflate_(options.deflate ? std::make_unique<Deflate>(options) : nullptr),
      role_(options.role) {}

Codec::~Codec() = default;

template <typename Write>
bool Codec::traced(Write&& write) {
    handler_.beforeWrite();
    if (tracer_ == nullptr) [[likely]] return write();
    const std::size_t mark = evbuffer_get_length(out_);
    const bool ok = write();
    tracer_->written(outgoing(), out_, mark);
    return ok;
}

CodecState Codec::feed(evbuffer* in) {
    while (state_ != CodecState::Closed) {
        if (!in_frame_) {
            FrameHeader h;
            const int r = peekFrameHeader(in, h);
            if (r == 0) break;
            if (r < 0) {
                fail(close_code::kProtocolError);
                break;
            }
            if (const std::uint16_t code = checker_.check(h); code != 0) {
                if (tracer_) tracer_->frame(incoming(), h, in, h.header_length);
                fail(code);
                break;
            }
            // Data frames are traced at their header, control frames once whole (below).
            if (tracer_ && !isControl(h.opcode)) [[unlikely]] tracer_->frame(incoming(), h, in, h.header_length);
            evbuffer_drain(in, h.header_length);
            frame_ = h;
            offset_ = 0;
            in_frame_ = true;
            if (h.opcode == Opcode::Text || h.opcode == Opcode::Binary) startMessage(h);
        }

        if (isControl(frame_.opcode)) {
            // RFC 6455 5.5: control payloads are small (checked <= 125): wait for all of it.
            const auto len = static_cast<std::size_t>(frame_.payload_length);
            if (evbuffer_get_length(in) < len) break;
            if (tracer_) [[unlikely]] tracer_->frame(incoming(), frame_, in, 0);
            std::uint8_t payload[kMaxControlPayload];
            removeUnmasked(in, payload, len, frame_.masked ? frame_.mask : nullptr, 0);
            in_frame_ = false;
            handleControl(payload, len);
            continue;
        }

        if (offset_ == 0 && deliverInPlace(in)) continue;
        const Step step = readPayload(in);
        if (step != Step::FrameDone) break;
        in_frame_ = false;
        if (frame_.fin) finishMessage();
    }
    // A compressed message left half-way holds its decompressor until it ends: beyond the
    // worker's max_inflating such messages this connection is failed (RFC 6455 7.4.1: 1013, try
    // again later) rather than hold one more; those already in progress go on.
    if (deflate_ && state_ != CodecState::Closed && deflate_->inflater.overLimit()) fail(close_code::kTryAgainLater);
    // Once Closed nothing more is read (RFC 6455 7.1.7: after failing, process no further data),
    // and a message cut short gives its decompressor back at once.
    if (state_ == CodecState::Closed) {
        evbuffer_drain(in, evbuffer_get_length(in));
        if (deflate_) deflate_->inflater.abandon();
    }
    // The burst is over: unless a message is half-way, the reassembly memory goes back, so that
    // an idle connection keeps none (most messages never need it: deliverInPlace).
    if (!checker_.inMessage() && !(in_frame_ && !isControl(frame_.opcode))) message_.clearAndTrim(0);
    if (deflate_) deflate_->compressed.clearAndTrim(0);
    return state_;
}

// A message in one uncompressed frame that lies in one piece at the front of `in` (the usual
// small message) is unmasked where it lies and delivered from there: no copy, and no reassembly
// buffer. The input's chains are the reader's own (nothing is added to an input by reference),
// so they may be written; the payload is drained once the handler has seen it.
bool Codec::deliverInPlace(evbuffer* in) {
    if (!frame_.fin || frame_.opcode == Opcode::Continuation || message_compressed_) return false;
    const auto len = static_cast<std::size_t>(frame_.payload_length);
    if (len == 0 || evbuffer_get_contiguous_space(in) < len) return false;
    std::uint8_t* data = evbuffer_pullup(in, static_cast<ev_ssize_t>(len));  // no copy: it is contiguous
    if (frame_.masked) applyMask(data, len, frame_.mask);
    in_frame_ = false;
    if (message_text_ && !(utf8_.feed(data, len) && utf8_.complete())) {
        fail(close_code::kInvalidPayload);
        return true;
    }
    deliver({reinterpret_cast<const char*>(data), len});
    evbuffer_drain(in, len);
    return true;
}

void Codec::deliver(std::string_view payload) {
    // After a Close was sent, messages are still read (and checked) but no longer delivered.
    if (state_ == CodecState::Open) handler_.onMessage(message_text_, payload);
}

void Codec::startMessage(const FrameHeader& h) {
    message_.clear();
    if (deflate_) deflate_->validated = 0;
    utf8_.reset();
    message_text_ = h.opcode == Opcode::Text;
    message_compressed_ = (h.rsv & kRsv1) != 0;
}

Codec::Step Codec::readPayload(evbuffer* in) {
    const std::uint64_t remaining = frame_.payload_length - offset_;
    if (remaining == 0) return Step::FrameDone;
    const std::size_t available = evbuffer_get_length(in);
    if (available == 0) return Step::NeedMore;
    // Take whatever part of the payload has arrived: a text message is checked as it comes
    // (Autobahn 6.4: fail fast) and a big frame never sits twice in memory.
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(available, remaining));
    const std::uint8_t* mask = frame_.masked ? frame_.mask : nullptr;

    if (!message_compressed_) {
        // The FrameChecker bounded the message's payload sum to max_message_bytes, so this buffer
        // is bounded too. One copy: out of the evbuffer, unmasked on the way.
        std::uint8_t* dst = message_.prepare(n);
        removeUnmasked(in, dst, n, mask, offset_);
        message_.commit(n);
        offset_ += n;
        if (message_text_ && !utf8_.feed(dst, n)) {
            fail(close_code::kInvalidPayload);
            return Step::Stop;
        }
    } else {
        std::size_t left = n;
        while (left > 0) {
            const std::size_t k = std::min(left, kInflateSlice);
            ByteBuffer& compressed = deflate_->compressed;
            compressed.clear();
            std::uint8_t* slice = compressed.prepare(k);
            removeUnmasked(in, slice, k, mask, offset_);
            offset_ += k;
            left -= k;
            if (!checkInflated(deflate_->inflater.inflate(slice, k, message_, maxMessageBytes()))) return Step::Stop;
        }
    }
    return offset_ == frame_.payload_length ? Step::FrameDone : Step::NeedMore;
}

bool Codec::checkInflated(Inflater::Status status) {
    if (status == Inflater::Status::TooBig) {
        fail(close_code::kMessageTooBig);
        return false;
    }
    if (status == Inflater::Status::Corrupt) {
        // RFC 7692 8: data that does not inflate fails the connection; 1007 as for other payload
        // data that does not match its type.
        fail(close_code::kInvalidPayload);
        return false;
    }
    if (message_text_) {
        std::size_t& validated = deflate_->validated;
        const bool ok = utf8_.feed(message_.data() + validated, message_.size() - validated);
        validated = message_.size();
        if (!ok) {
            fail(close_code::kInvalidPayload);
            return false;
        }
    }
    return true;
}

void Codec::finishMessage() {
    if (message_compressed_ && !checkInflated(deflate_->inflater.finish(message_, maxMessageBytes()))) return;
    // RFC 6455 8.1: a text message must end on a character boundary.
    if (message_text_ && !utf8_.complete()) {
        fail(close_code::kInvalidPayload);
        return;
    }
    deliver(message_.view());
    message_.clearAndTrim(kKeepBufferBytes);
    if (deflate_) deflate_->validated = 0;
}

void Codec::handleControl(const std::uint8_t* payload, std::size_t len) {
    const std::string_view view(reinterpret_cast<const char*>(payload), len);
    switch (frame_.opcode) {
        case Opcode::Ping:
            // RFC 6455 5.5.2/5.5.3: answer with a Pong carrying the same data; none after our Close.
            if (state_ == CodecState::Open) {
                traced([&] { return appendFrame(out_, Opcode::Pong, true, 0, payload, len, outgoingMask()); });
                bytes_out_ += len;
            }
            return;
        case Opcode::Pong:
            handler_.onPong(view);
            return;
        case Opcode::Close: {
            ClosePayload close;
            if (const std::uint16_t error = parseClosePayload(payload, len, close); error != 0) {
                fail(error);
                return;
            }
            code_received_ = close.code;
            // RFC 6455 5.5.1: answer a Close with a Close, echoing the code (none if none came).
            if (state_ == CodecState::Open) {
                code_sent_ = close.code == close_code::kNoStatus ? 0 : close.code;
                traced([&] { return appendCloseFrame(out_, code_sent_, {}, outgoingMask()); });
            }
            // RFC 6455 7.1.1: the handshake is complete; the server closes TCP first.
            state_ = CodecState::Closed;
            handler_.onClose(close.code, close.reason);
            return;
        }
        default:
            return;  // unreachable: the FrameChecker lets only known control opcodes through
    }
}

const std::uint8_t* Codec::outgoingMask() {
    if (role_ == Role::Server) return nullptr;
    makeMask(mask_);
    return mask_;
}

bool Codec::send(Opcode opcode, const void* data, std::size_t len) {
    if (state_ != CodecState::Open) return false;
    if (!traced([&] { return encodeWith(out_, opcode, data, len, deflate_ ? &deflate_->deflater : nullptr,
                                   deflate_ ? deflate_->min_bytes : 0, outgoingMask()); })) {
        // zlib failed under context takeover (nothing was written), or libevent could not
        // allocate: 1011 and close.
        fail(close_code::kInternalError);
        return false;
    }
    ++messages_out_;
    bytes_out_ += len;
    return true;
}

bool Codec::sendText(std::string_view text) { return send(Opcode::Text, text.data(), text.size()); }

bool Codec::sendBinary(std::string_view data) { return send(Opcode::Binary, data.data(), data.size()); }

bool Codec::sendPing(std::string_view payload) { return sendControl(Opcode::Ping, payload); }

bool Codec::sendPong(std::string_view payload) { return sendControl(Opcode::Pong, payload); }

bool Codec::sendControl(Opcode opcode, std::string_view payload) {
    // RFC 6455 5.5: control frames carry at most 125 bytes and are never fragmented.
    if (state_ != CodecState::Open || payload.size() > kMaxControlPayload) return false;
    bytes_out_ += payload.size();
    return traced([&] { return appendFrame(out_, opcode, true, 0, payload.data(), payload.size(), outgoingMask()); });
}

bool Codec::sendClose(std::uint16_t code, std::string_view reason) {
    if (state_ != CodecState::Open) return false;
    code_sent_ = code;
    state_ = CodecState::CloseSent;
    return traced([&] { return appendCloseFrame(out_, code, reason, outgoingMask()); });
}

void Codec::fail(std::uint16_t code) {
    // RFC 6455 7.1.7: _Fail the WebSocket Connection_: send a Close with the reason (unless one
    // was already sent), then the owner closes TCP without waiting for the answer.
    failed_ = true;
    if (state_ == CodecState::Open) {
        code_sent_ = code;
        traced([&] { return appendCloseFrame(out_, code, {}, outgoingMask()); });
    }
    state_ = CodecState::Closed;
}

void Codec::appendShared(evbuffer* out, evbuffer* frames) {
    // evbuffer_peek with the length (not -1, which stops at the vector's size) answers how many
    // extents the whole of it takes, even beyond the two asked for.
    evbuffer_iovec parts[2];
    const std::size_t length = evbuffer_get_length(frames);
    const int n = length < kCopySharedBelow ? evbuffer_peek(frames, static_cast<ev_ssize_t>(length), nullptr, parts, 2) : 0;
    if (n > 0 && n <= 2) {
        for (int i = 0; i < n; ++i) evbuffer_add(out, parts[i].iov_base, parts[i].iov_len);
    } else {
        evbuffer_add_buffer_reference(out, frames);
    }
}

bool Codec::encodeMessage(evbuffer* out, bool text, const void* data, std::size_t len, Deflater* deflater,
                          std::size_t min_deflate_bytes) {
    return encodeWith(out, text ? Opcode::Text : Opcode::Binary, data, len, deflater, min_deflate_bytes, nullptr);
}

core::SharedBytesRef Codec::encodeShared(bool text, const void* data, std::size_t len, const SharedDeflate* deflate) {
    const Opcode opcode = text ? Opcode::Text : Opcode::Binary;
    if (deflate != nullptr && len >= deflate->min_bytes) {
        Deflater deflater = deflate->deflater();
        ByteBuffer& z = deflater.scratch();
        // A zlib failure leaves the message uncompressed, as does a compression that did not
        // pay (each message is compressed alone: nothing refers to it later).
        if (deflater.compress(static_cast<const std::uint8_t*>(data), len, z) && z.size() < len)
            return sharedFrame(opcode, kRsv1, z.data(), z.size());
    }
    return sharedFrame(opcode, 0, data, len);
}

}  // namespace portico::ws
