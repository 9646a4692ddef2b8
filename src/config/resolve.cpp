// SPDX-License-Identifier: Apache-2.0
// Pass 3: relative paths resolve against the configuration file's folder, as issue 2 asks, so
// that `portico -c /etc/portico/portico.yaml` finds `www/` next to it whatever the working
// directory. Nothing here touches the files themselves: whether they exist and can be read is
// checked by whoever opens them (the static handler, the access log, the TLS contexts).

#include <filesystem>
#include <system_error>

#include "config/passes.h"

namespace portico::config::detail {
namespace {

namespace fs = std::filesystem;

fs::path baseFolder(const std::string& file) {
    std::error_code ec;
    fs::path folder = fs::path(file).parent_path();
    fs::path absolute = folder.empty() ? fs::current_path(ec) : fs::absolute(folder, ec);
    if (ec) return folder;  // no working directory: keep what we have rather than fail
    return absolute;
}

void resolve(const fs::path& base, std::string& path) {
    if (path.empty()) return;
    fs::path value(path);
    if (value.is_relative()) value = base / value;
    path = value.lexically_normal().string();
}

}  // namespace

void resolveConfig(Config& config, const std::string& file) {
    fs::path base = baseFolder(file);
    if (config.log.access != "stdout" && config.log.access != "off")
        resolve(base, config.log.access);
    for (Listener& listener : config.listeners) {
        if (!listener.tls) continue;
        for (CertificateFiles& files : listener.tls->certificates) {
            resolve(base, files.cert);
            resolve(base, files.key);
        }
        resolve(base, listener.tls->client_ca);
        resolve(base, listener.tls->keylog_file);
    }
    for (auto& [name, upstream] : config.upstreams) {
        if (!upstream.tls) continue;
        resolve(base, upstream.tls->ca);
        resolve(base, upstream.tls->keylog_file);
    }
    for (Route& route : config.routes) resolve(base, route.root);
    resolve(base, config.pubsub.backplane.password_file);
}

}  // namespace portico::config::detail
