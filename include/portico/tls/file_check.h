// SPDX-License-Identifier: Apache-2.0
#pragma once
// `portico -t` for TLS: what the config loader cannot check without OpenSSL (it includes none).

#include <string>
#include <vector>

#include "portico/config/config.h"
#include "portico/config/loader.h"

namespace portico::tls {

// Builds every listener's and upstream's TLS contexts from `config` (as loadConfigFile left it:
// paths absolute) and throws them away, appending what is wrong to `errors` and worth a warning
// to `warnings` (formatted like LoadResult::warnings). Errors: an unreadable certificate, key,
// client_ca or ca; a file without a certificate or key; a passphrase-protected key ("not
// supported"); a key that does not match its certificate; two certificates with the same names
// and key type; a cipher list that selects nothing. Warnings: a certificate expired, expiring
// within 14 days, or not yet valid; a name claimed by two certificates; a listener offering h2
// whose `ciphers` let TLS 1.2 clients pick suites HTTP/2 forbids. Each message carries
// config.file, the line of the certificate entry (of `ciphers`, or of the listener / upstream) and the key
// path ("listeners[0].tls.certificates[1].key"), and names the file. `verify: false` is not
// repeated here: the loader already warns about it. Never throws on bad files.
void checkTlsFiles(const config::Config& config, std::vector<config::ConfigError>& errors,
                   std::vector<std::string>& warnings);

}  // namespace portico::tls
