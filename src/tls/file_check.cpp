// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/file_check.h"

#include <ctime>

#include "tls/certificate.h"
#include "tls/context_access.h"

namespace portico::tls {
namespace {

void report(const config::Config& config, const std::string& prefix, const detail::Problems& problems,
            const std::vector<config::SourceMark>& certificate_marks, config::SourceMark fallback,
            bool skip_verify_warning, std::vector<config::ConfigError>& errors,
            std::vector<std::string>& warnings) {
    for (const detail::Problem& p : problems.list()) {
        if (skip_verify_warning && p.warning && p.key == "tls.verify") continue;
        config::SourceMark mark = fallback;
        if (p.certificate >= 0 && static_cast<std::size_t>(p.certificate) < certificate_marks.size() &&
            certificate_marks[static_cast<std::size_t>(p.certificate)].line > 0) {
            mark = certificate_marks[static_cast<std::size_t>(p.certificate)];
        }
        config::ConfigError error;
        error.file = config.file;
        error.line = mark.line;
        error.column = mark.column;
        error.key = p.key.empty() ? prefix : prefix + "." + p.key;
        error.message = p.message;
        if (p.warning) {
            warnings.push_back(error.toString());
        } else {
            errors.push_back(std::move(error));
        }
    }
}

}  // namespace

void checkTlsFiles(const config::Config& config, std::vector<config::ConfigError>& errors,
                   std::vector<std::string>& warnings) {
    const std::time_t now = std::time(nullptr);
    for (std::size_t i = 0; i < config.listeners.size(); ++i) {
        const config::Listener& listener = config.listeners[i];
        if (!listener.tls) continue;
        detail::Problems problems;
        detail::ServerContextAccess::build(*listener.tls, problems, nullptr, now);
        std::vector<config::SourceMark> marks;
        for (const config::CertificateFiles& files : listener.tls->certificates)
            marks.push_back(files.mark);
        report(config, "listeners[" + std::to_string(i) + "]", problems, marks, listener.mark,
               false, errors, warnings);
    }
    for (const auto& [name, upstream] : config.upstreams) {
        if (!upstream.tls) continue;
        detail::Problems problems;
        detail::ClientContextAccess::build(*upstream.tls, problems);
        report(config, "upstreams." + name, problems, {}, upstream.mark, true, errors, warnings);
    }
}

}  // namespace portico::tls
