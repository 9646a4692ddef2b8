// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/client_context.h"

#include <deque>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "portico/tls/errors.h"
#include "portico/tls/key_log.h"
#include "tls/certificate.h"
#include "tls/context_access.h"
#include "tls/session_data.h"

namespace portico::tls {
namespace detail {

// Sessions for resumption with upstream servers, shared by every worker, a few per key
// ("host" or "host:port"). A TLS 1.3 session is taken out when used: OpenSSL clients use a
// ticket once (RFC 8446 C.4) and a server sends several per full handshake (OpenSSL: 2), so
// keeping them all lets several connections resume before the next full handshake. A TLS 1.2
// session may be reused and stays until a newer one replaces it.
class ClientSessionCache {
public:
    static constexpr std::size_t kMaxKeys = 1024;      // beyond: an arbitrary key's sessions go
    static constexpr std::size_t kSessionsPerKey = 4;  // beyond: the oldest goes

    ClientSessionCache() = default;
    ClientSessionCache(const ClientSessionCache&) = delete;
    ClientSessionCache& operator=(const ClientSessionCache&) = delete;
    ~ClientSessionCache() {
        for (auto& entry : sessions_) freeAll(entry.second);
    }

    // Takes ownership of one reference to `session` when it returns true.
    bool store(const std::string& key, SSL_SESSION* session) noexcept {
        try {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = sessions_.find(key);
            if (it == sessions_.end()) {
                if (sessions_.size() >= kMaxKeys) {
                    freeAll(sessions_.begin()->second);
                    sessions_.erase(sessions_.begin());
                }
                it = sessions_.emplace(key, std::deque<SSL_SESSION*>()).first;
            }
            std::deque<SSL_SESSION*>& list = it->second;
            // A TLS 1.2 session replaces the ones before it (they are the same session or
            // older); TLS 1.3 tickets pile up to the bound.
            if (SSL_SESSION_get_protocol_version(session) != TLS1_3_VERSION) freeAll(list);
            list.push_back(session);
            while (list.size() > kSessionsPerKey) {
                SSL_SESSION_free(list.front());
                list.pop_front();
            }
            return true;
        } catch (...) {  // allocation failure: simply no resumption next time
            return false;
        }
    }

    // A reference to a resumable session stored under `key` (the newest), or nullptr. The
    // caller owns the reference.
    SSL_SESSION* take(const std::string& key) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = sessions_.find(key);
        if (it == sessions_.end()) return nullptr;
        std::deque<SSL_SESSION*>& list = it->second;
        while (!list.empty()) {
            SSL_SESSION* session = list.back();
            if (SSL_SESSION_is_resumable(session) != 1) {
                SSL_SESSION_free(session);
                list.pop_back();
                continue;
            }
            if (SSL_SESSION_get_protocol_version(session) == TLS1_3_VERSION) {
                list.pop_back();  // single use: our reference goes to the caller
            } else {
                SSL_SESSION_up_ref(session);
            }
            return session;
        }
        return nullptr;
    }

private:
    static void freeAll(std::deque<SSL_SESSION*>& list) noexcept {
        for (SSL_SESSION* session : list) SSL_SESSION_free(session);
        list.clear();
    }

    std::mutex mutex_;
    std::unordered_map<std::string, std::deque<SSL_SESSION*>> sessions_;
};

}  // namespace detail

ClientContext::ClientContext() : sessions_(std::make_unique<detail::ClientSessionCache>()) {}
ClientContext::~ClientContext() = default;

std::shared_ptr<ClientContext> ClientContext::build(const config::UpstreamTls& tls,
                                                    std::vector<std::string>& errors,
                                                    std::vector<std::string>& warnings,
                                                    std::shared_ptr<const KeyLog> keylog) {
    detail::Problems problems;
    std::shared_ptr<ClientContext> context = detail::ClientContextAccess::build(tls, problems);
    problems.flatten(errors, warnings);
    if (problems.hasErrors()) return nullptr;
    if (context && keylog) {
        context->keylog_ = std::move(keylog);
        detail::enableKeyLog(context->ctx_.get());
    }
    return context;
}

SslPtr ClientContext::newSession(std::string_view host, std::string_view session_key) const {
    std::shared_ptr<const ClientContext> self = weak_from_this().lock();
    if (!self) return {};
    SslPtr ssl(SSL_new(ctx_.get()));
    std::unique_ptr<detail::SessionData> data(new (std::nothrow) detail::SessionData);
    if (!ssl || !data) {
        ERR_clear_error();
        return {};
    }
    std::string name;
    try {
        data->cache_key.assign(session_key.empty() ? host : session_key);
        name.assign(sni_.empty() ? host : std::string_view(sni_));
    } catch (...) {
        return {};
    }
    if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
        name = name.substr(1, name.size() - 2);
    bool ip = detail::isIpLiteral(name);
    bool ok = true;
    // RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName".
    // SSL_set_tlsext_host_name() spelled out: the macro's C cast trips -Wold-style-cast.
    if (!ip && !name.empty())
        ok = SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                      name.data()) == 1;
    if (ok && verify_) {
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name.c_str()) == 1;
        } else {
            // RFC 6125 6.4.3: a wildcard matches one whole label, never "f*.example.com".
            SSL_set_hostflags(ssl.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = !name.empty() && SSL_set1_host(ssl.get(), name.c_str()) == 1;
        }
    }
    std::string key = data->cache_key;
    data->keylog = keylog_.get();
    data->client = std::move(self);
    if (!ok || !detail::attachSessionData(ssl.get(), std::move(data))) {
        ERR_clear_error();
        return {};
    }
    if (SSL_SESSION* session = sessions_->take(key)) {
        SSL_set_session(ssl.get(), session);  // takes its own reference
        SSL_SESSION_free(session);
    }
    SSL_set_connect_state(ssl.get());
    return ssl;
}

namespace detail {

std::shared_ptr<ClientContext> ClientContextAccess::build(const config::UpstreamTls& tls,
                                                          Problems& problems) {
    std::vector<X509Ptr> cas;
    if (!tls.ca.empty() && !loadCaFile(tls.ca, "tls.ca", problems, cas)) return nullptr;

    std::shared_ptr<ClientContext> context(new ClientContext());
    context->verify_ = tls.verify;
    context->sni_ = tls.sni;
    context->ctx_.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX* c = context->ctx_.get();
    if (c == nullptr) {
        problems.error("tls", "cannot create a TLS context: " + lastErrorString());
        return nullptr;
    }
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Sessions live in our own cache, keyed by server (OpenSSL's internal client cache is not
    // keyed at all); the callback hands each new session over (RFC 8446 4.6.1 tickets arrive
    // after the handshake, so this can happen during any SSL_read).
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, onNewSession);
    static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(c, kAlpn, sizeof kAlpn) != 0) {  // 0 is success here
        problems.error("tls", "cannot configure the TLS context: " + lastErrorString());
        return nullptr;
    }
    if (!cas.empty()) {
        X509_STORE* store = SSL_CTX_get_cert_store(c);
        for (const X509Ptr& ca : cas) {
            if (X509_STORE_add_cert(store, ca.get()) != 1) {
                problems.error("tls.ca", tls.ca + ": cannot use " + subjectString(ca.get()) +
                                             ": " + lastErrorString());
                return nullptr;
            }
        }
    } else if (tls.verify && SSL_CTX_set_default_verify_paths(c) != 1) {
        problems.error("tls.ca", "cannot load the system's CA store: " + lastErrorString());
        return nullptr;
    }
    if (tls.verify) {
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
        problems.warning("tls.verify",
                         "false: the upstream's certificate and host name are not checked");
    }
    return context;
}

int ClientContextAccess::onNewSession(SSL* ssl, SSL_SESSION* session) noexcept {
    SessionData* data = sessionData(ssl);
    if (data == nullptr || data->client == nullptr || data->cache_key.empty()) return 0;
    // We keep a copy, not the session itself: that one stays the connection's s->session, and
    // OpenSSL marks it not resumable when the connection is freed without close_notify or ends
    // with an alert, which would spoil the cached entry too. Returning 0 lets OpenSSL drop the
    // reference it handed us.
    SSL_SESSION* copy = SSL_SESSION_dup(session);
    if (copy == nullptr) return 0;
    if (!data->client->sessions_->store(data->cache_key, copy)) SSL_SESSION_free(copy);
    return 0;
}

}  // namespace detail
}  // namespace portico::tls
