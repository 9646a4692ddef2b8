// SPDX-License-Identifier: Apache-2.0
#pragma once
// The full WebSocket codec of Portico's built-in endpoints (echo, pubsub): frames in, messages
// out, and back. No socket calls and no timers: the owner feeds it the bytes it read and flushes
// the evbuffer it writes to, so tests drive it with evbuffers alone.
//
//   owner                                    Codec                          CodecHandler
//   read bytes -> feed(in) ----------------> unmask, reassemble, inflate,
//                                            check UTF-8, answer pings ---> onMessage/onClose/onPong
//   sendText()/sendBinary()/sendClose() ---> frames appended to `out`
//   flush `out` to the socket; when state() is Closed: flush, then close the TCP connection.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "portico/core/shared_bytes.h"
#include "portico/ws/byte_buffer.h"
#include "portico/ws/frame_checker.h"
#include "portico/ws/frame_header.h"
#include "portico/ws/frame_trace.h"
#include "portico/ws/permessage_deflate.h"
#include "portico/ws/utf8_validator.h"

struct evbuffer;

namespace portico::ws {

class FrameTracer;

struct CodecOptions {
    Role role = Role::Server;                 // our end: a server expects masked frames, sends unmasked
    std::size_t max_message_bytes = 1 << 20;  // a message, reassembled and inflated: close 1009 beyond
    std::optional<DeflateParams> deflate;     // permessage-deflate as agreed in the handshake, or none
    int deflate_level = 1;                    // zlib level for outgoing messages (1 fast .. 9 small)
    int deflate_mem_level = 8;                // zlib memLevel (compressor memory 2^(n+9) bytes)
    std::size_t deflate_min_bytes = 64;       // outgoing messages shorter than this are not compressed
    std::size_t max_inflating = 0;            // Inflater's max_inflating: the worker's compressed
                                              // messages half-received at once; one more fails the
                                              // connection with 1013; 0 = no bound
    FrameTracer* tracer = nullptr;            // websocket.trace: every frame in and out is logged
                                              // (not owned; outlives the Codec); null: off
};

// What the owner of a Codec learns about. Callbacks run inside Codec::feed(); they may call the
// Codec's send functions but must not destroy the Codec (defer that to the event loop).
class CodecHandler {
public:
    virtual ~CodecHandler() = default;
    // A complete message: reassembled, inflated, and valid UTF-8 when `is_text`. `payload` is only
    // valid during the call. Not called once a Close was sent or received.
    virtual void onMessage(bool is_text, std::string_view payload) = 0;
    // The peer's Close frame: `code` is 1005 (close_code::kNoStatus) when it carried none. The
    // codec has already queued its answering Close (when it had not sent one) and is now Closed.
    virtual void onClose(std::uint16_t code, std::string_view reason) {
        static_cast<void>(code);
        static_cast<void>(reason);
    }
    // A Pong (solicited or not; RFC 6455 5.5.3) with its payload.
    virtual void onPong(std::string_view payload) { static_cast<void>(payload); }
    // The codec is about to append a frame to `out` (an answer to a Ping or a Close, a failure's
    // Close, a send*()): the owner may first put there what must go before it.
    virtual void beforeWrite() {}
};

enum class CodecState : std::uint8_t {
    Open,       // messages flow both ways
    CloseSent,  // sendClose() was called: waiting for the peer's Close (the owner arms a timeout)
    Closed,     // the close handshake is complete, or the connection failed (failed() is true):
                // flush `out`, then close the TCP connection. Further input is discarded.
};
std::string_view toString(CodecState state);

class Codec {
public:
    // `handler` and `out` must outlive the Codec; every frame the Codec produces is appended to
    // `out` (not owned).
    Codec(const CodecOptions& options, CodecHandler& handler, evbuffer* out);
    Codec(const Codec&) = delete;
    Codec& operator=(const Codec&) = delete;
    ~Codec();

    // Consumes what it can from the front of `in` (whole frame headers, any available part of a
    // data payload, whole control frames) and drains it; leaves an incomplete header or control
    // frame for the next call. Any protocol violation fails the connection at once: a Close frame
    // with the code goes to `out` and the state becomes Closed (1002 framing/masking/RSV/opcode/
    // fragmentation/close payload, 1007 invalid UTF-8 or DEFLATE data, 1009 message too big).
    // Returns state().
    CodecState feed(evbuffer* in);

    // Queue one message as a single frame (compressed when permessage-deflate was agreed and it
    // is at least deflate_min_bytes long). `text` must be UTF-8 (not checked). Return false and
    // write nothing unless the state is Open (or, for sendBinary/sendText, when zlib fails under
    // context takeover, in which case the connection is failed with 1011; without takeover the
    // message goes uncompressed).
    bool sendText(std::string_view text);
    bool sendBinary(std::string_view data);
    // A Ping with at most 125 bytes of payload (false if longer or not Open).
    bool sendPing(std::string_view payload = {});
    // An unsolicited Pong (RFC 6455 5.5.3: a one-way heartbeat), at most 125 bytes of payload
    // (false if longer or not Open). The Codec answers pings itself.
    bool sendPong(std::string_view payload = {});
    // Starts the close handshake (RFC 6455 7.1.2): queues a Close with `code` (a code valid on the
    // wire, see isValidCloseCodeOnWire, or 0 for none) and `reason` (cut to 123 bytes), and
    // moves to CloseSent. After a policy close (e.g. 1008 for a slow subscriber) the owner may
    // close TCP as soon as `out` is flushed, without waiting.
    bool sendClose(std::uint16_t code, std::string_view reason = {});

    CodecState state() const { return state_; }
    // True when the codec failed the connection because of what the peer sent.
    bool failed() const { return failed_; }
    std::uint16_t closeCodeSent() const { return code_sent_; }          // 0: none sent
    std::uint16_t closeCodeReceived() const { return code_received_; }  // 0: none received
    bool deflateEnabled() const { return deflate_ != nullptr; }
    // How messages compressed once for many receivers may come to this connection: set when it
    // is a server's that agreed permessage-deflate without server context takeover, else null
    // (such frames then go uncompressed, as RFC 7692 6 always allows).
    const SharedDeflate* sharedDeflate() const { return deflate_ && deflate_->shared ? &*deflate_->shared : nullptr; }
    // Message memory kept between feed() calls (zlib's state aside): none unless a message is
    // half-way, so that an idle connection costs no more after a burst than before it.
    std::size_t heldBytes() const { return message_.capacity() + (deflate_ ? deflate_->compressed.capacity() : 0); }

    // Counters: complete data messages received; messages and payload bytes sent.
    std::uint64_t messagesIn() const { return checker_.messages(); }
    std::uint64_t messagesOut() const { return messages_out_; }
    std::uint64_t bytesOut() const { return bytes_out_; }

    // Encodes one message as one unmasked (server) frame into `out`, compressing it with
    // `deflater` when non-null and `len` >= `min_deflate_bytes`. For fan-out (pubsub): encode once,
    // then copy the bytes to every subscriber. A shared deflater must have no context takeover
    // (the same bytes cannot suit several compression histories); with context takeover, pass
    // nullptr (uncompressed messages are always allowed under permessage-deflate). A message
    // whose compression fails goes uncompressed when `deflater` has no context takeover.
    // Returns false on an allocation failure, or a zlib failure under context takeover.
    static bool encodeMessage(evbuffer* out, bool text, const void* data, std::size_t len, Deflater* deflater,
                              std::size_t min_deflate_bytes = 0);
    // Appends to `out` frames that encodeMessage wrote once for many receivers (`frames` is not
    // changed). Below kCopySharedBelow bytes they are copied: into the room left in `out`'s last
    // chain when several come before a write, so a burst costs no allocation per frame. Larger
    // ones are added by reference: no copy per receiver.
    static void appendShared(evbuffer* out, evbuffer* frames);
    // One message as one unmasked (server) frame in bytes shared by reference
    // (core::SharedBytes): for fan-out, where the same bytes go to every receiver. Compressed
    // with `deflate` when non-null, `len` >= its min_bytes and compression pays (RSV1 set): for
    // the receivers whose sharedDeflate() has the same compressor; else uncompressed, which
    // suits every receiver, under permessage-deflate too (RFC 7692 6: a message may always be
    // sent uncompressed). Null when out of memory.
    static core::SharedBytesRef encodeShared(bool text, const void* data, std::size_t len,
                                             const SharedDeflate* deflate = nullptr);
    static constexpr std::size_t kCopySharedBelow = core::SharedBytes::kCopyBelow;

private:
    enum class Step : std::uint8_t { NeedMore, FrameDone, Stop };

    Step readPayload(evbuffer* in);
    bool deliverInPlace(evbuffer* in);
    void startMessage(const FrameHeader& h);
    void finishMessage();
    void deliver(std::string_view payload);  // a whole, checked message to the handler
    void handleControl(const std::uint8_t* payload, std::size_t len);
    bool checkInflated(Inflater::Status status);
    std::size_t maxMessageBytes() const { return static_cast<std::size_t>(checker_.maxMessageBytes()); }
    bool send(Opcode opcode, const void* data, std::size_t len);
    bool sendControl(Opcode opcode, std::string_view payload);
    void fail(std::uint16_t code);
    const std::uint8_t* outgoingMask();
    // Trace directions: a server codec talks with a client, a client codec with an upstream.
    TraceDirection incoming() const {
        return role_ == Role::Server ? TraceDirection::ClientToPortico : TraceDirection::UpstreamToPortico;
    }
    TraceDirection outgoing() const {
        return role_ == Role::Server ? TraceDirection::PorticoToClient : TraceDirection::PorticoToUpstream;
    }
    // Runs `write` (which appends frames to out_ and returns whether it could) and traces what
    // it appended when a tracer is set.
    template <typename Write>
    bool traced(Write&& write);

    // permessage-deflate, when agreed: one allocation for all that only it needs, so that a
    // connection without it (the usual case) carries a single null pointer.
    struct Deflate {
        explicit Deflate(const CodecOptions& options);  // options.deflate is set
        Deflater deflater;
        Inflater inflater;
        ByteBuffer compressed;      // a slice of compressed payload on its way to the inflater
        std::size_t min_bytes;      // outgoing messages shorter than this are not compressed
        std::optional<SharedDeflate> shared;  // sharedDeflate()
        std::size_t validated = 0;  // bytes of message_ already fed to utf8_ (inflated text)
    };

    CodecHandler& handler_;
    evbuffer* out_;
    FrameTracer* tracer_;
    FrameChecker checker_;  // also holds max_message_bytes
    std::unique_ptr<Deflate> deflate_;
    // The message being reassembled (unmasked, inflated) when it cannot be delivered from the
    // input in place; its memory is given back once no message is in progress after a feed().
    ByteBuffer message_;
    std::uint64_t offset_ = 0;  // position within the current frame's payload
    std::uint64_t messages_out_ = 0;
    std::uint64_t bytes_out_ = 0;
    FrameHeader frame_;
    Utf8Validator utf8_;
    Role role_;
    CodecState state_ = CodecState::Open;
    std::uint16_t code_sent_ = 0;
    std::uint16_t code_received_ = 0;
    std::uint8_t mask_[4] = {0, 0, 0, 0};
    bool in_frame_ = false;
    bool message_text_ = false;
    bool message_compressed_ = false;
    bool failed_ = false;
};

}  // namespace portico::ws
