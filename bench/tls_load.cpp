// SPDX-License-Identifier: Apache-2.0
// tls_load: the TLS load client of Portico's TLS benchmark (bench/tls_bench.py).
//
// Independent of Portico (no libevent, no Portico headers): OpenSSL over non-blocking sockets,
// one level-triggered epoll loop per thread, so nginx, HAProxy and Portico meet the same client.
//
//   tls_load handshakes --port P -c N -d SECS [--resume] [--path /healthz]
//       N connections in parallel, each: TCP connect, TLS handshake, one
//       `GET PATH HTTP/1.1` with `Connection: close`, read the response, wait for the server's
//       close, start again. --resume offers the newest session ticket this thread received
//       (PSK resumption, RFC 8446 2.2); without it every handshake is a full one.
//   tls_load wss-echo --port P -c N -s BYTES -d SECS [--path /ws/]
//       N wss:// connections, one masked binary message at a time each, echoed back.
//   tls_load wss-idle --port P -c N [--path /ws/]
//       N wss:// connections, one echo round trip each, then held until stdin closes.
//   common: --host 127.0.0.1 --sni bench.test -t THREADS --go-stdin --setup-concurrency N
//           --drain SECS
//
// The protocol on stdout is ws_load's (bench/ws_load/ws_load.cpp), so bench/ws_echo.py's
// WsClient drives both: `READY {json}` once set up; with --go-stdin it then waits for a line
// `GO`, runs the measured phase, prints `RESULT {json}` and waits for stdin to close before
// exiting (closing sockets is not measured). Progress and errors go to stderr.
//
// What the client does not do: verify the certificate chain (SSL_VERIFY_NONE; the TLS 1.3
// CertificateVerify signature is still checked by OpenSSL, so the client's work per full
// handshake is a real one), offer ALPN, or send early data.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

uint64_t nowNs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

double cpuSelfSeconds() {  // every thread of the process
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "tls_load: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

std::string sslErrors() {
    std::string out;
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out;
}

// ---- options ------------------------------------------------------------------------------------

enum class Mode { Handshakes, WssEcho, WssIdle };

struct Options {
    Mode mode = Mode::Handshakes;
    std::string host = "127.0.0.1";
    std::string sni = "bench.test";
    int port = 0;
    std::string path;           // default: /healthz (handshakes), /ws/ (wss)
    int connections = 32;
    size_t size = 64;           // wss-echo payload bytes
    double duration = 5;
    int threads = 1;
    bool resume = false;
    bool goStdin = false;
    int setupConcurrency = 128;  // connections being set up at once (per thread)
    double drain = 3;
};

Options g_opt;

// ---- shared between the threads -----------------------------------------------------------------

std::atomic<bool> g_go{false};
std::atomic<uint64_t> g_t0{0};

constexpr size_t kMaxIn = 1u << 20;  // a response or message beyond this is an error
constexpr size_t kReadChunk = 16u << 10;

// ---- one thread's loop --------------------------------------------------------------------------

enum class St { Connecting, Handshake, Request, Upgrade, Open };
enum class Phase { Setup, Ready, Running, Draining, Done };

struct Conn {
    int fd = -1;
    SSL* ssl = nullptr;
    St st = St::Connecting;
    uint32_t events = 0;
    std::string out;   // plaintext handed to SSL_write, written whole (no partial writes)
    std::string in;    // plaintext read and not yet consumed
    uint64_t opStart = 0;
    bool inflight = false;  // wss: a message sent and not yet echoed
    bool pinged = false;    // wss-idle: its one round trip is done
    size_t index = 0;       // position in Worker::conns_
    std::string expectAccept;
};

class Worker {
public:
    Worker(int id, int connections) : id_(id), connections_(connections) {}
    ~Worker() {
        for (Conn* c : conns_) destroy(c);
        for (Conn* c : dead_) destroy(c);
        if (latest_) SSL_SESSION_free(latest_);
        if (ctx_) SSL_CTX_free(ctx_);
    }

    void run();

    // Filled by the worker, read by main after `done`.
    std::atomic<bool> ready{false};
    std::atomic<bool> done{false};
    std::atomic<bool> failedSetup{false};
    uint64_t ops = 0, opsTotal = 0, errors = 0, bytes = 0, resumed = 0, full = 0;
    int open = 0, failed = 0;
    uint64_t tEnd = 0;
    std::vector<uint32_t> latNs;

private:
    static int onNewSession(SSL* ssl, SSL_SESSION* session);

    void setupCtx();
    void openConn();
    void destroy(Conn* c);
    void closeConn(Conn* c, bool ok);
    void setEvents(Conn* c, uint32_t ev);
    void onEvent(Conn* c);
    bool sslWant(Conn* c, int rc, const char* where);
    bool flushOut(Conn* c);
    int readIn(Conn* c);  // 1 data/nothing, 0 EOF, -1 error
    void handshakeDone(Conn* c);
    bool onResponse(Conn* c, bool eof);
    bool onUpgrade(Conn* c);
    bool onFrames(Conn* c);
    void sendEcho(Conn* c);
    void opDone(Conn* c);
    void fail(Conn* c, const char* why);
    void tick();

    int id_;
    int connections_;
    int ep_ = -1;
    SSL_CTX* ctx_ = nullptr;
    SSL_SESSION* latest_ = nullptr;  // --resume: the newest ticket received
    std::vector<Conn*> conns_;
    std::vector<Conn*> dead_;  // closed during the current epoll batch, freed after it
    Phase phase_ = Phase::Setup;
    int toOpen_ = 0;
    int pending_ = 0;  // connections not yet usable (connecting, handshake, upgrade)
    uint64_t drainUntil_ = 0;
    std::vector<uint8_t> payload_;
    sockaddr_in addr_{};
};

int Worker::onNewSession(SSL* ssl, SSL_SESSION* session) {
    auto* w = static_cast<Worker*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    // A copy: the session stays the connection's too (see onEvent on fatal errors).
    SSL_SESSION* copy = SSL_SESSION_dup(session);
    if (copy) {
        if (w->latest_) SSL_SESSION_free(w->latest_);
        w->latest_ = copy;
    }
    return 0;  // OpenSSL keeps its reference
}

void Worker::setupCtx() {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) {
        std::fprintf(stderr, "tls_load: SSL_CTX_new: %s\n", sslErrors().c_str());
        std::exit(2);
    }
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_app_data(ctx_, this);
    if (g_opt.resume) {
        SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx_, &Worker::onNewSession);
    } else {
        // Tickets the server sends are read and dropped, as a browser that resumes nothing.
        SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    }
}

void Worker::setEvents(Conn* c, uint32_t ev) {
    if (c->events == ev) return;
    epoll_event e{};
    e.events = ev;
    e.data.ptr = c;
    if (epoll_ctl(ep_, c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &e) < 0)
        die("epoll_ctl");
    c->events = ev;
}

void Worker::openConn() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* c = new Conn;
    c->fd = fd;
    c->opStart = nowNs();
    c->index = conns_.size();
    conns_.push_back(c);
    ++pending_;
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) < 0 && errno != EINPROGRESS) {
        fail(c, "connect");
        return;
    }
    setEvents(c, EPOLLOUT);
}

void Worker::destroy(Conn* c) {
    if (c->ssl) SSL_free(c->ssl);  // closes nothing: the fd is ours
    if (c->fd >= 0) close(c->fd);
    delete c;
}

// Closes c (its memory lives until the end of the epoll batch, so callers may still test
// c->fd < 0); ok=false counts an error. Keeps the target number of connections in the running
// handshakes mode.
void Worker::closeConn(Conn* c, bool ok) {
    if (c->fd < 0) return;
    if (!ok) ++errors;
    if (c->st == St::Open) {
        --open;
    } else {
        --pending_;
    }
    if (c->ssl) {
        // Marked shut down quietly (nothing sent: the server has closed already): SSL_free of a
        // connection not shut down would mark its session, hence the newest ticket, as not
        // resumable (OpenSSL's ssl_clear_bad_session).
        if (ok) SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c->ssl);
        c->ssl = nullptr;
    }
    close(c->fd);  // also leaves the epoll set
    c->fd = -1;
    const size_t i = c->index;
    conns_[i] = conns_.back();
    conns_[i]->index = i;
    conns_.pop_back();
    dead_.push_back(c);
    if (g_opt.mode == Mode::Handshakes && phase_ == Phase::Running) openConn();
}

void Worker::fail(Conn* c, const char* why) {
    if (errors < 5 || phase_ == Phase::Setup) {
        std::string ssl = sslErrors();
        std::fprintf(stderr, "tls_load[%d]: %s failed (%s)%s%s\n", id_, why, std::strerror(errno),
                     ssl.empty() ? "" : ": ", ssl.c_str());
    }
    if (phase_ == Phase::Setup) {
        ++failed;
        if (g_opt.mode != Mode::WssIdle) failedSetup = true;
    }
    closeConn(c, false);
}

// After an SSL call returned rc <= 0: arms the events it waits for; false when the connection
// failed (and is gone).
bool Worker::sslWant(Conn* c, int rc, const char* where) {
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        setEvents(c, EPOLLIN);
        return true;
    case SSL_ERROR_WANT_WRITE:
        setEvents(c, EPOLLIN | EPOLLOUT);
        return true;
    default:
        fail(c, where);
        return false;
    }
}

// Writes c->out whole. True when nothing is left (or a retry is armed); false when c is gone.
bool Worker::flushOut(Conn* c) {
    if (c->out.empty()) return true;
    ERR_clear_error();
    const int rc = SSL_write(c->ssl, c->out.data(), static_cast<int>(c->out.size()));
    if (rc > 0) {
        c->out.clear();
        setEvents(c, EPOLLIN);
        return true;
    }
    return sslWant(c, rc, "SSL_write");
}

int Worker::readIn(Conn* c) {
    char buf[kReadChunk];
    for (;;) {
        ERR_clear_error();
        const int n = SSL_read(c->ssl, buf, sizeof buf);
        if (n > 0) {
            if (c->in.size() + static_cast<size_t>(n) > kMaxIn) {
                errno = EMSGSIZE;
                return -1;
            }
            c->in.append(buf, static_cast<size_t>(n));
            continue;
        }
        const int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ) return 1;
        if (e == SSL_ERROR_WANT_WRITE) {
            setEvents(c, EPOLLIN | EPOLLOUT);
            return 1;
        }
        if (e == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify
        if (e == SSL_ERROR_SYSCALL && (errno == 0 || errno == ECONNRESET)) return 0;
        return -1;
    }
}

void Worker::handshakeDone(Conn* c) {
    if (SSL_session_reused(c->ssl)) {
        ++resumed;
    } else {
        ++full;
    }
    if (g_opt.mode == Mode::Handshakes) {
        c->st = St::Request;
        c->out = "GET " + g_opt.path + " HTTP/1.1\r\nHost: " + g_opt.sni +
                 "\r\nConnection: close\r\n\r\n";
        return;
    }
    // RFC 6455 4.1: a fresh 16-byte nonce per connection, base64.
    unsigned char nonce[16];
    RAND_bytes(nonce, sizeof nonce);
    unsigned char key[32];
    EVP_EncodeBlock(key, nonce, sizeof nonce);
    std::string k(reinterpret_cast<char*>(key));
    std::string s = k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
    unsigned char accept[32];
    EVP_EncodeBlock(accept, digest, sizeof digest);
    c->expectAccept = reinterpret_cast<char*>(accept);
    c->st = St::Upgrade;
    c->out = "GET " + g_opt.path + " HTTP/1.1\r\nHost: " + g_opt.sni +
             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k +
             "\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

// handshakes mode: true when the response is complete and the server has closed (op done).
bool Worker::onResponse(Conn* c, bool eof) {
    const size_t end = c->in.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (eof) fail(c, "response (closed before the head)");
        return false;
    }
    if (c->in.compare(0, 9, "HTTP/1.1 ") != 0 || c->in.compare(9, 1, "2") != 0) {
        std::fprintf(stderr, "tls_load: unexpected response: %.*s\n", static_cast<int>(end), c->in.data());
        errno = EPROTO;
        fail(c, "response status");
        return false;
    }
    // The response is a short body with Content-Length; the op ends at the server's close so
    // that the server, not the client, holds TIME_WAIT (the client's ports stay reusable).
    if (!eof) return false;
    opDone(c);
    closeConn(c, true);
    return true;
}

bool Worker::onUpgrade(Conn* c) {
    const size_t end = c->in.find("\r\n\r\n");
    if (end == std::string::npos) return true;
    const std::string_view head(c->in.data(), end + 2);
    bool ok = head.substr(0, 12) == "HTTP/1.1 101";
    if (ok) {
        // Case-insensitive header name, exact value (RFC 6455 4.2.2).
        std::string lower(head);
        for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        const size_t pos = lower.find("\r\nsec-websocket-accept:");
        ok = pos != std::string::npos;
        if (ok) {
            size_t v = pos + 23;
            while (v < head.size() && (head[v] == ' ' || head[v] == '\t')) ++v;
            const size_t ve = head.find("\r\n", v);
            std::string_view value = head.substr(v, ve - v);
            while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
            ok = value == c->expectAccept;
        }
    }
    if (!ok) {
        std::fprintf(stderr, "tls_load: upgrade refused: %.*s\n", static_cast<int>(end), c->in.data());
        errno = EPROTO;
        fail(c, "upgrade");
        return false;
    }
    c->in.erase(0, end + 4);
    c->st = St::Open;
    --pending_;
    ++open;
    sendEcho(c);  // wss-idle: its one round trip; wss-echo: checks the route before GO
    return c->fd >= 0;
}

void Worker::sendEcho(Conn* c) {
    // RFC 6455 5.2/5.3: FIN + binary, MASK bit, a masking key per frame.
    uint8_t head[14];
    size_t h = 0;
    const size_t n = payload_.size();
    head[h++] = 0x82;
    if (n < 126) {
        head[h++] = static_cast<uint8_t>(0x80 | n);
    } else if (n <= 0xffff) {
        head[h++] = 0x80 | 126;
        head[h++] = static_cast<uint8_t>(n >> 8);
        head[h++] = static_cast<uint8_t>(n);
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; --i) head[h++] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (8 * i));
    }
    uint8_t mask[4];
    RAND_bytes(mask, sizeof mask);
    std::memcpy(head + h, mask, 4);
    h += 4;
    c->out.assign(reinterpret_cast<char*>(head), h);
    c->out.resize(h + n);
    for (size_t i = 0; i < n; ++i) c->out[h + i] = static_cast<char>(payload_[i] ^ mask[i & 3]);
    c->inflight = true;
    c->opStart = nowNs();
    flushOut(c);  // may close c (c->fd < 0)
}

// Consumes whole server frames (unmasked, RFC 6455 5.1). False when c is gone.
bool Worker::onFrames(Conn* c) {
    for (;;) {
        const auto* p = reinterpret_cast<const uint8_t*>(c->in.data());
        const size_t avail = c->in.size();
        if (avail < 2) return true;
        uint64_t len = p[1] & 0x7f;
        size_t off = 2;
        if (len == 126) {
            if (avail < 4) return true;
            len = static_cast<uint64_t>(p[2]) << 8 | p[3];
            off = 4;
        } else if (len == 127) {
            if (avail < 10) return true;
            len = 0;
            for (int i = 0; i < 8; ++i) len = len << 8 | p[2 + i];
            off = 10;
        }
        if (len > kMaxIn) {
            errno = EMSGSIZE;
            fail(c, "frame length");
            return false;
        }
        if (avail < off + len) return true;
        const uint8_t opcode = p[0] & 0x0f;
        if (opcode == 0x8) {
            errno = ECONNRESET;
            fail(c, "server sent close");
            return false;
        }
        if (opcode == 0x2 && (p[0] & 0x80) && len == payload_.size() && c->inflight) {
            c->inflight = false;
            if (phase_ == Phase::Running || phase_ == Phase::Draining) bytes += len;
            opDone(c);
            c->in.erase(0, off + len);
            if (g_opt.mode == Mode::WssIdle) {
                c->pinged = true;
            } else if (phase_ == Phase::Running) {
                sendEcho(c);
                if (c->fd < 0) return false;
            }
            continue;
        }
        errno = EPROTO;
        fail(c, "unexpected frame");
        return false;
    }
}

// Counts an operation: inside the window (ops, latency) or in the drain after it (ops_total
// only: the caller's CPU window covers both). Setup operations count nowhere.
void Worker::opDone(Conn* c) {
    if (phase_ == Phase::Running || phase_ == Phase::Draining) {
        ++opsTotal;
        if (phase_ == Phase::Running) {
            ++ops;
            const uint64_t d = nowNs() - c->opStart;
            latNs.push_back(static_cast<uint32_t>(std::min<uint64_t>(d, UINT32_MAX)));
        }
    }
}

void Worker::onEvent(Conn* c) {
    if (c->st == St::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            errno = err;
            fail(c, "connect");
            return;
        }
        c->ssl = SSL_new(ctx_);
        SSL_set_fd(c->ssl, c->fd);
        // SSL_set_tlsext_host_name spelled out: the macro's C cast trips -Wold-style-cast.
        SSL_ctrl(c->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(g_opt.sni.c_str()));
        if (g_opt.resume && latest_) {
            // Each connection offers its own copy: a connection ending in a fatal error (an
            // unexpected EOF) marks its session not resumable (OpenSSL's ssl3_send_alert), which
            // must not spoil the ticket for the others.
            SSL_SESSION* offer = SSL_SESSION_dup(latest_);
            if (offer) {
                SSL_set_session(c->ssl, offer);
                SSL_SESSION_free(offer);  // the SSL holds its own reference
            }
        }
        SSL_set_connect_state(c->ssl);
        c->st = St::Handshake;
    }
    if (c->st == St::Handshake) {
        ERR_clear_error();
        const int rc = SSL_do_handshake(c->ssl);
        if (rc != 1) {
            sslWant(c, rc, "handshake");
            return;
        }
        handshakeDone(c);
    }
    if (!flushOut(c) || c->fd < 0) return;
    const int r = readIn(c);
    if (r < 0) {
        fail(c, "SSL_read");
        return;
    }
    switch (c->st) {
    case St::Request:
        onResponse(c, r == 0);
        return;
    case St::Upgrade:
        if (!onUpgrade(c)) return;
        break;
    default:
        break;
    }
    if (c->st == St::Open) {
        if (!onFrames(c)) return;
        if (r == 0) {
            errno = ECONNRESET;
            fail(c, "server closed");
        }
    }
}

void Worker::tick() {
    const uint64_t now = nowNs();
    switch (phase_) {
    case Phase::Setup: {
        if (g_opt.mode == Mode::Handshakes) {
            // One probe connection: the route answers, and --resume has a ticket to offer.
            if (toOpen_ > 0) {
                --toOpen_;
                openConn();
            }
            if (toOpen_ == 0 && conns_.empty()) {
                phase_ = Phase::Ready;
                ready = true;
            }
            return;
        }
        while (toOpen_ > 0 && pending_ < g_opt.setupConcurrency) {
            --toOpen_;
            openConn();
        }
        bool all = toOpen_ == 0 && pending_ == 0;
        for (Conn* c : conns_)
            if (c->inflight) all = false;
        if (all) {
            phase_ = Phase::Ready;
            ready = true;
        }
        return;
    }
    case Phase::Ready:
        if (!g_go.load()) return;
        phase_ = Phase::Running;
        ops = opsTotal = bytes = resumed = full = 0;
        errors = 0;
        latNs.clear();
        if (g_opt.mode == Mode::Handshakes) {
            for (int i = 0; i < connections_; ++i) openConn();
        } else if (g_opt.mode == Mode::WssEcho) {
            for (Conn* c : std::vector<Conn*>(conns_))
                if (c->st == St::Open) sendEcho(c);
        } else {
            tEnd = now;
            phase_ = Phase::Done;
            done = true;
        }
        return;
    case Phase::Running:
        if (now - g_t0.load() >= static_cast<uint64_t>(g_opt.duration * 1e9)) {
            tEnd = now;
            phase_ = Phase::Draining;
            drainUntil_ = now + static_cast<uint64_t>(g_opt.drain * 1e9);
        }
        return;
    case Phase::Draining: {
        bool outstanding = false;
        for (Conn* c : conns_)
            if (g_opt.mode == Mode::Handshakes || c->inflight) outstanding = true;
        if (!outstanding || now >= drainUntil_) {
            phase_ = Phase::Done;
            done = true;
        }
        return;
    }
    case Phase::Done:
        return;
    }
}

void Worker::run() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) die("epoll_create1");
    setupCtx();
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<uint16_t>(g_opt.port));
    inet_pton(AF_INET, g_opt.host.c_str(), &addr_.sin_addr);
    payload_.resize(g_opt.size);
    for (size_t i = 0; i < payload_.size(); ++i) payload_[i] = static_cast<uint8_t>('a' + i % 26);
    toOpen_ = g_opt.mode == Mode::Handshakes ? 1 : connections_;
    latNs.reserve(1u << 20);
    std::vector<epoll_event> evs(1024);
    for (;;) {
        int timeout = phase_ == Phase::Done ? 200 : (phase_ == Phase::Running ? 2 : 5);
        const int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), timeout);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; ++i) {
            Conn* c = static_cast<Conn*>(evs[static_cast<size_t>(i)].data.ptr);
            if (c->fd < 0) continue;  // closed earlier in this batch
            if (phase_ == Phase::Done) {
                // Held idle connections: a server that closes one only loses it.
                char b[512];
                if (read(c->fd, b, sizeof b) <= 0) closeConn(c, true);
                continue;
            }
            onEvent(c);
        }
        for (Conn* c : dead_) destroy(c);
        dead_.clear();
        if (failedSetup) {
            ready = true;
            done = true;
            return;
        }
        tick();
        for (Conn* c : dead_) destroy(c);
        dead_.clear();
    }
}

void usage() {
    std::fprintf(stderr,
                 "usage: tls_load MODE --port P [options]\n"
                 "  modes: handshakes wss-echo wss-idle\n"
                 "  --host H (127.0.0.1) --sni NAME (bench.test) --path P -c N -s BYTES -d SECS\n"
                 "  -t THREADS --resume --go-stdin --setup-concurrency N --drain SECS\n");
    std::exit(2);
}

std::string readLine() {
    std::string line;
    char ch;
    for (;;) {
        const ssize_t n = read(0, &ch, 1);
        if (n <= 0) return line.empty() ? std::string("\x04") : line;
        if (ch == '\n') return line;
        line += ch;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) usage();
    const std::string_view mode = argv[1];
    if (mode == "handshakes") g_opt.mode = Mode::Handshakes;
    else if (mode == "wss-echo") g_opt.mode = Mode::WssEcho;
    else if (mode == "wss-idle") g_opt.mode = Mode::WssIdle;
    else usage();
    for (int i = 2; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--host") g_opt.host = next();
        else if (a == "--sni") g_opt.sni = next();
        else if (a == "--port") g_opt.port = std::atoi(next());
        else if (a == "--path") g_opt.path = next();
        else if (a == "-c") g_opt.connections = std::max(1, std::atoi(next()));
        else if (a == "-s") g_opt.size = std::strtoull(next(), nullptr, 10);
        else if (a == "-d") g_opt.duration = std::atof(next());
        else if (a == "-t") g_opt.threads = std::max(1, std::atoi(next()));
        else if (a == "--resume") g_opt.resume = true;
        else if (a == "--go-stdin") g_opt.goStdin = true;
        else if (a == "--setup-concurrency") g_opt.setupConcurrency = std::max(1, std::atoi(next()));
        else if (a == "--drain") g_opt.drain = std::atof(next());
        else usage();
    }
    if (g_opt.port == 0) usage();
    if (g_opt.path.empty()) g_opt.path = g_opt.mode == Mode::Handshakes ? "/healthz" : "/ws/";
    std::signal(SIGPIPE, SIG_IGN);
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    const uint64_t setupStart = nowNs();
    std::vector<std::unique_ptr<Worker>> workers;
    for (int t = 0; t < g_opt.threads; ++t) {
        const int share = g_opt.connections / g_opt.threads + (t < g_opt.connections % g_opt.threads ? 1 : 0);
        workers.push_back(std::make_unique<Worker>(t, std::max(share, 1)));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
    for (auto& w : workers)
        while (!w->ready.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    int open = 0, failed = 0;
    bool setupFailed = false;
    for (auto& w : workers) {
        open += w->open;
        failed += w->failed;
        setupFailed = setupFailed || w->failedSetup.load();
    }
    std::printf("READY {\"open\":%d,\"failed\":%d,\"errors\":%d,\"setup_s\":%.3f}\n", open, failed,
                failed, static_cast<double>(nowNs() - setupStart) / 1e9);
    std::fflush(stdout);
    if (setupFailed) {
        std::fprintf(stderr, "tls_load: setup failed\n");
        std::_Exit(1);
    }
    if (g_opt.goStdin) {
        for (;;) {
            const std::string line = readLine();
            if (line == "\x04") std::_Exit(0);
            if (line.find("GO") != std::string::npos) break;
        }
    }
    const double cpu0 = cpuSelfSeconds();
    const uint64_t t0 = nowNs();
    g_t0 = t0;
    g_go = true;
    for (auto& w : workers)
        while (!w->done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const double cpu1 = cpuSelfSeconds();

    uint64_t ops = 0, opsTotal = 0, errors = 0, bytes = 0, resumed = 0, full = 0, tEnd = t0;
    std::vector<uint32_t> lat;
    open = 0;
    for (auto& w : workers) {
        ops += w->ops;
        opsTotal += w->opsTotal;
        errors += w->errors;
        bytes += w->bytes;
        resumed += w->resumed;
        full += w->full;
        open += w->open;
        tEnd = std::max(tEnd, w->tEnd);
        lat.insert(lat.end(), w->latNs.begin(), w->latNs.end());
    }
    const double secs = static_cast<double>(tEnd - t0) / 1e9;
    auto pct = [&](double q) -> double {
        if (lat.empty()) return 0;
        const size_t k = static_cast<size_t>(q * static_cast<double>(lat.size() - 1));
        std::nth_element(lat.begin(), lat.begin() + static_cast<long>(k), lat.end());
        return lat[k] / 1000.0;
    };
    const double p50 = pct(0.50), p90 = pct(0.90), p99 = pct(0.99), p999 = pct(0.999);
    double maxUs = 0;
    for (uint32_t v : lat) maxUs = std::max(maxUs, v / 1000.0);
    std::printf(
        "RESULT {\"mode\":\"%.*s\",\"connections\":%d,\"open\":%d,\"size\":%zu,\"seconds\":%.6f,"
        "\"ops\":%" PRIu64 ",\"ops_total\":%" PRIu64 ",\"ops_per_s\":%.1f,\"mb_per_s\":%.2f,"
        "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
        "\"errors\":%" PRIu64 ",\"resumed\":%" PRIu64 ",\"full\":%" PRIu64
        ",\"published\":0,\"published_total\":0,\"publish_errors\":0,\"lost\":0,\"undelivered\":0,"
        "\"client_cpu_s\":%.3f}\n",
        static_cast<int>(mode.size()), mode.data(), g_opt.connections, open, g_opt.size, secs, ops,
        opsTotal, secs > 0 ? static_cast<double>(ops) / secs : 0.0,
        secs > 0 ? static_cast<double>(bytes) / secs / 1e6 : 0.0, p50, p90, p99, p999, maxUs, errors,
        resumed, full, cpu1 - cpu0);
    std::fflush(stdout);
    if (g_opt.goStdin) {
        while (readLine() != "\x04") {
        }
    }
    std::_Exit(0);  // the kernel closes every socket at once
}
