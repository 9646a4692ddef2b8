// SPDX-License-Identifier: Apache-2.0
#pragma once
// The client side of TLS for one upstream: verification of the server's chain and host name
// (on by default), SNI, and resumption of earlier sessions with the same server.
//
// Built once per configuration and shared read-only by every worker thread; each SSL from
// newSession() keeps its ClientContext alive.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "portico/config/config.h"
#include "portico/tls/handles.h"

namespace portico::tls {

class KeyLog;

namespace detail {
struct ClientContextAccess;
class ClientSessionCache;
}  // namespace detail

class ClientContext : public std::enable_shared_from_this<ClientContext> {
public:
    // Builds the context for an upstream's `tls:` block. verify (default): SSL_VERIFY_PEER
    // against `ca` (a PEM bundle) or, when `ca` is empty, the system's default store. Returns
    // nullptr with `errors` filled when `ca` cannot be read or holds no certificate. `warnings`
    // gets a line when verify is false. Messages are "KEY: FILE: problem" with KEY relative to
    // the upstream ("tls.ca: /etc/portico/ca.pem: cannot read: No such file or directory").
    // `keylog` (optional): where the secrets of every session go (tls.keylog_file).
    static std::shared_ptr<ClientContext> build(const config::UpstreamTls& tls,
                                                std::vector<std::string>& errors,
                                                std::vector<std::string>& warnings,
                                                std::shared_ptr<const KeyLog> keylog = nullptr);

    ClientContext(const ClientContext&) = delete;
    ClientContext& operator=(const ClientContext&) = delete;
    ~ClientContext();

    // A new client-mode SSL (SSL_set_connect_state done) for a connection to `host`, the
    // server's host as configured (a name or an IP literal, no port), or nullptr when OpenSSL is
    // out of memory. The server name is `sni` from the configuration, else `host` when it is a
    // name: it is sent as SNI (never an IP, RFC 6066 3) and, with verify, the certificate must
    // match it (an IP host is matched against the certificate's IP SANs). A session from an
    // earlier connection with the same `session_key` (default: `host`; pass "host:port" when
    // several servers share a host) is offered for resumption. The caller owns the SSL.
    // Thread-safe. ALPN offers "http/1.1".
    SslPtr newSession(std::string_view host, std::string_view session_key = {}) const;

    bool verifies() const { return verify_; }

private:
    friend struct detail::ClientContextAccess;  // the builder and the OpenSSL callbacks
    ClientContext();

    SslCtxPtr ctx_;
    bool verify_ = true;
    std::string sni_;  // from the configuration; "" = the host
    std::unique_ptr<detail::ClientSessionCache> sessions_;
    std::shared_ptr<const KeyLog> keylog_;  // null when keylog_file is off
};

}  // namespace portico::tls
