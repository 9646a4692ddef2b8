// SPDX-License-Identifier: Apache-2.0
// tls_idle_mem: heap bytes OpenSSL keeps per idle server-side TLS 1.3 connection, with and without
// SSL_MODE_RELEASE_BUFFERS. A side measurement of the TLS benchmark (bench/tls_bench.py): it tells
// how much of a proxy's RSS per idle wss:// connection is OpenSSL's, and whether releasing the
// buffers pays. No Portico code: the same server setup as Portico's listener (ECDSA P-256
// certificate, TLS 1.3, one session ticket), in one process over socketpairs.
//
//   g++ -std=c++20 -O2 -o tls_idle_mem bench/tls_idle_mem.cpp -lssl -lcrypto
//   ./tls_idle_mem CERT KEY [N=1000] [--sites | --variants]
//
// For each mode: N connections handshake, exchange one 64-byte record each way (as the benchmark's
// one echo), and are then held; the heap in use (mallinfo2().uordblks) before and after, divided
// by N, is printed with the client side's SSL objects freed first so only the server's remain.
// --sites: OpenSSL's allocations still live per idle connection (RELEASE_BUFFERS), by the source
// line that made them (OpenSSL passes file and line to CRYPTO_set_mem_functions' hooks).
// --variants: the same with RELEASE_BUFFERS under the settings OpenSSL offers that could shrink
// what an idle connection keeps (Portico's own: read-ahead and SSL_free_buffers after the echo;
// no session ticket; small read-ahead and send buffers; other TLS 1.3 cipher suites).

#include <malloc.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

struct Pair {
    SSL* server = nullptr;
    SSL* client = nullptr;
    int fds[2] = {-1, -1};
};

// Drives both ends of a non-blocking socketpair until both handshakes are done.
bool handshake(Pair& p) {
    for (int i = 0; i < 100; ++i) {
        const int c = SSL_do_handshake(p.client);
        const int s = SSL_do_handshake(p.server);
        if (c == 1 && s == 1) return true;
        const int ce = SSL_get_error(p.client, c), se = SSL_get_error(p.server, s);
        if ((c != 1 && ce != SSL_ERROR_WANT_READ) || (s != 1 && se != SSL_ERROR_WANT_READ)) return false;
    }
    return false;
}

size_t heapInUse() { return mallinfo2().uordblks; }

// --sites: every live OpenSSL allocation made while `tracking` is on, by address.
struct Site {
    const char* file;
    int line;
    size_t size;
};
std::map<void*, Site>* live = nullptr;
bool tracking = false;

void forget(void* p) {
    if (p && live) live->erase(p);
}
void* trackedMalloc(size_t n, const char* file, int line) {
    void* p = std::malloc(n);
    if (tracking && p) {
        tracking = false;  // the map's own allocations are not OpenSSL's
        (*live)[p] = {file, line, n};
        tracking = true;
    }
    return p;
}
void* trackedRealloc(void* old, size_t n, const char* file, int line) {
    const bool was = tracking;
    tracking = false;
    forget(old);
    void* p = std::realloc(old, n);
    if (was && p) (*live)[p] = {file, line, n};
    tracking = was;
    return p;
}
void trackedFree(void* p, const char*, int) {
    const bool was = tracking;
    tracking = false;
    forget(p);
    std::free(p);
    tracking = was;
}

// Bytes and allocations per connection still live, by OpenSSL source line (64 bytes and up).
void printSites(int n) {
    tracking = false;
    std::map<std::string, std::pair<size_t, size_t>> by_site;
    size_t total = 0;
    for (const auto& [p, site] : *live) {
        total += site.size;
        auto& entry = by_site[std::string(site.file ? site.file : "?") + ":" + std::to_string(site.line)];
        entry.first += site.size;
        entry.second += 1;
    }
    std::vector<std::pair<size_t, std::string>> rows;
    for (const auto& [where, entry] : by_site)
        if (entry.first / n >= 64)
            rows.emplace_back(entry.first / n, where + " (" + std::to_string(entry.second / n) + " allocations)");
    std::sort(rows.rbegin(), rows.rend());
    std::printf("%8zu bytes of OpenSSL allocations live per idle server connection (N=%d), of which:\n", total / n, n);
    for (const auto& [bytes, where] : rows) std::printf("%8zu bytes  %s\n", bytes, where.c_str());
}

// Per-connection settings and what is done once the echo is over (--variants).
struct Variant {
    const char* name;
    void (*on_ssl)(SSL*) = nullptr;
    void (*after_echo)(SSL*) = nullptr;
    void (*on_ctx)(SSL_CTX*) = nullptr;
};

double perConnection(SSL_CTX* sctx, SSL_CTX* cctx, int n, bool release, const Variant* variant = nullptr) {
    std::vector<Pair> pairs(static_cast<size_t>(n));
    char buf[64] = {0};
    const size_t before = heapInUse();
    for (auto& p : pairs) {
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p.fds);  // lock-step, never waits
        p.server = SSL_new(sctx);
        p.client = SSL_new(cctx);
        if (release) SSL_set_mode(p.server, SSL_MODE_RELEASE_BUFFERS);
        if (variant && variant->on_ssl) variant->on_ssl(p.server);
        SSL_set_fd(p.server, p.fds[0]);
        SSL_set_fd(p.client, p.fds[1]);
        SSL_set_accept_state(p.server);
        SSL_set_connect_state(p.client);
    }
    for (auto& p : pairs) {
        if (!handshake(p)) {
            std::fprintf(stderr, "handshake failed\n");
            ERR_print_errors_fp(stderr);
            std::exit(1);
        }
        // one record each way, as the benchmark's one echo per idle connection; the client's
        // read also takes the server's session ticket
        SSL_write(p.client, buf, sizeof buf);
        SSL_read(p.server, buf, sizeof buf);
        SSL_write(p.server, buf, sizeof buf);
        SSL_read(p.client, buf, sizeof buf);
        if (variant && variant->after_echo) variant->after_echo(p.server);
        SSL_free(p.client);  // only the server side stays
        p.client = nullptr;
        close(p.fds[1]);
    }
    const size_t after = heapInUse();
    if (tracking) printSites(n);  // before the servers are freed
    for (auto& p : pairs) {
        SSL_free(p.server);
        close(p.fds[0]);
    }
    return (static_cast<double>(after) - static_cast<double>(before)) / n;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: tls_idle_mem CERT KEY [N]\n");
        return 2;
    }
    const int n = argc > 3 ? std::atoi(argv[3]) : 1000;
    const bool sites = argc > 4 && std::strcmp(argv[4], "--sites") == 0;
    const bool variants = argc > 4 && std::strcmp(argv[4], "--variants") == 0;
    if (sites) {
        live = new std::map<void*, Site>;
        CRYPTO_set_mem_functions(trackedMalloc, trackedRealloc, trackedFree);  // before any allocation
    }
    SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(sctx, 1);
    if (SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, nullptr);
    if (variants) {
        const Variant all[] = {
            {"RELEASE_BUFFERS"},
            {"+ read-ahead, SSL_free_buffers (Portico)", [](SSL* s) { SSL_set_read_ahead(s, 1); },
             [](SSL* s) { SSL_free_buffers(s); }},
            {"+ no session ticket", nullptr, [](SSL* s) { SSL_free_buffers(s); },
             [](SSL_CTX* c) { SSL_CTX_set_num_tickets(c, 0); }},
            {"+ read-ahead buffer 512, send fragment 512",
             [](SSL* s) {
                 SSL_set_read_ahead(s, 1);
                 SSL_set_default_read_buffer_len(s, 512);
                 SSL_set_max_send_fragment(s, 512);
             },
             [](SSL* s) { SSL_free_buffers(s); }},
            {"+ TLS_AES_128_GCM_SHA256 only", nullptr, [](SSL* s) { SSL_free_buffers(s); },
             [](SSL_CTX* c) { SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256"); }},
            {"+ TLS_CHACHA20_POLY1305_SHA256 only", nullptr, [](SSL* s) { SSL_free_buffers(s); },
             [](SSL_CTX* c) { SSL_CTX_set_ciphersuites(c, "TLS_CHACHA20_POLY1305_SHA256"); }},
        };
        for (const Variant& v : all) {
            SSL_CTX_set_num_tickets(sctx, 1);
            SSL_CTX_set_ciphersuites(sctx, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
            if (v.on_ctx) v.on_ctx(sctx);
            perConnection(sctx, cctx, 50, true, &v);
            double a = perConnection(sctx, cctx, n, true, &v), b = perConnection(sctx, cctx, n, true, &v);
            std::printf("%-44s %8.0f bytes of heap per idle server connection (N=%d, two runs: %.0f, %.0f)\n",
                        v.name, (a + b) / 2, n, a, b);
        }
        return 0;
    }
    perConnection(sctx, cctx, 50, true);  // warm up the allocator and OpenSSL's lazy tables
    if (sites) {
        live->clear();
        tracking = true;
        perConnection(sctx, cctx, n, true);  // prints the sites (RELEASE_BUFFERS)
        return 0;
    }
    for (bool release : {false, true, false, true}) {
        std::printf("%-22s %8.0f bytes of heap per idle server connection (N=%d)\n",
                    release ? "RELEASE_BUFFERS" : "buffers kept", perConnection(sctx, cctx, n, release), n);
    }
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
