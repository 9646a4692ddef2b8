// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/server_context.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <string_view>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "portico/tls/errors.h"
#include "portico/tls/key_log.h"
#include "tls/certificate.h"
#include "tls/context_access.h"
#include "tls/http2_ciphers.h"
#include "tls/session_data.h"
#include "tls/ticket_keys.h"

namespace portico::tls {
namespace {

using detail::LoadedCertificate;
using detail::Problems;
using detail::X509Ptr;

constexpr std::size_t kMaxServerName = 253;  // RFC 1035 2.3.4; a longer SNI never matches

// Lower-cases `name` into `buffer` and drops one trailing dot (RFC 6066 3: SNI carries no
// trailing dot, but be lenient). Returns "" when the name cannot be one of ours.
std::string_view normalizeName(std::string_view name, char (&buffer)[kMaxServerName + 1]) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty() || name.size() > kMaxServerName) return {};
    for (std::size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        buffer[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return {buffer, name.size()};
}

std::string certKey(std::size_t index, const char* field) {
    return "tls.certificates[" + std::to_string(index) + "]." + field;
}

// ALPN wire format (RFC 7301 3.1): each protocol as a length byte and its bytes.
std::string alpnWire(const std::vector<std::string>& protocols) {
    std::string wire;
    for (const std::string& p : protocols) {
        if (p.empty() || p.size() > 255) continue;  // the loader allows only http/1.x anyway
        wire.push_back(static_cast<char>(p.size()));
        wire += p;
    }
    return wire;
}

// The session ID context (RFC 5246 7.4.1.2 session resumption; OpenSSL refuses to resume a
// session whose context differs): a digest of what the listener accepts, so that a session from
// one listener never resumes on another with other certificates or client CA. Required at all
// once client certificates are verified. The client CAs go in by content, not only by path: a
// resumed session skips the client certificate check, so a reload that takes a CA out of the
// file must end the sessions its certificates opened (the ticket keys outlive reloads). Each
// group of certificates (the names SNI picks it by) has a context of its own: RFC 6066 3, a
// server MUST NOT resume a session for another server name than the one it was made for (a
// session of other.test offered with SNI site.test gets a full handshake and site.test's
// certificate); onClientHello switches to the group before OpenSSL looks the session up.
bool sessionIdContext(const config::ListenerTls& tls, const std::vector<X509Ptr>& client_cas,
                      const std::vector<std::string>& group_names,
                      unsigned char (&out)[SSL_MAX_SID_CTX_LENGTH], unsigned int& length) {
    std::string material = "portico-server";
    for (const std::string& name : group_names) material += '\0' + name;
    material += '\0';
    for (const config::CertificateFiles& files : tls.certificates) {
        material += '\0' + files.cert + '\0' + files.key;
    }
    material += '\0' + tls.client_ca;
    for (const X509Ptr& ca : client_cas) {
        unsigned char ca_digest[EVP_MAX_MD_SIZE];
        unsigned int ca_digest_length = 0;
        if (X509_digest(ca.get(), EVP_sha256(), ca_digest, &ca_digest_length) != 1) return false;
        material += '\0';
        material.append(reinterpret_cast<const char*>(ca_digest), ca_digest_length);
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    if (EVP_Digest(material.data(), material.size(), digest, &digest_length, EVP_sha256(),
                   nullptr) != 1) {
        return false;
    }
    length = std::min<unsigned int>(digest_length, SSL_MAX_SID_CTX_LENGTH);
    std::memcpy(out, digest, length);
    return true;
}

// AES-256-CBC fetched once: EVP_aes_256_cbc() would make OpenSSL 3 look the implementation up
// in the provider store (under a lock shared by all threads) on every ticket. Never freed.
const EVP_CIPHER* ticketCipher() {
    static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
    return cipher != nullptr ? cipher : EVP_aes_256_cbc();
}

bool setMacKey(EVP_MAC_CTX* mac, detail::TicketKey& key) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac_key.data(),
                                          key.hmac_key.size()),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(mac, params) == 1;
}

bool offers(const config::ListenerTls& tls, std::string_view protocol) {
    return std::find(tls.alpn.begin(), tls.alpn.end(), protocol) != tls.alpn.end();
}

// RFC 9113 9.2.2: a `ciphers:` list on a listener offering h2 to TLS 1.2 clients that enables
// suites HTTP/2 must not use. onAlpnSelect keeps h2 off such connections; the operator hears of
// it here (OpenSSL's default list, `ciphers` absent, has such suites too: no warning then, the
// ALPN choice is the whole answer).
void warnHttp2ForbiddenSuites(const config::ListenerTls& tls, const SSL_CTX* ctx, Problems& problems) {
    if (tls.ciphers.empty() || tls.min_version != config::TlsVersion::Tls12 || !offers(tls, "h2")) return;
    const std::vector<std::string> forbidden = detail::http2ForbiddenSuites(ctx);
    if (forbidden.empty()) return;
    std::string examples;
    for (std::size_t i = 0; i < forbidden.size() && i < 3; ++i) examples += (i > 0 ? ", " : "") + forbidden[i];
    if (forbidden.size() > 3) examples += ", ...";
    const bool fallback = offers(tls, "http/1.1") || offers(tls, "http/1.0");
    problems.warning("tls.ciphers",
                     "lets TLS 1.2 clients pick " + std::to_string(forbidden.size()) +
                         " suite" + (forbidden.size() == 1 ? "" : "s") +
                         " HTTP/2 must not use (RFC 9113 9.2.2: ECDHE or DHE with an AEAD cipher, "
                         "such as AES-GCM or ChaCha20-Poly1305, only): " + examples + "; over one, ALPN " +
                         (fallback ? "selects HTTP/1.1 instead of h2"
                                   : "has no protocol left to select (no_application_protocol)"));
}

}  // namespace

ServerContext::~ServerContext() = default;

std::shared_ptr<ServerContext> ServerContext::build(const config::ListenerTls& tls,
                                                    std::vector<std::string>& errors,
                                                    std::vector<std::string>& warnings,
                                                    const ServerContext* previous,
                                                    std::shared_ptr<const KeyLog> keylog) {
    Problems problems;
    std::shared_ptr<ServerContext> context =
        detail::ServerContextAccess::build(tls, problems, previous, std::time(nullptr));
    problems.flatten(errors, warnings);
    if (problems.hasErrors()) return nullptr;
    if (context && keylog) {
        context->keylog_ = std::move(keylog);
        for (const Group& group : context->groups_) detail::enableKeyLog(group.ctx.get());
    }
    return context;
}

SslPtr ServerContext::newSession() const {
    if (groups_.empty()) return {};
    std::shared_ptr<const ServerContext> self = weak_from_this().lock();
    if (!self) return {};  // not owned by a shared_ptr: build() always makes it so
    SslPtr ssl(SSL_new(groups_.front().ctx.get()));
    std::unique_ptr<detail::SessionData> data(new (std::nothrow) detail::SessionData);
    if (!ssl || !data) {
        ERR_clear_error();
        return {};
    }
    data->keylog = keylog_.get();
    data->server = std::move(self);
    if (!detail::attachSessionData(ssl.get(), std::move(data))) {
        ERR_clear_error();
        return {};
    }
    SSL_set_accept_state(ssl.get());
    return ssl;
}

std::size_t ServerContext::groupFor(std::string_view name) const {
    if (name.empty()) return 0;
    if (auto it = exact_names_.find(name); it != exact_names_.end()) return it->second;
    // RFC 6125 6.4.3: the wildcard stands for exactly one whole left-most label.
    std::size_t dot = name.find('.');
    if (dot != std::string_view::npos && dot > 0) {
        if (auto it = wildcard_names_.find(name.substr(dot + 1)); it != wildcard_names_.end())
            return it->second;
    }
    return 0;
}

std::size_t ServerContext::certificateFor(std::string_view server_name) const {
    if (groups_.empty()) return 0;
    char buffer[kMaxServerName + 1];
    return groups_[groupFor(normalizeName(server_name, buffer))].first_certificate;
}

namespace detail {

std::shared_ptr<ServerContext> ServerContextAccess::build(const config::ListenerTls& tls,
                                                          Problems& problems,
                                                          const ServerContext* previous,
                                                          std::time_t now) {
    if (tls.certificates.empty()) {
        problems.error("tls.certificates", "at least one certificate is required");
        return nullptr;
    }
    // Load everything first so that one run reports every broken file.
    std::vector<LoadedCertificate> loaded(tls.certificates.size());
    bool ok = true;
    for (std::size_t i = 0; i < tls.certificates.size(); ++i) {
        if (!loadCertificate(tls.certificates[i], "tls", i, now, problems, loaded[i])) ok = false;
    }
    std::vector<X509Ptr> client_cas;
    if (!tls.client_ca.empty() && !loadCaFile(tls.client_ca, "tls.client_ca", problems, client_cas))
        ok = false;
    if (!ok) return nullptr;

    // Group by the exact set of names: one SSL_CTX per set, holding one certificate per key
    // type, so that OpenSSL picks RSA or ECDSA by what the client's signature algorithms allow.
    struct Pending {
        std::vector<std::string> names;  // sorted, unique
        std::vector<std::size_t> members;
    };
    std::vector<Pending> pending;
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        std::vector<std::string> names = loaded[i].names;
        std::sort(names.begin(), names.end());
        names.erase(std::unique(names.begin(), names.end()), names.end());
        auto same = std::find_if(pending.begin(), pending.end(),
                                 [&](const Pending& p) { return p.names == names; });
        if (same == pending.end()) {
            pending.push_back({std::move(names), {i}});
            continue;
        }
        bool clash = false;
        for (std::size_t m : same->members) {
            if (loaded[m].key_type != loaded[i].key_type) continue;
            problems.error(certKey(i, "cert"),
                           tls.certificates[i].cert + ": serves the same names with the same key "
                               "type (" + loaded[i].key_type + ") as certificates[" +
                               std::to_string(m) + "]; only one of them could ever be used",
                           static_cast<int>(i));
            clash = true;
        }
        if (clash) {
            ok = false;
        } else {
            same->members.push_back(i);
        }
    }
    if (!ok) return nullptr;

    std::shared_ptr<ServerContext> context(new ServerContext());
    context->alpn_wire_ = alpnWire(tls.alpn);
    if (tls.session_tickets) {
        context->tickets_ = previous != nullptr && previous->tickets_ != nullptr
                                ? previous->tickets_
                                : std::make_shared<TicketKeyRing>();
        if (!context->tickets_->ok()) {
            problems.error("tls.session_tickets", "cannot create session ticket keys: " +
                                                      lastErrorString());
            return nullptr;
        }
    }
    for (const Pending& group : pending) {
        unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
        unsigned int sid_length = 0;
        if (!sessionIdContext(tls, client_cas, group.names, sid, sid_length)) {
            problems.error("tls", "cannot compute the session ID context: " + lastErrorString());
            return nullptr;
        }
        SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
        if (!ctx) {
            problems.error("tls", "cannot create a TLS context: " + lastErrorString());
            return nullptr;
        }
        SSL_CTX* c = ctx.get();
        int min_version = tls.min_version == config::TlsVersion::Tls13 ? TLS1_3_VERSION
                                                                       : TLS1_2_VERSION;
        // RFC 5746 / RFC 8446 4.1.2: renegotiation only costs CPU and invites attacks; a proxy
        // never needs it.
        std::uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
        if (!tls.session_tickets) options |= SSL_OP_NO_TICKET;
        SSL_CTX_set_options(c, options);
        // RELEASE_BUFFERS: an idle connection holds no 16 KB read/write buffers (issue 4's
        // memory target for idle wss); net::Stream turns it off while a connection stays busy
        // (net/tls_buffer_sweep.h). ACCEPT_MOVING_WRITE_BUFFER: a retried SSL_write may come
        // from another address once the evbuffer has been rearranged.
        SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (SSL_CTX_set_min_proto_version(c, min_version) != 1 ||
            SSL_CTX_set_session_id_context(c, sid, sid_length) != 1) {
            problems.error("tls", "cannot configure the TLS context: " + lastErrorString());
            return nullptr;
        }
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
        // RFC 8446 8 and E.5: 0-RTT data can be replayed; the gateway never accepts it.
        SSL_CTX_set_max_early_data(c, 0);
        // One TLS 1.3 ticket per full handshake (OpenSSL sends 2): a browser uses one per
        // connection it resumes, and each costs an encryption on the handshake's path. Without
        // session_tickets the ticket is stateful (an ID in the session cache), so TLS 1.3 still
        // resumes from the cache.
        SSL_CTX_set_num_tickets(c, 1);
        if (!tls.ciphers.empty() && SSL_CTX_set_cipher_list(c, tls.ciphers.c_str()) != 1) {
            std::string reason = lastErrorString();
            problems.error("tls.ciphers", "\"" + tls.ciphers + "\" selects no usable cipher" +
                                              (reason.empty() ? "" : " (" + reason + ")"));
            return nullptr;
        }
        if (context->groups_.empty()) warnHttp2ForbiddenSuites(tls, c, problems);
        // SSL_CTX_set_tlsext_servername_callback/_arg spelled out: the macros' C casts trip
        // -Wold-style-cast. OpenSSL calls the callback back with its real signature.
        SSL_CTX_callback_ctrl(c, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                              reinterpret_cast<void (*)()>(&ServerContextAccess::onServerName));
        SSL_CTX_ctrl(c, SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG, 0, context.get());
        SSL_CTX_set_client_hello_cb(c, ServerContextAccess::onClientHello, context.get());
        if (!context->alpn_wire_.empty())
            SSL_CTX_set_alpn_select_cb(c, ServerContextAccess::onAlpnSelect, context.get());
        if (context->tickets_)
            SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ServerContextAccess::onTicketKey);
        if (!client_cas.empty()) {
            X509_STORE* store = SSL_CTX_get_cert_store(c);
            for (const X509Ptr& ca : client_cas) {
                if (X509_STORE_add_cert(store, ca.get()) != 1 ||
                    SSL_CTX_add_client_CA(c, ca.get()) != 1) {
                    problems.error("tls.client_ca",
                                   tls.client_ca + ": cannot use " + subjectString(ca.get()) +
                                       ": " + lastErrorString());
                    return nullptr;
                }
            }
            SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        }

        for (std::size_t m : group.members) {
            LoadedCertificate& cert = loaded[m];
            bool used = SSL_CTX_use_certificate(c, cert.leaf.get()) == 1 &&
                        SSL_CTX_use_PrivateKey(c, cert.key.get()) == 1;
            if (used) {
                // The chain applies to the certificate just set (the current key type's slot).
                STACK_OF(X509)* chain = sk_X509_new_null();
                used = chain != nullptr;
                for (const X509Ptr& extra : cert.chain) {
                    if (used && sk_X509_push(chain, extra.get()) <= 0) used = false;
                }
                if (used && SSL_CTX_set1_chain(c, chain) != 1) used = false;
                sk_X509_free(chain);  // set1 took its own references
            }
            if (!used) {
                problems.error(certKey(m, "cert"),
                               tls.certificates[m].cert + ": cannot use the certificate: " +
                                   lastErrorString(),
                               static_cast<int>(m));
                return nullptr;
            }
        }
        context->groups_.push_back({std::move(ctx), group.members.front()});
    }

    // Names to groups. The first certificate that claims a name keeps it.
    for (std::size_t g = 0; g < pending.size(); ++g) {
        std::size_t first = pending[g].members.front();
        if (g > 0 && pending[g].names.empty()) {
            problems.warning(certKey(first, "cert"),
                             tls.certificates[first].cert +
                                 ": the certificate names no host (no DNS subjectAltName); SNI "
                                 "never selects it",
                             static_cast<int>(first));
        }
        for (const std::string& name : pending[g].names) {
            bool wildcard = name.size() > 2 && name.compare(0, 2, "*.") == 0;
            std::string_view key = wildcard ? std::string_view(name).substr(2) : name;
            if (key.find('*') != std::string_view::npos) continue;  // partial wildcards: never
            ServerContext::NameMap& map = wildcard ? context->wildcard_names_ : context->exact_names_;
            auto [it, inserted] = map.emplace(std::string(key), g);
            if (!inserted && it->second != g) {
                std::size_t owner = pending[it->second].members.front();
                problems.warning(certKey(first, "cert"),
                                 tls.certificates[first].cert + ": " + name +
                                     " is already served by certificates[" +
                                     std::to_string(owner) + "], which SNI picks for it",
                                 static_cast<int>(first));
            }
        }
    }
    return context;
}

// The certificate group by SNI, chosen before OpenSSL looks the offered session up (the server
// name callback comes after that): the group's session ID context is the one a session must
// match to resume. The extension is read leniently (RFC 6066 3: a list of a type byte and a
// length-prefixed name); OpenSSL checks it properly afterwards.
int ServerContextAccess::onClientHello(SSL* ssl, int* alert, void* arg) noexcept {
    const auto* self = static_cast<const ServerContext*>(arg);
    const unsigned char* ext = nullptr;
    std::size_t length = 0;
    if (self == nullptr || SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &length) != 1 ||
        length < 5 || ext[2] != TLSEXT_NAMETYPE_host_name)
        return SSL_CLIENT_HELLO_SUCCESS;  // no SNI (or none we can read): the default group
    const std::size_t name_length = (std::size_t{ext[3]} << 8) | ext[4];
    if (name_length > length - 5) return SSL_CLIENT_HELLO_SUCCESS;
    char buffer[kMaxServerName + 1];
    const std::size_t group = self->groupFor(
        normalizeName(std::string_view(reinterpret_cast<const char*>(ext + 5), name_length), buffer));
    // An unknown name gets the default certificate, as nginx and HAProxy do; the client decides
    // whether it accepts it.
    if (group != 0 && SSL_set_SSL_CTX(ssl, self->groups_[group].ctx.get()) == nullptr) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

// onClientHello chose the group already; accepting the name here has OpenSSL acknowledge it and
// keep it with a TLS 1.2 session.
int ServerContextAccess::onServerName(SSL* /*ssl*/, int* /*alert*/, void* /*arg*/) noexcept {
    return SSL_TLSEXT_ERR_OK;
}

int ServerContextAccess::onAlpnSelect(SSL* ssl, const unsigned char** out,
                                      unsigned char* out_length, const unsigned char* in,
                                      unsigned int in_length, void* arg) noexcept {
    const auto* self = static_cast<const ServerContext*>(arg);
    const std::string& ours = self->alpn_wire_;
    // RFC 9113 9.2.2: not h2 over a TLS 1.2 suite HTTP/2 forbids (the client would have to end
    // the connection with INADEQUATE_SECURITY); HTTP/1.1 instead when both sides offer it.
    // OpenSSL calls us after it chose the TLS 1.2 suite ("after SNI and cipher negotiation
    // (HTTP/2 restricts permitted ciphers)", tls_post_process_client_hello), so the pending
    // suite is the one the connection gets, a resumed session's too. TLS 1.3 suites all qualify.
    const bool h2_allowed =
        SSL_version(ssl) >= TLS1_3_VERSION || detail::http2Allows(SSL_get_pending_cipher(ssl));
    // Our preference order wins (RFC 7301 3.2: the server selects). The client's list is
    // walked with bounds checks even though OpenSSL validated it.
    for (std::size_t i = 0; i < ours.size();) {
        std::size_t length = static_cast<unsigned char>(ours[i]);
        const char* protocol = ours.data() + i + 1;
        if (!h2_allowed && std::string_view(protocol, length) == "h2") {
            i += 1 + length;
            continue;
        }
        for (unsigned int j = 0; j < in_length;) {
            unsigned int offered = in[j];
            if (offered == 0 || j + 1 + offered > in_length) break;
            if (offered == length && std::memcmp(in + j + 1, protocol, length) == 0) {
                *out = in + j + 1;
                *out_length = static_cast<unsigned char>(offered);
                return SSL_TLSEXT_ERR_OK;
            }
            j += 1 + offered;
        }
        i += 1 + length;
    }
    // RFC 7301 3.2: no protocol in common is a fatal no_application_protocol alert. OpenSSL
    // calls us only when the client sent ALPN, so clients without it are unaffected.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int ServerContextAccess::onTicketKey(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                                     EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                                     int encrypt) noexcept {
    SessionData* data = sessionData(ssl);
    TicketKeyRing* ring =
        data != nullptr && data->server != nullptr ? data->server->tickets_.get() : nullptr;
    // 0: no ticket issued / the ticket is not ours; the handshake goes on without it.
    if (ring == nullptr) return 0;
    const EVP_CIPHER* aes = ticketCipher();
    TicketKey key;
    int result = 0;
    if (encrypt == 1) {
        int iv_length = EVP_CIPHER_get_iv_length(aes);
        if (ring->encryptionKey(key) && iv_length > 0 && iv_length <= EVP_MAX_IV_LENGTH &&
            RAND_bytes(iv, iv_length) == 1) {
            std::memcpy(key_name, key.name.data(), key.name.size());
            bool ready = EVP_EncryptInit_ex(cipher, aes, nullptr, key.aes_key.data(), iv) == 1 &&
                         setMacKey(mac, key);
            result = ready ? 1 : -1;
        }
    } else {
        int found = ring->decryptionKey(key_name, key);
        if (found != 0) {
            bool ready = setMacKey(mac, key) &&
                         EVP_DecryptInit_ex(cipher, aes, nullptr, key.aes_key.data(), iv) == 1;
            // 2 = accepted, and issue a fresh ticket: for a ticket made with an older key, and
            // for every TLS 1.3 resumption. OpenSSL clients (curl, Python, our own upstream
            // side) use a TLS 1.3 ticket once (RFC 8446 C.4); without a new one their next
            // connection would be a full handshake.
            if (found == 1 && SSL_version(ssl) == TLS1_3_VERSION) found = 2;
            result = ready ? found : -1;
        }
    }
    OPENSSL_cleanse(&key, sizeof key);
    return result;
}

}  // namespace detail
}  // namespace portico::tls
