// SPDX-License-Identifier: Apache-2.0
#pragma once
// Shared by the [tls] unit tests: the certificates of tests/support/tls_certs.py (made once per
// test run with the real openssl command line) and an in-memory handshake between two SSLs.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "portico/config/config.h"
#include "portico/tls/handles.h"

namespace portico::tls::testing {

// A temporary folder holding tls_certs.py's standard set; removed when the tests exit.
class CertificateFolder {
public:
    CertificateFolder() {
        namespace fs = std::filesystem;
        fs::path script = findScript();
        char pattern[] = "/tmp/portico-tls-unit-XXXXXX";
        if (mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
        std::string log = (dir_ / "generate.log").string();
        std::string command = "/usr/bin/python3 '" + script.string() + "' '" + dir_.string() +
                              "' > '" + log + "' 2>&1";
        if (script.empty() || std::system(command.c_str()) != 0) {
            std::string why = script.empty() ? "tests/support/tls_certs.py not found (set "
                                               "PORTICO_SOURCE_DIR)"
                                             : "tls_certs.py failed: " + readAll(log);
            removeDir();  // the destructor does not run when the constructor throws
            throw std::runtime_error(why);
        }
    }
    ~CertificateFolder() { removeDir(); }
    CertificateFolder(const CertificateFolder&) = delete;
    CertificateFolder& operator=(const CertificateFolder&) = delete;

    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    const std::filesystem::path& dir() const { return dir_; }

private:
    // tests/support/tls_certs.py: under PORTICO_SOURCE_DIR, next to this file (__FILE__ is
    // absolute in a CMake build, relative under dpkg's -ffile-prefix-map), or in a parent of
    // the working directory or of the test binary (the build tree sits inside the source tree).
    static std::filesystem::path findScript() {
        namespace fs = std::filesystem;
        const fs::path relative = fs::path("tests") / "support" / "tls_certs.py";
        std::vector<fs::path> roots;
        if (const char* env = std::getenv("PORTICO_SOURCE_DIR"); env != nullptr && *env != '\0')
            roots.emplace_back(env);
        roots.push_back(fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path());
        std::error_code ec;
        for (fs::path start : {fs::current_path(ec), fs::read_symlink("/proc/self/exe", ec).parent_path()}) {
            for (fs::path p = start; !p.empty(); p = p.parent_path()) {
                roots.push_back(p);
                if (p == p.root_path()) break;
            }
        }
        for (const fs::path& root : roots) {
            fs::path candidate = root / relative;
            if (fs::is_regular_file(candidate, ec)) return fs::absolute(candidate, ec);
        }
        return {};
    }

    static std::string readAll(const std::string& path) {
        std::string text;
        if (FILE* f = std::fopen(path.c_str(), "r")) {
            char buffer[4096];
            std::size_t n;
            while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
            std::fclose(f);
        }
        return text;
    }

    void removeDir() {
        std::error_code ec;
        if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
    }

    std::filesystem::path dir_;
};

inline const CertificateFolder& certs() {
    static CertificateFolder folder;
    return folder;
}

// certificates entry for tls_certs.py's "NAME.crt" / "NAME.key".
inline config::CertificateFiles pair(const std::string& name) {
    config::CertificateFiles files;
    files.cert = certs().path(name + ".crt");
    files.key = certs().path(name + ".key");
    return files;
}

inline config::ListenerTls listenerTls(const std::vector<std::string>& names) {
    config::ListenerTls tls;
    for (const std::string& name : names) tls.certificates.push_back(pair(name));
    return tls;
}

// Runs both sides of a handshake over an in-memory BIO pair until both finish or one fails.
// Afterwards the client reads once so that TLS 1.3 tickets sent after the handshake arrive.
// Returns true when both sides completed.
inline bool handshake(SSL* client, SSL* server) {
    BIO* client_bio = nullptr;
    BIO* server_bio = nullptr;
    if (BIO_new_bio_pair(&client_bio, 0, &server_bio, 0) != 1) return false;
    SSL_set_bio(client, client_bio, client_bio);
    SSL_set_bio(server, server_bio, server_bio);
    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < 100 && !(client_done && server_done); ++round) {
        if (!client_done) {
            int r = SSL_do_handshake(client);
            if (r == 1) {
                client_done = true;
            } else {
                int e = SSL_get_error(client, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
            }
        }
        if (!server_done) {
            int r = SSL_do_handshake(server);
            if (r == 1) {
                server_done = true;
            } else {
                int e = SSL_get_error(server, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
            }
        }
    }
    if (!(client_done && server_done)) return false;
    // Post-handshake messages (NewSessionTicket) reach the client on its next read.
    char byte;
    for (int i = 0; i < 4; ++i) {
        if (SSL_read(client, &byte, 1) > 0) break;
        int e = SSL_get_error(client, -1);
        if (e != SSL_ERROR_WANT_READ) break;
    }
    ERR_clear_error();
    return true;
}

// "site.test" from the server certificate's CN as the client saw it.
inline std::string peerCommonName(const SSL* ssl) {
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert == nullptr) return "";
    char cn[256] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    X509_free(cert);
    return cn;
}

// "EC" or "RSA": the type of the server's public key as the client saw it.
inline std::string peerKeyType(const SSL* ssl) {
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert == nullptr) return "";
    const char* name = EVP_PKEY_get0_type_name(X509_get0_pubkey(cert));
    std::string type = name != nullptr ? name : "";
    X509_free(cert);
    return type;
}

// A plain OpenSSL client (no verification) for tests that probe the server alone.
struct PlainClient {
    SslCtxPtr ctx{SSL_CTX_new(TLS_client_method())};
    SslPtr make(const char* sni = nullptr) const {
        SslPtr ssl(SSL_new(ctx.get()));
        if (sni != nullptr) SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                                     const_cast<char*>(sni));
        SSL_set_connect_state(ssl.get());
        return ssl;
    }
};

inline bool contains(const std::vector<std::string>& lines, const std::string& part) {
    for (const std::string& line : lines)
        if (line.find(part) != std::string::npos) return true;
    return false;
}

inline std::string joined(const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    return text;
}

}  // namespace portico::tls::testing
