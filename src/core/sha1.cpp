// SPDX-License-Identifier: Apache-2.0
#include "portico/core/sha1.h"

#include <memory>

#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>

namespace portico::core {

// OpenSSL 3.0 deprecates SHA1_Init/Update/Final in favour of EVP, but 3.0's EVP_DigestInit_ex2
// frees and re-allocates the provider's digest context on every call, even with a fetched
// EVP_MD and a reused EVP_MD_CTX: about 570 instructions and an allocation per upgrade, a third
// as much again as the hash's own two blocks (session 13, callgrind; EVP_MD_CTX_copy_ex
// allocates too). The low-level calls run the same block function (SHA-NI where the CPU has it)
// on a context on the stack. Where they are gone (a build without deprecated APIs, or a major
// version that drops them), EVP with a digest fetched once.
#if OPENSSL_VERSION_MAJOR < 4 && !defined(OPENSSL_NO_DEPRECATED_3_0)

Sha1Digest sha1(std::string_view data) {
    Sha1Digest digest;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    SHA_CTX ctx;
    SHA1_Init(&ctx);
    SHA1_Update(&ctx, data.data(), data.size());
    SHA1_Final(digest.data(), &ctx);
#pragma GCC diagnostic pop
    return digest;
}

#else

namespace {
struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
// Fetched once (EVP_MDs are thread-safe to share): EVP_sha1()'s implicit fetch looks the
// algorithm up in the provider tables on every init.
EVP_MD* const kSha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
}  // namespace

Sha1Digest sha1(std::string_view data) {
    Sha1Digest digest{};
    thread_local const std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    unsigned int n = 0;
    if (kSha1 && ctx && EVP_DigestInit_ex2(ctx.get(), kSha1, nullptr) == 1 &&
        EVP_DigestUpdate(ctx.get(), data.data(), data.size()) == 1 && EVP_DigestFinal_ex(ctx.get(), digest.data(), &n) == 1 &&
        n == kSha1Length)
        return digest;
    // No provider or context at hand: the one-shot still answers (with a lookup of its own).
    SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
    return digest;
}

#endif

}  // namespace portico::core
