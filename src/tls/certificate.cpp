// SPDX-License-Identifier: Apache-2.0
#include "tls/certificate.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "portico/core/handles.h"
#include "portico/tls/errors.h"

namespace portico::tls::detail {
namespace {

struct BioDeleter { void operator()(BIO* p) const { BIO_free(p); } };
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

std::string indexKey(const std::string& prefix, std::size_t index, const char* field) {
    return prefix + ".certificates[" + std::to_string(index) + "]." + field;
}

// Reads a whole file of at most kMaxPemFileBytes. On failure `why` says what went wrong in the
// words of strerror ("No such file or directory", "Permission denied").
bool readFile(const std::string& path, std::string& out, std::string& why) {
    if (path.empty()) {
        why = "no file given";
        return false;
    }
    core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        why = std::strerror(errno);
        return false;
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) {
        why = std::strerror(errno);
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        why = "is a directory";
        return false;
    }
    out.clear();
    char chunk[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            why = std::strerror(errno);
            return false;
        }
        if (n == 0) break;
        if (out.size() + static_cast<std::size_t>(n) > kMaxPemFileBytes) {
            why = "larger than " + std::to_string(kMaxPemFileBytes / (1024 * 1024)) + " MiB";
            return false;
        }
        out.append(chunk, static_cast<std::size_t>(n));
    }
    return true;
}

BioPtr memoryBio(const std::string& data) {
    return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Every certificate in a PEM text, in order. Returns false with `why` when one of them is
// damaged or there is none at all.
bool readCertificates(const std::string& pem, std::vector<X509Ptr>& out, std::string& why) {
    BioPtr bio = memoryBio(pem);
    if (!bio) {
        why = "out of memory";
        return false;
    }
    ERR_clear_error();
    for (;;) {
        X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!cert) break;
        out.push_back(std::move(cert));
    }
    // The loop ends with "no start line" once the text holds no further PEM block: that is the
    // normal end. Anything else is a damaged block.
    unsigned long last = ERR_peek_last_error();
    bool clean_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
    if (!out.empty() && (last == 0 || clean_end)) {
        ERR_clear_error();
        return true;
    }
    if (out.empty() && clean_end) {
        ERR_clear_error();
        why = "no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)";
        return false;
    }
    why = "invalid certificate: " + lastErrorString();
    return false;
}

// The pem_password_cb: asked only for an encrypted key. We never have a passphrase to give
// (issue 4: passphrase-protected keys are not supported), so note that it was asked and refuse.
int refusePassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* userdata) {
    *static_cast<bool*>(userdata) = true;
    return -1;
}

std::string formatTime(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[40];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return text;
}

bool toTimeT(const ASN1_TIME* time, std::time_t& out) {
    std::tm tm{};
    if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return false;
    out = timegm(&tm);
    return true;
}

std::string lowerName(const unsigned char* data, int length) {
    std::string name;
    if (data == nullptr || length <= 0 || length > 253) return name;
    name.reserve(static_cast<std::size_t>(length));
    for (int i = 0; i < length; ++i) {
        unsigned char c = data[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                  c == '_' || c == '*';
        if (!ok) return {};  // not a host name (an embedded NUL, spaces): never matches SNI
        name.push_back(static_cast<char>(c));
    }
    if (!name.empty() && name.back() == '.') name.pop_back();
    return name;
}

// Whether a certificate of `chain` issued chain[index] (itself, when self-signed).
bool issuedInFile(const std::vector<X509*>& chain, std::size_t index) {
    return std::any_of(chain.begin(), chain.end(),
                       [&](X509* c) { return X509_check_issued(c, chain[index]) == X509_V_OK; });
}

// Whether chain[index] issued another certificate of `chain`.
bool issuesInFile(const std::vector<X509*>& chain, std::size_t index) {
    for (std::size_t j = 0; j < chain.size(); ++j)
        if (j != index && X509_check_issued(chain[index], chain[j]) == X509_V_OK) return true;
    return false;
}

}  // namespace

void Problems::error(std::string key, std::string message, int certificate) {
    list_.push_back({false, std::move(key), certificate, std::move(message)});
    ++errors_;
}

void Problems::warning(std::string key, std::string message, int certificate) {
    list_.push_back({true, std::move(key), certificate, std::move(message)});
}

void Problems::flatten(std::vector<std::string>& errors, std::vector<std::string>& warnings) const {
    for (const Problem& p : list_) {
        std::string line = p.key.empty() ? p.message : p.key + ": " + p.message;
        (p.warning ? warnings : errors).push_back(std::move(line));
    }
}

std::vector<std::string> serverNames(const X509* cert) {
    std::vector<std::string> names;
    auto* sans = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (sans != nullptr) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* entry = sk_GENERAL_NAME_value(sans, i);
            if (entry->type != GEN_DNS) continue;
            std::string name = lowerName(ASN1_STRING_get0_data(entry->d.dNSName),
                                         ASN1_STRING_length(entry->d.dNSName));
            if (!name.empty()) names.push_back(std::move(name));
        }
        GENERAL_NAMES_free(sans);
    }
    // RFC 6125 6.4.4: the CN is a fallback only for a certificate without DNS names.
    if (names.empty()) {
        const X509_NAME* subject = X509_get_subject_name(cert);
        int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (at >= 0) {
            const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
            std::string name = lowerName(ASN1_STRING_get0_data(cn), ASN1_STRING_length(cn));
            if (!name.empty()) names.push_back(std::move(name));
        }
    }
    return names;
}

std::string subjectString(const X509* cert) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at >= 0) {
        const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
        const unsigned char* data = ASN1_STRING_get0_data(cn);
        if (data != nullptr)
            return "CN=" + std::string(reinterpret_cast<const char*>(data),
                                       static_cast<std::size_t>(ASN1_STRING_length(cn)));
    }
    char line[256];
    X509_NAME_oneline(subject, line, sizeof line);
    return line;
}

void checkValidity(const X509* cert, std::time_t now, const std::string& key,
                   const std::string& what, int certificate, Problems& problems) {
    std::time_t not_before = 0;
    std::time_t not_after = 0;
    if (!toTimeT(X509_get0_notAfter(cert), not_after) ||
        !toTimeT(X509_get0_notBefore(cert), not_before)) {
        problems.warning(key, what + ": cannot read the certificate's validity dates", certificate);
        return;
    }
    if (not_after <= now) {
        problems.warning(key, what + ": certificate " + subjectString(cert) + " expired on " +
                                  formatTime(not_after),
                         certificate);
    } else if (not_after - now <= std::time_t{kExpiryWarningDays} * 86400) {
        // Rounded up: a certificate made "-days 3" a moment ago expires in 3 days, not 2.
        std::time_t left = not_after - now;
        long days = static_cast<long>((left + 86399) / 86400);
        problems.warning(key,
                         what + ": certificate " + subjectString(cert) + " expires in " +
                             (left < 86400 ? std::string("less than a day")
                                           : std::to_string(days) + " days") +
                             " (" + formatTime(not_after) + ")",
                         certificate);
    }
    if (not_before > now) {
        problems.warning(key, what + ": certificate " + subjectString(cert) +
                                  " is not valid before " + formatTime(not_before),
                         certificate);
    }
}

bool loadCertificate(const config::CertificateFiles& files, const std::string& prefix,
                     std::size_t index, std::time_t now, Problems& problems,
                     LoadedCertificate& out) {
    const int cert_index = static_cast<int>(index);
    const std::string cert_key = indexKey(prefix, index, "cert");
    const std::string key_key = indexKey(prefix, index, "key");
    bool ok = true;

    std::string text;
    std::string why;
    std::vector<X509Ptr> certs;
    if (!readFile(files.cert, text, why)) {
        problems.error(cert_key, files.cert + ": cannot read: " + why, cert_index);
        ok = false;
    } else if (!readCertificates(text, certs, why)) {
        problems.error(cert_key, files.cert + ": " + why, cert_index);
        ok = false;
    }

    EvpPkeyPtr key;
    if (!readFile(files.key, text, why)) {
        problems.error(key_key, files.key + ": cannot read: " + why, cert_index);
        ok = false;
    } else {
        BioPtr bio = memoryBio(text);
        bool passphrase_asked = false;
        ERR_clear_error();
        if (bio) key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, refusePassphrase,
                                                   &passphrase_asked));
        // An encrypted PKCS#8 or traditional key asks for a passphrase; say so plainly instead
        // of OpenSSL's "bad decrypt".
        bool encrypted = passphrase_asked || text.find("ENCRYPTED") != std::string::npos;
        if (!key && encrypted) {
            ERR_clear_error();
            problems.error(key_key,
                           files.key + ": passphrase-protected keys are not supported (remove "
                                       "the passphrase: openssl pkey -in KEY -out PLAIN.key)",
                           cert_index);
            ok = false;
        } else if (!key) {
            std::string reason = lastErrorString();
            problems.error(key_key,
                           files.key + ": no private key found (expected PEM \"BEGIN PRIVATE "
                                       "KEY\")" + (reason.empty() ? "" : ": " + reason),
                           cert_index);
            ok = false;
        }
    }
    if (!ok) return false;

    X509Ptr leaf = std::move(certs.front());
    if (X509_check_private_key(leaf.get(), key.get()) != 1) {
        ERR_clear_error();
        // The key of a later certificate: the file has its chain in the wrong order.
        std::string order;
        for (std::size_t i = 1; i < certs.size() && order.empty(); ++i) {
            if (X509_check_private_key(certs[i].get(), key.get()) == 1)
                order = "; it matches " + subjectString(certs[i].get()) + ", certificate " +
                        std::to_string(i + 1) + " of the file: the certificate of the key comes first";
            ERR_clear_error();
        }
        problems.error(key_key,
                       files.key + ": the key does not match the certificate " + files.cert +
                           " (" + subjectString(leaf.get()) + ")" + order,
                       cert_index);
        return false;
    }

    checkValidity(leaf.get(), now, cert_key, files.cert, cert_index, problems);
    bool warned_order = false;  // one warning for a chain out of order
    std::vector<X509*> chain{leaf.get()};
    for (std::size_t i = 1; i < certs.size(); ++i) chain.push_back(certs[i].get());
    for (std::size_t i = 1; i < certs.size(); ++i) {
        checkValidity(certs[i].get(), now, cert_key,
                      files.cert + " (chain certificate " + std::to_string(i) + ")", cert_index,
                      problems);
        // Sent as they are, in this order. A chain certificate that did not issue the one
        // before it: when the file holds the missing issuer somewhere or that certificate issued
        // another one of the file (the order mixed up, two versions of an intermediate), the
        // chain is there and current clients find it (RFC 8446 4.4.2), older TLS 1.2 ones may
        // not; when neither (another CA's, an old intermediate) the chain has a hole.
        X509* issued = i == 1 ? leaf.get() : certs[i - 1].get();
        if (X509_check_issued(certs[i].get(), issued) != X509_V_OK) {
            const bool in_file = issuedInFile(chain, i - 1) || issuesInFile(chain, i);
            if (in_file && warned_order) continue;
            warned_order = warned_order || in_file;
            problems.warning(cert_key,
                             files.cert + ": chain certificate " + std::to_string(i) + " (" +
                                 subjectString(certs[i].get()) + ") did not issue the certificate before it (" +
                                 subjectString(issued) + "); " +
                                 (in_file ? "the chain is out of order: some older TLS 1.2 clients may fail to verify "
                                            "it"
                                          : "no certificate in the file issued it: clients that need the chain cannot "
                                            "verify it") +
                                 " (put the chain in order: the leaf, then its issuer, and so on)",
                             cert_index);
        }
        ERR_clear_error();
    }

    out.names = serverNames(leaf.get());
    const char* type = EVP_PKEY_get0_type_name(key.get());
    out.key_type = type != nullptr ? type : "unknown";
    out.leaf = std::move(leaf);
    out.chain.clear();
    for (std::size_t i = 1; i < certs.size(); ++i) out.chain.push_back(std::move(certs[i]));
    out.key = std::move(key);
    return true;
}

bool loadCaFile(const std::string& path, const std::string& key, Problems& problems,
                std::vector<X509Ptr>& out) {
    std::string text;
    std::string why;
    if (!readFile(path, text, why)) {
        problems.error(key, path + ": cannot read: " + why);
        return false;
    }
    if (!readCertificates(text, out, why)) {
        problems.error(key, path + ": " + why);
        return false;
    }
    return true;
}

bool isIpLiteral(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty() || host.size() >= INET6_ADDRSTRLEN) return false;
    char text[INET6_ADDRSTRLEN];
    std::memcpy(text, host.data(), host.size());
    text[host.size()] = '\0';
    unsigned char address[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, text, address) == 1 || inet_pton(AF_INET6, text, address) == 1;
}

}  // namespace portico::tls::detail
