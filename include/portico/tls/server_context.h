// SPDX-License-Identifier: Apache-2.0
#pragma once
// The server side of TLS for one listener: an SSL_CTX per group of certificates that serve the
// same names, SNI to pick among them, ALPN, session resumption (tickets with keys shared by all
// workers and rotated, plus a session cache), and client certificates when `client_ca` is set.
//
// Built once per configuration (start-up, reload) on the main thread and then shared read-only
// by every worker thread. Each SSL from newSession() keeps its ServerContext alive, so a
// reload may drop the old context while open connections keep their certificates.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portico/config/config.h"
#include "portico/tls/handles.h"

namespace portico::tls {

class KeyLog;

namespace detail {
class TicketKeyRing;
struct ServerContextAccess;
}  // namespace detail

class ServerContext : public std::enable_shared_from_this<ServerContext> {
public:
    // Builds the contexts for a listener's `tls:` block (paths absolute, as the loader leaves
    // them). Certificates are grouped by the set of names in their SANs: an RSA and an ECDSA
    // certificate for the same names share one SSL_CTX and OpenSSL serves each client the kind
    // it supports. certificates[0]'s group is the default (no SNI, or an unknown name).
    // Returns nullptr when something is wrong, with `errors` filled; `warnings` gets expired and
    // soon-expiring certificates. Messages are "KEY: FILE: problem" with KEY relative to the
    // listener ("tls.certificates[1].key: /etc/portico/b.key: the key does not match ...").
    // `previous` (optional): the context this one replaces on reload; its ticket keys are kept
    // so tickets issued before the reload still resume. `keylog` (optional): where the
    // secrets of every session go (tls.keylog_file, opened by the caller; see key_log.h).
    static std::shared_ptr<ServerContext> build(const config::ListenerTls& tls,
                                                std::vector<std::string>& errors,
                                                std::vector<std::string>& warnings,
                                                const ServerContext* previous = nullptr,
                                                std::shared_ptr<const KeyLog> keylog = nullptr);

    ServerContext(const ServerContext&) = delete;
    ServerContext& operator=(const ServerContext&) = delete;
    ~ServerContext();

    // A new server-mode SSL (SSL_set_accept_state done) on the default context, or nullptr when
    // OpenSSL is out of memory. The caller owns it and attaches the socket (tls::attachSocket) itself.
    // Thread-safe. SSL_MODE_RELEASE_BUFFERS and SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER are set
    // (net::Stream clears RELEASE_BUFFERS while the connection stays busy).
    SslPtr newSession() const;

    // Which certificate SNI `server_name` selects: the index in ListenerTls::certificates of the
    // first certificate of the matching group (0 = the default). Exact names win over
    // wildcards; "*.example.com" matches exactly one label ("a.example.com", not
    // "example.com" or "a.b.example.com"), RFC 6125 6.4.3. Case-insensitive.
    std::size_t certificateFor(std::string_view server_name) const;
    // Number of SSL_CTX built (groups of certificates with the same names).
    std::size_t contextCount() const { return groups_.size(); }

private:
    struct Group {
        SslCtxPtr ctx;
        std::size_t first_certificate = 0;  // index in ListenerTls::certificates
    };
    // Transparent hashing so that the SNI callback looks names up without allocating.
    struct NameHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    using NameMap = std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>>;

    friend struct detail::ServerContextAccess;  // the builder and the OpenSSL callbacks
    ServerContext() = default;

    // Index into groups_ for `server_name` (already lower case, no trailing dot).
    std::size_t groupFor(std::string_view server_name) const;

    std::vector<Group> groups_;  // [0] is the default
    NameMap exact_names_;        // "www.example.com" -> group
    NameMap wildcard_names_;     // "example.com" (from "*.example.com") -> group
    std::string alpn_wire_;      // our protocols, in preference order, in ALPN wire format
    std::shared_ptr<detail::TicketKeyRing> tickets_;  // null when session_tickets is off
    std::shared_ptr<const KeyLog> keylog_;            // null when keylog_file is off
};

}  // namespace portico::tls
