// SPDX-License-Identifier: Apache-2.0
// ws_load: the WebSocket load client, echo backend and bare byte relay of Portico's benchmark.
//
// Deliberately independent of Portico (no libevent, no Portico headers): one thread, one epoll
// loop, level-triggered, plain read(2)/write(2), so every proxy is measured by the same, simple
// client. Built by bench/ws_load/CMakeLists.txt or by bench/ws_echo.py with one g++ line.
//
//   ws_load server   --listen PORT                      echo backend (RFC 6455 server side); a plain
//                                                       GET is answered `200 ok`, GET /__bench_status
//                                                       `accepts N` (connections accepted so far: the
//                                                       proxy's upstream connections opened)
//   ws_load relay    --listen PORT --to PORT [--splice]   bare byte relay (the reference "proxy"); --splice: through a pipe per direction with splice(2)
//                    [--uring]                          ... built on io_uring instead of epoll (UringRelay; needs liburing)
//   ws_load echo     --port P -c N -s BYTES -d SECS     N connections, one message at a time
//                    [--rate R]                         ... offering R messages/s in all (paced)
//   ws_load idle     --port P -c N                      N upgraded connections, held
//   ws_load upgrades --port P -c N -d SECS              connect, handshake, close; N in parallel
//   ws_load pubsub   --port P -c SUBS --channels C -d SECS   subscribers + HTTP publishers
//                    [--pub-port Q]                     ... publishing on another node
//
// Client modes print `READY {json}` once their connections are set up; with --go-stdin they then
// wait for a line `GO` on stdin, so a caller can sample a proxy's CPU around the measured phase
// only. They print `RESULT {json}` at the end; with --go-stdin they then wait for stdin to close
// before exiting (so closing the sockets is not measured either). Progress goes to stderr.
//
// Protocol notes: client frames are masked with a fresh key per frame (RFC 6455 5.3); the server
// answers unmasked (5.1); the server closes the TCP connection first after a close handshake
// (7.1.1), and the client waits for that close.

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

// relay --uring needs liburing (Debian: liburing-dev, scripts/install-deps.sh bench) and -luring.
#if __has_include(<liburing.h>)
#include <liburing.h>
#define WS_LOAD_HAVE_URING 1
#endif

namespace {

// ---- small utilities -------------------------------------------------------------------------

uint64_t nowNs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

double cpuSelfSeconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "ws_load: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

// xorshift64*: masking keys and handshake nonces need not be cryptographic for a benchmark,
// only different per frame (RFC 6455 5.3 asks for unpredictability against cache poisoning by
// hostile scripts, which is not a concern between our own processes).
uint64_t g_rng = 0x9e3779b97f4a7c15ull;
uint64_t rnd() {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545f4914f6cdd1dull;
}

// ---- SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept only ---------------------------

std::array<uint8_t, 20> sha1(const uint8_t* data, size_t len) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    std::vector<uint8_t> m(data, data + len);
    m.push_back(0x80);
    while (m.size() % 64 != 56) m.push_back(0);
    const uint64_t bits = static_cast<uint64_t>(len) * 8;
    for (int i = 7; i >= 0; --i) m.push_back(static_cast<uint8_t>(bits >> (i * 8)));
    auto rol = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
    for (size_t off = 0; off < m.size(); off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; ++i)
            w[i] = static_cast<uint32_t>(m[off + 4 * i]) << 24 |
                   static_cast<uint32_t>(m[off + 4 * i + 1]) << 16 |
                   static_cast<uint32_t>(m[off + 4 * i + 2]) << 8 | m[off + 4 * i + 3];
        for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; ++i) {
            uint32_t f, k;
            if (i < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999;
            } else if (i < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1;
            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDC;
            } else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6;
            }
            const uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d;
            d = c;
            c = rol(b, 30);
            b = a;
            a = t;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
    }
    std::array<uint8_t, 20> out{};
    for (int i = 0; i < 20; ++i) out[i] = static_cast<uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
    return out;
}

std::string base64(const uint8_t* p, size_t n) {
    static const char* kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = static_cast<uint32_t>(p[i]) << 16;
        if (i + 1 < n) v |= static_cast<uint32_t>(p[i + 1]) << 8;
        if (i + 2 < n) v |= p[i + 2];
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
        out += i + 2 < n ? kAlphabet[v & 63] : '=';
    }
    return out;
}

// RFC 6455 4.2.2: base64(SHA-1(key + GUID)).
std::string acceptFor(std::string_view key) {
    std::string s(key);
    s += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    auto d = sha1(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    return base64(d.data(), d.size());
}

// Case-insensitive search for a header's value in an HTTP head; "" when absent.
std::string headerValue(std::string_view head, std::string_view name) {
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < head.size()) {
        const size_t start = pos + 2;
        const size_t end = head.find("\r\n", start);
        const std::string_view line =
            head.substr(start, (end == std::string_view::npos ? head.size() : end) - start);
        const size_t colon = line.find(':');
        if (colon == name.size()) {
            bool same = true;
            for (size_t i = 0; i < colon && same; ++i)
                same = std::tolower(static_cast<unsigned char>(line[i])) ==
                       std::tolower(static_cast<unsigned char>(name[i]));
            if (same) {
                std::string_view v = line.substr(colon + 1);
                while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
                while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
                return std::string(v);
            }
        }
        pos = end;
    }
    return {};
}

bool containsTokenCI(std::string_view hay, std::string_view needle) {
    if (needle.size() > hay.size()) return false;
    for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        bool same = true;
        for (size_t j = 0; j < needle.size() && same; ++j)
            same = std::tolower(static_cast<unsigned char>(hay[i + j])) ==
                   std::tolower(static_cast<unsigned char>(needle[j]));
        if (same) return true;
    }
    return false;
}

// ---- buffers and frames ------------------------------------------------------------------------

constexpr size_t kMaxBuffer = 64u << 20;  // no single connection buffers more than 64 MiB
constexpr size_t kReadChunk = 256u << 10;
constexpr size_t kMaxHead = 16u << 10;  // HTTP heads larger than this are refused

// A byte queue: data between rd and wr; grows by doubling up to kMaxBuffer. The storage is not
// zero-filled (make_unique_for_overwrite), so a relay can drop and re-create it cheaply.
struct Buf {
    std::unique_ptr<uint8_t[]> d;
    size_t cap = 0, rd = 0, wr = 0;
    size_t size() const { return wr - rd; }
    bool empty() const { return wr == rd; }
    uint8_t* head() { return d.get() + rd; }
    uint8_t* tail() { return d.get() + wr; }
    size_t space() const { return cap - wr; }
    void consume(size_t n) {
        rd += n;
        if (rd == wr) rd = wr = 0;
    }
    void commit(size_t n) { wr += n; }
    // Room for n more bytes at the tail; false when that would pass kMaxBuffer.
    bool reserve(size_t n) {
        if (space() >= n) return true;
        if (rd > 0) {
            std::memmove(d.get(), d.get() + rd, wr - rd);
            wr -= rd;
            rd = 0;
            if (space() >= n) return true;
        }
        const size_t need = wr + n;
        if (need > kMaxBuffer) return false;
        const size_t ncap = std::max(need, std::max<size_t>(cap * 2, 4096));
        auto nd = std::make_unique_for_overwrite<uint8_t[]>(ncap);
        if (wr > 0) std::memcpy(nd.get(), d.get(), wr);
        d = std::move(nd);
        cap = ncap;
        return true;
    }
    bool append(const void* p, size_t n) {
        if (!reserve(n)) return false;
        std::memcpy(tail(), p, n);
        commit(n);
        return true;
    }
    // Takes over storage of cap bytes (only when it has none).
    void adopt(std::unique_ptr<uint8_t[]> storage, size_t n) {
        d = std::move(storage);
        cap = n;
        rd = wr = 0;
    }
    // Gives the storage away (only when empty; null otherwise).
    std::unique_ptr<uint8_t[]> take() {
        if (!empty() || !d) return nullptr;
        cap = rd = wr = 0;
        return std::move(d);
    }
};

// The relay's buffers: fixed size, kept in a small pool so that an idle connection holds none
// (as HAProxy releases its buffers) while a busy one does not pay for malloc and page faults.
constexpr size_t kRelayWindow = 256u << 10;
std::vector<std::unique_ptr<uint8_t[]>> g_relayPool;

std::unique_ptr<uint8_t[]> poolGet() {
    if (g_relayPool.empty()) return std::make_unique_for_overwrite<uint8_t[]>(kRelayWindow);
    auto b = std::move(g_relayPool.back());
    g_relayPool.pop_back();
    return b;
}

void poolPut(std::unique_ptr<uint8_t[]> b) {
    if (b && g_relayPool.size() < 64) g_relayPool.push_back(std::move(b));
}

// dst[i] = src[i] ^ mask[(i + phase) % 4], eight bytes at a time (RFC 6455 5.3).
void maskCopy(uint8_t* dst, const uint8_t* src, size_t n, const uint8_t mask[4], size_t phase = 0) {
    uint8_t m8[8];
    for (int i = 0; i < 8; ++i) m8[i] = mask[(i + phase) & 3];
    uint64_t m;
    std::memcpy(&m, m8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        std::memcpy(&v, src + i, 8);
        v ^= m;
        std::memcpy(dst + i, &v, 8);
    }
    for (; i < n; ++i) dst[i] = src[i] ^ m8[i & 7];
}

struct FrameHead {
    bool fin = false;
    uint8_t opcode = 0;
    bool masked = false;
    bool rsv1 = false;  // permessage-deflate: the message is compressed
    uint8_t mask[4] = {0, 0, 0, 0};
    uint64_t len = 0;
    size_t headLen = 0;
};

// Parses a frame header (RFC 6455 5.2). Returns 1 with h filled, 0 when more bytes are needed,
// -1 on a header no peer of ours should send (RSV bits, 64-bit length with the top bit set).
int parseHead(const uint8_t* p, size_t n, FrameHead& h, uint8_t allowedRsv = 0) {
    if (n < 2) return 0;
    if (p[0] & 0x70 & ~allowedRsv) return -1;
    h.rsv1 = (p[0] & 0x40) != 0;
    h.fin = (p[0] & 0x80) != 0;
    h.opcode = p[0] & 0x0f;
    h.masked = (p[1] & 0x80) != 0;
    uint64_t len = p[1] & 0x7f;
    size_t off = 2;
    if (len == 126) {
        if (n < 4) return 0;
        len = static_cast<uint64_t>(p[2]) << 8 | p[3];
        off = 4;
    } else if (len == 127) {
        if (n < 10) return 0;
        len = 0;
        for (int i = 0; i < 8; ++i) len = len << 8 | p[2 + i];
        if (len >> 63) return -1;
        off = 10;
    }
    if (h.masked) {
        if (n < off + 4) return 0;
        std::memcpy(h.mask, p + off, 4);
        off += 4;
    }
    h.len = len;
    h.headLen = off;
    return 1;
}

// Writes a header for a final frame into out (at least 14 bytes); returns its length.
size_t writeHead(uint8_t* out, uint8_t opcode, uint64_t len, const uint8_t* mask) {
    size_t o = 0;
    out[o++] = static_cast<uint8_t>(0x80 | opcode);
    const uint8_t mbit = mask ? 0x80 : 0;
    if (len < 126) {
        out[o++] = static_cast<uint8_t>(mbit | len);
    } else if (len <= 0xffff) {
        out[o++] = mbit | 126;
        out[o++] = static_cast<uint8_t>(len >> 8);
        out[o++] = static_cast<uint8_t>(len);
    } else {
        out[o++] = mbit | 127;
        for (int i = 7; i >= 0; --i) out[o++] = static_cast<uint8_t>(len >> (8 * i));
    }
    if (mask) {
        std::memcpy(out + o, mask, 4);
        o += 4;
    }
    return o;
}

// ---- options -----------------------------------------------------------------------------------

enum class Mode { Server, Relay, Echo, Idle, Upgrades, PubSub };

struct Options {
    Mode mode = Mode::Echo;
    std::string host = "127.0.0.1";
    int port = 0;             // client modes: the proxy's port
    int listen = 0;           // server/relay: port to listen on (0: any, printed)
    int to = 0;               // relay: the backend's port
    bool splice = false;      // relay: move the bytes with splice(2) through a pipe per direction
    bool uring = false;       // relay: the io_uring relay (UringRelay) instead of the epoll one
    std::string path = "/ws";
    int connections = 64;     // echo/idle/upgrades: connections; pubsub: subscribers
    size_t size = 64;         // message payload bytes
    double duration = 5;      // measured seconds
    int inflight = 1;         // echo: messages outstanding per connection
    double rate = 0;          // echo: total messages per second to offer (0: as fast as echoed)
    bool text = false;        // text frames instead of binary
    bool goStdin = false;
    int setupConcurrency = 128;  // handshakes in progress at once while setting up
    bool idlePing = true;     // idle: one echo round trip per connection before holding it
    // pubsub
    int channels = 1;
    int publishers = 1;
    std::string subPath = "/live/";
    std::string pubPath = "/live/";
    std::string token;
    int pubPort = 0;          // publishers' port (another node of a cluster); 0: --port
    int64_t window = 0;       // deliveries outstanding at most (0: 4 x subscribers per channel)
    double drain = 3;         // seconds to wait for outstanding work after the measured phase
    // pubsub --deflate: subscribers offer permessage-deflate and take compressed messages
    // (counted, not inflated: their payload bytes are what came on the wire), and the
    // publisher pads its bodies with words rather than one repeated byte, so that they
    // compress as text does (about 3:1) rather than to nothing.
    bool deflate = false;
};

Options g_opt;
uint64_t g_accepted = 0;  // connections accepted so far (server mode; the loop is single-threaded)

// ---- connections and the loop -------------------------------------------------------------------

enum class Role { Listener, Stdin, ServerConn, RelayConn, Client, Publisher };
enum class St { Connecting, Handshake, Open, Closing };

struct Conn {
    Role role = Role::Client;
    St st = St::Connecting;
    int fd = -1;
    size_t index = 0;      // position in Loop::conns_
    uint32_t events = 0;   // interest registered with epoll
    Buf in, out;
    bool closeAfterFlush = false;

    // client side
    std::string expectAccept;
    uint64_t startNs = 0;   // connect() time (upgrade latency)
    int channel = 0;
    uint64_t sent = 0, recvd = 0;  // echo: messages sent and echoed on this connection
    std::vector<uint64_t> sendNs;  // echo: send time per outstanding message (ring)
    uint64_t payloadLeft = 0;      // data frame payload still to consume
    bool frameFin = false;
    bool frameCompressed = false;  // the current message came with RSV1 (permessage-deflate)
    bool frameMasked = false;
    uint8_t frameMask[4] = {0, 0, 0, 0};
    uint64_t framePos = 0;         // payload bytes of the current message consumed so far
    uint64_t nextSendNs = 0;       // echo --rate: earliest time for the next message
    uint8_t first[128];            // first bytes of the current message
    size_t firstLen = 0;
    bool sentClose = false, gotClose = false;
    bool pinged = false;           // idle: its one round trip is done

    // relay
    Conn* peer = nullptr;
    bool rdEof = false;      // read side saw EOF
    bool shutWrPending = false;
    int pipeR = -1, pipeW = -1;  // --splice: the pipe holding what is on its way to this socket
    size_t piped = 0;            // --splice: bytes in that pipe

    // publisher
    bool busy = false;
    bool lastRequest = false;  // the server said Connection: close
    int64_t pendingFan = 0;    // deliveries the request in flight will cause
};

struct Stats {
    uint64_t ops = 0;        // completed operations inside the measured window
    uint64_t opsTotal = 0;   // completed after GO, drain included (for CPU per operation)
    uint64_t errors = 0;
    uint64_t bytes = 0;      // payload bytes received inside the window
    uint64_t compressed = 0;  // pubsub --deflate: messages inside the window that came compressed
    std::vector<uint32_t> latNs;  // per operation inside the window, ns (clamped)
    // pubsub
    uint64_t published = 0, publishedTotal = 0, pubErrors = 0;
    int64_t expected = 0, delivered = 0;  // deliveries expected so far / seen
    uint64_t lost = 0;
    uint64_t lastProgressNs = 0;
};

enum class Phase { Setup, Ready, Running, Draining, Done };

class Loop {
public:
    Loop() {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) die("epoll_create1");
    }

    int run();

private:
    // registration
    Conn* add(int fd, Role role, uint32_t events);
    void setEvents(Conn* c, uint32_t events);
    void closeConn(Conn* c);
    void flush(Conn* c);
    bool readInto(Conn* c, size_t limit = kReadChunk);

    // events
    void onEvent(Conn* c, uint32_t ev);
    void onAccept(Conn* l);
    void onStdin();
    void onServer(Conn* c, uint32_t ev);
    void onRelay(Conn* c, uint32_t ev);
    void onClient(Conn* c, uint32_t ev);
    void onPublisher(Conn* c, uint32_t ev);

    // server
    void serverHttp(Conn* c);
    void serverFrames(Conn* c);

    // relay
    void relayMove(Conn* from);
    void relayUpdate(Conn* c);
    void relayFlush(Conn* c);
    static size_t relayPending(const Conn* c) { return g_opt.splice ? c->piped : c->out.size(); }

    // client
    void openClient(int channel);
    bool clientHandshake(Conn* c);
    void clientOpen(Conn* c);
    void clientFrames(Conn* c);
    void clientMessage(Conn* c);
    void sendFrame(Conn* c, uint8_t opcode, const uint8_t* payload, size_t n);
    void sendEcho(Conn* c);
    void clientEnded(Conn* c, bool clean);

    // publisher
    void openPublisher();
    void publish(Conn* c);
    void pumpPublishers();
    void publisherResponse(Conn* c);

    // phases
    void tick();
    void start();
    void stopRunning();
    void finish();
    bool outstanding() const;
    void printResult();

    void listenOn(int port);

    int ep_ = -1;
    std::vector<std::unique_ptr<Conn>> conns_;
    std::vector<std::unique_ptr<Conn>> dead_;  // freed after the current epoll batch
    Phase phase_ = Phase::Setup;
    Stats st_;
    uint64_t t0_ = 0, tEnd_ = 0, drainUntil_ = 0;
    uint64_t setupStart_ = nowNs();
    double cpu0_ = 0, cpuEnd_ = 0;
    bool stdinOpen_ = false;
    bool exit_ = false;
    int exitCode_ = 0;

    int toOpen_ = 0;       // client connections still to start during setup / running
    int pending_ = 0;      // connections connecting or handshaking
    int open_ = 0;         // upgraded connections
    int setupFailed_ = 0;
    std::vector<int> subsPerChannel_;
    std::vector<Conn*> publishers_;
    int nextChannel_ = 0;
    std::vector<uint8_t> payload_;  // echo message template
    // echo --rate: connections whose next message waits for its slot; each connection sends at
    // most every connections/rate seconds, slots counted from the previous one (no catch-up burst)
    std::vector<Conn*> paced_;
    uint64_t paceIntervalNs_ = 0;
    void pace(uint64_t now);
    sockaddr_in addr_{};
};

Conn* Loop::add(int fd, Role role, uint32_t events) {
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->role = role;
    c->events = events;
    c->index = conns_.size();
    epoll_event e{};
    e.events = events;
    e.data.ptr = c.get();
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl add");
    conns_.push_back(std::move(c));
    return conns_.back().get();
}

void Loop::setEvents(Conn* c, uint32_t events) {
    if (c->fd < 0 || c->events == events) return;
    c->events = events;
    epoll_event e{};
    e.events = events;
    e.data.ptr = c;
    if (epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl mod");
}

void Loop::closeConn(Conn* c) {
    if (c->fd < 0) return;
    close(c->fd);  // also removes it from the epoll set
    c->fd = -1;
    if (c->pipeR >= 0) {
        close(c->pipeR);
        close(c->pipeW);
        c->pipeR = c->pipeW = -1;
    }
    const size_t i = c->index;
    std::unique_ptr<Conn> owned = std::move(conns_[i]);
    if (i + 1 != conns_.size()) {
        conns_[i] = std::move(conns_.back());
        conns_[i]->index = i;
    }
    conns_.pop_back();
    dead_.push_back(std::move(owned));
}

// Writes what is queued; keeps EPOLLOUT armed while anything is left.
void Loop::flush(Conn* c) {
    while (!c->out.empty()) {
        const ssize_t n = write(c->fd, c->out.head(), c->out.size());
        if (n > 0) {
            c->out.consume(static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        // write error: the reader side will see it too; drop what is queued.
        c->out.consume(c->out.size());
        if (c->role == Role::Client) ++st_.errors;
        closeConn(c);
        return;
    }
    if (c->out.empty() && c->closeAfterFlush) {
        closeConn(c);
        return;
    }
    if (c->out.empty() && c->role == Role::RelayConn) poolPut(c->out.take());
    uint32_t ev = c->events;
    if (c->out.empty())
        ev &= ~static_cast<uint32_t>(EPOLLOUT);
    else
        ev |= EPOLLOUT;
    setEvents(c, ev);
}

// Reads until the socket is drained or limit bytes were taken. False on EOF or error (bytes
// read before it are kept).
bool Loop::readInto(Conn* c, size_t limit) {
    size_t total = 0;
    while (total < limit) {
        if (!c->in.reserve(std::min(kReadChunk, limit - total))) return false;
        const size_t want = std::min(c->in.space(), limit - total);
        const ssize_t n = read(c->fd, c->in.tail(), want);
        if (n > 0) {
            c->in.commit(static_cast<size_t>(n));
            total += static_cast<size_t>(n);
            if (static_cast<size_t>(n) < want) return true;  // drained (saves one EAGAIN read)
            continue;
        }
        if (n == 0) return false;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    return true;
}

// host:port as a socket address (g_opt.host is a dotted IPv4 address).
sockaddr_in inetAddr(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, g_opt.host.c_str(), &a.sin_addr);
    return a;
}

// A non-blocking listening socket on g_opt.host:port; prints `LISTENING <port>` (the port the
// kernel chose when port is 0).
int listeningSocket(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = inetAddr(port);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) die("bind");
    if (::listen(fd, 4096) < 0) die("listen");
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    std::printf("LISTENING %d\n", ntohs(a.sin_port));
    std::fflush(stdout);
    return fd;
}

void Loop::listenOn(int port) { add(listeningSocket(port), Role::Listener, EPOLLIN); }

// ---- server (echo backend) and relay --------------------------------------------------------------

int connectTo(const sockaddr_in& a) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

void Loop::onAccept(Conn* l) {
    for (;;) {
        const int fd = accept4(l->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                std::fprintf(stderr, "ws_load: accept: %s\n", std::strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ++g_accepted;
        if (g_opt.mode == Mode::Server) {
            Conn* c = add(fd, Role::ServerConn, EPOLLIN);
            c->st = St::Handshake;
            continue;
        }
        // relay: pair the accepted socket with a fresh backend connection
        const int bfd = connectTo(addr_);
        if (bfd < 0) {
            close(fd);
            continue;
        }
        Conn* a = add(fd, Role::RelayConn, EPOLLIN);
        Conn* b = add(bfd, Role::RelayConn, EPOLLOUT);
        if (g_opt.splice) {
            for (Conn* c : {a, b}) {
                int p[2];
                if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) die("pipe2");
                fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(kRelayWindow));
                c->pipeR = p[0];
                c->pipeW = p[1];
            }
        }
        b->st = St::Connecting;
        a->st = St::Open;
        a->peer = b;
        b->peer = a;
    }
}

void Loop::onServer(Conn* c, uint32_t ev) {
    if (ev & EPOLLOUT) {
        flush(c);
        if (c->fd < 0) return;
    }
    if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    const bool alive = readInto(c);
    if (c->st == St::Handshake) serverHttp(c);
    if (c->fd >= 0 && c->st == St::Open) serverFrames(c);
    if (c->fd < 0) return;
    if (!alive) {
        closeConn(c);
        return;
    }
    flush(c);
}

void Loop::serverHttp(Conn* c) {
    static const char kOk[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
    while (c->st == St::Handshake && !c->closeAfterFlush) {
        const std::string_view data(reinterpret_cast<const char*>(c->in.head()), c->in.size());
        const size_t end = data.find("\r\n\r\n");
        if (end == std::string_view::npos) {
            if (data.size() > kMaxHead) closeConn(c);
            return;
        }
        const std::string_view head = data.substr(0, end + 2);
        const std::string key = headerValue(head, "Sec-WebSocket-Key");
        const bool upgrade = containsTokenCI(headerValue(head, "Upgrade"), "websocket");
        size_t bodyLen = 0;
        const std::string cl = headerValue(head, "Content-Length");
        if (!cl.empty()) bodyLen = std::strtoull(cl.c_str(), nullptr, 10);
        if (data.size() < end + 4 + bodyLen) return;  // body still coming
        c->in.consume(end + 4 + bodyLen);
        if (upgrade && !key.empty()) {
            const std::string resp =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " +
                acceptFor(key) + "\r\n\r\n";
            c->out.append(resp.data(), resp.size());
            c->st = St::Open;
        } else if (head.starts_with("GET /__bench_status ")) {
            const std::string body = "accepts " + std::to_string(g_accepted) + "\n";
            const std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                                     std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
            c->out.append(resp.data(), resp.size());
            c->closeAfterFlush = true;
            return;
        } else {
            c->out.append(kOk, sizeof kOk - 1);
            if (containsTokenCI(headerValue(head, "Connection"), "close")) {
                c->closeAfterFlush = true;
                return;
            }
        }
    }
}

// Echoes every complete frame, unmasked (RFC 6455 5.1: a server never masks). A close is
// answered with the same payload and the TCP connection closed once it is written (7.1.1).
void Loop::serverFrames(Conn* c) {
    while (!c->closeAfterFlush) {
        FrameHead h;
        const int r = parseHead(c->in.head(), c->in.size(), h);
        if (r < 0) {
            closeConn(c);
            return;
        }
        if (r == 0 || c->in.size() < h.headLen + h.len) {
            if (r == 1 && h.headLen + h.len > kMaxBuffer) closeConn(c);
            return;
        }
        const uint8_t* p = c->in.head() + h.headLen;
        const size_t n = static_cast<size_t>(h.len);
        // ping: pong with the same payload; a pong from the client needs no answer
        const uint8_t opcode = h.opcode == 0x9 ? 0xA : h.opcode;
        if (h.opcode != 0xA) {
            uint8_t hdr[14];
            const size_t hl = writeHead(hdr, opcode, n, nullptr);
            if (!h.fin) hdr[0] &= 0x7f;  // keep the client's fragmentation
            if (!c->out.reserve(hl + n)) {
                closeConn(c);
                return;
            }
            std::memcpy(c->out.tail(), hdr, hl);
            if (h.masked)
                maskCopy(c->out.tail() + hl, p, n, h.mask);
            else
                std::memcpy(c->out.tail() + hl, p, n);
            c->out.commit(hl + n);
        }
        c->in.consume(h.headLen + n);
        if (h.opcode == 0x8) c->closeAfterFlush = true;
    }
}

// Moves what `from` has to read into its peer's output, bounded by kRelayWindow: read into the
// peer's output queue (one copy in, one copy out), or with --splice into the peer's pipe (the
// kernel moves the pages; no copy through user space).
void Loop::relayMove(Conn* from) {
    Conn* to = from->peer;
    if (to == nullptr) {
        closeConn(from);
        return;
    }
    if (relayPending(to) < kRelayWindow) {
        if (g_opt.splice) {
            const ssize_t n = splice(from->fd, nullptr, to->pipeW, nullptr, kRelayWindow - to->piped,
                                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) to->piped += static_cast<size_t>(n);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR)) from->rdEof = true;
        } else {
            if (to->out.cap == 0) to->out.adopt(poolGet(), kRelayWindow);
            std::swap(from->in, to->out);
            const bool alive = readInto(from, kRelayWindow - from->in.size());
            std::swap(from->in, to->out);
            if (!alive) from->rdEof = true;
        }
        if (to->st != St::Connecting) relayFlush(to);
        if (to->fd < 0) return;
    }
    if (from->rdEof && relayPending(to) == 0 && !to->shutWrPending) {
        to->shutWrPending = true;
        if (to->st != St::Connecting) shutdown(to->fd, SHUT_WR);
    }
}

void Loop::relayFlush(Conn* c) {
    if (!g_opt.splice) {
        flush(c);
        return;
    }
    while (c->piped > 0) {
        const ssize_t n = splice(c->pipeR, nullptr, c->fd, nullptr, c->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            c->piped -= static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        closeConn(c);
        return;
    }
    setEvents(c, c->piped ? (c->events | EPOLLOUT) : (c->events & ~static_cast<uint32_t>(EPOLLOUT)));
}

void Loop::relayUpdate(Conn* c) {
    if (c->fd < 0) return;
    Conn* p = c->peer;
    if (p == nullptr || p->fd < 0) {
        closeConn(c);
        return;
    }
    if (c->rdEof && p->rdEof && relayPending(c) == 0 && relayPending(p) == 0) {
        closeConn(c);
        closeConn(p);
        return;
    }
    uint32_t ev = 0;
    if (!c->rdEof && relayPending(p) < kRelayWindow) ev |= EPOLLIN;
    if (c->st == St::Connecting || relayPending(c) > 0) ev |= EPOLLOUT;
    setEvents(c, ev);
}

void Loop::onRelay(Conn* c, uint32_t ev) {
    Conn* p = c->peer;
    if (c->st == St::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            closeConn(c);
            if (p) closeConn(p);
            return;
        }
        c->st = St::Open;
        relayFlush(c);
        if (c->fd >= 0 && c->shutWrPending && relayPending(c) == 0) shutdown(c->fd, SHUT_WR);
    } else if (ev & EPOLLOUT) {
        relayFlush(c);
        if (c->fd >= 0 && c->shutWrPending && relayPending(c) == 0) shutdown(c->fd, SHUT_WR);
    }
    if (c->fd < 0) {
        if (p) closeConn(p);
        return;
    }
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->rdEof) {
        if (ev & EPOLLERR) {
            closeConn(c);
            if (p) closeConn(p);
            return;
        }
        relayMove(c);
    }
    if (p && p->fd < 0) {
        closeConn(c);
        return;
    }
    relayUpdate(c);
    if (p) relayUpdate(p);
}

// ---- clients -----------------------------------------------------------------------------------------

void Loop::openClient(int channel) {
    const int fd = connectTo(addr_);
    if (fd < 0) {
        ++st_.errors;
        ++setupFailed_;
        return;
    }
    Conn* c = add(fd, Role::Client, EPOLLOUT);
    c->startNs = nowNs();
    c->channel = channel;
    ++pending_;
}

void Loop::sendFrame(Conn* c, uint8_t opcode, const uint8_t* payload, size_t n) {
    uint8_t mask[4];
    const uint64_t r = rnd();
    std::memcpy(mask, &r, 4);
    uint8_t hdr[14];
    const size_t hl = writeHead(hdr, opcode, n, mask);
    if (!c->out.reserve(hl + n)) return;
    std::memcpy(c->out.tail(), hdr, hl);
    maskCopy(c->out.tail() + hl, payload, n, mask);
    c->out.commit(hl + n);
}

// One echo message: the template payload with the sequence number in its first 16 bytes as hex
// digits (valid UTF-8, so text frames work too).
void Loop::sendEcho(Conn* c) {
    if (payload_.size() >= 16) {
        static const char kHex[] = "0123456789abcdef";
        uint64_t v = c->sent;
        for (int i = 15; i >= 0; --i, v >>= 4) payload_[static_cast<size_t>(i)] = static_cast<uint8_t>(kHex[v & 15]);
    }
    const uint64_t now = nowNs();
    c->sendNs[c->sent % c->sendNs.size()] = now;
    if (paceIntervalNs_ > 0) c->nextSendNs = std::max(c->nextSendNs + paceIntervalNs_, now);
    ++c->sent;
    sendFrame(c, g_opt.text ? 0x1 : 0x2, payload_.data(), payload_.size());
}

bool Loop::clientHandshake(Conn* c) {
    const std::string_view data(reinterpret_cast<const char*>(c->in.head()), c->in.size());
    const size_t end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) return data.size() <= kMaxHead;
    const std::string_view head = data.substr(0, end + 2);
    const bool ok = head.substr(0, 12) == "HTTP/1.1 101" &&
                    headerValue(head, "Sec-WebSocket-Accept") == c->expectAccept;
    if (!ok) {
        std::fprintf(stderr, "ws_load: upgrade refused: %.*s\n",
                     static_cast<int>(std::min<size_t>(head.find("\r\n"), 200)), head.data());
        return false;
    }
    c->in.consume(end + 4);
    c->st = St::Open;
    clientOpen(c);
    return true;
}

void Loop::clientOpen(Conn* c) {
    --pending_;
    ++open_;
    switch (g_opt.mode) {
    case Mode::Echo:
        c->sendNs.assign(static_cast<size_t>(g_opt.inflight), 0);
        break;  // messages start at GO
    case Mode::Idle:
        if (g_opt.idlePing) {
            c->sendNs.assign(1, 0);
            sendEcho(c);
        } else {
            c->pinged = true;
        }
        break;
    case Mode::Upgrades: {
        const uint8_t code[2] = {0x03, 0xe8};  // 1000
        sendFrame(c, 0x8, code, 2);
        c->sentClose = true;
        c->st = St::Closing;
        break;
    }
    default:
        break;
    }
}

// A whole message arrived (its first bytes are in c->first).
void Loop::clientMessage(Conn* c) {
    const uint64_t now = nowNs();
    switch (g_opt.mode) {
    case Mode::Echo:
    case Mode::Idle: {
        if (c->recvd >= c->sent) {
            ++st_.errors;  // an echo nobody asked for
            return;
        }
        // the echo must carry our sequence number back
        if (payload_.size() >= 16) {
            char expect[16];
            static const char kHex[] = "0123456789abcdef";
            uint64_t v = c->recvd;
            for (int i = 15; i >= 0; --i, v >>= 4) expect[i] = kHex[v & 15];
            if (c->firstLen < 16 || std::memcmp(c->first, expect, 16) != 0) ++st_.errors;
        }
        const uint64_t lat = now - c->sendNs[c->recvd % c->sendNs.size()];
        ++c->recvd;
        if (g_opt.mode == Mode::Idle) {
            c->pinged = true;  // its one round trip is done: from now on it idles
            return;
        }
        if (phase_ == Phase::Running) {
            ++st_.ops;
            st_.bytes += c->framePos;
            st_.latNs.push_back(static_cast<uint32_t>(std::min<uint64_t>(lat, UINT32_MAX)));
        }
        if (phase_ == Phase::Running || phase_ == Phase::Draining) ++st_.opsTotal;
        if (phase_ == Phase::Running) {
            if (g_opt.rate > 0)
                paced_.push_back(c);  // sent by tick() at its slot
            else
                sendEcho(c);
        }
        return;
    }
    case Mode::PubSub: {
        ++st_.delivered;
        st_.lastProgressNs = now;
        if (phase_ == Phase::Running || phase_ == Phase::Draining) ++st_.opsTotal;
        if (phase_ != Phase::Running) return;
        ++st_.ops;
        st_.bytes += c->framePos;
        if (c->frameCompressed) {
            ++st_.compressed;  // its "T=" is compressed: no latency sample
            return;
        }
        // the publisher put "T=<ns>" in the body; a wrapper (JSON) may come before it
        const std::string_view s(reinterpret_cast<const char*>(c->first), c->firstLen);
        const size_t t = s.find("T=");
        if (t != std::string_view::npos) {
            uint64_t sentAt = 0;
            for (size_t i = t + 2; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
                sentAt = sentAt * 10 + static_cast<uint64_t>(s[i] - '0');
            if (sentAt > 0 && sentAt <= now)
                st_.latNs.push_back(static_cast<uint32_t>(std::min<uint64_t>(now - sentAt, UINT32_MAX)));
        }
        return;
    }
    default:
        return;
    }
}

// Consumes frames as they arrive, payloads streamed (never buffered whole), so 64 KiB messages
// cost no more memory than small ones.
void Loop::clientFrames(Conn* c) {
    for (;;) {
        if (c->payloadLeft > 0) {
            const size_t n = static_cast<size_t>(std::min<uint64_t>(c->payloadLeft, c->in.size()));
            if (n == 0) return;
            if (c->firstLen < sizeof c->first) {
                const size_t k = std::min(n, sizeof c->first - c->firstLen);
                std::memcpy(c->first + c->firstLen, c->in.head(), k);
                c->firstLen += k;
            }
            c->in.consume(n);
            c->payloadLeft -= n;
            c->framePos += n;
            if (c->payloadLeft == 0 && c->frameFin) clientMessage(c);
            continue;
        }
        FrameHead h;
        const int r = parseHead(c->in.head(), c->in.size(), h, g_opt.deflate ? 0x40 : 0);
        if (r == 0) return;
        if (r < 0 || h.masked) {  // RFC 6455 5.1: a server must not mask
            ++st_.errors;
            closeConn(c);
            clientEnded(c, false);
            return;
        }
        if (h.opcode >= 0x8) {  // control: small, handled whole
            if (c->in.size() < h.headLen + h.len) return;
            const uint8_t* p = c->in.head() + h.headLen;
            const size_t n = static_cast<size_t>(h.len);
            if (h.opcode == 0x9) {
                sendFrame(c, 0xA, p, n);
            } else if (h.opcode == 0x8) {
                c->gotClose = true;
                if (!c->sentClose) {
                    sendFrame(c, 0x8, p, std::min<size_t>(n, 2));
                    c->sentClose = true;
                }
                c->st = St::Closing;
            }
            c->in.consume(h.headLen + n);
            continue;
        }
        c->in.consume(h.headLen);
        if (h.opcode != 0) {  // a new message
            c->firstLen = 0;
            c->framePos = 0;
            c->frameCompressed = h.rsv1;
        }
        c->frameFin = h.fin;
        c->payloadLeft = h.len;
        if (h.len == 0 && h.fin) clientMessage(c);
    }
}

// A client connection is gone (already closed). clean: the close handshake completed.
void Loop::clientEnded(Conn* c, bool clean) {
    if (c->st == St::Connecting || c->st == St::Handshake) {
        --pending_;
        ++setupFailed_;
        ++st_.errors;
        if (phase_ == Phase::Setup) return;
    } else {
        --open_;
    }
    if (g_opt.mode == Mode::Upgrades) {
        if (clean && c->st == St::Closing) {
            if (phase_ == Phase::Running) {
                ++st_.ops;
                st_.latNs.push_back(
                    static_cast<uint32_t>(std::min<uint64_t>(nowNs() - c->startNs, UINT32_MAX)));
            }
            if (phase_ == Phase::Running || phase_ == Phase::Draining) ++st_.opsTotal;
        } else {
            ++st_.errors;
        }
        if (phase_ == Phase::Running) openClient(0);
        return;
    }
    if (phase_ != Phase::Done) {
        ++st_.errors;  // echo/idle/pubsub connections should live until the end
        if (phase_ == Phase::Setup || phase_ == Phase::Ready)
            std::fprintf(stderr, "ws_load: a connection closed during setup\n");
    }
}

void Loop::onClient(Conn* c, uint32_t ev) {
    if (c->st == St::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (ev & EPOLLERR)) {
            if (phase_ == Phase::Setup)
                std::fprintf(stderr, "ws_load: connect: %s\n", std::strerror(err));
            closeConn(c);
            clientEnded(c, false);
            return;
        }
        uint8_t nonce[16];
        const uint64_t a = rnd(), b = rnd();
        std::memcpy(nonce, &a, 8);
        std::memcpy(nonce + 8, &b, 8);
        const std::string key = base64(nonce, 16);
        c->expectAccept = acceptFor(key);
        std::string path = g_opt.mode == Mode::PubSub
                               ? g_opt.subPath + "c" + std::to_string(c->channel)
                               : g_opt.path;
        const std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + g_opt.host + ":" +
                                std::to_string(g_opt.port) +
                                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: " +
                                key + "\r\nSec-WebSocket-Version: 13\r\n" +
                                (g_opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "") + "\r\n";
        c->out.append(req.data(), req.size());
        c->st = St::Handshake;
        setEvents(c, EPOLLIN);
        flush(c);
        return;
    }
    if (ev & EPOLLOUT) {
        flush(c);
        if (c->fd < 0) {
            clientEnded(c, false);
            return;
        }
    }
    if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    const bool alive = readInto(c);
    if (c->st == St::Handshake && !clientHandshake(c)) {
        closeConn(c);
        clientEnded(c, false);
        return;
    }
    if (c->st == St::Open || c->st == St::Closing) clientFrames(c);
    if (c->fd < 0) return;
    if (!alive) {
        const bool clean = c->gotClose && c->sentClose;
        closeConn(c);
        clientEnded(c, clean);
        return;
    }
    flush(c);
    if (c->fd < 0) clientEnded(c, false);
}

// ---- publishers (pubsub mode): HTTP/1.1 keep-alive POSTs ---------------------------------------------

void Loop::openPublisher() {
    sockaddr_in to = addr_;
    if (g_opt.pubPort) to.sin_port = htons(static_cast<uint16_t>(g_opt.pubPort));
    const int fd = connectTo(to);
    if (fd < 0) die("publisher connect");
    Conn* c = add(fd, Role::Publisher, EPOLLOUT);
    c->st = St::Connecting;
    publishers_.push_back(c);
}

void Loop::publish(Conn* c) {
    const int ch = nextChannel_;
    nextChannel_ = (nextChannel_ + 1) % g_opt.channels;
    std::string body = "T=" + std::to_string(nowNs()) + " S=" + std::to_string(st_.publishedTotal) + " ";
    if (g_opt.deflate) {
        static const char* const kWords[] = {"price ", "update ", "symbol ", "order ", "trade ", "42.17 ", "bid ",
                                             "ask ", "volume ", "1093 ", "room ", "user ", "said ", "hello ", "ok ", "eur "};
        uint64_t x = st_.publishedTotal * 6364136223846793005ULL + 1442695040888963407ULL;
        while (body.size() < g_opt.size) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            body += kWords[x >> 60];
        }
        body.resize(std::max<size_t>(g_opt.size, 1));
    } else if (body.size() < g_opt.size) {
        body.append(g_opt.size - body.size(), 'x');
    }
    std::string req = "POST " + g_opt.pubPath + "c" + std::to_string(ch) +
                      " HTTP/1.1\r\nHost: " + g_opt.host + "\r\nContent-Type: text/plain\r\n";
    if (!g_opt.token.empty()) req += "Authorization: Bearer " + g_opt.token + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    c->out.append(req.data(), req.size());
    c->busy = true;
    c->pendingFan = subsPerChannel_[static_cast<size_t>(ch)];
    st_.expected += c->pendingFan;
    ++st_.publishedTotal;
    if (phase_ == Phase::Running) ++st_.published;
    flush(c);
}

void Loop::pumpPublishers() {
    if (phase_ != Phase::Running) return;
    const int64_t maxFan = *std::max_element(subsPerChannel_.begin(), subsPerChannel_.end());
    const int64_t window = g_opt.window > 0 ? g_opt.window : 4 * maxFan;
    for (Conn* p : publishers_) {
        if (p->fd < 0 || p->busy || p->lastRequest || p->st != St::Open) continue;
        if (st_.expected - st_.delivered + maxFan > window) return;
        publish(p);
    }
}

void Loop::publisherResponse(Conn* c) {
    for (;;) {
        const std::string_view data(reinterpret_cast<const char*>(c->in.head()), c->in.size());
        const size_t end = data.find("\r\n\r\n");
        if (end == std::string_view::npos) return;
        const std::string_view head = data.substr(0, end + 2);
        size_t total = end + 4;
        const std::string cl = headerValue(head, "Content-Length");
        if (!cl.empty()) {
            total += std::strtoull(cl.c_str(), nullptr, 10);
        } else if (containsTokenCI(headerValue(head, "Transfer-Encoding"), "chunked")) {
            const size_t z = data.find("\r\n0\r\n\r\n", end);
            const size_t z0 = data.substr(end + 4, 5) == "0\r\n\r\n" ? end + 4 : std::string_view::npos;
            if (z0 != std::string_view::npos) {
                total = z0 + 5;
            } else if (z != std::string_view::npos) {
                total = z + 7;
            } else {
                return;
            }
        }
        if (data.size() < total) return;
        const int status = head.size() > 12 ? std::atoi(std::string(head.substr(9, 3)).c_str()) : 0;
        if (status < 200 || status >= 300) {
            ++st_.pubErrors;
            if (st_.pubErrors <= 3)
                std::fprintf(stderr, "ws_load: publish answered %.*s\n",
                             static_cast<int>(std::min<size_t>(total, 300)), data.data());
        }
        if (containsTokenCI(headerValue(head, "Connection"), "close")) c->lastRequest = true;
        c->in.consume(total);
        c->busy = false;
    }
}

void Loop::onPublisher(Conn* c, uint32_t ev) {
    if (c->st == St::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            errno = err;
            die("publisher connect");
        }
        c->st = St::Open;
        setEvents(c, EPOLLIN);
        return;
    }
    if (ev & EPOLLOUT) flush(c);
    if (c->fd < 0) return;
    if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    const bool alive = readInto(c);
    publisherResponse(c);
    if (!alive) {
        // the server closed the keep-alive connection: open another one
        for (auto& p : publishers_)
            if (p == c) p = nullptr;
        publishers_.erase(std::remove(publishers_.begin(), publishers_.end(), nullptr), publishers_.end());
        if (c->busy) {  // the message was not published: expect nothing from it
            ++st_.pubErrors;
            st_.expected -= c->pendingFan;
        }
        closeConn(c);
        openPublisher();
    }
}

// ---- stdin control and phases -------------------------------------------------------------------------

void Loop::onStdin() {
    char buf[256];
    const ssize_t n = read(0, buf, sizeof buf);
    if (n <= 0) {
        stdinOpen_ = false;
        epoll_ctl(ep_, EPOLL_CTL_DEL, 0, nullptr);
        if (phase_ == Phase::Setup)
            std::fprintf(stderr, "ws_load: stdin closed during setup (%d open, %d connecting, %d to go)\n",
                         open_, pending_, toOpen_);
        if (phase_ == Phase::Done || phase_ == Phase::Ready || phase_ == Phase::Setup) exit_ = true;
        if (g_opt.mode == Mode::Idle && phase_ == Phase::Running) finish();
        return;
    }
    if (std::string_view(buf, static_cast<size_t>(n)).find("GO") != std::string_view::npos &&
        phase_ == Phase::Ready)
        start();
}

void Loop::start() {
    phase_ = Phase::Running;
    cpu0_ = cpuSelfSeconds();
    t0_ = nowNs();
    st_.lastProgressNs = t0_;
    switch (g_opt.mode) {
    case Mode::Echo:
        if (g_opt.rate > 0) {
            // spread the connections' first slots evenly over one interval
            paceIntervalNs_ = static_cast<uint64_t>(1e9 * g_opt.connections / g_opt.rate);
            uint64_t k = 0;
            for (auto& c : conns_)
                if (c->role == Role::Client && c->st == St::Open) {
                    c->nextSendNs = t0_ + paceIntervalNs_ * k++ / static_cast<uint64_t>(g_opt.connections) -
                                    paceIntervalNs_;
                    paced_.push_back(c.get());
                }
            pace(t0_);
            break;
        }
        for (auto& c : conns_)
            if (c->role == Role::Client && c->st == St::Open)
                for (int i = 0; i < g_opt.inflight; ++i) {
                    sendEcho(c.get());
                }
        for (size_t i = 0; i < conns_.size(); ++i)
            if (conns_[i]->role == Role::Client) flush(conns_[i].get());
        break;
    case Mode::Upgrades:
        for (int i = 0; i < g_opt.connections; ++i) openClient(0);
        break;
    case Mode::Idle:
        finish();  // the hold is the caller's business: GO just ends it
        break;
    case Mode::PubSub:
        pumpPublishers();
        break;
    default:
        break;
    }
}

bool Loop::outstanding() const {
    switch (g_opt.mode) {
    case Mode::Echo:
        for (const auto& c : conns_)
            if (c->role == Role::Client && c->recvd < c->sent) return true;
        return false;
    case Mode::Upgrades:
        return open_ + pending_ > 0;
    case Mode::PubSub:
        return st_.expected > st_.delivered;
    default:
        return false;
    }
}

void Loop::stopRunning() {
    tEnd_ = nowNs();
    phase_ = Phase::Draining;
    drainUntil_ = tEnd_ + static_cast<uint64_t>(g_opt.drain * 1e9);
}

void Loop::finish() {
    if (phase_ == Phase::Done) return;
    if (tEnd_ == 0) tEnd_ = nowNs();
    cpuEnd_ = cpuSelfSeconds();
    phase_ = Phase::Done;
    printResult();
    if (!g_opt.goStdin || !stdinOpen_) exit_ = true;
}

void Loop::printResult() {
    const double secs = t0_ ? static_cast<double>(tEnd_ - t0_) / 1e9 : 0;
    auto pct = [&](double q) -> double {
        if (st_.latNs.empty()) return 0;
        size_t k = static_cast<size_t>(q * static_cast<double>(st_.latNs.size() - 1));
        std::nth_element(st_.latNs.begin(), st_.latNs.begin() + static_cast<long>(k), st_.latNs.end());
        return st_.latNs[k] / 1000.0;
    };
    const double p50 = pct(0.50), p90 = pct(0.90), p99 = pct(0.99), p999 = pct(0.999);
    double maxUs = 0;
    for (uint32_t v : st_.latNs) maxUs = std::max(maxUs, v / 1000.0);
    const char* mode = "";
    switch (g_opt.mode) {
    case Mode::Echo: mode = "echo"; break;
    case Mode::Idle: mode = "idle"; break;
    case Mode::Upgrades: mode = "upgrades"; break;
    case Mode::PubSub: mode = "pubsub"; break;
    default: break;
    }
    std::printf(
        "RESULT {\"mode\":\"%s\",\"connections\":%d,\"open\":%d,\"size\":%zu,\"seconds\":%.6f,"
        "\"ops\":%" PRIu64 ",\"ops_total\":%" PRIu64 ",\"ops_per_s\":%.1f,\"mb_per_s\":%.2f,"
        "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
        "\"errors\":%" PRIu64 ",\"published\":%" PRIu64 ",\"published_total\":%" PRIu64
        ",\"publish_errors\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"undelivered\":%" PRId64
        ",\"client_cpu_s\":%.3f,\"payload_bytes\":%" PRIu64 ",\"compressed\":%" PRIu64 "}\n",
        mode, g_opt.connections, open_, g_opt.size, secs, st_.ops, st_.opsTotal,
        secs > 0 ? static_cast<double>(st_.ops) / secs : 0.0,
        secs > 0 ? static_cast<double>(st_.bytes) / secs / 1e6 : 0.0, p50, p90, p99, p999, maxUs,
        st_.errors, st_.published, st_.publishedTotal, st_.pubErrors, st_.lost,
        std::max<int64_t>(0, st_.expected - st_.delivered), cpuEnd_ - cpu0_, st_.bytes, st_.compressed);
    std::fflush(stdout);
}

void Loop::pace(uint64_t now) {
    size_t keep = 0;
    for (Conn* c : paced_) {
        if (c->fd < 0) continue;
        if (c->nextSendNs <= now) {
            sendEcho(c);
            flush(c);
        } else {
            paced_[keep++] = c;
        }
    }
    paced_.resize(keep);
}

void Loop::tick() {
    const uint64_t now = nowNs();
    if (phase_ == Phase::Setup) {
        while (toOpen_ > 0 && pending_ < g_opt.setupConcurrency) {
            const int i = g_opt.connections - toOpen_;
            --toOpen_;
            openClient(g_opt.mode == Mode::PubSub ? i % g_opt.channels : 0);
        }
        bool ready = toOpen_ == 0 && pending_ == 0;
        if (ready && g_opt.mode == Mode::Idle)
            for (const auto& c : conns_)
                if (c->role == Role::Client && !c->pinged) ready = false;
        if (ready && g_opt.mode == Mode::PubSub)
            for (Conn* p : publishers_)
                if (p->st != St::Open) ready = false;
        if (ready) {
            std::printf("READY {\"open\":%d,\"failed\":%d,\"errors\":%" PRIu64 ",\"setup_s\":%.3f}\n",
                        open_, setupFailed_, st_.errors, static_cast<double>(now - setupStart_) / 1e9);
            std::fflush(stdout);
            if (setupFailed_ > 0 && g_opt.mode != Mode::Idle) {
                std::fprintf(stderr, "ws_load: %d connections failed during setup\n", setupFailed_);
                exitCode_ = 1;
                exit_ = true;
                return;
            }
            phase_ = Phase::Ready;
            if (!g_opt.goStdin) start();
        }
        return;
    }
    if (phase_ == Phase::Running) {
        if (g_opt.mode == Mode::PubSub) {
            // a delivery that never comes (dropped by the server) must not stall the publisher
            if (st_.expected > st_.delivered && now - st_.lastProgressNs > 1000000000ull) {
                st_.lost += static_cast<uint64_t>(st_.expected - st_.delivered);
                st_.expected = st_.delivered;
                st_.lastProgressNs = now;
            }
            pumpPublishers();
        }
        if (!paced_.empty()) pace(now);
        if (now - t0_ >= static_cast<uint64_t>(g_opt.duration * 1e9)) stopRunning();
    }
    if (phase_ == Phase::Draining) {
        if (!outstanding() || now >= drainUntil_) finish();
    }
}

void Loop::onEvent(Conn* c, uint32_t ev) {
    switch (c->role) {
    case Role::Listener: onAccept(c); break;
    case Role::Stdin: onStdin(); break;
    case Role::ServerConn: onServer(c, ev); break;
    case Role::RelayConn: onRelay(c, ev); break;
    case Role::Client: onClient(c, ev); break;
    case Role::Publisher: onPublisher(c, ev); break;
    }
}

int Loop::run() {
    switch (g_opt.mode) {
    case Mode::Server:
        listenOn(g_opt.listen);
        break;
    case Mode::Relay:
        addr_ = inetAddr(g_opt.to);
        listenOn(g_opt.listen);
        break;
    default:
        addr_ = inetAddr(g_opt.port);
        if (g_opt.goStdin) {
            Conn* s = add(0, Role::Stdin, EPOLLIN);
            (void)s;
            stdinOpen_ = true;
        }
        payload_.resize(g_opt.size);
        for (size_t i = 0; i < payload_.size(); ++i) payload_[i] = static_cast<uint8_t>('a' + i % 26);
        if (g_opt.mode == Mode::Upgrades) {
            toOpen_ = 0;  // connections open at GO
        } else {
            toOpen_ = g_opt.connections;
        }
        if (g_opt.mode == Mode::PubSub) {
            subsPerChannel_.assign(static_cast<size_t>(g_opt.channels), 0);
            for (int i = 0; i < g_opt.connections; ++i) ++subsPerChannel_[static_cast<size_t>(i % g_opt.channels)];
            for (int i = 0; i < g_opt.publishers; ++i) openPublisher();
        }
        st_.latNs.reserve(1u << 20);
        break;
    }
    std::vector<epoll_event> evs(1024);
    while (!exit_) {
        int timeout = 50;
        if (phase_ == Phase::Running) {
            const uint64_t end = t0_ + static_cast<uint64_t>(g_opt.duration * 1e9);
            const uint64_t now = nowNs();
            timeout = now >= end ? 0 : static_cast<int>(std::min<uint64_t>(50, (end - now) / 1000000 + 1));
            if (!paced_.empty()) timeout = std::min(timeout, 1);
        } else if (phase_ == Phase::Setup || phase_ == Phase::Draining) {
            timeout = 5;
        }
        const int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            Conn* c = static_cast<Conn*>(evs[static_cast<size_t>(i)].data.ptr);
            if (c->fd < 0 && c->role != Role::Stdin) continue;  // closed earlier in this batch
            onEvent(c, evs[static_cast<size_t>(i)].events);
        }
        dead_.clear();
        if (g_opt.mode != Mode::Server && g_opt.mode != Mode::Relay) tick();
        dead_.clear();
    }
    return exitCode_;
}

// ---- the io_uring relay (relay --uring) -----------------------------------------------------------
//
// The bare relay above (accept, connect the backend, move bytes both ways, half-close, close),
// built the way an io_uring server is, to measure whether io_uring lowers the floor that a
// read/write + epoll proxy has (bench/RESULTS.md, "io_uring relay floor"):
// - one ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: completions are run in
//   this thread inside io_uring_enter, not in an interrupt's task work; the ring's fd is
//   registered (no fdget per io_uring_enter). Only the half-close leaves the thread: the kernel
//   always hands IORING_OP_SHUTDOWN to an io-wq worker (see maybeShutdown); those iou-wrk
//   threads belong to this process, so /proc/PID/stat counts their CPU;
// - every socket is a direct descriptor (registered file table, no fd in the process's table):
//   a multishot accept allocates the client's, the backend's is picked here and created by
//   IORING_OP_SOCKET, TCP_NODELAY set by IORING_OP_URING_CMD and the connect issued, linked;
// - a multishot recv per socket takes its buffers from one provided-buffer ring shared by all
//   connections (kBufCount x kBufSize); a received buffer is sent as is to the peer socket and
//   handed back to the ring when the send completed: no copy through user space other than the
//   kernel's, no per-connection buffer;
// - one send in flight per socket (the next buffer goes when it completes, as h2o does), so the
//   bytes stay in order; a direction with kRelayWindow bytes queued cancels its recv (re-armed
//   when it drains), the bound the epoll relay has;
// - one io_uring_enter per loop iteration (io_uring_submit_and_wait) submits everything the
//   completions of the previous one asked for and waits for the next.
#ifdef WS_LOAD_HAVE_URING

constexpr unsigned kRingEntries = 4096;  // submission queue; the completion queue is 4x
constexpr unsigned kBufCount = 1024;     // provided buffers, shared by all connections...
constexpr unsigned kBufSize = 16u << 10; // ... of 16 KiB each (16 MiB in all)
constexpr uint16_t kBufGroup = 0;
constexpr uint32_t kSocketUringOpSetsockopt = 3;  // SOCKET_URING_OP_SETSOCKOPT (kernel 6.7+)

class UringRelay {
public:
    UringRelay();
    int run();

private:
    // What a completion is for: the low bits of its user_data (a Side is 8-byte aligned).
    enum Op : uint64_t { kAccept, kRecv, kSend, kConnect, kShutdown, kAux };
    static constexpr uint64_t kOpMask = 7;
    // kAux: requests that post nothing on success (IOSQE_CQE_SKIP_SUCCESS) and name no pair;
    // what they were goes above kOpMask, for the message when one fails.
    enum class Aux : uint64_t { Socket, NoDelay, Cancel, Close };
    static constexpr const char* kAuxNames[] = {"socket", "setsockopt", "cancel", "close"};
    static void setAux(io_uring_sqe* e, Aux what) {
        e->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(e, kAux | static_cast<uint64_t>(what) << 3);
    }

    struct Pair;
    struct Chunk {  // a provided buffer on its way to a socket
        uint16_t bid;
        uint32_t len, off;
    };
    struct Side {  // one socket of a relayed pair
        Pair* pair = nullptr;
        Side* peer = nullptr;
        int slot = -1;              // its direct descriptor
        bool open = false;          // connected (the client's from accept on)
        bool recvArmed = false;     // a multishot recv is pending
        bool cancelling = false;    // ... and was asked to stop (backpressure)
        bool starved = false;       // it stopped for want of buffers (-ENOBUFS)
        bool rdEof = false;
        bool sending = false;       // out.front() is being sent
        bool shutWr = false;
        bool shutPending = false;   // its shutdown has not completed (close waits for it)
        size_t queued = 0;          // bytes in out
        std::deque<Chunk> out;      // what the peer received, to send on this socket, in order
    };
    struct Pair {
        Side side[2];               // [0] the client's socket, [1] the backend's
        size_t index = 0;           // in pairs_
        int inflight = 0;           // requests whose completion names one of its sides
        bool closing = false;
    };

    io_uring_sqe* sqe();
    static uint64_t tag(Side* s, Op op) { return reinterpret_cast<uintptr_t>(s) | op; }
    uint8_t* buffer(uint16_t bid) { return bufs_.get() + static_cast<size_t>(bid) * kBufSize; }
    void recycle(uint16_t bid);

    void armAccept();
    void onAccept(int res, uint32_t flags);
    void prepNoDelay(io_uring_sqe* e, int slot);
    void armRecv(Side& s);
    void onRecv(Side& s, int res, uint32_t flags);
    void onSend(Side& s, int res);
    void onConnect(Side& s, int res);
    void onShutdown(Side& s, int res);
    void closeSlot(Side& s);
    void onAux(uint64_t data, int res);
    void sendNext(Side& s);
    void maybeRearm(Side& s);
    void maybeShutdown(Side& s);
    void dropQueue(Side& s);
    void close(Pair& p);
    void maybeFree(Pair& p);

    io_uring ring_{};
    int listener_ = -1;
    sockaddr_in backend_{};
    std::unique_ptr<uint8_t[]> bufs_;
    std::unique_ptr<io_uring_buf_ring, decltype(&std::free)> bufRingOwner_{nullptr, &std::free};
    io_uring_buf_ring* bufRing_ = nullptr;  // = bufRingOwner_.get()
    unsigned recycled_ = 0;        // buffers added to bufRing_ since its tail was last published
    std::vector<int> freeSlots_;   // backend slots (the upper half of the file table)
    std::vector<std::unique_ptr<Pair>> pairs_;
    std::vector<Side*> starved_;
    uint64_t auxErrors_ = 0;
};

UringRelay::UringRelay() {
    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    params.cq_entries = kRingEntries * 4;
    if (const int r = io_uring_queue_init_params(kRingEntries, &ring_, &params); r < 0) {
        errno = -r;
        die("io_uring_queue_init_params");
    }
    if (io_uring_register_ring_fd(&ring_) < 0) std::fprintf(stderr, "ws_load: ring fd not registered\n");

    // The direct-descriptor table: the lower half for accepted sockets (the kernel picks),
    // the upper half for backend sockets (picked here, so a socket/setsockopt/connect link can
    // name its slot before the socket exists). Bounded by RLIMIT_NOFILE, like any fd table.
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    const unsigned slots = static_cast<unsigned>(std::min<rlim_t>(rl.rlim_cur, 65536)) & ~1u;
    if (int r = io_uring_register_files_sparse(&ring_, slots); r < 0) {
        errno = -r;
        die("io_uring_register_files_sparse");
    }
    io_uring_register_file_alloc_range(&ring_, 0, slots / 2);
    for (unsigned i = slots; i-- > slots / 2;) freeSlots_.push_back(static_cast<int>(i));

    // The provided-buffer ring: kBufCount entries, page-aligned, registered as group kBufGroup.
    const size_t ringBytes = kBufCount * sizeof(io_uring_buf);
    bufRingOwner_.reset(static_cast<io_uring_buf_ring*>(std::aligned_alloc(4096, ringBytes)));
    bufRing_ = bufRingOwner_.get();
    if (bufRing_ == nullptr) die("aligned_alloc");
    io_uring_buf_ring_init(bufRing_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uintptr_t>(bufRing_);
    reg.ring_entries = kBufCount;
    reg.bgid = kBufGroup;
    if (int r = io_uring_register_buf_ring(&ring_, &reg, 0); r < 0) {
        errno = -r;
        die("io_uring_register_buf_ring");
    }
    bufs_ = std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(kBufCount) * kBufSize);
    for (unsigned i = 0; i < kBufCount; ++i) recycle(static_cast<uint16_t>(i));
    io_uring_buf_ring_advance(bufRing_, static_cast<int>(recycled_));
    recycled_ = 0;

    listener_ = listeningSocket(g_opt.listen);
    backend_ = inetAddr(g_opt.to);
}

// The next free submission entry; submits what is queued when the queue is full.
io_uring_sqe* UringRelay::sqe() {
    for (;;) {
        if (io_uring_sqe* e = io_uring_get_sqe(&ring_)) return e;
        io_uring_submit(&ring_);
    }
}

// Hands a buffer back to the ring; published with the others at the end of the loop iteration.
void UringRelay::recycle(uint16_t bid) {
    io_uring_buf_ring_add(bufRing_, buffer(bid), kBufSize, bid, io_uring_buf_ring_mask(kBufCount),
                          static_cast<int>(recycled_++));
}

void UringRelay::armAccept() {
    io_uring_sqe* e = sqe();
    io_uring_prep_multishot_accept_direct(e, listener_, nullptr, nullptr, 0);
    io_uring_sqe_set_data64(e, kAccept);
}

// IORING_OP_URING_CMD SOCKET_URING_OP_SETSOCKOPT(IPPROTO_TCP, TCP_NODELAY, 1). liburing 2.3 has no
// io_uring_prep_cmd_sock: the fields are those of the kernel's struct io_uring_sqe (level and
// optname share addr, optlen is splice_fd_in, optval is addr3).
void UringRelay::prepNoDelay(io_uring_sqe* e, int slot) {
    static const int kOne = 1;
    io_uring_prep_rw(IORING_OP_URING_CMD, e, slot, nullptr, 0, 0);
    e->flags |= IOSQE_FIXED_FILE;
    e->cmd_op = kSocketUringOpSetsockopt;
    e->addr = static_cast<uint64_t>(IPPROTO_TCP) | static_cast<uint64_t>(TCP_NODELAY) << 32;
    e->splice_fd_in = sizeof kOne;
    e->addr3 = reinterpret_cast<uintptr_t>(&kOne);
    setAux(e, Aux::NoDelay);
}

void UringRelay::onAccept(int res, uint32_t flags) {
    if (!(flags & IORING_CQE_F_MORE)) armAccept();
    if (res < 0) {
        std::fprintf(stderr, "ws_load: accept: %s\n", std::strerror(-res));
        return;
    }
    if (freeSlots_.empty()) {  // no backend slot: refuse the client
        io_uring_sqe* e = sqe();
        io_uring_prep_close_direct(e, static_cast<unsigned>(res));
        setAux(e, Aux::Close);
        return;
    }
    auto owned = std::make_unique<Pair>();
    Pair& p = *owned;
    p.index = pairs_.size();
    pairs_.push_back(std::move(owned));
    Side& client = p.side[0];
    Side& backend = p.side[1];
    client.pair = backend.pair = &p;
    client.peer = &backend;
    backend.peer = &client;
    client.slot = res;
    client.open = true;
    prepNoDelay(sqe(), client.slot);
    armRecv(client);

    backend.slot = freeSlots_.back();
    freeSlots_.pop_back();
    io_uring_sqe* e = sqe();
    io_uring_prep_socket_direct(e, AF_INET, SOCK_STREAM, 0, static_cast<unsigned>(backend.slot), 0);
    e->flags |= IOSQE_IO_LINK;
    setAux(e, Aux::Socket);
    e = sqe();
    prepNoDelay(e, backend.slot);
    e->flags |= IOSQE_IO_LINK;
    e = sqe();
    io_uring_prep_connect(e, backend.slot, reinterpret_cast<const sockaddr*>(&backend_), sizeof backend_);
    e->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(e, tag(&backend, kConnect));
    ++p.inflight;
}

void UringRelay::armRecv(Side& s) {
    io_uring_sqe* e = sqe();
    io_uring_prep_recv_multishot(e, s.slot, nullptr, 0, 0);
    e->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    e->buf_group = kBufGroup;
    io_uring_sqe_set_data64(e, tag(&s, kRecv));
    s.recvArmed = true;
    ++s.pair->inflight;
}

void UringRelay::onRecv(Side& s, int res, uint32_t flags) {
    Pair& p = *s.pair;
    if (!(flags & IORING_CQE_F_MORE)) {
        s.recvArmed = s.cancelling = false;
        --p.inflight;
    }
    if (res > 0) {
        const auto bid = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        if (p.closing) {
            recycle(bid);
        } else {
            Side& to = *s.peer;
            to.out.push_back({bid, static_cast<uint32_t>(res), 0});
            to.queued += static_cast<size_t>(res);
            if (to.open && !to.sending) sendNext(to);
            if (to.queued >= kRelayWindow && s.recvArmed && !s.cancelling) {
                io_uring_sqe* e = sqe();
                io_uring_prep_cancel64(e, tag(&s, kRecv), 0);
                setAux(e, Aux::Cancel);
                s.cancelling = true;
            }
        }
    } else if (res == 0) {
        s.rdEof = true;
        maybeShutdown(*s.peer);
    } else if (res == -ENOBUFS) {
        if (!s.starved) starved_.push_back(&s);
        s.starved = true;
    } else if (res != -ECANCELED) {
        close(p);
    }
    if (!s.recvArmed) maybeRearm(s);
    maybeFree(p);
}

void UringRelay::sendNext(Side& s) {
    const Chunk& c = s.out.front();
    io_uring_sqe* e = sqe();
    io_uring_prep_send(e, s.slot, buffer(c.bid) + c.off, c.len - c.off, MSG_WAITALL);
    e->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(e, tag(&s, kSend));
    s.sending = true;
    ++s.pair->inflight;
}

void UringRelay::onSend(Side& s, int res) {
    Pair& p = *s.pair;
    --p.inflight;
    s.sending = false;
    Chunk& c = s.out.front();
    if (res > 0) {
        c.off += static_cast<uint32_t>(res);
        s.queued -= static_cast<size_t>(res);
    }
    if (c.off == c.len || p.closing || res <= 0) {
        recycle(c.bid);
        s.out.pop_front();
    }
    if (p.closing) {
        dropQueue(s);
    } else if (res <= 0) {
        close(p);
    } else if (!s.out.empty()) {
        sendNext(s);
    } else {
        maybeShutdown(s);
    }
    if (!p.closing) maybeRearm(*s.peer);
    maybeFree(p);
}

void UringRelay::onConnect(Side& s, int res) {
    Pair& p = *s.pair;
    --p.inflight;
    if (p.closing) {
        maybeFree(p);
        return;
    }
    if (res < 0) {
        close(p);
        maybeFree(p);
        return;
    }
    s.open = true;
    armRecv(s);
    if (!s.out.empty()) sendNext(s);
    else maybeShutdown(s);
}

// A request that names no pair failed (its success posts nothing: IOSQE_CQE_SKIP_SUCCESS).
// Expected: a cancel that found nothing, a shutdown of a socket its peer reset already.
void UringRelay::onAux(uint64_t data, int res) {
    if (res == -ENOENT || res == -EALREADY || res == -ENOTCONN || res == -ECANCELED) return;
    if (++auxErrors_ <= 5)
        std::fprintf(stderr, "ws_load: io_uring %s failed: %s\n", kAuxNames[data >> 3], std::strerror(-res));
}

// Re-arms the recv of s when it stopped and its peer has room again.
void UringRelay::maybeRearm(Side& s) {
    if (s.pair->closing || s.rdEof || s.recvArmed || s.starved || !s.open) return;
    if (s.peer->queued < kRelayWindow) armRecv(s);
}

// Half-closes s (SHUT_WR) once its peer has sent EOF and everything before it went out; when the
// other direction is done already, closes the pair instead (close sends the FIN). A shutdown is
// never done inline: IORING_OP_SHUTDOWN is always handed to an io-wq worker thread (the kernel
// marks it REQ_F_FORCE_ASYNC), which resolves the direct descriptor only when it runs, so the
// socket is closed after its completion, not in the same batch.
void UringRelay::maybeShutdown(Side& s) {
    if (!s.peer->rdEof || !s.out.empty() || s.sending || !s.open || s.shutWr) return;
    s.shutWr = true;
    if (s.peer->shutWr) {
        close(*s.pair);
        return;
    }
    io_uring_sqe* e = sqe();
    io_uring_prep_shutdown(e, s.slot, SHUT_WR);
    e->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(e, tag(&s, kShutdown));
    s.shutPending = true;
    ++s.pair->inflight;
}

void UringRelay::onShutdown(Side& s, int res) {
    Pair& p = *s.pair;
    --p.inflight;
    s.shutPending = false;
    if (res < 0 && res != -ENOTCONN && !p.closing) close(p);
    if (p.closing) closeSlot(s);
    maybeFree(p);
}

// Returns the buffers of s to the ring, but the one a send in flight still reads.
void UringRelay::dropQueue(Side& s) {
    const size_t keep = s.sending ? 1 : 0;
    while (s.out.size() > keep) {
        recycle(s.out.back().bid);
        s.out.pop_back();
    }
    s.queued = 0;
}

// The one exit of a pair: cancels what is pending on its sockets and closes them; the Pair
// itself goes once no completion can name it any more (maybeFree).
void UringRelay::close(Pair& p) {
    if (p.closing) return;
    p.closing = true;
    for (Side& s : p.side) {
        dropQueue(s);
        if (s.starved) std::erase(starved_, &s);
        if (!s.shutPending) closeSlot(s);  // else when the shutdown completed (onShutdown)
    }
    freeSlots_.push_back(p.side[1].slot);  // reused by a later socket request: ordered after the close
}

void UringRelay::closeSlot(Side& s) {
    if (s.recvArmed || s.sending || !s.open) {  // something is pending on it
        io_uring_sqe* e = sqe();
        io_uring_prep_cancel_fd(e, s.slot, IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
        setAux(e, Aux::Cancel);
    }
    io_uring_sqe* e = sqe();
    io_uring_prep_close_direct(e, static_cast<unsigned>(s.slot));
    setAux(e, Aux::Close);
}

void UringRelay::maybeFree(Pair& p) {
    if (!p.closing || p.inflight > 0) return;
    const size_t i = p.index;
    if (i + 1 != pairs_.size()) {
        std::swap(pairs_[i], pairs_.back());
        pairs_[i]->index = i;
    }
    pairs_.pop_back();
}

int UringRelay::run() {
    armAccept();
    for (;;) {
        const int r = io_uring_submit_and_wait(&ring_, 1);
        if (r < 0 && r != -EINTR) {
            errno = -r;
            die("io_uring_submit_and_wait");
        }
        unsigned head = 0, seen = 0;
        io_uring_cqe* cqe = nullptr;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            const uint64_t data = cqe->user_data;
            Side* s = reinterpret_cast<Side*>(data & ~kOpMask);
            switch (static_cast<Op>(data & kOpMask)) {
            case kAccept: onAccept(cqe->res, cqe->flags); break;
            case kRecv: onRecv(*s, cqe->res, cqe->flags); break;
            case kSend: onSend(*s, cqe->res); break;
            case kConnect: onConnect(*s, cqe->res); break;
            case kShutdown: onShutdown(*s, cqe->res); break;
            case kAux: onAux(data, cqe->res); break;
            }
        }
        io_uring_cq_advance(&ring_, seen);
        if (recycled_ > 0) {
            io_uring_buf_ring_advance(bufRing_, static_cast<int>(recycled_));
            recycled_ = 0;
            for (Side* s : std::exchange(starved_, {})) {
                s->starved = false;
                maybeRearm(*s);
            }
        }
    }
}

#endif  // WS_LOAD_HAVE_URING

// ---- main ----------------------------------------------------------------------------------------

void usage() {
    std::fprintf(stderr,
                 "usage: ws_load MODE [options]\n"
                 "  modes: server relay echo idle upgrades pubsub\n"
                 "  --host H (127.0.0.1) --port P --path /ws --listen P --to P [--splice | --uring]\n"
                 "  -c N connections/subscribers  -s BYTES message size  -d SECS duration\n"
                 "  --inflight K --rate MSGS_PER_S (echo) --text --go-stdin --setup-concurrency N --no-idle-ping\n"
                 "  --channels C --publishers P --sub-path /live/ --pub-path /live/ --token T\n"
                 "  --window N --drain SECS --deflate\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) usage();
    const std::string_view mode = argv[1];
    if (mode == "server") g_opt.mode = Mode::Server;
    else if (mode == "relay") g_opt.mode = Mode::Relay;
    else if (mode == "echo") g_opt.mode = Mode::Echo;
    else if (mode == "idle") g_opt.mode = Mode::Idle;
    else if (mode == "upgrades") g_opt.mode = Mode::Upgrades;
    else if (mode == "pubsub") g_opt.mode = Mode::PubSub;
    else usage();
    for (int i = 2; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--host") g_opt.host = next();
        else if (a == "--port") g_opt.port = std::atoi(next());
        else if (a == "--path") g_opt.path = next();
        else if (a == "--listen") g_opt.listen = std::atoi(next());
        else if (a == "--to") g_opt.to = std::atoi(next());
        else if (a == "--splice") g_opt.splice = true;
        else if (a == "--uring") g_opt.uring = true;
        else if (a == "-c") g_opt.connections = std::atoi(next());
        else if (a == "-s") g_opt.size = std::strtoull(next(), nullptr, 10);
        else if (a == "-d") g_opt.duration = std::atof(next());
        else if (a == "--inflight") g_opt.inflight = std::max(1, std::atoi(next()));
        else if (a == "--rate") g_opt.rate = std::atof(next());
        else if (a == "--text") g_opt.text = true;
        else if (a == "--go-stdin") g_opt.goStdin = true;
        else if (a == "--setup-concurrency") g_opt.setupConcurrency = std::max(1, std::atoi(next()));
        else if (a == "--no-idle-ping") g_opt.idlePing = false;
        else if (a == "--channels") g_opt.channels = std::max(1, std::atoi(next()));
        else if (a == "--publishers") g_opt.publishers = std::max(1, std::atoi(next()));
        else if (a == "--sub-path") g_opt.subPath = next();
        else if (a == "--pub-path") g_opt.pubPath = next();
        else if (a == "--token") g_opt.token = next();
        else if (a == "--pub-port") g_opt.pubPort = std::atoi(next());
        else if (a == "--window") g_opt.window = std::atoll(next());
        else if (a == "--drain") g_opt.drain = std::atof(next());
        else if (a == "--deflate") g_opt.deflate = true;
        else usage();
    }
    std::signal(SIGPIPE, SIG_IGN);
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    g_rng ^= nowNs() * 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(getpid());
    if (g_opt.mode != Mode::Server && g_opt.mode != Mode::Relay && g_opt.port == 0) usage();
    if (g_opt.mode == Mode::Relay && g_opt.uring) {
#ifdef WS_LOAD_HAVE_URING
        UringRelay relay;
        return relay.run();
#else
        std::fprintf(stderr, "ws_load: built without liburing: no relay --uring\n");
        return 2;
#endif
    }
    Loop loop;
    return loop.run();
}
